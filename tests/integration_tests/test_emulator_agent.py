"""The emulator's MiniMax Agent routes, driven with raw requests signed in the test."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from langchain_hailuo.emulator import (
    NOT_CONFIGURED_TEXT,
    QUOTA_WALL_TEXT,
    Emulator,
    EmulatorAccount,
)
from tests.integration_tests._emulator_client import (
    AGENT_SALT,
    PREFIX,
    agent_bootstrap,
    agent_call,
    agent_frames,
    agent_query,
    agent_turn,
    assert_held_back,
    browser_yy,
    encode_uri_component,
    md5,
)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _chunks(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f["agent_message_chunk"] for f in frames if f["type"] == 6]


def _answer(frames: list[dict[str, Any]]) -> str:
    """Concatenate chunk deltas, dropping the tail re-send of the whole answer."""
    text = ""
    for chunk in _chunks(frames):
        delta = chunk["msg_content"]
        if text and delta == text:
            continue
        text += delta
    return text


async def test_bootstrap_session_and_turn(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    account = hailuo_emulator.default_account
    session_id = await agent_bootstrap(http, hailuo_emulator, account)
    assert len(session_id) == 15
    assert session_id.isdigit()
    status, body, response = await agent_turn(
        http, hailuo_emulator, account, session_id, "hello agent"
    )
    assert status == 200, body
    assert response.headers["Content-Type"].startswith("text/event-stream")
    lines = body.split("\n")
    assert any(line.startswith("data:{") for line in lines)
    assert any(line.startswith("data: {") for line in lines)
    assert "" in lines  # blank lines between frames
    frames = agent_frames(body)
    assert frames[0]["type"] == 2
    assert frames[0]["agent_message"]["role"] == "user"
    assert frames[0]["agent_message"]["msg_content"] == "hello agent"
    assert any(f["type"] == 10 for f in frames)
    chunks = _chunks(frames)
    expected = "You said: hello agent. This chat has 1 turn(s)."
    assert chunks[-2]["msg_content"] == expected  # the tail re-send
    assert chunks[-1]["finish"] is True
    assert chunks[-1]["finish_reason"] == "stop"
    assert chunks[-1]["msg_content"] == ""  # the browser uses no text of the finish chunk
    assert not any(c["finish"] for c in chunks[:-1])
    assert "".join(c["msg_content"] for c in chunks[:-2]) == expected
    assert _answer(frames) == expected
    assert all(c["thinking_content"] == "" for c in chunks)
    final = frames[-1]
    assert final["type"] == 2
    assert final["agent_message"]["msg_content"] == expected
    usage = final["agent_message"]["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


async def test_bootstrap_answers(hailuo_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    account = hailuo_emulator.default_account
    base = hailuo_emulator.agent_url
    _, body, _ = await agent_call(http, base, "GET", "/v1/api/user/info", account)
    info = json.loads(body)
    assert info["statusInfo"]["code"] == 0
    assert info["data"]["userInfo"]["realUserID"] == account.real_user_id
    assert account.real_user_id != account.user_id
    _, body, _ = await agent_call(http, base, "GET", f"{PREFIX}/config", account)
    models = {m["model_id"]: m for m in json.loads(body)["models"]}
    assert set(models) == {"MiniMax-M3", "MiniMax-M2.7"}
    assert models["MiniMax-M3"]["context_limit"] == 450000
    assert models["MiniMax-M3"]["supported_variants"] == ["", "thinking"]
    _, body, _ = await agent_call(http, base, "GET", f"{PREFIX}/agent", account)
    agents = json.loads(body)["agents"]
    assert agents[0]["agent_role"] == "mavis"
    assert agents[0]["name"] == account.agent_id
    assert all(a["name"].isdigit() and len(a["name"]) == 15 for a in agents)
    # a role name instead of the numeric id: 200 without a session id, as the real one
    status, body, _ = await agent_call(
        http, base, "POST", f"{PREFIX}/agent/general/session", account, body={}
    )
    assert status == 200
    assert "session_id" not in json.loads(body)


async def test_follow_up_keeps_context_and_history(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    account = hailuo_emulator.default_account
    session_id = await agent_bootstrap(http, hailuo_emulator, account)
    await agent_turn(http, hailuo_emulator, account, session_id, "one")
    _, body, _ = await agent_turn(http, hailuo_emulator, account, session_id, "two")
    assert _answer(agent_frames(body)) == "You said: two. This chat has 2 turn(s)."
    status, body, _ = await agent_call(
        http, hailuo_emulator.agent_url, "GET", f"{PREFIX}/session/{session_id}/message", account
    )
    assert status == 200
    messages = json.loads(body)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[2]["msg_content"] == "two"


async def test_reasoning_and_scripts(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    account = hailuo_emulator.default_account
    session_id = await agent_bootstrap(http, hailuo_emulator, account)
    hailuo_emulator.script("exact reply", reasoning="let me think about it")
    _, body, _ = await agent_turn(http, hailuo_emulator, account, session_id, "q", reasoning=True)
    chunks = _chunks(agent_frames(body))
    thinking = "".join(c["thinking_content"] for c in chunks)
    assert thinking == "let me think about it"
    first_text = next(i for i, c in enumerate(chunks) if c["msg_content"])
    assert all(c["thinking_content"] for c in chunks[:first_text])
    assert _answer(agent_frames(body)) == "exact reply"
    _, body, _ = await agent_turn(http, hailuo_emulator, account, session_id, "q2", reasoning=True)
    assert "".join(c["thinking_content"] for c in _chunks(agent_frames(body)))  # default reasoning


async def test_the_stream_host_yy_must_sign_the_absolute_url(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    account = hailuo_emulator.default_account
    session_id = await agent_bootstrap(http, hailuo_emulator, account)
    status, body, _ = await agent_turn(
        http, hailuo_emulator, account, session_id, "abs", absolute_yy=True
    )
    assert status == 200
    assert _answer(agent_frames(body)).startswith("You said: abs.")
    status, body, _ = await agent_turn(
        http, hailuo_emulator, account, session_id, "rel", absolute_yy=False
    )
    assert status == 400
    assert json.loads(body)["error"] == "invalid signature"


def _old_way_yy(target: str, body: str, unix: str) -> str:
    """The pre-§12 guess: no op_ticket in the signed text, the raw body signed."""
    return md5(f"{encode_uri_component(target)}_{body or '{}'}{md5(unix)}ooui")


@pytest.mark.parametrize(
    "variant",
    [
        "millisecond_unix",
        "no_op_ticket",
        "raw_body_on_agent_api",
        "region_on_axios",
        "space_as_%20",
    ],
)
async def test_requests_signed_the_old_ways_are_refused(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession, variant: str
) -> None:
    """Each detail of the browser's recipe is checked: any older guess gets a 400."""
    account = hailuo_emulator.default_account
    await agent_bootstrap(http, hailuo_emulator, account)
    path = (
        "/v1/api/user/info"
        if variant == "region_on_axios"
        else f"{PREFIX}/agent/{account.agent_id}/session"
    )
    method = "GET" if variant == "region_on_axios" else "POST"
    body = "" if method == "GET" else '{"model":{"provider_id":"minimax","model_id":"MiniMax-M3"}}'
    seconds = int(time.time())
    unix = str(seconds * 1000 + (123 if variant == "millisecond_unix" else 0))
    query = agent_query(account, unix=int(unix), path=path)
    if variant == "region_on_axios":
        query += "&region=en"
    if variant == "space_as_%20":
        query = query.replace("Linux+x86_64", "Linux%20x86_64")
    target = f"{path}?{query}"
    if variant in {"no_op_ticket", "raw_body_on_agent_api"}:
        yy = _old_way_yy(target, body, unix)
        if variant == "raw_body_on_agent_api":  # op_ticket right, body not JSON-quoted
            later = ("screen_width", "screen_height", "token", "client", "region")
            pairs = query.split("&")
            at = next(i for i, p in enumerate(pairs) if p.split("=")[0] in later)
            signed = "&".join([*pairs[:at], "op_ticket=undefined", *pairs[at:]])
            yy = _old_way_yy(f"{path}?{signed}", body, unix)
    else:
        yy = browser_yy(target, body, unix, agent_api=not path.startswith("/v1/api/"))
    headers = {
        "token": account.token,
        "x-timestamp": str(seconds),
        "x-signature": md5(str(seconds) + AGENT_SALT + body),
        "yy": yy,
        "content-type": "application/json",
    }
    async with http.request(
        method, hailuo_emulator.agent_url + target, data=body.encode() or None, headers=headers
    ) as response:
        assert response.status == 400, variant
        assert json.loads(await response.read())["error"] == "invalid signature"


