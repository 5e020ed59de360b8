"""MiniMaxAgent: bootstrap, sessions, follow-ups, model check, retries, re-auth, no replay."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from aioresponses import aioresponses
from pydantic import SecretStr

from langchain_hailuo.agent.provider import MiniMaxAgent, choose_model
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoConfigurationError,
    HailuoQuotaError,
    HailuoServerError,
    HailuoSessionBusyError,
    HailuoStreamInterruptedError,
)
from langchain_hailuo.types import (
    AuthResult,
    Conversation,
    FinishReason,
    MessageId,
    Reasoning,
    Usage,
)
from tests._streams import collect
from tests.unit_tests.agent.conftest import (
    AGENT_ID,
    CONFIG_URL,
    PREFIX,
    REAL_USER_ID,
    SESSION_ID,
    SESSION_URL,
    TOKEN,
    chunk,
    make_auth,
    make_client,
    message,
    message_url,
    mock_config,
    mock_identity,
    mock_turn,
    sent,
    sse,
)

HISTORY = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Name a fox."},
]
FOLDED = "System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: Name a fox.\nAssistant:"


def good_turn(text: str = "Reynard.") -> bytes:
    return sse(
        message("echo", role="user"),
        chunk(thinking="A fox name.", msg_id="m-1"),
        chunk(text),
        message(text, usage={"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}),
        chunk(finish=True),
    )


class FakeManager:
    def __init__(self, fresh: AuthResult | None = None) -> None:
        self.fresh = fresh
        self.refreshed: list[AuthResult] = []
        self.updated: list[AuthResult] = []

    async def refresh(self, rejected: AuthResult) -> AuthResult:
        self.refreshed.append(rejected)
        if self.fresh is None:
            raise HailuoAuthError("no better credentials")
        return self.fresh

    async def update(self, auth: AuthResult) -> None:
        self.updated.append(auth)


def provider(manager: FakeManager | None = None, **settings: Any) -> MiniMaxAgent:
    return MiniMaxAgent(client=make_client(**settings), auth_manager=manager, max_retries=0)


def paths(m: aioresponses) -> list[tuple[str, str]]:
    return [(method, urlsplit(url).path) for method, url, _ in sent(m)]


def bodies(m: aioresponses, path_end: str) -> list[dict[str, Any]]:
    return [
        json.loads(kw["data"]) for _, url, kw in sent(m) if urlsplit(url).path.endswith(path_end)
    ]


async def drain(agen: Any, out: list[Any]) -> None:
    async for item in agen:
        out.append(item)  # noqa: PERF401 - keeps what arrived before an error


async def test_new_session_turn_and_bootstrap_once(mocked: aioresponses) -> None:
    mock_identity(mocked, repeat=True)
    mocked.post(SESSION_URL, payload={"session_id": SESSION_ID})
    mocked.post(SESSION_URL, payload={"session_id": "999"})
    mock_turn(mocked, good_turn())
    mock_turn(mocked, good_turn("Vixen."), session_id="999")
    manager = FakeManager()
    agent = provider(manager)
    auth = make_auth()
    items = await collect(
        agent.create_authed("MiniMax-M3", HISTORY, auth, return_conversation=True, reasoning=True)
    )
    conv = Conversation(TOKEN, SESSION_ID, AGENT_ID, protocol="agent")
    assert items == [
        conv,
        MessageId("m-1"),
        Reasoning("A fox name."),
        "Reynard.",
        Usage(5, 2, 7),
        FinishReason("stop"),
    ]
    assert len(manager.updated) == 1
    assert manager.updated[0].agent_id == AGENT_ID
    assert manager.updated[0].real_user_id == REAL_USER_ID
    # a second new conversation of the same account: no second bootstrap
    await collect(agent.create_authed("MiniMax-M3", [{"role": "user", "content": "x"}], auth))
    assert paths(mocked) == [
        ("GET", "/v1/api/user/info"),
        ("GET", PREFIX + "/config"),
        ("GET", PREFIX + "/agent"),
        ("POST", f"{PREFIX}/agent/{AGENT_ID}/session"),
        ("POST", f"{PREFIX}/session/{SESSION_ID}/message"),
        ("POST", f"{PREFIX}/agent/{AGENT_ID}/session"),
        ("POST", f"{PREFIX}/session/999/message"),
    ]
    first = bodies(mocked, "/message")[0]
    assert first["content"] == FOLDED
    assert first["model"] == {"provider_id": "minimax", "model_id": "MiniMax-M3", "reasoning": True}
    assert bodies(mocked, "/session")[0] == {"model": first["model"]}


async def test_follow_up_uses_the_same_session(mocked: aioresponses) -> None:
    mock_config(mocked, repeat=True)
    mock_turn(mocked, good_turn("Second."))
    agent = provider()
    auth = make_auth(real_user_id=REAL_USER_ID, agent_id=AGENT_ID, models=["MiniMax-M3"])
    conv = Conversation(TOKEN, SESSION_ID, AGENT_ID, protocol="agent")
    messages = [
        *HISTORY,
        {"role": "assistant", "content": "Reynard."},
        {"role": "user", "content": "Another?"},
    ]
    items = await collect(agent.create_authed("MiniMax-M3", messages, auth, conversation=conv))
    assert "Second." in items
    assert paths(mocked) == [  # /config once per account before its first message (§12.2)
        ("GET", PREFIX + "/config"),
        ("POST", f"{PREFIX}/session/{SESSION_ID}/message"),
    ]
    body = bodies(mocked, "/message")[0]
    assert body["content"] == "Another?"
    assert "reasoning" not in body["model"]


async def test_other_accounts_conversation_starts_over(mocked: aioresponses) -> None:
    mock_config(mocked, repeat=True)
    mocked.post(SESSION_URL, payload={"session_id": "777"})
    mock_turn(mocked, good_turn(), session_id="777")
    agent = provider()
    auth = make_auth(real_user_id=REAL_USER_ID, agent_id=AGENT_ID, models=["MiniMax-M3"])
    foreign = Conversation("another-token", SESSION_ID, AGENT_ID, protocol="agent")
    await collect(
        agent.create_authed(
            "MiniMax-M3", HISTORY[-1:], auth, conversation=foreign, full_history=HISTORY
        )
    )
    assert bodies(mocked, "/message")[0]["content"] == FOLDED


async def test_unknown_model_names_the_available_ones(mocked: aioresponses) -> None:
    mock_identity(mocked, repeat=True)
    agent = provider()
    with pytest.raises(HailuoConfigurationError, match=r"MiniMax-M3, MiniMax-M2\.7"):
        await collect(agent.create_authed("GPT-9", HISTORY, make_auth()))
    assert paths(mocked).count(("GET", PREFIX + "/config")) == 2  # re-read once before failing
    assert choose_model(None, ["A", "B"], "B") == "B"
    assert choose_model("", ["A"], "B") == "A"


async def test_not_configured_message_calls_config_and_retries_once(mocked: aioresponses) -> None:
    mock_config(mocked, repeat=True)
    mocked.post(
        message_url(),
        status=500,
        body='{"error":"[1400010501] Environment Variables not configured"}',
    )
    mocked.get(CONFIG_URL, payload={"models": [{"model_id": "MiniMax-M3"}]})
    mock_turn(mocked, good_turn())
    agent = provider()
    auth = make_auth(real_user_id=REAL_USER_ID, agent_id=AGENT_ID, models=["MiniMax-M3"])
    conv = Conversation(TOKEN, SESSION_ID, AGENT_ID, protocol="agent")
    items = await collect(agent.create_authed("MiniMax-M3", HISTORY, auth, conversation=conv))
    assert items[-1] == FinishReason("stop")
    assert paths(mocked) == [  # read once up front; the server still refused: read again
        ("GET", PREFIX + "/config"),
        ("POST", f"{PREFIX}/session/{SESSION_ID}/message"),
        ("GET", PREFIX + "/config"),
        ("POST", f"{PREFIX}/session/{SESSION_ID}/message"),
    ]


async def test_busy_session(mocked: aioresponses) -> None:
    mock_config(mocked, repeat=True)
    mocked.post(message_url(), status=409, body="busy")
    agent = provider()
    auth = make_auth(real_user_id=REAL_USER_ID, agent_id=AGENT_ID, models=["MiniMax-M3"])
    conv = Conversation(TOKEN, SESSION_ID, AGENT_ID, protocol="agent")
    with pytest.raises(HailuoSessionBusyError):
        await collect(agent.create_authed("MiniMax-M3", HISTORY, auth, conversation=conv))


@pytest.mark.parametrize("said", ["sandbox connection error", "rpc timeout"])
async def test_transient_failure_in_the_stream_is_raised_not_sent_again(
    mocked: aioresponses, said: str
) -> None:
    mock_config(mocked)
    mock_turn(mocked, sse(message(said, finish_reason="error")))
    agent = provider()
    auth = make_auth(real_user_id=REAL_USER_ID, agent_id=AGENT_ID, models=["MiniMax-M3"])
    conv = Conversation(TOKEN, SESSION_ID, AGENT_ID, protocol="agent")
    with pytest.raises(HailuoServerError, match="may have been received") as info:
        await collect(agent.create_authed("MiniMax-M3", HISTORY, auth, conversation=conv))
    assert said in info.value.message
    assert info.value.server_message == said
    assert info.value.chat_id == SESSION_ID
    assert info.value.retryable is False
    # the service took the message: it was posted once, and no other session was opened
    assert [b["content"] for b in bodies(mocked, "/message")] == ["Name a fox."]
    assert bodies(mocked, "/session") == []


@pytest.mark.parametrize("said", ["sandbox connection error", "rpc timeout"])
async def test_a_session_that_fails_to_open_is_not_said_to_have_taken_the_message(
    mocked: aioresponses, said: str
) -> None:
    # The same words before the message is sent (here, opening the session): nothing was
    # posted, so the error must not say the message may have been received.
    mock_config(mocked, repeat=True)
    mocked.post(SESSION_URL, status=500, body=said)
    agent = provider()
    auth = make_auth(real_user_id=REAL_USER_ID, agent_id=AGENT_ID, models=["MiniMax-M3"])
    with pytest.raises(HailuoServerError) as info:
        await collect(agent.create_authed("MiniMax-M3", HISTORY, auth))
    assert "may have been received" not in info.value.message
    assert bodies(mocked, "/message") == []


async def test_quota_wall_prose(mocked: aioresponses) -> None:
    mock_config(mocked, repeat=True)
    wall = "No conversation resources are available. Subscribe to continue."
    mock_turn(mocked, sse(chunk(wall[:20]), chunk(wall[20:]), chunk("", finish=True)))
    agent = provider()
    auth = make_auth(real_user_id=REAL_USER_ID, agent_id=AGENT_ID, models=["MiniMax-M3"])
    conv = Conversation(TOKEN, SESSION_ID, AGENT_ID, protocol="agent")
    received: list[Any] = []
    with pytest.raises(HailuoQuotaError) as info:
        await drain(agent.create_authed("MiniMax-M3", HISTORY, auth, conversation=conv), received)
    assert received == []  # the wall text never reached the caller
    assert info.value.partial_text.startswith("No conversation resources")


async def test_reauth_before_output(mocked: aioresponses) -> None:
    mock_config(mocked, repeat=True)
    mocked.post(SESSION_URL, status=401, body="")
    mocked.post(SESSION_URL, payload={"session_id": SESSION_ID})
    mock_turn(mocked, good_turn())
    old = make_auth(real_user_id=REAL_USER_ID, agent_id=AGENT_ID, models=["MiniMax-M3"])
    fresh = old.model_copy(update={"token": SecretStr("fresh-token-value")})
    manager = FakeManager(fresh)
    agent = provider(manager)
    items = await collect(agent.create_authed("MiniMax-M3", HISTORY, old))
    assert manager.refreshed == [old]
    assert items[-1] == FinishReason("stop")
    (_, _, first), (_, _, second), _ = [c for c in sent(mocked) if c[0] == "POST"]
    assert first["headers"]["token"] == TOKEN
    assert second["headers"]["token"] == "fresh-token-value"


async def test_second_rejection_raises(mocked: aioresponses) -> None:
    mocked.post(SESSION_URL, status=401, body="", repeat=True)
    auth = make_auth(real_user_id=REAL_USER_ID, agent_id=AGENT_ID, models=["MiniMax-M3"])
    manager = FakeManager(auth.model_copy(update={"token": SecretStr("fresh")}))
    with pytest.raises(HailuoAuthError, match="user_id="):
        await collect(provider(manager).create_authed("MiniMax-M3", HISTORY, auth))
    assert len(manager.refreshed) == 1


async def test_no_replay_after_output(mocked: aioresponses) -> None:
    mock_config(mocked, repeat=True)
    mock_turn(mocked, sse(chunk("Half an ans"), message("rpc timeout", finish_reason="error")))
    mock_turn(mocked, sse(chunk("cut off")))
    agent = provider(FakeManager(make_auth(token="other")))
    auth = make_auth(real_user_id=REAL_USER_ID, agent_id=AGENT_ID, models=["MiniMax-M3"])
    conv = Conversation(TOKEN, SESSION_ID, AGENT_ID, protocol="agent")
    with pytest.raises(HailuoServerError) as info:
        await collect(agent.create_authed("MiniMax-M3", HISTORY, auth, conversation=conv))
    assert info.value.partial_text == "Half an ans"
    with pytest.raises(HailuoStreamInterruptedError) as cut:
        await collect(agent.create_authed("MiniMax-M3", HISTORY, auth, conversation=conv))
    assert cut.value.partial_text == "cut off"
    assert len([c for c in sent(mocked) if c[0] == "POST"]) == 2  # one each, nothing replayed


async def test_token_never_leaks(
    mocked: aioresponses, debug_logs: pytest.LogCaptureFixture
) -> None:
    mock_identity(mocked, repeat=True)
    mocked.post(SESSION_URL, payload={"session_id": SESSION_ID})
    mock_turn(mocked, sse(chunk("partial")))
    agent = provider()
    auth = make_auth()
    with pytest.raises(HailuoStreamInterruptedError) as info:
        await collect(agent.create_authed("MiniMax-M3", HISTORY, auth, return_conversation=True))
    for text in (debug_logs.text, str(info.value), repr(info.value), repr(agent), repr(auth)):
        assert TOKEN not in text
    assert TOKEN not in repr(Conversation(TOKEN, SESSION_ID, AGENT_ID, protocol="agent"))
    assert debug_logs.records  # something was logged at DEBUG


def test_class_attributes_and_class_level_binding() -> None:
    assert MiniMaxAgent.label == "MiniMax Agent"
    assert MiniMaxAgent.url == "https://agent.minimax.io"
    assert MiniMaxAgent.default_model == "MiniMax-M3"
    assert MiniMaxAgent.protocol == "agent"
    assert MiniMaxAgent.working
    assert MiniMaxAgent.use_nodriver
    assert MiniMaxAgent.supports_stream
    bound = MiniMaxAgent.create_authed
    assert isinstance(bound.__self__, MiniMaxAgent)  # type: ignore[attr-defined]
    assert MiniMaxAgent.create_authed.__self__ is bound.__self__  # type: ignore[attr-defined]


def test_settings_and_validation() -> None:
    agent = MiniMaxAgent(
        base_url="http://127.0.0.1:8000",
        stream_url="http://127.0.0.1:8001/",
        api_prefix="/archon/api/v1",
        agent_role="general",
    )
    settings = agent.settings_for(make_auth(), {})
    assert settings.control_origin == "http://127.0.0.1:8000"
    assert settings.stream_origin == "http://127.0.0.1:8001"
    assert settings.prefixed("/config") == "/archon/api/v1/config"
    assert settings.agent_role == "general"
    with pytest.raises(HailuoConfigurationError, match="stream_url"):
        _ = (
            MiniMaxAgent(base_url="http://127.0.0.1:8000")
            .settings_for(make_auth(), {})
            .stream_origin
        )
    recorded = make_auth(
        protocol="agent", api_origin="https://agent.minimaxi.com", stream_origin="https://s.example"
    )
    from_login = MiniMaxAgent().settings_for(recorded, {})
    assert from_login.control_origin == "https://agent.minimaxi.com"
    assert from_login.stream_origin == "https://s.example"
    override = MiniMaxAgent().settings_for(recorded, {"base_url": "https://agent.minimax.io"})
    assert override.stream_origin == "https://agent-stream.minimax.io"


async def test_connection_errors_do_not_quote_the_token(mocked: aioresponses) -> None:
    # nothing registered: aioresponses refuses the connection, quoting the full URL
    auth = make_auth(real_user_id=REAL_USER_ID, agent_id=AGENT_ID, models=["MiniMax-M3"])
    with pytest.raises(HailuoServerError) as info:
        await collect(provider().create_authed("MiniMax-M3", HISTORY, auth))
    assert "could not reach https://agent.minimax.io" in str(info.value)
    assert TOKEN not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
