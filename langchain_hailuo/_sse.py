"""Line splitting for streamed answers, safe for lines of any length.

aiohttp's ``readline`` refuses lines longer than twice its read buffer, and a v4 answer
repeats the whole text on every ``data:`` line, so a long answer breaks it. This buffer
splits bytes into lines itself, in time linear in the bytes received: each byte is
scanned for a newline once, and a partial line is copied only when a line before it ends
in the same chunk.

:class:`ErrorAfterEvents` is the decoders' shared rule for an error frame that follows
answer events in the same chunk: the events are handed out first, the error right after.
"""

from __future__ import annotations

from collections.abc import Sized

from langchain_hailuo.errors import HailuoError

__all__ = ["ErrorAfterEvents", "LineBuffer"]


class ErrorAfterEvents:
    """Decoder mixin: an error decoded after events of the same chunk waits for them.

    ``feed`` returns a chunk's events as a list, so an error raised while decoding the
    chunk would lose the events before it. The decoder keeps such an error
    (:meth:`_hold_error`); the reader calls :meth:`raise_pending` as soon as it has
    handed out the chunk's events, so the error arrives at once rather than with the
    next chunk (which a silent server may never send). ``feed`` and ``close`` call
    :meth:`raise_pending` first too, for readers that do not.
    """

    _held_error: HailuoError | None = None

    def _hold_error(self, error: HailuoError, events: Sized) -> None:
        """Keep ``error`` for :meth:`raise_pending` when ``events`` came before it.

        Args:
            error: The error decoded from the chunk.
            events: The events decoded from the chunk before it.

        Raises:
            HailuoError: ``error`` itself, at once, when no event came before it.
        """
        if not events:
            raise error
        self._held_error = error

    def raise_pending(self) -> None:
        """Raise the error held back behind events that ``feed`` handed out first (once).

        Raises:
            HailuoError: The error the last chunk held after its events.
        """
        if self._held_error is not None:
            error, self._held_error = self._held_error, None
            raise error


class LineBuffer:
    """Collects body chunks and hands out complete lines (without the line break)."""

    __slots__ = ("_buf", "_scan")

    def __init__(self) -> None:
        """Create an empty buffer."""
        self._buf = bytearray()
        self._scan = 0  # bytes before this offset hold no newline

    def feed(self, data: bytes) -> list[bytes]:
        """Add a chunk and return the lines it completed.

        Args:
            data: The next chunk of the body, cut anywhere.

        Returns:
            Complete lines, in order, with the line break (LF or CRLF) removed.
        """
        buf = self._buf
        buf += data
        lines: list[bytes] = []
        start = 0
        pos = buf.find(b"\n", self._scan)
        while pos != -1:
            end = pos - 1 if pos > start and buf[pos - 1] == 0x0D else pos  # noqa: PLR2004 - CR
            lines.append(bytes(buf[start:end]))
            start = pos + 1
            pos = buf.find(b"\n", start)
        if start:
            del buf[:start]
        self._scan = len(buf)
        return lines

    def flush(self) -> bytes | None:
        """Return what is left after the last newline (the body's unterminated last line).

        Returns:
            The remaining bytes, or ``None`` when nothing is left.
        """
        if not self._buf:
            return None
        rest = bytes(self._buf)
        self._buf.clear()
        self._scan = 0
        return rest

    def __len__(self) -> int:
        """Bytes held back waiting for a newline."""
        return len(self._buf)
