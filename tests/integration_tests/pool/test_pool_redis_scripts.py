"""The Redis pool's scripts: many at once, reloaded when Redis lost them, never lost to a
cancelled caller."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from langchain_hailuo.pool import AccountPool
from tests.integration_tests.pool._pool import process_pool, redis_of


async def _hold(pool: AccountPool, release: asyncio.Event) -> str:
    async with pool.lease(None, within=30) as lease:
        await release.wait()
        return lease.account.name


async def test_calls_asked_at_once_each_lease_an_account_in_one_script(redis_url: str) -> None:
    pool = process_pool(redis_url, *(f"b{i}" for i in range(20)))
    try:
        await pool.accounts()
        backend = redis_of(pool)
        scripts = backend.script_calls
        release = asyncio.Event()
        holders = [asyncio.create_task(_hold(pool, release)) for _ in range(20)]
        while backend.free_leases < 20:
            await asyncio.sleep(0.01)
        release.set()
        names = await asyncio.gather(*holders)
        assert len(set(names)) == 20  # one account each: every acquire leased its own
        assert backend.script_calls - scripts == 40  # 20 acquires, 20 releases
        statuses = await pool.astatus()
        assert sum(s.streams for s in statuses) == 0
        assert sum(s.served for s in statuses) == 20
    finally:
        await pool.aclose()


async def test_scripts_redis_lost_are_loaded_again(redis_url: str) -> None:
    pool = process_pool(redis_url, "f")
    admin = aioredis.Redis.from_url(redis_url)
    try:
        async with pool.lease(None, within=10):
            pass
        await admin.script_flush()  # what a Redis restart (or SCRIPT FLUSH) does
        async with pool.lease(None, within=10) as lease:
            assert not lease.lost
        (status,) = await pool.astatus()
        assert status.streams == 0
        assert status.served == 2
    finally:
        await admin.aclose()
        await pool.aclose()


async def test_a_call_cancelled_while_its_acquire_is_under_way_gives_the_account_back(
    redis_url: str,
) -> None:
    # The caller gives up after its acquire was asked: the script still runs in Redis and
    # leases the only account, for nobody. The lease is given back at once (not after the
    # lease TTL), so the next call gets the account.
    pool = process_pool(redis_url, "c")
    pool.lease_ttl = 600.0
    try:
        await pool.accounts()
        backend = redis_of(pool)
        asked = backend.script_calls
        taking = asyncio.create_task(pool.lease(None, within=10).__aenter__())
        while backend.script_calls == asked:
            await asyncio.sleep(0)
        taking.cancel()
        await asyncio.gather(taking, return_exceptions=True)
        assert taking.cancelled()
        async with pool.lease(None, within=10) as lease:  # would wait 600 s for the TTL
            assert not lease.lost
    finally:
        await pool.aclose()


async def test_connections_the_server_closed_meanwhile_are_opened_again(redis_url: str) -> None:
    # Redis drops idle clients (its `timeout` setting, a restart, a proxy): the pool's next
    # calls connect again instead of failing on the dead connections.
    pool = process_pool(redis_url, *(f"k{i}" for i in range(4)))
    admin = aioredis.Redis.from_url(redis_url)
    try:
        release = asyncio.Event()
        release.set()
        await asyncio.gather(*(_hold(pool, release) for _ in range(4)))
        killed = await admin.client_kill_filter(_type="normal", skipme=True)
        assert killed >= 1  # the pool's command connections, idle between calls
        names = await asyncio.gather(*(_hold(pool, release) for _ in range(4)))
        assert len(names) == 4
        statuses = await pool.astatus()
        assert sum(s.served for s in statuses) == 8
        assert sum(s.streams for s in statuses) == 0
    finally:
        await admin.aclose()
        await pool.aclose()


async def test_an_error_reply_fails_its_own_call_only(redis_url: str) -> None:
    # A script that Redis answers with an error (a key it writes holds the wrong type)
    # fails its caller; a call asked at the same time gets its reply, and the connections
    # stay usable.
    pool = process_pool(redis_url, "g1", "g2")
    admin = aioredis.Redis.from_url(redis_url)
    try:
        broken, fine = await pool.accounts()
        backend = redis_of(pool)
        held = await backend.try_acquire([broken.candidate()], limit=1, ttl=10)
        assert held.lease_id is not None
        stats = f"{backend.prefix}:stats:{broken.name}"
        await admin.set(stats, "not a hash")
        failing = asyncio.ensure_future(
            backend.release(broken.name, held.lease_id, served=True, error=None, cooldown=None)
        )
        leasing = asyncio.ensure_future(backend.try_acquire([fine.candidate()], limit=1, ttl=10))
        await asyncio.wait([failing, leasing])
        failed, leased = failing.exception(), leasing.result()
        assert failed is not None
        assert "WRONGTYPE" in str(failed)
        assert leased.account == fine.name
        await admin.delete(stats)
        async with pool.lease(None, within=10) as lease:  # the connections still serve
            assert lease.account is broken  # the other one is still held
    finally:
        await admin.aclose()
        await pool.aclose()


async def test_accounts_redis_lost_are_registered_again(redis_url: str) -> None:
    # Redis restarted without persistence (or was flushed): the load set that lists the
    # accounts is gone. Each process registers its own accounts again on its next call,
    # which then gets an idle account at once (it does not queue for accounts Redis no
    # longer knows, until its timeout).
    first, second = process_pool(redis_url, "r1", "r2"), process_pool(redis_url, "r3")
    admin = aioredis.Redis.from_url(redis_url)
    try:
        for pool in (first, second):
            async with pool.lease(None, within=10):
                pass
        await admin.flushdb()
        for pool in (first, second):
            backend = redis_of(pool)
            leased = backend.free_leases
            async with pool.lease(None, within=10) as lease:
                assert lease.account.name in pool.names
            assert backend.free_leases == leased + 1  # found idle, not handed over later
        names = {s.account for s in await first.astatus()}
        assert names == first.names | second.names  # both processes' accounts, listed again
    finally:
        await admin.aclose()
        await first.aclose()
        await second.aclose()
