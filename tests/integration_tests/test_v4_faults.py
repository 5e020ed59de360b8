"""Issue #3's acceptance: the real ``HailuoAI`` (real aiohttp client) against every v4 fault.

Each test drives the provider over loopback sockets to the emulator, injects one fault the
emulator offers (``emulator.fault(kind, ...)``) and checks what a user relies on: the typed
error, the partial text kept on it, no text duplicated by a retry or a replay, the number of
POSTs the server saw, no token in any message, and that the same provider instance answers
the next call once the fault is gone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from langchain_hailuo import v4 as v4_package
from langchain_hailuo._http import HttpOptions, Timeouts
from langchain_hailuo.auth import AuthManager, AuthStore
from langchain_hailuo.emulator import Emulator
from langchain_hailuo.emulator.core import default_reply
from langchain_hailuo.emulator.v4 import CODE_BAD_SIGNATURE, CODE_EXPIRED, CODE_STREAM_ERROR
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoError,
    HailuoRateLimitError,
    HailuoServerError,
    HailuoStreamInterruptedError,
    HailuoTimeoutError,
)
from langchain_hailuo.types import AuthResult, Conversation, FinishReason, TitleGeneration
from langchain_hailuo.v4 import HailuoAI, V4Client
from langchain_hailuo.v4.crypt import now_ms

pytestmark = pytest.mark.timeout(30)

IDLE = 0.4
FIRST_BYTE = 0.5
FAST = HttpOptions(
    timeouts=Timeouts(connect=2.0, first_byte=FIRST_BYTE, idle=IDLE, total=10.0),
    max_retries=2,
    backoff_base=0.01,
    backoff_max=0.05,
)
PROMPT = "Where is the fault?"


def _reply(prompt: str, turns: int = 1) -> str:
    """The emulator's unscripted answer: it quotes the prompt and counts the chat's turns."""
    return default_reply(prompt, turns)


REPLY = _reply(PROMPT)


def _messages(text: str = PROMPT) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


class Run:
    """What one ``create_authed`` call yielded, and the error it raised (if any)."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.error: HailuoError | None = None

    @property
    def text(self) -> str:
        return "".join(i for i in self.items if isinstance(i, str))

    @property
    def deltas(self) -> list[str]:
        return [i for i in self.items if isinstance(i, str)]

    @property
    def conversation(self) -> Conversation:
        found = [i for i in self.items if isinstance(i, Conversation)]
        assert len(found) == 1, self.items
        return found[0]


async def _run(
    provider: HailuoAI,
    auth: AuthResult,
    text: str = PROMPT,
    **kwargs: Any,
) -> Run:
    run = Run()
    try:
        async for item in provider.create_authed(
            "MiniMax", _messages(text), auth, return_conversation=True, **kwargs
        ):
            run.items.append(item)
    except HailuoError as exc:
        run.error = exc
    return run


def _auth(emulator: Emulator) -> AuthResult:
    account = emulator.default_account
    return AuthResult(
        token=account.token,
        uuid=account.uuid,
        device_id=account.device_id,
        protocol="v4",
        api_origin=emulator.url,
    )


def _posts(emulator: Emulator) -> int:
    return len([r for r in emulator.requests_to("chat") if r.method == "POST"])


def _assert_broke_off_with_its_text(run: Run) -> None:
    """The answer broke off after some text: the error holds exactly that text and the chat."""
    assert run.error is not None
    assert run.text
    assert REPLY.startswith(run.text)
    assert run.error.partial_text == run.text
    assert run.error.chat_id == run.conversation.chatID


def _assert_no_secret(emulator: Emulator, error: BaseException) -> None:
    for token in (a.token for a in emulator.accounts.values()):
        assert token not in str(error)
        assert token not in repr(error)


async def _assert_recovers(provider: HailuoAI, emulator: Emulator, auth: AuthResult) -> None:
    """With the fault gone, the same provider instance answers a new chat, whole and once."""
    emulator.clear_faults()
    before = _posts(emulator)
    run = await _run(provider, auth, "still there?")
    assert run.error is None, run.error
    assert run.text == _reply("still there?")
    assert isinstance(run.items[-1], FinishReason)
    assert _posts(emulator) == before + 1


@pytest.fixture
async def provider(hailuo_emulator: Emulator) -> AsyncIterator[HailuoAI]:
    async with HailuoAI(base_url=hailuo_emulator.url, options=FAST) as chat:
        yield chat


