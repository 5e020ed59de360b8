"""The §12.3 vocabulary end to end: the emulator sends each frame kind, ChatHailuo reads it."""

from __future__ import annotations

import logging

import pytest

from langchain_hailuo import ChatHailuo
from langchain_hailuo.agent.stream import drift_seen
from langchain_hailuo.emulator import Emulator
from langchain_hailuo.errors import HailuoQuotaError, HailuoServerError

pytestmark = pytest.mark.timeout(30)

TOOL_CALL = {
    "tool_call_id": "call-1",
    "tool_name": "web_search",
    "tool_call_args": '{"query": "foxes"}',
    "status": 2,
    "tool_call_result_data": "3 results",
}


async def test_tool_calls_events_comments_and_unknown_frames_reach_metadata_not_text(
    hailuo_emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    hailuo_emulator.script("The answer.")
    hailuo_emulator.fault(
        "frames",
        frames=[
            ": keep-alive",
            {"type": "heartbeat"},
            {"type": 6, "agent_message_chunk": {"role": "assistant", "tool_calls": [TOOL_CALL]}},
            {"type": 2, "agent_message": {"role": "assistant", "msg_type": 3, "msg_content": "{}"}},
            {"type": 42, "mystery": {"token": "never-logged-value"}},
            {"type": "todo_updated", "todos": []},
        ],
    )
    model = ChatHailuo(**hailuo_emulator.model_kwargs())
    with caplog.at_level(logging.WARNING):
        answer = await model.ainvoke("hi")
    assert answer.content == "The answer."
    meta = answer.response_metadata
    assert meta["agent_tool_calls"] == [
        {
            "id": "call-1",
            "name": "web_search",
            "input": {"query": "foxes"},
            "status": "finished",
            "result": "3 results",
        }
    ]
    assert meta["unknown_frames"]["frame type 42"] == 1
    assert meta["unknown_frames"]["event type 'todo_updated'"] == 1
    assert "never-logged-value" not in caplog.text
    plain = await model.ainvoke("again")
    assert "agent_tool_calls" not in plain.response_metadata
    assert "unknown_frames" not in plain.response_metadata


async def test_a_string_error_frame_is_a_typed_error(hailuo_emulator: Emulator) -> None:
    hailuo_emulator.fault(
        "frames", frames=[{"type": "error", "errorCode": 2056, "error": "quota exhausted"}]
    )
    model = ChatHailuo(**hailuo_emulator.model_kwargs(), max_retries=0)
    with pytest.raises(HailuoQuotaError) as info:
        await model.ainvoke("hi")
    assert info.value.code == "2056"


async def test_an_unknown_code_in_an_http_error_body_is_drift_on_the_raised_error(
    hailuo_emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    hailuo_emulator.fault("http_500", code=4242421, message="something new", times=2)
    model = ChatHailuo(**hailuo_emulator.model_kwargs(), max_retries=0)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            with pytest.raises(HailuoServerError) as info:
                await model.ainvoke("hi")
            assert info.value.drift == {"error code 4242421": 1}
            assert "error code 4242421 unknown to this version" in str(info.value)
    warnings = [r for r in caplog.records if "error code 4242421" in r.getMessage()]
    assert len(warnings) == 1  # once per kind per process
    assert "something new" not in caplog.text  # the shape only
    assert drift_seen()["error code 4242421"] == 2
    assert len(hailuo_emulator.requests_to("chat")) == 2  # each message sent once


async def test_an_unknown_code_of_a_refusal_before_the_answer_is_counted_in_its_metadata(
    hailuo_emulator: Emulator,
) -> None:
    """A 409 "session busy" is sent again once (§12.2): its new code reaches the answer."""
    hailuo_emulator.script("Fine now.")
    hailuo_emulator.fault("http_409", code=4242422)
    answer = await ChatHailuo(**hailuo_emulator.model_kwargs()).ainvoke("hi")
    assert answer.content == "Fine now."
    assert answer.response_metadata["unknown_frames"] == {"error code 4242422": 1}


async def test_known_codes_and_http_statuses_in_error_bodies_are_not_drift(
    hailuo_emulator: Emulator,
) -> None:
    hailuo_emulator.fault("http_500")  # base_resp 500: the HTTP status repeated
    model = ChatHailuo(**hailuo_emulator.model_kwargs(), max_retries=0)
    with pytest.raises(HailuoServerError) as info:
        await model.ainvoke("hi")
    assert info.value.drift == {}
    hailuo_emulator.fault("http_409")  # sent again once, then answered
    answer = await ChatHailuo(**hailuo_emulator.model_kwargs()).ainvoke("again")
    assert "unknown_frames" not in answer.response_metadata
