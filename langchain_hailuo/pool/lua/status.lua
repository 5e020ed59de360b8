-- Every registered account's state (call.accounts registered first), in no order.
-- Reply: {now, accounts = {{name, streams, cool (JSON, or false), served, error}, ...}}.
if #call.accounts > 0 then redis.call('SADD', P .. ':accounts', unpack(call.accounts)) end
local out = {}
for i, name in ipairs(redis.call('SMEMBERS', P .. ':accounts')) do
  local stats = redis.call('HMGET', P .. ':stats:' .. name, 'served', 'last_error')
  out[i] = {name = name, streams = load_of(name), cool = redis.call('GET', P .. ':cool:' .. name),
            served = tonumber(stats[1] or '0'), error = stats[2]}
end
return cjson.encode({now = now, accounts = out})
