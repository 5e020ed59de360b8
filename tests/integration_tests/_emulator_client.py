"""A raw client for emulator tests: requests built and signed here with hashlib only.

Nothing from ``langchain_hailuo`` is used to sign, so these tests check the emulator's own
verification against the protocol notes, not against the package's clients.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import pytest

AGENT_SALT = "I*7Cf%WZ#S&%1RlZJ&C2"
PREFIX = "/minimax-cloud/api/v1"


def md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def encode_uri_component(text: str) -> str:
    return quote(text, safe="-_.!~*'()")


def now_ms() -> int:
    return int(time.time() * 1000)


# ----------------------------------------------------------------------------- v4


def v4_query(account: Any, unix: int | None = None, **overrides: str) -> str:
    params = {
        "device_platform": "web",
        "biz_id": "2",
        "app_id": "3001",
        "version_code": "22201",
        "lang": "en",
        "uuid": account.uuid,
        "device_id": account.device_id,
        "os_name": "Linux",
        "browser_name": "chrome",
        "cpu_core_num": "8",
        "browser_language": "en-US",
        "browser_platform": "Linux x86_64",
        "screen_width": "1920",
        "screen_height": "1080",
        "unix": str(now_ms() if unix is None else unix),
    }
    params.update(overrides)
    return urlencode(params)


def v4_yy(path_and_query: str, form: dict[str, str], unix: str) -> str:
    content = re.sub(r"\r\n|\r|\n", "", form["msgContent"])
    body = md5(form["characterID"]) + md5(content) + md5(form["chatID"]) + md5("")
    return md5(f"{encode_uri_component(path_and_query)}_{body}{md5(unix)}ooui")


async def v4_post(
    session: aiohttp.ClientSession,
    base: str,
    account: Any,
    text: str,
    chat_id: str = "0",
    *,
    unix: int | None = None,
    query: str | None = None,
    yy: str | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str, aiohttp.ClientResponse]:
    query = query if query is not None else v4_query(account, unix)
    path_and_query = f"/v4/api/chat/msg?{query}"
    form = {"characterID": "1", "msgContent": text, "chatID": chat_id, "searchMode": "0"}
    unix_value = dict(p.split("=", 1) for p in query.split("&")).get("unix", "0")
    data = aiohttp.FormData(default_to_multipart=True)
    for key, value in form.items():
        data.add_field(key, value)
    all_headers = {
        "token": account.token if token is None else token,
        "yy": yy or v4_yy(path_and_query, form, unix_value),
        **(headers or {}),
    }
    async with session.post(base + path_and_query, data=data, headers=all_headers) as response:
        body = (await response.read()).decode("utf-8")
        return response.status, body, response


def v4_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    name = ""
    for line in body.split("\n"):
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            events.append((name, json.loads(line[5:])))
    return events


# ----------------------------------------------------------------------------- agent


def agent_query(account: Any, unix: int | None = None, *, path: str = "", **overrides: str) -> str:
    """The browser's query (§12.1): whole-second ``unix``; ``region`` on agent-API calls."""
    params = {
        "device_platform": "web",
        "biz_id": "3",
        "app_id": "3001",
        "version_code": "22201",
        "unix": str(now_ms() // 1000 * 1000 if unix is None else unix),
        "timezone_offset": "0",
        "sys_language": "en",
        "lang": "en",
        "uuid": account.uuid,
        "device_id": account.tab_device_id,
        "os_name": "Linux",
        "browser_name": "Chrome",
        "device_memory": "8",
        "cpu_core_num": "8",
        "browser_language": "en-US",
        "browser_platform": "Linux x86_64",
        "user_id": account.real_user_id,
        "screen_width": "1920",
        "screen_height": "1080",
        "token": account.token,
        "client": "web",
        "region": "en",
    }
    if path.startswith(("/v1/api/", "/matrix/")):
        del params["region"]
    params.update(overrides)
    return urlencode(params)


def browser_yy(target: str, body: str, unix: str, *, agent_api: bool) -> str:
    """``yy`` as the bundle computes it: ``op_ticket=undefined`` signed after ``user_id``,
    the body JSON-quoted once more on agent-API calls."""
    path, _, query = target.partition("?")
    pairs = query.split("&")
    later = ("screen_width", "screen_height", "token", "client", "region")
    at = next((i for i, p in enumerate(pairs) if p.split("=")[0] in later), len(pairs))
    signed = f"{path}?{'&'.join([*pairs[:at], 'op_ticket=undefined', *pairs[at:]])}"
    body_yy = (json.dumps(body, ensure_ascii=False) if agent_api else body) if body else "{}"
    return md5(f"{encode_uri_component(signed)}_{body_yy}{md5(unix)}ooui")


async def agent_call(
    session: aiohttp.ClientSession,
    base: str,
    method: str,
    path: str,
    account: Any,
    *,
    body: dict[str, Any] | None = None,
    query: str | None = None,
    absolute_yy: bool = False,
    signature: str | None = None,
    headers: dict[str, str] | None = None,
    token: str | None = None,
) -> tuple[int, str, aiohttp.ClientResponse]:
    """One signed call; ``absolute_yy`` for the stream host (its ``yy`` signs the URL)."""
    query = query if query is not None else agent_query(account, path=path)
    target = f"{path}?{query}"
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False) if body is not None else ""
    unix = dict(p.split("=", 1) for p in query.split("&")).get("unix", "0")
    timestamp = unix[:-3] if unix.endswith("000") else str(int(time.time()))
    signed_target = base + target if absolute_yy else target
    agent_api = not path.startswith(("/v1/api/", "/matrix/"))
    all_headers = {
        "token": account.token if token is None else token,
        "x-timestamp": timestamp,
        "x-signature": signature or md5(timestamp + AGENT_SALT + text),
        "yy": browser_yy(signed_target, text, unix, agent_api=agent_api),
        **({"content-type": "application/json"} if body is not None else {}),
        **(headers or {}),
    }
    async with session.request(
        method,
        base + target,
        data=text.encode("utf-8") if body is not None else None,
        headers=all_headers,
    ) as response:
        raw = (await response.read()).decode("utf-8")
        return response.status, raw, response


