"""The web client's watchdogs and limits as ours (§12.4): stalls keep the partial text."""

from __future__ import annotations

import asyncio

import pytest
from aioresponses import aioresponses

from langchain_hailuo._http import HttpOptions
from langchain_hailuo._timeouts import Timeouts
from langchain_hailuo.agent.client import ModelChoice, both
from langchain_hailuo.agent.provider import MiniMaxAgent
from langchain_hailuo.errors import HailuoSessionBusyError, HailuoStallError, HailuoTimeoutError
from langchain_hailuo.types import FinishReason
from langchain_hailuo.v4.provider import HailuoAI
from tests.unit_tests.agent.conftest import (
    SESSION_ID,
    chunk,
    make_auth,
    make_client,
    message_url,
    mock_turn,
    sse,
)

HEARTBEATS = b'data:{"type":10}\n\n: ping\n\ndata:{"type":"heartbeat"}\n\n'


async def _turn(mocked: aioresponses, body: bytes, **settings: float) -> list[object]:
    mock_turn(mocked, body)
    client = make_client(**settings)
    try:
        async with client.send_message(
            make_auth(real_user_id="1"), SESSION_ID, "x", ModelChoice("MiniMax-M3")
        ) as turn:
            return [event async for group in turn.events() for event in group]
    finally:
        await client.aclose()


async def test_heartbeats_alone_for_too_long_are_a_stall_with_the_partial_text(
    mocked: aioresponses,
) -> None:
    with pytest.raises(HailuoStallError) as info:
        await _turn(mocked, sse(chunk("Half an")) + HEARTBEATS, heartbeat_stall=0.0)
    assert info.value.partial_text == "Half an"
    assert isinstance(info.value, HailuoTimeoutError)  # a timeout, for code that catches those
    assert "not sent again" in str(info.value)


async def test_heartbeats_within_the_limit_do_not_stall(mocked: aioresponses) -> None:
    body = sse(chunk("Hi")) + HEARTBEATS + sse(chunk(" there"), chunk(finish=True))
    events = await _turn(mocked, body, heartbeat_stall=3600.0)
    assert events[-1] == FinishReason("stop")


def test_the_defaults_are_the_web_clients() -> None:
    client = make_client()
    assert client.settings.heartbeat_stall == 60.0
    assert client.settings.generating_stuck == 120.0
    assert client.options.timeouts.idle == 90.0
    assert client.options.timeouts.first_byte == 120.0  # the web client's request timeout


def test_the_agent_request_timeout_is_the_web_clients_and_v4_keeps_its_own() -> None:
    agent = MiniMaxAgent(timeout=300.0)  # ChatHailuo's default total timeout
    assert agent.options.timeouts.first_byte == 120.0
    assert agent.options.timeouts.idle == 90.0
    assert agent.options.timeouts.total == 300.0
    assert MiniMaxAgent(timeout=30.0).options.timeouts.first_byte == 30.0  # capped by the total
    assert HailuoAI(timeout=300.0).options.timeouts.first_byte == 60.0
    assert HailuoAI().options.timeouts == Timeouts()
    given = HttpOptions(timeouts=Timeouts(first_byte=5.0, idle=2.0))
    chosen = MiniMaxAgent(options=given, timeout=300.0).options.timeouts
    assert (chosen.first_byte, chosen.idle) == (5.0, 2.0)  # given phases are kept


async def test_both_raises_the_failure_not_the_cancellation_of_the_other() -> None:
    """The second call failing first must not surface as the first one's cancellation."""

    async def slow() -> str:
        await asyncio.sleep(3600)
        return "never"

    async def fails() -> str:
        raise HailuoStallError("boom")

    with pytest.raises(HailuoStallError, match="boom"):
        await both(slow(), fails())
    assert await both(asyncio.sleep(0, "a"), asyncio.sleep(0, "b")) == ("a", "b")


async def test_a_busy_session_gets_one_retry_after_about_a_second(mocked: aioresponses) -> None:
    """§12.2: a 409 before the message was taken is sent once more, ~1 s later, no more."""
    message = message_url()
    mocked.post(message, status=409, body="busy")
    mocked.post(message, status=409, body="busy")
    mocked.post(
        message, body=sse(chunk("ok"), chunk(finish=True)), content_type="text/event-stream"
    )
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    client = make_client()
    client._sleep = sleep
    with pytest.raises(HailuoSessionBusyError):
        async with client.send_message(
            make_auth(real_user_id="1"), SESSION_ID, "x", ModelChoice("MiniMax-M3")
        ):
            pass
    assert len(slept) == 1
    assert 0.5 <= slept[0] <= 1.0
    async with client.send_message(
        make_auth(real_user_id="1"), SESSION_ID, "x", ModelChoice("MiniMax-M3")
    ) as turn:
        assert [e async for group in turn.events() for e in group][-1] == FinishReason("stop")
    await client.aclose()
