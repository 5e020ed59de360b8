"""Leases and cool-downs shared in Redis by every process and host of a pool.

The scripts in ``lua/`` (``common.lua`` states the keys and invariants) do the work, one
round trip each; a release hands the account on in its reply or on ``<prefix>:freed:<loop>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from langchain_hailuo._config import redact_url
from langchain_hailuo.errors import HailuoConfigurationError, HailuoPoolUnavailableError
from langchain_hailuo.pool.backend import (
    AccountStatus,
    Attempt,
    Candidate,
    LoopLocks,
    Ticket,
    Waiters,
    account_status,
    new_id,
)
from langchain_hailuo.pool.health import Cooldown

__all__ = ["SHARE_GRACE", "RedisBackend", "redis_backend"]

logger = logging.getLogger(__name__)

_MAX_CONNECTIONS = 16  # per process and event loop; the ``freed`` subscription holds one
SHARE_GRACE = 0.2
"""Seconds a new chat of a loop at its share of the pool leaves free accounts to others."""


def _import_redis() -> Any:
    """The ``redis.asyncio`` module, or a clear error naming the extra."""
    try:
        import redis.asyncio as aioredis  # noqa: PLC0415 - optional, imported on first use
    except ImportError:
        raise HailuoConfigurationError(
            "pool_url needs the 'redis' package: pip install 'langchain-hailuo[redis]'."
        ) from None
    return aioredis


def _cooldown(data: dict[str, Any], offset: float) -> Cooldown:
    """A stored rest, its end moved from Redis ms to this host's epoch seconds."""
    until = data.pop("until_ms", None)
    return Cooldown(
        **{"seconds": None, **data}, until=None if until is None else until / 1e3 + offset
    )


@dataclass
class _LoopState:
    """One event loop's client, scripts and listener; its ids start ``<key>:``."""

    client: Any
    pubsub: Any
    key: str
    scripts: dict[str, Any]
    listener: asyncio.Task[None] = field(init=False)
    tasks: set[asyncio.Future[Any]] = field(default_factory=set)

    def background(self, work: Awaitable[Any]) -> asyncio.Future[Any]:
        """Run ``work`` as a task of its own, which ``aclose`` waits for."""
        task = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        # Its failure was its caller's to see: retrieved here, so asyncio logs no warning.
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return task


