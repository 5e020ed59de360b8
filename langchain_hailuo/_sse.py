"""Line splitting for streamed answers, safe for lines of any length.

aiohttp's ``readline`` refuses lines longer than twice its read buffer, and a v4 answer
repeats the whole text on every ``data:`` line, so a long answer breaks it. This buffer
splits bytes into lines itself, in time linear in the bytes received: each byte is
scanned for a newline once, and a partial line is copied only when a line before it ends
in the same chunk.
"""

from __future__ import annotations

__all__ = ["LineBuffer"]


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
