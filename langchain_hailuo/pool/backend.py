"""Where a pool keeps its leases and cool-downs: this process's memory (here), or Redis.

A backend leases the least-loaded healthy candidate under its limit in one atomic step
(``try_acquire``), or says why none is free and when to look again. A call that found
none sleeps on a :class:`Ticket`, entered *before* it tries (so a release between its failed
try and its sleep still wakes it), until a release wakes it (in process) or hands it a lease
(Redis, :mod:`langchain_hailuo.pool.redis_backend`), or its own timer runs out.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from langchain_hailuo.pool.health import Cooldown, CooldownKind

__all__ = [
    "DEFAULT_LEASE_TTL",
    "AccountStatus",
    "Attempt",
    "Candidate",
    "InProcessBackend",
    "LoopLocks",
    "Ticket",
    "Waiters",
    "account_status",
    "new_id",
]

DEFAULT_LEASE_TTL = 30.0
"""Seconds a lease outlives its last renewal (a dead worker frees its account by then)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """An account a call may use, with the hash of the token this process holds for it."""

    name: str
    token: str | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try: the account leased, else whether one is busy, when to look again, who rests."""

    account: str | None = None
    lease_id: str | None = None
    busy: bool = False  # a candidate streams at its limit (it frees when an answer ends)
    wake_at: float | None = None  # epoch seconds of the first rest end or lease expiry
    cooling: dict[str, Cooldown] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AccountStatus:
    """One account in :meth:`AccountPool.status`.

    Attributes:
        account: The fingerprint.
        streams: Answers streaming on it now (across everything sharing the pool).
        cooling_until: Epoch seconds when its cool-down ends (``None``: not cooling, or
            cooling until logged in again: see ``cooling``).
        cooling: Why it rests (``quota``, ``rate_limit``, ``auth``) or ``None``.
        last_error: The last failure's message (no secret), if any.
        served: Answers it finished.
        credits: The plan and credits left at this process's last reading (§7.3), e.g.
            ``plan Free, 1000.00 credits left``; ``None`` when never read here.
    """

    account: str
    streams: int = 0
    cooling_until: float | None = None
    cooling: CooldownKind | None = None
    last_error: str | None = None
    served: int = 0
    credits: str | None = None


def account_status(  # noqa: PLR0917 - the fields of one status line
    name: str, streams: int, cooldown: Cooldown | None, served: int, error: str | None, now: float
) -> AccountStatus:
    """One account's status (a cool-down that is over shows as none)."""
    rest = cooldown if cooldown is not None and cooldown.blocks(cooldown.token, now) else None
    until, kind = (None, None) if rest is None else (rest.until, rest.kind)
    return AccountStatus(name, streams, until, kind, error, served)


def new_id() -> str:
    """A unique lease or waiter id (64 random bits: never derived from a token)."""
    return os.urandom(8).hex()


class LoopLocks:
    """One ``asyncio.Lock`` per event loop (a pool may be used from several loops)."""

    def __init__(self) -> None:
        """No lock until a loop asks."""
        self._guard = threading.Lock()
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> asyncio.Lock:
        """The running loop's lock."""
        with self._guard:
            return self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())


class Ticket:
    """A call waiting for one of ``names`` on its event loop."""

    def __init__(self, names: frozenset[str]) -> None:
        """A ticket of the running loop (see :meth:`Waiters.enter`)."""
        self.names = names
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[str] = self.loop.create_future()
        self.key: str | None = None  # the Redis backend's id of it
        self.queued = False  # whether Redis holds it in its queue
        self.grant: tuple[str, str] | None = None  # (account, lease id) handed to it
        self.woken_for: str | None = None
        self.since = time.monotonic()

    def wake(self, name: str, grant: tuple[str, str] | None = None) -> bool:
        """Wake it on its loop, for ``name`` (under the lock); ``False``: its loop closed."""
        # Marked before the wake-up is scheduled: the waiter, resumed on another thread,
        # must find the mark (and the grant) already there when it clears them.
        self.woken_for, self.grant = name, grant
        try:
            if self.loop is asyncio._get_running_loop():
                self._resolve(name)
            else:
                self.loop.call_soon_threadsafe(self._resolve, name)
        except RuntimeError:  # its loop is closed
            self.woken_for, self.grant = None, None
            return False
        return True

    def _resolve(self, name: str) -> None:
        """End the wait on its loop (``""``: its own timer)."""
        if not self.future.done():
            self.future.set_result(name)

    async def wait(self, seconds: float | None) -> tuple[str, str] | None:
        """Sleep until woken or ``seconds`` pass; the lease handed over meanwhile, if any."""
        if not self.future.done():
            timer = None if seconds is None else self.loop.call_later(seconds, self._resolve, "")
            try:
                await self.future
            finally:
                if timer is not None:
                    timer.cancel()
        self.future = self.loop.create_future()
        self.woken_for, grant, self.grant = None, self.grant, None
        return grant