class RedisBackend:
    """Leases and cool-downs in Redis at ``url`` (``redis://``, ``rediss://``, ``unix://``).

    Pools of another ``name`` share nothing. ``share_grace``: seconds a new chat of a loop
    already streaming its share of the pool leaves free accounts to other processes' calls.
    ``script_calls`` and ``free_leases`` (acquires that found an account free) are counted
    for benchmarks and tests.
    """

    renews = True

    def __init__(
        self, url: str, *, name: str = "default", share_grace: float = SHARE_GRACE
    ) -> None:
        """Create the backend (no connection until first use)."""
        self._aioredis = _import_redis()
        self.url = url
        self.share_grace = share_grace
        self.prefix = f"hailuo-pool:{name}"
        self.waiters = Waiters()
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

    async def _state(self) -> _LoopState:
        """This loop's client, subscribed to its hand-overs before its first acquire."""
        loop = asyncio.get_running_loop()
        if (state := self._states.get(loop)) is not None:
            return state
        async with self._locks.get():
            if loop in self._states:
                return self._states[loop]
            from redis.backoff import NoBackoff  # noqa: PLC0415 - with redis.asyncio

            # A script is never sent twice (it may have run); the connection pool replaces
            # a dead idle connection before use.
            retry = self._aioredis.retry.Retry(NoBackoff(), 0)
            client = self._aioredis.Redis.from_pool(
                self._aioredis.BlockingConnectionPool.from_url(
                    self.url, max_connections=_MAX_CONNECTIONS, timeout=None, retry=retry
                )
            )
            folder = resources.files("langchain_hailuo.pool") / "lua"
            common = (folder / "common.lua").read_text()
            scripts = {
                name: client.register_script(common + (folder / f"{name}.lua").read_text())
                for name in ("acquire", "release", "renew", "status")
            }
            state = _LoopState(
                client, client.pubsub(ignore_subscribe_messages=True), new_id(), scripts
            )
            try:
                await state.pubsub.subscribe(f"{self.prefix}:freed:{state.key}")
            except Exception as exc:  # noqa: BLE001 - any failure to connect means one thing
                with contextlib.suppress(Exception):
                    await state.pubsub.aclose()
                    await client.aclose()
                raise self._unreachable(exc) from None
            state.listener = loop.create_task(self._listen(state))
            with self._guard:
                self._states[loop] = state
            return state

    async def _listen(self, state: _LoopState) -> None:
        """Take the accounts other loops' releases hand to this loop's waiters."""
        try:
            async for message in state.pubsub.listen():
                self._hand_over(state, *message["data"].decode().split(" "))
        except Exception:  # a lost connection: waiters still wake at their deadlines
            logger.warning("The pool's Redis subscription ended", exc_info=True)
            with self._guard:  # this task runs on the state's loop
                self._states.pop(asyncio.get_running_loop(), None)

    def _hand_over(self, state: _LoopState, waiter: str, account: str, lease_id: str) -> None:
        """Wake the waiter a release chose; if it left, another of this loop, else give back."""
        if not self.waiters.hand(waiter, account, lease_id):
            state.background(self._give_back(account, lease_id))

    async def _give_back(self, account: str, lease_id: str) -> None:
        """Release a lease nobody will use (it goes to the next waiter)."""
        try:
            await self.release(
                account, lease_id, served=False, error=None, cooldown=None, limit=self._limit
            )
        except Exception:  # it then expires with its TTL
            logger.warning("Could not give back pool account %s", account, exc_info=True)

    async def _run(self, state: _LoopState, script: str, call: dict[str, Any]) -> Any:
        """Run a script with ``call`` as its JSON argument; its JSON reply."""
        self.script_calls += 1
        try:
            reply = await state.scripts[script](keys=[self.prefix], args=[json.dumps(call)])
        except (self._aioredis.ConnectionError, self._aioredis.TimeoutError) as exc:
            raise self._unreachable(exc) from None
        return json.loads(reply)

    def _unreachable(self, exc: BaseException) -> HailuoPoolUnavailableError:
        """The typed error for a Redis that cannot be reached (its URL without password)."""
        return HailuoPoolUnavailableError(
            f"Cannot reach the pool's Redis at {redact_url(self.url)}: "
            f"{type(exc).__name__}: {exc}. Start Redis or fix pool_url; nothing was sent."
        )

    async def open(self) -> None:
        """Listen on this loop's channel: the loop counts among the pool's processes."""
        await self._state()

    async def try_acquire(
        self,
        candidates: Sequence[Candidate],
        *,
        limit: int,
        ttl: float,
        ticket: Ticket | None = None,
        within: float | None = None,
    ) -> Attempt:
        """Lease the least-loaded healthy candidate under ``limit``, else queue ``ticket``.

        The ticket keeps its place for ``within`` seconds (``None``: no limit). A caller
        cancelled meanwhile does not stop the script (it may have run): a lease it took is
        given back, a place it took in the queue is left.
        """
        self._limit = max(self._limit, limit)
        state = await self._state()
        waiter, hold = "", 0
        if ticket is not None:
            ticket.key = ticket.key or f"{state.key}:{new_id()}"
            ticket.queued = True  # until the reply says otherwise
            waiter = ticket.key
            if len(candidates) > 1:  # a new chat: the ms left of its share grace
                hold = max(0, int((self.share_grace - (time.monotonic() - ticket.since)) * 1000))
        lease_id = f"{state.key}:{new_id()}"
        call = {
            "lease": lease_id,
            "ttl": int(ttl * 1000),
            "limit": limit,
            "candidates": [[c.name, c.token or ""] for c in candidates],
            "waiter": waiter,
            "within": -1 if within is None else int(within * 1000),
            "hold": hold,
        }
        sent = time.time()
        running = state.background(self._run(state, "acquire", call))
        try:
            reply = await asyncio.shield(running)
        except asyncio.CancelledError:

            def undo(done: asyncio.Future[Any]) -> None:
                if done.cancelled() or done.exception() is not None:
                    return
                if "account" in done.result():
                    state.background(self._give_back(done.result()["account"], lease_id))
                elif waiter:
                    state.background(self._dequeue(state, waiter))

            running.add_done_callback(undo)
            raise
        if ticket is not None:
            ticket.queued = "account" not in reply
        if "account" in reply:
            self.free_leases += 1
            return Attempt(account=reply["account"], lease_id=lease_id)
        offset = sent - reply["now"] / 1000.0  # Redis clock -> this host's clock
        wake = reply.get("wake")
        return Attempt(
            busy=reply["busy"],
            wake_at=None if wake is None else wake / 1000.0 + offset,
            cooling={name: _cooldown(c, offset) for name, c in reply["cooling"].items()},
        )

    async def renew(self, leases: Sequence[tuple[str, str]], *, ttl: float) -> list[bool]:
        """Push ``(account, lease id)`` s' expiry ``ttl`` on; ``False``: that one had expired."""
        state = await self._state()
        call = {"ttl": int(ttl * 1000), "leases": [list(lease) for lease in leases]}
        return [bool(held) for held in await self._run(state, "renew", call)]

    async def release(
        self,
        account: str,
        lease_id: str,
        *,
        served: bool,
        error: str | None,
        cooldown: Cooldown | None,
        limit: int = 1,
    ) -> None:
        """End the lease, record the outcome, hand the account to a waiter (``release.lua``).

        Runs to its end even if the caller is cancelled meanwhile.
        """
        state = await self._state()
        call: dict[str, Any] = {
            "account": account,
            "lease": lease_id,
            "served": served,
            "error": error or "",
            "limit": limit,
            "grant": new_id(),
            "client": state.key,
        }
        if cooldown is not None:  # Lua's cjson reads a JSON null as true: absent instead
            call["cool"] = {k: v for k, v in asdict(cooldown).items() if v is not None}

        async def run() -> None:
            reply = await self._run(state, "release", call)
            if "waiter" in reply:  # one of this loop's calls: woken here, no Redis hop
                self._hand_over(state, reply["waiter"], account, reply["lease"])

        await asyncio.shield(state.background(run()))

    def leave(self, ticket: Ticket) -> None:
        """Drop the ticket, and (in the background) its place in Redis and any unused grant."""
        _, grant = self.waiters.remove(ticket)
        state = self._states.get(asyncio.get_running_loop())
        if state is None:  # the loop's connections are gone: the place lapses at its deadline
            return
        if grant is not None:
            state.background(self._give_back(*grant))
        if ticket.queued and ticket.key is not None:
            ticket.queued = False
            state.background(self._dequeue(state, ticket.key))

    async def _dequeue(self, state: _LoopState, waiter: str) -> None:
        """Take a waiter that left out of the queue (else it lapses at its deadline)."""
        try:
            async with state.client.pipeline(transaction=True) as pipe:
                queue = f"{self.prefix}:queue:{state.key}"
                await pipe.zrem(queue, waiter).hdel(f"{self.prefix}:want", waiter).execute()
        except Exception as exc:  # noqa: BLE001 - its place lapses at its deadline
            logger.warning("Could not leave the pool's queue: %s", exc)

    async def status(self, accounts: Sequence[str]) -> list[AccountStatus]:
        """The accounts given, then every other account registered by anyone (sorted)."""
        state = await self._state()
        sent = time.time()
        reply = await self._run(state, "status", {"accounts": list(accounts)})
        offset, now = sent - reply["now"] / 1000.0, time.time()
        rank = {name: i for i, name in enumerate(accounts)}
        return [
            account_status(
                a["name"],
                a["streams"],
                _cooldown(json.loads(a["cool"]), offset) if a["cool"] else None,
                a["served"],
                a["error"] or None,
                now,
            )
            for a in sorted(
                reply["accounts"] or [], key=lambda a: (rank.get(a["name"], len(rank)), a["name"])
            )
        ]

    async def aclose(self) -> None:
        """Close this loop's connections (after its background work, which uses them)."""
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            return
        while state.tasks:
            await asyncio.gather(*state.tasks, return_exceptions=True)
        with self._guard:
            self._states.pop(loop, None)
        state.listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await state.listener
        for closing in (state.pubsub, state.client):
            with contextlib.suppress(Exception):
                await closing.aclose()


_BACKENDS: dict[tuple[str, str], RedisBackend] = {}
_BACKENDS_GUARD = threading.Lock()


def redis_backend(url: str, name: str = "default") -> RedisBackend:
    """The process's backend for ``(url, name)`` (one per pool, shared by its models)."""
    with _BACKENDS_GUARD:
        if (url, name) not in _BACKENDS:
            _BACKENDS[url, name] = RedisBackend(url, name=name)
        return _BACKENDS[url, name]
