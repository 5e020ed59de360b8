"""Where ``hailuo serve`` remembers which server chat a resent history continues.

OpenAI and Anthropic clients resend the whole history on every call and keep none of
``ChatHailuo``'s ``response_metadata``. After each answer the server stores that metadata
under a key made from the history *including the answer* (see
:mod:`langchain_hailuo.serve.core`); the next call with that history finds it again.

:class:`ConversationStore` is the interface (async, so a shared store such as Redis can
implement it for replicas behind one address); :class:`MemoryStore` is the bounded,
expiring in-process one used by default.
"""

from __future__ import annotations

import time
import typing
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ConversationStore", "MemoryStore"]


class ConversationStore(typing.Protocol):
    """Key -> the answer metadata a continued call needs (chat id, account, hashes)."""

    async def get(self, key: str) -> dict[str, Any] | None:
        """The metadata stored under ``key``, or ``None`` (unknown or expired)."""
        ...

    async def put(self, key: str, value: Mapping[str, Any]) -> None:
        """Store ``value`` under ``key`` (replacing an older one)."""
        ...


class MemoryStore:
    """A bounded in-process :class:`ConversationStore`: least recently used out, TTL.

    Args:
        max_entries: At most this many histories are remembered (the least recently used
            one is dropped first).
        ttl: Seconds an entry lives after it was last stored or found.
        clock: The monotonic clock (tests pass a fake one).

    Raises:
        ValueError: ``max_entries`` below 1 or ``ttl`` not positive.
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        ttl: float = 24 * 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create the store (see the class docstring)."""
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1; got {max_entries}.")
        if ttl <= 0:
            raise ValueError(f"ttl must be positive; got {ttl}.")
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
