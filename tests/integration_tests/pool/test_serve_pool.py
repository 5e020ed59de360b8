"""``hailuo serve`` over an account pool, driven with the real ``openai`` SDK.

Several emulator accounts; conversations sent as growing full histories must each stay on
one emulator chat of one account, every turn sending only its new message. With a pool URL
two server instances share the pool's leases and the conversation store through a real
``redis-server``: a conversation may hop between replicas turn by turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest

from langchain_hailuo.emulator.app import Emulator
from langchain_hailuo.emulator.core import EmulatorAccount, RecordedRequest
from langchain_hailuo.emulator.pytest_plugin import serving as serving_emulator
from langchain_hailuo.pool import save_account
from langchain_hailuo.serve.store import MemoryStore, RedisStore
from tests.integration_tests._chats import mark
from tests.integration_tests._serve import (
    API_KEY,
    MODEL,
    Served,
    check_lru_bound,
    serve_command,
    serving,
)
from tests.integration_tests.pool._pool import auths_of, pool_kwargs, pool_model

pytestmark = pytest.mark.timeout(120)

TURNS = 3


def sdk(served: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key=API_KEY, max_retries=0)


def converse(replicas: list[Served], cid: str, turns: int = TURNS) -> list[str]:
    """One conversation of ``turns`` turns as growing histories; turn ``i`` goes to replica
    ``i % len(replicas)``. Returns the answers."""
    history: list[Any] = []
    answers = []
    for turn in range(turns):
        history.append({"role": "user", "content": f"turn {turn} of {cid}"})
        with sdk(replicas[turn % len(replicas)]) as client:
            reply = client.chat.completions.create(model=MODEL, messages=history)
        text = reply.choices[0].message.content or ""
        history.append({"role": "assistant", "content": text})
        answers.append(text)
    return answers


def turns_of(emulator: Emulator, cid: str) -> list[RecordedRequest]:
    """The chat requests the emulator received for conversation ``cid``, in order."""
    return [
        r
        for r in emulator.requests_to("chat")
        if isinstance(r.body, dict) and str(r.body.get("content", "")).endswith(f" of {cid}")
    ]


def assert_one_chat_per_conversation(emulator: Emulator, cids: list[str]) -> set[str]:
    """Each conversation: one emulator chat, one account, only the new message each turn.

    Returns the accounts the conversations used.
    """
    used: set[str] = set()
    for cid in cids:
        requests = turns_of(emulator, cid)
        assert [r.body["content"] for r in requests] == [f"turn {t} of {cid}" for t in range(TURNS)]
        assert len({r.path for r in requests}) == 1, f"{cid} went to several chats"
        assert len({r.account for r in requests}) == 1, f"{cid} went to several accounts"
        used.add(str(requests[0].account))
    return used


def run_conversations(replicas: list[Served], cids: list[str]) -> dict[str, list[str]]:
    """The conversations at the same time (one thread each)."""
    with ThreadPoolExecutor(max_workers=len(cids)) as pool:
        futures = {cid: pool.submit(converse, replicas, cid) for cid in cids}
        return {cid: future.result() for cid, future in futures.items()}


# --------------------------------------------------------------------------- one process


def test_conversations_over_a_pool_each_stay_on_one_chat_and_account(
    pool_emulator: Emulator,
) -> None:
    cids = [f"c{i}" for i in range(6)]
    pool_emulator.reset_peak_streams()
    with serving(pool_emulator, chat=pool_model(pool_emulator)) as served:
        answers = run_conversations([served], cids)
    for cid in cids:
        assert answers[cid][-1].endswith(f"This chat has {TURNS} turn(s).")
    used = assert_one_chat_per_conversation(pool_emulator, cids)
    assert len(used) > 1  # new chats were spread over the accounts
    assert max(pool_emulator.account_peaks.values()) == 1


def test_models_are_listed_over_the_pool() -> None:
    accounts = [
        EmulatorAccount(name="a", models=["MiniMax-M3", "Only-A"]),
        EmulatorAccount(name="b", models=["MiniMax-M3", "Only-B"]),
    ]
    with (
        serving_emulator(Emulator(accounts=accounts), name="hailuo-serve-pool-models") as emu,
        serving(emu, chat=pool_model(emu)) as served,
        sdk(served) as client,
    ):
        # An account learns its models from the service with its first answer.
        for turn in range(8):
            if {r.account for r in emu.requests_to("chat")} == {"a", "b"}:
                break
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"hello {turn}"}]
            )
        assert {r.account for r in emu.requests_to("chat")} == {"a", "b"}
        assert [m.id for m in client.models.list()] == ["MiniMax-M3", "Only-A", "Only-B"]


def test_a_pool_with_every_account_walled_gets_503_with_retry_after(
    pool_emulator: Emulator,
) -> None:
    names = list(pool_emulator.accounts)[:2]
    chat = pool_model(pool_emulator, accounts=auths_of(pool_emulator, names), timeout=5.0)
    for name in names:
        pool_emulator.quota_wall(name)
    with serving(pool_emulator, chat=chat) as served, sdk(served) as client:
        with pytest.raises(openai.InternalServerError):  # both walls met, one after the other
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "a"}])
        asked = mark(pool_emulator)
        with pytest.raises(openai.InternalServerError) as caught:  # both known to be resting
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "b"}])
    assert mark(pool_emulator) == asked  # no account was asked again
    assert caught.value.status_code == 503
    assert int(caught.value.response.headers["Retry-After"]) > 3000  # the quota cool-down
    body: Any = caught.value.body
    assert body["type"] == "server_error"
    assert "quota" in body["message"].lower()


# --------------------------------------------------------------------------- Redis


@contextlib.contextmanager
def replicas(emulator: Emulator, redis_url: str, count: int = 2) -> Iterator[list[Served]]:
    """``count`` server instances over the emulator's accounts, sharing ``redis_url``."""
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(
                serving(emulator, chat=pool_model(emulator, pool_url=redis_url, lease_ttl=5.0))
            )
            for _ in range(count)
        ]


