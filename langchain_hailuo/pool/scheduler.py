"""The account pool: which account answers a call, and when.

- A continued conversation goes to the account that owns its chat, waiting for it within
  the call's timeout; it never moves to another account (the chat lives on that account).
- A new chat goes to the least-loaded healthy account (ties go round-robin).
- Each account streams at most ``max_concurrency`` answers at once, across everything
  sharing the pool: models of this process (in-process backend), or every process and
  host using the same Redis (``pool_url``).
- An account that hits a quota wall, a rate limit or a rejected token rests
  (:mod:`langchain_hailuo.pool.health`). When nothing can serve within the timeout,
  :class:`~langchain_hailuo.errors.HailuoNoAccountAvailableError` says when the next
  account frees up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
import weakref
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from langchain_hailuo._loop import get_runner
from langchain_hailuo.agent.credits import last_credits
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoError,
    HailuoNoAccountAvailableError,
    HailuoQuotaError,
)
from langchain_hailuo.pool.backend import (
    DEFAULT_LEASE_TTL,
    IN_PROCESS,
    AccountStatus,
    Attempt,
    InProcessBackend,
    LoopLocks,
)
from langchain_hailuo.pool.health import Cooldown, HealthSettings, cooldown_for
from langchain_hailuo.pool.sources import PoolAccount, PoolSource, load_accounts

if TYPE_CHECKING:
    from langchain_hailuo.pool.redis_backend import RedisBackend

__all__ = ["AccountPool", "Lease", "format_time"]

logger = logging.getLogger(__name__)

_WAKE_MARGIN = 0.01
"""Seconds added to a timed wake-up, so the expiry it waits for has passed in Redis too."""


def format_time(epoch: float | None, *, now: float | None = None) -> str:
    """``HH:MM:SS UTC (in N s)`` for messages; ``"unknown"`` for ``None``."""
    if epoch is None:
        return "unknown"
    left = max(0.0, epoch - (time.time() if now is None else now))
    return f"{time.strftime('%H:%M:%S UTC', time.gmtime(epoch))} (in {left:.0f} s)"


@dataclass(eq=False)
class Lease:
    """An account held for one call: release it by leaving :meth:`AccountPool.lease`.

    Attributes:
        account: The account.
        lease_id: The backend's id of the lease.
        lost: Set when a renewal found the lease expired (the process stalled longer than
            the TTL): another worker may have taken the account meanwhile.
    """

    account: PoolAccount
    lease_id: str
    lost: bool = False


class _Renewals:
    """One loop's leases on an expiring backend, renewed together by one task while held."""

    def __init__(self, pool: AccountPool) -> None:
        """No task until a lease is held."""
        self._pool = pool
        self._held: dict[Lease, None] = {}
        self._task: asyncio.Task[None] | None = None

    def hold(self, lease: Lease) -> None:
        """Renew ``lease`` until :meth:`drop`."""
        self._held[lease] = None
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def drop(self, lease: Lease) -> None:
        """Stop renewing ``lease``; the task ends with the last one."""
        self._held.pop(lease, None)
        if not self._held and self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        """Renew every held lease each third of the TTL (on a fixed beat: no drift)."""
        pool, beat = self._pool, time.monotonic()
        backend = cast("RedisBackend", pool.backend)  # only an expiring backend renews
        while True:
            beat += pool.lease_ttl / 3
            await asyncio.sleep(beat - time.monotonic())
            due = list(self._held)
            try:
                kept = await backend.renew(
                    [(lease.account.name, lease.lease_id) for lease in due], ttl=pool.lease_ttl
                )
            except Exception:  # tried again at the next beat; the TTL leaves room for it
                logger.warning("Could not renew the pool's leases", exc_info=True)
                continue
            for lease, held in zip(due, kept, strict=True):
                if not held and lease in self._held and not lease.lost:  # not released since
                    lease.lost = True
                    logger.warning(
                        "The lease on pool account %s expired while its answer streamed (the "
                        "process stalled longer than lease_ttl=%g s); another worker may use "
                        "the account at the same time. Raise lease_ttl.",
                        lease.account.name,
                        pool.lease_ttl,
                    )