# --------------------------------------------------------------------------- baseline


async def test_clean_answer_is_whole_and_in_order(
    provider: HailuoAI, hailuo_emulator: Emulator
) -> None:
    run = await _run(provider, _auth(hailuo_emulator))
    assert run.error is None
    assert run.text == REPLY
    assert len(run.deltas) > 3  # it really streamed
    assert isinstance(run.items[0], TitleGeneration)
    assert isinstance(run.items[-1], FinishReason)
    assert run.conversation.chatID in hailuo_emulator.v4.chats
    assert _posts(hailuo_emulator) == 1


# --------------------------------------------------------------------------- 401


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


async def test_401_reauthenticates_once_and_succeeds(
    provider: HailuoAI, hailuo_emulator: Emulator
) -> None:
    source = RotatingSource(hailuo_emulator)
    auth = _auth(hailuo_emulator)
    hailuo_emulator.fault("http_401")
    run = await _run(provider, auth, auth_manager=source)
    assert run.error is None, run.error
    assert run.text == REPLY
    assert len(source.calls) == 1
    assert _posts(hailuo_emulator) == 2
    # The old token was revoked by the rotation: the next call needs the fresh one.
    fresh = auth.model_copy(update={"token": SecretStr(hailuo_emulator.default_account.token)})
    await _assert_recovers(provider, hailuo_emulator, fresh)


async def test_401_with_the_real_auth_manager_reads_the_token_another_process_saved(
    provider: HailuoAI, hailuo_emulator: Emulator, tmp_path: Path
) -> None:
    auth_file = tmp_path / "auth.json"
    old = _auth(hailuo_emulator)
    AuthStore(auth_file).save(old)
    manager = AuthManager(auth_file=auth_file, env={})
    assert (await manager.get()).token == old.token
    # The token is revoked; another process logs in and saves the new one.
    new_token = hailuo_emulator.rotate_token()
    AuthStore(auth_file).save(old.model_copy(update={"token": SecretStr(new_token)}))
    run = await _run(provider, old, auth_manager=manager)
    assert run.error is None, run.error
    assert run.text == REPLY
    assert manager.current is not None
    assert manager.current.token.get_secret_value() == new_token
    assert _posts(hailuo_emulator) == 2


async def test_second_401_raises_auth_error_naming_hailuo_login(
    provider: HailuoAI, hailuo_emulator: Emulator
) -> None:
    source = RotatingSource(hailuo_emulator, rotate=False)
    auth = _auth(hailuo_emulator)
    hailuo_emulator.fault("http_401", times=2)
    run = await _run(provider, auth, auth_manager=source)
    assert isinstance(run.error, HailuoAuthError)
    assert run.error.status == 401
    assert "hailuo login" in str(run.error)
    assert run.text == ""
    assert run.error.partial_text == ""
    assert len(source.calls) == 1  # one refresh, never a loop
    assert _posts(hailuo_emulator) == 2
    _assert_no_secret(hailuo_emulator, run.error)
    await _assert_recovers(provider, hailuo_emulator, auth)


async def test_revoked_token_and_nothing_fresher_raises_auth_error(
    provider: HailuoAI, hailuo_emulator: Emulator, tmp_path: Path
) -> None:
    auth = _auth(hailuo_emulator)
    auth_file = tmp_path / "auth.json"
    AuthStore(auth_file).save(auth)
    manager = AuthManager(auth_file=auth_file, env={})
    hailuo_emulator.rotate_token()
    run = await _run(provider, auth, auth_manager=manager)
    assert isinstance(run.error, HailuoAuthError)
    assert "hailuo login" in str(run.error)
    assert _posts(hailuo_emulator) == 1  # the file held nothing better: no second POST
    _assert_no_secret(hailuo_emulator, run.error)


# --------------------------------------------------------------------------- 403


async def test_403_bot_page_asks_for_fresh_cookies(
    provider: HailuoAI, hailuo_emulator: Emulator
) -> None:
    auth = _auth(hailuo_emulator)
    hailuo_emulator.fault("http_403_bot")
    run = await _run(provider, auth)
    assert isinstance(run.error, HailuoAuthError)
    assert run.error.status == 403
    assert "cookies" in str(run.error)
    assert "hailuo login" in str(run.error)
    assert run.text == ""
    assert _posts(hailuo_emulator) == 1  # not retried: the same cookies would hit it again
    await _assert_recovers(provider, hailuo_emulator, auth)