def test_replicas_share_conversations_and_accounts_through_redis(
    pool_emulator: Emulator, redis_url: str
) -> None:
    cids = [f"r{i}" for i in range(6)]
    pool_emulator.reset_peak_streams()
    with replicas(pool_emulator, redis_url) as both:
        assert all(isinstance(s.server.answerer.store, RedisStore) for s in both)
        answers = run_conversations(both, cids)  # turns alternate A, B, A
    for cid in cids:
        assert [a.rsplit(" ", 2)[-2] for a in answers[cid]] == ["1", "2", "3"]
    used = assert_one_chat_per_conversation(pool_emulator, cids)
    assert len(used) > 1
    assert max(pool_emulator.account_peaks.values()) == 1  # one stream per account, across both


def test_turn_two_on_another_replica_continues_the_chat_sending_only_the_new_message(
    pool_emulator: Emulator, redis_url: str
) -> None:
    with replicas(pool_emulator, redis_url) as (a, b):
        history: list[Any] = [{"role": "user", "content": "turn 0 of solo"}]
        with sdk(a) as client:
            first = client.chat.completions.create(model=MODEL, messages=history)
        history += [
            {"role": "assistant", "content": first.choices[0].message.content},
            {"role": "user", "content": "turn 1 of solo"},
        ]
        with sdk(b) as client:
            second = client.chat.completions.create(model=MODEL, messages=history)
    assert (second.choices[0].message.content or "").endswith("This chat has 2 turn(s).")
    requests = turns_of(pool_emulator, "solo")
    assert [r.body["content"] for r in requests] == ["turn 0 of solo", "turn 1 of solo"]
    assert len({r.path for r in requests}) == 1
    assert len({r.account for r in requests}) == 1


def test_a_response_kept_on_one_replica_is_continued_on_another_through_redis(
    pool_emulator: Emulator, redis_url: str
) -> None:
    with replicas(pool_emulator, redis_url) as (a, b):
        with sdk(a) as client:
            first = client.responses.create(model=MODEL, input="turn 0 of kept")
        with sdk(b) as client:
            second = client.responses.create(
                model=MODEL, input="turn 1 of kept", previous_response_id=first.id
            )
    assert second.output_text.endswith("This chat has 2 turn(s).")
    requests = turns_of(pool_emulator, "kept")
    assert [r.body["content"] for r in requests] == ["turn 0 of kept", "turn 1 of kept"]
    assert len({r.path for r in requests}) == 1


