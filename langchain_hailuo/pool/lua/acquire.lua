-- Lease the least-loaded healthy candidate under its limit (ties: the first), or queue the
-- waiter. call: {lease, ttl, limit, candidates = {{name, token hash or ''}, ...}, waiter
-- ('': none), within (ms it may wait; -1: no limit), hold (ms left of the share grace: while
-- the caller's client streams its share, free accounts stay with the other clients' calls)}.
-- Reply: {now, account} when leased, else {now, busy, wake (ms, or absent), cooling}.
local names, rests = {}, {}
for i, candidate in ipairs(call.candidates) do
  names[i], rests[i] = candidate[1], P .. ':cool:' .. candidate[1]
end
local cools = redis.call('MGET', unpack(rests))
local loads = redis.call('HMGET', LOAD, unpack(names))
redis.call('SADD', P .. ':accounts', unpack(names))  -- for `hailuo pool status` anywhere
local best, best_load, free, busy, wake, cooling = nil, nil, nil, false, nil, {}
local function wake_by(ms) if ms and (not wake or ms < wake) then wake = ms end end
for i, name in ipairs(names) do
  local token, cool = call.candidates[i][2], cools[i] and cjson.decode(cools[i])
  if cool and cool.kind == 'auth' and token ~= '' and token ~= cool.token then
    redis.call('DEL', rests[i])  -- logged in again: the rejected token's rest is over
    cool = nil
  end
  local load = tonumber(loads[i] or '0')
  if cool then
    cooling[name] = cool
    wake_by(cool.until_ms)
  elseif load >= call.limit then
    busy = true
  else
    free = (free or 0) + 1
    if not best or load < best_load then best, best_load = name, load end
  end
end
if best and call.hold > 0  -- the caller streams its share: slots / clients, rounded up
    and streams_of(client_of(call.lease)) >= math.ceil(#names * call.limit / listening()) then
  best, busy = nil, true
  local held = P .. ':held:' .. client_of(call.lease)  -- the client's calls held back now
  if redis.call('INCR', held) <= free then  -- as many look again at the grace's end as are free
    redis.call('PEXPIRE', held, call.hold)
    wake_by(now + call.hold)
  end
end
if best then
  take(best, call.lease, call.ttl)
  if call.waiter ~= '' then dequeue(call.waiter) end
  return cjson.encode({now = now, account = best})
end
if busy then  -- the first lease to expire (a dead worker's frees its account then)
  wake_by(tonumber(redis.call('ZRANGE', LEASES, 0, 0, 'WITHSCORES')[2]))
end
if call.waiter ~= '' then
  local client = client_of(call.waiter)  -- NX: a waiter asking again keeps its place
  redis.call('ZADD', P .. ':queue:' .. client, 'NX', redis.call('INCR', P .. ':arrivals'), call.waiter)
  redis.call('SADD', P .. ':waiting', client)
  local within = call.within < 0 and 86400000 or call.within
  local want = string.format('%.0f %.0f\n', now + within, call.ttl) .. table.concat(names, '\n')
  redis.call('HSET', P .. ':want', call.waiter, want .. '\n')
end
return cjson.encode({now = now, busy = busy, wake = wake, cooling = cooling})
