"""The Redis backend: leases and cool-downs shared by every process and host of a pool.

Layout (``<p>`` is ``hailuo-pool:<name>``):

- ``<p>:load``: a sorted set of the accounts, scored ``streams * 2**32 + turn``: the number
  of live leases, then when the account was last leased (so among equally loaded accounts
  the one leased longest ago comes first: new chats go round the accounts). Picking the
  least-loaded free account is one range read, whatever the number of accounts.
- ``<p>:leases``: a sorted set of ``<account> <lease id>`` scored by the lease's expiry
  (ms, Redis clock). A lease lives ``lease_ttl`` seconds unless renewed; the scheduler
  renews it every third of that while the answer streams. Every script first ends the
  leases that expired (a dead worker's), so such an account is free again within the TTL.
- ``<p>:cool``: a hash account -> cool-down (JSON, its end in Redis ms).
- ``<p>:stats:<account>``: a hash of ``served``, ``last_error``.
- ``<p>:accounts``: the set of accounts any process registered (for ``hailuo pool status``).
- ``<p>:registered``: the clients whose accounts are all in the load set (gone, with the
  rest, when Redis loses its data: each client then registers its accounts again).
- ``<p>:queue:<loop key>``, ``<p>:loops`` and ``<p>:want``: the calls waiting for an
  account, per event loop (a sorted set of waiter ids scored by arrival, across all
  processes), the loops with calls waiting, and what each call can use (a hash waiter ->
  its deadline, its lease TTL and its candidate accounts). A waiter id, like a lease id,
  starts with its loop's key.
- ``<p>:active``: a hash loop key -> the answers it streams on the pool now (its live leases).
- channel ``<p>:freed:<loop key>``: ``<waiter> <account> <lease id>`` is published when a
  release hands an account to a waiter of another process or event loop; each event loop
  subscribes to its own channel, so no process reads the hand-overs meant for the others.

Acquire, release, renew, note and status are Lua scripts: atomic, and timed by the Redis server's
clock (``TIME``), so hosts with skewed clocks still agree on expiries. The scripts an event
loop asks at once share one round trip (:mod:`langchain_hailuo.pool.redis_pipeline`).

A release that frees a slot hands it, as the waiter's own lease (its TTL, kept in
``want``), to a waiter that can use it: of the loops with such a waiter, the one streaming
the fewest answers (ties: the longest-waiting), and its oldest such call; a waiter of the
releasing event loop directly, any other through ``freed``. So answers spread over the
processes as accounts free up, as they would with each process on accounts of its own, and
the waiter has nothing more to ask of Redis. A loop nobody listens for any more
(``PUBLISH`` reaches no one: its process died, its connection dropped) is dropped with its
waiters, and the account goes to the next. So a waiter is woken exactly once per account
it gets, nobody retries and loses, and a grant a waiter can no longer use goes to another
waiting call of its loop, or is given back (or, if its process died in between, ends with
the lease TTL like any lease). Waiters also wake, without being told, at the earliest
cool-down end or lease expiry their failed acquire reported; nothing polls.

A loop that streams no more than its part of the pool (the accounts' streams divided by the
loops listening on ``freed``, rounded down; Redis says both in every acquire's reply) does
not ask Redis to release an account after an answer served when one of its own calls waits
for it: it hands the lease over itself (the account stays the loop's, so Redis's counts
hold), and tells Redis later, several hand-overs in one ``_NOTE`` (the waiters leave their
queue, the accounts count their answers), with the loop's next script or within
``NOTE_DELAY``. A loop over its part releases through Redis, whose choice (the loop
streaming the fewest) brings every loop to its part. In one process an answer then costs
its acquire alone. A new chat of a loop that already streams its share of the pool (the
streams divided by the loops listening, rounded up) waits ``SHARE_GRACE`` before it takes a
free account, so a burst in one process leaves the others' calls, a few ms behind, their
share.

The ``redis`` package is imported here only, when a ``pool_url`` is used (the
``langchain-hailuo[redis]`` extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from langchain_hailuo.errors import HailuoConfigurationError, HailuoPoolUnavailableError
from langchain_hailuo.pool.backend import (
    DEFAULT_LEASE_TTL,
    AccountStatus,
    Attempt,
    Candidate,
    LoopLocks,
    Ticket,
    Waiters,
    account_status,
    new_lease_id,
)
from langchain_hailuo.pool.health import Cooldown
from langchain_hailuo.pool.redis_pipeline import LuaScript, RedisErrors, ScriptPipeline

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

__all__ = ["RedisBackend", "redact_url", "redis_backend"]

logger = logging.getLogger(__name__)

_SENDERS = 7
"""Batches of scripts in flight at once per process and event loop (a connection each)."""
_MAX_CONNECTIONS = _SENDERS + 2
"""Redis connections per process and event loop: the senders', the ``freed`` subscription,
and one for loading scripts Redis lacks."""
NOTE_DELAY = 0.1
"""Seconds a loop may hold back telling Redis of the hand-overs it did itself (each loop's
next script tells it sooner)."""
_REGISTER_TRIES = 3
"""Acquires tried, each after registering the accounts again, while Redis keeps losing them."""
_NO_DEADLINE_MS = 86_400_000
"""How long a waiter without a deadline keeps its place (a day, in ms)."""
SHARE_GRACE = 0.05
"""Seconds a process at its share of the pool lets the others claim the free accounts
before it takes more (see ``_ACQUIRE``)."""

# Names and helpers every script shares. KEYS[1] is always the load set, whose name gives
# the pool's prefix P; the per-loop keys are named from it (a pool lives on one server).
_HELPERS = """
local BASE = 4294967296
local P = string.sub(KEYS[1], 1, -6)
local WANT, LOOPS, ACTIVE = P .. ':want', P .. ':loops', P .. ':active'
local function loop_of(id) return string.match(id, '^([^:]*):') end
local function streams(loop, by)
  if loop and redis.call('HINCRBY', ACTIVE, loop, by) <= 0 then redis.call('HDEL', ACTIVE, loop) end
