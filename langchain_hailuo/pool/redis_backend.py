"""The Redis backend: leases and cool-downs shared by every process and host of a pool.

Layout (``<p>`` is ``hailuo-pool:<name>``):

- ``<p>:leases:<account>``: a sorted set of lease ids scored by their expiry (ms, Redis
  clock). A lease lives ``lease_ttl`` seconds unless renewed; the scheduler renews it every
  third of that while the answer streams, so a worker that dies frees its account within
  the TTL, and a live one never loses it.
- ``<p>:cool``: a hash account -> cool-down (JSON, its end in Redis ms).
- ``<p>:stats:<account>``: a hash of ``served``, ``last_error``.
- ``<p>:accounts``: the set of accounts any process registered (for ``hailuo pool status``).
- channel ``<p>:freed``: ``<process id> <account>`` is published when a lease ends; the
  releasing process wakes its own waiter directly, the others on the message.

Acquire and release are Lua scripts: one round trip each, atomic, and timed by the Redis
server's clock (``TIME``), so hosts with skewed clocks still agree on expiries. A waiting
call is woken by the ``freed`` message (one subscriber connection per process and event
loop), or at the earliest cool-down end / lease expiry the failed acquire reported; it
never polls.

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from langchain_hailuo.errors import HailuoConfigurationError
from langchain_hailuo.pool.backend import (
    AccountStatus,
    Attempt,
    Candidate,
    LoopLocks,
    Waiters,
    account_status,
    new_lease_id,
)
from langchain_hailuo.pool.health import Cooldown

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

__all__ = ["RedisBackend", "redact_url", "redis_backend"]

logger = logging.getLogger(__name__)

_MAX_CONNECTIONS = 16
"""Redis connections per process and event loop (one is the ``freed`` subscription)."""

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local lease = ARGV[3]
local best, best_load = 0, 0
local busy = 0
local wake = -1
local cooling = {}
for i = 2, #KEYS do
  local name = ARGV[2 + 2 * (i - 1)]
  local token = ARGV[3 + 2 * (i - 1)]
  local blocked = false
  local raw = redis.call('HGET', KEYS[1], name)
  if raw then
    local cool = cjson.decode(raw)
    if cool['kind'] == 'auth' then
      blocked = (token == '' or token == cool['token'])
    else
      blocked = (cool['until_ms'] or 0) > now
      if blocked and (wake < 0 or cool['until_ms'] < wake) then wake = cool['until_ms'] end
    end
    if blocked then
      table.insert(cooling, name)
      table.insert(cooling, raw)
    else
      redis.call('HDEL', KEYS[1], name)
    end
  end
  if not blocked then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    local load = redis.call('ZCARD', KEYS[i])
    if load >= limit then
      busy = 1
      local first = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
      local expiry = tonumber(first[2])
      if wake < 0 or expiry < wake then wake = expiry end
    elseif best == 0 or load < best_load then
      best, best_load = i, load
    end
  end
end
if best > 0 then
  redis.call('ZADD', KEYS[best], now + ttl, lease)
  redis.call('PEXPIRE', KEYS[best], ttl * 4)
  return {now, best - 2, 0, -1, {}}
end
return {now, -1, busy, wake, cooling}
"""

_RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREM', KEYS[1], ARGV[1])
if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[2], 'served', 1) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], 'last_error', ARGV[4]) end
if ARGV[5] ~= '' then
  local cool = cjson.decode(ARGV[5])
  if cool['seconds'] ~= cjson.null and cool['seconds'] ~= nil then
    cool['until_ms'] = now + math.floor(cool['seconds'] * 1000)
  end
  redis.call('HSET', KEYS[3], ARGV[2], cjson.encode(cool))
end
redis.call('PUBLISH', KEYS[4], ARGV[6] .. ' ' .. ARGV[2])
return now
"""

_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not held or tonumber(held) <= now then return 0 end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl * 4)
return 1
"""