# --------------------------------------------------------------------------- 429


async def test_429_waits_retry_after_then_succeeds(
    provider: HailuoAI, hailuo_emulator: Emulator
) -> None:
    auth = _auth(hailuo_emulator)
    hailuo_emulator.fault("http_429", seconds=0.3)
    started = time.monotonic()
    run = await _run(provider, auth)
    elapsed = time.monotonic() - started
    assert run.error is None, run.error
    assert run.text == REPLY
    assert elapsed >= 0.3  # Retry-After honoured, not the tiny backoff
    assert _posts(hailuo_emulator) == 2


async def test_429_without_retries_raises_with_retry_after(
    provider: HailuoAI, hailuo_emulator: Emulator
) -> None:
    auth = _auth(hailuo_emulator)
    hailuo_emulator.fault("http_429", seconds=7)
    run = await _run(provider, auth, max_retries=0)
    assert isinstance(run.error, HailuoRateLimitError)
    assert run.error.retry_after == 7
    assert run.text == ""
    assert _posts(hailuo_emulator) == 1
    await _assert_recovers(provider, hailuo_emulator, auth)


# --------------------------------------------------------------------------- 500


async def test_500_raises_server_error_without_sending_the_message_again(
    provider: HailuoAI, hailuo_emulator: Emulator
) -> None:
    auth = _auth(hailuo_emulator)
    hailuo_emulator.fault("http_500", times=-1, message="upstream exploded")
    run = await _run(provider, auth)
    assert isinstance(run.error, HailuoServerError)
    assert run.error.status == 500
    assert run.error.may_have_arrived  # a 5xx came after the body: the chat may hold it
    assert "upstream exploded" in str(run.error)
    assert run.text == ""
    assert _posts(hailuo_emulator) == 1
    await _assert_recovers(provider, hailuo_emulator, auth)


# --------------------------------------------------------------------------- timeouts


async def test_slow_first_byte_times_out_and_is_not_sent_again(
    provider: HailuoAI, hailuo_emulator: Emulator
) -> None:
    auth = _auth(hailuo_emulator)
    hailuo_emulator.fault("slow_first_byte", delay=FIRST_BYTE * 3)
    run = await _run(provider, auth)
    assert isinstance(run.error, HailuoTimeoutError)
    assert run.error.may_have_arrived  # the server got the message and is just slow
    assert _posts(hailuo_emulator) == 1
    await _assert_recovers(provider, hailuo_emulator, auth)


async def test_slow_first_byte_without_retries_raises_timeout(
    provider: HailuoAI, hailuo_emulator: Emulator
) -> None:
    auth = _auth(hailuo_emulator)
    hailuo_emulator.fault("slow_first_byte", delay=FIRST_BYTE * 3)
    started = time.monotonic()
    run = await _run(provider, auth, max_retries=0)
    assert isinstance(run.error, HailuoTimeoutError)
    assert "first-byte" in str(run.error)
    # The server answers only after 3 x FIRST_BYTE: a client that got an answer waited it out.
    assert time.monotonic() - started < FIRST_BYTE * 3
    assert run.text == ""
    assert _posts(hailuo_emulator) == 1
    await _assert_recovers(provider, hailuo_emulator, auth)


async def test_stall_mid_answer_raises_idle_timeout_with_partial_text_never_retried(
    provider: HailuoAI, hailuo_emulator: Emulator
) -> None:
    auth = _auth(hailuo_emulator)
    hailuo_emulator.fault("stall", after=3)  # send_result + two snapshots, then silence
    started = time.monotonic()
    run = await _run(provider, auth)
    elapsed = time.monotonic() - started
    assert isinstance(run.error, HailuoTimeoutError)
    assert "idle" in str(run.error)
    # At least the idle timeout (it was what fired); well under the stall, which lasts until
    # the emulator stops: 3 s more is the loaded machine's margin, not a measurement.
    assert IDLE <= elapsed < IDLE + 3
    _assert_broke_off_with_its_text(run)  # two snapshots arrived
    assert run.text != REPLY
    assert _posts(hailuo_emulator) == 1  # text had streamed: never sent again
    _assert_no_secret(hailuo_emulator, run.error)
    await _assert_recovers(provider, hailuo_emulator, auth)


# --------------------------------------------------------------------------- broken streams