end
local function listening()  -- the event loops subscribed to their hand-overs (the caller's too)
  local pattern = string.gsub(P .. ':freed:', '[%*%?%[%]\\\\]', '\\\\%0') .. '*'
  return math.max(1, #redis.call('PUBSUB', 'CHANNELS', pattern))
end
local function active(loop) return tonumber(redis.call('HGET', ACTIVE, loop) or '0') end
local function dequeue(waiter)
  local loop = loop_of(waiter)
  local queue = P .. ':queue:' .. loop
  redis.call('ZREM', queue, waiter)
  redis.call('HDEL', WANT, waiter)
  if redis.call('ZCARD', queue) == 0 then redis.call('SREM', LOOPS, loop) end
end
"""

# The clock and the expired leases (a dead worker's), first in every script that reads the
# load. KEYS[2] is the leases set; a lease id starts with its event loop's key.
_PRELUDE = (
    _HELPERS
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)) do
  redis.call('ZREM', KEYS[2], m)
  redis.call('ZINCRBY', KEYS[1], -BASE, string.match(m, '^(.-) '))
  streams(loop_of(string.match(m, ' (.*)$')), -1)
end
"""
)

# KEYS: load, leases, cool, turn, registered. ARGV: limit, ttl ms, lease id, candidates
# ("\n<name>\t<token hash>" each), waiter id ('' for none), ms the waiter may wait (-1: no
# limit), '1' when a new chat (any of several accounts: it may be held to the loop's share),
# the share's grace (ms), how many candidates, the client's registration id.
#
# The candidates are registered (in the load set) by the client before its first acquire,
# under its registration id: while that id is in `registered`, every candidate is in the
# load set, and they are read one by one (a cool-down's token, a free account's name), never
# parsed in full. Should Redis have lost its data (a restart without persistence, a flush),
# the id is gone too: the script changes nothing and replies busy = -1, and the client
# registers its accounts again and asks again.
#
# The share: while several event loops (processes, hosts) listen on the pool, a loop that
# already streams its share of it (the accounts' streams divided by the loops listening)
# leaves the free accounts to the others for a moment: its new chat queues, and takes a free
# account only once it has waited the grace (SHARE_GRACE; or is handed one). So a burst of
# calls in one process does not take every account just before the other processes' calls arrive;
# and no account stays free while a call waits longer than that.
_ACQUIRE = LuaScript(
    _PRELUDE
    + """
if redis.call('SISMEMBER', KEYS[5], ARGV[10]) == 0 then return {now, '', -1, -1, {}} end
local limit = tonumber(ARGV[1])
local spec = ARGV[4]
local function wanted(name) return string.find(spec, '\\n' .. name .. '\\t', 1, true) end
local function token_of(name)  -- the candidate's token hash (nil: not a candidate)
  local at = wanted(name)
  if not at then return nil end
  local from = at + #name + 2
  local stop = string.find(spec, '\\n', from, true)
  return string.sub(spec, from, stop and stop - 1 or -1)
end
local blocked, cooling, wake = {}, {}, -1
local cools = {}
if redis.call('HLEN', KEYS[3]) > 0 then cools = redis.call('HGETALL', KEYS[3]) end
for i = 1, #cools, 2 do
  local name, raw = cools[i], cools[i + 1]
  local token = token_of(name)
  if token ~= nil then
    local cool = cjson.decode(raw)
    local rests
    if cool['kind'] == 'auth' then
      rests = (token == '' or token == cool['token'])
    else
      rests = (cool['until_ms'] or 0) > now
      if rests and (wake < 0 or cool['until_ms'] < wake) then wake = cool['until_ms'] end
    end
    if rests then
      blocked[name] = true
      table.insert(cooling, name)
      table.insert(cooling, raw)
    else
      redis.call('HDEL', KEYS[3], name)
    end
  end
end
local slots, loops  -- the pool's slots (accounts * limit) and the loops listening: read once
local function parts()
  if not slots then slots, loops = redis.call('ZCARD', KEYS[1]) * limit, listening() end
  return slots, loops
end
local function keep()  -- the streams up to which a loop keeps its accounts (see the client)
  local all, among = parts()
  return math.floor(all / among)
end
local function lease(name, load)
  local turn = redis.call('INCR', KEYS[4]) % BASE
  redis.call('ZADD', KEYS[1], (load + 1) * BASE + turn, name)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), name .. ' ' .. ARGV[3])
  streams(loop_of(ARGV[3]), 1)
  if ARGV[5] ~= '' then dequeue(ARGV[5]) end
  return {now, name, 0, -1, {}, active(loop_of(ARGV[3])), keep()}
end
local since = now  -- when this waiter first queued
if ARGV[5] ~= '' then
  local old = redis.call('HGET', WANT, ARGV[5])
  since = old and tonumber(string.match(old, '^%d+ %d+ (%d+)')) or now
end
local held = false  -- at its share: the free accounts are left to the other loops for now
local grace = tonumber(ARGV[8])
if ARGV[7] == '1' and ARGV[5] ~= '' and now - since < grace then
  local mine = active(loop_of(ARGV[3]))
  if mine > 0 then
    local all, among = parts()
    if among > 1 then held = mine >= math.ceil(all / among) end
  end
end
local below, offset = string.format('(%.0f', limit * BASE), 0
while not held do
  local free = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', below, 'WITHSCORES', 'LIMIT',
    offset, 16)
  for i = 1, #free, 2 do
    local name = free[i]
    if not blocked[name] and wanted(name) then
      return lease(name, math.floor(tonumber(free[i + 1]) / BASE))
    end
  end
  if #free < 32 then break end
  offset = offset + 16
end
local busy = 0
if held then
  busy = 1
  local until_ms = since + grace
  if wake < 0 or until_ms < wake then wake = until_ms end
else
  if tonumber(ARGV[9]) > #cooling / 2 then busy = 1 end  -- some not resting: all streaming
end
if busy == 1 then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if first[2] and (wake < 0 or tonumber(first[2]) < wake) then wake = tonumber(first[2]) end
end
if ARGV[5] ~= '' then
  local loop = loop_of(ARGV[5])
  local queue = P .. ':queue:' .. loop
  if not redis.call('ZSCORE', queue, ARGV[5]) then
    redis.call('ZADD', queue, redis.call('INCR', KEYS[4]), ARGV[5])
  end
  redis.call('SADD', LOOPS, loop)
  local within = tonumber(ARGV[6])
  if within < 0 then within = """
    + str(_NO_DEADLINE_MS)
    + """ end
  redis.call('HSET', WANT, ARGV[5], string.format('%.0f %d %.0f', now + within, ARGV[2], since)
    .. ARGV[4])
end
return {now, '', busy, wake, cooling, active(loop_of(ARGV[3])), keep()}
"""
)

# KEYS: load, leases, cool, stats, channel prefix. ARGV: lease id, account, served ('1'/'0'),
# error, cool-down JSON, the releasing loop's key, limit, an id for the grant.
#
# Which waiter gets the account: among the event loops with a call waiting for it, the one
# streaming the fewest answers on the pool now (ties: the one whose oldest call waits
# longest); within that loop, its oldest call that can use the account. So the answers
# spread over the processes (and their cores and hosts) as accounts free up, and a loop
# with calls waiting is served at the latest once its own answers have ended.
_RELEASE = LuaScript(
    _PRELUDE
    + """
local function reply(waiter, id)  -- the waiter handed the account (''), and the loop's streams
  return {now, waiter or '', id or '', active(ARGV[6])}
end
local account = ARGV[2]
local ended = redis.call('ZREM', KEYS[2], account .. ' ' .. ARGV[1])
if ended == 1 then
  redis.call('ZINCRBY', KEYS[1], -BASE, account)
  streams(loop_of(ARGV[1]), -1)
end
if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[4], 'served', 1) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[4], 'last_error', ARGV[4]) end
if ARGV[5] ~= '' then
  local cool = cjson.decode(ARGV[5])
  if cool['seconds'] ~= cjson.null and cool['seconds'] ~= nil then
    cool['until_ms'] = now + math.floor(cool['seconds'] * 1000)
  end
  redis.call('HSET', KEYS[3], account, cjson.encode(cool))
  return reply()
end
if ended == 0 or redis.call('HEXISTS', KEYS[3], account) == 1 then
  return reply()
end
local score = redis.call('ZSCORE', KEYS[1], account)
if score and math.floor(tonumber(score) / BASE) >= tonumber(ARGV[7]) then
  return reply()
end
local order = {}
for _, loop in ipairs(redis.call('SMEMBERS', LOOPS)) do
  local first = redis.call('ZRANGE', P .. ':queue:' .. loop, 0, 0, 'WITHSCORES')
  if first[2] then
    local busy = tonumber(redis.call('HGET', ACTIVE, loop) or '0')
    table.insert(order, {busy, tonumber(first[2]), loop})
  else
    redis.call('SREM', LOOPS, loop)
  end
end
table.sort(order, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end)
local needle = '\\n' .. account .. '\\t'
for _, entry in ipairs(order) do
  local loop = entry[3]
  local queue = P .. ':queue:' .. loop
  local start, gone = 0, false
  while not gone do
    local page = redis.call('ZRANGE', queue, start, start + 15)
    local kept = 0
    for _, waiter in ipairs(page) do
      local want = redis.call('HGET', WANT, waiter)
      local deadline, ttl
      if want then deadline, ttl = string.match(want, '^(%d+) (%d+)') end
      if not deadline or tonumber(deadline) < now then
        dequeue(waiter)
      elseif string.find(want, needle, 1, true) then
        -- The grant is the waiter's lease (its own TTL): its loop claims nothing more.
        dequeue(waiter)
        local id = loop .. ':' .. ARGV[8]
        local member = account .. ' ' .. id
        redis.call('ZINCRBY', KEYS[1], BASE, account)
        redis.call('ZADD', KEYS[2], now + tonumber(ttl), member)
        streams(loop, 1)
        if loop == ARGV[6] then return reply(waiter, id) end
        if redis.call('PUBLISH', KEYS[5] .. ':' .. loop, waiter .. ' ' .. member) > 0 then
          return reply(waiter, id)
        end
        -- Nobody listens on that loop's channel: its process is gone, and so are its calls.
        redis.call('ZREM', KEYS[2], member)
        redis.call('ZINCRBY', KEYS[1], -BASE, account)
        streams(loop, -1)
        for _, other in ipairs(redis.call('ZRANGE', queue, 0, -1)) do
          redis.call('HDEL', WANT, other)
        end
        redis.call('DEL', queue)
        redis.call('SREM', LOOPS, loop)
        gone = true
        break
      else
        kept = kept + 1
      end
    end
    if #page < 16 then break end
    start = start + kept
  end
end
return reply()
"""
)

# KEYS: load, leases. ARGV: per hand-over this client's event loop did itself, of a lease it
# held to its own waiter (see RedisBackend.release), five values: the waiter id, the account,
# '1' when an answer was served, the lease ('<account> <lease id>') and the waiter's TTL (ms).
# The waiter leaves its queue, the account counts the answer, and the lease (still held) is
# renewed for its new holder from now.
_NOTE = LuaScript(
    _PRELUDE
    + """
for i = 1, #ARGV, 5 do
  dequeue(ARGV[i])
  if ARGV[i + 2] == '1' then redis.call('HINCRBY', P .. ':stats:' .. ARGV[i + 1], 'served', 1) end
  if redis.call('ZSCORE', KEYS[2], ARGV[i + 3]) then
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[i + 4]), ARGV[i + 3])
  end
end
return #ARGV / 5
"""
)

# KEYS: load, leases. ARGV: '<account> <lease id>', ttl ms.
_RENEW = LuaScript(
    _PRELUDE
    + """
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
return 1
"""
)

# KEYS: load. ARGV: waiter id.
_DEQUEUE = LuaScript(
    _HELPERS
    + """
dequeue(ARGV[1])
return 1
"""
)

# KEYS: load, leases, cool, stats prefix, accounts. ARGV: account names (those of the
# caller's pool, in its order; the others registered follow, sorted). Replies the time, and
# per account its name, streams, cool-down, answers served and last error.
_STATUS = LuaScript(
    _PRELUDE
    + """
local names, given = {}, {}
for i = 1, #ARGV do
  table.insert(names, ARGV[i])
  given[ARGV[i]] = true
end
local others = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  if not given[name] then table.insert(others, name) end
end
table.sort(others)
for _, name in ipairs(others) do table.insert(names, name) end
local out = {now}
for _, name in ipairs(names) do
  local stats = KEYS[4] .. name
  local score = redis.call('ZSCORE', KEYS[1], name)
  table.insert(out, name)
  table.insert(out, score and math.floor(tonumber(score) / BASE) or 0)
  table.insert(out, redis.call('HGET', KEYS[3], name) or '')
  table.insert(out, redis.call('HGET', stats, 'served') or '0')
  table.insert(out, redis.call('HGET', stats, 'last_error') or '')
end
return out
"""
)
# _STATUS builds key names from a prefix: fine for one Redis server, which is what a pool
# uses (a Redis Cluster would need every key in KEYS; pools are small and status is rare).

# KEYS: load, accounts, registered. ARGV: the client's registration id, account names.
# Registers the accounts (idle, if new) and notes that the client's are all in the load set.
_REGISTER = LuaScript(
    """
for i = 2, #ARGV do
  redis.call('SADD', KEYS[2], ARGV[i])
  redis.call('ZADD', KEYS[1], 'NX', 0, ARGV[i])
end
redis.call('SADD', KEYS[3], ARGV[1])
return #ARGV - 1
"""
)


def redact_url(url: str) -> str:
    """``url`` without its password (for logs and errors)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


def _import_redis() -> Any:
    """The ``redis.asyncio`` module, or a clear error naming the extra."""
    try:
        import redis.asyncio as aioredis  # noqa: PLC0415 - optional, imported on first use
    except ImportError:
        raise HailuoConfigurationError(
            "pool_url needs the 'redis' package: pip install 'langchain-hailuo[redis]'."
        ) from None
    return aioredis


def _client_name() -> dict[str, Any]:
    """How the connections name themselves to Redis (``CLIENT SETINFO``), worked out once.

    redis-py 7.2+ otherwise looks its own version up in its package metadata for every
    new connection (about a millisecond each); it then also names this package as the
    driver on top of it, in ``CLIENT LIST``. Older versions take their defaults.
    """
    try:
        from redis.driver_info import DriverInfo  # noqa: PLC0415 - redis-py 7.2+
    except ImportError:
        return {}
    from langchain_hailuo import __version__  # noqa: PLC0415 - loaded already

    return {"driver_info": DriverInfo().add_upstream_driver("langchain-hailuo", __version__)}


def _warn_on_failure(done: asyncio.Future[Any]) -> None:
    """Log a background script that failed (its effect then lapses by itself)."""
    if not done.cancelled() and done.exception() is not None:
        logger.warning("Could not leave the pool's queue: %s", done.exception())


def _text(value: Any) -> str:
    """A Redis reply as text."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _cooldown(raw: Any, offset: float) -> Cooldown:
    """A stored cool-down, its end moved from Redis ms to this host's epoch seconds."""
    data = json.loads(_text(raw))
    until_ms = data.get("until_ms")
    return Cooldown(
        kind=data["kind"],
        seconds=data.get("seconds"),
        message=str(data.get("message", "")),
        token=data.get("token"),
        until=None if until_ms is None else until_ms / 1000.0 + offset,
    )


@dataclass
class _LoopState:
    """The Redis connections of one event loop: commands, and the ``freed`` listener.

    Attributes:
        key: The loop's random id: its waiters' ids start with ``<key>:``.
    """

    client: Redis
    pubsub: PubSub
    listener: asyncio.Task[None]
    key: str
    pipeline: ScriptPipeline
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    streams: int = 0
    """The answers this loop streams on the pool, as Redis last replied."""
    keep: int = 0
    """Up to how many streams this loop keeps its freed accounts for its own waiters."""
    notes: list[str] = field(default_factory=list)
    """Hand-overs this loop did itself, not told to Redis yet (the arguments of ``_NOTE``)."""
    note_timer: asyncio.TimerHandle | None = None


class RedisBackend:
    """Leases and cool-downs in Redis (see the module docstring).

    Attributes:
        url: The Redis URL (shown only through :func:`redact_url`).
        prefix: The key prefix (``hailuo-pool:<name>``).
        round_trips: Round trips to Redis by this process (for benchmarks): several
            scripts asked at once share one.
        script_calls: Scripts run in Redis for this process (for benchmarks).
        free_leases: Acquires that found a free account (the others queued; for benchmarks).
    """

    renews = True

    def __init__(
        self, url: str, *, name: str = "default", share_grace: float = SHARE_GRACE
    ) -> None:
        """Create the backend (no connection until first use).

        Args:
            url: ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``).
            name: The pool's name: pools of different names share nothing.
            share_grace: Seconds a process at its share of the pool leaves the free
                accounts to the other processes before it takes more.
        """
        self.share_grace = share_grace
        self._aioredis = _import_redis()
        from redis.exceptions import (  # noqa: PLC0415 - with redis.asyncio
            NoScriptError,
            ResponseError,
        )

        self._errors = RedisErrors(ResponseError, NoScriptError, self._aioredis.ConnectionError)
        self.url = url
        self.prefix = f"hailuo-pool:{name}"
        self._keys = [self._key(k) for k in ("load", "leases", "cool", "turn", "registered")]
        """The keys the scripts take first (each script a prefix of them)."""
        self._registration = new_lease_id()
        """This client's id in ``registered``: its accounts are all in the load set."""
        self._registered: set[str] = set()
        """Every account registered through this client (registered again if Redis lost them)."""
        self.waiters = Waiters()
        self.round_trips = 0
        self.script_calls = 0
        self.free_leases = 0
        self._limit = 1  # the largest per-account limit asked here (for giving grants back)
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._guard = threading.Lock()
        self._locks = LoopLocks()

    def __repr__(self) -> str:
        """The URL without its password."""
        return f"RedisBackend({redact_url(self.url)!r}, prefix={self.prefix!r})"

    # ------------------------------------------------------------------ keys

    def _key(self, part: str) -> str:
        return f"{self.prefix}:{part}"

    def _stats(self, account: str) -> str:
        return f"{self.prefix}:stats:{account}"

    # ------------------------------------------------------------------ connections

    async def _state(self) -> _LoopState:
        """This loop's connections, subscribed to ``freed`` before the first acquire."""
        state = self._states.get(asyncio.get_running_loop())
        return state if state is not None else await self._connect()

    async def _connect(self) -> _LoopState:
        """Connect this loop (once: calls that arrive meanwhile wait for the first)."""
        loop = asyncio.get_running_loop()
        async with self._locks.get():
            state = self._states.get(loop)
            if state is not None:
                return state
            # Commands wait for one of a few connections (no connection per waiting call).
            connections = self._aioredis.BlockingConnectionPool.from_url(
                self.url, max_connections=_MAX_CONNECTIONS, timeout=None, **_client_name()
            )
            client = self._aioredis.Redis.from_pool(connections)
            key = new_lease_id()
            pipeline = ScriptPipeline(client, self._errors, self._count_trip, senders=_SENDERS)
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(f"{self._key('freed')}:{key}")  # this loop's hand-overs
                await pipeline.open()  # the first burst of calls finds its connections ready
            except Exception as exc:  # noqa: BLE001 - any failure to connect means one thing
                await pipeline.aclose()
                await client.aclose()
                raise self._unreachable(exc) from None
            self.round_trips += 1
            listener = loop.create_task(self._listen(pubsub, loop, key))
            state = self._states[loop] = _LoopState(client, pubsub, listener, key, pipeline)
            return state

    async def _listen(self, pubsub: PubSub, loop: asyncio.AbstractEventLoop, key: str) -> None:
        """Hand the accounts released to this loop's waiters (by any process) to them."""
        mine = f"{key}:"
        try:
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                waiter, account, lease_id = _text(message["data"]).split(" ")
                if waiter.startswith(mine):
                    self._hand_over(waiter, account, lease_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # a lost connection: waiters still wake at their deadlines
            logger.warning("The pool's Redis subscription ended", exc_info=True)
            with self._guard:
                if self._states.get(loop) is not None:
                    del self._states[loop]

    def _hand_over(self, waiter: str, account: str, lease_id: str) -> None:
        """Wake the waiter a release chose.

        One that is no longer waiting (it left, or was served by this loop itself before
        Redis heard of it) passes the account to another waiting call of this loop that can
        use it, else gives it back.
        """
        if self.waiters.grant(waiter, account, lease_id):
            return
        other = self.waiters.grant_here(account, lease_id)
        state = self._states.get(asyncio.get_running_loop())
        if other is not None and state is not None:
            self._note(state, other, account, lease_id, served=False)
        else:
            self._give_back_later(account, lease_id)

    def _give_back_later(self, account: str, lease_id: str) -> None:
        """Release, in the background, a lease nobody will use."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._give_back(account, lease_id))
        state = self._states.get(loop)
        if state is not None:
            state.tasks.add(task)
            task.add_done_callback(state.tasks.discard)

    async def _give_back(self, account: str, lease_id: str) -> None:
        """Release a lease handed to a waiter that no longer wants it."""
        try:
            await self.release(
                account, lease_id, served=False, error=None, cooldown=None, limit=self._limit
            )
        except Exception:  # it then expires with its TTL
            logger.warning("Could not give back pool account %s", account, exc_info=True)

    async def _eval(
        self,
        script: LuaScript,
        keys: Sequence[str],
        args: Sequence[Any],
        *,
        orphan: Callable[[Any], None] | None = None,
    ) -> Any:
        """Run a script atomically in Redis (sharing a round trip with those asked meanwhile).

        ``orphan`` takes the reply when this call is cancelled after the script was sent.
        """
        state = await self._state()
        if state.notes:  # in the same round trip, ahead of this script
            self._send_notes(state)
        self.script_calls += 1
        try:
            return await state.pipeline.call(script, keys, args, orphan=orphan)
        except (self._aioredis.ConnectionError, self._aioredis.TimeoutError) as exc:
            raise self._unreachable(exc) from None

    def _count_trip(self) -> None:
        self.round_trips += 1

    def _unreachable(self, exc: BaseException) -> HailuoPoolUnavailableError:
        """The typed error for a Redis that cannot be reached (its URL without password)."""
        return HailuoPoolUnavailableError(
            f"Cannot reach the pool's Redis at {redact_url(self.url)}: "
            f"{type(exc).__name__}: {exc}. Start Redis or fix pool_url; nothing was sent."
        )

    # ------------------------------------------------------------------ Backend

    async def try_acquire(
        self,
        candidates: Sequence[Candidate],
        *,
        limit: int,
        ttl: float,
        ticket: Ticket | None = None,
        within: float | None = None,
    ) -> Attempt:
        """Lease the least-loaded free candidate in one atomic script (else queue ``ticket``)."""
        self._limit = max(self._limit, limit)
        state = await self._state()
        if ticket is not None and ticket.key is None:
            self.waiters.name(ticket, f"{state.key}:{new_lease_id()}")
        waiter = "" if ticket is None or ticket.key is None else ticket.key
        keys = self._keys
        spec = "".join(f"\n{c.name}\t{c.token or ''}" for c in candidates)
        lease_id = f"{state.key}:{new_lease_id()}"  # its loop is known to Redis
        wait_ms = -1 if within is None else int(within * 1000)
        new_chat = "1" if len(candidates) > 1 else "0"  # a chat's own account is never held
        grace = int(self.share_grace * 1000)
        args = [limit, int(ttl * 1000), lease_id, spec, waiter, wait_ms, new_chat, grace]
        args += [len(candidates), self._registration]

        def orphaned(reply: Any) -> None:  # the caller was cancelled: undo what it got
            if _text(reply[1]):
                self._give_back_later(_text(reply[1]), lease_id)

        if ticket is not None and waiter:
            ticket.queued = True  # until the reply says otherwise: a cancelled call dequeues
        for _ in range(_REGISTER_TRIES):
            sent = time.time()
            reply = await self._eval(_ACQUIRE, keys, args, orphan=orphaned)
            now_ms, name, busy, wake_ms, cooling = reply[:5]
            if int(busy) >= 0:
                state.streams, state.keep = int(reply[5]), int(reply[6])
                break
            # Redis lost the accounts' registration (and everything else): nothing was done.
            await self.register(sorted(self._registered | {c.name for c in candidates}))
        else:
            raise HailuoPoolUnavailableError(
                f"The pool's Redis at {redact_url(self.url)} lost its data again each time the "
                "accounts were registered (is something flushing it?); nothing was sent."
            )
        offset = sent - int(now_ms) / 1000.0  # Redis clock -> this host's clock
        if ticket is not None:
            ticket.queued = not _text(name)
        if _text(name):
            self.free_leases += 1
            return Attempt(account=_text(name), lease_id=lease_id)
        pairs = [_text(x) for x in cooling]
        cools = {pairs[i]: _cooldown(pairs[i + 1], offset) for i in range(0, len(pairs), 2)}
        wake = None if int(wake_ms) < 0 else int(wake_ms) / 1000.0 + offset
        return Attempt(busy=bool(int(busy)), wake_at=wake, cooling=cools)

    async def renew(self, account: str, lease_id: str, *, ttl: float) -> bool:
        """Push the lease's expiry on (``False`` when it had already expired)."""
        keys = self._keys[:2]
        return bool(await self._eval(_RENEW, keys, [f"{account} {lease_id}", int(ttl * 1000)]))

    async def release(
        self,
        account: str,
        lease_id: str,
        *,
        served: bool,
        error: str | None,
        cooldown: Cooldown | None,
        limit: int = 1,
        lost: bool = False,
    ) -> None:
        """End the lease, record the outcome, hand the account to a waiter (see ``_RELEASE``).

        An answer served on a loop that streams no more than its part of the pool (the
        accounts' streams divided by the loops listening, rounded down) hands its lease
        straight to the loop's oldest waiting call that can use the account: the lease
        stays this loop's in Redis, so there is nothing to ask of it now. Redis is told
        later, with the next script of the loop (or within ``NOTE_DELAY``): the waiter
        leaves its queue, and the account counts the answer. A loop streaming more than its
        part gives its accounts back through Redis, which hands them to the loop streaming
        the fewest, so every loop comes to its part.
        """
        state = await self._state()
        kept = served and error is None and cooldown is None and not lost
        if kept and state.streams <= state.keep:
            waiter = self.waiters.grant_here(account, lease_id)
            if waiter is not None:
                self._note(state, waiter, account, lease_id, served=True)
                return
        keys = [*self._keys[:3], self._stats(account), self._key("freed")]
        cool = ""
        if cooldown is not None:
            cool = json.dumps(
                {
                    "kind": cooldown.kind,
                    "seconds": cooldown.seconds,
                    "message": cooldown.message,
                    "token": cooldown.token,
                }
            )
        args = [
            lease_id,
            account,
            int(served),
            error or "",
            cool,
            state.key,
            limit,
            new_lease_id(),
        ]

        def hand_over(reply: Any) -> None:
            state.streams = int(reply[3])
            waiter = _text(reply[1])
            if waiter.startswith(f"{state.key}:"):  # this loop's: woken here, no Redis hop
                self._hand_over(waiter, account, _text(reply[2]))

        # A caller cancelled meanwhile still hands the account over (``orphan``).
        hand_over(await self._eval(_RELEASE, keys, args, orphan=hand_over))

    def _note(
        self, state: _LoopState, waiter: Ticket, account: str, lease_id: str, *, served: bool
    ) -> None:
        """Remember a hand-over this loop did itself, to tell Redis soon (``_NOTE``).

        Soon enough for the lease, renewed for its new holder only then: within a tenth of
        its TTL at the latest.
        """
        ttl = DEFAULT_LEASE_TTL if waiter.ttl is None else waiter.ttl
        served_flag = "1" if served else "0"
        lease = f"{account} {lease_id}"
        state.notes += (waiter.key or "", account, served_flag, lease, str(int(ttl * 1000)))
        if state.note_timer is None:
            state.note_timer = asyncio.get_running_loop().call_later(
                min(NOTE_DELAY, ttl / 10), self._send_notes, state
            )

    def _send_notes(self, state: _LoopState) -> None:
        """Tell Redis the hand-overs this loop did itself (in the next batch of scripts)."""
        if state.note_timer is not None:
            state.note_timer.cancel()
            state.note_timer = None
        if not state.notes:
            return
        notes, state.notes = state.notes, []
        self.script_calls += 1
        sent = state.pipeline.call(_NOTE, self._keys[:2], notes)
        sent.add_done_callback(_warn_on_failure)

    def leave(self, ticket: Ticket) -> None:
        """Drop the ticket's place in the queue; give back a lease handed to it unused.

        Both go out in the background. Should the drop reach Redis before the acquire that
        queued the ticket (another connection), the place lapses, or a grant to it is given
        back when it arrives.
        """
        ticket.leave(pass_on=False)
        grant = ticket.take_grant()
        if grant is not None:
            self._give_back_later(*grant)
        if not ticket.queued or ticket.key is None:
            return
        ticket.queued = False
        state = self._states.get(asyncio.get_running_loop())
        if state is None:  # the loop's connections are gone: the place lapses at its deadline
            return
        self.script_calls += 1
        left = state.pipeline.call(_DEQUEUE, self._keys[:1], [ticket.key])
        left.add_done_callback(_warn_on_failure)

    async def status(self, accounts: Sequence[str]) -> list[AccountStatus]:
        """The accounts given and every account registered by anyone, in one script."""
        keys = [*self._keys[:3], self._stats(""), self._key("accounts")]
        sent = time.time()
        reply = await self._eval(_STATUS, keys, accounts)
        offset = sent - int(reply[0]) / 1000.0
        now = time.time()
        out: list[AccountStatus] = []
        for i in range(1, len(reply), 5):
            name, streams, raw_cool, served, last_error = reply[i : i + 5]
            cool = _cooldown(raw_cool, offset) if _text(raw_cool) else None
            out.append(
                account_status(
                    _text(name),
                    max(0, int(streams)),
                    cool,
                    int(_text(served)),
                    _text(last_error) or None,
                    now,
                )
            )
        return out

    async def register(self, accounts: Sequence[str]) -> None:
        """Add the accounts to the shared registry and the load set (one script)."""
        if accounts:
            self._registered.update(accounts)
            keys = [self._keys[0], self._key("accounts"), self._keys[4]]
            await self._eval(_REGISTER, keys, [self._registration, *accounts])

    async def aclose(self) -> None:
        """Close this loop's connections."""
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            return
        while state.tasks:  # give-backs first: they use this loop's connections
            await asyncio.gather(*state.tasks, return_exceptions=True)
        self._send_notes(state)
        await state.pipeline.aclose()
        with self._guard:
            if self._states.get(loop) is state:
                del self._states[loop]
        state.listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await state.listener
        with contextlib.suppress(Exception):
            await state.pubsub.aclose()
        with contextlib.suppress(Exception):
            await state.client.aclose()


_BACKENDS: dict[tuple[str, str], RedisBackend] = {}
_BACKENDS_GUARD = threading.Lock()


def redis_backend(url: str, name: str = "default") -> RedisBackend:
    """The process's backend for ``(url, name)`` (one per pool, shared by its models)."""
    key = (url, name)
    with _BACKENDS_GUARD:
        backend = _BACKENDS.get(key)
        if backend is None:
            backend = _BACKENDS[key] = RedisBackend(url, name=name)
        return backend
