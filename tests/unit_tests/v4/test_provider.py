"""HailuoAI: the seed's interface, prompt rules, re-auth, no replay, redirects, retries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from langchain_hailuo import _provider
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoConfigurationError,
    HailuoRateLimitError,
    HailuoStreamInterruptedError,
    HailuoUnsupportedContentError,
)
from langchain_hailuo.types import (
    AuthResult,
    Conversation,
    FinishReason,
    MessageId,
    ProviderEvent,
    RequestLogin,
    TitleGeneration,
    account_fingerprint,
)
from langchain_hailuo.v4 import HailuoAI
from langchain_hailuo.v4.client import V4Answer, V4Client
from langchain_hailuo.v4.provider import ReauthSource, plan_request
from tests._streams import collect
from tests.unit_tests.v4.conftest import SSE, TOKEN, FakeSleep, Hop, chat_url_re, independent_yy
from tests.unit_tests.v4.frames import CHAT, MSG, answer_body, message, send_result

BASE = "https://www.hailuo.ai"
NEW_ORIGIN = "https://chat.minimax.io"
TOKEN2 = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyIjp7ImlkIjoiNDIifSwibiI6Mn0.cmVuZXdlZC1zaWduYXR1cmU"
OTHER_ACCOUNT = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyIjp7ImlkIjoiOTkifX0.b3RoZXItYWNjb3VudA"

HISTORY = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "What is 2+2?"},
]
FOLDED = "System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: What is 2+2?\nAssistant:"


def make_auth(token: str = TOKEN, **extra: Any) -> AuthResult:
    return AuthResult(token=token, uuid="u-1", device_id="d-1", **extra)


class FakeManager:
    """A ReauthSource that hands out a renewed token."""

    def __init__(self, renewed: AuthResult | None = None) -> None:
        self.renewed = renewed or make_auth(TOKEN2)
        self.rejected: list[AuthResult] = []

    async def refresh(self, rejected: AuthResult) -> AuthResult:
        self.rejected.append(rejected)
        return self.renewed


def provider(fake_sleep: FakeSleep | None = None, **kwargs: Any) -> HailuoAI:
    return HailuoAI(client=V4Client(sleep=fake_sleep or FakeSleep()), **kwargs)


def texts(items: list[ProviderEvent]) -> str:
    return "".join(item for item in items if isinstance(item, str))


def posts(mocked: aioresponses) -> int:
    return sum(len(calls) for calls in mocked.requests.values())


# --------------------------------------------------------------------------- the seed's surface


def test_seed_attributes() -> None:
    assert HailuoAI.label == "Hailuo AI"
    assert HailuoAI.url == "https://www.hailuo.ai"
    assert HailuoAI.working is True
    assert HailuoAI.use_nodriver is True
    assert HailuoAI.supports_stream is True
    assert HailuoAI.default_model == "MiniMax"
    assert HailuoAI.protocol == "v4"


def test_fake_manager_satisfies_the_protocol() -> None:
    manager: ReauthSource = FakeManager()
    assert manager is not None


async def test_usable_on_the_class(mocked: aioresponses) -> None:
    mocked.post(chat_url_re(), body=answer_body("class call"), content_type=SSE)
    items = await collect(
        HailuoAI.create_authed("MiniMax", [{"role": "user", "content": "Hi"}], make_auth())
    )
    assert texts(items) == "class call"
    assert items[-1] == FinishReason()
    await HailuoAI.aclose()


async def test_on_auth_async_delegates_to_the_auth_module(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    async def fake_on_auth_async(
        label: str, proxy: str | None = None, **kwargs: Any
    ) -> AsyncIterator[RequestLogin | AuthResult]:
        calls.append({"label": label, "proxy": proxy, **kwargs})
        yield RequestLogin(label=label, login_url="http://login")
        yield make_auth()

    monkeypatch.setattr(_provider, "on_auth_async", fake_on_auth_async)

    items = [item async for item in HailuoAI.on_auth_async(proxy="http://proxy:1", headless=True)]
    assert isinstance(items[0], RequestLogin)
    assert isinstance(items[1], AuthResult)
    assert calls == [
        {
            "label": "Hailuo AI",
            "proxy": "http://proxy:1",
            "headless": True,
            "base_url": BASE,
            "login_protocol": "v4",  # its own login records its own protocol
        }
    ]
    configured = HailuoAI(base_url="http://127.0.0.1:8080/")
    _ = [item async for item in configured.on_auth_async()]
    assert calls[-1]["base_url"] == "http://127.0.0.1:8080"
    assert calls[-1]["login_protocol"] == "v4"


# --------------------------------------------------------------------------- prompts


async def test_new_chat_folds_the_history(mocked: aioresponses, hops: list[Hop]) -> None:
    mocked.post(chat_url_re(), body=answer_body("4", "4."), content_type=SSE)
    hailuo = provider()
    items = await collect(
        hailuo.create_authed("MiniMax", HISTORY, make_auth(), return_conversation=True)
    )
    await hailuo.aclose()
    fields = await hops[0].fields()
    assert fields == {"characterID": "1", "msgContent": FOLDED, "chatID": "0", "searchMode": "0"}
    assert items == [
        TitleGeneration("Greetings"),
        Conversation(TOKEN, CHAT, 1, protocol="v4"),
        MessageId(MSG),
        "4",
        ".",
        FinishReason(),
    ]
    conv = items[1]
    assert isinstance(conv, Conversation)
    assert conv.account == account_fingerprint(TOKEN)
    assert TOKEN not in repr(conv)
    assert TOKEN not in str(conv.get_dict())


async def test_without_return_conversation_no_conversation(mocked: aioresponses) -> None:
    mocked.post(chat_url_re(), body=answer_body("ok"), content_type=SSE)
    hailuo = provider()
    items = await collect(hailuo.create_authed("MiniMax", HISTORY, make_auth()))
    await hailuo.aclose()
    assert not any(isinstance(item, Conversation) for item in items)


async def test_continued_chat_sends_only_the_trailing_user_messages(
    mocked: aioresponses, hops: list[Hop]
) -> None:
    mocked.post(chat_url_re(), body=answer_body("Sure", title=None), content_type=SSE)
    hailuo = provider()
    conversation = Conversation(TOKEN, CHAT, 1)
    messages = [
        *HISTORY,
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
        {"role": "user", "content": "Quickly."},
    ]
    items = await collect(
        hailuo.create_authed(
            "MiniMax", messages, make_auth(), return_conversation=True, conversation=conversation
        )
    )
    await hailuo.aclose()
    fields = await hops[0].fields()
    assert fields == {
        "characterID": "1",
        "msgContent": "And 3+3?\nQuickly.",
        "chatID": CHAT,
        "searchMode": "0",
    }
    assert hops[0].headers["yy"] == independent_yy(
        hops[0].path_and_query, fields, dict(hops[0].query)["unix"]
    )
    assert Conversation(TOKEN, CHAT, 1) in items
    assert not any(isinstance(item, TitleGeneration) for item in items)


async def test_continued_chat_announces_the_conversation_even_without_chat_id(
    mocked: aioresponses,
) -> None:
    body = message("a") + message("ab", is_end=0)
    mocked.post(
        chat_url_re(), body=body.replace(f'"chatID":"{CHAT}",'.encode(), b""), content_type=SSE
    )
    hailuo = provider()
    items = await collect(
        hailuo.create_authed(
            "MiniMax",
            [{"role": "user", "content": "go on"}],
            make_auth(),
            return_conversation=True,
            conversation=Conversation(TOKEN, CHAT, 3),
        )
    )
    await hailuo.aclose()
    assert items[-2:] == [Conversation(TOKEN, CHAT, 3), FinishReason()]


@pytest.mark.parametrize(
    "conversation",
    [
        Conversation(OTHER_ACCOUNT, CHAT, 1),
        Conversation(TOKEN, CHAT, 1, protocol="agent"),
        Conversation(TOKEN, "0", 1),
        {"chatID": CHAT, "characterID": 1, "account": "acct-000000000000", "protocol": "v4"},
    ],
    ids=["other-account", "agent-protocol", "no-chat-id", "dict-other-account"],
)
async def test_foreign_conversation_starts_a_new_chat_from_the_full_history(
    mocked: aioresponses, hops: list[Hop], conversation: Any
) -> None:
    mocked.post(chat_url_re(), body=answer_body("fresh"), content_type=SSE)
    hailuo = provider()
    items = await collect(
        hailuo.create_authed(
            "MiniMax",
            [{"role": "user", "content": "What is 2+2?"}],
            make_auth(),
            return_conversation=True,
            conversation=conversation,
            full_history=HISTORY,
        )
    )
    await hailuo.aclose()
    fields = await hops[0].fields()
    assert (fields["chatID"], fields["characterID"], fields["msgContent"]) == ("0", "1", FOLDED)
    assert Conversation(TOKEN, CHAT, 1) in items


async def test_dict_conversation_of_the_same_account_continues(
    mocked: aioresponses, hops: list[Hop]
) -> None:
    mocked.post(chat_url_re(), body=answer_body("ok"), content_type=SSE)
    hailuo = provider()
    conv = Conversation(TOKEN, CHAT, 2).get_dict()
    await collect(hailuo.create_authed("MiniMax", HISTORY, make_auth(), conversation=conv))
    await hailuo.aclose()
    fields = await hops[0].fields()
    assert (fields["chatID"], fields["characterID"], fields["msgContent"]) == (
        CHAT,
        "2",
        "What is 2+2?",
    )


def test_plan_request_refuses_empty_prompts() -> None:
    with pytest.raises(HailuoConfigurationError, match="Nothing to send"):
        plan_request([{"role": "user", "content": "   "}], make_auth())
    with pytest.raises(HailuoConfigurationError, match="end with a user message"):
        plan_request(
            [{"role": "assistant", "content": "hi"}], make_auth(), Conversation(TOKEN, CHAT)
        )


async def test_non_text_content_is_refused_before_sending(mocked: aioresponses) -> None:
    hailuo = provider()
    image = [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]
    with pytest.raises(HailuoUnsupportedContentError):
        await collect(
            hailuo.create_authed("MiniMax", [{"role": "user", "content": image}], make_auth())
        )
    assert posts(mocked) == 0


# --------------------------------------------------------------------------- re-authentication


async def test_reauth_before_output(mocked: aioresponses, hops: list[Hop]) -> None:
    mocked.post(chat_url_re(), status=401, body="expired")
    mocked.post(chat_url_re(), body=answer_body("renewed"), content_type=SSE)
    manager = FakeManager()
    hailuo = provider(auth_manager=manager)
    items = await collect(
        hailuo.create_authed("MiniMax", HISTORY, make_auth(), return_conversation=True)
    )
    await hailuo.aclose()
    assert [h.headers["token"] for h in hops] == [TOKEN, TOKEN2]
    assert len(manager.rejected) == 1
    assert manager.rejected[0].token.get_secret_value() == TOKEN
    assert texts(items) == "renewed"
    # Same JWT user id: the renewed token keeps the account (and so the conversation).
    assert Conversation(TOKEN2, CHAT, 1) == Conversation(TOKEN, CHAT, 1)


async def test_reauth_manager_from_kwargs(mocked: aioresponses) -> None:
    mocked.post(chat_url_re(), status=401)
    mocked.post(chat_url_re(), body=answer_body("ok"), content_type=SSE)
    manager = FakeManager()
    hailuo = provider()
    items = await collect(
        hailuo.create_authed("MiniMax", HISTORY, make_auth(), auth_manager=manager)
    )
    await hailuo.aclose()
    assert texts(items) == "ok"
    assert len(manager.rejected) == 1


async def test_second_rejection_raises(mocked: aioresponses) -> None:
    mocked.post(chat_url_re(), status=401, repeat=True)
    manager = FakeManager()
    hailuo = provider(auth_manager=manager)
    with pytest.raises(HailuoAuthError) as info:
        await collect(hailuo.create_authed("MiniMax", HISTORY, make_auth()))
    await hailuo.aclose()
    assert len(manager.rejected) == 1
    assert posts(mocked) == 2
    assert "hailuo login" in str(info.value)


async def test_rejection_without_manager_raises(mocked: aioresponses) -> None:
    mocked.post(chat_url_re(), status=401, repeat=True)
    hailuo = provider()
    with pytest.raises(HailuoAuthError):
        await collect(hailuo.create_authed("MiniMax", HISTORY, make_auth()))
    await hailuo.aclose()
    assert posts(mocked) == 1


async def test_refresh_to_another_account_restarts_the_chat(
    mocked: aioresponses, hops: list[Hop]
) -> None:
    mocked.post(chat_url_re(), status=401)
    mocked.post(chat_url_re(), body=answer_body("new account"), content_type=SSE)
    manager = FakeManager(make_auth(OTHER_ACCOUNT))
    hailuo = provider(auth_manager=manager)
    await collect(
        hailuo.create_authed(
            "MiniMax",
            HISTORY,
            make_auth(),
            conversation=Conversation(TOKEN, CHAT, 1),
        )
    )
    await hailuo.aclose()
    first, second = [await h.fields() for h in hops]
    assert (first["chatID"], first["msgContent"]) == (CHAT, "What is 2+2?")
    assert (second["chatID"], second["msgContent"]) == ("0", FOLDED)


async def test_no_replay_after_output(mocked: aioresponses) -> None:
    mocked.post(
        chat_url_re(), body=send_result() + message("Half of the"), content_type=SSE, repeat=True
    )
    manager = FakeManager()
    hailuo = provider(auth_manager=manager)
    received: list[ProviderEvent] = []

    async def consume() -> None:
        async for item in hailuo.create_authed("MiniMax", HISTORY, make_auth()):
            received.append(item)  # noqa: PERF401 - keeps what arrived before the error

    with pytest.raises(HailuoStreamInterruptedError) as info:
        await consume()
    await hailuo.aclose()
    assert texts(received) == "Half of the"
    assert info.value.partial_text == "Half of the"
    assert info.value.chat_id == CHAT
    assert posts(mocked) == 1
    assert manager.rejected == []


# --------------------------------------------------------------------------- transport behaviour


@pytest.mark.parametrize("status", [301, 308])
async def test_redirected_post_reports_the_new_origin(
    mocked: aioresponses, hops: list[Hop], status: int
) -> None:
    def moved(url: URL, **_: Any) -> CallbackResult:
        return CallbackResult(
            status=status, headers={"Location": hops[-1].url.replace(BASE, NEW_ORIGIN)}
        )

    mocked.post(chat_url_re(), callback=moved)
    mocked.post(chat_url_re(NEW_ORIGIN), body=answer_body("from afar"), content_type=SSE)
    hailuo = provider()
    items = await collect(hailuo.create_authed("MiniMax", HISTORY, make_auth()))
    await hailuo.aclose()
    assert [h.method for h in hops] == ["POST", "POST"]
    assert urlsplit(hops[1].url).netloc == "chat.minimax.io"
    assert await hops[1].fields() == await hops[0].fields()
    assert texts(items) == "from afar"
    assert hailuo.last_origin == NEW_ORIGIN


async def test_429_retry_after_then_success(mocked: aioresponses) -> None:
    mocked.post(chat_url_re(), status=429, headers={"Retry-After": "2"})
    mocked.post(chat_url_re(), body=answer_body("patience"), content_type=SSE)
    sleep = FakeSleep()
    hailuo = provider(sleep)
    items = await collect(hailuo.create_authed("MiniMax", HISTORY, make_auth()))
    await hailuo.aclose()
    assert sleep.delays == [2.0]
    assert texts(items) == "patience"


async def test_max_retries_0_means_one_attempt(mocked: aioresponses) -> None:
    mocked.post(chat_url_re(), status=429, headers={"Retry-After": "2"}, repeat=True)
    sleep = FakeSleep()
    hailuo = provider(sleep)
    with pytest.raises(HailuoRateLimitError):
        await collect(hailuo.create_authed("MiniMax", HISTORY, make_auth(), max_retries=0))
    await hailuo.aclose()
    assert posts(mocked) == 1
    assert sleep.delays == []


def test_settings_apply_to_options() -> None:
    hailuo = HailuoAI(timeout=12, max_retries=0, proxy="http://p:3", lang="fr", stream_url="x")
    assert hailuo.options.timeouts.total == 12
    assert hailuo.options.max_retries == 0
    assert hailuo.options.proxy == "http://p:3"
    assert hailuo._client.query.lang == "fr"
    with pytest.raises(HailuoConfigurationError):
        HailuoAI(max_retries=-1)
    with pytest.raises(HailuoConfigurationError, match="base_url"):
        HailuoAI(base_url="www.hailuo.ai")


@pytest.mark.parametrize(
    ("ctor", "kwarg", "auth_extra", "expected"),
    [
        (None, None, {}, "https://www.hailuo.ai"),
        (None, None, {"api_origin": "https://chat.minimax.io"}, "https://chat.minimax.io"),
        (None, None, {"api_origin": "https://agent.minimax.io", "protocol": "agent"}, BASE),
        (
            "http://127.0.0.1:9/",
            None,
            {"api_origin": "https://chat.minimax.io"},
            "http://127.0.0.1:9",
        ),
        ("http://127.0.0.1:9", "http://localhost:7/", {}, "http://localhost:7"),
    ],
)
async def test_base_url_priority(
    mocked: aioresponses,
    ctor: str | None,
    kwarg: str | None,
    auth_extra: dict[str, Any],
    expected: str,
) -> None:
    mocked.post(chat_url_re(expected), body=answer_body("ok"), content_type=SSE)
    hailuo = provider(base_url=ctor)
    kwargs: dict[str, Any] = {"base_url": kwarg} if kwarg else {}
    items = await collect(
        hailuo.create_authed("MiniMax", HISTORY, make_auth(**auth_extra), **kwargs)
    )
    await hailuo.aclose()
    assert texts(items) == "ok"
    assert hailuo.last_origin == expected


async def test_token_never_in_output_logs_or_errors(
    mocked: aioresponses, debug_logs: pytest.LogCaptureFixture
) -> None:
    mocked.post(chat_url_re(), status=401, body=f"bad token {TOKEN}")
    mocked.post(chat_url_re(), body=answer_body("fine"), content_type=SSE)
    mocked.post(chat_url_re(), body=send_result() + message("cut"), content_type=SSE)
    hailuo = provider(auth_manager=FakeManager(make_auth(TOKEN)))
    items = await collect(
        hailuo.create_authed("MiniMax", HISTORY, make_auth(), return_conversation=True)
    )
    with pytest.raises(HailuoStreamInterruptedError) as info:
        await collect(hailuo.create_authed("MiniMax", HISTORY, make_auth()))
    await hailuo.aclose()
    assert debug_logs.records
    assert TOKEN not in debug_logs.text
    for item in items:
        assert TOKEN not in repr(item)
        assert TOKEN not in str(item)
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(info.value)
    assert TOKEN not in repr(hailuo)
    assert TOKEN not in repr(make_auth())


async def test_consumer_stopping_early_closes_the_answer(
    mocked: aioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[bool] = []
    original = V4Answer.close

    def spy(self: V4Answer) -> None:
        original(self)
        closed.append(self._response.closed)

    monkeypatch.setattr(V4Answer, "close", spy)
    mocked.post(chat_url_re(), body=answer_body("a", "ab", "abc"), content_type=SSE)
    hailuo = provider()
    stream = hailuo.create_authed("MiniMax", HISTORY, make_auth())
    async for item in stream:
        if isinstance(item, str):
            break
    await stream.aclose()
    assert closed
    assert all(closed)
    session = hailuo._client._sessions.get()
    await hailuo.aclose()
    assert session.closed


async def test_async_context_manager_closes_sessions(mocked: aioresponses) -> None:
    mocked.post(chat_url_re(), body=answer_body("ok"), content_type=SSE)
    async with provider() as hailuo:
        await collect(hailuo.create_authed("MiniMax", HISTORY, make_auth()))
        session = hailuo._client._sessions.get()
    assert session.closed
