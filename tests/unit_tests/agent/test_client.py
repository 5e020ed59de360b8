"""AgentClient: every request pinned (host, path, query order, headers, body, signatures)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from aioresponses import aioresponses

from langchain_hailuo.agent.client import (
    ModelChoice,
    default_region,
    default_stream_url,
    parse_agent_id,
    parse_session_id,
)
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoConfigurationError,
    HailuoProtocolError,
    HailuoQuotaError,
    HailuoServerError,
    HailuoSessionBusyError,
    HailuoStreamInterruptedError,
)
from langchain_hailuo.types import FinishReason
from tests.unit_tests.agent.conftest import (
    AGENT_ID,
    CONFIG_URL,
    CONTROL,
    NOW,
    PREFIX,
    REAL_USER_ID,
    SALT,
    SESSION_ID,
    SESSION_URL,
    STREAM,
    TOKEN,
    chunk,
    make_auth,
    make_client,
    md5,
    message_url,
    mock_identity,
    mock_turn,
    sent,
    sse,
)

ORDER = [
    *("device_platform", "biz_id", "app_id", "version_code", "unix", "timezone_offset"),
    *("sys_language", "lang", "uuid", "device_id", "os_name", "browser_name", "device_memory"),
    *("cpu_core_num", "browser_language", "browser_platform", "user_id", "screen_width"),
    *("screen_height", "token", "client", "region"),
]


def expected_signatures(url: str, body: str, *, absolute: bool) -> dict[str, str]:
    """The three signature headers, recomputed from §12.1 with hashlib only."""
    parts = urlsplit(url)
    unix = dict(parse_qsl(parts.query))["unix"]
    assert unix.endswith("000"), "unix is whole seconds"
    pairs = parts.query.split("&")
    later = ("screen_width", "screen_height", "token", "client", "region")
    at = next((i for i, p in enumerate(pairs) if p.split("=")[0] in later), len(pairs))
    target = f"{parts.path}?{'&'.join([*pairs[:at], 'op_ticket=undefined', *pairs[at:]])}"
    if absolute:
        target = f"{parts.scheme}://{parts.netloc}{target}"
    agent_api = not parts.path.startswith(("/v1/api/", "/matrix/"))
    body_yy = (json.dumps(body, ensure_ascii=False) if agent_api else body) if body else "{}"
    seconds = str(int(unix) // 1000)
    return {
        "x-timestamp": seconds,
        "x-signature": md5(seconds + SALT + body),
        "yy": md5(quote(target, safe="-_.!~*'()") + "_" + body_yy + md5(unix) + "ooui"),
    }


def assert_query(url: str, *, user_id: str | None = REAL_USER_ID) -> dict[str, str]:
    query = urlsplit(url).query
    pairs = [p.split("=", 1) for p in query.split("&")]
    names = [name for name, _ in pairs]
    assert names == [n for n in ORDER if n in names], "query order"
    values = dict(pairs)
    assert values["token"] == TOKEN
    assert values["device_id"] == "12345678"
    assert values["timezone_offset"] == "28800"
    agent_api = not urlsplit(url).path.startswith("/v1/api/")
    assert values.get("region") == ("en" if agent_api else None)
    assert "op_ticket" not in values
    assert values.get("user_id") == user_id
    return values


def assert_signed(url: str, headers: dict[str, str], body: str, *, absolute: bool) -> None:
    for name, value in expected_signatures(url, body, absolute=absolute).items():
        assert headers[name] == value, name


async def test_bootstrap_requests_are_pinned(mocked: aioresponses, wire: list[str]) -> None:
    mock_identity(mocked)
    client = make_client()
    auth = await client.bootstrap(make_auth())
    assert (auth.real_user_id, auth.agent_id) == (REAL_USER_ID, AGENT_ID)
    assert auth.models == ["MiniMax-M3", "MiniMax-M2.7"]
    calls = sent(mocked)
    assert [
        (c[0], urlsplit(u).netloc + urlsplit(u).path) for c, u in zip(calls, wire, strict=True)
    ] == [
        ("GET", "agent.minimax.io/v1/api/user/info"),
        ("GET", "agent.minimax.io" + PREFIX + "/config"),
        ("GET", "agent.minimax.io" + PREFIX + "/agent"),
    ]
    for index, ((_, _, kwargs), url) in enumerate(zip(calls, wire, strict=True)):
        assert url.startswith(CONTROL + "/")
        assert_query(url, user_id=None if index == 0 else REAL_USER_ID)
        headers = kwargs["headers"]
        assert headers["token"] == TOKEN
        assert headers["accept"] == "application/json, text/plain, */*"
        assert headers["origin"] == CONTROL
        assert headers["referer"] == CONTROL + "/"
        assert headers["user-agent"] == "Mozilla/5.0 test"
        assert headers["cookie"] == f"__cf_bm=cf-cookie; _token={TOKEN}"
        assert "content-type" not in headers
        assert "data" not in kwargs or kwargs["data"] is None
        assert_signed(url, headers, "", absolute=False)
    # cached: a second bootstrap of the same account sends nothing
    again = await client.bootstrap(make_auth())
    assert again.agent_id == AGENT_ID
    assert len(sent(mocked)) == 3
    await client.aclose()


async def test_session_and_message_are_pinned(mocked: aioresponses, wire: list[str]) -> None:
    mocked.post(SESSION_URL, payload={"session_id": SESSION_ID})
    mock_turn(mocked, sse(chunk("Hé"), chunk("llo"), chunk(finish=True)))
    client = make_client()
    auth = make_auth(real_user_id=REAL_USER_ID, agent_id=AGENT_ID, models=["MiniMax-M3"])
    model = ModelChoice("MiniMax-M3", reasoning=True)
    session_id = await client.create_session(auth, model)
    assert session_id == SESSION_ID
    async with client.send_message(auth, session_id, "héllo 你好", model) as turn:
        events = [e async for group in turn.events() for e in group]
    assert events == ["Hé", "llo", FinishReason("stop")]

    (_, _, session_kwargs), (_, _, message_kwargs) = sent(mocked)
    session_url, message_wire = wire
    assert session_url.startswith(f"{CONTROL}{PREFIX}/agent/{AGENT_ID}/session?")
    session_body = '{"model":{"provider_id":"minimax","model_id":"MiniMax-M3","reasoning":true}}'
    assert session_kwargs["data"] == session_body.encode()
    assert session_kwargs["headers"]["content-type"] == "application/json"
    assert_query(session_url)
    assert_signed(session_url, session_kwargs["headers"], session_body, absolute=False)

    assert message_wire.startswith(f"{STREAM}{PREFIX}/session/{SESSION_ID}/message?")
    assert_query(message_wire)
    raw = message_kwargs["data"]
    body = raw.decode()
    data = json.loads(body)
    assert list(data) == ["content", "model", "turn_id", "worktreeMode"]
    assert data["content"] == "héllo 你好"
    assert "你好" in body  # not \\u-escaped
    assert data["worktreeMode"] is False
    assert data["turn_id"] == turn.turn_id
    headers = message_kwargs["headers"]
    assert headers["accept"] == "text/event-stream"
    assert headers["origin"] == CONTROL
    assert_signed(message_wire, headers, body, absolute=True)  # the stream host: absolute
    await client.aclose()


async def test_only_the_stream_host_signs_the_absolute_url(
    mocked: aioresponses, wire: list[str]
) -> None:
    mock_turn(mocked, sse(chunk("ok"), chunk(finish=True)))
    mocked.get(CONFIG_URL, payload={"models": []})
    client = make_client()
    auth = make_auth(real_user_id=REAL_USER_ID)
    await client.fetch_models(auth)
    async with client.send_message(auth, SESSION_ID, "x", ModelChoice("MiniMax-M3")) as turn:
        assert [e async for group in turn.events() for e in group][-1] == FinishReason("stop")
    (_, _, control), (_, _, stream) = sent(mocked)
    assert_signed(wire[0], control["headers"], "", absolute=False)
    assert_signed(wire[1], stream["headers"], stream["data"].decode(), absolute=True)


async def test_turn_ids_are_fresh(mocked: aioresponses) -> None:
    for _ in range(2):
        mock_turn(mocked, sse(chunk("ok"), chunk(finish=True)))
    client = make_client()
    auth = make_auth(real_user_id=REAL_USER_ID)
    ids = []
    for _ in range(2):
        async with client.send_message(auth, SESSION_ID, "x", ModelChoice("MiniMax-M3")) as turn:
            [e async for group in turn.events() for e in group]
            ids.append(turn.turn_id)
    assert ids[0] != ids[1]
    bodies = [json.loads(kw["data"]) for _, _, kw in sent(mocked)]
    assert [b["turn_id"] for b in bodies] == ids
    assert "reasoning" not in bodies[0]["model"]


def test_session_id_shapes_and_agent_id() -> None:
    assert parse_session_id({"session_id": 1}) == "1"
    assert parse_session_id({"data": {"session_id": "2"}}) == "2"
    assert parse_session_id({"session": {"session_id": "3"}}) == "3"
    assert parse_session_id({"agent_name": "x"}) is None
    assert (
        parse_agent_id({"data": {"agents": [{"name": "12", "agent_role": "mavis"}]}}, "mavis")
        == "12"
    )
    assert parse_agent_id({"agents": [{"name": "general", "agent_role": "mavis"}]}, "mavis") is None


def test_default_stream_url() -> None:
    assert default_stream_url("https://agent.minimax.io") == "https://agent-stream.minimax.io"
    assert default_stream_url("https://agent.minimaxi.com/") == "https://agent-stream.minimaxi.com"
    assert default_stream_url("http://agent.example.com.cn:8080") == (
        "http://agent-stream.example.com.cn:8080"
    )
    for local in ("http://127.0.0.1:8123", "http://localhost:9000", "http://[::1]:80"):
        with pytest.raises(HailuoConfigurationError, match="stream_url"):
            default_stream_url(local)
    assert default_region("https://agent.minimaxi.com") == "cn"
    assert default_region("https://agent.minimax.io") == "en"


async def test_non_json_session_answer_is_a_protocol_error(mocked: aioresponses) -> None:
    mocked.post(
        SESSION_URL,
        body="<!doctype html><html></html>",
        content_type="text/html",
    )
    client = make_client()
    with pytest.raises(HailuoProtocolError, match="HTML"):
        await client.create_session(make_auth(agent_id=AGENT_ID), ModelChoice("MiniMax-M3"))


async def test_session_without_id_is_a_protocol_error(mocked: aioresponses) -> None:
    mocked.post(SESSION_URL, payload={"agent_name": "x"})
    with pytest.raises(HailuoProtocolError, match="agent_role"):
        await make_client().create_session(make_auth(agent_id=AGENT_ID), ModelChoice("MiniMax-M3"))


async def test_401_names_the_identity_never_the_token(
    mocked: aioresponses, debug_logs: Any
) -> None:
    mocked.get(CONFIG_URL, status=401, body="")
    client = make_client()
    with pytest.raises(HailuoAuthError) as info:
        await client.fetch_models(make_auth(real_user_id=REAL_USER_ID))
    text = str(info.value)
    for part in (f"user_id={REAL_USER_ID}", "device_id=12345678", "region=en", f"origin={CONTROL}"):
        assert part in text
    assert "hailuo login" in text
    assert TOKEN not in text
    assert TOKEN not in repr(info.value)
    assert TOKEN not in debug_logs.text


async def test_cloudflare_page_asks_for_a_new_login(mocked: aioresponses) -> None:
    mocked.get(
        CONFIG_URL,
        status=403,
        body="<html><title>Just a moment...</title></html>",
        content_type="text/html",
    )
    with pytest.raises(HailuoAuthError, match="hailuo login` again for fresh cookies"):
        await make_client().fetch_models(make_auth())


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, '{"error":"invalid signature"}', HailuoProtocolError),
        (
            400,
            (
                '{"error":"internal error","code":"UNEXPECTED_ERROR",'
                '"base_resp":{"status_code":1406011050}}'
            ),
            HailuoServerError,  # a generic internal error (§7.2), not always the device id
        ),
        (
            200,
            '{"base_resp":{"status_code":1400010161,"status_msg":"not enough credits"}}',
            HailuoQuotaError,
        ),
        (409, "busy", HailuoSessionBusyError),
    ],
)
async def test_error_statuses(mocked: aioresponses, status: int, body: str, error: type) -> None:
    mocked.post(
        SESSION_URL,
        status=status,
        body=body,
        content_type="application/json",
        repeat=True,
    )
    client = make_client()
    client.options = type(client.options)(max_retries=0)
    with pytest.raises(error):
        await client.create_session(make_auth(agent_id=AGENT_ID), ModelChoice("MiniMax-M3"))


async def test_non_numeric_device_id_is_refused_before_sending(mocked: aioresponses) -> None:
    client = make_client()
    with pytest.raises(HailuoConfigurationError, match="HAILUO_DEVICE_ID"):
        await client.fetch_models(make_auth(device_id="abc-def"))
    assert sent(mocked) == []


async def test_not_configured_calls_config_and_retries_once(mocked: aioresponses) -> None:
    session = SESSION_URL
    mocked.post(session, status=500, body="[1400010501] Environment Variables not configured")
    mocked.get(CONFIG_URL, payload={"models": [{"model_id": "MiniMax-M3"}]})
    mocked.post(session, payload={"data": {"session_id": SESSION_ID}})
    client = make_client()
    assert await client.create_session(make_auth(agent_id=AGENT_ID), ModelChoice("M")) == SESSION_ID
    assert [(m, urlsplit(u).path) for m, u, _ in sent(mocked)] == [
        ("POST", f"{PREFIX}/agent/{AGENT_ID}/session"),
        ("GET", f"{PREFIX}/config"),
        ("POST", f"{PREFIX}/agent/{AGENT_ID}/session"),
    ]


async def test_retry_before_first_byte_on_5xx(mocked: aioresponses) -> None:
    config = CONFIG_URL
    mocked.get(config, status=502, body="bad gateway")
    mocked.get(config, payload={"models": [{"model_id": "MiniMax-M3"}]})
    assert await make_client().fetch_models(make_auth()) == ["MiniMax-M3"]


async def test_message_json_error_body_is_typed(mocked: aioresponses) -> None:
    mocked.post(
        message_url(),
        payload={"base_resp": {"status_code": 2056, "status_msg": "quota"}},
    )
    with pytest.raises(HailuoQuotaError):
        async with make_client().send_message(make_auth(), SESSION_ID, "x", ModelChoice("M")):
            pass


async def test_response_closed_on_early_exit_and_truncation(mocked: aioresponses) -> None:
    url = message_url()
    mocked.post(url, body=sse(chunk("a" * 40), chunk("b")), content_type="text/event-stream")
    mocked.post(url, body=sse(chunk("partial")), content_type="text/event-stream")
    client = make_client()
    async with client.send_message(make_auth(), SESSION_ID, "x", ModelChoice("M")) as turn:
        async for _ in turn.events():
            break
    assert turn._response.closed
    with pytest.raises(HailuoStreamInterruptedError) as info:
        async with client.send_message(make_auth(), SESSION_ID, "x", ModelChoice("M")) as turn2:
            [e async for group in turn2.events() for e in group]
    assert info.value.partial_text == "partial"
    assert info.value.chat_id == SESSION_ID
    assert turn2._response.closed or turn2._response._released


def test_clock_reading_is_shared_by_unix_and_signatures() -> None:
    client = make_client()
    url = client.build_url(make_auth(), CONTROL, "/p", client.next_unix())
    headers = client.headers_for(make_auth(), url, "")
    assert headers["x-timestamp"] == str(NOW // 1000)
    assert f"unix={NOW // 1000 * 1000}&" in url
    assert headers == {**headers, **expected_signatures(url, "", absolute=False)}