class Waiters:
    """The calls of this process waiting for an account, in arrival order (thread-safe)."""

    def __init__(self) -> None:
        """An empty queue."""
        self._lock = threading.Lock()
        self._tickets: list[Ticket] = []

    def enter(self, names: Collection[str]) -> Ticket:
        """Queue a ticket for ``names`` (before trying, so no wake-up is lost)."""
        ticket = Ticket(frozenset(names))
        with self._lock:
            self._tickets.append(ticket)
        return ticket

    def remove(self, ticket: Ticket) -> tuple[str | None, tuple[str, str] | None]:
        """Take a ticket out: the account it was woken for, and a grant it did not take."""
        with self._lock:
            if ticket in self._tickets:
                self._tickets.remove(ticket)
            grant, ticket.grant = ticket.grant, None
            return ticket.woken_for, grant

    def freed(self, name: str) -> None:
        """Wake the oldest ticket not woken yet that can use ``name``."""
        with self._lock:
            any(t.wake(name) for t in self._tickets if not t.woken_for and name in t.names)

    def hand(self, key: str, account: str, lease_id: str) -> bool:
        """Hand a lease to ticket ``key``, else to this loop's oldest that can use it."""
        loop, grant = asyncio.get_running_loop(), (account, lease_id)
        with self._lock:
            for ticket in self._tickets:
                if ticket.key == key and ticket.grant is None:
                    ticket.queued = False  # the backend took it out of its queue
                    return ticket.wake(account, grant)
            here = [t for t in self._tickets if t.loop is loop and not t.grant and not t.woken_for]
            return any(t.wake(account, grant) for t in here if account in t.names)

    def __len__(self) -> int:
        """Tickets waiting now."""
        with self._lock:
            return len(self._tickets)


@dataclass
class _Account:
    """One account's state in :class:`InProcessBackend`."""

    leases: set[str] = field(default_factory=set)
    cooldown: Cooldown | None = None
    served: int = 0
    last_error: str | None = None


class InProcessBackend:
    """Leases and cool-downs in this process's memory (the default: needs nothing).

    One instance serves every pool of the process (a single-account ``ChatHailuo`` is a
    pool of one), so two models built on the same account never stream more than
    ``max_concurrency`` answers on it together, from any thread or event loop. A release
    wakes the oldest waiter that can use the account. Leases end with the call (or the
    process).
    """

    renews = False

    def __init__(self) -> None:
        """An empty backend."""
        self._lock = threading.Lock()
        self._accounts: dict[str, _Account] = {}
        self.waiters = Waiters()

    def _account(self, name: str) -> _Account:
        """An account's state (call under the lock)."""
        return self._accounts.setdefault(name, _Account())

    async def open(self) -> None:
        """Nothing to join: the backend is this process's memory."""

    async def try_acquire(
        self, candidates: Sequence[Candidate], *, limit: int, **_ignored: object
    ) -> Attempt:
        """Lease the least-loaded healthy candidate under ``limit`` (ties: the first)."""
        now = time.time()
        best: tuple[int, str] | None = None
        busy = False
        cooling: dict[str, Cooldown] = {}
        with self._lock:
            for candidate in candidates:
                state = self._account(candidate.name)
                if state.cooldown is not None and state.cooldown.blocks(candidate.token, now):
                    cooling[candidate.name] = state.cooldown
                    continue
                state.cooldown = None  # over, or a new login replaced the rejected token
                load = len(state.leases)
                busy = busy or load >= limit
                if load < limit and (best is None or load < best[0]):
                    best = (load, candidate.name)
                    if load == 0:  # idle: none can be less loaded
                        break
            if best is not None:
                lease_id = new_id()
                self._account(best[1]).leases.add(lease_id)
                return Attempt(account=best[1], lease_id=lease_id)
        ends = [c.until for c in cooling.values() if c.until is not None]
        return Attempt(busy=busy, wake_at=min(ends, default=None), cooling=cooling)

    async def release(
        self,
        account: str,
        lease_id: str,
        *,
        served: bool,
        error: str | None,
        cooldown: Cooldown | None,
        limit: int = 1,  # noqa: ARG002 - the woken waiter tries again with its own
    ) -> None:
        """End a lease, count the answer, record a failure and a rest; wake a waiter."""
        with self._lock:
            state = self._account(account)
            held = lease_id in state.leases
            state.leases.discard(lease_id)
            state.served += served
            state.last_error = error or state.last_error
            state.cooldown = state.cooldown if cooldown is None else cooldown.started(time.time())
        if held:
            self.waiters.freed(account)

    def leave(self, ticket: Ticket) -> None:
        """Drop the ticket; a wake-up it did not use goes to the next waiter."""
        woken_for, _ = self.waiters.remove(ticket)
        if woken_for:
            self.waiters.freed(woken_for)

    async def status(self, accounts: Sequence[str]) -> list[AccountStatus]:
        """The state of ``accounts``."""
        now = time.time()
        with self._lock:
            states = [(name, self._account(name)) for name in accounts]
            return [
                account_status(name, len(s.leases), s.cooldown, s.served, s.last_error, now)
                for name, s in states
            ]

    async def aclose(self) -> None:
        """Nothing to close."""


IN_PROCESS = InProcessBackend()
"""The process's one in-process backend."""
