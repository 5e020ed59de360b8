"""The Redis pool's queue of waiters: a release hands the account to the oldest waiter."""

from __future__ import annotations

import asyncio
import time

from pydantic import SecretStr

from langchain_hailuo.emulator.core import make_token
from langchain_hailuo.pool import AccountPool
from langchain_hailuo.pool.redis_backend import RedisBackend
from tests.integration_tests.pool._pool import process_pool, until


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
            scripts = backend.script_calls
        await asyncio.wait_for(asyncio.gather(first, second), 30)
        # Fair across processes: the releasing process does not keep the account for its
        # own later waiter.
        assert order == ["there", "here"]
        # The waiter was handed the account as its lease: nothing to claim, no retried
        # acquire. Its only script is its release.
        assert backend.script_calls - scripts == 1
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


async def test_a_waiter_whose_process_is_gone_is_skipped(redis_url: str) -> None:
    # Waiters queued by a process that died: their places are still in Redis, and nobody
    # listens on their loop's channel. The release must not hand them the account (which
    # would sit unused for the lease TTL): the next waiter gets it at once, and the dead
    # loop's places go, those for other accounts too (else every release would read them
    # again until their deadlines).
    token = _token("d")
    here, there = _pool(redis_url, token), _pool(redis_url, token)
    here.lease_ttl = there.lease_ttl = 600.0
    try:
        (account,) = await here.accounts()
        await there.accounts()
        backend = here.backend
        assert isinstance(backend, RedisBackend)
        client = (await backend._state()).client
        p = backend.prefix
        async with here.lease(None, within=60):
            deadline_ms = int((time.time() + 3600) * 1000)
            wants = [account.name, account.name, "acct-other"]
            for i, wanted in enumerate(wants):  # older than any live waiter
                await client.zadd(f"{p}:queue:gone", {f"gone:{i}": -10 + i})
                await client.hset(f"{p}:want", f"gone:{i}", f"{deadline_ms} 600000\n{wanted}\n")
            await client.sadd(f"{p}:waiting", "gone")
            waiter = asyncio.create_task(_hold_within(there, 30))
            await _queued([there], 1)
            await asyncio.sleep(0.2)  # its failed acquire has queued it behind "gone"
            assert await client.scard(f"{p}:waiting") == 2
        assert await asyncio.wait_for(waiter, 60)
        assert await client.exists(f"{p}:queue:gone") == 0
        assert await client.scard(f"{p}:waiting") == 0
        assert await client.hlen(f"{p}:want") == 0
        (status,) = await here.astatus()
        assert status.streams == 0
        assert status.served == 2
    finally:
        await here.aclose()
        await there.aclose()


async def _hold_within(pool: AccountPool, within: float) -> bool:
    async with pool.lease(None, within=within) as lease:
        return not lease.lost


async def test_a_free_account_behind_many_others_is_found(redis_url: str) -> None:
    # Two pools of different accounts share one Redis. The 40 accounts of the big pool are
    # free and come first in the load order; the small pool's account, used once, comes
    # after them all. Its acquire must look past them, not wait.
    big = AccountPool([SecretStr(_token(f"b{i}")) for i in range(40)], pool_url=redis_url)
    small = _pool(redis_url, _token("s"))
    big.backend = RedisBackend(redis_url)
    try:
        await big.accounts()
        (mine,) = await small.accounts()
        async with small.lease(None, within=5) as lease:
            assert lease.account is mine
        async with small.lease(None, within=5) as lease:  # now last in the load order
            assert lease.account is mine
    finally:
        await big.aclose()
        await small.aclose()


async def test_a_waiter_behind_many_that_want_other_accounts_gets_the_account(
    redis_url: str,
) -> None:
    # 40 older waiters of the same loop want other accounts; the release of this account
    # must look past them all to the waiter that wants it, and leave theirs in place.
    token = _token("w")
    here, there = _pool(redis_url, token), _pool(redis_url, token)
    try:
        await here.accounts()
        await there.accounts()
        backend, theirs = here.backend, there.backend
        assert isinstance(backend, RedisBackend)
        assert isinstance(theirs, RedisBackend)
        client = (await backend._state()).client
        loop_key = (await theirs._state()).key
        queue, want = f"{backend.prefix}:queue:{loop_key}", f"{backend.prefix}:want"
        deadline_ms = int((time.time() + 3600) * 1000)
        async with here.lease(None, within=60):
            for i in range(40):
                await client.zadd(queue, {f"{loop_key}:other{i}": i - 100})
                await client.hset(want, f"{loop_key}:other{i}", f"{deadline_ms} 600000\nacct-x\n")
            waiter = asyncio.create_task(_hold_within(there, 30))
            await _queued([there], 1)
            await asyncio.sleep(0.2)
            assert await client.zcard(queue) == 41
        assert await asyncio.wait_for(waiter, 60)
        assert await client.zcard(queue) == 40  # the others keep their places
    finally:
        await here.aclose()
        await there.aclose()


