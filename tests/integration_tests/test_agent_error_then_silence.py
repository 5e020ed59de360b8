"""An Agent error frame right after answer text, then a server that says nothing more.

The decoder hands out the events that came before an error frame of the same chunk and
keeps the error; the client must raise it as soon as those events are out, not wait for
the next chunk: a server that keeps the body open after the error would otherwise turn the
server's error into an idle timeout.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from langchain_hailuo._http import HttpOptions, Timeouts
from langchain_hailuo.agent.client import AgentClient, AgentSettings, ModelChoice
from langchain_hailuo.errors import HailuoServerError, HailuoTimeoutError
from langchain_hailuo.types import AuthResult, StreamEvent
from tests.integration_tests._loopback import loopback

pytestmark = pytest.mark.timeout(30)

SESSION_ID = "123456789012345"
PARTIAL = "Half of the answer, then"
IDLE = 60.0
"""The client's idle timeout, longer than the test may run: the error cannot be its."""


def _frame(payload: dict[str, Any]) -> str:
    return f"data:{json.dumps(payload)}\n\n"


BODY = (
    _frame({"type": 6, "agent_message_chunk": {"role": "assistant", "msg_content": PARTIAL}})
    + _frame(
        {
            "type": 2,
            "agent_message": {
                "role": "assistant",
                "msg_content": "internal failure",
                "finish_reason": "error",
                "code": 1500001,
            },
        }
    )
).encode()


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """A stream origin that sends :data:`BODY` in one write, then keeps the body open."""
    release = asyncio.Event()

    async def message(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(BODY)
        await release.wait()  # silence: no more bytes and no end of the body
        return response

    app = web.Application()
    app.router.add_post("/minimax-cloud/api/v1/session/{session_id}/message", message)
    async with loopback(app) as origin:
        try:
            yield origin
        finally:
            release.set()


async def _turn_events(client: AgentClient, events: list[StreamEvent]) -> None:
    """Stream one turn, collecting its events into ``events`` until it ends or raises."""
    options = HttpOptions(timeouts=Timeouts(connect=2.0, first_byte=2.0, idle=IDLE, total=20.0))
    auth = AuthResult(token="t0ken", uuid="u", device_id="12345678")
    model = ModelChoice("MiniMax-M3")
    async with client.send_message(auth, SESSION_ID, "Hello?", model, options=options) as turn:
        async for group in turn.events():
            events.extend(group)  # what came before an error is kept


async def test_error_frame_then_silence_raises_the_server_error_promptly(
    silent_server: str,
) -> None:
    client = AgentClient(AgentSettings(base_url=silent_server, stream_url=silent_server))
    events: list[StreamEvent] = []
    try:
        with pytest.raises(HailuoServerError) as caught:
            await _turn_events(client, events)
    finally:
        await client.aclose()
    # not the idle timeout (it is longer than the test may run): the error frame itself
    assert not isinstance(caught.value, HailuoTimeoutError)
    assert caught.value.server_message == "internal failure"
    assert caught.value.partial_text == PARTIAL
    assert caught.value.chat_id == SESSION_ID
    assert events == [PARTIAL]  # handed out before the error