class AccountPool:
    """Accounts shared by calls, models, processes and hosts (see the module docstring).

    Example:
        ```python
        pool = AccountPool(["tok-1", "tok-2"], pool_url="redis://127.0.0.1:6379/0")
        async with pool.lease(None, within=60) as lease:
            auth = await lease.account.auth()
            ...  # stream one answer with auth
        print(pool.status())
        ```
    """

    def __init__(
        self,
        accounts: Sequence[PoolSource | PoolAccount],
        *,
        pool_url: str | None = None,
        name: str = "default",
        max_concurrency: int = 1,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        health: HealthSettings | None = None,
        base_url: str | None = None,
        env: Mapping[str, str] | None = None,
        records: bool = True,
    ) -> None:
        """Create the pool (no I/O: accounts are read and Redis reached on first use).

        Args:
            accounts: Tokens, ``AuthResult`` s, auth files, pool folders, or accounts.
            pool_url: ``redis://...`` to share leases with other processes (``None``: this
                process only).
            name: The pool's name in Redis (pools of other names share nothing).
            max_concurrency: Answers streamed at once per account (default 1).
            lease_ttl: Seconds a lease outlives its last renewal.
            health: Cool-down settings.
            base_url: The API origin the accounts talk to.
            env: The environment (defaults to ``os.environ``).
            records: Whether a lease's outcome is recorded: a cool-down after a failure,
                the answers served, the last error (``False``: a model's own single
                account, whose next call tries again and which no pool's status counts).
        """
        self._specs = list(accounts)
        self.max_concurrency = max_concurrency
        self.lease_ttl = lease_ttl
        self.health = health or HealthSettings()
        self.records = records
        self._base_url = base_url
        self._env = env
        self.backend: InProcessBackend | RedisBackend = IN_PROCESS
        if pool_url:
            from langchain_hailuo.pool.redis_backend import (  # noqa: PLC0415 - optional extra
                redis_backend,
            )

            self.backend = redis_backend(pool_url, name)
        self._accounts: list[PoolAccount] | None = None
        self._by_name: dict[str, PoolAccount] = {}
        self._load_locks = LoopLocks()
        self._turn = itertools.count()
        self._renewals: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Renewals] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        """Where the leases live and how many accounts (no secret)."""
        count = "?" if self._accounts is None else str(len(self._accounts))
        return f"AccountPool(accounts={count}, backend={self.backend!r})"

    async def accounts(self) -> list[PoolAccount]:
        """The accounts (auth files are read on the first call only)."""
        if self._accounts is not None:
            return self._accounts
        async with self._load_locks.get():
            if self._accounts is None:
                specs = [s for s in self._specs if not isinstance(s, PoolAccount)]
                loaded = [s for s in self._specs if isinstance(s, PoolAccount)]
                if specs:
                    loaded += await load_accounts(specs, base_url=self._base_url, env=self._env)
                self._by_name = {a.name: a for a in loaded}
                await self.backend.open()  # a process's share counts from here
                self._accounts = loaded
            return self._accounts

    async def astatus(self) -> list[AccountStatus]:
        """Per account: streams in flight, resting until when and why, last error, answers.

        With Redis, every account any process registered in the same pool is listed, and
        the streams count those of every process.
        """
        statuses = await self.backend.status([a.name for a in await self.accounts()])
        readings = [(s, last_credits(s.account)) for s in statuses]  # this process's, no network
        return [
            dataclasses.replace(s, credits=None if r is None else f"{r.describe()} at {r.when()}")
            for s, r in readings
        ]

    def status(self) -> list[AccountStatus]:
        """:meth:`astatus` from sync code (runs on the package's private event loop)."""
        return get_runner().run(self.astatus())

    async def aclose(self) -> None:
        """Close the backend's connections of the running loop (Redis)."""
        await self.backend.aclose()

    def account(self, name: str) -> PoolAccount | None:
        """A loaded account by fingerprint (``None``: not in this pool, or not loaded)."""
        return self._by_name.get(name)

    @property
    def names(self) -> frozenset[str]:
        """The loaded accounts' fingerprints (empty before :meth:`accounts`)."""
        return frozenset(self._by_name)

    @contextlib.asynccontextmanager
    async def lease(
        self,
        owner: str | None,
        *,
        within: float | None,
        exclude: Collection[str] = (),
    ) -> AsyncIterator[Lease]:
        """Hold an account for one call; its outcome decides the account's health.

        Leaving with a quota, rate-limit or auth error cools the account down; leaving
        normally counts an answer served. Leases that expire (Redis) are renewed while
        held.

        Args:
            owner: The account that owns the chat being continued (``None``: a new chat,
                any healthy account).
            within: Seconds to wait for an account (the call's timeout; ``None``: as long
                as it takes).
            exclude: Accounts not to use (already tried by this call).

        Yields:
            The lease.

        Raises:
            HailuoNoAccountAvailableError: Nothing could serve within ``within`` seconds.
            HailuoQuotaError: The owner is cooling down after a quota wall.
            HailuoAuthError: The owner's token was rejected and it was not logged in again.
        """
        lease = await self._acquire(owner, within, exclude)
        renewals = None
        if self.backend.renews:
            loop = asyncio.get_running_loop()
            renewals = self._renewals.setdefault(loop, _Renewals(self))
            renewals.hold(lease)
        error: BaseException | None = None
        try:
            yield lease
        except BaseException as exc:
            error = exc
            raise
        finally:
            if renewals is not None:
                renewals.drop(lease)
            await self._release(lease, error)  # a backend finishes it even if cancelled

    async def _release(self, lease: Lease, error: BaseException | None) -> None:
        """Give the account back with the call's outcome (a failure is logged, not raised)."""
        name, cooldown, message = lease.account.name, None, None
        if isinstance(error, HailuoError) and self.records:
            message = f"{type(error).__name__}: {error.message}"
            cooldown = cooldown_for(error, self.health, lease.account.candidate().token)
            if cooldown is not None:
                secs = cooldown.seconds
                rest = "until logged in again" if secs is None else f"{secs:g} s"
                logger.warning(
                    "Pool account %s rests (%s, %s): %s", name, cooldown.kind, rest, error.message
                )
        try:
            await self.backend.release(
                name,
                lease.lease_id,
                served=error is None and self.records,
                error=message,
                cooldown=cooldown,
                limit=self.max_concurrency,
            )
        except Exception:  # the lease then expires by its TTL
            logger.warning("Could not release pool account %s", name, exc_info=True)

    async def _acquire(
        self, owner: str | None, within: float | None, exclude: Collection[str]
    ) -> Lease:
        """Lease an account, waiting (woken, never polling) up to ``within`` seconds."""
        accounts = await self.accounts()
        if owner is None:  # rotated, so ties spread over the accounts
            usable = [a for a in accounts if a.name not in exclude]
            start = next(self._turn) % len(usable) if usable else 0
            pool = [*usable[start:], *usable[:start]]
        elif owner in self._by_name:
            pool = [self._by_name[owner]]
        else:
            raise HailuoNoAccountAvailableError(
                f"Account {owner} owns this chat but is not in the pool; add it to "
                "accounts= or start a new chat."
            )
        if not pool:  # every account failed this call before its first byte
            statuses = await self.backend.status([a.name for a in accounts])
            cooling = {
                s.account: Cooldown(s.cooling, None, s.last_error or "", until=s.cooling_until)
                for s in statuses
                if s.cooling is not None
            }
            attempt = Attempt(busy=len(cooling) < len(statuses), cooling=cooling)
            lead = f"Every account of the pool ({len(accounts)}) failed this call before its first"
            raise _no_account(attempt, len(accounts), within, time.time(), lead=f"{lead} byte.")
        backend = self.backend
        deadline = None if within is None else time.monotonic() + within
        ticket = backend.waiters.enter([a.name for a in pool])
        try:
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                attempt = await backend.try_acquire(
                    [a.candidate() for a in pool],
                    limit=self.max_concurrency,
                    ttl=self.lease_ttl,
                    ticket=ticket,
                    within=left,
                )
                if attempt.account is not None and attempt.lease_id is not None:
                    return Lease(self._by_name[attempt.account], attempt.lease_id)
                if await self._relogged(attempt):
                    continue
                granted = await ticket.wait(
                    _wait_time(owner, attempt, deadline, len(accounts), within)
                )
                if granted is not None:  # handed over by a release: already this call's lease
                    return Lease(self._by_name[granted[0]], granted[1])
        finally:
            backend.leave(ticket)

    async def _relogged(self, attempt: Attempt) -> bool:
        """Whether an account resting for a rejected token was logged in again since."""
        for name, cool in attempt.cooling.items():
            account = self._by_name.get(name)
            if cool.kind == "auth" and account is not None and await account.relogged():
                logger.info("Pool account %s was logged in again; using it again.", name)
                return True
        return False


