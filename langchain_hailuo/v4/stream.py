"""Decoder of the v4 answer stream: response bytes in, shared stream events out.

The body is SSE-like text: an ``event: <name>`` line, a ``data: <one-line JSON>`` line and
blank lines between events. Each JSON has an envelope ``{"type", "statusInfo", "data"}``:

* ``send_result`` (type 1): ``data.sendResult`` names the chat (``chatID``, ``chatTitle``);
* ``message_result`` (type 2): ``data.messageResult.content`` is the **whole answer so
  far**; ``isEnd == 0`` marks the final snapshot (the reverse of what the name suggests);
* ``close_chunk`` (type 8): the end of the stream;
* anything else (``follow_up_question_result``, type 3…) is ignored.

The decoder turns cumulative snapshots into deltas. A snapshot that ends in U+FFFD (a
multi-byte character the server cut in half) is held back from the first trailing U+FFFD
until a later snapshot completes it. A ``statusInfo.code`` other than 0 (except on type 3
and type 8, which carry codes that are not errors) raises :class:`HailuoServerError`.

Deltas and divergence: text once emitted cannot be taken back. Each snapshot contributes
exactly the part beyond what was already emitted (``snapshot[len(emitted):]``), so text is
never duplicated, and a snapshot that skipped ahead (after a malformed line was dropped)
loses nothing. Should a snapshot disagree with text already emitted (the server rewrote
earlier text), the emitted text stands, the new part is still emitted from the same
offset, and a debug line is logged. A snapshot shorter than what was emitted adds nothing.

The decoder is pure (no I/O) and linear in the bytes received: each byte is scanned for
line breaks once, parsed as JSON once, and each snapshot costs only its new part beyond
the parse.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from langchain_hailuo._sse import (
    DEFAULT_MAX_LINE_BYTES,
    ErrorAfterEvents,
    LineBuffer,
    as_id,
    loads_json,
)
from langchain_hailuo.errors import HailuoError, HailuoServerError, HailuoStreamInterruptedError
from langchain_hailuo.types import (
    ChatStarted,
    FinishReason,
    MessageId,
    StreamEvent,
    TitleGeneration,
)

__all__ = ["V4StreamDecoder"]

logger = logging.getLogger(__name__)

REPLACEMENT_CHAR = "\ufffd"

EVENT_SEND_RESULT = "send_result"
EVENT_MESSAGE_RESULT = "message_result"
EVENT_CLOSE_CHUNK = "close_chunk"

TYPE_SEND_RESULT = 1
TYPE_MESSAGE_RESULT = 2
TYPE_NOT_AN_ERROR = 3  # carries non-zero codes that are not failures
TYPE_CLOSE = 8

_EVENT_BY_TYPE = {
    TYPE_SEND_RESULT: EVENT_SEND_RESULT,
    TYPE_MESSAGE_RESULT: EVENT_MESSAGE_RESULT,
    TYPE_CLOSE: EVENT_CLOSE_CHUNK,
}

# How much of the emitted text is kept to notice a snapshot that rewrote earlier text.
_CHECK_WINDOW = 64


def _field(line: bytes, name: bytes) -> str | None:
    """The value of an SSE field line (``name:value``, one optional space), else ``None``."""
    if not line.startswith(name):
        return None
    start = len(name) + (line[len(name) : len(name) + 1] == b" ")
    return str(memoryview(line)[start:], "utf-8", "replace")  # a snapshot line is not copied


def _is_final(is_end: Any) -> bool:
    """Whether ``messageResult.isEnd`` marks the last snapshot (``0`` does)."""
    return not isinstance(is_end, bool) and is_end in {0, "0"}


def _dict_at(obj: Any, *keys: str) -> dict[str, Any]:
    """``obj[k1][k2]…`` when every step is a dict, else an empty dict."""
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj if isinstance(obj, dict) else {}


class V4StreamDecoder(ErrorAfterEvents):
    """Turns the bytes of a v4 answer, cut anywhere, into stream events.

    Example:
        ```python
        decoder = V4StreamDecoder()
        for chunk in body_chunks:
            for event in decoder.feed(chunk):
                handle(event)
        decoder.close()  # raises HailuoStreamInterruptedError if the answer was cut short
        ```

    Attributes:
        finished: ``True`` once :class:`FinishReason` was emitted; later input is ignored.
        chat_id: The server's chat id, once known.
        msg_id: The answer's message id, once known.
        title: The chat title, once sent.
    """

    def __init__(
        self,
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        """Create a decoder for one response body."""
        self._redact = redact
        self._lines = LineBuffer(max_line_bytes)
        self._event: str | None = None
        self._parts: list[str] = []
        self._emitted = 0  # characters of answer text emitted so far
        self._recent = ""  # the last _CHECK_WINDOW emitted characters
        self._pending = ""  # the newest snapshot, kept to flush held-back text at the end
        self.finished = False
        self.chat_id: str | None = None
        self.msg_id: str | None = None
        self.title: str | None = None

    # ------------------------------------------------------------------ public interface

    @property
    def text(self) -> str:
        """The answer text emitted so far."""
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    @property
    def reasoning(self) -> str:
        """Reasoning text: the v4 protocol has none, so always empty."""
        return ""

    def feed(self, data: bytes) -> list[StreamEvent]:
        """Decode the next chunk of the body."""
        # The events the chunk completed, in order.
        self.raise_pending()
        events: list[StreamEvent] = []
        if self.finished:
            return events  # whatever follows the end is ignored (and not buffered)
        try:
            for line in self._lines.feed(data):
                self._line(line, events)
                if self.finished:
                    break
        except HailuoError as exc:
            self._hold_error(exc, events)  # hand out what came before the error first
        return events

    def close(self) -> list[StreamEvent]:
        """Signal the end of the body and decode its unterminated last line."""
        self.raise_pending()
        events: list[StreamEvent] = []
        rest = self._lines.flush()
        if rest is not None and not self.finished:
            self._line(rest, events)
        if not self.finished:
            got = f"after {self._emitted} characters" if self._emitted else "before any text"
            raise HailuoStreamInterruptedError(
                f"The answer stream ended {got}, before the answer was complete. "
                "The message was not sent again (that would post it twice); "
                "partial_text holds what arrived.",
                partial_text=self.text,
                chat_id=self.chat_id,
            )
        return events

    # ------------------------------------------------------------------ lines and envelopes

    def _line(self, line: bytes, events: list[StreamEvent]) -> None:
        """Handle one complete line."""
        if not line:
            self._event = None  # a blank line ends the event
            return
        payload = _field(line, b"data:")
        if payload is None:
            name = _field(line, b"event:")
            if name is not None:
                self._event = name.strip()
                if self._event == EVENT_CLOSE_CHUNK:
                    self._finish(events)
            return  # comments, ids and other fields carry nothing for us
        try:
            envelope = loads_json(payload)
        except ValueError as exc:
            logger.warning(
                "skipping a malformed data line (%d characters, %s); the next snapshot repairs it",
                len(payload),
                exc,
            )
            return
        if isinstance(envelope, dict):
            self._envelope(envelope, events)

    def _envelope(self, envelope: dict[str, Any], events: list[StreamEvent]) -> None:
        """Handle one ``data:`` JSON object."""
        kind = envelope.get("type")
        self._check_status(envelope, kind)
        name = self._event or _EVENT_BY_TYPE.get(kind if isinstance(kind, int) else -1)
        if kind == TYPE_CLOSE or name == EVENT_CLOSE_CHUNK:
            self._finish(events)
        elif name == EVENT_SEND_RESULT:
            self._send_result(_dict_at(envelope, "data", "sendResult"), events)
        elif name == EVENT_MESSAGE_RESULT:
            self._message_result(_dict_at(envelope, "data", "messageResult"), events)

    def _check_status(self, envelope: dict[str, Any], kind: Any) -> None:
        """Raise the stream's own error report, if it holds one."""
        status = envelope.get("statusInfo")
        if not isinstance(status, dict) or kind in {TYPE_NOT_AN_ERROR, TYPE_CLOSE}:
            return
        code = status.get("code")
        if code in {None, 0, "0"} or isinstance(code, bool):
            return
        server_message = str(status.get("message") or "")
        detail = f": {server_message}" if server_message else ""
        raise HailuoServerError(
            f"Hailuo reported error {code} in the answer stream{detail}",
            code=code,
            server_message=server_message,
            partial_text=self.text,
            chat_id=self.chat_id,
        )

    def _send_result(self, result: dict[str, Any], events: list[StreamEvent]) -> None:
        """The server accepted the message: title and chat id."""
        title = result.get("chatTitle")
        if isinstance(title, str) and title.strip() and title != self.title:
            self.title = title
            events.append(TitleGeneration(self._redact(title) if self._redact else title))
        self._chat_id(result.get("chatID"), events)

    def _message_result(self, result: dict[str, Any], events: list[StreamEvent]) -> None:
        """A cumulative answer snapshot."""
        self._chat_id(result.get("chatID"), events)
        raw_id = result.get("msgID")
        msg_id = self.msg_id if raw_id == self.msg_id else as_id(raw_id)
        if msg_id and msg_id != self.msg_id:
            self.msg_id = msg_id
            events.append(MessageId(msg_id))
        content = result.get("content")
        if isinstance(content, str):
            self._pending = content
            final = _is_final(result.get("isEnd"))
            self._emit_beyond(content if final else content.rstrip(REPLACEMENT_CHAR), events)
            if final:
                self._finish(events)

    def _chat_id(self, value: Any, events: list[StreamEvent]) -> None:
        """Record the chat id and announce it the first time (or when it changes)."""
        if value == self.chat_id and value is not None:
            return  # the same id again, as every snapshot repeats it
        chat_id = as_id(value)
        if chat_id and chat_id != self.chat_id:
            self.chat_id = chat_id
            events.append(ChatStarted(chat_id))

    # ------------------------------------------------------------------ text

    def _emit_beyond(self, snapshot: str, events: list[StreamEvent]) -> None:
        """Emit the part of ``snapshot`` beyond the text already emitted (see module doc)."""
        start = self._emitted
        if len(snapshot) <= start:
            return
        window = self._recent
        if window and snapshot[start - len(window) : start] != window:
            logger.debug(
                "an answer snapshot rewrote text already emitted; continuing at offset %d", start
            )
        delta = snapshot[start:]
        self._parts.append(delta)
        self._emitted = len(snapshot)
        self._recent = (window + delta)[-_CHECK_WINDOW:]
        events.append(delta)

    def _finish(self, events: list[StreamEvent]) -> None:
        """End the answer: flush held-back text, emit :class:`FinishReason` once."""
        if self.finished:
            return
        self._emit_beyond(self._pending, events)
        self._pending = ""
        self.finished = True
        events.append(FinishReason("stop"))
