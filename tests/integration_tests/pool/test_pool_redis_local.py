"""Hand-overs inside a process: a release hands its account to a waiting call of its own
process (one script), or to the process streaming fewest answers."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from langchain_hailuo.pool import AccountPool
from tests.integration_tests.pool._pool import process_pool, redis_of, until


async def _answer(pool: AccountPool, seconds: float = 0.02) -> str:
    async with pool.lease(None, within=30) as lease:
        await asyncio.sleep(seconds)
        return lease.account.name


async def test_a_lone_process_hands_each_freed_account_to_its_next_waiter(redis_url: str) -> None:
    pool = process_pool(redis_url, "a1", "a2")
    admin = aioredis.Redis.from_url(redis_url)
    try:
        await pool.accounts()
        backend = redis_of(pool)
        scripts = backend.script_calls
        names = await asyncio.gather(*(_answer(pool) for _ in range(10)))
        assert sorted(set(names)) == sorted(pool.names)  # both accounts, one answer each at once
        # 10 acquires (8 of them queued) and 10 releases: each of the 8 waiters was handed
        # its account by a release, as its own lease (none tried again).
        assert backend.script_calls - scripts == 20
        statuses = await pool.astatus()
        assert sum(s.served for s in statuses) == 10
        assert sum(s.streams for s in statuses) == 0
        assert await admin.hlen("hailuo-pool:default:want") == 0  # no waiter left queued
        assert await admin.keys("hailuo-pool:default:queue:*") == []
    finally:
        await admin.aclose()
        await pool.aclose()


async def test_a_process_above_its_part_gives_its_freed_accounts_to_the_others(
    redis_url: str,
) -> None:
    # Two processes on two accounts: each one's part is one stream. "here" holds both
    # accounts, and both processes have a call waiting: the first account "here" frees goes
    # to "there" (through Redis), the second to the call of "here" (kept here).
    here, there = process_pool(redis_url, "b1", "b2"), process_pool(redis_url, "b1", "b2")
    order: list[str] = []

    async def take(pool: AccountPool, who: str) -> None:
        async with pool.lease(None, within=30):
            order.append(who)
            await asyncio.sleep(0.3)

    try:
        await here.accounts()
        await there.accounts()
        go = [asyncio.Event(), asyncio.Event()]

        async def hold(event: asyncio.Event) -> None:
            async with here.lease(None, within=30):
                await event.wait()

        holders = [asyncio.create_task(hold(event)) for event in go]
        while redis_of(here).free_leases < 2:
            await asyncio.sleep(0.01)
        mine = asyncio.create_task(take(here, "here"))
        theirs = asyncio.create_task(take(there, "there"))
        while len(here.backend.waiters) + len(there.backend.waiters) < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # both queued in Redis
        go[0].set()  # "here" streams 2, over its part (1): the account goes to "there"
        await until(lambda: bool(order), 10)
        assert order == ["there"]
        go[1].set()  # now "here" streams 1, its part: it serves its own call
        await asyncio.wait_for(asyncio.gather(mine, theirs, *holders), 30)
        assert order == ["there", "here"]
        statuses = await there.astatus()
        assert sum(s.served for s in statuses) == 4
        assert sum(s.streams for s in statuses) == 0
    finally:
        await here.aclose()
        await there.aclose()


async def test_a_hand_over_to_a_waiter_that_left_goes_to_the_next_one_here(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A call of "here" left the queue, and Redis has not heard yet (its place is still
    # there, oldest of all). A release in "there" hands the account to it: "here" passes
    # it to its next waiting call, without giving it back through Redis.
    here, there = process_pool(redis_url, "c1"), process_pool(redis_url, "c1")
    try:
        (account,) = await here.accounts()
        await there.accounts()
        backend = redis_of(here)
        gave_back: list[str] = []
        give_back = backend._give_back

        async def counted(account: str, lease_id: str) -> None:
            gave_back.append(account)
            await give_back(account, lease_id)

        monkeypatch.setattr(backend, "_give_back", counted)
        client = (await backend._state()).client
        key = (await backend._state()).key
        deadline_ms = int((time.time() + 3600) * 1000)
        async with there.lease(None, within=30):
            await client.zadd(f"{backend.prefix}:queue:{key}", {f"{key}:left": -1})
            await client.sadd(f"{backend.prefix}:waiting", key)
            await client.hset(
                f"{backend.prefix}:want", f"{key}:left", f"{deadline_ms} 30000\n{account.name}\n"
            )
            waiter = asyncio.create_task(_answer(here))
            await until(lambda: len(here.backend.waiters) == 1, 10)
            await asyncio.sleep(0.2)  # its failed acquire has queued it behind "left"
        assert await asyncio.wait_for(waiter, 10) == account.name
        assert gave_back == []  # passed on to the waiter here, not given back
        statuses = await here.astatus()
        assert sum(s.streams for s in statuses) == 0
        assert sum(s.served for s in statuses) == 2
    finally:
        await here.aclose()
        await there.aclose()


async def test_a_lease_handed_on_here_again_and_again_never_expires(redis_url: str) -> None:
    # Calls shorter than a third of the lease TTL each hand the account to the next call of
    # their process, for longer than the TTL in all: no holder renews it, so the hand-over
    # itself must, or the lease would expire while streaming and a waiting call (woken at
    # the expiry it was told of) lease the account again next to the one streaming.
    ttl = 0.6
    here, there = process_pool(redis_url, "d1", "d2"), process_pool(redis_url, "d1", "d2")
    here.lease_ttl = there.lease_ttl = ttl
    streaming: dict[str, int] = {}
    most = 0

    async def answer(pool: AccountPool) -> str:
        nonlocal most
        async with pool.lease(None, within=10) as lease:
            name = lease.account.name
            streaming[name] = streaming.get(name, 0) + 1
            most = max(most, streaming[name])
            await asyncio.sleep(ttl / 4)
            streaming[name] -= 1
            return name

    try:
        await here.accounts()
        await there.accounts()
        done = asyncio.Event()

        async def hold_there() -> None:  # "there" streams its part (1) all along
            async with there.lease(None, within=5):
                await done.wait()

        theirs = asyncio.create_task(hold_there())
        await until(lambda: redis_of(there).free_leases == 1, 10)
        names = await asyncio.gather(*(answer(here) for _ in range(8)))  # 1.2 s in all
        assert len(set(names)) == 1
        assert most == 1  # never two answers on the account at once
        done.set()
        await theirs
        statuses = await here.astatus()
        assert sum(s.served for s in statuses) == 9
        assert sum(s.streams for s in statuses) == 0
    finally:
        await here.aclose()
        await there.aclose()
