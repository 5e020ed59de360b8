"""Where a pool keeps its leases and cool-downs: in this process, or in Redis.

Both backends offer one atomic step, :meth:`Backend.try_acquire` ("the least-loaded free
candidate, leased now, or why none is"), plus release, renew and status. Waiting is the
scheduler's (:mod:`langchain_hailuo.pool.scheduler`): a waiter registers a
:class:`Waiters` ticket *before* it tries, so a release that happens between its failed
try and its sleep still wakes it, and a release wakes one waiter that can use the freed
account (not every waiter, which would turn each release into a stampede of retries). The
Redis backend goes one step further: its waiters queue in Redis, and a release hands the
account (a new lease, the waiter's own) straight to a waiter that can use it, in the process
streaming the fewest answers: nobody retries and loses.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import weakref
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from langchain_hailuo._loop import CrossLoopSemaphore, account_gate
from langchain_hailuo.pool.health import Cooldown, CooldownKind

__all__ = [
    "DEFAULT_LEASE_TTL",
    "AccountStatus",
    "Attempt",
    "Backend",
    "Candidate",
    "InProcessBackend",
    "LoopLocks",
    "Ticket",
    "Waiters",
    "account_status",
    "new_lease_id",
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
    """The outcome of one :meth:`Backend.try_acquire`.

    Attributes:
        account: The account leased (``None``: none could be).
        lease_id: The lease's id, to renew and release it.
        busy: Some candidate is at its stream limit (it frees when an answer ends).
        wake_at: Epoch seconds of the earliest cool-down end or lease expiry among the
            blocked candidates (when waiting should look again without being woken).
        cooling: The candidates resting, with why and until when.
    """

    account: str | None = None
    lease_id: str | None = None
    busy: bool = False
    wake_at: float | None = None
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


class LoopLocks:
    """One ``asyncio.Lock`` per event loop (a pool may be used from several loops)."""

    def __init__(self) -> None:
        """Create the map."""
        self._guard = threading.Lock()
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> asyncio.Lock:
        """The running loop's lock (created on first use)."""
        loop = asyncio.get_running_loop()
        with self._guard:
            lock = self._locks.get(loop)
            if lock is None:
                lock = self._locks[loop] = asyncio.Lock()
            return lock


def new_lease_id() -> str:
    """A unique lease id (64 random bits: never derived from a token)."""
    return os.urandom(8).hex()


class Backend(Protocol):
    """What the scheduler needs of a place that keeps leases and cool-downs."""

    waiters: Waiters
    renews: bool
    """Whether leases expire unless renewed (then the scheduler renews them)."""

    async def try_acquire(
        self,
        candidates: Sequence[Candidate],
        *,
        limit: int,
        ttl: float,
        ticket: Ticket | None = None,
        within: float | None = None,
    ) -> Attempt:
        """Lease the least-loaded free candidate in one step.

        When none is free and ``ticket`` is given, the ticket keeps (or takes) its place in
        the backend's queue of waiters for ``within`` seconds (``None``: no limit).
        """
        ...

    async def renew(self, account: str, lease_id: str, *, ttl: float) -> bool:
        """Push a lease's expiry ``ttl`` seconds on; ``False`` when it had expired."""
        ...

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
        """End a lease, count the answer, record a failure and a cool-down; wake a waiter.

        ``limit`` is the caller's streams-per-account limit (a backend that hands the
        account straight to a waiter checks it). ``lost``: the lease had expired while held
        (the backend may have given the account to someone else meanwhile).
        """
        ...

    def leave(self, ticket: Ticket) -> None:
        """A waiter stops waiting: drop its place, give back a lease handed to it unused.

        Returns at once (what it must tell a remote backend is sent in the background):
        the call that leaves goes on to its answer without another event-loop turn.
        """
        ...

    async def status(self, accounts: Sequence[str]) -> list[AccountStatus]:
        """The state of ``accounts`` (plus any other account the backend knows)."""
        ...

    async def register(self, accounts: Sequence[str]) -> None:
        """Note the pool's accounts (so a status from elsewhere lists idle ones too)."""
        ...

    async def aclose(self) -> None:
        """Release the backend's connections on the running loop."""
        ...