def agent_frames(body: str) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in body.split("\n") if line.startswith("data:")]


async def agent_bootstrap(session: aiohttp.ClientSession, emulator: Any, account: Any) -> str:
    """user/info, config, agent list and a new session; returns the session id."""
    status, body, _ = await agent_call(
        session, emulator.agent_url, "GET", "/v1/api/user/info", account
    )
    assert status == 200, body
    assert json.loads(body)["data"]["userInfo"]["realUserID"] == account.real_user_id
    status, body, _ = await agent_call(
        session, emulator.agent_url, "GET", f"{PREFIX}/config", account
    )
    assert status == 200, body
    status, body, _ = await agent_call(
        session, emulator.agent_url, "GET", f"{PREFIX}/agent", account
    )
    mavis = next(a for a in json.loads(body)["agents"] if a["agent_role"] == "mavis")
    model = {"provider_id": "minimax", "model_id": "MiniMax-M3", "reasoning": False}
    status, body, _ = await agent_call(
        session,
        emulator.agent_url,
        "POST",
        f"{PREFIX}/agent/{mavis['name']}/session",
        account,
        body={"model": model},
    )
    assert status == 200, body
    return str(json.loads(body)["session_id"])


async def agent_turn(
    session: aiohttp.ClientSession,
    emulator: Any,
    account: Any,
    session_id: str,
    content: str,
    *,
    reasoning: bool = False,
    **kwargs: Any,
) -> tuple[int, str, aiohttp.ClientResponse]:
    body = {
        "content": content,
        "model": {"provider_id": "minimax", "model_id": "MiniMax-M3", "reasoning": reasoning},
        "turn_id": str(uuid.uuid4()),
        "worktreeMode": False,
    }
    return await agent_call(
        session,
        emulator.agent_stream_url,
        "POST",
        f"{PREFIX}/session/{session_id}/message",
        account,
        body=body,
        headers={"accept": "text/event-stream", **kwargs.pop("headers", {})},
        absolute_yy=kwargs.pop("absolute_yy", True),
        **kwargs,
    )


async def assert_held_back(send: Callable[[aiohttp.ClientSession], Awaitable[Any]]) -> None:
    """A ``slow_first_byte`` fault holds the answer back: a client that waits less gives up.

    Nothing is timed: without the fault the emulator answers in milliseconds, so the short
    read timeout only fires when the answer really is held back.
    """
    impatient = aiohttp.ClientTimeout(sock_read=0.2)
    async with aiohttp.ClientSession(timeout=impatient) as session:
        with pytest.raises(asyncio.TimeoutError):
            await send(session)
