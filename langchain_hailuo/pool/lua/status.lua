-- Every account's state: call.accounts first (registered here), then every other, sorted.
-- Reply: {now, accounts = {{name, streams, cool (JSON, or false), served, error}, ...}}.
local names, given, others = {}, {}, {}
for i, name in ipairs(call.accounts) do
  names[i], given[name] = name, true
  redis.call('SADD', P .. ':accounts', name)
end
for _, name in ipairs(redis.call('SMEMBERS', P .. ':accounts')) do
  if not given[name] then table.insert(others, name) end
end
table.sort(others)
for _, name in ipairs(others) do table.insert(names, name) end
local out = {}
for i, name in ipairs(names) do
  local stats = redis.call('HMGET', P .. ':stats:' .. name, 'served', 'last_error')
  out[i] = {name = name, streams = load_of(name), cool = redis.call('GET', P .. ':cool:' .. name),
            served = tonumber(stats[1] or '0'), error = stats[2]}
end
return cjson.encode({now = now, accounts = out})
