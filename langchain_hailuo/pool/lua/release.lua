-- End a lease, count the answer, record the error and a rest; else hand the account, as its
-- own new lease, to a waiter: of the clients with one that can use it, the client streaming
-- the fewest answers (ties: the oldest waiter), so answers spread over the processes.
-- call: {account, lease, served, error ('': none), cool (absent, or {kind, seconds (absent:
-- until logged in again), message, token}), limit, grant (the waiter's lease id, without
-- its client), client (the releasing one)}.
-- Reply: {waiter, lease} when handed to a waiter of the releasing client (the others hear
-- it on their channel P:freed:<client>, as '<waiter> <account> <lease>'), else {}.
local account = call.account
local ended = redis.call('ZREM', P .. ':leases:' .. account, call.lease) == 1
if ended then count_streams(client_of(call.lease), -1) end
local stats = P .. ':stats:' .. account
if call.served then redis.call('HINCRBY', stats, 'served', 1) end
if call.error ~= '' then redis.call('HSET', stats, 'last_error', call.error) end
if call.cool then
  local rest = P .. ':cool:' .. account
  if call.cool.seconds then
    local ms = math.max(1, math.floor(call.cool.seconds * 1000))
    call.cool.until_ms = now + ms
    redis.call('SET', rest, cjson.encode(call.cool), 'PX', ms)
  else
    redis.call('SET', rest, cjson.encode(call.cool))
  end
  return '{}'
end
-- A lease that had expired (the account may be someone else's now), a resting or a full
-- account: no hand-over (waiters wake by their own timers at a rest's end).
if not ended or redis.call('EXISTS', P .. ':cool:' .. account) == 1
    or load_of(account) >= call.limit then
  return '{}'
end
local needle = '\n' .. account .. '\n'
while true do
  local chosen, fewest, ttl
  for _, waiter in ipairs(redis.call('ZRANGE', P .. ':queue', 0, -1)) do
    local want = redis.call('HGET', P .. ':want', waiter)
    local deadline, wants_ttl = string.match(want or '', '^(%d+) (%d+)')
    if not deadline or tonumber(deadline) < now then
      dequeue(waiter)
    elseif string.find(want, needle, 1, true) then
      local streams = tonumber(redis.call('HGET', P .. ':active', client_of(waiter)) or '0')
      if not chosen or streams < fewest then chosen, fewest, ttl = waiter, streams, wants_ttl end
      if fewest == 0 then break end
    end
  end
  if not chosen then return '{}' end
  local client = client_of(chosen)
  local lease = client .. ':' .. call.grant
  take(account, lease, tonumber(ttl))
  dequeue(chosen)
  if client == call.client then return cjson.encode({waiter = chosen, lease = lease}) end
  if redis.call('PUBLISH', P .. ':freed:' .. client, chosen .. ' ' .. account .. ' ' .. lease) > 0 then
    return '{}'
  end
  -- Nobody listens for that client: its process is gone, and so are its calls.
  redis.call('ZREM', P .. ':leases:' .. account, lease)
  count_streams(client, -1)
  for _, waiter in ipairs(redis.call('ZRANGE', P .. ':queue', 0, -1)) do
    if client_of(waiter) == client then dequeue(waiter) end
  end
end
