-- Every account's state. call: {accounts} (the caller's pool, in its order, registered
-- here; every other account registered follows, sorted).
-- Reply: {now, accounts = {{name, streams, cool (JSON, or false), served, error}, ...}}.
local names, given = {}, {}
for i, name in ipairs(call.accounts) do
  names[i], given[name] = name, true
  redis.call('SADD', P .. ':accounts', name)
end
local others = {}
for _, name in ipairs(redis.call('SMEMBERS', P .. ':accounts')) do
  if not given[name] then table.insert(others, name) end
end
table.sort(others)
for _, name in ipairs(others) do table.insert(names, name) end
local out = {}
for i, name in ipairs(names) do
  local stats = P .. ':stats:' .. name
  out[i] = {
    name = name,
    streams = load_of(name),
    cool = redis.call('GET', P .. ':cool:' .. name),
    served = tonumber(redis.call('HGET', stats, 'served') or '0'),
    error = redis.call('HGET', stats, 'last_error'),
  }
end
return cjson.encode({now = now, accounts = out})
