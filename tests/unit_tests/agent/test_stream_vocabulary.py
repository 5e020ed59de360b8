"""The production decoder's vocabulary (§12.3), every frame kind also cut at every byte."""

from __future__ import annotations

import itertools
import json
import logging
from typing import Any

import pytest

from langchain_hailuo.agent.stream import AgentStreamDecoder, drift_seen, error_for_code
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoError,
    HailuoQuotaError,
    HailuoServerError,
)
from langchain_hailuo.types import AgentActivity, FinishReason, Reasoning
from tests.unit_tests.agent.conftest import chunk, message

END = b"data:" + json.dumps(chunk(finish=True)).encode() + b"\n\n"


def data(frame: dict[str, Any], *, space: bool = False) -> bytes:
    return (b"data: " if space else b"data:") + json.dumps(frame).encode() + b"\n\n"


def run(body: bytes, cuts: tuple[int, ...] = ()) -> tuple[list[Any], BaseException | None]:
    """Decode ``body`` fed in pieces cut at ``cuts``: the events, and the error if any."""
    decoder = AgentStreamDecoder("the prompt", chat_id="s1")
    events: list[Any] = []
    bounds = [0, *cuts, len(body)]
    try:
        for start, stop in itertools.pairwise(bounds):
            events += decoder.feed(body[start:stop])
            decoder.raise_pending()
        events += decoder.close()
    except HailuoError as exc:
        return events, exc
    return events, None


def everywhere(body: bytes) -> tuple[list[Any], BaseException | None]:
    """Decode whole, then cut at every byte boundary: the outcome must never change."""
    whole, error = run(body)
    for cut in range(1, len(body)):
        events, cut_error = run(body, (cut,))
        assert _text(events) == _text(whole), cut
        assert [e for e in events if not isinstance(e, str | Reasoning)] == [
            e for e in whole if not isinstance(e, str | Reasoning)
        ], cut
        assert type(cut_error) is type(error), cut
        if error is not None and cut_error is not None:
            assert getattr(cut_error, "partial_text", None) == getattr(error, "partial_text", None)
    return whole, error


def _text(events: list[Any]) -> str:
    return "".join(e for e in events if isinstance(e, str))


def _thinking(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, Reasoning))


def _activity(events: list[Any]) -> AgentActivity:
    found = [e for e in events if isinstance(e, AgentActivity)]
    return found[-1] if found else AgentActivity()


def test_comment_lines_are_heartbeats_never_text() -> None:
    body = b": keep-alive\n\n" + data(chunk("Hi")) + b":\n\n" + END
    events, error = everywhere(body)
    assert error is None
    assert _text(events) == "Hi"
    decoder = AgentStreamDecoder()
    decoder.feed(b": ping\n\n")
    assert decoder.heartbeats == 1


def test_data_with_and_without_the_space_and_every_line_ending() -> None:
    for sep in (b"\n", b"\r\n", b"\r"):
        body = (data(chunk("a")) + data(chunk("b"), space=True) + END).replace(b"\n", sep)
        events, error = everywhere(body)
        assert error is None, sep
        assert _text(events) == "ab"
        assert events[-1] == FinishReason("stop")


def test_multi_line_data_is_joined_with_newlines() -> None:
    body = b'data: {"type": 6,\ndata: "agent_message_chunk": {"msg_content": "x\\ny"}}\n\n' + END
    events, error = everywhere(body)
    assert error is None
    assert _text(events) == "x\ny"


def test_done_ends_the_stream_and_other_fields_are_ignored() -> None:
    body = b"event: message\nid: 7\n" + data(chunk("ok")) + b"data: [DONE]\n\n"
    events, error = everywhere(body)
    assert error is None
    assert _text(events) == "ok"
    assert events[-1] == FinishReason("stop")


@pytest.mark.parametrize("frame", [{"type": "heartbeat"}, {"type": 10}])
def test_heartbeat_frames(frame: dict[str, Any]) -> None:
    events, error = everywhere(data(frame) + data(chunk("t")) + END)
    assert error is None
    assert _text(events) == "t"
    assert _activity(events).unknown == ()


def test_a_string_error_frame_keeps_its_code_and_the_partial_text() -> None:
    frame = {"type": "error", "errorCode": 2056, "error": "Token Plan quota exhausted"}
    _, error = everywhere(data(chunk("Half")) + data(frame))
    assert isinstance(error, HailuoQuotaError)
    assert error.code == "2056"
    assert error.partial_text == "Half"
    assert "quota exhausted" in str(error)