async def test_drop_mid_answer_raises_interrupted_with_partial_text_and_chat_id(
    provider: HailuoAI, hailuo_emulator: Emulator
) -> None:
    auth = _auth(hailuo_emulator)
    hailuo_emulator.fault("drop", after=3)
    run = await _run(provider, auth)
    assert isinstance(run.error, HailuoStreamInterruptedError)
    _assert_broke_off_with_its_text(run)
    assert run.text != REPLY
    assert run.conversation.chatID in hailuo_emulator.v4.chats
    assert "not sent again" in str(run.error)
    assert _posts(hailuo_emulator) == 1  # no replay
    await _assert_recovers(provider, hailuo_emulator, auth)


async def test_drop_mid_utf8_character_keeps_only_whole_text(
    provider: HailuoAI, hailuo_emulator: Emulator
) -> None:
    auth = _auth(hailuo_emulator)
    answer = "你好世界 这是一个很长的回答。"
    hailuo_emulator.script(answer)
    hailuo_emulator.fault("drop", after=4)
    run = await _run(provider, auth)
    assert isinstance(run.error, HailuoStreamInterruptedError)
    assert run.text
    assert "\ufffd" not in run.text
    assert answer.startswith(run.text)
    assert run.error.partial_text == run.text
    assert _posts(hailuo_emulator) == 1