async def test_bad_signature_is_400(hailuo_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    account = hailuo_emulator.default_account
    session_id = await agent_bootstrap(http, hailuo_emulator, account)
    status, body, _ = await agent_turn(
        http, hailuo_emulator, account, session_id, "x", signature="0" * 32
    )
    assert status == 400
    assert json.loads(body)["error"] == "invalid signature"
    status, _, _ = await agent_turn(
        http, hailuo_emulator, account, session_id, "x", headers={"yy": "0" * 32}
    )
    assert status == 400


async def test_wrong_user_id_is_401_empty(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    account = hailuo_emulator.default_account
    session_id = await agent_bootstrap(http, hailuo_emulator, account)
    query = agent_query(account, user_id=account.user_id)  # the JWT id is not the realUserID
    status, body, _ = await agent_turn(http, hailuo_emulator, account, session_id, "x", query=query)
    assert status == 401
    assert body == ""


async def test_token_must_be_in_header_and_query(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    account = hailuo_emulator.default_account
    query = agent_query(account, token="")
    status, body, _ = await agent_call(
        http, hailuo_emulator.agent_url, "GET", f"{PREFIX}/config", account, query=query
    )
    assert (status, body) == (401, "")
    status, body, _ = await agent_call(
        http, hailuo_emulator.agent_url, "GET", f"{PREFIX}/config", account, token="other"
    )
    assert (status, body) == (401, "")


async def test_non_numeric_device_id_is_400(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    account = hailuo_emulator.default_account
    query = agent_query(account, device_id="abc-device")
    status, body, _ = await agent_call(
        http, hailuo_emulator.agent_url, "GET", f"{PREFIX}/config", account, query=query
    )
    assert status == 400
    assert json.loads(body)["base_resp"]["status_code"] == 1406011050
    # user/info does not look at device_id
    query = agent_query(account, path="/v1/api/user/info", device_id="abc-device")
    status, _, _ = await agent_call(
        http, hailuo_emulator.agent_url, "GET", "/v1/api/user/info", account, query=query
    )
    assert status == 200


async def test_message_before_config_is_not_configured(http: aiohttp.ClientSession) -> None:
    for require in (True, False):
        async with Emulator(require_config=require) as emulator:
            account = emulator.default_account
            _, body, _ = await agent_call(
                http, emulator.agent_url, "GET", f"{PREFIX}/agent", account
            )
            agent_id = json.loads(body)["agents"][0]["name"]
            _, body, _ = await agent_call(
                http,
                emulator.agent_url,
                "POST",
                f"{PREFIX}/agent/{agent_id}/session",
                account,
                body={},
            )
            session_id = json.loads(body)["session_id"]
            status, body, _ = await agent_turn(http, emulator, account, session_id, "x")
            if require:
                assert status == 500
                assert NOT_CONFIGURED_TEXT in body
            else:
                assert status == 200


async def test_other_accounts_session_is_rejected(http: aiohttp.ClientSession) -> None:
    alice, bob = EmulatorAccount("alice"), EmulatorAccount("bob")
    async with Emulator(accounts=[alice, bob]) as emulator:
        session_id = await agent_bootstrap(http, emulator, alice)
        await agent_bootstrap(http, emulator, bob)
        status, _, _ = await agent_turn(http, emulator, bob, session_id, "x")
        assert status == 404


async def test_busy_session_is_409(http: aiohttp.ClientSession) -> None:
    async with Emulator(chunk_delay=0.05) as emulator:
        account = emulator.default_account
        session_id = await agent_bootstrap(http, emulator, account)
        first = asyncio.ensure_future(agent_turn(http, emulator, account, session_id, "long one"))
        await asyncio.sleep(0.1)
        status, _, _ = await agent_turn(http, emulator, account, session_id, "x")
        assert status == 409
        assert (await first)[0] == 200


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("http_401", 401),
        ("http_401_empty", 401),
        ("http_403_bot", 403),
        ("http_409", 409),
        ("http_429", 429),
        ("http_500", 500),
        ("not_configured", 500),
        ("invalid_signature", 400),
    ],
)
async def test_http_faults(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession, kind: str, status: int
) -> None:
    account = hailuo_emulator.default_account
    session_id = await agent_bootstrap(http, hailuo_emulator, account)
    hailuo_emulator.fault(kind)
    got, body, response = await agent_turn(http, hailuo_emulator, account, session_id, "x")
    assert got == status
    if kind == "http_401_empty":
        assert body == ""
    if kind == "http_403_bot":
        assert "Just a moment..." in body
    if kind == "http_429":
        assert response.headers["Retry-After"] == "2"
    assert (await agent_turn(http, hailuo_emulator, account, session_id, "x"))[0] == 200


async def test_fault_on_control_endpoint(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    account = hailuo_emulator.default_account
    hailuo_emulator.fault("http_500", on="config")
    status, _, _ = await agent_call(
        http, hailuo_emulator.agent_url, "GET", "/v1/api/user/info", account
    )
    assert status == 200
    status, _, _ = await agent_call(
        http, hailuo_emulator.agent_url, "GET", f"{PREFIX}/config", account
    )
    assert status == 500


async def test_v4_fault_kinds_do_not_leak_across_protocols(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    account = hailuo_emulator.default_account
    session_id = await agent_bootstrap(http, hailuo_emulator, account)
    hailuo_emulator.fault("http_500", protocol="v4")
    assert (await agent_turn(http, hailuo_emulator, account, session_id, "x"))[0] == 200
    assert hailuo_emulator.faults[0].times == 1


async def test_stream_error_frame(hailuo_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    account = hailuo_emulator.default_account
    session_id = await agent_bootstrap(http, hailuo_emulator, account)
    hailuo_emulator.fault("stream_error")
    status, body, _ = await agent_turn(http, hailuo_emulator, account, session_id, "x")
    assert status == 200
    last = agent_frames(body)[-1]
    assert last["type"] == 2
    assert last["agent_message"]["finish_reason"] == "error"
    assert last["agent_message"]["error_code"] == 2056
    assert last["base_resp"]["status_code"] == 2056
    assert not any(c["finish"] for c in _chunks(agent_frames(body)))


async def test_quota_wall_and_transient(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    account = hailuo_emulator.default_account
    session_id = await agent_bootstrap(http, hailuo_emulator, account)
    hailuo_emulator.fault("quota_wall")
    status, body, _ = await agent_turn(http, hailuo_emulator, account, session_id, "x")
    assert status == 200
    assert _answer(agent_frames(body)) == QUOTA_WALL_TEXT
    hailuo_emulator.fault("session_transient")
    _, body, _ = await agent_turn(http, hailuo_emulator, account, session_id, "x")
    error = agent_frames(body)[-1]["agent_message"]
    assert (error["finish_reason"], error["msg_content"]) == ("error", "sandbox connection error")
    hailuo_emulator.fault("session_transient", as_answer=True)
    _, body, _ = await agent_turn(http, hailuo_emulator, account, session_id, "x")
    assert _answer(agent_frames(body)) == "sandbox connection error"


async def test_stream_faults(hailuo_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    account = hailuo_emulator.default_account
    session_id = await agent_bootstrap(http, hailuo_emulator, account)
    hailuo_emulator.fault("malformed_line", after=3)
    _, body, _ = await agent_turn(http, hailuo_emulator, account, session_id, "x")
    with pytest.raises(ValueError):
        agent_frames(body)
    hailuo_emulator.fault("drop", after=3)
    with pytest.raises(aiohttp.ClientPayloadError):
        await agent_turn(http, hailuo_emulator, account, session_id, "x")
    hailuo_emulator.fault("slow_first_byte", delay=0.3)
    assert (await agent_turn(http, hailuo_emulator, account, session_id, "x"))[0] == 200
    hailuo_emulator.fault("slow_first_byte", delay=30)  # last: it keeps the session busy
    await assert_held_back(lambda s: agent_turn(s, hailuo_emulator, account, session_id, "x"))


async def test_stop_ends_a_stalled_stream(http: aiohttp.ClientSession) -> None:
    emulator = await Emulator().start()
    account = emulator.default_account
    session_id = await agent_bootstrap(http, emulator, account)
    emulator.fault("stall", after=3)
    task = asyncio.ensure_future(agent_turn(http, emulator, account, session_id, "x"))
    await asyncio.sleep(0.3)
    assert not task.done()
    await emulator.stop()
    with pytest.raises(aiohttp.ClientPayloadError):
        await asyncio.wait_for(task, 5)


async def test_agent_login_page(hailuo_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    async with http.get(hailuo_emulator.agent_url + "/") as response:
        page = await response.text()
        assert "__cf_bm" in response.cookies
    assert 'id="login"' in page
    assert "sessionStorage" in page
    async with http.post(
        hailuo_emulator.agent_url + "/__emulator/login", json={"username": "default"}
    ) as response:
        stored = await response.json()
        assert "_cfuvid" in response.cookies
    account = hailuo_emulator.default_account
    assert stored["localStorage"] == {"_token": account.token, "UNIQUE_USER_ID": account.uuid}
    assert stored["sessionStorage"] == {"tab_device_id": account.tab_device_id}
    assert len(account.tab_device_id) == 8


async def test_agent_requests_are_recorded_without_tokens(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    account = hailuo_emulator.default_account
    session_id = await agent_bootstrap(http, hailuo_emulator, account)
    await agent_turn(http, hailuo_emulator, account, session_id, "recorded")
    (record,) = hailuo_emulator.requests_to("chat")
    assert record.origin == "agent_stream"
    assert record.protocol == "agent"
    assert record.query["token"] == "<token>"
    assert record.headers["token"] == "<token>"
    assert record.query_order[4] == "unix"
    assert record.body["content"] == "recorded"
    assert account.token not in repr(hailuo_emulator.requests)


async def test_model_kwargs(hailuo_emulator: Emulator) -> None:
    account = hailuo_emulator.default_account
    agent = hailuo_emulator.model_kwargs()
    assert agent["base_url"] == hailuo_emulator.agent_url
    assert agent["stream_url"] == hailuo_emulator.agent_stream_url
    assert agent["device_id"] == account.tab_device_id
    v4 = hailuo_emulator.model_kwargs(protocol="v4")
    assert (v4["base_url"], v4["device_id"], v4["token"]) == (
        hailuo_emulator.url,
        account.device_id,
        account.token,
    )
    with pytest.raises(ValueError):
        hailuo_emulator.model_kwargs(protocol="other")


# --------------------------------------------------------------------------- identity (§2.4)


def _without(query: str, name: str) -> str:
    return "&".join(p for p in query.split("&") if not p.startswith(f"{name}="))


@pytest.mark.parametrize(
    ("name", "endpoint", "refused"),
    [
        ("device_id", f"{PREFIX}/config", 400),
        ("device_id", f"{PREFIX}/agent", 400),
        ("uuid", "/v1/api/user/info", 401),
        ("uuid", f"{PREFIX}/config", 401),
    ],
)
async def test_a_missing_or_empty_device_id_or_uuid_is_refused(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession, name: str, endpoint: str, refused: int
) -> None:
    account = hailuo_emulator.default_account
    empty = (
        agent_query(account, device_id="") if name == "device_id" else agent_query(account, uuid="")
    )
    for query in (_without(agent_query(account), name), empty):
        status, body, _ = await agent_call(
            http, hailuo_emulator.agent_url, "GET", endpoint, account, query=query
        )
        assert status == refused
        if refused == 400:  # the generic internal error, as for a non-numeric device_id
            assert json.loads(body)["base_resp"]["status_code"] == 1406011050
        else:
            assert body == ""
    status, _, _ = await agent_call(http, hailuo_emulator.agent_url, "GET", endpoint, account)
    assert status == 200


async def test_renewal_issues_a_new_token_revokes_the_old_one_and_counts(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    account = hailuo_emulator.default_account
    old = account.token
    query = agent_query(account, path="/v1/api/user/renewal", user_id="")  # no user_id needed
    status, body, _ = await agent_call(
        http, hailuo_emulator.agent_url, "POST", "/v1/api/user/renewal", account, body={},
        query=query,
    )  # fmt: skip
    assert status == 200
    new = json.loads(body)["data"]["token"]
    assert new == account.token != old
    assert hailuo_emulator.renewals == 1
    assert account.expires_at > time.time() + 39 * 86400
    # The old token is refused from now on.
    status, _, _ = await agent_call(
        http, hailuo_emulator.agent_url, "GET", "/v1/api/user/info", account, token=old,
        query=agent_query(account, path="/v1/api/user/info", token=old, user_id=""),
    )  # fmt: skip
    assert status == 401
