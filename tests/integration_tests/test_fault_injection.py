"""Issue #7: fault injection, re-authentication, cancellation and concurrency, end to end.

Everything runs over real loopback sockets: the real aiohttp clients of both providers
(``HailuoAI``, ``MiniMaxAgent``) and ``ChatHailuo`` (sync and async, invoke and stream)
against the emulator, served from its own thread. Each fault must end in the documented
typed error or in a successful retry, and in every case:

- no text is duplicated (answers are compared with the scripted text, POSTs are counted);
- text already received is never lost (it travels on the error as ``partial_text``);
- the response is closed (the emulator sees the client leave; no unclosed-session warning);
- the same model / provider object answers the next call.

Retries happen only before the first byte and honour ``Retry-After``; ``max_retries=0``
means none. Timeouts and ``Retry-After`` values are tiny so the module runs in seconds.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import warnings
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from langchain_core.messages import AIMessageChunk, BaseMessage, HumanMessage
from langgraph.graph import START, MessagesState, StateGraph
from pydantic import SecretStr

from langchain_hailuo import ChatHailuo
from langchain_hailuo._http import HttpOptions, Timeouts
from langchain_hailuo.agent.provider import MiniMaxAgent
from langchain_hailuo.auth import AuthManager, AuthStore
from langchain_hailuo.emulator import Emulator
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoError,
    HailuoQuotaError,
    HailuoRateLimitError,
    HailuoServerError,
    HailuoStreamInterruptedError,
    HailuoTimeoutError,
)
from langchain_hailuo.types import AuthResult, FinishReason
from langchain_hailuo.v4.provider import HailuoAI
from tests.integration_tests._chats import PROTOCOLS, model_for

pytestmark = pytest.mark.timeout(60)

MODES = ["invoke", "stream", "ainvoke", "astream"]
ANSWER = (
    "Faults are part of life on the wire: answers break off, servers stall, tokens expire. "
    "This reply is long enough to span many frames."
)
RETRY_AFTER = 0.15
TIMEOUT = 1.0
"""ChatHailuo's total budget in the stall tests (its idle timeout is the same)."""


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _fresh(emulator: Emulator) -> Iterator[None]:
    """No fault, script or delay leaks from one test into the next.

    Garbage left by earlier tests (of any module) is collected first, so the leak check
    at the end of a test only sees what that test left open.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gc.collect()
    yield
    emulator.clear_faults()
    emulator._state.scripts.clear()
    emulator.agent.chunk_delay = emulator.v4.chunk_delay = 0.0


def set_delay(emulator: Emulator, seconds: float) -> None:
    emulator.agent.chunk_delay = emulator.v4.chunk_delay = seconds


def chat_posts(emulator: Emulator) -> int:
    return len(emulator.requests_to("chat"))


def wait_for(predicate: Any, what: str, limit: float = 5.0) -> float:
    """Poll ``predicate`` (from any thread) until true; returns the seconds it took."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > limit:
            raise AssertionError(f"not within {limit} s: {what}")
        time.sleep(0.005)
    return time.monotonic() - start


async def await_for(predicate: Any, what: str, limit: float = 5.0) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > limit:
            raise AssertionError(f"not within {limit} s: {what}")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


class Received:
    """What a call handed to the caller before it ended (streamed text, for the checks)."""

    def __init__(self) -> None:
        self.text = ""


async def call(model: ChatHailuo, mode: str, prompt: Any, seen: Received, **kwargs: Any) -> str:
    """Run one ChatHailuo call in ``mode``; returns the answer text (streams are summed)."""
    if mode == "invoke":
        return await asyncio.to_thread(lambda: model.invoke(prompt, **kwargs).text)
    if mode == "ainvoke":
        return (await model.ainvoke(prompt, **kwargs)).text
    if mode == "stream":

        def consume() -> str:
            for chunk in model.stream(prompt, **kwargs):
                seen.text += chunk.text
            return seen.text

        return await asyncio.to_thread(consume)
    async for chunk in model.astream(prompt, **kwargs):
        seen.text += chunk.text
    return seen.text


