-- Lease the least-loaded healthy candidate under its limit, or queue the waiter.
-- call: {lease, ttl (ms), limit, candidates = {{name, token hash or ''}, ...} (ties go to
-- the first), waiter ('': none), within (ms the waiter may wait; -1: no limit)}.
-- Reply: {now, account} when leased, else {now, busy, wake (ms, or absent), cooling =
-- {name = cool-down}}.
local names, best, best_load = {}, nil, nil
local busy, wake, cooling = false, nil, {}
local function sooner(ms)
  if ms and (not wake or ms < wake) then wake = ms end
end
for i, candidate in ipairs(call.candidates) do
  local name, token = candidate[1], candidate[2]
  names[i] = name
  local rest = P .. ':cool:' .. name
  local raw = redis.call('GET', rest)
  local cool = raw and cjson.decode(raw)
  if cool and cool.kind == 'auth' and token ~= '' and token ~= cool.token then
    redis.call('DEL', rest)  -- logged in again: the rejected token's rest is over
    cool = nil
  end
  if cool then
    cooling[name] = cool
    sooner(cool.until_ms)
  elseif not best or best_load > 0 then
    local load = load_of(name)
    if load >= call.limit then
      busy = true
      sooner(tonumber(redis.call('ZRANGE', P .. ':leases:' .. name, 0, 0, 'WITHSCORES')[2]))
    elseif not best or load < best_load then
      best, best_load = name, load
    end
  end
end
redis.call('SADD', P .. ':accounts', unpack(names))  -- for `hailuo pool status` anywhere
if best then
  take(best, call.lease, call.ttl)
  if call.waiter ~= '' then dequeue(call.waiter) end
  return cjson.encode({now = now, account = best})
end
if call.waiter ~= '' then
  if not redis.call('ZSCORE', P .. ':queue', call.waiter) then
    redis.call('ZADD', P .. ':queue', redis.call('INCR', P .. ':arrivals'), call.waiter)
  end
  local within = call.within < 0 and 86400000 or call.within
  local want = string.format('%.0f %.0f\n', now + within, call.ttl) .. table.concat(names, '\n')
  redis.call('HSET', P .. ':want', call.waiter, want .. '\n')
end
return cjson.encode({now = now, busy = busy, wake = wake, cooling = cooling})
