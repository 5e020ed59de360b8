"""Deterministic answers and recorded-style v4 answer bodies for the benchmarks.

The text mixes English, Chinese, Russian, Arabic, accented Latin, Markdown, quotes and line
breaks (escaped in JSON), and on request emoji (4-byte UTF-8), so JSON parsing and UTF-8
decoding do the work they do on a real multilingual answer.
"""

from __future__ import annotations

import json

__all__ = ["answer_text", "chunked", "data_lines", "longest_line", "v4_body"]

_WORDS = (
    "The",
    "tea",
    "river",
    "茶",
    "山川",
    "你好，世界。",
    "Привет,",
    "мир",
    "مرحبا",
    "naïve",
    "café",
    "Größe",
    "**bold**",
    "`code()`",
    '"quoted"',
    "and",
    "of",
    "the",
    "light\n",
    "- item\n",
    "数据",
    "1,024",
)
_EMOJI = ("🍵", "🌊", "⛰️")


def answer_text(chars: int, *, emoji: bool = False) -> str:
    """A multilingual answer of exactly ``chars`` characters (the same every time).

    Args:
        chars: The length in characters.
        emoji: Mix in emoji (4-byte UTF-8, astral characters).

    Returns:
        The text.
    """
    words = _WORDS + _EMOJI if emoji else _WORDS
    out: list[str] = []
    size = 0
    i = 0
    while size < chars:
        word = words[(i * 7 + i // 5) % len(words)]
        out.append(word)
        size += len(word) + 1
        i += 1
    return " ".join(out)[:chars]


def _frame(event: str, payload: dict[str, object]) -> bytes:
    """One ``event:`` / ``data:`` frame with its blank line, as the service writes it."""
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {data}\n\n".encode()


def _snapshot(text: str, chat_id: str, *, final: bool) -> bytes:
    """A cumulative ``message_result`` frame (``isEnd`` 0 marks the last one)."""
    result: dict[str, object] = {
        "content": text,
        "chatID": chat_id,
        "msgID": "242830598016167941",
        "isEnd": 0 if final else 1,
        "extra": {},
    }
    envelope = {
        "type": 2,
        "statusInfo": {"code": 0, "message": "Success"},
        "data": {"messageResult": result},
    }
    return _frame("message_result", envelope)


def v4_body(*, text: str, snapshots: int = 2000, chat_id: str = "242830597915504644") -> bytes:
    """A whole v4 answer body: send_result, cumulative snapshots, the final one, close_chunk.

    Args:
        text: The whole answer.
        snapshots: How many ``message_result`` frames (the last one has ``isEnd`` 0).
        chat_id: The chat id the frames carry.

    Returns:
        The body bytes.
    """
    status = {"code": 0, "message": "Success"}
    send_result = {
        "chatID": chat_id,
        "chatTitle": text[:30],
        "userMsgID": "242830597999390725",
        "systemMsgID": "242830598016167941",
    }
    parts = [
        _frame(
            "send_result", {"type": 1, "statusInfo": status, "data": {"sendResult": send_result}}
        )
    ]
    parts.extend(
        _snapshot(text[: len(text) * n // snapshots], chat_id, final=n == snapshots)
        for n in range(1, snapshots + 1)
    )
    parts.append(_frame("close_chunk", {"type": 8, "statusInfo": status, "data": {}}))
    return b"".join(parts)


def chunked(body: bytes, size: int = 16384) -> list[bytes]:
    """The body cut into network-sized chunks (cuts fall anywhere, mid-character too)."""
    return [body[i : i + size] for i in range(0, len(body), size)]


def data_lines(body: bytes) -> list[bytes]:
    """The JSON of every ``data:`` line of a body (for timing ``json.loads`` alone)."""
    return [line[5:] for line in body.split(b"\n") if line.startswith(b"data:")]


def longest_line(body: bytes) -> int:
    """The length in bytes of the body's longest line."""
    return max(len(line) for line in body.split(b"\n"))