async def close_and_check_no_leak(model: ChatHailuo) -> None:
    """Close the model's sessions; nothing may warn about an unclosed session or response."""
    await model.aclose()
    await asyncio.to_thread(model.close)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    leaks = [w for w in caught if "nclosed" in str(w.message)]
    assert not leaks, [str(w.message) for w in leaks]


async def assert_answers(emulator: Emulator, model: ChatHailuo, mode: str, prompt: str) -> None:
    """The next scripted answer comes back whole: nothing duplicated, nothing lost."""
    emulator.script(ANSWER)
    assert await call(model, mode, prompt, Received()) == ANSWER


def assert_partial(error: HailuoError, seen: Received) -> None:
    """The error carries the text received so far: never less than what was streamed."""
    assert error.partial_text, "an answer broke off mid-way: partial_text must hold its start"
    assert ANSWER.startswith(error.partial_text)
    assert error.partial_text.startswith(seen.text)
    assert error.chat_id


# ----------------------------------------------------------------------------- 1. faults


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("kind", "params", "error"),
    [
        ("drop", {"after": 5}, HailuoStreamInterruptedError),
        ("drop", {"after_bytes": 900}, HailuoStreamInterruptedError),
        ("stream_error", {"after": 3}, HailuoServerError),
        ("stall", {"after": 5}, HailuoTimeoutError),
    ],
    ids=["drop", "drop-mid-line", "stream-error", "stall"],
)
async def test_mid_answer_faults_raise_typed_with_the_partial_text(
    emulator: Emulator,
    *,
    protocol: str,
    mode: str,
    kind: str,
    params: dict[str, Any],
    error: type[HailuoError],
) -> None:
    model = model_for(emulator, protocol, timeout=TIMEOUT if kind == "stall" else None)
    emulator.script(ANSWER)
    emulator.fault(kind, protocol=protocol, **params)
    before, gone = chat_posts(emulator), len(emulator.disconnects)
    seen = Received()
    with pytest.raises(error) as caught:
        await call(model, mode, "Tell me about faults.", seen)
    assert_partial(caught.value, seen)
    assert chat_posts(emulator) == before + 1  # never re-sent after the first byte
    if kind == "stall":  # the client gave up and closed the response: the server saw it go
        await await_for(lambda: len(emulator.disconnects) == gone + 1, "the disconnect")
    # the same model answers the next call, without any duplicated text
    await assert_answers(emulator, model, mode, "Again, please.")
    await close_and_check_no_leak(model)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_rate_limit_is_retried_after_retry_after(
    emulator: Emulator, protocol: str, mode: str
) -> None:
    model = model_for(emulator, protocol)
    emulator.script(ANSWER)
    emulator.fault("http_429", protocol=protocol, seconds=RETRY_AFTER)
    before = chat_posts(emulator)
    started = time.monotonic()
    assert await call(model, mode, "Rate limited?", Received()) == ANSWER
    assert time.monotonic() - started >= RETRY_AFTER  # Retry-After was honoured
    assert chat_posts(emulator) == before + 2  # one refused, one answered
    await close_and_check_no_leak(model)