async def test_the_redis_store_is_bounded_and_expires(redis_url: str) -> None:
    store = RedisStore(redis_url, max_entries=2, ttl=60, name="bounds")
    try:
        await check_lru_bound(store)
    finally:
        await store.aclose()
    short = RedisStore(redis_url, ttl=0.2, name="ttl")
    try:
        await short.put("x", {"chat_id": "9"})
        assert await short.get("x") == {"chat_id": "9"}
        await asyncio.sleep(0.5)
        assert await short.get("x") is None
    finally:
        await short.aclose()


# --------------------------------------------------------------------------- the command


@pytest.mark.parametrize("source", ["tokens-and-redis", "accounts-dir"])
def test_the_hailuo_serve_command_over_a_pool(
    pool_emulator: Emulator, tmp_path: Path, source: str, request: pytest.FixtureRequest
) -> None:
    """The real command over ``HAILUO_TOKENS`` and ``--pool-url``, or ``--accounts-dir``: a
    banner naming the pool (no secret), answers, and nothing secret in its output."""
    auths = auths_of(pool_emulator, list(pool_emulator.accounts)[:3])
    tokens = [a.token.get_secret_value() for a in auths]
    kwargs = pool_kwargs(pool_emulator)
    env = {
        **os.environ,
        "HAILUO_PROTOCOL": "agent",
        "HAILUO_BASE_URL": kwargs["base_url"],
        "HAILUO_STREAM_URL": kwargs["stream_url"],
        "HAILUO_SERVE_API_KEYS": API_KEY,
        "HAILUO_ACCOUNTS_DIR": str(tmp_path / "unused"),
        "HAILUO_AUTH_FILE": os.devnull,
    }
    for name in ("HAILUO_TOKEN", "HAILUO_TOKENS", "HAILUO_POOL_URL"):
        env.pop(name, None)
    if source == "accounts-dir":
        folder = tmp_path / "accounts"
        for index, auth in enumerate(auths):
            save_account(f"a{index}", auth, env={"HAILUO_ACCOUNTS_DIR": str(folder)})
        flags = ["--accounts-dir", str(folder)]
        expected = "over 3 accounts (a pool in this process)"
    else:
        redis_server = request.getfixturevalue("redis_server")  # skips without a redis-server
        env["HAILUO_TOKENS"] = ",".join(tokens)
        flags = ["--pool-url", redis_server]
        expected = f"over 3 accounts (a pool shared through {redis_server})"
    with serve_command(env, *flags) as command:
        assert expected in command.banner
        with openai.OpenAI(base_url=command.base_url, api_key=API_KEY, max_retries=0) as client:
            reply = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "turn 0 of cmd"}]
            )
        assert (reply.choices[0].message.content or "").startswith("You said: turn 0 of cmd")
        out, err = command.stop()
    for secret in (*tokens, API_KEY):
        assert secret not in command.banner + out + err


# --------------------------------------------------------------------------- a failing store


def test_an_unreachable_conversation_store_is_a_503(pool_emulator: Emulator) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    store = RedisStore(f"redis://:hunter2@127.0.0.1:{port}/0")
    start = mark(pool_emulator)
    with (
        serving(pool_emulator, store=store) as served,
        sdk(served) as client,
        pytest.raises(openai.InternalServerError) as caught,
    ):
        client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c"},
            ],
        )
    assert caught.value.status_code == 503
    assert "conversation store" in str(caught.value.body)
    assert "hunter2" not in str(caught.value.body)
    assert mark(pool_emulator) == start  # nothing was sent


class ForgetfulStore(MemoryStore):
    """Finds nothing it was not given, and fails to store anything."""

    async def put(self, key: str, value: Any) -> None:
        raise ConnectionError("the store went away")


def test_a_store_that_fails_to_remember_still_gives_the_answer(
    pool_emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    with serving(pool_emulator, store=ForgetfulStore()) as served, sdk(served) as client:
        reply = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "remember me"}]
        )
    assert (reply.choices[0].message.content or "").startswith("You said: remember me")
    assert "failed to remember a chat: ConnectionError" in caplog.text
