"""Builders of v4 answer bodies for the tests (event:/data: frames as the server sends them)."""

from __future__ import annotations

import json
from typing import Any

CHAT = "242830597915504644"
MSG = "242830600000000001"
OK = {"code": 0, "message": "success"}


def frame(event: str | None, obj: dict[str, Any], *, crlf: bool = False) -> bytes:
    """One ``event:`` + ``data:`` frame followed by a blank line."""
    lines = [f"event: {event}"] if event else []
    lines.append("data: " + json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
    nl = "\r\n" if crlf else "\n"
    return (nl.join(lines) + nl + nl).encode()


def send_result(title: str | None = "Greetings", chat_id: str = CHAT) -> bytes:
    """The ``send_result`` frame naming the chat."""
    result: dict[str, Any] = {"chatID": chat_id, "userMsgID": "1", "systemMsgID": "2"}
    if title is not None:
        result["chatTitle"] = title
    return frame("send_result", {"type": 1, "statusInfo": OK, "data": {"sendResult": result}})


def message(
    content: str, *, is_end: int = 1, event: str | None = "message_result", chat_id: str = CHAT
) -> bytes:
    """A cumulative ``message_result`` snapshot (``is_end=0`` marks the last one)."""
    result = {"content": content, "chatID": chat_id, "msgID": MSG, "isEnd": is_end, "extra": {}}
    return frame(event, {"type": 2, "statusInfo": OK, "data": {"messageResult": result}})


def follow_up(content: str = "Anything else?") -> bytes:
    """A ``follow_up_question_result`` frame (not answer text)."""
    return frame(
        "follow_up_question_result",
        {"type": 4, "statusInfo": OK, "data": {"messageResult": {"content": content}}},
    )


def error(code: int, text: str, kind: int = 2) -> bytes:
    """A frame whose ``statusInfo`` reports an error."""
    return frame("message_result", {"type": kind, "statusInfo": {"code": code, "message": text}})


CLOSE = frame("close_chunk", {"type": 8, "statusInfo": OK, "data": {}})


def answer_body(*snapshots: str, title: str | None = "Greetings", chat_id: str = CHAT) -> bytes:
    """A complete answer: send_result, the snapshots (the last one final), close_chunk."""
    body = send_result(title, chat_id)
    for index, text in enumerate(snapshots):
        body += message(text, is_end=0 if index == len(snapshots) - 1 else 1, chat_id=chat_id)
    return body + follow_up() + CLOSE
