"""The web client's watchdogs (§12.4) as ours, against the emulator over loopback.

Each limit is set short here; the emulator stalls after the first answer chunks, silent, with
heartbeats, or with events that are not answer progress. No test measures time: each only
checks which typed error ends the turn and that the partial text is kept.
"""

from __future__ import annotations

import json

import pytest

from langchain_hailuo import ChatHailuo
from langchain_hailuo._http import HttpOptions
from langchain_hailuo._timeouts import Timeouts
from langchain_hailuo.emulator import Emulator
from langchain_hailuo.errors import HailuoStallError, HailuoTimeoutError

pytestmark = pytest.mark.timeout(60)

ANSWER = "Once upon a time, a fox ran far away."
AFTER = 4
"""Frames before the stall: the prompt's echo, a heartbeat and two answer chunks."""
RUNNING = json.dumps({"type": "session_status", "session_status": {"type": "running"}})


def _model(emulator: Emulator, *, idle: float = 90.0, **settings: float) -> ChatHailuo:
    options = HttpOptions(timeouts=Timeouts(first_byte=120.0, idle=idle))
    return ChatHailuo(
        **emulator.model_kwargs(),
        max_retries=0,
        provider_settings={"options": options, **settings},
    )


def _check_partial(error: HailuoStallError) -> None:
    assert error.partial_text  # what arrived is kept ...
    assert ANSWER.startswith(error.partial_text)  # ... and is the answer's start
    assert error.partial_text != ANSWER
    assert "not sent again" in str(error)
    assert isinstance(error, HailuoTimeoutError)  # code catching timeouts still catches it


async def test_a_silent_stream_is_a_stall_with_the_partial_text(hailuo_emulator: Emulator) -> None:
    hailuo_emulator.script(ANSWER)
    hailuo_emulator.fault("stall", after=AFTER)
    with pytest.raises(HailuoStallError) as info:
        await _model(hailuo_emulator, idle=0.5).ainvoke("Tell me a story.")
    _check_partial(info.value)
    assert "no data for 0.5 s" in str(info.value)
    assert len(hailuo_emulator.requests_to("chat")) == 1  # never sent twice


async def test_only_heartbeats_are_a_stall_with_the_partial_text(
    hailuo_emulator: Emulator,
) -> None:
    hailuo_emulator.script(ANSWER)
    hailuo_emulator.fault("stall", after=AFTER, keepalive=0.05)
    with pytest.raises(HailuoStallError) as info:
        await _model(hailuo_emulator, heartbeat_stall=0.5).ainvoke("Tell me a story.")
    _check_partial(info.value)
    assert "only heartbeats" in str(info.value)
    assert len(hailuo_emulator.requests_to("chat")) == 1


async def test_events_without_answer_growth_are_stuck_with_the_partial_text(
    hailuo_emulator: Emulator,
) -> None:
    """Frames keep coming (no stall), but the message does not grow: "generating" too long."""
    hailuo_emulator.script(ANSWER)
    hailuo_emulator.fault("stall", after=AFTER, keepalive=0.05, keepalive_frame=RUNNING)
    with pytest.raises(HailuoStallError) as info:
        await _model(hailuo_emulator, heartbeat_stall=0.2, generating_stuck=0.5).ainvoke(
            "Tell me a story."
        )
    _check_partial(info.value)
    assert "stuck" in str(info.value)
    assert len(hailuo_emulator.requests_to("chat")) == 1


async def test_an_answer_that_keeps_growing_is_never_stuck() -> None:
    """A paced answer lasting longer than the limit ends normally: each chunk is progress."""
    text = "word " * 39 + "end."
    emulator = await Emulator(chunk_delay=0.1, chunk_size=5).start()  # 40 chunks, about 4 s
    try:
        emulator.script(text)
        answer = await _model(emulator, generating_stuck=2.0).ainvoke("Talk a while.")
    finally:
        await emulator.stop()
    assert answer.content == text