class Ticket:
    """A waiter's place in :class:`Waiters`: woken when one of its accounts frees up.

    One ticket serves a call's whole wait (its place in a backend's queue stays while it
    retries). A backend that hands a freed account straight to a waiter (Redis) sets
    :attr:`grant` before waking it.

    Attributes:
        names: The accounts the waiter can use.
        ttl: The lease TTL the waiter asks for (seconds; ``None``: none, leases never expire).
        key: The backend's id of the ticket (``None``: the backend keeps no queue).
        queued: Whether the backend holds the ticket in its queue.
        grant: ``(account, lease id)`` handed to this ticket and not taken yet.
        sleeping: Whether the waiter sleeps in :meth:`wait` (its last try has returned).
    """

    def __init__(self, owner: Waiters, names: frozenset[str], ttl: float | None = None) -> None:
        """Create a ticket on the running loop (see :meth:`Waiters.enter`)."""
        self._owner = owner
        self.names = names
        self.ttl = ttl
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[str] = self.loop.create_future()
        self.key: str | None = None
        self.queued = False
        self.grant: tuple[str, str] | None = None
        self.sleeping = False

    async def wait(self, seconds: float | None) -> bool:
        """Sleep until woken or ``seconds`` pass; ``True`` when woken.

        The task awaits the future itself, and the timer resolves it too (with ``""``): a
        wake-up reaches the task in one event-loop turn, which matters when the loop is
        busy with other answers (each extra turn is a wait behind all of their work).
        """
        future = self.future
        if not future.done():
            timer = None if seconds is None else self.loop.call_later(seconds, _wake, future, "")
            self.sleeping = True
            try:
                await future
            finally:
                self.sleeping = False
                if timer is not None:
                    timer.cancel()
        return not future.cancelled() and future.result() != ""

    def take_grant(self) -> tuple[str, str] | None:
        """The account and lease handed to this ticket, now the caller's (``None``: none)."""
        with self._owner.lock:
            grant, self.grant = self.grant, None
        if grant is not None:
            self.queued = False  # the backend took it out of its queue to hand it over
        return grant

    def rearm(self) -> None:
        """Wait for the next wake-up (the last one was used by a retry)."""
        self._owner.consume(self)
        if self.future.done():
            self.future = self.loop.create_future()

    def leave(self, *, pass_on: bool) -> None:
        """Stop waiting; with ``pass_on``, hand a wake-up this ticket did not use on."""
        woken_for = self._owner.remove(self)
        if pass_on and woken_for is not None:
            self._owner.freed(woken_for)


def _wake(future: asyncio.Future[str], name: str) -> None:
    """Wake one ticket (runs on its loop); ``name`` ``""`` is its timer running out."""
    if not future.done():
        future.set_result(name)