def test_a_string_error_frame_with_message_and_an_unknown_code() -> None:
    frame = {"type": "error", "errorCode": 777001, "message": "sandbox exploded"}
    _, error = everywhere(data(frame))
    assert isinstance(error, HailuoServerError)
    assert error.code == "777001"
    assert "error code 777001" in drift_seen()


def test_session_status_finished_ends_the_turn() -> None:
    finished = {"type": "session_status", "session_status": {"type": "finished"}}
    events, error = everywhere(data(chunk("done")) + data(finished))
    assert error is None
    assert _text(events) == "done"
    assert events[-1] == FinishReason("stop")


def test_session_status_error_fails_the_turn() -> None:
    failed = {"type": "session_status", "session_status": {"type": "Error", "error_code": 5}}
    _, error = everywhere(data(chunk("so far")) + data(failed))
    assert isinstance(error, HailuoServerError)
    assert error.partial_text == "so far"


def test_msg_content_and_thinking_in_one_chunk_are_both_kept() -> None:
    events, error = everywhere(data(chunk("text", thinking="thought")) + END)
    assert error is None
    assert (_text(events), _thinking(events)) == ("text", "thought")


def test_the_agents_own_tool_calls_go_to_metadata_never_text() -> None:
    call = {
        "tool_call_id": "c1",
        "tool_name": "web_search",
        "tool_call_args": '{"q": "foxes"}',
        "status": 1,
    }
    done = {**call, "status": 2, "tool_call_result_data": {"hits": 3}}
    body = data(chunk(tool_calls=[call])) + data(chunk(tool_calls=[done])) + data(chunk("A fox."))
    events, error = everywhere(body + END)
    assert error is None
    assert _text(events) == "A fox."
    assert _activity(events).tool_calls == (
        {
            "id": "c1",
            "name": "web_search",
            "input": {"q": "foxes"},
            "status": "finished",
            "result": {"hits": 3},
        },
    )


def test_system_events_and_the_prompt_echo_are_not_text() -> None:
    system = message('{"eventType":"todo_updated"}', msg_type=3)
    echo = message("the prompt", role="user")
    events, error = everywhere(data(echo) + data(system) + data(chunk("answer")) + END)
    assert error is None
    assert _text(events) == "answer"


def test_snapshot_chunk_and_complete_message_reduce_to_the_answer() -> None:
    """The vendor's own test: a snapshot "answer", chunk " more", complete "answer more"."""
    snapshot = {"type": 2, "agent_message": {"msg_content": "answer"}}
    complete = message("answer more", finish_reason="stop")
    events, error = everywhere(data(snapshot) + data(chunk(" more")) + data(complete))
    assert error is None
    assert _text(events) == "answer more"
    assert events[-1] == FinishReason("stop")


def test_unknown_frames_warn_once_and_are_counted_never_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    weird = {"type": 99, "surprise": {"secret": "eyJhbGciOi.should.never.show"}}
    event = {"type": "plan_updated", "plan": ["x"]}
    body = data(weird) + data(weird) + data(event) + data(chunk("real", new_field=1)) + END
    with caplog.at_level(logging.WARNING, logger="langchain_hailuo.agent.stream"):
        events, error = run(body)
        run(body)
    assert error is None
    assert _text(events) == "real"
    unknown = dict(_activity(events).unknown)
    assert unknown["frame type 99"] == 2
    assert unknown["event type 'plan_updated'"] == 1
    assert unknown["agent_message_chunk field 'new_field'"] == 1
    warned = [r.getMessage() for r in caplog.records if "frame type 99" in r.getMessage()]
    assert len(warned) <= 1  # once per kind per process (earlier tests may have warned already)
    assert "should.never.show" not in caplog.text
    assert "surprise" in str(unknown)  # the shape (field names), not values
    everywhere(body)


def test_region_refusal_and_missing_cookie_are_explained() -> None:
    region = error_for_code("30700", "", what="message request")
    assert isinstance(region, HailuoAuthError)
    assert "https://agent.minimax.io/region-restriction.html" in str(region)
    assert "region" in str(region)
    pointed = error_for_code("30700", "https://agent.minimax.io/elsewhere.html", what="x")
    assert "elsewhere.html" in str(pointed)
    cookie = error_for_code("1004", "cookie is missing", what="config request")
    assert isinstance(cookie, HailuoAuthError)
    assert "cookie is missing" in str(cookie)
    assert "hailuo login" in str(cookie)
