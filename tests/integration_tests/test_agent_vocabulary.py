"""The §12.3 vocabulary end to end: the emulator sends each frame kind, ChatHailuo reads it."""

from __future__ import annotations

import logging

import pytest

from langchain_hailuo import ChatHailuo
from langchain_hailuo.emulator import Emulator
from langchain_hailuo.errors import HailuoQuotaError

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
