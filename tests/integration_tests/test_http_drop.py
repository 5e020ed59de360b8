"""A connection that breaks mid-body: the bytes that arrived before the break are kept.

aiohttp raises the payload error on every read once the connection is lost, even while
bytes received before the loss are still buffered; a reader slower than the network (a busy
loop, a thread switching) lost them. ``_http.iter_chunks`` hands them out before the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from langchain_hailuo._http import HttpOptions, Timeouts, iter_chunks
from tests.integration_tests._loopback import loopback

pytestmark = pytest.mark.timeout(30)

SENT = b"data: the start of an answer\n\ndata: and a little more\n\n"


@pytest.fixture
async def dropping_server() -> AsyncIterator[str]:
    """An origin that sends :data:`SENT`, then drops the connection mid-body."""

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(SENT)
        assert request.transport is not None
        request.transport.abort()
        return response

    app = web.Application()
    app.router.add_get("/", answer)
    async with loopback(app) as origin:
        yield f"{origin}/"


async def _read_into(chunks: AsyncIterator[bytes], received: list[bytes]) -> None:
    """Collect ``chunks`` into ``received`` until they end or raise."""
    async for chunk in chunks:
        received.append(chunk)  # noqa: PERF401 - what came before an error is kept


@pytest.mark.parametrize("read_first", [0, 5], ids=["slow-reader", "partly-read"])
async def test_bytes_received_before_a_drop_are_handed_out_before_the_error(
    dropping_server: str, read_first: int
) -> None:
    options = HttpOptions(timeouts=Timeouts(connect=2.0, first_byte=2.0, idle=2.0, total=10.0))
    received: list[bytes] = []
    async with aiohttp.ClientSession() as session, session.get(dropping_server) as response:
        if read_first:
            received.append(await response.content.read(read_first))  # the first chunk, in part
        await asyncio.sleep(0.2)  # the break arrives while the bytes wait to be read
        with pytest.raises(aiohttp.ClientPayloadError):
            await _read_into(iter_chunks(response, options=options.with_deadline()), received)
    assert b"".join(received) == SENT
