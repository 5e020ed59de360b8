"""Line splitting for streamed answers, linear in the bytes and bounded in memory.

aiohttp's ``readline`` refuses lines longer than twice its read buffer, and a v4 answer
repeats the whole text on every ``data:`` line, so a long answer breaks it. This buffer
splits bytes into lines itself, in time linear in the bytes received: each byte is
scanned for a line end once, and a partial line is copied only when a line before it ends
in the same chunk. Lines end in LF, CRLF or a bare CR (as the SSE specification allows);
a line longer than the limit raises :class:`HailuoResponseTooLargeError` as soon as the
limit is passed, so a server that never ends a line cannot fill the memory.

:func:`loads_json` parses one line's JSON, turning nesting too deep for the parser into a
typed error instead of a ``RecursionError``.

:class:`ErrorAfterEvents` is the decoders' shared rule for an error frame that follows
answer events in the same chunk: the events are handed out first, the error right after.
"""

from __future__ import annotations

import json
from collections.abc import Sized
from typing import Any

from langchain_hailuo.errors import HailuoError, HailuoProtocolError, HailuoResponseTooLargeError

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "ErrorAfterEvents",
    "LineBuffer",
    "as_id",
    "line_too_long",
    "loads_json",
]

DEFAULT_MAX_LINE_BYTES = 32 * 1024 * 1024
"""Longest stream line / frame / JSON body accepted by default, in bytes (a v4 line repeats
the whole answer so far, JSON-escaped: 32 MiB holds millions of characters of answer)."""

_CR = 0x0D
_LF = 0x0A
_JSON = json.JSONDecoder()


def as_id(value: Any) -> str | None:
    """A chat / message / session id as text (ids may come as numbers); ``None`` for none."""
    # The id, stripped; ``None`` for ``None``, a boolean, an empty or blank string and ``0``.
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text if text and text != "0" else None


def line_too_long(limit: int) -> HailuoResponseTooLargeError:
    """The error for a line or frame longer than ``limit`` bytes."""
    # The typed error, saying which setting raises the limit.
    return HailuoResponseTooLargeError(
        f"The answer stream sent a line or frame longer than max_line_bytes ({limit} bytes) "
        "and it was cut off there. The server is misbehaving or is not the service (check "
        "base_url); if answers really are that long, raise max_line_bytes in provider_settings."
    )


def loads_json(text: str | bytes) -> Any:
    """Parse JSON, with nesting too deep for the parser as a typed error."""
    try:
        return _JSON.decode(text) if isinstance(text, str) else json.loads(text)
    except RecursionError:
        raise HailuoProtocolError(
            "The server sent JSON nested too deeply to parse; it was refused. The server is "
            "misbehaving or is not the service (check base_url)."
        ) from None


class ErrorAfterEvents:
    """Decoder mixin: an error decoded after events of the same chunk waits for them."""

    # ``feed`` returns a chunk's events as a list, so an error raised while decoding the chunk would
    # lose the events before it. The decoder keeps such an error (:meth:`_hold_error`); the reader
    # calls :meth:`raise_pending` as soon as it has handed out the chunk's events, so the error
    # arrives at once rather than with the next chunk (which a silent server may never send).
    # ``feed`` and ``close`` call :meth:`raise_pending` first too, for readers that do not.

    _held_error: HailuoError | None = None

    def _hold_error(self, error: HailuoError, events: Sized) -> None:
        """Keep ``error`` for :meth:`raise_pending` when ``events`` came before it."""
        if not events:
            raise error
        self._held_error = error

    def raise_pending(self) -> None:
        """Raise the error held back behind events that ``feed`` handed out first (once)."""
        if self._held_error is not None:
            error, self._held_error = self._held_error, None
            raise error


class LineBuffer:
    """Collects body chunks and hands out complete lines (without the line end)."""

    __slots__ = ("_buf", "_limit", "_scan", "_skip_lf")

    def __init__(self, limit: int | None = DEFAULT_MAX_LINE_BYTES) -> None:
        """Create an empty buffer (see the class docstring)."""
        self._buf = bytearray()
        self._scan = 0  # bytes before this offset hold no line end
        self._limit = limit
        self._skip_lf = False  # the last chunk ended in CR: an LF first in the next one is its end

    def feed(self, data: bytes) -> list[bytes]:
        """Add a chunk and return the lines it completed."""
        # Complete lines, in order, with the line end (LF, CRLF or CR) removed.
        if self._skip_lf and data:
            self._skip_lf = False
            if data[0] == _LF:
                data = data[1:]
        buf = self._buf
        buf += data
        lines: list[bytes] = []
        start = 0
        limit = self._limit
        pos = self._scan
        size = len(buf)
        with memoryview(buf) as view:  # a line is copied once (a slice of buf would copy twice)
            while True:
                # memchr-speed scans: the LF, then a CR only up to it (a CR is rare in bodies).
                lf = buf.find(b"\n", pos)
                cr = buf.find(b"\r", pos, size if lf < 0 else lf)
                if cr >= 0:
                    end, pos = cr, cr + 2 if cr + 1 < size and buf[cr + 1] == _LF else cr + 1
                elif lf >= 0:
                    end, pos = lf, lf + 1
                else:
                    break
                if limit is not None and end - start > limit:
                    raise line_too_long(limit)
                lines.append(bytes(view[start:end]))
                start = pos
        if start:
            self._skip_lf = start == len(buf) and buf[start - 1] == _CR  # its LF may be next
            del buf[:start]
        size = len(buf)
        if limit is not None and size > limit:
            raise line_too_long(limit)
        self._scan = size
        return lines

    def flush(self) -> bytes | None:
        """Return what is left after the last line end (the body's unterminated last line)."""
        # The remaining bytes, or ``None`` when nothing is left.
        if not self._buf:
            return None
        rest = bytes(self._buf)
        self._buf.clear()
        self._scan = 0
        return rest

    def __len__(self) -> int:
        """Bytes held back waiting for a line end."""
        return len(self._buf)
