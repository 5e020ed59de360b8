"""Shared fixtures of the Agent stack's unit tests: a fixed clock, a wire-URL spy, accounts,
the mocked endpoints and the signature recipe's hash."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from langchain_hailuo.agent.client import AgentClient, AgentSettings
from langchain_hailuo.agent.signing import QueryProfile
from langchain_hailuo.types import AuthResult

NOW = 1790000000123
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyIjp7ImlkIjoiNDIifX0.SECRET-sig"
CONTROL = "https://agent.minimax.io"
STREAM = "https://agent-stream.minimax.io"
PREFIX = "/minimax-cloud/api/v1"
REAL_USER_ID = "987654321987654321"
AGENT_ID = "403870624314008"
SESSION_ID = "123456789012345"


def url_re(origin: str, path: str) -> re.Pattern[str]:
    """A pattern matching ``origin + path`` with any query."""
    return re.compile("^" + re.escape(origin + path) + r"(\?.*)?$")


USER_INFO_URL = url_re(CONTROL, "/v1/api/user/info")
CONFIG_URL = url_re(CONTROL, PREFIX + "/config")
AGENTS_URL = url_re(CONTROL, PREFIX + "/agent")
SESSION_URL = url_re(CONTROL, f"{PREFIX}/agent/{AGENT_ID}/session")
SALT = "I*7Cf%WZ#S&%1RlZJ&C2"
"""The web client's ``x-signature`` salt (§12.1)."""


def message_url(session_id: str = SESSION_ID) -> re.Pattern[str]:
    """The stream host's message endpoint of a session, with any query."""
    return url_re(STREAM, f"{PREFIX}/session/{session_id}/message")


def md5(text: str) -> str:
    """The hex MD5 of ``text`` (the signatures' hash), from hashlib alone."""
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def sse(*frames: Any, done: bool = False) -> bytes:
    """An SSE body of JSON frames (``data:`` lines, blank lines between)."""
    lines = [f"data:{json.dumps(f, ensure_ascii=False)}\n\n" for f in frames]
    if done:
        lines.append("data:[DONE]\n\n")
    return "".join(lines).encode("utf-8")


def chunk(text: str = "", *, thinking: str = "", finish: bool = False, **extra: Any) -> dict:
    """A type-6 ``agent_message_chunk`` frame."""
    payload: dict[str, Any] = {
        "role": "assistant",
        "msg_content": text,
        "thinking_content": thinking,
    }
    payload.update(extra)
    if finish:
        payload["finish"] = True
    return {"type": 6, "agent_message_chunk": payload}


def message(text: str, *, role: str = "assistant", **extra: Any) -> dict:
    """A type-2 ``agent_message`` frame."""
    return {"type": 2, "agent_message": {"role": role, "msg_content": text, **extra}}


def make_auth(**changes: Any) -> AuthResult:
    """A logged-in account with a numeric device id."""
    data: dict[str, Any] = {
        "token": TOKEN,
        "uuid": "3f1c2a4e-0000-4000-8000-000000000001",
        "device_id": "12345678",
        "user_agent": "Mozilla/5.0 test",
        "cookies": {"__cf_bm": "cf-cookie", "_token": TOKEN},
        "timezone_offset": "28800",
    }
    data.update(changes)
    return AuthResult(**data)


def mock_config(m: aioresponses, *, models: list[str] | None = None, repeat: bool = False) -> None:
    """``/config``: the account's models (M3 and M2.7 unless ``models`` says otherwise)."""
    listed = models or ["MiniMax-M3", "MiniMax-M2.7"]
    m.get(CONFIG_URL, payload={"models": [{"model_id": mid} for mid in listed]}, repeat=repeat)


def mock_identity(
    m: aioresponses, *, models: list[str] | None = None, repeat: bool = False
) -> None:
    """The bootstrap's answers: the user's id, the account's models, its agents (one Mavis)."""
    m.get(
        USER_INFO_URL,
        payload={"statusInfo": {"code": 0}, "data": {"userInfo": {"realUserID": REAL_USER_ID}}},
        repeat=repeat,
    )
    mock_config(m, models=models, repeat=repeat)
    m.get(
        AGENTS_URL,
        payload={
            "agents": [
                {"name": "111111111111111", "agent_role": "general"},
                {"name": AGENT_ID, "agent_role": "mavis", "display_name": "Mavis"},
            ]
        },
        repeat=repeat,
    )


def mock_turn(m: aioresponses, body: bytes, session_id: str = SESSION_ID, **kw: Any) -> None:
    """A turn's streamed answer ``body`` on the session's message endpoint."""
    m.post(message_url(session_id), body=body, content_type="text/event-stream", **kw)


async def no_sleep(_: float) -> None:
    """A sleep that returns at once."""


def make_client(**settings: Any) -> AgentClient:
    """A client with a fixed clock and no sleeping."""
    client = AgentClient(
        AgentSettings(**settings),
        profile=QueryProfile(timezone_offset="0"),
        clock=itertools.count(NOW, 1000).__next__,  # a second per request: unique URLs
        sleep=no_sleep,
    )
    _OPEN_CLIENTS.append(client)
    return client


_OPEN_CLIENTS: list[AgentClient] = []


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    """Close every client a test made (their sessions belong to the test's loop)."""
    yield
    while _OPEN_CLIENTS:
        await _OPEN_CLIENTS.pop().aclose()


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL handed to aiohttp, exactly as it would go on the wire, in order."""
    seen: list[str] = []
    original = aiohttp.ClientSession._build_url

    def spy(self: aiohttp.ClientSession, str_or_url: Any) -> Any:
        url = original(self, str_or_url)
        seen.append(str(url))
        return url

    monkeypatch.setattr(aiohttp.ClientSession, "_build_url", spy)
    return seen


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    """aioresponses, active for the test."""
    with aioresponses() as m:
        yield m


def sent(m: aioresponses) -> list[tuple[str, str, dict[str, Any]]]:
    """``(method, normalised url, kwargs)`` of every request, in order (unique unix per call)."""
    return [
        (method, str(url), call.kwargs)
        for (method, url), calls in m.requests.items()
        for call in calls
    ]
