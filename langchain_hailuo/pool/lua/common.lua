-- Shared by every pool script (prepended to each). KEYS[1] is the pool's key prefix P (one
-- Redis server holds a pool: the per-account keys are named here, not passed in KEYS);
-- ARGV[1] is the call, a JSON object. Times are Redis's clock, in ms, so hosts agree.
--
-- The invariants, all kept here:
-- * P:leases:<account> holds the account's live leases ('<client>:<id>' scored by expiry);
--   its size is the account's load, never above the limit of whoever took a lease on it.
-- * Expired leases (a dead or stalled worker's) are ended before a load is read.
-- * P:active counts each client's live leases (a client is one event loop of a process).
-- * P:cool:<account> is a rest; a timed one expires by itself, an auth one ends with a new
--   login (another token hash).
-- * P:queue orders the waiting calls ('<client>:<id>') by arrival; P:want gives each one's
--   '<deadline ms> <lease ttl ms>' and then '\n<account>' per account it can use.
local P = KEYS[1]
local call = cjson.decode(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function client_of(id) return string.match(id, '^([^:]*):') end

local function count_streams(client, by)
  if redis.call('HINCRBY', P .. ':active', client, by) <= 0 then
    redis.call('HDEL', P .. ':active', client)
  end
end

local function load_of(account)
  local leases = P .. ':leases:' .. account
  for _, lease in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now)) do
    redis.call('ZREM', leases, lease)
    count_streams(client_of(lease), -1)
  end
  return redis.call('ZCARD', leases)
end

local function take(account, lease, ttl)
  redis.call('ZADD', P .. ':leases:' .. account, now + ttl, lease)
  count_streams(client_of(lease), 1)
end

local function dequeue(waiter)
  redis.call('ZREM', P .. ':queue', waiter)
  redis.call('HDEL', P .. ':want', waiter)
end

