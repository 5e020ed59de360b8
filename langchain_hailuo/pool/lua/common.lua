-- Prepended to every pool script. KEYS[1]: the key prefix P; ARGV[1]: the call (JSON).
-- Times are Redis's clock, in ms, so hosts agree. The invariants, all kept here:
-- * P:leases holds the live leases ('<account> <client>:<id>', scored by expiry); P:load
--   counts them per account, P:active per client (one process's event loop). No account's
--   load goes above the limit of whoever leased it. Every script first ends expired leases.
-- * P:cool:<account> is a rest: a timed one expires; an auth one ends with a new login.
-- * P:queue:<client> orders a client's waiting calls by arrival (one counter for all);
--   P:waiting lists the clients that may have one; P:want gives each waiting call
--   '<deadline ms> <lease ttl ms>', then '\n<account>' per account it wants.
-- * P:held:<client> counts the client's new chats held back by the share grace (it expires
--   with the grace); P:accounts lists every registered account, P:stats:<account> its
--   answers served and last error.
local P = KEYS[1]
local LEASES, LOAD, ACTIVE = P .. ':leases', P .. ':load', P .. ':active'
local call = cjson.decode(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function client_of(id) return string.match(id, '^([^:]*):') end
local function count(hash, field, by)
  if redis.call('HINCRBY', hash, field, by) <= 0 then redis.call('HDEL', hash, field) end
end
local function take(account, lease, ttl)
  redis.call('ZADD', LEASES, now + ttl, account .. ' ' .. lease)
  count(LOAD, account, 1)
  count(ACTIVE, client_of(lease), 1)
end
local function drop(member)  -- '<account> <lease>'
  redis.call('ZREM', LEASES, member)
  count(LOAD, string.match(member, '^(.-) '), -1)
  count(ACTIVE, client_of(string.match(member, ' (.*)$')), -1)
end
local function load_of(account) return tonumber(redis.call('HGET', LOAD, account) or '0') end
local function streams_of(client) return tonumber(redis.call('HGET', ACTIVE, client) or '0') end
local function listening()  -- the clients subscribed to their hand-overs (the caller too)
  return math.max(1, #redis.call('PUBSUB', 'CHANNELS', P .. ':freed:*'))
end
local function dequeue(waiter)  -- P:waiting is tidied by the next release that looks
  redis.call('ZREM', P .. ':queue:' .. client_of(waiter), waiter)
  redis.call('HDEL', P .. ':want', waiter)
end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', LEASES, '-inf', now)) do drop(member) end
