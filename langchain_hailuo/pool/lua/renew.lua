-- Push leases' expiry on. call: {ttl (ms), leases = {{account, lease}, ...}}.
-- Reply: per lease, whether it was still held (one that had expired stays ended).
local held = {}
for i, lease in ipairs(call.leases) do
  local member = lease[1] .. ' ' .. lease[2]
  held[i] = redis.call('ZSCORE', LEASES, member) ~= false
  if held[i] then redis.call('ZADD', LEASES, now + call.ttl, member) end
end
return cjson.encode(held)
