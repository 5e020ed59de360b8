"""The v4 stream decoder: framing, cumulative deltas, hold-back, endings and errors."""

from __future__ import annotations

import itertools
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from langchain_hailuo.errors import HailuoServerError, HailuoStreamInterruptedError
from langchain_hailuo.types import (
    ChatStarted,
    FinishReason,
    MessageId,
    StreamEvent,
    TitleGeneration,
)
from langchain_hailuo.v4.stream import V4StreamDecoder
from tests.unit_tests.v4.frames import (
    CHAT,
    CLOSE,
    MSG,
    OK,
    error,
    follow_up,
    frame,
    message,
    send_result,
)


def decode(*chunks: bytes) -> tuple[list[StreamEvent], V4StreamDecoder]:
    decoder = V4StreamDecoder()
    events: list[StreamEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    events += decoder.close()
    return events, decoder


def deltas(events: list[StreamEvent]) -> list[str]:
    return [e for e in events if isinstance(e, str)]


REALISTIC = (
    send_result()
    + message("Hel")
    + message("Hello")
    + message("Hello, wor")
    + message("Hello, world! 你好")
    + message("Hello, world! 你好 👋", is_end=0)
    + follow_up()
    + CLOSE
)


# --------------------------------------------------------------------------- happy paths


def test_realistic_stream() -> None:
    events, decoder = decode(REALISTIC)
    assert events == [
        TitleGeneration("Greetings"),
        ChatStarted(CHAT),
        MessageId(MSG),
        "Hel",
        "lo",
        ", wor",
        "ld! 你好",
        " 👋",
        FinishReason("stop"),
    ]
    assert decoder.finished
    assert decoder.text == "Hello, world! 你好 👋"
    assert decoder.reasoning == ""
    assert (decoder.chat_id, decoder.msg_id, decoder.title) == (CHAT, MSG, "Greetings")


def test_byte_by_byte_gives_the_same_events() -> None:
    whole, _ = decode(REALISTIC)
    split, _ = decode(*(REALISTIC[i : i + 1] for i in range(len(REALISTIC))))
    assert split == whole


def test_crlf_lines() -> None:
    body = frame(
        "message_result",
        {"type": 2, "statusInfo": OK, "data": {"messageResult": {"content": "ok", "isEnd": 0}}},
        crlf=True,
    )
    events, _ = decode(body)
    assert events == ["ok", FinishReason("stop")]


def test_data_without_event_lines_uses_the_type() -> None:
    body = (
        frame(None, {"type": 1, "statusInfo": OK, "data": {"sendResult": {"chatID": CHAT}}})
        + message("hi", event=None)
        + frame(None, {"type": 8, "statusInfo": OK})
    )
    events, _ = decode(body)
    assert events == [ChatStarted(CHAT), MessageId(MSG), "hi", FinishReason()]


def test_unterminated_last_line_is_decoded_on_close() -> None:
    body = send_result(title=None) + message("done", is_end=0).rstrip(b"\n")
    decoder = V4StreamDecoder()
    events = decoder.feed(body)
    assert "done" not in events
    assert decoder.close() == [MessageId(MSG), "done", FinishReason()]


def test_ids_may_be_numbers_and_zero_is_no_id() -> None:
    body = frame(
        "send_result", {"type": 1, "statusInfo": OK, "data": {"sendResult": {"chatID": 0}}}
    ) + frame(
        "message_result",
        {
            "type": 2,
            "statusInfo": OK,
            "data": {"messageResult": {"content": "x", "chatID": 12, "msgID": 34, "isEnd": 0}},
        },
    )
    events, decoder = decode(body)
    assert events == [ChatStarted("12"), MessageId("34"), "x", FinishReason()]
    assert decoder.chat_id == "12"


# --------------------------------------------------------------------------- U+FFFD hold-back


def test_trailing_replacement_char_is_held_back() -> None:
    events, decoder = decode(
        message("Hi \ufffd"), message("Hi 你\ufffd\ufffd"), message("Hi 你好", is_end=0)
    )
    assert deltas(events) == ["Hi ", "你", "好"]
    assert decoder.text == "Hi 你好"


def test_replacement_char_inside_the_text_is_kept() -> None:
    events, _ = decode(message("a\ufffdb"), message("a\ufffdbc", is_end=0))
    assert deltas(events) == ["a\ufffdb", "c"]


def test_final_snapshot_is_emitted_whole() -> None:
    events, _ = decode(message("end\ufffd"), message("end\ufffd", is_end=0))
    assert deltas(events) == ["end", "\ufffd"]


def test_close_chunk_flushes_held_back_text() -> None:
    events, decoder = decode(message("tail\ufffd"), CLOSE)
    assert deltas(events) == ["tail", "\ufffd"]
    assert events[-1] == FinishReason()
    assert decoder.finished


# --------------------------------------------------------------------------- endings


def test_is_end_zero_finishes_and_everything_after_is_ignored() -> None:
    decoder = V4StreamDecoder()
    events = decoder.feed(message("done", is_end=0) + message("done and more") + error(1, "x"))
    assert deltas(events) == ["done"]
    assert events[-1] == FinishReason()
    assert decoder.feed(message("later") + CLOSE) == []
    assert decoder.close() == []
    assert decoder.text == "done"


def test_is_end_one_does_not_finish() -> None:
    decoder = V4StreamDecoder()
    decoder.feed(message("part", is_end=1))
    assert not decoder.finished


def test_close_chunk_event_line_alone_finishes() -> None:
    events, _ = decode(message("hi") + b"event: close_chunk\n")
    assert events[-1] == FinishReason()
    assert [e for e in events if isinstance(e, FinishReason)] == [FinishReason()]


def test_type_8_finishes_whatever_the_event_name() -> None:
    events, _ = decode(message("hi") + frame("message_result", {"type": 8}))
    assert deltas(events) == ["hi"]
    assert events[-1] == FinishReason()


def test_finish_reason_is_emitted_once() -> None:
    events, _ = decode(message("a", is_end=0) + CLOSE + frame(None, {"type": 8}))
    assert sum(isinstance(e, FinishReason) for e in events) == 1


def test_follow_up_content_is_not_answer_text() -> None:
    events, _ = decode(message("answer") + follow_up("Do you want more?") + CLOSE)
    assert deltas(events) == ["answer"]


def test_unknown_events_and_fields_are_ignored() -> None:
    body = (
        b": comment\nid: 7\nretry: 100\n\n"
        + frame("heartbeat", {"type": 99, "statusInfo": OK})
        + frame("message_result", {"type": 2, "statusInfo": OK, "data": "not a dict"})
        + frame(None, {"type": 5})
        + b"data: [1, 2]\n\n"
        + message("ok", is_end=0)
    )
    events, _ = decode(body)
    assert deltas(events) == ["ok"]


# --------------------------------------------------------------------------- errors


def test_in_stream_error_raises_with_partial_text() -> None:
    decoder = V4StreamDecoder()
    decoder.feed(send_result() + message("Partial ans"))
    with pytest.raises(HailuoServerError) as info:
        decoder.feed(error(1200026, "The service is busy"))
    err = info.value
    assert err.code == 1200026
    assert err.server_message == "The service is busy"
    assert err.partial_text == "Partial ans"
    assert err.chat_id == CHAT
    assert "1200026" in str(err)
    assert "The service is busy" in str(err)
    assert not err.retryable


def test_events_before_an_error_in_the_same_chunk_are_handed_out_first() -> None:
    decoder = V4StreamDecoder()
    events = decoder.feed(send_result() + message("Partial ans") + error(1500001, "busy"))
    assert deltas(events) == ["Partial ans"]
    with pytest.raises(HailuoServerError) as info:
        decoder.raise_pending()
    assert info.value.code == 1500001
    assert info.value.partial_text == "Partial ans"
    decoder.raise_pending()  # raised once only
    # Without raise_pending, the next feed (or close) raises it.
    again = V4StreamDecoder()
    again.feed(send_result() + message("Part") + error(1500001, "busy"))
    with pytest.raises(HailuoServerError):
        again.close()


def test_error_before_any_text() -> None:
    with pytest.raises(HailuoServerError) as info:
        decode(error(1000, "token invalid", kind=1))
    assert info.value.partial_text == ""
    assert info.value.code == 1000


def test_type_3_with_a_code_is_tolerated() -> None:
    events, _ = decode(
        frame(None, {"type": 3, "statusInfo": {"code": 77, "message": "note"}}),
        message("fine", is_end=0),
    )
    assert deltas(events) == ["fine"]


def test_type_8_with_a_code_is_not_an_error() -> None:
    events, _ = decode(
        message("fine"), frame("close_chunk", {"type": 8, "statusInfo": {"code": 3}})
    )
    assert events[-1] == FinishReason()


@pytest.mark.parametrize("code", [0, "0", None])
def test_success_codes(code: object) -> None:
    body = frame(
        "message_result",
        {
            "type": 2,
            "statusInfo": {"code": code},
            "data": {"messageResult": {"content": "y", "isEnd": 0}},
        },
    )
    assert deltas(decode(body)[0]) == ["y"]


def test_malformed_data_line_is_skipped_and_repaired(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="langchain_hailuo.v4"):
        events, decoder = decode(
            message("One"),
            b'event: message_result\ndata: {"type":2,"data":{"messageResult":{"content":"One t\n\n',
            message("One two three", is_end=0),
        )
    assert deltas(events) == ["One", " two three"]
    assert decoder.text == "One two three"
    assert any("malformed data line" in r.getMessage() for r in caplog.records)
    assert all(r.name == "langchain_hailuo.v4.stream" for r in caplog.records)


def test_divergent_snapshot_never_duplicates_or_loses() -> None:
    # The server rewrote text already emitted: the emitted text stands and only the part
    # beyond it is added; a shorter snapshot adds nothing.
    events, decoder = decode(
        message("Hello"), message("Jello world"), message("Jel"), message("Jello world!", is_end=0)
    )
    assert deltas(events) == ["Hello", " world", "!"]
    assert decoder.text == "Hello world!"


def test_truncated_body_raises_interrupted_with_partial_text() -> None:
    decoder = V4StreamDecoder()
    decoder.feed(send_result() + message("Half an ans") + b"event: message_result\ndata: {")
    with pytest.raises(HailuoStreamInterruptedError) as info:
        decoder.close()
    assert info.value.partial_text == "Half an ans"
    assert info.value.chat_id == CHAT
    assert "11 characters" in str(info.value)


def test_empty_body_raises_interrupted() -> None:
    with pytest.raises(HailuoStreamInterruptedError, match="before any text"):
        decode(b"")


# --------------------------------------------------------------------------- size and chunking


def test_four_mib_data_line() -> None:
    big = "字" * (4 * 1024 * 1024 // 3) + "x" * 100
    body = send_result() + message(big[:1000]) + message(big, is_end=0) + CLOSE
    assert len(body) > 4 * 1024 * 1024
    decoder = V4StreamDecoder()
    events: list[StreamEvent] = []
    for i in range(0, len(body), 65536):
        events += decoder.feed(body[i : i + 65536])
    events += decoder.close()
    assert "".join(deltas(events)) == big
    assert decoder.text == big
    assert events[-1] == FinishReason()


def test_many_snapshots_are_cheap() -> None:
    # 3000 cumulative snapshots of a growing answer: only the new part is emitted each time.
    words = [f"w{i} " for i in range(3000)]
    body = b"".join(message("".join(words[: i + 1])) for i in range(len(words)))
    events, decoder = decode(body, message("".join(words), is_end=0))
    assert deltas(events) == words
    assert decoder.text == "".join(words)


@st.composite
def bodies_and_cuts(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    texts = draw(
        st.lists(
            st.text(alphabet=st.characters(codec="utf-8"), max_size=8),
            min_size=1,
            max_size=6,
        )
    )
    snapshots = []
    acc = ""
    for piece in texts:
        acc += piece
        snapshots.append(acc)
    body = send_result() + b"".join(message(s) for s in snapshots)
    if draw(st.booleans()):
        body += message(acc, is_end=0) + follow_up()
    if draw(st.booleans()):
        body += CLOSE
    cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=12)))
    return body, cuts


def _outcome(chunks: list[bytes]) -> tuple[list[StreamEvent], str, str | None]:
    decoder = V4StreamDecoder()
    events: list[StreamEvent] = []
    try:
        for chunk in chunks:
            events += decoder.feed(chunk)
        events += decoder.close()
    except HailuoStreamInterruptedError as exc:
        return events, f"interrupted:{exc.partial_text}", exc.chat_id
    return events, "ok", decoder.chat_id


@settings(max_examples=200, deadline=None)
@given(bodies_and_cuts())
def test_any_rechunking_gives_the_same_events(case: tuple[bytes, list[int]]) -> None:
    body, cuts = case
    bounds = [0, *cuts, len(body)]
    chunks = [body[a:b] for a, b in itertools.pairwise(bounds)]
    assert _outcome(chunks) == _outcome([body])
