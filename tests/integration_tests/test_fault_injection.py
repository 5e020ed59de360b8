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

Section 5 drives the bare providers (issue #3's acceptance for v4, now for both protocols):
one table of the faults both answer alike, re-authentication, then the cases only v4 has
(marked ``V4_ONLY``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import warnings
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from langchain_core.messages import AIMessageChunk, BaseMessage, HumanMessage
from langgraph.graph import START, MessagesState, StateGraph
from pydantic import SecretStr

from langchain_hailuo import ChatHailuo
from langchain_hailuo import v4 as v4_package
from langchain_hailuo._http import HttpOptions, Timeouts
from langchain_hailuo.agent.provider import MiniMaxAgent
from langchain_hailuo.auth import AuthManager, AuthStore
from langchain_hailuo.emulator import Emulator
from langchain_hailuo.emulator.agent import QUOTA_ERROR_CODE
from langchain_hailuo.emulator.core import default_reply
from langchain_hailuo.emulator.v4 import CODE_BAD_SIGNATURE, CODE_EXPIRED, CODE_STREAM_ERROR
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoError,
    HailuoQuotaError,
    HailuoRateLimitError,
    HailuoServerError,
    HailuoStreamInterruptedError,
    HailuoTimeoutError,
)
from langchain_hailuo.types import AuthResult, Conversation, FinishReason, TitleGeneration
from langchain_hailuo.v4 import HailuoAI, V4Client
from langchain_hailuo.v4.crypt import now_ms
from tests.integration_tests._chats import PROTOCOLS, model_for
from tests.integration_tests._waiting import await_until, wait_until

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


def assert_waited_retry_after(caplog: pytest.LogCaptureFixture) -> None:
    """The retry waited the server's ``Retry-After``, not the (tiny) backoff: its log says so."""
    waits = [r.getMessage() for r in caplog.records if "retry 1 of" in r.getMessage()]
    assert waits, "the 429 was not retried"
    assert all(w.endswith(f"in {RETRY_AFTER:.2f} s") for w in waits), waits


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
        await await_until(lambda: len(emulator.disconnects) == gone + 1, "the disconnect")
    # the same model answers the next call, without any duplicated text
    await assert_answers(emulator, model, mode, "Again, please.")
    await close_and_check_no_leak(model)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_rate_limit_is_retried_after_retry_after(
    emulator: Emulator, protocol: str, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    model = model_for(emulator, protocol)
    emulator.script(ANSWER)
    emulator.fault("http_429", protocol=protocol, seconds=RETRY_AFTER)
    before = chat_posts(emulator)
    with caplog.at_level(logging.WARNING, logger="langchain_hailuo"):
        assert await call(model, mode, "Rate limited?", Received()) == ANSWER
    assert_waited_retry_after(caplog)
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
    await await_until(lambda: len(emulator.disconnects) == gone + 1, "the disconnect")
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
    wait_until(lambda: len(emulator.disconnects) == gone + 1, "the disconnect")
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


# ----------------------------------------------------------------------------- 5. providers
#
# The bare providers (``HailuoAI``, ``MiniMaxAgent``) on a fresh emulator each: one table of
# faults both protocols answer alike, then re-authentication, then what only v4 has
# (redirected origins, the ``yy`` signature and its clock, v4's chat continuation).

IDLE = FIRST_BYTE = 1.0
"""The providers' idle and first-byte timeouts in these tests."""
PROMPT = "Where is the fault?"
REJECTED_POSTS = {"v4": 1, "agent": 0}
"""Chat POSTs a revoked token costs: v4 learns of it from the turn, the Agent already from
its bootstrap request before the turn."""
STREAM_ERROR_CODE = {"v4": CODE_STREAM_ERROR, "agent": str(QUOTA_ERROR_CODE)}
"""The ``code`` of the error the ``stream_error`` fault raises (the Agent's is a string)."""
MALFORMED_LOG = {"v4": "malformed data line", "agent": "malformed stream frame"}
"""What the warning logged for a skipped broken line says, per protocol."""
V4_ONLY = pytest.mark.parametrize("protocol", ["v4"])
"""Marks a provider case only the v4 protocol has."""


def fast_options(**options: Any) -> HttpOptions:
    """HTTP options with the tests' short timeouts and backoff (``options`` override them)."""
    return HttpOptions(
        timeouts=Timeouts(connect=2.0, first_byte=FIRST_BYTE, idle=IDLE, total=10.0),
        backoff_base=0.01,
        backoff_max=0.05,
        **{"max_retries": 2, **options},
    )


def account_auth(emulator: Emulator, protocol: str) -> AuthResult:
    """The default account's credentials as the provider of ``protocol`` sends them."""
    account = emulator.default_account
    device = account.device_id if protocol == "v4" else account.tab_device_id
    return AuthResult(token=account.token, uuid=account.uuid, device_id=device)


def provider_for(emulator: Emulator, protocol: str, **options: Any) -> Any:
    """The bare provider of ``protocol`` on ``emulator`` with :func:`fast_options`."""
    if protocol == "v4":
        return HailuoAI(base_url=emulator.url, options=fast_options(**options))
    return MiniMaxAgent(
        base_url=emulator.agent_url,
        stream_url=emulator.agent_stream_url,
        options=fast_options(**options),
    )


class Run:
    """What one ``create_authed`` call yielded, and the error it raised (if any)."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.error: HailuoError | None = None

    @property
    def deltas(self) -> list[str]:
        return [i for i in self.items if isinstance(i, str)]

    @property
    def text(self) -> str:
        return "".join(self.deltas)

    @property
    def conversation(self) -> Conversation:
        found = [i for i in self.items if isinstance(i, Conversation)]
        assert found, self.items
        return found[-1]


@dataclass
class Bare:
    """A bare provider of ``protocol`` on its own emulator, with the account's credentials."""

    emulator: Emulator
    protocol: str
    provider: Any
    auth: AuthResult

    async def run(
        self, text: str = PROMPT, *, auth: AuthResult | None = None, **kwargs: Any
    ) -> Run:
        """Run ``create_authed`` to its end or its error; a good stream ends in FinishReason."""
        run = Run()
        messages = [{"role": "user", "content": text}]
        chosen = auth or self.auth
        try:
            async for item in self.provider.create_authed(
                "", messages, chosen, return_conversation=True, **kwargs
            ):
                run.items.append(item)
        except HailuoError as exc:
            run.error = exc
        else:
            assert isinstance(run.items[-1], FinishReason), run.items
        return run

    def posts(self) -> int:
        return chat_posts(self.emulator)

    def chats(self) -> Mapping[str, Any]:
        """The chats (v4) or sessions (Agent) the emulator holds."""
        return self.emulator.v4.chats if self.protocol == "v4" else self.emulator.agent.sessions

    def file_manager(self, folder: Path) -> tuple[AuthManager, AuthStore]:
        """A real auth manager over an auth file in ``folder`` holding this login."""
        store = AuthStore(folder / "auth.json")
        store.save(self.auth)
        return AuthManager(auth_file=store.path, env={}), store

    def assert_no_secret(self, error: BaseException) -> None:
        for token in (a.token for a in self.emulator.accounts.values()):
            assert token not in str(error)
            assert token not in repr(error)

    async def assert_recovers(self, auth: AuthResult | None = None) -> None:
        """With the fault gone, the same provider answers a new chat, whole and once."""
        self.emulator.clear_faults()
        before = self.posts()
        run = await self.run("still there?", auth=auth)
        assert run.error is None, run.error
        assert run.text == default_reply("still there?", 1)
        assert self.posts() == before + 1


@pytest.fixture
async def bare(hailuo_emulator: Emulator, protocol: str) -> AsyncIterator[Bare]:
    """The provider of the test's ``protocol`` on a fresh emulator."""
    async with provider_for(hailuo_emulator, protocol) as provider:
        yield Bare(hailuo_emulator, protocol, provider, account_auth(hailuo_emulator, protocol))


def assert_broke_off_with_its_text(run: Run, answer: str) -> None:
    """The answer broke off after some text: the error holds exactly that text and the chat."""
    assert run.error is not None
    assert run.text
    assert answer.startswith(run.text)
    assert run.text != answer
    assert run.error.partial_text == run.text
    assert run.error.chat_id == run.conversation.chatID


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_provider_clean_answer_is_whole_and_in_order(bare: Bare) -> None:
    run = await bare.run()
    assert run.error is None
    assert run.text == default_reply(PROMPT, 1)
    assert len(run.deltas) > 3  # it really streamed
    assert run.conversation.chatID in bare.chats()
    assert bare.posts() == 1
    if bare.protocol == "v4":  # a new v4 chat starts with its title
        assert isinstance(run.items[0], TitleGeneration)


@dataclass(frozen=True)
class Fault:
    """One row of the providers' fault table: the fault and what the caller gets."""

    kind: str
    params: dict[str, Any]
    error: type[HailuoError] | None
    says: tuple[str, ...] = ()
    """Words the error's message holds (none: it answered)."""
    partial: bool = False
    """The answer broke off after some text (else nothing was streamed)."""
    posts: int = 1
    """Chat POSTs the server saw: more than one only for a retry before the first byte."""
    may_have_arrived: bool = False
    status: int | None = None


PROVIDER_FAULTS = [
    Fault("drop", {"after": 5}, HailuoStreamInterruptedError, ("not sent again",), partial=True),
    Fault(
        "stream_error",
        {"after": 3, "message": "Service busy, try later"},
        HailuoServerError,
        ("Service busy, try later",),
        partial=True,
    ),
    Fault("stall", {"after": 5}, HailuoTimeoutError, ("idle",), partial=True),
    Fault(
        "http_500",
        {"times": -1, "message": "upstream exploded"},
        HailuoServerError,
        ("upstream exploded", "may have reached the server"),
        may_have_arrived=True,  # a 5xx came after the body: the chat may hold it
        status=500,
    ),
    Fault(
        "slow_first_byte",
        {"delay": FIRST_BYTE * 3},
        HailuoTimeoutError,
        may_have_arrived=True,  # the server got the message and is just slow
    ),
    Fault(  # not retried: the same cookies would hit it again
        "http_403_bot", {}, HailuoAuthError, ("cookies", "hailuo login"), status=403
    ),
    Fault("http_429", {"seconds": RETRY_AFTER}, None, posts=2),
    Fault("malformed_line", {"after": 2}, None),
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("fault", PROVIDER_FAULTS, ids=lambda fault: fault.kind)
async def test_provider_under_a_fault(
    bare: Bare, fault: Fault, caplog: pytest.LogCaptureFixture
) -> None:
    if fault.partial or fault.error is None:  # the answer streams (and uses up the script)
        bare.emulator.script(ANSWER)
    injected = bare.emulator.fault(fault.kind, protocol=bare.protocol, **fault.params)
    gone = len(bare.emulator.disconnects)
    with caplog.at_level(logging.WARNING, logger="langchain_hailuo"):
        run = await bare.run()
    assert bare.posts() == fault.posts  # never sent again once it may have arrived
    if fault.error is None:
        assert run.error is None, run.error
        assert run.text == ANSWER  # nothing lost, nothing doubled
    else:
        assert isinstance(run.error, fault.error), run.error
        for words in fault.says:
            assert words in str(run.error)
        if fault.may_have_arrived:
            assert run.error.may_have_arrived
        if fault.status is not None:
            assert getattr(run.error, "status", None) == fault.status
        if fault.partial:
            assert_broke_off_with_its_text(run, ANSWER)
            assert run.conversation.chatID in bare.chats()
        else:
            assert run.text == ""
            assert run.error.partial_text == ""
        bare.assert_no_secret(run.error)
    if fault.kind == "stream_error":
        assert isinstance(run.error, HailuoServerError)
        assert run.error.code == STREAM_ERROR_CODE[bare.protocol]
        assert run.error.server_message == "Service busy, try later"
        assert str(run.error.code) in str(run.error)
    if fault.kind == "stall":  # the client gave up and closed the response: the server saw it
        await await_until(lambda: len(bare.emulator.disconnects) == gone + 1, "the disconnect")
    if fault.kind == "malformed_line":
        assert injected.times == 0  # the broken line was really sent
        assert any(MALFORMED_LOG[bare.protocol] in r.getMessage() for r in caplog.records)
    if fault.kind == "http_429":
        assert_waited_retry_after(caplog)
    await bare.assert_recovers()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_provider_drop_mid_utf8_character_keeps_only_whole_text(bare: Bare) -> None:
    answer = "你好世界 这是一个很长的回答。" * 4
    bare.emulator.script(answer)
    bare.emulator.fault("drop", protocol=bare.protocol, after=4)
    run = await bare.run()
    assert isinstance(run.error, HailuoStreamInterruptedError)
    assert run.text
    assert "\ufffd" not in run.text
    assert answer.startswith(run.text)
    assert run.error.partial_text == run.text
    assert bare.posts() == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("kind", "params", "error", "says"),
    [
        ("http_429", {"seconds": 7}, HailuoRateLimitError, "rate limited"),
        ("slow_first_byte", {"delay": FIRST_BYTE * 3}, HailuoTimeoutError, "first-byte"),
    ],
    ids=["http_429", "slow_first_byte"],
)
async def test_provider_max_retries_zero_raises_at_once(
    bare: Bare, kind: str, params: dict[str, Any], error: type[HailuoError], says: str
) -> None:
    bare.emulator.fault(kind, protocol=bare.protocol, **params)
    run = await bare.run(max_retries=0)
    # A typed timeout: the client gave up on the first byte rather than wait the server out.
    assert isinstance(run.error, error), run.error
    assert says in str(run.error)
    if isinstance(run.error, HailuoRateLimitError):
        assert run.error.retry_after == 7
    assert run.text == ""
    assert bare.posts() == 1
    await bare.assert_recovers()


# ----------------------------------------------------------------------------- providers: 401


class RotatingSource:
    """An AuthManager-like refresh source: hands out the emulator's rotated token."""

    def __init__(self, emulator: Emulator, *, rotate: bool = True) -> None:
        self.emulator = emulator
        self.rotate = rotate
        self.calls: list[AuthResult] = []

    async def refresh(self, rejected: AuthResult) -> AuthResult:
        self.calls.append(rejected)
        token = self.emulator.rotate_token() if self.rotate else rejected.token.get_secret_value()
        return rejected.model_copy(update={"token": SecretStr(token)})

    async def update(self, auth: AuthResult) -> None:
        """Keeps nothing: the Agent hands over what its bootstrap learnt."""


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_provider_401_reauthenticates_once_and_succeeds(bare: Bare) -> None:
    source = RotatingSource(bare.emulator)
    bare.emulator.fault("http_401", protocol=bare.protocol)
    run = await bare.run(auth_manager=source)
    assert run.error is None, run.error
    assert run.text == default_reply(PROMPT, 1)
    assert len(source.calls) == 1
    assert bare.posts() == 2
    # The old token was revoked by the rotation: the next call needs the fresh one.
    fresh = bare.auth.model_copy(update={"token": SecretStr(bare.emulator.default_account.token)})
    await bare.assert_recovers(fresh)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_provider_401_with_the_real_auth_manager_reads_the_token_another_process_saved(
    bare: Bare, tmp_path: Path
) -> None:
    manager, store = bare.file_manager(tmp_path)
    assert (await manager.get()).token == bare.auth.token
    # The token is revoked; another process logs in and saves the new one.
    new_token = bare.emulator.rotate_token()
    AuthStore(store.path).save(bare.auth.model_copy(update={"token": SecretStr(new_token)}))
    run = await bare.run(auth_manager=manager)
    assert run.error is None, run.error
    assert run.text == default_reply(PROMPT, 1)
    assert manager.current is not None
    assert manager.current.token.get_secret_value() == new_token
    assert bare.posts() == REJECTED_POSTS[bare.protocol] + 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_provider_second_401_raises_auth_error_naming_hailuo_login(bare: Bare) -> None:
    source = RotatingSource(bare.emulator, rotate=False)
    bare.emulator.fault("http_401", protocol=bare.protocol, times=2)
    run = await bare.run(auth_manager=source)
    assert isinstance(run.error, HailuoAuthError)
    assert run.error.status == 401
    assert "hailuo login" in str(run.error)
    assert run.text == ""
    assert run.error.partial_text == ""
    assert len(source.calls) == 1  # one refresh, never a loop
    assert bare.posts() == 2
    bare.assert_no_secret(run.error)
    await bare.assert_recovers()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_provider_revoked_token_and_nothing_fresher_raises_auth_error(
    bare: Bare, tmp_path: Path
) -> None:
    manager, _ = bare.file_manager(tmp_path)
    bare.emulator.rotate_token()
    run = await bare.run(auth_manager=manager)
    assert isinstance(run.error, HailuoAuthError)
    assert "hailuo login" in str(run.error)
    assert bare.posts() == REJECTED_POSTS[bare.protocol]  # nothing better: not sent again
    bare.assert_no_secret(run.error)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_provider_bot_page_keeps_its_cookie_advice_when_the_refresh_fails(
    bare: Bare, tmp_path: Path
) -> None:
    manager, _ = bare.file_manager(tmp_path)  # the same token: the refresh cannot help
    bare.emulator.fault("http_403_bot", protocol=bare.protocol, times=-1)
    run = await bare.run(auth_manager=manager)
    assert isinstance(run.error, HailuoAuthError)
    assert run.error.status == 403
    assert "cookies" in str(run.error)
    assert "hailuo login" in str(run.error)
    bare.assert_no_secret(run.error)
    bare.emulator.clear_faults()
    bare.emulator.script(ANSWER)
    again = await bare.run(auth_manager=manager)
    assert again.error is None, again.error
    assert again.text == ANSWER


# ----------------------------------------------------------------------------- providers: v4 only


@asynccontextmanager
async def via_redirect(emulator: Emulator, protocol: str) -> AsyncIterator[Bare]:
    """A v4 provider of its own pointed at the emulator's redirecting origin."""
    async with HailuoAI(base_url=emulator.redirect_url, options=fast_options()) as v4:
        yield Bare(emulator, protocol, v4, account_auth(emulator, protocol))


def redirects(emulator: Emulator) -> list[str]:
    """The methods of the requests the redirecting origin answered."""
    return [r.method for r in emulator.requests if r.endpoint == "redirect"]


@V4_ONLY
@pytest.mark.parametrize("status", [301, 308, 302, 307])
async def test_v4_redirected_origin_still_gets_the_post_with_its_form(
    hailuo_emulator: Emulator, protocol: str, status: int
) -> None:
    hailuo_emulator.redirect_status = status
    async with via_redirect(hailuo_emulator, protocol) as bare:
        run = await bare.run()
        assert run.error is None, run.error
        assert run.text == default_reply(PROMPT, 1)
        assert bare.provider.last_origin == hailuo_emulator.url
        chats = hailuo_emulator.requests_to("chat")
        assert redirects(hailuo_emulator) == ["POST"]
        assert [(r.method, r.origin) for r in chats] == [("POST", "v4")]
        assert chats[0].body["msgContent"] == PROMPT
        assert chats[0].body["chatID"] == "0"
        follow = await bare.run("and now?", conversation=run.conversation)
        assert follow.error is None, follow.error
        assert follow.text == default_reply("and now?", 2)
    # A permanent redirect is remembered: the continuation goes straight to the new origin,
    # still a POST. A temporary one is asked again each time: the move may be undone.
    assert redirects(hailuo_emulator) == ["POST"] * (1 if status in {301, 308} else 2)
    assert [r.method for r in hailuo_emulator.requests_to("chat")] == ["POST", "POST"]


@V4_ONLY
async def test_v4_a_permanent_move_is_remembered_by_other_clients_of_the_process(
    hailuo_emulator: Emulator, protocol: str
) -> None:
    hailuo_emulator.redirect_status = 308
    for _ in range(2):  # two providers, each with its own HTTP session
        async with via_redirect(hailuo_emulator, protocol) as bare:
            run = await bare.run()
            assert run.error is None, run.error
            assert bare.provider.last_origin == hailuo_emulator.url
    assert redirects(hailuo_emulator) == ["POST"]


@V4_ONLY
async def test_v4_wrong_yy_is_rejected_with_a_typed_error(
    bare: Bare, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_yy: Callable[..., str] = v4_package.client.generate_yy_header

    def mis_signed(path_and_query: str, body_to_yy: str, timestamp: int | str) -> str:
        return real_yy(path_and_query + "&tampered=1", body_to_yy, timestamp)

    monkeypatch.setattr(v4_package.client, "generate_yy_header", mis_signed)
    run = await bare.run()
    assert isinstance(run.error, HailuoServerError)
    assert run.error.code == CODE_BAD_SIGNATURE
    assert run.text == ""
    assert bare.posts() == 1
    monkeypatch.undo()
    await bare.assert_recovers()


@V4_ONLY
async def test_v4_stale_unix_is_rejected_with_a_typed_error(
    hailuo_emulator: Emulator, protocol: str
) -> None:
    skew = {"ms": -10 * 60 * 1000}  # ten minutes behind the server

    def clock() -> int:
        return now_ms() + skew["ms"]

    client = V4Client(options=fast_options(), clock=clock)
    async with HailuoAI(base_url=hailuo_emulator.url, client=client) as v4:
        bare = Bare(hailuo_emulator, protocol, v4, account_auth(hailuo_emulator, protocol))
        run = await bare.run()
        assert isinstance(run.error, HailuoServerError)
        assert run.error.code == CODE_EXPIRED
        assert run.text == ""
        assert bare.posts() == 1
        skew["ms"] = 0
        await bare.assert_recovers()


@V4_ONLY
async def test_v4_continued_chat_sends_chat_id_and_only_the_new_message(bare: Bare) -> None:
    first = await bare.run("My name is Ada.")
    assert first.error is None, first.error
    assert first.text == default_reply("My name is Ada.", 1)
    conversation = first.conversation
    history = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "What is my name?"},
    ]
    second = Run()
    async for item in bare.provider.create_authed(
        "MiniMax", history, bare.auth, return_conversation=True, conversation=conversation
    ):
        second.items.append(item)
    assert second.text == default_reply("What is my name?", 2)
    assert second.conversation.chatID == conversation.chatID
    assert not any(isinstance(i, TitleGeneration) for i in second.items)
    sent = bare.emulator.requests_to("chat")
    assert len(sent) == 2
    assert sent[0].body["chatID"] == "0"
    assert sent[1].body["chatID"] == conversation.chatID
    assert sent[1].body["msgContent"] == "What is my name?"
    assert len(bare.emulator.v4.chats[conversation.chatID].turns) == 2