@pytest.mark.parametrize("mode", ["invoke", "astream"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_max_retries_zero_means_no_retry(
    emulator: Emulator, protocol: str, mode: str
) -> None:
    model = model_for(emulator, protocol, max_retries=0)
    emulator.fault("http_429", protocol=protocol, seconds=RETRY_AFTER)
    before = chat_posts(emulator)
    with pytest.raises(HailuoRateLimitError) as caught:
        await call(model, mode, "No retries.", Received())
    assert caught.value.retry_after == pytest.approx(RETRY_AFTER)
    assert caught.value.partial_text == ""
    assert chat_posts(emulator) == before + 1
    emulator.fault("http_500", protocol=protocol)
    with pytest.raises(HailuoServerError):
        await call(model, mode, "No retries.", Received())
    assert chat_posts(emulator) == before + 2
    await assert_answers(emulator, model, mode, "Now it works.")
    await close_and_check_no_leak(model)


@pytest.mark.parametrize("mode", ["invoke", "astream"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_server_error_on_a_chat_turn_is_not_retried(
    emulator: Emulator, protocol: str, mode: str
) -> None:
    # a 5xx arrives after the message was sent: the server may have taken it, so it is
    # never sent again; the error says so and names the chat to look in
    model = model_for(emulator, protocol)
    emulator.script(ANSWER)
    emulator.fault("http_500", protocol=protocol)
    before = chat_posts(emulator)
    with pytest.raises(HailuoServerError) as caught:
        await call(model, mode, "Server error?", Received())
    assert caught.value.may_have_arrived
    assert "may have reached the server" in str(caught.value)
    assert chat_posts(emulator) == before + 1
    await assert_answers(emulator, model, mode, "Works again.")
    await close_and_check_no_leak(model)


@pytest.mark.parametrize("mode", ["invoke", "astream"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_no_first_byte_within_the_timeout(
    emulator: Emulator, protocol: str, mode: str
) -> None:
    model = model_for(emulator, protocol, timeout=0.3, max_retries=0)
    emulator.fault("slow_first_byte", protocol=protocol, delay=1.0)
    before = chat_posts(emulator)
    with pytest.raises(HailuoTimeoutError) as caught:
        await call(model, mode, "Slow?", Received())
    assert caught.value.partial_text == ""
    assert chat_posts(emulator) == before + 1
    await assert_answers(emulator, model, mode, "Faster now.")
    await close_and_check_no_leak(model)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_malformed_line_is_skipped(emulator: Emulator, protocol: str) -> None:
    model = model_for(emulator, protocol)
    emulator.script(ANSWER)
    emulator.fault("malformed_line", protocol=protocol, after=2)
    assert await call(model, "astream", "Broken line?", Received()) == ANSWER
    await close_and_check_no_leak(model)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_bot_page_is_an_auth_error_without_retry(emulator: Emulator, protocol: str) -> None:
    model = model_for(emulator, protocol)
    emulator.fault("http_403_bot", protocol=protocol)
    before = chat_posts(emulator)
    with pytest.raises(HailuoAuthError, match="hailuo login"):
        await call(model, "ainvoke", "Blocked?", Received())
    assert chat_posts(emulator) == before + 1
    await assert_answers(emulator, model, "ainvoke", "Let in.")
    await close_and_check_no_leak(model)


@pytest.mark.parametrize("mode", ["invoke", "astream"])
async def test_agent_only_faults(emulator: Emulator, mode: str) -> None:
    model = model_for(emulator, "agent")
    # a busy session (409) before the first byte is retried
    emulator.script(ANSWER)
    emulator.fault("http_409")
    before = chat_posts(emulator)
    assert await call(model, mode, "Busy?", Received()) == ANSWER
    assert chat_posts(emulator) == before + 2
    # a transient session failure in the stream: the service took the message, so it is
    # not sent again (no replacement session); the error says it may have been received
    emulator.script(ANSWER)  # the failed turn uses up the reply
    emulator.fault("session_transient", after=0)
    sessions, before = len(emulator.agent.sessions), chat_posts(emulator)
    with pytest.raises(HailuoServerError, match="may have been received"):
        await call(model, mode, "Sandbox?", Received())
    assert len(emulator.agent.sessions) == sessions + 1
    assert chat_posts(emulator) == before + 1
    # a billing wall as the whole answer is a quota error, not text
    emulator.fault("quota_wall")
    seen = Received()
    with pytest.raises(HailuoQuotaError):
        await call(model, mode, "Credits?", seen)
    assert seen.text == ""
    await assert_answers(emulator, model, mode, "Next.")
    await close_and_check_no_leak(model)


# ----------------------------------------------------------------------------- providers


def provider_for(emulator: Emulator, protocol: str, **options: Any) -> tuple[Any, AuthResult]:
    """The bare provider of ``protocol`` with fast timeouts, and the account's credentials."""
    account = emulator.default_account
    opts = HttpOptions(
        timeouts=Timeouts(connect=2.0, first_byte=1.0, idle=1.0, total=10.0),
        backoff_base=0.01,
        backoff_max=0.05,
        **options,
    )
    if protocol == "v4":
        auth = AuthResult(token=account.token, uuid=account.uuid, device_id=account.device_id)
        return HailuoAI(base_url=emulator.url, options=opts), auth
    auth = AuthResult(token=account.token, uuid=account.uuid, device_id=account.tab_device_id)
    agent = MiniMaxAgent(
        base_url=emulator.agent_url,
        stream_url=emulator.agent_stream_url,
        options=opts,
    )
    return agent, auth


async def provider_text(provider: Any, auth: AuthResult, seen: Received, **kwargs: Any) -> str:
    """Run ``create_authed`` to the end; strings are the answer's deltas."""
    finish = None
    messages = [{"role": "user", "content": "Provider, tell me."}]
    async for item in provider.create_authed("", messages, auth, **kwargs):
        if isinstance(item, str):
            seen.text += item
        elif isinstance(item, FinishReason):
            finish = item
    assert finish is not None, "a good stream always ends with FinishReason"
    return seen.text


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("kind", "params", "error"),
    [
        ("drop", {"after": 5}, HailuoStreamInterruptedError),
        ("stream_error", {"after": 3}, HailuoServerError),
        ("stall", {"after": 5}, HailuoTimeoutError),
        ("http_429", {"seconds": RETRY_AFTER}, None),
    ],
)
async def test_providers_under_faults(
    emulator: Emulator,
    protocol: str,
    kind: str,
    params: dict[str, Any],
    error: type[HailuoError] | None,
) -> None:
    provider, auth = provider_for(emulator, protocol)
    async with provider:
        emulator.script(ANSWER)
        emulator.fault(kind, protocol=protocol, **params)
        before = chat_posts(emulator)
        seen = Received()
        if error is None:
            assert await provider_text(provider, auth, seen) == ANSWER
            assert chat_posts(emulator) == before + 2
        else:
            with pytest.raises(error) as caught:
                await provider_text(provider, auth, seen)
            assert_partial(caught.value, seen)
            assert chat_posts(emulator) == before + 1
        emulator.script(ANSWER)
        assert await provider_text(provider, auth, Received()) == ANSWER


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_provider_max_retries_zero(emulator: Emulator, protocol: str) -> None:
    provider, auth = provider_for(emulator, protocol, max_retries=0)
    async with provider:
        emulator.fault("http_429", protocol=protocol, seconds=RETRY_AFTER)
        before = chat_posts(emulator)
        with pytest.raises(HailuoRateLimitError):
            await provider_text(provider, auth, Received())
        assert chat_posts(emulator) == before + 1


# ----------------------------------------------------------------------------- 2. re-auth


def rejected_requests(emulator: Emulator) -> int:
    """Requests the emulator refused as unauthorised (their token matched no account)."""
    return sum(1 for r in emulator.requests if r.protocol and r.account is None)


def file_model(
    emulator: Emulator, protocol: str, path: Path, monkeypatch: pytest.MonkeyPatch
) -> ChatHailuo:
    """A model whose credentials come from the auth file only (as after ``hailuo login``)."""
    for name in ("HAILUO_TOKEN", "HAILUO_UUID", "HAILUO_DEVICE_ID", "HAILUO_AUTH_FILE"):
        monkeypatch.delenv(name, raising=False)
    kwargs = emulator.model_kwargs(protocol=protocol)
    account = emulator.default_account
    AuthStore(path).save(
        AuthResult(
            token=kwargs.pop("token"), uuid=kwargs.pop("uuid"), device_id=kwargs.pop("device_id")
        )
    )
    assert account.token not in repr(kwargs)
    return ChatHailuo(**kwargs, auth_file=path)


def write_token_from_another_thread(path: Path, token: str) -> None:
    """What a ``hailuo login`` in another process does: replace the file's token."""

    def login() -> None:
        store = AuthStore(path)
        current = store.load()
        assert current is not None
        store.save(current.model_copy(update={"token": SecretStr(token)}))

    thread = threading.Thread(target=login)
    thread.start()
    thread.join()


@pytest.mark.parametrize("mode", ["invoke", "astream"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_rejected_token_reauthenticates_once_from_the_auth_file(
    emulator: Emulator,
    protocol: str,
    mode: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "auth.json"
    model = file_model(emulator, protocol, path, monkeypatch)
    await assert_answers(emulator, model, mode, "Before.")
    new_token = emulator.rotate_token()  # the old token gets 401 from now on
    write_token_from_another_thread(path, new_token)
    rejected, before = rejected_requests(emulator), chat_posts(emulator)
    await assert_answers(emulator, model, mode, "After the rotation.")
    assert rejected_requests(emulator) == rejected + 1  # one rejection, one retry
    assert chat_posts(emulator) - before <= 2
    await assert_answers(emulator, model, mode, "Still fine.")
    assert rejected_requests(emulator) == rejected + 1
    await close_and_check_no_leak(model)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("file_update", ["none", "stale"])
async def test_token_rejected_again_says_run_hailuo_login(
    emulator: Emulator,
    protocol: str,
    file_update: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "auth.json"
    model = file_model(emulator, protocol, path, monkeypatch)
    assert "1 turn(s)" in (await model.ainvoke("Before.")).text
    stale = emulator.rotate_token()
    if file_update == "stale":  # another login wrote a token that is itself rotated away
        emulator.rotate_token()
        write_token_from_another_thread(path, stale)
    rejected = rejected_requests(emulator)
    with pytest.raises(HailuoAuthError, match="hailuo login") as caught:
        await model.ainvoke("After.")
    assert emulator.default_account.token not in str(caught.value)
    assert stale not in str(caught.value)
    assert rejected_requests(emulator) == rejected + (2 if file_update == "stale" else 1)
    await close_and_check_no_leak(model)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_bot_page_keeps_its_cookie_advice_when_the_refresh_fails(
    emulator: Emulator, protocol: str, tmp_path: Path
) -> None:
    provider, auth = provider_for(emulator, protocol)
    path = tmp_path / "auth.json"
    AuthStore(path).save(auth)  # the file holds the same token: the refresh cannot help
    manager = AuthManager(auth_file=path, env={})
    emulator.fault("http_403_bot", protocol=protocol, times=-1)
    async with provider:
        with pytest.raises(HailuoAuthError, match="cookies") as caught:
            await provider_text(provider, auth, Received(), auth_manager=manager)
        assert caught.value.status == 403
        assert "hailuo login" in str(caught.value)
        assert emulator.default_account.token not in str(caught.value)
        emulator.clear_faults()
        emulator.script(ANSWER)
        assert await provider_text(provider, auth, Received(), auth_manager=manager) == ANSWER


# ----------------------------------------------------------------------------- 3. cancel


async def _first_text(stream: AsyncIterator[Any]) -> None:
    async for item in stream:
        chunk = item[0] if isinstance(item, tuple) else item
        if isinstance(chunk, AIMessageChunk) and chunk.text:
            return


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("way", ["task-cancel", "break", "langgraph"])
async def test_cancelling_a_stream_closes_the_response_promptly(
    emulator: Emulator, protocol: str, way: str
) -> None:
    set_delay(emulator, 0.02)
    emulator.script(ANSWER * 3)
    model = model_for(emulator, protocol)
    gone = len(emulator.disconnects)
    if way == "task-cancel":
        first = asyncio.Event()

        async def consume() -> None:
            async for chunk in model.astream("Long answer, please."):
                if chunk.text:
                    first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    elif way == "break":
        stream = model.astream("Long answer, please.")
        async for chunk in stream:
            if chunk.text:
                break
        await stream.aclose()  # type: ignore[attr-defined]
    else:

        async def node(state: MessagesState) -> dict[str, list[BaseMessage]]:
            return {"messages": [await model.ainvoke(state["messages"])]}

        graph = StateGraph(MessagesState).add_node("model", node).add_edge(START, "model")
        start: MessagesState = {"messages": [HumanMessage("Long answer, please.")]}
        run = cast(
            "AsyncGenerator[Any, None]", graph.compile().astream(start, stream_mode="messages")
        )
        await _first_text(run)  # the consumer stops mid-answer: LangGraph cancels the node
        await run.aclose()
    # A disconnect is only recorded when the client leaves before the answer ends: no
    # time bound is needed to tell a closed connection from one left to run out.
    await await_for(lambda: len(emulator.disconnects) == gone + 1, "the disconnect")
    set_delay(emulator, 0.0)
    emulator.script(ANSWER)
    assert (await model.ainvoke("Next.")).text == ANSWER
    await close_and_check_no_leak(model)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_sync_stream_break_closes_the_response(emulator: Emulator, protocol: str) -> None:
    set_delay(emulator, 0.02)
    emulator.script(ANSWER * 3)
    model = model_for(emulator, protocol)
    gone = len(emulator.disconnects)
    for chunk in model.stream("Long answer, please."):
        if chunk.text:
            break
    # Recorded only if the client left before the answer's end (no time bound needed).
    wait_for(lambda: len(emulator.disconnects) == gone + 1, "the disconnect")
    set_delay(emulator, 0.0)
    emulator.script(ANSWER)
    assert model.invoke("Next.").text == ANSWER
    model.close()


# ----------------------------------------------------------------------------- 4. concurrency


def test_one_stream_per_account_by_default() -> None:
    assert ChatHailuo.model_fields["max_concurrency"].default == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("limit", [1, 2])
async def test_abatch_streams_at_most_max_concurrency(
    emulator: Emulator, protocol: str, limit: int
) -> None:
    set_delay(emulator, 0.01)
    model = model_for(emulator, protocol, max_concurrency=limit)
    emulator.reset_peak_streams()
    prompts = [f"Question {i}." for i in range(5)]
    answers = await model.abatch(prompts)  # type: ignore[arg-type]
    assert [a.text for a in answers] == [
        f"You said: Question {i}. This chat has 1 turn(s)." for i in range(5)
    ]
    assert emulator.peak_streams == limit
    await close_and_check_no_leak(model)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_many_concurrent_abatch_calls_queue_rather_than_fail(
    emulator: Emulator, protocol: str
) -> None:
    set_delay(emulator, 0.005)
    model = model_for(emulator, protocol)
    emulator.reset_peak_streams()
    before = chat_posts(emulator)
    batches = [[f"Batch {b} item {i}." for i in range(3)] for b in range(4)]
    results = await asyncio.gather(*(model.abatch(batch) for batch in batches))  # type: ignore[arg-type]
    for b, answers in enumerate(results):
        for i, answer in enumerate(answers):
            assert answer.text == f"You said: Batch {b} item {i}. This chat has 1 turn(s)."
    assert emulator.peak_streams == 1
    assert chat_posts(emulator) == before + 12  # nothing refused (409) and retried
    # sync batch from worker threads shares the account's slot too
    emulator.reset_peak_streams()
    answers = await asyncio.to_thread(model.batch, ["Sync one.", "Sync two."])
    assert [a.text.split(".")[0] for a in answers] == ["You said: Sync one", "You said: Sync two"]
    assert emulator.peak_streams == 1
    await close_and_check_no_leak(model)
