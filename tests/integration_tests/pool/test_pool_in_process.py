"""The account pool in one process, without Redis (issue #13): the same scenarios via abatch."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from langchain_hailuo.chat_models import ChatHailuo
from langchain_hailuo.emulator.app import Emulator
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoNoAccountAvailableError,
    HailuoQuotaError,
)
from langchain_hailuo.pool import save_account
from tests.integration_tests.pool._pool import (
    Answer,
    Conversations,
    auths_of,
    fingerprints,
    pool_kwargs,
    pool_model,
)

CONVERSATIONS = 60
TURNS = 3


async def test_sixty_conversations_keep_their_chats_with_one_stream_per_account(
    pool_emulator: Emulator,
) -> None:
    # Two models on the same accounts share the process's leases, like two workers would.
    models = [pool_model(pool_emulator), pool_model(pool_emulator)]
    conversations = [Conversations(m) for m in models]
    ids = [f"c{i}" for i in range(CONVERSATIONS)]
    shares = [ids[0::2], ids[1::2]]
    seen: dict[str, list[Answer]] = {cid: [] for cid in ids}
    for turn in range(1, TURNS + 1):
        rounds = await asyncio.gather(
            *(c.turn(share, f"turn {turn}") for c, share in zip(conversations, shares, strict=True))
        )
        for got in rounds:
            for cid, answer in got.items():
                assert answer.error is None, answer.error
                seen[cid].append(answer)
    for cid, answers in seen.items():
        assert len({a.chat_id for a in answers}) == 1, cid
        assert len({a.account for a in answers}) == 1, cid
        assert answers[-1].content.endswith(f"This chat has {TURNS} turn(s)."), answers[-1]
    names = fingerprints(pool_emulator)
    assert {a[0].account for a in seen.values()} <= set(names)
    assert len({a[0].account for a in seen.values()}) == len(names)  # spread over all six
    assert max(pool_emulator.account_peaks.values()) == 1, pool_emulator.account_peaks
    statuses = await models[0].pool.astatus()  # type: ignore[union-attr]
    assert sum(s.served for s in statuses) == CONVERSATIONS * TURNS
    assert all(s.streams == 0 for s in statuses)
    for model in models:
        await model.aclose()


async def test_a_pool_s_accounts_share_one_http_client_and_keep_their_credentials(
    pool_emulator: Emulator,
) -> None:
    # One client (one session per loop) serves every account of the pool; each request
    # still carries its own account's token: the emulator names the account it saw.
    model = pool_model(pool_emulator)
    start = len(pool_emulator.requests_to("chat"))
    answers = await model.abatch([f"hello {i}" for i in range(12)])
    providers: list[Any] = list(model._providers.values())  # the real providers
    assert len(providers) > 1
    assert len({id(p.client) for p in providers}) == 1
    names = fingerprints(pool_emulator)
    seen_by_server = [r.account for r in pool_emulator.requests_to("chat")[start:]]
    said = [names[a.response_metadata["account"]] for a in answers]
    assert sorted(map(str, seen_by_server)) == sorted(said)
    assert len(set(said)) > 1
    await model.aclose()


async def test_a_call_cancelled_mid_stream_frees_its_account(pool_emulator: Emulator) -> None:
    model = pool_model(pool_emulator, accounts=auths_of(pool_emulator, ["p0"]), timeout=30)
    pool_emulator.fault("stall", account="p0", after=6)
    first_text = asyncio.Event()

    async def hold() -> None:
        async for chunk in model.astream("Hold this line."):
            if chunk.content:
                first_text.set()

    task = asyncio.create_task(hold())
    await asyncio.wait_for(first_text.wait(), 30)
    statuses = await model.pool.astatus()  # type: ignore[union-attr]
    assert [s.streams for s in statuses] == [1]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    answer = await model.ainvoke("And now?", timeout=30)
    assert answer.content == "You said: And now? This chat has 1 turn(s)."
    await model.aclose()


async def test_a_quota_wall_is_avoided_by_new_chats_and_ends_continued_ones(
    pool_emulator: Emulator,
) -> None:
    model = pool_model(pool_emulator)
    names = fingerprints(pool_emulator)
    ids = [f"q{i}" for i in range(12)]
    chats = Conversations(model)
    first = await chats.turn(ids, "turn 1")
    walled = first["q0"].account
    assert walled is not None
    pool_emulator.quota_wall(names[walled])
    owned = [cid for cid, a in first.items() if a.account == walled]

    hit = await chats.turn(owned[:1], "turn 2")
    assert str(hit[owned[0]].error).startswith("HailuoQuotaError")
    before = len(pool_emulator.requests_to("chat", account=names[walled]))

    fresh = await chats.turn([f"n{i}" for i in range(12)], "turn 1")
    assert all(a.error is None and a.account != walled for a in fresh.values())
    with pytest.raises(HailuoQuotaError, match="owns this chat"):
        await model.ainvoke(chats.histories[owned[-1]] + [HumanMessage("turn 2")])
    assert len(pool_emulator.requests_to("chat", account=names[walled])) == before
    status = {s.account: s for s in await model.pool.astatus()}  # type: ignore[union-attr]
    assert status[walled].cooling == "quota"
    assert "billing wall" in str(status[walled].last_error)
    await model.aclose()


async def test_a_new_chat_fails_over_before_its_first_byte(pool_emulator: Emulator) -> None:
    pool_emulator.quota_wall("p0")
    model = pool_model(pool_emulator, accounts=auths_of(pool_emulator, ["p0", "p1"]))
    answer = await model.ainvoke("Hello")
    names = fingerprints(pool_emulator)
    assert names[answer.response_metadata["account"]] == "p1"
    assert answer.content == "You said: Hello. This chat has 1 turn(s)."
    # The wall came as the answer's text and was never shown; p0 got the message once.
    assert len(pool_emulator.requests_to("chat", account="p0")) == 1
    await model.aclose()


async def test_when_every_account_rests_the_error_says_when_the_next_frees_up(
    pool_emulator: Emulator,
) -> None:
    model = pool_model(
        pool_emulator, accounts=auths_of(pool_emulator, ["p0", "p1"]), quota_cooldown=600
    )
    pool_emulator.quota_wall("p0")
    pool_emulator.rate_limit("p1", seconds=300)
    with pytest.raises(HailuoNoAccountAvailableError) as caught:
        await model.ainvoke("Hello", timeout=5)
    error = caught.value
    assert error.next_free_at is not None
    assert error.retry_after is not None
    assert 200 < error.retry_after <= 300  # the rate limit ends first
    assert "rate_limit until" in error.message
    assert "quota until" in error.message
    assert "The next one frees up at" in error.message
    # Later calls fail at once from the cool-downs, with no request to either account.
    before = len(pool_emulator.requests_to("chat"))
    with pytest.raises(HailuoNoAccountAvailableError):
        await model.ainvoke("Hello again", timeout=5)
    assert len(pool_emulator.requests_to("chat")) == before
    await model.aclose()


async def test_a_continued_chat_waits_for_its_own_account(pool_emulator: Emulator) -> None:
    model = pool_model(pool_emulator, accounts=auths_of(pool_emulator, ["p0", "p1"]))
    first = await model.ainvoke("One")
    owner = first.response_metadata["account"]
    history = [HumanMessage("One"), first]
    # Keep the owner busy with another new chat while the continued one is asked for.
    pool_emulator.fault("slow_first_byte", account=fingerprints(pool_emulator)[owner], delay=0.5)
    other = pool_model(
        pool_emulator,
        accounts=[a for a in auths_of(pool_emulator) if a.account_fingerprint == owner],
    )
    busy = asyncio.create_task(other.ainvoke("Busy"))
    while not any(s.streams for s in await other.pool.astatus()):  # type: ignore[union-attr]
        await asyncio.sleep(0.01)
    second = await model.ainvoke([*history, HumanMessage("Two")], timeout=60)
    await busy
    assert second.response_metadata["account"] == owner
    assert second.response_metadata["chat_id"] == first.response_metadata["chat_id"]
    assert second.content == "You said: Two. This chat has 2 turn(s)."
    assert max(pool_emulator.account_peaks.values()) == 1
    await model.aclose()
    await other.aclose()


async def test_a_rejected_token_rests_until_its_file_holds_a_new_login(
    pool_emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAILUO_ACCOUNTS_DIR", str(tmp_path))
    for name, auth in zip(["p0", "p1"], auths_of(pool_emulator, ["p0", "p1"]), strict=True):
        save_account(name, auth)
    model = pool_model(pool_emulator, accounts=[tmp_path])
    model_p0 = pool_model(pool_emulator, accounts=[tmp_path / "p0.json"])
    names = {v: k for k, v in fingerprints(pool_emulator).items()}
    start = await model_p0.ainvoke("Start")
    new_token = pool_emulator.rotate_token("p0")  # the old token now gets 401
    answers = [await model.ainvoke(f"Hi {i}") for i in range(3)]
    assert {a.response_metadata["account"] for a in answers} == {names["p1"]}
    status = {s.account: s for s in await model.pool.astatus()}  # type: ignore[union-attr]
    assert status[names["p0"]].cooling == "auth"
    assert status[names["p0"]].cooling_until is None
    with pytest.raises(HailuoAuthError, match="owns this chat"):
        await model.ainvoke([HumanMessage("Start"), start, HumanMessage("More")])

    # Logging the account in again (a new file) brings it back without a restart.
    fresh = auths_of(pool_emulator, ["p0"])[0]
    assert fresh.token.get_secret_value() == new_token
    time.sleep(0.01)  # a new modification time on coarse clocks
    save_account("p0", fresh)
    assert (await model_p0.ainvoke("Back?")).response_metadata["account"] == names["p0"]
    seen = {(await model.ainvoke(f"Again {i}")).response_metadata["account"] for i in range(4)}
    assert names["p0"] in seen
    await model.aclose()
    await model_p0.aclose()


def test_sync_invoke_and_status_work_on_a_pool(pool_emulator: Emulator) -> None:
    model = pool_model(pool_emulator)
    answer = model.invoke("Hello")
    assert isinstance(answer, AIMessage)
    assert answer.response_metadata["account"] in fingerprints(pool_emulator)
    statuses = model.pool.status()  # type: ignore[union-attr]
    assert sum(s.served for s in statuses) >= 1
    assert "token" not in repr(model).lower() or "accounts" not in repr(model)
    for auth in auths_of(pool_emulator):
        assert auth.token.get_secret_value() not in repr(model)
        assert auth.token.get_secret_value() not in str(statuses)
    model.close()


def test_one_account_with_no_pool_settings_uses_no_pool(pool_emulator: Emulator) -> None:
    kwargs = pool_emulator.model_kwargs(account="p0")
    model = ChatHailuo(**kwargs)
    assert model.pool is None
    assert pool_kwargs(pool_emulator)["base_url"] == kwargs["base_url"]
    answer = model.invoke("Hello")
    assert answer.response_metadata["account"] in fingerprints(pool_emulator)
    model.close()


async def test_a_single_account_model_and_a_pool_share_the_account_s_limit(
    pool_emulator: Emulator,
) -> None:
    # The same account as a model of its own and as the only account of a pool, in one
    # process: their answers take turns on it (a pool call waiting for the account is woken
    # when the single-account model's answer ends, and the other way round).
    (auth,) = auths_of(pool_emulator, ["p0"])
    kwargs = pool_kwargs(pool_emulator)
    single = ChatHailuo(
        **kwargs, token=auth.token, uuid=auth.uuid, device_id=auth.device_id, timeout=60
    )
    pooled = pool_model(pool_emulator, accounts=[auth], timeout=60)
    pool_emulator.reset_peak_streams()
    try:
        answers = await asyncio.gather(
            *(
                model.ainvoke([HumanMessage(f"call {i}")])
                for i in range(6)
                for model in (single, pooled)
            )
        )
        accounts = {a.response_metadata["account"] for a in answers}
        assert accounts == {auth.account_fingerprint}
        assert pool_emulator.account_peaks["p0"] == 1, pool_emulator.account_peaks
        assert len(pool_emulator.requests_to("chat", account="p0")) == 12
        (status,) = await pooled.pool.astatus()  # type: ignore[union-attr]
        assert (status.streams, status.served) == (0, 6)
    finally:
        await single.aclose()
        await pooled.aclose()
