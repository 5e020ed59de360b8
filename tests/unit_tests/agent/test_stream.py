"""The Agent turn decoder: realistic turns, quirks, errors, truncation, any chunking."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_hailuo.agent.stream import (
    AgentStreamDecoder,
    error_for_code,
    find_error_code,
    is_transient_session_error,
)
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoProtocolError,
    HailuoQuotaError,
    HailuoServerError,
    HailuoStreamInterruptedError,
)
from langchain_hailuo.types import FinishReason, MessageId, Reasoning, StreamEvent, Usage
from tests.unit_tests.agent.conftest import chunk, message, sse

PROMPT = "Tell me a story about a fox."
ANSWER = "Once upon a time, a quick brown fox jumped over the lazy dog."


def decode(body: bytes, prompt: str = PROMPT, step: int | None = None) -> list[StreamEvent]:
    decoder = AgentStreamDecoder(prompt, chat_id="s1")
    events: list[StreamEvent] = []
    pieces = [body] if step is None else [body[i : i + step] for i in range(0, len(body), step)]
    for piece in pieces:
        events += decoder.feed(piece)
    if not decoder.finished:
        events += decoder.close()
    return events


def texts(events: list[StreamEvent]) -> str:
    return "".join(e for e in events if isinstance(e, str))


def realistic_turn() -> bytes:
    parts = ["Once upon a time, ", "a quick brown fox ", "jumped over the lazy dog."]
    return (
        b"event:message\n"
        + sse(message(PROMPT, role="user", msg_id="u1"))
        + b": keep-alive comment\n\n"
        + sse({"type": 10})
        + sse(chunk(thinking="The user wants ", msg_id="m1"))
        + sse(chunk(thinking="a story."))
        + b"".join(sse(chunk(p)) for p in parts)
        + sse({"type": 10})
        + sse(
            message(
                ANSWER,
                msg_id="m1",
                finish_reason="stop",
                usage={"input_tokens": 12, "output_tokens": 20, "total_tokens": 32},
            )
        )
        + sse(chunk(finish=True, finish_reason="stop"))
    )


def test_realistic_turn() -> None:
    events = decode(realistic_turn())
    assert events == [
        MessageId("m1"),
        Reasoning("The user wants "),
        Reasoning("a story."),
        "Once upon a time, ",
        "a quick brown fox ",
        "jumped over the lazy dog.",
        Usage(12, 20, 32),
        FinishReason("stop"),
    ]


def test_final_resend_adds_only_the_new_suffix() -> None:
    body = sse(
        chunk("Hello there, "),
        chunk("my friend"),
        chunk("Hello there, my friend!"),
        chunk(finish=True),
    )
    assert texts(decode(body)) == "Hello there, my friend!"


def test_resend_of_the_reasoning_is_not_doubled() -> None:
    body = sse(
        chunk(thinking="Thinking about foxes "),
        chunk(thinking="and dogs."),
        chunk("A fox.", thinking="Thinking about foxes and dogs."),
        chunk(finish=True),
    )
    events = decode(body)
    assert "".join(e.text for e in events if isinstance(e, Reasoning)) == (
        "Thinking about foxes and dogs."
    )
    assert texts(events) == "A fox."


def test_short_deltas_that_repeat_the_start_are_kept() -> None:
    body = sse(chunk("ha"), chunk("ha"), chunk("ha"), chunk(finish=True))
    assert texts(decode(body)) == "hahaha"


def test_echo_without_role_is_dropped_and_data_with_space_and_done() -> None:
    body = b"data: " + sse(message(PROMPT, role=""))[5:] + sse(chunk("Sure.")) + b"data: [DONE]\n\n"
    events = decode(body)
    assert texts(events) == "Sure."
    assert events[-1] == FinishReason("stop")


def test_type2_only_answer_ends_at_close() -> None:
    body = sse(message("Only a final message.", finish_reason="stop"))
    events = decode(body)
    assert texts(events) == "Only a final message."
    assert events[-1] == FinishReason("stop")


def test_plan_events_are_not_answer_text() -> None:
    body = sse(
        message('{"eventType":"todo"}', msg_type=3),
        chunk("", msg_type=2),
        chunk("Answer."),
        chunk(finish=True),
    )
    assert texts(decode(body)) == "Answer."


@pytest.mark.parametrize("msg_type", [True, 1.0, 2])
def test_a_short_delta_of_another_msg_type_mid_answer_is_not_answer_text(msg_type: object) -> None:
    # Mid-answer (id out, many characters so far) the one-step path for plain deltas
    # applies the same prose rule as the full dispatch.
    words = [chunk(f"w{i} ", msg_id="m1") for i in range(12)]
    body = sse(*words, chunk("PLAN", msg_type=msg_type), chunk(finish=True))
    assert texts(decode(body)) == "".join(f"w{i} " for i in range(12))


def test_dispatch_by_payload_key_with_unknown_type_number() -> None:
    body = sse(
        {"type": 99, "agent_message_chunk": {"msg_content": "ok"}},
        {"type": 99, "agent_message_chunk": {"finish": True}},
    )
    assert texts(decode(body)) == "ok"


def test_dispatch_by_type_when_payload_is_under_data() -> None:
    body = sse({"type": 6, "data": {"msg_content": "ok"}}, {"type": 6, "data": {"finish": True}})
    assert texts(decode(body)) == "ok"


def test_malformed_json_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    body = b"data:{not json\n\n" + sse(chunk("fine"), chunk(finish=True))
    with caplog.at_level(logging.WARNING, logger="langchain_hailuo"):
        assert texts(decode(body)) == "fine"
    assert "malformed" in caplog.text


def test_frame_split_over_data_lines() -> None:
    body = b'data:{"type":6,\ndata:"agent_message_chunk":{"msg_content":"x"}}\n\n' + sse(
        chunk(finish=True)
    )
    assert texts(decode(body)) == "x"


def test_long_lines_and_crlf() -> None:
    long_text = "word " * 50_000
    body = sse(chunk(long_text), chunk("", finish=True)).replace(b"\n", b"\r\n")
    assert texts(decode(body, step=4096)) == long_text


def test_truncated_stream_raises_with_partial_text() -> None:
    decoder = AgentStreamDecoder(PROMPT, chat_id="s1")
    decoder.feed(sse(chunk(thinking="hmm"), chunk("Partial ans")))
    with pytest.raises(HailuoStreamInterruptedError) as info:
        decoder.close()
    assert info.value.partial_text == "Partial ans"
    assert info.value.partial_reasoning == "hmm"
    assert info.value.chat_id == "s1"


def test_error_frame_with_quota_code() -> None:
    body = sse(
        chunk("Part"), message("Token Plan quota exhausted", finish_reason="error", code=2056)
    )
    with pytest.raises(HailuoQuotaError) as info:
        decode(body)
    assert info.value.code == "2056"
    assert info.value.partial_text == "Part"


def test_error_frame_with_code_in_text_and_without_content() -> None:
    with pytest.raises(HailuoServerError) as info:
        decode(
            sse(message("[1400010501] Environment Variables not configured", finish_reason="error"))
        )
    assert info.value.code == "1400010501"
    with pytest.raises(HailuoServerError) as empty:
        decode(sse(message("", finish_reason="error")))
    assert not isinstance(empty.value, HailuoQuotaError)


def test_transient_error_frame_is_recognised() -> None:
    with pytest.raises(HailuoServerError) as info:
        decode(sse(message("sandbox connection error", finish_reason="error")))
    assert is_transient_session_error(info.value)


@pytest.mark.parametrize(
    "wall", ["No conversation resources are available. Subscribe to continue.", "Request failed"]
)
def test_quota_wall_prose_raises(wall: str) -> None:
    body = sse(chunk(wall[:10]), chunk(wall[10:]), chunk(wall), chunk(finish=True))
    decoder = AgentStreamDecoder(PROMPT)
    cut = len(sse(chunk(wall[:10]), chunk(wall[10:])))
    assert decoder.feed(body[:cut]) == []  # held back, never shown
    with pytest.raises(HailuoQuotaError) as info:
        decoder.feed(body[cut:])
    assert info.value.partial_text == wall


def test_answer_that_merely_starts_like_a_wall_is_released() -> None:
    body = sse(chunk("Request"), chunk(" failed? No: the request worked."), chunk("", finish=True))
    decoder = AgentStreamDecoder(PROMPT)
    first = decoder.feed(sse(chunk("Request")))
    assert first == []  # could still be a wall
    rest = decoder.feed(body[len(sse(chunk("Request"))) :])
    assert texts(rest) == "Request failed? No: the request worked."


def test_nothing_after_finish() -> None:
    decoder = AgentStreamDecoder(PROMPT)
    events = decoder.feed(sse(chunk("a"), chunk(finish=True), chunk("b")))
    assert texts(events) == "a"
    assert decoder.finished
    assert decoder.feed(sse(chunk("c"))) == []
    assert decoder.close() == []


def test_error_mapping_table() -> None:
    assert type(error_for_code("1406011050", "", what="x")) is HailuoServerError
    assert isinstance(
        error_for_code("1400010161", "not enough credits", what="x"), HailuoQuotaError
    )
    assert isinstance(error_for_code("1000021", "", what="x"), HailuoAuthError)
    assert isinstance(error_for_code(None, "invalid signature", what="x"), HailuoProtocolError)
    assert type(error_for_code("5", "boom", what="x")) is HailuoServerError
    body = {
        "error": "internal error",
        "code": "UNEXPECTED_ERROR",
        "base_resp": {"status_code": 1406011050},
    }
    assert find_error_code(body) == "1406011050"
    assert find_error_code({}, 'x "status_code":123456 y') == "123456"


frames_strategy = st.lists(
    st.one_of(
        st.builds(chunk, st.text(max_size=12), thinking=st.text(max_size=6)),
        st.just({"type": 10}),
        st.builds(lambda t: message(t, role="user"), st.text(max_size=8)),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(frames=frames_strategy, cuts=st.lists(st.integers(min_value=1, max_value=64), max_size=50))
def test_any_rechunking_yields_the_same_events(frames: list[dict], cuts: list[int]) -> None:
    body = sse(*frames, chunk("The end of the story."), chunk(finish=True))
    whole = decode(body)
    pieces: list[bytes] = []
    pos = 0
    for cut in cuts:
        pieces.append(body[pos : pos + cut])
        pos += cut
    pieces.append(body[pos:])
    decoder = AgentStreamDecoder(PROMPT, chat_id="s1")
    events: list[StreamEvent] = []
    for piece in pieces:
        events += decoder.feed(piece)
    if not decoder.finished:
        events += decoder.close()
    assert events == whole
    assert isinstance(events[-1], FinishReason)


def test_events_before_an_error_in_the_same_chunk_come_first() -> None:
    decoder = AgentStreamDecoder(PROMPT, chat_id="s1")
    body = sse(chunk("Half an answer"), message("rpc timeout", finish_reason="error"))
    assert texts(decoder.feed(body)) == "Half an answer"
    with pytest.raises(HailuoServerError) as info:
        decoder.close()
    assert info.value.partial_text == "Half an answer"
    assert is_transient_session_error(info.value)


def test_raise_pending_raises_the_held_error_once() -> None:
    decoder = AgentStreamDecoder(PROMPT, chat_id="s1")
    decoder.raise_pending()  # nothing held yet
    body = sse(chunk("Half an answer"), message("rpc timeout", finish_reason="error"))
    assert texts(decoder.feed(body)) == "Half an answer"
    with pytest.raises(HailuoServerError) as info:
        decoder.raise_pending()
    assert info.value.partial_text == "Half an answer"
    assert info.value.chat_id == "s1"
    decoder.raise_pending()  # raised once only


def emulator_turn() -> bytes:
    """The order the service (and the emulator) use: finish chunk first, then the usage."""
    return (
        sse(
            {
                "type": 6,
                "msg_id": "m7",
                "agent_message_chunk": chunk("Hi there.")["agent_message_chunk"],
            }
        )
        + sse(chunk("Hi there."))
        + sse(chunk(finish=True, finish_reason="stop"))
        + sse(
            message(
                "Hi there.",
                msg_id="m7",
                finish_reason="stop",
                usage={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
            )
        )
    )


@pytest.mark.parametrize("step", [None, 1, 7])
def test_usage_after_the_finish_chunk_comes_from_the_trailer(step: int | None) -> None:
    decoder = AgentStreamDecoder(PROMPT, chat_id="s1")
    body = emulator_turn()
    pieces = [body] if step is None else [body[i : i + step] for i in range(0, len(body), step)]
    events: list[StreamEvent] = []
    for piece in pieces:
        events += decoder.feed(piece)
    assert decoder.finished
    # the frame-level msg_id is taken with the first text; no usage before the trailer
    assert events == [MessageId("m7"), "Hi there.", FinishReason("stop")]
    assert decoder.trailer() == [Usage(3, 4, 7)]
    assert decoder.trailer() == []  # handed out once
    assert decoder.close() == []


def test_trailer_adds_no_text_and_ignores_errors() -> None:
    decoder = AgentStreamDecoder(PROMPT)
    decoder.feed(sse(chunk("Done."), chunk(finish=True)))
    late = decoder.feed(
        sse(
            message("Done. And more text", msg_id="m9"),
            message("late failure", finish_reason="error", code=2056),
            chunk("extra"),
        )
    )
    assert late == []
    assert decoder.text == "Done."
    assert decoder.trailer() == [MessageId("m9")]


def test_short_answer_re_sent_before_finish_is_not_doubled() -> None:
    body = sse(chunk("Hi there"), chunk("."), chunk("Hi there."), chunk(finish=True))
    assert texts(decode(body)) == "Hi there."


def test_short_repeat_followed_by_more_text_is_kept() -> None:
    body = sse(chunk("ha"), chunk("ha"), chunk("!"), chunk(finish=True))
    assert texts(decode(body)) == "haha!"


def test_text_in_the_finish_chunk_is_not_used() -> None:
    """The production client finishes the message at ``finish`` and uses none of that chunk."""
    call = {"tool_call_id": "t9", "tool_name": "search", "tool_call_args": "{}", "status": 1}
    body = sse(
        chunk("Hello", thinking="Greet."),
        chunk(" world", thinking=" More.", finish=True, tool_calls=[call]),
    )
    decoder = AgentStreamDecoder(PROMPT, chat_id="s1")
    events = decoder.feed(body)
    assert texts(events) == "Hello"
    assert "".join(e.text for e in events if isinstance(e, Reasoning)) == "Greet."
    assert events[-1] == FinishReason("stop")
    assert decoder.text == "Hello"
    assert decoder.tool_calls == {}


def test_a_short_answer_repeated_in_the_finish_chunk_is_not_doubled() -> None:
    body = sse(chunk("ha"), chunk("ha", finish=True))
    assert texts(decode(body)) == "ha"
