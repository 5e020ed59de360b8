-- End a lease, count the answer, record the error and a rest; else hand the account (a new
-- lease) to the releasing client's own waiter while it streams under its part of the pool,
-- else to the client streaming the fewest (ties: the oldest waiter). call: {account, lease,
-- served, error ('': none), cool (absent, or {kind, seconds (absent: until logged in again),
-- message, token}), limit, grant (new lease id sans client), client (the releasing one)}.
-- Reply: {waiter, lease} for the releasing client's waiter, else {} (another client hears
-- '<waiter> <account> <lease>' on P:freed:<client>).
local account = call.account
local member = account .. ' ' .. call.lease
local ended = redis.call('ZSCORE', LEASES, member) ~= false
if ended then drop(member) end
local stats = P .. ':stats:' .. account
if call.served then redis.call('HINCRBY', stats, 'served', 1) end
if call.error ~= '' then redis.call('HSET', stats, 'last_error', call.error) end
local rest = P .. ':cool:' .. account
if call.cool then  -- a timed rest expires by itself; an auth one stays until a new login
  local ms = call.cool.seconds and math.max(1, math.floor(call.cool.seconds * 1000))
  call.cool.until_ms = ms and now + ms
  redis.call('SET', rest, cjson.encode(call.cool), unpack(ms and {'PX', ms} or {}))
  return '{}'
end
-- An expired lease (the account may be someone else's now), a resting or a full account:
-- no hand-over (waiters wake by their own timers at a rest's end).
if not ended or redis.call('EXISTS', rest) == 1 or load_of(account) >= call.limit then
  return '{}'
end
local needle = '\n' .. account .. '\n'
local function oldest_wanting(client)  -- the client's oldest live call that wants the account
  local entries = redis.call('ZRANGE', P .. ':queue:' .. client, 0, -1, 'WITHSCORES')
  if #entries == 0 then redis.call('SREM', P .. ':waiting', client) end
  for i = 1, #entries, 2 do
    local want = redis.call('HGET', P .. ':want', entries[i])
    local deadline, ttl = string.match(want or '', '^(%d+) (%d+)')
    if not deadline or tonumber(deadline) < now then
      dequeue(entries[i])
    elseif string.find(want, needle, 1, true) then
      return entries[i], tonumber(entries[i + 1]), tonumber(ttl)
    end
  end
end
-- Its part: the registered accounts' slots over the clients listening, rounded down. Kept
-- for its own waiter, the hand-over needs no pub/sub hop; the others get their part too.
local slots = redis.call('SCARD', P .. ':accounts') * call.limit
local keeps = streams_of(call.client) < math.floor(slots / listening())
while true do
  local chosen, fewest, first, ttl
  for _, client in ipairs(redis.call('SMEMBERS', P .. ':waiting')) do
    local waiter, arrival, wants_ttl = oldest_wanting(client)
    if waiter then
      local streams = (keeps and client == call.client) and -1 or streams_of(client)
      if not chosen or streams < fewest or (streams == fewest and arrival < first) then
        chosen, fewest, first, ttl = waiter, streams, arrival, wants_ttl
      end
    end
  end
  if not chosen then return '{}' end
  local client = client_of(chosen)
  local lease = client .. ':' .. call.grant
  take(account, lease, ttl)
  dequeue(chosen)
  if client == call.client then return cjson.encode({waiter = chosen, lease = lease}) end
  if redis.call('PUBLISH', P .. ':freed:' .. client, chosen .. ' ' .. account .. ' ' .. lease) > 0 then
    return '{}'
  end
  -- Nobody listens: that process is gone, and so are all its calls; the next waiter.
  drop(account .. ' ' .. lease)
  for _, gone in ipairs(redis.call('ZRANGE', P .. ':queue:' .. client, 0, -1)) do dequeue(gone) end
  redis.call('SREM', P .. ':waiting', client)
end
