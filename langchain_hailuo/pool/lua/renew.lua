-- Push leases' expiry on. call: {ttl (ms), leases = {{account, lease}, ...}}.
-- Reply: per lease, whether it was still held (one that had expired stays ended).
local held = {}
for i, lease in ipairs(call.leases) do
  load_of(lease[1])
  local key = P .. ':leases:' .. lease[1]
  held[i] = redis.call('ZSCORE', key, lease[2]) ~= false
  if held[i] then redis.call('ZADD', key, now + call.ttl, lease[2]) end
end
return cjson.encode(held)