async def test_malformed_data_line_loses_and_doubles_nothing(
    provider: HailuoAI, hailuo_emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    auth = _auth(hailuo_emulator)
    fault = hailuo_emulator.fault("malformed_line", after=2)
    with caplog.at_level(logging.WARNING, logger="langchain_hailuo"):
        run = await _run(provider, auth)
    assert fault.times == 0  # the broken line was really sent
    assert any("malformed data line" in r.getMessage() for r in caplog.records)
    assert run.error is None, run.error
    assert run.text == REPLY
    assert _posts(hailuo_emulator) == 1
    await _assert_recovers(provider, hailuo_emulator, auth)


async def test_in_stream_status_error_raises_server_error_with_code_and_message(
    provider: HailuoAI, hailuo_emulator: Emulator
) -> None:
    auth = _auth(hailuo_emulator)
    hailuo_emulator.fault("stream_error", after=2, message="Service busy, try later")
    run = await _run(provider, auth)
    assert isinstance(run.error, HailuoServerError)
    assert run.error.code == CODE_STREAM_ERROR
    assert run.error.server_message == "Service busy, try later"
    assert str(CODE_STREAM_ERROR) in str(run.error)
    assert "Service busy, try later" in str(run.error)
    _assert_broke_off_with_its_text(run)
    assert _posts(hailuo_emulator) == 1
    await _assert_recovers(provider, hailuo_emulator, auth)


# --------------------------------------------------------------------------- redirects


@pytest.mark.parametrize("status", [301, 308])
async def test_redirected_origin_still_gets_the_post_with_its_form(
    hailuo_emulator: Emulator, status: int
) -> None:
    hailuo_emulator.redirect_status = status
    auth = _auth(hailuo_emulator)
    async with HailuoAI(base_url=hailuo_emulator.redirect_url, options=FAST) as provider:
        run = await _run(provider, auth)
        assert run.error is None, run.error
        assert run.text == REPLY
        assert provider.last_origin == hailuo_emulator.url
        redirects = [r for r in hailuo_emulator.requests if r.endpoint == "redirect"]
        chats = hailuo_emulator.requests_to("chat")
        assert [r.method for r in redirects] == ["POST"]
        assert [(r.method, r.origin) for r in chats] == [("POST", "v4")]
        assert chats[0].body["msgContent"] == PROMPT
        assert chats[0].body["chatID"] == "0"
        # A permanent redirect is remembered: the continuation goes straight to the new
        # origin, still a POST.
        follow = await _run(provider, auth, "and now?", conversation=run.conversation)
        assert follow.error is None, follow.error
        assert follow.text == _reply("and now?", 2)
        assert len([r for r in hailuo_emulator.requests if r.endpoint == "redirect"]) == 1
        assert [r.method for r in hailuo_emulator.requests_to("chat")] == ["POST", "POST"]


@pytest.mark.parametrize("status", [302, 307])
async def test_a_temporary_redirect_is_followed_every_time(
    hailuo_emulator: Emulator, status: int
) -> None:
    hailuo_emulator.redirect_status = status
    auth = _auth(hailuo_emulator)
    async with HailuoAI(base_url=hailuo_emulator.redirect_url, options=FAST) as provider:
        run = await _run(provider, auth)
        assert run.error is None, run.error
        follow = await _run(provider, auth, "and now?", conversation=run.conversation)
        assert follow.error is None, follow.error
    redirects = [r for r in hailuo_emulator.requests if r.endpoint == "redirect"]
    assert len(redirects) == 2  # asked again each time: the move may be undone


async def test_a_permanent_move_is_remembered_by_other_clients_of_the_process(
    hailuo_emulator: Emulator,
) -> None:
    hailuo_emulator.redirect_status = 308
    auth = _auth(hailuo_emulator)
    for _ in range(2):  # two providers, each with its own HTTP session
        async with HailuoAI(base_url=hailuo_emulator.redirect_url, options=FAST) as provider:
            run = await _run(provider, auth)
            assert run.error is None, run.error
            assert provider.last_origin == hailuo_emulator.url
    assert len([r for r in hailuo_emulator.requests if r.endpoint == "redirect"]) == 1


# --------------------------------------------------------------------------- signature


async def test_wrong_yy_is_rejected_with_a_typed_error(
    provider: HailuoAI, hailuo_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth = _auth(hailuo_emulator)
    real_yy: Callable[..., str] = v4_package.client.generate_yy_header

    def mis_signed(path_and_query: str, body_to_yy: str, timestamp: int | str) -> str:
        return real_yy(path_and_query + "&tampered=1", body_to_yy, timestamp)

    monkeypatch.setattr(v4_package.client, "generate_yy_header", mis_signed)
    run = await _run(provider, auth)
    assert isinstance(run.error, HailuoServerError)
    assert run.error.code == CODE_BAD_SIGNATURE
    assert run.text == ""
    assert _posts(hailuo_emulator) == 1
    monkeypatch.undo()
    await _assert_recovers(provider, hailuo_emulator, auth)


async def test_stale_unix_is_rejected_with_a_typed_error(hailuo_emulator: Emulator) -> None:
    auth = _auth(hailuo_emulator)
    skew = {"ms": -10 * 60 * 1000}  # ten minutes behind the server

    def clock() -> int:
        return now_ms() + skew["ms"]

    client = V4Client(options=FAST, clock=clock)
    async with HailuoAI(base_url=hailuo_emulator.url, client=client) as provider:
        run = await _run(provider, auth)
        assert isinstance(run.error, HailuoServerError)
        assert run.error.code == CODE_EXPIRED
        assert run.text == ""
        assert _posts(hailuo_emulator) == 1
        skew["ms"] = 0
        await _assert_recovers(provider, hailuo_emulator, auth)


# --------------------------------------------------------------------------- context


async def test_continued_chat_sends_chat_id_and_only_the_new_message(
    provider: HailuoAI, hailuo_emulator: Emulator
) -> None:
    auth = _auth(hailuo_emulator)
    first = await _run(provider, auth, "My name is Ada.")
    assert first.error is None, first.error
    assert first.text == _reply("My name is Ada.")
    conversation = first.conversation
    history = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "What is my name?"},
    ]
    second = Run()
    async for item in provider.create_authed(
        "MiniMax", history, auth, return_conversation=True, conversation=conversation
    ):
        second.items.append(item)
    assert second.text == _reply("What is my name?", 2)
    assert second.conversation.chatID == conversation.chatID
    assert not any(isinstance(i, TitleGeneration) for i in second.items)
    sent = hailuo_emulator.requests_to("chat")
    assert len(sent) == 2
    assert sent[0].body["chatID"] == "0"
    assert sent[1].body["chatID"] == conversation.chatID
    assert sent[1].body["msgContent"] == "What is my name?"
    assert len(hailuo_emulator.v4.chats[conversation.chatID].turns) == 2


async def test_403_bot_page_with_an_auth_manager_still_asks_for_fresh_cookies(
    provider: HailuoAI, hailuo_emulator: Emulator, tmp_path: Path
) -> None:
    auth = _auth(hailuo_emulator)
    auth_file = tmp_path / "auth.json"
    AuthStore(auth_file).save(auth)
    manager = AuthManager(auth_file=auth_file, env={})
    hailuo_emulator.fault("http_403_bot", times=-1)
    run = await _run(provider, auth, auth_manager=manager)
    assert isinstance(run.error, HailuoAuthError)
    assert run.error.status == 403
    assert "cookies" in str(run.error)
    await _assert_recovers(provider, hailuo_emulator, auth)
