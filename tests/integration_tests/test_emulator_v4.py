"""The emulator's v4 chat, driven with raw requests signed in the test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from langchain_hailuo.emulator import Emulator, EmulatorAccount
from tests.integration_tests._emulator_client import (
    assert_held_back,
    now_ms,
    v4_events,
    v4_post,
    v4_query,
    v4_yy,
)

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def _answer(events: list[tuple[str, dict]]) -> str:
    finals = [
        d for n, d in events if n == "message_result" and d["data"]["messageResult"]["isEnd"] == 0
    ]
    assert len(finals) == 1
    return finals[0]["data"]["messageResult"]["content"]


def _error_code(events: list[tuple[str, dict]]) -> int:
    codes = [d["statusInfo"]["code"] for _, d in events if d["statusInfo"]["code"] != 0]
    assert codes, events
    return codes[0]


async def test_happy_path(hailuo_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    account = hailuo_emulator.default_account
    status, body, response = await v4_post(http, hailuo_emulator.url, account, "hello there")
    assert status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert "\n\n" in body
    events = v4_events(body)
    name, first = events[0]
    assert name == "send_result"
    assert first["type"] == 1
    assert first["statusInfo"] == {"code": 0, "message": "Success"}
    sent = first["data"]["sendResult"]
    assert len(sent["chatID"]) == 18
    assert sent["chatID"].isdigit()
    assert sent["chatTitle"] == "hello there"
    assert sent["userMsgID"]
    assert sent["systemMsgID"]
    snapshots = [d["data"]["messageResult"] for n, d in events if n == "message_result"]
    assert len(snapshots) > 2
    assert all(s["isEnd"] == 1 for s in snapshots[:-1])
    assert snapshots[-1]["isEnd"] == 0
    final = snapshots[-1]["content"]
    assert final == "You said: hello there. This chat has 1 turn(s)."
    for snapshot in snapshots:
        assert final.startswith(snapshot["content"])
        assert snapshot["chatID"] == sent["chatID"]
        assert snapshot["msgID"] == sent["systemMsgID"]
        assert snapshot["extra"] == {}
    assert events[-1][0] == "close_chunk"
    assert events[-1][1]["type"] == 8


async def test_multibyte_cut_ends_in_replacement_char(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    text = "你好世界, naïve café ✓"
    hailuo_emulator.script(text)
    _, body, _ = await v4_post(http, hailuo_emulator.url, hailuo_emulator.default_account, "hi")
    contents = [
        d["data"]["messageResult"]["content"] for n, d in v4_events(body) if n == "message_result"
    ]
    assert contents[-1] == text
    broken = [c for c in contents if c.endswith("\ufffd")]
    assert broken
    for content in broken:
        assert text.startswith(content[:-1])
        assert "\ufffd" not in content[:-1]


async def test_second_message_keeps_context(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    account = hailuo_emulator.default_account
    _, body, _ = await v4_post(http, hailuo_emulator.url, account, "first")
    chat_id = v4_events(body)[0][1]["data"]["sendResult"]["chatID"]
    _, body, _ = await v4_post(http, hailuo_emulator.url, account, "second\nline", chat_id)
    events = v4_events(body)
    sent = events[0][1]["data"]["sendResult"]
    assert sent["chatID"] == chat_id
    assert "chatTitle" not in sent
    assert _answer(events) == "You said: second\nline. This chat has 2 turn(s)."
    assert len(hailuo_emulator.v4.chats[chat_id].turns) == 2


async def test_wrong_yy_is_rejected_in_stream(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await v4_post(
        http, hailuo_emulator.url, hailuo_emulator.default_account, "x", yy="0" * 32
    )
    assert status == 200
    events = v4_events(body)
    assert _error_code(events) == 1000013
    assert not [n for n, _ in events if n == "message_result"]


async def test_yy_uses_encode_uri_component(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    account = hailuo_emulator.default_account
    # a raw "*" and "(" in the query: encodeURIComponent keeps them, quote(safe="") would not
    query = v4_query(account, os_name="Linux*(x)")
    query = query.replace("Linux%2A%28x%29", "Linux*(x)")
    _, body, _ = await v4_post(http, hailuo_emulator.url, account, "x", query=query)
    assert _answer(v4_events(body)).startswith("You said: x.")


@pytest.mark.parametrize("offset_ms", [-120_000, 120_000])
async def test_stale_unix_is_rejected(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession, offset_ms: int
) -> None:
    _, body, _ = await v4_post(
        http, hailuo_emulator.url, hailuo_emulator.default_account, "x", unix=now_ms() + offset_ms
    )
    assert _error_code(v4_events(body)) == 1000014


async def test_reused_unix_is_rejected(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    account = hailuo_emulator.default_account
    unix = now_ms()
    _, body, _ = await v4_post(http, hailuo_emulator.url, account, "x", unix=unix)
    assert _answer(v4_events(body))
    _, body, _ = await v4_post(http, hailuo_emulator.url, account, "x", unix=unix)
    assert _error_code(v4_events(body)) == 1000014


async def test_other_accounts_chat_is_rejected(http: aiohttp.ClientSession) -> None:
    alice, bob = EmulatorAccount("alice"), EmulatorAccount("bob")
    async with Emulator(accounts=[alice, bob]) as emulator:
        _, body, _ = await v4_post(http, emulator.url, alice, "mine")
        chat_id = v4_events(body)[0][1]["data"]["sendResult"]["chatID"]
        _, body, _ = await v4_post(http, emulator.url, bob, "yours?", chat_id)
        assert _error_code(v4_events(body)) == 1200002
        _, body, _ = await v4_post(http, emulator.url, alice, "unknown", "123456789012345678")
        assert _error_code(v4_events(body)) == 1200002


async def test_unknown_or_rotated_token_gets_401(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    account = hailuo_emulator.default_account
    status, _, _ = await v4_post(http, hailuo_emulator.url, account, "x", token="nope")
    assert status == 401
    old = account.token
    hailuo_emulator.rotate_token()
    status, _, _ = await v4_post(http, hailuo_emulator.url, account, "x", token=old)
    assert status == 401
    status, _, _ = await v4_post(http, hailuo_emulator.url, account, "x")
    assert status == 200


async def test_expired_token_gets_401(http: aiohttp.ClientSession) -> None:
    account = EmulatorAccount("old", expires_at=time.time() - 10)
    async with Emulator(accounts=[account]) as emulator:
        status, _, _ = await v4_post(http, emulator.url, account, "x")
        assert status == 401


@pytest.mark.parametrize(
    "mangle",
    [
        lambda q: q.replace("uuid=", "uuid=null&x=").split("&x=")[0] + "&" + q.split("&", 6)[6],
        lambda q: "&".join(reversed(q.split("&"))),
        lambda q: "&".join(p for p in q.split("&") if not p.startswith("screen_height")),
    ],
    ids=["null-uuid", "wrong-order", "missing-param"],
)
async def test_bad_fingerprint_query_is_rejected(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession, mangle: object
) -> None:
    account = hailuo_emulator.default_account
    query = mangle(v4_query(account))  # type: ignore[operator]
    status, body, _ = await v4_post(http, hailuo_emulator.url, account, "x", query=query)
    assert status == 400, body


async def test_scripted_replies_are_fifo_per_account(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    account = hailuo_emulator.default_account
    hailuo_emulator.script('{"tool": "search"}', "second")
    answers = []
    for _ in range(3):
        _, body, _ = await v4_post(http, hailuo_emulator.url, account, "q")
        answers.append(_answer(v4_events(body)))
    assert answers[:2] == ['{"tool": "search"}', "second"]
    assert answers[2].startswith("You said: q.")


async def test_requests_are_recorded_without_tokens(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    account = hailuo_emulator.default_account
    await v4_post(http, hailuo_emulator.url, account, "recorded")
    (record,) = hailuo_emulator.requests_to("chat")
    assert record.method == "POST"
    assert record.path == "/v4/api/chat/msg"
    assert record.protocol == "v4"
    assert record.account == "default"
    assert record.query_order[0] == "device_platform"
    assert record.query_order[-1] == "unix"
    assert record.headers["token"] == "<token>"
    assert record.body["msgContent"] == "recorded"
    assert account.token not in repr(hailuo_emulator.requests)


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("http_401", 401),
        ("http_401_empty", 401),
        ("http_403_bot", 403),
        ("http_429", 429),
        ("http_500", 500),
    ],
)
async def test_http_faults(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession, kind: str, status: int
) -> None:
    account = hailuo_emulator.default_account
    hailuo_emulator.fault(kind, seconds=7)
    got, body, response = await v4_post(http, hailuo_emulator.url, account, "x")
    assert got == status
    if kind == "http_403_bot":
        assert "Just a moment..." in body
        assert response.headers["Content-Type"].startswith("text/html")
    if kind == "http_429":
        assert response.headers["Retry-After"] == "7"
    if kind == "http_401_empty":
        assert body == ""
    got, _, _ = await v4_post(http, hailuo_emulator.url, account, "x")
    assert got == 200  # times=1: only the next request


async def test_fault_always_and_per_account(http: aiohttp.ClientSession) -> None:
    alice, bob = EmulatorAccount("alice"), EmulatorAccount("bob")
    async with Emulator(accounts=[alice, bob]) as emulator:
        emulator.fault("http_500", account="bob", times=-1)
        for _ in range(2):
            assert (await v4_post(http, emulator.url, bob, "x"))[0] == 500
        assert (await v4_post(http, emulator.url, alice, "x"))[0] == 200


async def test_fault_with_protocol_and_message_params(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    hailuo_emulator.fault("http_401", protocol="v4", message="gone")
    status, body, _ = await v4_post(http, hailuo_emulator.url, hailuo_emulator.default_account, "x")
    assert status == 401
    assert '"gone"' in body


async def test_fault_from_request_header(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    account = hailuo_emulator.default_account
    got, _, response = await v4_post(
        http, hailuo_emulator.url, account, "x", headers={"x-emulator-fault": "http_429; seconds=3"}
    )
    assert got == 429
    assert response.headers["Retry-After"] == "3"


async def test_slow_first_byte(hailuo_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    account = hailuo_emulator.default_account
    hailuo_emulator.fault("slow_first_byte", delay=0.4)
    status, _, _ = await v4_post(http, hailuo_emulator.url, account, "x")
    assert status == 200  # the held-back answer does come
    hailuo_emulator.fault("slow_first_byte", delay=30)
    await assert_held_back(lambda s: v4_post(s, hailuo_emulator.url, account, "x"))


async def test_stream_error(hailuo_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    hailuo_emulator.fault("stream_error", code=1500009, message="busy", after=2)
    _, body, _ = await v4_post(http, hailuo_emulator.url, hailuo_emulator.default_account, "x")
    events = v4_events(body)
    assert [n for n, _ in events] == [
        "send_result",
        "message_result",
        "message_result",
        "message_result",
    ]
    assert events[-1][1]["statusInfo"] == {"code": 1500009, "message": "busy"}


async def test_malformed_line(hailuo_emulator: Emulator, http: aiohttp.ClientSession) -> None:
    hailuo_emulator.fault("malformed_line", after=2)
    _, body, _ = await v4_post(http, hailuo_emulator.url, hailuo_emulator.default_account, "x")
    with pytest.raises(ValueError):
        v4_events(body)
    good = "\n".join(
        line
        for line in body.split("\n")
        if not line.startswith('data: {"type":2,"data":{"messageResult":{"content":"')
    )
    events = v4_events(good)
    assert _answer(events).startswith("You said: x.")


async def test_drop_closes_mid_answer(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    hailuo_emulator.fault("drop", after=3)
    with pytest.raises(aiohttp.ClientPayloadError):
        await v4_post(http, hailuo_emulator.url, hailuo_emulator.default_account, "x")


async def test_drop_mid_line_after_bytes(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    hailuo_emulator.fault("drop", after_bytes=300)
    account = hailuo_emulator.default_account
    query = v4_query(account)
    form = {"characterID": "1", "msgContent": "x", "chatID": "0", "searchMode": "0"}
    unix = query.rsplit("unix=", 1)[1]
    headers = {"token": account.token, "yy": v4_yy(f"/v4/api/chat/msg?{query}", form, unix)}
    received = bytearray()

    async def read_all() -> None:
        data = aiohttp.FormData(form, default_to_multipart=True)
        url = f"{hailuo_emulator.url}/v4/api/chat/msg?{query}"
        async with http.post(url, data=data, headers=headers) as resp:
            async for chunk in resp.content.iter_any():
                received.extend(chunk)

    with pytest.raises(aiohttp.ClientPayloadError):
        await read_all()
    assert len(received) == 300


async def test_stall_then_stop_ends_the_stream(http: aiohttp.ClientSession) -> None:
    emulator = await Emulator().start()
    emulator.fault("stall", after=2)
    account = emulator.default_account
    task = asyncio.ensure_future(v4_post(http, emulator.url, account, "x"))
    await asyncio.sleep(0.3)
    assert not task.done()  # headers and two frames sent, then nothing
    await emulator.stop()
    with pytest.raises(aiohttp.ClientPayloadError):  # the stop cut the stall off
        await asyncio.wait_for(task, 5)


async def test_redirect_origin(http: aiohttp.ClientSession) -> None:
    async with Emulator(redirect_status=308) as emulator:
        path = "/v4/api/chat/msg?a=1&b=2"
        async with http.post(emulator.redirect_url + path, allow_redirects=False) as response:
            assert response.status == 308
            assert response.headers["Location"] == emulator.url + path
        emulator.redirect_status = 301
        async with http.get(emulator.redirect_url + "/", allow_redirects=False) as response:
            assert response.status == 301
            assert response.headers["Location"] == emulator.url + "/"
        async with http.get(
            emulator.agent_redirect_url + "/x?y=1", allow_redirects=False
        ) as response:
            assert response.headers["Location"] == emulator.agent_url + "/x?y=1"


async def test_login_page_and_login_call(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    async with http.get(hailuo_emulator.url + "/") as response:
        page = await response.text()
    for marker in (
        'id="username"',
        'id="login"',
        'id="status"',
        'class="no-js"',
        "_token",
        "localStorage",
    ):
        assert marker in page
    async with http.post(
        hailuo_emulator.url + "/__emulator/login", json={"username": ""}
    ) as response:
        stored = await response.json()
    account = hailuo_emulator.default_account
    assert stored["localStorage"] == {
        "_token": account.token,
        "UNIQUE_USER_ID": account.uuid,
        "USER_HARD_WARE_INFO": account.device_id,
    }
    async with http.post(
        hailuo_emulator.url + "/__emulator/login", json={"username": "ghost"}
    ) as response:
        assert response.status == 404


async def test_long_prompt_is_accepted(
    hailuo_emulator: Emulator, http: aiohttp.ClientSession
) -> None:
    hailuo_emulator.script("ok")
    status, body, _ = await v4_post(
        http, hailuo_emulator.url, hailuo_emulator.default_account, "x" * 3_000_000
    )
    assert status == 200
    assert _answer(v4_events(body)) == "ok"
