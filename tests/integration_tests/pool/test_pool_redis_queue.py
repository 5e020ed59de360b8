"""The Redis pool's queue of waiters: a release hands the account to the oldest waiter."""

from __future__ import annotations

import asyncio
import time

from pydantic import SecretStr

from langchain_hailuo.emulator.core import make_token
from langchain_hailuo.pool import AccountPool
from langchain_hailuo.pool.redis_backend import RedisBackend


def _token(user: str) -> str:
    return make_token(user_id=user, device_id="2" * 18, name=user, expires_at=time.time() + 3600)


def _pool(url: str, token: str) -> AccountPool:
    """A pool with a backend of its own: what another process would have."""
    pool = AccountPool([SecretStr(token)], pool_url=url)
    pool.backend = RedisBackend(url)
    return pool


async def _queued(pools: list[AccountPool], count: int) -> None:
    """Wait until ``count`` calls of ``pools`` are queued (in this process's bookkeeping)."""
    while sum(len(p.backend.waiters) for p in pools) < count:
        await asyncio.sleep(0.01)


async def test_a_release_hands_the_account_to_the_oldest_waiter_of_any_process(
    redis_url: str,
) -> None:
    token = _token("q")
    here, there = _pool(redis_url, token), _pool(redis_url, token)
    order: list[str] = []

    async def take(pool: AccountPool, name: str) -> None:
        async with pool.lease(None, within=60):
            order.append(name)

    try:
        (account,) = await here.accounts()
        await there.accounts()
        async with here.lease(None, within=60):
            # First a waiter of the other "process", then one of the releasing one.
            first = asyncio.create_task(take(there, "there"))
            await _queued([there], 1)
            await asyncio.sleep(0.2)  # its failed acquire has queued it in Redis
            second = asyncio.create_task(take(here, "here"))
            await _queued([here], 1)
            await asyncio.sleep(0.2)
            assert order == []
            backend = there.backend
            assert isinstance(backend, RedisBackend)
            trips = backend.round_trips
        await asyncio.wait_for(asyncio.gather(first, second), 30)
        # Fair across processes: the releasing process does not keep the account for its
        # own later waiter.
        assert order == ["there", "here"]
        # The waiter was handed the account: one claim, no retried acquire. Leaving sends
        # its release.
        assert backend.round_trips - trips == 2
        (status,) = await here.astatus()
        assert status.account == account.name
        assert status.streams == 0
        assert status.served == 3
    finally:
        await here.aclose()
        await there.aclose()


async def test_a_waiter_that_gave_up_passes_the_account_on(redis_url: str) -> None:
    token = _token("g")
    here, there = _pool(redis_url, token), _pool(redis_url, token)
    try:
        await here.accounts()
        await there.accounts()
        async with here.lease(None, within=60):
            quitter = asyncio.create_task(there.lease(None, within=60).__aenter__())
            await _queued([there], 1)
            await asyncio.sleep(0.2)
            waiter = asyncio.create_task(_hold(there))
            await asyncio.sleep(0.2)
            quitter.cancel()
            await asyncio.gather(quitter, return_exceptions=True)
        assert await asyncio.wait_for(waiter, 30)
        (status,) = await here.astatus()
        assert status.streams == 0
    finally:
        await here.aclose()
        await there.aclose()


async def _hold(pool: AccountPool) -> bool:
    async with pool.lease(None, within=60) as lease:
        return not lease.lost