def _wait_time(
    owner: str | None, attempt: Attempt, deadline: float | None, size: int, timeout: float | None
) -> float | None:
    """How long to sleep before trying again, or the error that ends the wait."""
    now = time.time()
    cool = attempt.cooling.get(owner or "")
    if cool is not None and cool.kind == "quota":  # a chat's own account: it cannot move
        raise HailuoQuotaError(
            f"Account {owner} owns this chat and is out of credits or quota (resting until "
            f"{format_time(cool.until, now=now)}): {cool.message} A chat cannot move to "
            "another account; start a new chat, or wait.",
            code="pool_quota",
            server_message=cool.message,
        )
    if cool is not None and cool.kind == "auth":
        raise HailuoAuthError(
            f"Account {owner} owns this chat and its token was rejected ({cool.message}). "
            "Log that account in again (`hailuo login --add NAME` for a pool folder), or "
            "start a new chat."
        )
    remaining = None if deadline is None else deadline - time.monotonic()
    wake = None if attempt.wake_at is None else max(0.0, attempt.wake_at - now) + _WAKE_MARGIN
    never = not attempt.busy and (wake is None or (remaining is not None and wake > remaining))
    if never or (remaining is not None and remaining <= 0):
        raise _no_account(attempt, size, timeout, now)
    return min((t for t in (remaining, wake) if t is not None), default=None)


