"""Fixtures of the v4 tests: a spy on the wire requests and an independent yy."""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import pytest
from aioresponses import aioresponses

from langchain_hailuo._http import HttpOptions
from langchain_hailuo.v4 import client as client_module

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyIjp7ImlkIjoiNDIifX0.c2VjcmV0LXNpZ25hdHVyZQ"
"""A token-shaped secret (user id 42) that must never show up in output."""

SSE = "text/event-stream"


def chat_url_re(origin: str = "https://www.hailuo.ai") -> re.Pattern[str]:
    """Matches the chat URL of ``origin`` with any query."""
    return re.compile("^" + re.escape(origin) + r"/v4/api/chat/msg\?.*$")


@dataclass
class Hop:
    """One request as it went on the wire: method, exact URL, headers and form."""

    method: str
    url: str
    headers: dict[str, str]
    data: aiohttp.FormData

    @property
    def path_and_query(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.path}?{parts.query}"

    @property
    def query(self) -> list[tuple[str, str]]:
        return [tuple(p.split("=", 1)) for p in urlsplit(self.url).query.split("&")]  # type: ignore[misc]

    async def form(self) -> list[tuple[str, str, str]]:
        """The multipart parts: (name, value, content type); fails on a file part."""
        payload = self.data()
        raw = await payload.as_bytes()
        head = f"Content-Type: {payload.content_type}\r\n\r\n".encode()
        message = email.message_from_bytes(head + raw, policy=email.policy.HTTP)
        parts: list[tuple[str, str, str]] = []
        for part in message.iter_parts():
            assert part.get_filename() is None
            name = part.get_param("name", header="content-disposition")
            raw_value = part.get_payload(decode=True)
            assert isinstance(raw_value, bytes)
            value = raw_value.decode("utf-8")
            ctype = f"{part.get_content_type()}; charset={part.get_content_charset()}"
            parts.append((str(name), value, ctype))
        return parts

    async def fields(self) -> dict[str, str]:
        return {name: value for name, value, _ in await self.form()}


def md5(text: str) -> str:
    """The hex MD5 of ``text``, from hashlib alone."""
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def independent_yy(path_and_query: str, form: Mapping[str, str], unix: int | str) -> str:
    """The yy of protocol notes §2.2, computed here without langchain_hailuo.v4.crypt."""
    content = form["msgContent"].replace("\r", "").replace("\n", "")
    body = md5(form["characterID"]) + md5(content) + md5(form["chatID"]) + md5("")
    encoded = quote(path_and_query, safe="-_.!~*'()")
    return md5(f"{encoded}_{body}{md5(str(unix))}ooui")


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[Hop]:
    """Every request the v4 client sends (each redirect hop too), exactly as built."""
    recorded: list[Hop] = []
    original = client_module.request_following_redirects

    async def spy(
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        *,
        build: Callable[[str], Mapping[str, Any]],
        options: HttpOptions,
        **rest: Any,
    ) -> aiohttp.ClientResponse:
        def recording_build(hop_url: str) -> Mapping[str, Any]:
            kwargs = build(hop_url)
            recorded.append(Hop(method, hop_url, dict(kwargs["headers"]), kwargs["data"]))
            return kwargs

        return await original(session, method, url, build=recording_build, options=options, **rest)

    monkeypatch.setattr(client_module, "request_following_redirects", spy)
    return recorded


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    """aioresponses, active for the test."""
    with aioresponses() as m:
        yield m


class FakeSleep:
    """Records backoff delays instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def fake_sleep() -> FakeSleep:
    return FakeSleep()


SleepFn = Callable[[float], Awaitable[None]]