async def test_a_freed_account_goes_to_the_process_streaming_the_fewest_answers(
    redis_url: str,
) -> None:
    # "here" streams two answers, "there" one. A call of "here" waits first, then one of
    # "there". When "there" finishes, the account goes to its own waiter: it now streams
    # nothing, "here" still two. Answers spread over the processes as accounts free up.
    users = [f"l{i}" for i in range(3)]
    here, there = process_pool(redis_url, *users), process_pool(redis_url, *users)
    order: list[str] = []

    async def take(pool: AccountPool, name: str) -> None:
        async with pool.lease(None, within=60):
            order.append(name)

    try:
        await here.accounts()
        await there.accounts()
        async with here.lease(None, within=60), here.lease(None, within=60):
            async with there.lease(None, within=60):
                first = asyncio.create_task(take(here, "here"))
                await _queued([here], 1)
                await asyncio.sleep(0.2)
                second = asyncio.create_task(take(there, "there"))
                await _queued([there], 1)
                await asyncio.sleep(0.2)
                assert order == []
            await asyncio.wait_for(second, 30)
        await asyncio.wait_for(first, 30)
        # First come would have been "here" first.
        assert order == ["there", "here"]
    finally:
        await here.aclose()
        await there.aclose()


async def _hold_until(pool: AccountPool, release: asyncio.Event, got: list[str]) -> None:
    async with pool.lease(None, within=30) as lease:
        got.append(lease.account.name)
        await release.wait()


async def test_a_burst_in_one_process_leaves_the_other_processes_their_share(
    redis_url: str,
) -> None:
    # Two processes share 4 accounts. "here" asks for 4 at once: it gets its share (2) at
    # once, and its other calls leave the free accounts to "there" for a moment (a long one
    # here: the order must not depend on this machine's speed); "there", asking just after,
    # gets one at once; "here" takes the one left over after the grace.
    users = [f"s{i}" for i in range(4)]
    here = process_pool(redis_url, *users, share_grace=2.0)
    there = process_pool(redis_url, *users, share_grace=2.0)
    release = asyncio.Event()
    got_here: list[str] = []
    got_there: list[str] = []
    try:
        await here.accounts()
        await there.accounts()
        burst = [asyncio.create_task(_hold_until(here, release, got_here)) for _ in range(4)]
        await until(lambda: len(got_here) >= 2, 20)
        assert len(got_here) == 2  # its share, at once; the rest hold back
        theirs = asyncio.create_task(_hold_until(there, release, got_there))
        await until(lambda: bool(got_there), 20)
        assert len(got_here) == 2  # "there" was served while "here" held back
        await until(lambda: len(got_here) >= 3, 20)  # the one left over, after the grace
        assert len(set(got_here + got_there)) == 4
        assert len(got_here) == 3  # its fourth call waits for an account to be released
        release.set()
        await asyncio.wait_for(asyncio.gather(*burst, theirs), 30)
    finally:
        release.set()
        await here.aclose()
        await there.aclose()


async def test_a_burst_takes_every_free_account_when_the_other_processes_do_not_ask(
    redis_url: str,
) -> None:
    # "there" listens on the pool but asks for nothing: "here" holds back only for the
    # grace, then takes every free account. No account stays free while a call waits.
    users = [f"t{i}" for i in range(4)]
    here, there = process_pool(redis_url, *users), process_pool(redis_url, *users)
    release = asyncio.Event()
    got: list[str] = []
    try:
        await here.accounts()
        await there.accounts()  # listening: a second process of the pool
        burst = [asyncio.create_task(_hold_until(here, release, got)) for _ in range(4)]
        # Without the grace's end the two held-back calls would wait for a release that
        # never comes here, until their deadline (30 s) fails them.
        await until(lambda: len(got) == 4, 20)
        assert len(set(got)) == 4
        release.set()
        await asyncio.wait_for(asyncio.gather(*burst), 30)
    finally:
        release.set()
        await here.aclose()
        await there.aclose()
