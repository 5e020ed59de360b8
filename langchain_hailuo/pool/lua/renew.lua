-- Push leases' expiry on. call: {ttl, leases = {{account, lease}, ...}}; reply: per lease,
-- whether it was still held (an expired one stays ended).
local held = {}
for i, lease in ipairs(call.leases) do
  local member = lease[1] .. ' ' .. lease[2]
  held[i] = redis.call('ZSCORE', LEASES, member) ~= false
  if held[i] then redis.call('ZADD', LEASES, now + call.ttl, member) end
end
return cjson.encode(held)
