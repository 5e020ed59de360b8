"""Deterministic recorded-style v4 answer bodies for the decoding benchmark."""

from __future__ import annotations

import json

_WORDS = [
    "tea",
    "茶",
    "river",
    "川",
    "mountain",
    "山",
    "light",
    "光",
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "你好",
    "世界",
]


def answer_text(chars: int) -> str:
    """A multilingual answer of about ``chars`` characters (deterministic)."""
    out: list[str] = []
    size = 0
    i = 0
    while size < chars:
        word = _WORDS[(i * 7 + i // 3) % len(_WORDS)]
        out.append(word)
        size += len(word) + 1
        i += 1
    return " ".join(out)[:chars]


def _frame(event: str, payload: dict[str, object]) -> bytes:
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"event: {event}\ndata: {data}\n\n".encode()


def v4_body(
    *, snapshots: int = 2000, chars: int = 20000, chat_id: str = "242830597915504644"
) -> bytes:
    """A whole v4 answer body: send_result, cumulative snapshots, the final one, close_chunk."""
    text = answer_text(chars)
    status = {"code": 0, "message": "Success"}
    parts = [
        _frame(
            "send_result",
            {
                "type": 1,
                "statusInfo": status,
                "data": {"sendResult": {"chatID": chat_id, "chatTitle": "Tea", "userMsgID": "1"}},
            },
        )
    ]
    for n in range(1, snapshots + 1):
        content = text[: len(text) * n // snapshots]
        result = {
            "content": content,
            "chatID": chat_id,
            "msgID": "2",
            "isEnd": 0 if n == snapshots else 1,
        }
        parts.append(
            _frame(
                "message_result",
                {"type": 2, "statusInfo": status, "data": {"messageResult": result}},
            )
        )
    parts.append(_frame("close_chunk", {"type": 8, "statusInfo": status, "data": {}}))
    return b"".join(parts)


def chunked(body: bytes, size: int = 16384) -> list[bytes]:
    """The body cut into network-sized chunks."""
    return [body[i : i + size] for i in range(0, len(body), size)]