def _wake_soon(ticket: Ticket, name: str) -> None:
    """Wake ``ticket`` on its loop: at once from that loop, else through its thread-safe queue.

    Raises:
        RuntimeError: Its loop is closed.
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is ticket.loop:
        _wake(ticket.future, name)
    else:
        ticket.loop.call_soon_threadsafe(_wake, ticket.future, name)


class Waiters:
    """The calls of this process waiting for an account, in arrival order.

    Thread-safe: tickets may live on any event loop; each is woken on its own loop.
    """

    def __init__(self) -> None:
        """Create an empty queue."""
        self.lock = threading.Lock()
        self._tickets: list[Ticket] = []
        self._woken: dict[int, str] = {}
        self._keyed: dict[str, Ticket] = {}

    def enter(self, names: Collection[str], ttl: float | None = None) -> Ticket:
        """Queue a ticket for ``names`` (call before trying, so no wake-up is lost)."""
        ticket = Ticket(self, frozenset(names), ttl)
        with self.lock:
            self._tickets.append(ticket)
        return ticket

    def name(self, ticket: Ticket, key: str) -> None:
        """Give ``ticket`` the backend's id, so :meth:`grant` can find it."""
        with self.lock:
            ticket.key = key
            if ticket in self._tickets:
                self._keyed[key] = ticket

    def remove(self, ticket: Ticket) -> str | None:
        """Take a ticket out; returns the account it was woken for, if it was."""
        with self.lock:
            if ticket in self._tickets:
                self._tickets.remove(ticket)
            if ticket.key is not None:
                self._keyed.pop(ticket.key, None)
            return self._woken.pop(id(ticket), None)

    def consume(self, ticket: Ticket) -> None:
        """Note that ``ticket`` used its wake-up (nothing to pass on when it leaves)."""
        with self.lock:
            self._woken.pop(id(ticket), None)

    def grant(self, key: str, account: str, lease_id: str) -> bool:
        """Hand a lease to the waiting ticket ``key`` and wake it.

        Returns:
            ``False`` when no such ticket waits (it left, or holds a grant already): the
            caller must give the lease back.
        """
        with self.lock:
            ticket = self._keyed.get(key)
            if ticket is None or ticket.grant is not None or ticket.loop.is_closed():
                return False
            try:
                _wake_soon(ticket, account)
            except RuntimeError:  # its loop closed just now
                return False
            ticket.grant = (account, lease_id)
            return True

    def grant_here(self, account: str, lease_id: str) -> Ticket | None:
        """Hand a lease to the oldest sleeping ticket of the running loop that can use it.

        Returns:
            The ticket (``None``: no such ticket; nothing was handed).
        """
        loop = asyncio.get_running_loop()
        with self.lock:
            for ticket in self._tickets:
                if (
                    ticket.loop is loop
                    and ticket.sleeping
                    and ticket.key is not None
                    and ticket.grant is None
                    and id(ticket) not in self._woken
                    and account in ticket.names
                ):
                    ticket.grant = (account, lease_id)
                    _wake(ticket.future, account)
                    return ticket
        return None

    def freed(self, name: str, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Wake the oldest unwoken ticket that can use ``name`` (on ``loop`` only, if given)."""
        with self.lock:
            for ticket in self._tickets:
                if id(ticket) in self._woken or name not in ticket.names:
                    continue
                if loop is not None and ticket.loop is not loop:
                    continue
                if ticket.loop.is_closed():
                    continue
                try:
                    _wake_soon(ticket, name)
                except RuntimeError:  # its loop closed just now
                    continue
                self._woken[id(ticket)] = name
                return

    def __len__(self) -> int:
        """Tickets waiting now."""
        with self.lock:
            return len(self._tickets)


@dataclass
class _Local:
    """One account's state in :class:`InProcessBackend`."""

    leases: dict[str, CrossLoopSemaphore] = field(default_factory=dict)
    """Lease id -> the account's gate slot it holds."""
    cooldown: Cooldown | None = None
    served: int = 0
    last_error: str | None = None


class InProcessBackend:
    """Leases and cool-downs in this process's memory (the default: needs nothing).

    One instance serves every pool of the process, so two models built on the same
    accounts never stream more than ``max_concurrency`` answers on one of them together.
    A lease also holds a slot of the account's process-wide gate
    (:func:`~langchain_hailuo._loop.account_gate`), the one a single-account ``ChatHailuo``
    of the same account (and the same ``max_concurrency``) streams through, so a pool and
    such a model share the account's limit too. Leases do not expire: they end with the
    call (or the process).
    """

    renews = False

    def __init__(self) -> None:
        """Create an empty backend."""
        self._lock = threading.Lock()
        self._accounts: dict[str, _Local] = {}
        self._slots: dict[tuple[str, int], tuple[_Local, CrossLoopSemaphore]] = {}
        self.waiters = Waiters()

    def _slot(self, name: str, limit: int) -> tuple[_Local, CrossLoopSemaphore]:
        """An account's state and process-wide gate (call under the lock).

        The gate's freed slots wake this backend's waiters. Both are looked up once per
        account and limit: every try of every waiting call reads them.
        """
        key = (name, limit)
        found = self._slots.get(key)
        if found is None:
            gate = account_gate(name, limit)
            gate.watch(lambda: self.waiters.freed(name))
            found = self._slots[key] = (self._state(name), gate)
        return found

    def _state(self, name: str) -> _Local:
        """An account's state (created on first use; call under the lock)."""
        state = self._accounts.get(name)
        if state is None:
            state = self._accounts[name] = _Local()
        return state

    async def try_acquire(
        self,
        candidates: Sequence[Candidate],
        *,
        limit: int,
        ttl: float,  # noqa: ARG002 - leases here end with the call
        ticket: Ticket | None = None,  # noqa: ARG002 - waiters are woken by ``release``
        within: float | None = None,  # noqa: ARG002 - the scheduler times the wait
    ) -> Attempt:
        """Lease the least-loaded free candidate (see :class:`Backend`).

        An idle candidate is the least loaded there can be: the first one found is leased
        without reading the others.
        """
        now = time.time()
        free: list[tuple[int, int]] = []
        busy = False
        cooling: dict[str, Cooldown] = {}
        with self._lock:
            for index, candidate in enumerate(candidates):
                state, gate = self._slot(candidate.name, limit)
                cool = state.cooldown
                if cool is not None:
                    if cool.blocks(candidate.token, now):
                        cooling[candidate.name] = cool
                        continue
                    state.cooldown = None  # over, or a new login replaced the rejected token
                load = max(len(state.leases), limit - gate.available)
                if load >= limit:
                    busy = True
                elif load == 0 and gate.try_acquire():
                    return self._lease(state, gate, candidate.name)
                else:
                    free.append((load, index))
            for _, index in sorted(free):  # least loaded first, then in the given order
                name = candidates[index].name
                state, gate = self._slot(name, limit)
                if gate.try_acquire():
                    return self._lease(state, gate, name)
                busy = True  # a single-account model took the slot just now
        ends = [c.until for c in cooling.values() if c.until is not None]
        return Attempt(busy=busy, wake_at=min(ends, default=None), cooling=cooling)

    @staticmethod
    def _lease(state: _Local, gate: CrossLoopSemaphore, name: str) -> Attempt:
        """A new lease on a slot just taken of ``gate`` (call under the lock)."""
        lease_id = new_lease_id()
        state.leases[lease_id] = gate
        return Attempt(account=name, lease_id=lease_id)

    async def renew(self, account: str, lease_id: str, *, ttl: float) -> bool:  # noqa: ARG002
        """Leases here never expire: ``True`` while it is held."""
        with self._lock:
            return lease_id in self._state(account).leases

    async def release(
        self,
        account: str,
        lease_id: str,
        *,
        served: bool,
        error: str | None,
        cooldown: Cooldown | None,
        limit: int = 1,  # noqa: ARG002 - the woken waiter tries again with its own
        lost: bool = False,  # noqa: ARG002 - leases here never expire
    ) -> None:
        """End a lease and wake one waiter (see :class:`Backend`)."""
        with self._lock:
            state = self._state(account)
            gate = state.leases.pop(lease_id, None)
            if served:
                state.served += 1
            if error is not None:
                state.last_error = error
            if cooldown is not None:
                until = None if cooldown.seconds is None else time.time() + cooldown.seconds
                state.cooldown = Cooldown(
                    cooldown.kind, cooldown.seconds, cooldown.message, cooldown.token, until
                )
        if gate is not None:
            gate.release()  # to a waiting single-account model, else wakes one of our waiters

    async def status(self, accounts: Sequence[str]) -> list[AccountStatus]:
        """The state of ``accounts`` (see :class:`Backend`)."""
        now = time.time()
        with self._lock:
            return [_status_of(name, self._state(name), now) for name in accounts]

    def leave(self, ticket: Ticket) -> None:
        """Drop the ticket; a wake-up it did not use goes to the next waiter."""
        ticket.leave(pass_on=True)

    async def register(self, accounts: Sequence[str]) -> None:
        """Nothing to do: this process knows its own accounts."""

    async def aclose(self) -> None:
        """Nothing to close."""


def _status_of(name: str, state: _Local, now: float) -> AccountStatus:
    """An in-process account's status."""
    return account_status(
        name, len(state.leases), state.cooldown, state.served, state.last_error, now
    )


def account_status(  # noqa: PLR0917 - the fields of one status line
    name: str,
    streams: int,
    cooldown: Cooldown | None,
    served: int,
    last_error: str | None,
    now: float,
) -> AccountStatus:
    """One account's status (a cool-down that is over shows as none)."""
    active = cooldown is not None and cooldown.blocks(cooldown.token, now)
    return AccountStatus(
        account=name,
        streams=streams,
        cooling_until=cooldown.until if active and cooldown is not None else None,
        cooling=cooldown.kind if active and cooldown is not None else None,
        last_error=last_error,
        served=served,
    )


_IN_PROCESS: InProcessBackend | None = None
_IN_PROCESS_GUARD = threading.Lock()


def in_process_backend() -> InProcessBackend:
    """The process's one in-process backend."""
    global _IN_PROCESS  # noqa: PLW0603 - one per process, made on first use
    with _IN_PROCESS_GUARD:
        if _IN_PROCESS is None:
            _IN_PROCESS = InProcessBackend()
        return _IN_PROCESS
