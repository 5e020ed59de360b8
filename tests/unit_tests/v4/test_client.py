"""The v4 client on the wire: the exact request, redirects, retries, status mapping, streaming."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from langchain_hailuo._http import HttpOptions, Redactor, Timeouts, cookie_header
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoProtocolError,
    HailuoRateLimitError,
    HailuoServerError,
    HailuoStreamInterruptedError,
    HailuoTimeoutError,
)
from langchain_hailuo.types import (
    AuthResult,
    ChatStarted,
    FinishReason,
    MessageId,
    StreamEvent,
    TitleGeneration,
)
from langchain_hailuo.v4.client import V4Answer, V4Client, build_form
from tests._streams import collect_reads
from tests.unit_tests.v4.conftest import (
    SSE,
    TOKEN,
    FakeSleep,
    Hop,
    chat_url_re,
    independent_yy,
)
from tests.unit_tests.v4.frames import CHAT, MSG, answer_body, message, send_result

UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/136.0.0.0 Safari/537.36"
)
BASE = "https://www.hailuo.ai"
NEW_ORIGIN = "https://chat.minimax.io"
UNIX = 1_700_000_000_123


def make_auth(**extra: Any) -> AuthResult:
    values: dict[str, Any] = {
        "token": TOKEN,
        "uuid": "8c5f1e0a-1b2c-4d3e-9f00-0123456789ab",
        "device_id": "301234567890123456",
        "user_agent": UA,
        "os_name": "Linux",
        "browser_name": "chrome",
        "cpu_core_num": "16",
        "browser_language": "en-GB",
        "browser_platform": "Linux x86_64",
        "screen_width": "2560",
        "screen_height": "1440",
        "cookies": {"cf_clearance": "cf-abc", "_ga": "GA1.1.5"},
    }
    values.update(extra)
    return AuthResult.model_validate(values)


def fixed_clock() -> int:
    return UNIX


async def run_chat(
    client: V4Client, auth: AuthResult | None = None, text: str = "Hi\nthere", **kwargs: Any
) -> tuple[list[StreamEvent], V4Answer]:
    form = build_form(msg_content=text, **kwargs.pop("form", {}))
    async with client.chat(auth or make_auth(), form, base_url=BASE, **kwargs) as answer:
        events = [event async for group in answer.events() for event in group]
    return events, answer


# --------------------------------------------------------------------------- the wire request


async def test_exact_wire_request(mocked: aioresponses, hops: list[Hop]) -> None:
    mocked.post(chat_url_re(), body=answer_body("Hello", "Hello there"), content_type=SSE)
    client = V4Client(clock=fixed_clock)
    events, answer = await run_chat(client)
    await client.aclose()

    assert len(hops) == 1
    hop = hops[0]
    assert hop.method == "POST"
    assert hop.url == (
        f"{BASE}/v4/api/chat/msg?device_platform=web&biz_id=2&app_id=3001&version_code=22201"
        "&lang=en&uuid=8c5f1e0a-1b2c-4d3e-9f00-0123456789ab&device_id=301234567890123456"
        "&os_name=Linux&browser_name=chrome&cpu_core_num=16&browser_language=en-GB"
        "&browser_platform=Linux+x86_64&screen_width=2560&screen_height=1440"
        f"&unix={UNIX}"
    )
    assert await hop.form() == [
        ("characterID", "1", "text/plain; charset=utf-8"),
        ("msgContent", "Hi\nthere", "text/plain; charset=utf-8"),
        ("chatID", "0", "text/plain; charset=utf-8"),
        ("searchMode", "0", "text/plain; charset=utf-8"),
    ]
    form = await hop.fields()
    assert hop.headers == {
        "token": TOKEN,
        "yy": independent_yy(hop.path_and_query, form, UNIX),
        "user-agent": UA,
        "referer": "https://www.hailuo.ai/",
        "accept": "*/*",
        "accept-language": "en-GB",
        "cookie": "cf_clearance=cf-abc; _ga=GA1.1.5",
    }
    # aioresponses saw a POST to that URL (it normalises the query order) with the form.
    ((method, url), calls), *_ = mocked.requests.items()
    assert method == "POST"
    assert url.with_query(None) == URL(hop.url).with_query(None)
    assert sorted(url.query.items()) == sorted(URL(hop.url).query.items())
    assert isinstance(calls[0].kwargs["data"], aiohttp.FormData)
    assert calls[0].kwargs["allow_redirects"] is False

    assert events == [
        TitleGeneration("Greetings"),
        ChatStarted(CHAT),
        MessageId(MSG),
        "Hello",
        " there",
        FinishReason(),
    ]
    assert answer.origin == BASE
    assert not answer.redirected


async def test_continued_chat_form(mocked: aioresponses, hops: list[Hop]) -> None:
    mocked.post(chat_url_re(), body=answer_body("ok"), content_type=SSE)
    client = V4Client(clock=fixed_clock)
    await run_chat(client, text="next", form={"chat_id": CHAT, "character_id": 7})
    await client.aclose()
    fields = await hops[0].fields()
    assert fields == {"characterID": "7", "msgContent": "next", "chatID": CHAT, "searchMode": "0"}
    assert hops[0].headers["yy"] == independent_yy(hops[0].path_and_query, fields, UNIX)


async def test_no_cookie_header_without_cookies(mocked: aioresponses, hops: list[Hop]) -> None:
    mocked.post(chat_url_re(), body=answer_body("ok"), content_type=SSE)
    client = V4Client()
    await run_chat(client, make_auth(cookies={}, user_agent=None, browser_language=None))
    await client.aclose()
    headers = hops[0].headers
    assert "cookie" not in headers
    assert headers["user-agent"].startswith("Mozilla/5.0 (Windows NT 10.0")
    assert headers["accept-language"] == "en-US"


async def test_requests_in_the_same_millisecond_get_fresh_unix(
    mocked: aioresponses, hops: list[Hop]
) -> None:
    mocked.post(chat_url_re(), body=answer_body("ok"), content_type=SSE, repeat=True)
    client = V4Client(clock=fixed_clock)  # the clock never moves
    await run_chat(client)
    await run_chat(client)
    await client.aclose()
    unixes = [dict(hop.query)["unix"] for hop in hops]
    assert unixes == [str(UNIX), str(UNIX + 1)]
    assert hops[0].headers["yy"] != hops[1].headers["yy"]
    for hop in hops:
        assert hop.headers["yy"] == independent_yy(
            hop.path_and_query, await hop.fields(), dict(hop.query)["unix"]
        )


async def test_real_clock_unix_is_current(mocked: aioresponses, hops: list[Hop]) -> None:
    mocked.post(chat_url_re(), body=answer_body("ok"), content_type=SSE)
    client = V4Client()
    before = int(__import__("time").time() * 1000)
    await run_chat(client)
    await client.aclose()
    assert abs(int(dict(hops[0].query)["unix"]) - before) < 60_000


def test_signature_covers_the_query_as_sent() -> None:
    # aiohttp normalises percent-escapes of unreserved characters ("%7E" -> "~") before
    # sending; the signature must cover what the server receives.
    client = V4Client(clock=fixed_clock)
    auth = make_auth(uuid="a~b")
    url = client.chat_url(auth, BASE)
    assert "uuid=a%7Eb" in url
    form = build_form(msg_content="x")
    sent = URL(url).raw_path_qs
    assert "uuid=a~b" in sent
    assert client.headers_for(auth, url, form)["yy"] == independent_yy(sent, form, UNIX)


@pytest.mark.parametrize(
    ("cookies", "expected"),
    [
        ({}, None),
        ({"a": "1"}, "a=1"),
        ({"a": "1", "b": "x=y"}, "a=1; b=x=y"),
        ({"bad;": "1", "ok": "2", "inj": "v\r\nX: y", "": "z"}, "ok=2"),
    ],
)
def test_cookie_header(cookies: dict[str, str], expected: str | None) -> None:
    assert cookie_header(cookies) == expected


# --------------------------------------------------------------------------- redirects


@pytest.mark.parametrize("status", [301, 308])
async def test_redirected_post_is_posted_again_and_resigned(
    mocked: aioresponses, hops: list[Hop], status: int
) -> None:
    def moved(url: URL, **_: Any) -> CallbackResult:
        # (aioresponses hands callbacks a URL with a sorted query: use the one sent.)
        target = hops[-1].url.replace(BASE, NEW_ORIGIN)
        return CallbackResult(status=status, headers={"Location": target})

    mocked.post(chat_url_re(), callback=moved)
    mocked.post(chat_url_re(NEW_ORIGIN), body=answer_body("moved"), content_type=SSE)
    client = V4Client(clock=fixed_clock)
    events, answer = await run_chat(client)
    await client.aclose()

    assert [hop.method for hop in hops] == ["POST", "POST"]
    first, second = hops
    assert urlsplit(second.url).netloc == "chat.minimax.io"
    assert second.path_and_query.startswith("/v4/api/chat/msg?device_platform=web&")
    assert await second.fields() == await first.fields()
    assert second.headers["referer"] == NEW_ORIGIN + "/"
    assert second.headers["token"] == TOKEN
    assert second.headers["yy"] == independent_yy(
        second.path_and_query, await second.fields(), dict(second.query)["unix"]
    )
    assert [key[0] for key in mocked.requests] == ["POST", "POST"]
    assert answer.origin == NEW_ORIGIN
    assert answer.requested_origin == BASE
    assert answer.redirected
    assert "moved" in events


async def test_too_many_redirects(mocked: aioresponses) -> None:
    mocked.post(
        chat_url_re(), status=307, headers={"Location": "/v4/api/chat/msg?x=1"}, repeat=True
    )
    mocked.post(
        re.compile(r"^https://www\.hailuo\.ai/v4/api/chat/msg\?x=1$"),
        status=307,
        headers={"Location": "/v4/api/chat/msg?x=1"},
        repeat=True,
    )
    client = V4Client(options=HttpOptions(max_redirects=2))
    with pytest.raises(HailuoProtocolError, match="redirects"):
        await run_chat(client)
    await client.aclose()


# --------------------------------------------------------------------------- statuses and retries


async def test_401_is_an_auth_error_and_not_retried(
    mocked: aioresponses, fake_sleep: FakeSleep
) -> None:
    mocked.post(chat_url_re(), status=401, body="nope", repeat=True)
    client = V4Client(sleep=fake_sleep)
    with pytest.raises(HailuoAuthError) as info:
        await run_chat(client)
    await client.aclose()
    assert info.value.status == 401
    assert sum(len(calls) for calls in mocked.requests.values()) == 1
    assert fake_sleep.delays == []


async def test_403_bot_page_is_an_auth_error(mocked: aioresponses) -> None:
    page = "<html><title>Just a moment...</title><div id='cf-chl'></div></html>"
    mocked.post(chat_url_re(), status=403, body=page, content_type="text/html")
    client = V4Client()
    with pytest.raises(HailuoAuthError, match="bot-protection"):
        await run_chat(client)
    await client.aclose()


async def test_429_waits_retry_after_then_succeeds(
    mocked: aioresponses, fake_sleep: FakeSleep
) -> None:
    mocked.post(chat_url_re(), status=429, headers={"Retry-After": "3"})
    mocked.post(chat_url_re(), body=answer_body("after wait"), content_type=SSE)
    client = V4Client(sleep=fake_sleep)
    events, _ = await run_chat(client)
    await client.aclose()
    assert fake_sleep.delays == [3.0]
    assert "after wait" in events


async def test_429_with_max_retries_0_is_one_attempt(
    mocked: aioresponses, fake_sleep: FakeSleep
) -> None:
    mocked.post(chat_url_re(), status=429, headers={"Retry-After": "3"}, repeat=True)
    client = V4Client(sleep=fake_sleep, options=HttpOptions(max_retries=0))
    with pytest.raises(HailuoRateLimitError) as info:
        await run_chat(client)
    await client.aclose()
    assert info.value.retry_after == 3.0
    assert sum(len(calls) for calls in mocked.requests.values()) == 1
    assert fake_sleep.delays == []


async def test_refusals_that_prove_the_message_unsent_are_retried(
    mocked: aioresponses, fake_sleep: FakeSleep, hops: list[Hop]
) -> None:
    mocked.post(chat_url_re(), status=429, headers={"Retry-After": "0"}, body="slow down")
    mocked.post(chat_url_re(), status=429, body="slow down")
    mocked.post(chat_url_re(), body=answer_body("third time"), content_type=SSE)
    client = V4Client(sleep=fake_sleep, options=HttpOptions(max_retries=2, backoff_base=0.01))
    events, _ = await run_chat(client)
    await client.aclose()
    assert len(fake_sleep.delays) == 2
    assert "third time" in events
    # Each attempt is signed afresh.
    assert len({hop.headers["yy"] for hop in hops}) == 3


async def test_5xx_is_never_retried_and_says_the_message_may_have_arrived(
    mocked: aioresponses, fake_sleep: FakeSleep
) -> None:
    mocked.post(chat_url_re(), status=503, body="down", repeat=True)
    client = V4Client(sleep=fake_sleep, options=HttpOptions(max_retries=1, backoff_base=0.01))
    with pytest.raises(HailuoServerError) as info:
        await run_chat(client)
    await client.aclose()
    assert info.value.status == 503
    assert info.value.may_have_arrived
    assert "may have reached the server" in str(info.value)
    assert sum(len(calls) for calls in mocked.requests.values()) == 1


async def test_other_4xx_is_not_retried(mocked: aioresponses, fake_sleep: FakeSleep) -> None:
    mocked.post(chat_url_re(), status=400, body="bad", repeat=True)
    client = V4Client(sleep=fake_sleep)
    with pytest.raises(HailuoServerError):
        await run_chat(client)
    await client.aclose()
    assert fake_sleep.delays == []


# --------------------------------------------------------------------------- content types


async def test_html_200_is_a_protocol_error_naming_the_base_url(mocked: aioresponses) -> None:
    mocked.post(chat_url_re(), body="<!doctype html><html></html>", content_type="text/html")
    client = V4Client()
    with pytest.raises(HailuoProtocolError) as info:
        await run_chat(client)
    await client.aclose()
    assert "base_url" in str(info.value)
    assert "HAILUO_BASE_URL" in str(info.value)
    assert BASE in str(info.value)


async def test_json_error_answer_is_a_server_error(mocked: aioresponses) -> None:
    mocked.post(
        chat_url_re(), payload={"statusInfo": {"code": 1004, "message": "sign error"}, "data": {}}
    )
    client = V4Client()
    with pytest.raises(HailuoServerError) as info:
        await run_chat(client)
    await client.aclose()
    assert info.value.code == 1004
    assert info.value.server_message == "sign error"


async def test_json_without_error_is_a_protocol_error(mocked: aioresponses) -> None:
    mocked.post(chat_url_re(), payload={"hello": "world"})
    client = V4Client()
    with pytest.raises(HailuoProtocolError, match="JSON"):
        await run_chat(client)
    await client.aclose()


async def test_stream_without_content_type_is_accepted(mocked: aioresponses) -> None:
    mocked.post(chat_url_re(), body=answer_body("plain"), content_type="text/plain")
    client = V4Client()
    events, _ = await run_chat(client)
    await client.aclose()
    assert "plain" in events


# --------------------------------------------------------------------------- mid-stream failures


async def test_truncated_answer_raises_interrupted(mocked: aioresponses) -> None:
    mocked.post(chat_url_re(), body=send_result() + message("Half"), content_type=SSE)
    client = V4Client()
    with pytest.raises(HailuoStreamInterruptedError) as info:
        await run_chat(client)
    await client.aclose()
    assert info.value.partial_text == "Half"
    assert info.value.chat_id == CHAT
    assert sum(len(calls) for calls in mocked.requests.values()) == 1


class FakeContent:
    """A response body that hands out chunks, then stalls or fails."""

    def __init__(self, chunks: list[bytes], then: BaseException | None = None) -> None:
        self._chunks = list(chunks)
        self._then = then

    def read_nowait(self) -> bytes:
        return b""  # every chunk arrives after a wait

    def at_eof(self) -> bool:
        return False

    async def readany(self) -> bytes:
        if self._chunks:
            return self._chunks.pop(0)
        if self._then is not None:
            raise self._then
        await asyncio.sleep(3600)
        return b""


class FakeResponse:
    """Just enough of aiohttp.ClientResponse for V4Answer."""

    def __init__(self, content: FakeContent) -> None:
        self.content = content
        self.url = URL(BASE + "/v4/api/chat/msg")
        self.closed = False
        self.released = False

    def close(self) -> None:
        self.closed = True

    def release(self) -> None:
        self.released = True


def fake_answer(content: FakeContent, timeouts: Timeouts | None = None) -> V4Answer:
    opts = HttpOptions(timeouts=timeouts or Timeouts())
    return V4Answer(
        FakeResponse(content),  # type: ignore[arg-type]
        requested_origin=BASE,
        options=opts,
        redact=Redactor([TOKEN]),
    )


async def test_idle_timeout_mid_answer_carries_the_partial_text() -> None:
    answer = fake_answer(
        FakeContent([send_result() + message("So far")]), Timeouts(idle=0.05, total=5)
    )
    with pytest.raises(HailuoTimeoutError) as info:
        await collect_reads(answer.events())
    assert info.value.partial_text == "So far"
    assert info.value.chat_id == CHAT
    assert answer._response.closed


async def test_connection_drop_mid_answer_is_interrupted() -> None:
    drop = aiohttp.ClientPayloadError("Response payload is not completed")
    answer = fake_answer(FakeContent([send_result() + message("Cut"), b"eve"], then=drop))
    with pytest.raises(HailuoStreamInterruptedError) as info:
        await collect_reads(answer.events())
    assert info.value.partial_text == "Cut"
    assert isinstance(info.value.__cause__, aiohttp.ClientPayloadError)
    assert answer._response.closed


async def test_in_stream_error_carries_partial_text() -> None:
    body = (
        send_result()
        + message("Some")
        + (b'event: message_result\ndata: {"type":2,"statusInfo":{"code":500,"message":"x"}}\n\n')
    )
    answer = fake_answer(FakeContent([body]))
    with pytest.raises(HailuoServerError) as info:
        await collect_reads(answer.events())
    assert (info.value.partial_text, info.value.code) == ("Some", 500)


async def test_reading_stops_at_the_end_of_the_answer() -> None:
    # The server keeps the connection open after the final snapshot: we wait only briefly
    # (BODY_END_GRACE), then drop the connection.
    answer = fake_answer(FakeContent([answer_body("done")]), Timeouts(idle=30, total=60))
    events = await asyncio.wait_for(collect_reads(answer.events()), 1)
    assert events[-1] == FinishReason()
    assert answer._response.closed


async def test_body_read_to_the_end_is_released_to_the_pool() -> None:
    answer = fake_answer(FakeContent([send_result() + message("all", is_end=0), b""]))
    unfinished = fake_answer(FakeContent([send_result(), b""]))
    # After the final snapshot the rest of the body is read: at its end the connection is
    # released to the pool (the server finished the answer too).
    assert (await collect_reads(answer.events()))[-1] == FinishReason()
    assert answer._response.released  # type: ignore[attr-defined]
    assert not answer._response.closed
    # A body that reached EOF goes back to the pool (released), even when cut short.
    with pytest.raises(HailuoStreamInterruptedError):
        await collect_reads(unfinished.events())
    assert unfinished._response.released  # type: ignore[attr-defined]
    assert not unfinished._response.closed


async def test_consumer_stopping_early_closes_the_response(mocked: aioresponses) -> None:
    mocked.post(chat_url_re(), body=answer_body("a", "ab", "abc"), content_type=SSE)
    client = V4Client()
    async with client.chat(make_auth(), build_form(msg_content="x"), base_url=BASE) as answer:
        async for _ in answer.events():
            break
    assert answer._response.closed
    await client.aclose()


async def test_cancelled_consumer_closes_the_response() -> None:
    answer = fake_answer(FakeContent([send_result()]))
    task = asyncio.create_task(collect_reads(answer.events()))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert answer._response.closed


# --------------------------------------------------------------------------- sessions and secrets


async def test_one_session_per_loop_and_aclose(mocked: aioresponses) -> None:
    mocked.post(chat_url_re(), body=answer_body("ok"), content_type=SSE, repeat=True)
    client = V4Client()
    await run_chat(client)
    session = client._sessions.get()
    await run_chat(client, make_auth(token="other-account-token"))
    assert client._sessions.get() is session
    assert isinstance(session.cookie_jar, aiohttp.DummyCookieJar)
    await client.aclose()
    assert session.closed


async def test_token_never_in_logs_or_errors(
    mocked: aioresponses, debug_logs: pytest.LogCaptureFixture, fake_sleep: FakeSleep
) -> None:
    mocked.post(chat_url_re(), status=429, body=f"echo {TOKEN}")
    mocked.post(chat_url_re(), body=answer_body("fine"), content_type=SSE)
    mocked.post(chat_url_re(), status=401, body="no")
    mocked.post(chat_url_re(), body=send_result() + message("cut"), content_type=SSE)
    client = V4Client(sleep=fake_sleep)
    await run_chat(client)
    errors: list[BaseException] = []
    for _ in range(2):
        try:
            await run_chat(client)
        except Exception as exc:
            errors.append(exc)
    await client.aclose()
    assert len(errors) == 2
    assert debug_logs.records, "expected debug output to check"
    assert TOKEN not in debug_logs.text
    for err in errors:
        assert TOKEN not in str(err)
        assert TOKEN not in repr(err)
    assert logging.getLogger("langchain_hailuo.v4").isEnabledFor(logging.DEBUG)
