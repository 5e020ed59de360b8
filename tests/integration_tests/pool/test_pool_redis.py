"""The account pool across processes, through a real ``redis-server`` (issue #13)."""

from __future__ import annotations

import asyncio
import time

import pytest

from langchain_hailuo.emulator.app import Emulator
from langchain_hailuo.pool import AccountPool, AccountStatus
from tests.integration_tests.pool._pool import Answer, answer_of, auths_of, fingerprints
from tests.integration_tests.pool.conftest import Worker, ask_all

CONVERSATIONS = 60
TURNS = 3


def _ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def _turns(workers: list[Worker], ids: list[list[str]], turn: int) -> dict[str, Answer]:
    """One turn of every conversation, each worker its own share, both at once."""
    replies = ask_all(workers, [{"op": "turn", "ids": i, "text": f"turn {turn}"} for i in ids])
    return {cid: answer_of(a) for reply in replies for cid, a in reply.items()}


def test_two_processes_keep_each_conversation_on_its_chat_and_one_stream_per_account(
    pool_emulator: Emulator, workers: list[Worker]
) -> None:
    ids = _ids("c", CONVERSATIONS)
    shares = [ids[0::2], ids[1::2]]
    seen: dict[str, list[Answer]] = {cid: [] for cid in ids}
    for turn in range(1, TURNS + 1):
        for cid, answer in _turns(workers, shares, turn).items():
            assert answer.error is None, answer.error
            seen[cid].append(answer)
    names = fingerprints(pool_emulator)
    for cid, answers in seen.items():
        assert len({a.chat_id for a in answers}) == 1, cid
        assert len({a.account for a in answers}) == 1, cid
        assert answers[-1].content.endswith(f"This chat has {TURNS} turn(s)."), answers[-1]
    used = {names[a[0].account] for a in seen.values() if a[0].account}
    assert len(used) > 1  # new chats were spread over the accounts
    peaks = pool_emulator.account_peaks
    assert set(peaks) <= set(pool_emulator.accounts)
    assert max(peaks.values()) == 1, peaks
    assert len(pool_emulator.requests_to("chat")) == CONVERSATIONS * TURNS


def test_a_killed_worker_frees_its_account_within_the_lease_ttl(
    pool_emulator: Emulator, redis_url: str
) -> None:
    ttl = 2.0
    names = ["p0"]  # one account, so the held stream is on it
    worker = Worker(
        pool_emulator,
        redis_url,
        lease_ttl=ttl,
        accounts=[a.to_store_dict() for a in auths_of(pool_emulator, names)],
    )
    pool_emulator.fault("stall", account="p0", after=6)
    try:
        held = worker.ask({"op": "hold"})
        account = auths_of(pool_emulator, names)[0].account_fingerprint
        assert held["busy"] == [account]
        worker.process.kill()
        worker.process.wait()
        killed = time.monotonic()
    finally:
        worker.close()

    async def take_it() -> float:
        pool = AccountPool(auths_of(pool_emulator, names), pool_url=redis_url, lease_ttl=ttl)
        try:
            async with pool.lease(account, within=ttl + 30.0) as lease:
                assert lease.account.name == account
                return time.monotonic() - killed
        finally:
            await pool.aclose()

    waited = asyncio.run(take_it())
    # Freed by the lease's expiry (not by the dead worker): within the TTL, with a generous
    # margin for a loaded machine.
    assert waited <= ttl + 15.0


def test_a_quota_wall_is_avoided_by_both_processes_and_its_chats_get_the_quota_error(
    pool_emulator: Emulator, workers: list[Worker]
) -> None:
    ids = _ids("q", 24)
    shares = [ids[0::2], ids[1::2]]
    first = _turns(workers, shares, 1)
    assert all(a.error is None for a in first.values())
    names = fingerprints(pool_emulator)
    # An account the first process put chats on. The share rule spreads each process's new
    # chats over its part of the pool, so the second process may own chats on it or none:
    # what must hold is that it learns of the wall through Redis, not by meeting it.
    walled = min(a for a in {first[cid].account for cid in shares[0]} if a)
    pool_emulator.quota_wall(names[walled])
    owned = [[cid for cid in share if first[cid].account == walled] for share in shares]
    assert owned[0]

    # A continued chat on the walled account meets the wall: the account rests in Redis.
    reply = workers[0].ask({"op": "turn", "ids": owned[0][:1], "text": "turn 2"})
    assert reply[owned[0][0]]["error"].startswith("HailuoQuotaError")
    before = len(pool_emulator.requests_to("chat", account=names[walled]))

    # New chats from both processes avoid it, and every continued chat on it, in whichever
    # process owns it, gets the typed quota error without another request to the account.
    for cid, answer in _turns(workers, [_ids("n", 10), _ids("m", 10)], 1).items():
        assert answer.error is None, (cid, answer.error)
        assert answer.account != walled
    continued = _turns(workers, owned, 2)
    assert sorted(continued) == sorted(owned[0] + owned[1])
    for answer in continued.values():
        assert answer.error is not None
        assert answer.error.startswith("HailuoQuotaError"), answer.error
        assert "owns this chat" in answer.error
    assert len(pool_emulator.requests_to("chat", account=names[walled])) == before
    statuses = {s.account: s for s in asyncio.run(_status(pool_emulator, workers))}
    assert statuses[walled].cooling == "quota"
    assert statuses[walled].cooling_until is not None


async def _status(emu: Emulator, workers: list[Worker]) -> list[AccountStatus]:
    """The pool's status as a third process would see it (from Redis)."""
    pool = AccountPool(auths_of(emu), pool_url=workers[0].url)
    try:
        return await pool.astatus()
    finally:
        await pool.aclose()


@pytest.mark.parametrize("max_concurrency", [2])
def test_max_concurrency_is_per_account_across_processes(
    pool_emulator: Emulator, redis_url: str, max_concurrency: int
) -> None:
    started = [
        Worker(
            pool_emulator,
            redis_url,
            max_concurrency=max_concurrency,
            accounts=[a.to_store_dict() for a in auths_of(pool_emulator, ["p0"])],
        )
        for _ in range(2)
    ]
    try:
        pool_emulator.reset_peak_streams()
        ids = _ids("k", 8)
        answers = _turns(started, [ids[0::2], ids[1::2]], 1)
        assert all(a.error is None for a in answers.values())
        assert pool_emulator.account_peaks["p0"] <= max_concurrency
    finally:
        for worker in started:
            worker.close()
