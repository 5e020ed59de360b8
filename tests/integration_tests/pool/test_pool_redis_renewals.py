"""Leases held longer than their TTL stay held (renewed together), and a lost one is noted."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
import redis.asyncio as aioredis

from langchain_hailuo.pool import AccountPool
from langchain_hailuo.pool.redis_backend import RedisBackend
from tests.integration_tests.pool._pool import process_pool

TTL = 0.6


def _pool(url: str, *users: str) -> AccountPool:
    """A pool with a short lease TTL (another process's)."""
    return process_pool(url, *users, lease_ttl=TTL)


async def test_leases_held_past_their_ttl_stay_held_and_are_renewed_together(
    redis_url: str,
) -> None:
    here, there = _pool(redis_url, "n1", "n2", "n3"), _pool(redis_url, "n1", "n2", "n3")
    try:
        release = asyncio.Event()
        held: list[bool] = []

        async def hold() -> None:
            async with here.lease(None, within=5) as lease:
                await release.wait()
                held.append(not lease.lost)

        holders = [asyncio.create_task(hold()) for _ in range(3)]
        backend = here.backend
        assert isinstance(backend, RedisBackend)
        while backend.free_leases < 3:
            await asyncio.sleep(0.01)
        batches: list[int] = []
        renew = backend.renew

        async def counted(leases: Any, *, ttl: float) -> list[bool]:
            batches.append(len(leases))
            return await renew(leases, ttl=ttl)

        backend.renew = counted  # type: ignore[method-assign]
        await asyncio.sleep(TTL * 3)  # three TTLs: unrenewed, the leases would be gone
        statuses = await there.astatus()
        assert [s.streams for s in statuses] == [1, 1, 1]
        with pytest.raises(Exception, match="No account"):  # the other process waits
            async with there.lease(None, within=0.2):
                pass
        release.set()
        await asyncio.gather(*holders)
        assert held == [True, True, True]
        await asyncio.sleep(0)  # the renewing task ended with the last lease: not left asleep
        assert not [t for t in asyncio.all_tasks() if "_Renewals" in repr(t.get_coro())]
        # A renewal every third of the TTL, of the 3 leases together (one script).
        assert sum(batches) >= 3 * 8
        assert len(batches) * 2 <= sum(batches)
    finally:
        await here.aclose()
        await there.aclose()


async def test_a_lease_that_expired_while_held_is_noted_lost(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = _pool(redis_url, "m1")
    admin = aioredis.Redis.from_url(redis_url)
    try:
        async with pool.lease(None, within=5) as lease:
            key = "hailuo-pool:default:leases"  # its expiry moved to the past: as if it stalled
            members: list[Any] = await admin.zrange(key, 0, -1)
            await admin.zadd(key, dict.fromkeys(members, 0))
            with caplog.at_level(logging.WARNING, logger="langchain_hailuo.pool.scheduler"):
                while not lease.lost:
                    await asyncio.sleep(0.05)
        assert "expired while its answer streamed" in caplog.text
        caplog.clear()
        async with pool.lease(None, within=5) as lease:  # released at once: no false alarm
            pass
        await asyncio.sleep(TTL)
        assert not lease.lost
        assert "expired" not in caplog.text
    finally:
        await admin.aclose()
        await pool.aclose()