def _no_account(
    attempt: Attempt, size: int, timeout: float | None, now: float, *, lead: str | None = None
) -> HailuoNoAccountAvailableError:
    """The error for a call no account could take: why, and when one frees up."""
    rests = "; ".join(
        f"{name} ({cool.kind} until "
        f"{'logged in again' if cool.until is None else format_time(cool.until, now=now)})"
        for name, cool in attempt.cooling.items()
    )
    next_free = min(
        (c.until for c in attempt.cooling.values() if c.until is not None), default=None
    )
    at = "" if next_free is None else f"at {format_time(next_free, now=now)}"
    if attempt.busy:
        when = "The next one frees up when one of the running answers ends"
        when += f" (or {at}, when a cool-down ends)" if at else ""
    elif at:
        when = f"The next one frees up {at}"
    else:
        when = "None frees up by itself: log the accounts in again"
    within = "now" if timeout is None else f"within {round(timeout, 1):g} s"
    lead = lead or f"No account of the pool ({size}) could take this call {within}."
    busy = " Some are busy streaming other answers." if attempt.busy else ""
    rest = f" Resting: {rests}." if rests else ""
    return HailuoNoAccountAvailableError(
        f"{lead}{busy}{rest} {when}. Add accounts, raise the timeout, or retry later.",
        next_free_at=next_free,
        now=now,
    )