_STATUS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {now}
for i = 1, #ARGV do
  local name = ARGV[i]
  local leases = KEYS[2] .. name
  local stats = KEYS[3] .. name
  table.insert(out, redis.call('ZCOUNT', leases, '(' .. now, '+inf'))
  table.insert(out, redis.call('HGET', KEYS[1], name) or '')
  table.insert(out, redis.call('HGET', stats, 'served') or '0')
  table.insert(out, redis.call('HGET', stats, 'last_error') or '')
end
return out
"""
# _STATUS builds key names from a prefix: fine for one Redis server, which is what a pool
# uses (a Redis Cluster would need every key in KEYS; pools are small and status is rare).


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
    """The Redis connections of one event loop: commands, and the ``freed`` listener."""

    client: Redis
    pubsub: PubSub
    listener: asyncio.Task[None]
    scripts: dict[str, Any] = field(default_factory=dict)


class RedisBackend:
    """Leases and cool-downs in Redis (see the module docstring).

    Attributes:
        url: The Redis URL (shown only through :func:`redact_url`).
        prefix: The key prefix (``hailuo-pool:<name>``).
        round_trips: Commands sent to Redis by this process (for benchmarks).
    """

    renews = True

    def __init__(self, url: str, *, name: str = "default") -> None:
        """Create the backend (no connection until first use).

        Args:
            url: ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``).
            name: The pool's name: pools of different names share nothing.
        """
        self._aioredis = _import_redis()
        self.url = url
        self.prefix = f"hailuo-pool:{name}"
        self.waiters = Waiters()
        self.round_trips = 0
        self._origin = new_lease_id()  # tells this process's ``freed`` messages from others
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._guard = threading.Lock()
        self._locks = LoopLocks()

    def __repr__(self) -> str:
        """The URL without its password."""
        return f"RedisBackend({redact_url(self.url)!r}, prefix={self.prefix!r})"

    # ------------------------------------------------------------------ keys

    def _leases(self, account: str) -> str:
        return f"{self.prefix}:leases:{account}"

    def _stats(self, account: str) -> str:
        return f"{self.prefix}:stats:{account}"

    @property
    def _cool(self) -> str:
        return f"{self.prefix}:cool"

    @property
    def _channel(self) -> str:
        return f"{self.prefix}:freed"

    @property
    def _registry(self) -> str:
        return f"{self.prefix}:accounts"

    # ------------------------------------------------------------------ connections

    async def _state(self) -> _LoopState:
        """This loop's connections, subscribed to ``freed`` before the first acquire."""
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is not None:
            return state
        async with self._locks.get():
            state = self._states.get(loop)
            if state is not None:
                return state
            # Commands wait for one of a few connections (no connection per waiting call).
            connections = self._aioredis.BlockingConnectionPool.from_url(
                self.url, max_connections=_MAX_CONNECTIONS, timeout=None
            )
            client = self._aioredis.Redis.from_pool(connections)
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self._channel)
            except Exception as exc:  # noqa: BLE001 - any failure to connect means one thing
                await client.aclose()
                raise HailuoConfigurationError(
                    f"Cannot reach the pool's Redis at {redact_url(self.url)}: "
                    f"{type(exc).__name__}: {exc}. Start Redis or fix pool_url."
                ) from None
            self.round_trips += 1
            listener = loop.create_task(self._listen(pubsub, loop))
            state = self._states[loop] = _LoopState(client, pubsub, listener)
            return state

    async def _listen(self, pubsub: PubSub, loop: asyncio.AbstractEventLoop) -> None:
        """Wake this loop's waiters as accounts are freed (anywhere)."""
        try:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    origin, _, account = _text(message["data"]).partition(" ")
                    if origin != self._origin:  # this process's own releases woke a waiter already
                        self.waiters.freed(account, loop)
        except asyncio.CancelledError:
            raise
        except Exception:  # a lost connection: waiters still wake at their deadlines
            logger.warning("The pool's Redis subscription ended", exc_info=True)
            with self._guard:
                if self._states.get(loop) is not None:
                    del self._states[loop]

    async def _eval(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a script in one round trip (EVALSHA; the script is loaded once per server)."""
        state = await self._state()
        runner = state.scripts.get(script)
        if runner is None:
            runner = state.scripts[script] = state.client.register_script(script)
        self.round_trips += 1
        return await runner(keys=list(keys), args=list(args))

    # ------------------------------------------------------------------ Backend

    async def try_acquire(
        self, candidates: Sequence[Candidate], *, limit: int, ttl: float
    ) -> Attempt:
        """Lease the least-loaded free candidate in one atomic script."""
        keys = [self._cool, *(self._leases(c.name) for c in candidates)]
        args: list[Any] = [limit, int(ttl * 1000), new_lease_id()]
        for candidate in candidates:
            args += [candidate.name, candidate.token or ""]
        sent = time.time()
        now_ms, index, busy, wake_ms, cooling = await self._eval(_ACQUIRE, keys, args)
        offset = sent - int(now_ms) / 1000.0  # Redis clock -> this host's clock
        if int(index) >= 0:
            return Attempt(account=candidates[int(index)].name, lease_id=args[2])
        pairs = [_text(x) for x in cooling]
        cools = {pairs[i]: _cooldown(pairs[i + 1], offset) for i in range(0, len(pairs), 2)}
        wake = None if int(wake_ms) < 0 else int(wake_ms) / 1000.0 + offset
        return Attempt(busy=bool(int(busy)), wake_at=wake, cooling=cools)

    async def renew(self, account: str, lease_id: str, *, ttl: float) -> bool:
        """Push the lease's expiry on (``False`` when it had already expired)."""
        return bool(await self._eval(_RENEW, [self._leases(account)], [lease_id, int(ttl * 1000)]))

    async def release(
        self,
        account: str,
        lease_id: str,
        *,
        served: bool,
        error: str | None,
        cooldown: Cooldown | None,
    ) -> None:
        """End the lease, record the outcome and publish ``freed`` in one script."""
        keys = [self._leases(account), self._stats(account), self._cool, self._channel]
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
        args = [lease_id, account, int(served), error or "", cool, self._origin]
        await self._eval(_RELEASE, keys, args)
        self.waiters.freed(account)  # a waiter of this process takes over without a Redis hop

    async def status(self, accounts: Sequence[str]) -> list[AccountStatus]:
        """The accounts given and every account registered by anyone, in one script."""
        state = await self._state()
        self.round_trips += 1
        known = sorted({_text(n) for n in await state.client.smembers(self._registry)})
        names = list(accounts) + [n for n in known if n not in accounts]
        keys = [self._cool, f"{self.prefix}:leases:", f"{self.prefix}:stats:"]
        sent = time.time()
        reply = await self._eval(_STATUS, keys, names)
        offset = sent - int(reply[0]) / 1000.0
        now = time.time()
        out: list[AccountStatus] = []
        for i, name in enumerate(names):
            streams, raw_cool, served, last_error = reply[1 + 4 * i : 5 + 4 * i]
            cool = _cooldown(raw_cool, offset) if _text(raw_cool) else None
            out.append(
                account_status(
                    name, int(streams), cool, int(_text(served)), _text(last_error) or None, now
                )
            )
        return out

    async def register(self, accounts: Sequence[str]) -> None:
        """Add the accounts to the shared registry (one round trip)."""
        if accounts:
            state = await self._state()
            self.round_trips += 1
            await state.client.sadd(self._registry, *accounts)

    async def aclose(self) -> None:
        """Close this loop's connections."""
        loop = asyncio.get_running_loop()
        with self._guard:
            state = self._states.pop(loop, None)
        if state is None:
            return
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
