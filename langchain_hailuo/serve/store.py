"""Where ``hailuo serve`` remembers which server chat a resent history continues.

:class:`ConversationStore` is the (async) interface; :class:`MemoryStore` the bounded,
expiring in-process default; :class:`RedisStore` keeps the same bounds in Redis so replicas
behind one address find each other's chats (used with a pool URL: :func:`open_store`).
"""

from __future__ import annotations

import json
import time
import typing
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from langchain_hailuo._config import redact_url
from langchain_hailuo.serve.status import ApiError

__all__ = ["ConversationStore", "MemoryStore", "RedisStore", "open_store"]

DEFAULT_ENTRIES = 10_000
"""Conversations remembered by default."""

DEFAULT_TTL = 24 * 3600.0
"""Seconds a conversation is remembered by default after its last turn."""


class ConversationStore(typing.Protocol):
    """Key -> the answer metadata a continued call needs (chat id, account, hashes)."""

    async def get(self, key: str) -> dict[str, Any] | None:
        """The metadata stored under ``key``, or ``None`` (unknown or expired)."""
        ...

    async def put(self, key: str, value: Mapping[str, Any]) -> None:
        """Store ``value`` under ``key`` (replacing an older one)."""
        ...

    async def aclose(self) -> None:
        """Release the store's connections (a no-op for the in-process store)."""
        ...


class MemoryStore:
    """A bounded in-process :class:`ConversationStore`: least recently used out, TTL.

    Args:
        max_entries: At most this many histories are remembered.
        ttl: Seconds an entry lives after it was last stored or found.
        clock: The monotonic clock (tests pass a fake one).

    Raises:
        ValueError: ``max_entries`` below 1 or ``ttl`` not positive.
    """

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_ENTRIES,
        ttl: float = DEFAULT_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create an empty store."""
        _check_bounds(max_entries, ttl)
        self.max_entries = max_entries
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    def __len__(self) -> int:
        """How many entries are held (expired ones included until they are looked at)."""
        return len(self._entries)

    async def get(self, key: str) -> dict[str, Any] | None:
        """The metadata under ``key`` (a copy), or ``None``; a hit renews the entry's TTL."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self._clock()
        expires, value = entry
        if expires <= now:
            del self._entries[key]
            return None
        self._entries[key] = (now + self.ttl, value)
        self._entries.move_to_end(key)
        return dict(value)

    async def put(self, key: str, value: Mapping[str, Any]) -> None:
        """Store a copy of ``value`` under ``key``; drop the oldest entries beyond the bound."""
        self._entries[key] = (self._clock() + self.ttl, dict(value))
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def aclose(self) -> None:
        """Nothing to release."""


def _check_bounds(max_entries: int, ttl: float) -> None:
    """Refuse a store that could hold nothing or forget at once."""
    if max_entries < 1:
        raise ValueError(f"max_entries must be at least 1; got {max_entries}.")
    if ttl <= 0:
        raise ValueError(f"ttl must be positive; got {ttl}.")


# KEYS: entry key, index key, use counter. ARGV: value, ttl ms, max entries. The index (a
# sorted set: key -> the use counter's value) orders entries by last use; beyond the bound
# the least recently used are dropped with their entries. Members whose entry expired are
# the least recently used, so they go first; the index expires when nothing is stored for a
# TTL.
_PUT = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local used = redis.call('HINCRBY', KEYS[3], 'n', 1)
redis.call('ZADD', KEYS[2], used, KEYS[1])
local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if over > 0 then
  local old = redis.call('ZPOPMIN', KEYS[2], over)
  for i = 1, #old, 2 do redis.call('DEL', old[i]) end
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return 1
"""

# KEYS: entry key, index key, use counter. ARGV: ttl ms. A hit renews the entry's TTL and
# its place in the index.
_GET = """
local value = redis.call('GET', KEYS[1])
if value then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  local used = redis.call('HINCRBY', KEYS[3], 'n', 1)
  redis.call('ZADD', KEYS[2], 'XX', used, KEYS[1])
