"""Deltas of one network read go out as one chunk; a slow stream's first delta goes out at once.

A small v4 server on 127.0.0.1 (real aiohttp on both ends) writes the answer's frames
exactly as the test wants them to arrive: many snapshots in one write, or a first part and
then nothing until the test has seen the first chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from langchain_core.messages import AIMessageChunk

from langchain_hailuo.chat_models import ChatHailuo
from tests.integration_tests._loopback import loopback
from tests.unit_tests.v4.frames import CLOSE, message, send_result

ANSWER = "".join(f"word{n} " for n in range(40)).strip()
SNAPSHOTS = [ANSWER[: n + 1] for n in range(0, len(ANSWER), 4)]
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyIjp7ImlkIjoiNDIifX0.c2VjcmV0LXNpZ25hdHVyZQ"


def body(snapshots: list[str], *, last: bool) -> bytes:
    """The frames of ``snapshots`` (the last one final when ``last``)."""
    return b"".join(
        message(text, is_end=0 if last and i == len(snapshots) - 1 else 1)
        for i, text in enumerate(snapshots)
    )


class Server:
    """A v4 chat route that writes frames in the pieces a test asks for."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.slow = False

    async def chat(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if not self.slow:
            await response.write(send_result() + body(SNAPSHOTS, last=True) + CLOSE)
        else:
            await response.write(send_result() + message(SNAPSHOTS[0]))
            await self.gate.wait()  # until the test has its first chunk
            await response.write(body(SNAPSHOTS[1:], last=True) + CLOSE)
        await response.write_eof()
        return response


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, str]]:
    handler = Server()
    app = web.Application()
    app.router.add_post("/v4/api/chat/msg", handler.chat)
    async with loopback(app) as origin:
        try:
            yield handler, origin
        finally:
            handler.gate.set()


def model(base_url: str) -> ChatHailuo:
    return ChatHailuo(
        protocol="v4", base_url=base_url, token=TOKEN, uuid="u-1", device_id="123456789012345678"
    )


async def test_snapshots_read_together_make_one_text_chunk(server: tuple[Server, str]) -> None:
    _, url = server
    chat = model(url)
    chunks = [chunk async for chunk in chat.astream("Hi")]
    await chat.aclose()
    texts = [c.content for c in chunks if c.content]
    assert len(SNAPSHOTS) > 10
    assert texts == [ANSWER]  # one chunk for the whole read, not one per snapshot
    assert chunks[-1].chunk_position == "last"


async def test_a_slow_stream_yields_its_first_chunk_at_once(server: tuple[Server, str]) -> None:
    handler, url = server
    handler.slow = True
    chat = model(url)
    stream = chat.astream("Hi")
    # the server sends nothing more until it is told to: the first chunk must come first
    first: AIMessageChunk = await asyncio.wait_for(anext(stream), 30)
    assert first.content == SNAPSHOTS[0]
    assert not handler.gate.is_set()
    handler.gate.set()
    rest = [chunk async for chunk in stream]
    await chat.aclose()
    assert first.content + "".join(str(c.content) for c in rest) == ANSWER
    assert [c.content for c in rest if c.content] == [ANSWER[len(SNAPSHOTS[0]) :]]


async def test_the_sync_stream_groups_the_same_way(server: tuple[Server, str]) -> None:
    _, url = server
    chat = model(url)

    def sync_texts() -> list[str]:
        """``stream`` from a thread (each chunk is asked for from a new task)."""
        try:
            return [str(c.content) for c in chat.stream("Hi") if c.content]
        finally:
            chat.close()

    assert await asyncio.to_thread(sync_texts) == [ANSWER]