end
return value
"""


class RedisStore:
    """A :class:`ConversationStore` in Redis, shared by every server using the same URL.

    Entries are JSON under ``<prefix>:<key>`` with a TTL renewed on every hit; a sorted set
    keeps the ``max_entries`` most recently used. One round trip (a script) per call; the
    connection opens on first use (the ``langchain-hailuo[redis]`` extra). A Redis failure
    during a call is an ``ApiError`` 503 (the server's trouble, not the caller's).

    Args:
        url: ``redis://[:password@]host:port/db`` (never logged with its password).
        max_entries: At most this many histories are remembered.
        ttl: Seconds an entry lives after it was last stored or found.
        name: Servers of the same name share conversations (the key prefix).

    Raises:
        ValueError: ``max_entries`` below 1 or ``ttl`` not positive.
        HailuoConfigurationError: The ``redis`` package is not installed.
    """

    def __init__(
        self,
        url: str,
        *,
        max_entries: int = DEFAULT_ENTRIES,
        ttl: float = DEFAULT_TTL,
        name: str = "default",
    ) -> None:
        """Create the store; it connects on first use."""
        from langchain_hailuo.pool.redis_backend import (  # noqa: PLC0415 - optional extra
            _import_redis,
        )

        _check_bounds(max_entries, ttl)
        self._aioredis = _import_redis()
        self.url = url
        self.max_entries = max_entries
        self.ttl = ttl
        self.prefix = f"hailuo-serve:{name}:chat"
        self._index = f"hailuo-serve:{name}:index"
        self._client: Any = None
        self._scripts: dict[str, Any] = {}

    def __repr__(self) -> str:
        """The URL without its password."""
        return f"RedisStore({redact_url(self.url)!r}, prefix={self.prefix!r})"

    async def _run(self, script: str, key: str, args: list[Any]) -> Any:
        """Run one of the scripts on ``key`` (EVALSHA; loaded once per server)."""
        if self._client is None:
            self._client = self._aioredis.Redis.from_url(self.url)
        runner = self._scripts.get(script)
        if runner is None:
            runner = self._scripts[script] = self._client.register_script(script)
        try:
            keys = [f"{self.prefix}:{key}", self._index, f"{self._index}:used"]
            return await runner(keys=keys, args=args)
        except self._aioredis.RedisError as exc:
            raise ApiError(
                503,
                "overloaded",
                f"The conversation store (Redis at {redact_url(self.url)}) failed: "
                f"{type(exc).__name__}. The operator must start Redis or fix the pool URL.",
                retry_after=1.0,
                retry=True,  # looked up before the message is sent (a failed put is logged)
            ) from None

    async def get(self, key: str) -> dict[str, Any] | None:
        """The metadata under ``key``, or ``None``; a hit renews the entry's TTL."""
        raw = await self._run(_GET, key, [int(self.ttl * 1000)])
        if raw is None:
            return None
        value = json.loads(raw)
        return value if isinstance(value, dict) else None

    async def put(self, key: str, value: Mapping[str, Any]) -> None:
        """Store ``value`` under ``key``; drop the least recently used beyond the bound."""
        text = json.dumps(dict(value), separators=(",", ":"))
        await self._run(_PUT, key, [text, int(self.ttl * 1000), self.max_entries])

    async def aclose(self) -> None:
        """Close the connection (a later call opens a new one)."""
        client, self._client = self._client, None
        self._scripts.clear()
        if client is not None:
            await client.aclose()


def open_store(
    pool_url: str | None, *, max_entries: int = DEFAULT_ENTRIES, ttl: float = DEFAULT_TTL
) -> ConversationStore:
    """The conversation store: a ``RedisStore`` on ``pool_url``, else a ``MemoryStore``."""
    if pool_url:
        return RedisStore(pool_url, max_entries=max_entries, ttl=ttl)
    return MemoryStore(max_entries=max_entries, ttl=ttl)
