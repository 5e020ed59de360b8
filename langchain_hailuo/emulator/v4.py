"""The v4 web chat (``POST /v4/api/chat/msg``), checked as strictly as the real service.

Checks, in order:

1. the ``token`` header names a known, unexpired account (else HTTP 401);
2. the 15 fingerprint query parameters are all present, in order, and none is ``null``,
   ``undefined`` or empty (else HTTP 400); the body is multipart with ``characterID``,
   ``msgContent``, ``chatID`` and ``searchMode`` (else HTTP 400);
3. inside the stream (HTTP 200, ``send_result`` with a non-zero ``statusInfo.code``):
   ``yy`` matches (:data:`CODE_BAD_SIGNATURE`), ``unix`` is within the window and not reused
   by the account (:data:`CODE_EXPIRED`), a non-zero ``chatID`` is one of the caller's
   chats (:data:`CODE_CHAT_NOT_FOUND`).

The error codes are the emulator's own (the real ones were never captured).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from langchain_hailuo.emulator.core import (
    EmulatorAccount,
    EmulatorState,
    EventStream,
    Fault,
    default_reply,
    error_response,
    json_text,
    random_digits,
    wait_first_byte,
)
from langchain_hailuo.emulator.signing import agent_yy, v4_yy

__all__ = [
    "CHAT_PATH",
    "CODE_BAD_SIGNATURE",
    "CODE_CHAT_NOT_FOUND",
    "CODE_EXPIRED",
    "CODE_STREAM_ERROR",
    "DEVICE_REGISTER_PATH",
    "FORM_FIELDS",
    "QUERY_ORDER",
    "V4Chat",
    "V4Routes",
]

CHAT_PATH: Final = "/v4/api/chat/msg"
DEVICE_REGISTER_PATH: Final = "/v1/api/user/device/register"
QUERY_ORDER: Final = (
    "device_platform",
    "biz_id",
    "app_id",
    "version_code",
    "lang",
    "uuid",
    "device_id",
    "os_name",
    "browser_name",
    "cpu_core_num",
    "browser_language",
    "browser_platform",
    "screen_width",
    "screen_height",
    "unix",
)
"""The fingerprint query, in the order the web app sends it."""
FORM_FIELDS: Final = ("characterID", "msgContent", "chatID", "searchMode")

CODE_BAD_SIGNATURE: Final = 1000013
CODE_EXPIRED: Final = 1000014
CODE_CHAT_NOT_FOUND: Final = 1200002
CODE_STREAM_ERROR: Final = 1500001
"""Default code of the ``stream_error`` fault ("service busy")."""

_MISSING_VALUES = frozenset({"", "null", "undefined"})
_TYPE_SEND_RESULT = 1
_TYPE_MESSAGE_RESULT = 2
_TYPE_CLOSE = 8


@dataclass
class V4Chat:
    """A server-side v4 chat.

    Attributes:
        chat_id: The 18-digit chat id.
        account: The owner's account name.
        title: The chat's title.
        turns: ``(user text, answer)`` pairs, oldest first.
    """

    chat_id: str
    account: str
    title: str
    turns: list[tuple[str, str]] = field(default_factory=list)


def _register_problem(request: web.Request, body: Any, text: str) -> str | None:
    """What is wrong with a device registration request, if anything."""
    wanted = request.query.get("uuid", "")
    if not isinstance(body, dict) or not wanted or body.get("uuid") != wanted:
        return 'the body must be {"uuid": <the query\'s uuid>}'
    if "device_id" in request.query:
        return "device_id must not be sent when registering"
    if request.headers.get("yy") != agent_yy(request.raw_path, text, request.query.get("unix", "")):
        return "bad yy"
    return None


def _frame(event: str, payload: dict[str, Any]) -> str:
    """One ``event:`` + ``data:`` frame and its blank line."""
    return f"event: {event}\ndata: {json_text(payload)}\n\n"


def _success() -> dict[str, Any]:
    """The ``statusInfo`` of a successful v4 call."""
    return {"code": 0, "message": "Success"}


def utf8_snapshots(text: str, step: int) -> list[str]:
    """Cumulative snapshots of ``text`` cut every ``step`` UTF-8 bytes, as the server sends them.

    A cut inside a multi-byte character makes that snapshot end in U+FFFD.

    Args:
        text: The whole answer.
        step: Bytes added per snapshot (at least 1).

    Returns:
        The growing snapshots, not including the final, whole text.
    """
    data = text.encode("utf-8")
    return [
        data[:end].decode("utf-8", "replace")
        for end in range(max(step, 1), len(data), max(step, 1))
    ]


class V4Routes:
    """The v4 chat route and its chats."""

    def __init__(
        self,
        state: EmulatorState,
        *,
        chunk_size: int,
        chunk_delay: float,
        unix_window: float | None,
    ) -> None:
        """Serve ``chunk_size`` UTF-8 bytes per snapshot, ``chunk_delay`` seconds apart.

        ``unix_window`` is the accepted distance of ``unix`` from now in seconds; ``None`` turns
        the freshness and reuse checks off (for clients that freeze ``unix``, as gpt4free does).
        """
        self.state = state
        self.chunk_size = chunk_size
        self.chunk_delay = chunk_delay
        self.unix_window = unix_window
        self.chats: dict[str, V4Chat] = {}
        self._used_unix: dict[str, set[str]] = {}

    def add_to(self, app: web.Application) -> None:
        """Register the routes on an application."""
        app.router.add_post(CHAT_PATH, self.chat)
        app.router.add_post(DEVICE_REGISTER_PATH, self.register_device)

    def _caller(
        self, request: web.Request, endpoint: str, body: Any
    ) -> tuple[EmulatorAccount, Fault | None] | web.Response:
        """Record the request, apply an HTTP fault, check the token; else the error response."""
        account, fault, refused = self.state.caller_of(
            request, protocol="v4", endpoint=endpoint, body=body
        )
        if refused is not None:
            return refused
        if account is None or not self.state.token_is_valid(account):
            return error_response("http_401", "v4")
        return account, fault

    # ------------------------------------------------------------------ device registration

    async def register_device(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/api/user/device/register``: a device id for the body's random ``uuid``.

        As documented: JSON ``{"uuid": ...}`` equal to the query's ``uuid``, no
        ``device_id`` in the query, ``yy`` over the path, query and JSON text. The answer
        is ``statusInfo.code == 0`` with ``data.deviceIDStr`` (and ``data.realUserID``).
        Faults apply (endpoint ``device_register``).
        """
        text = await request.text()
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        checked = self._caller(request, "device_register", body)
        if isinstance(checked, web.Response):
            return checked
        account, _ = checked
        problem = _register_problem(request, body, text)
        if problem:
            return error_response("bad_request", "v4", message=problem)
        self.state.registered_devices.append(request.query["uuid"])
        data = {"deviceIDStr": account.device_id, "realUserID": account.user_id}
        return web.json_response({"statusInfo": {"code": 0, "message": "Success"}, "data": data})

    # ------------------------------------------------------------------ checks

    def _query_problem(self, request: web.Request) -> str | None:
        """What is wrong with the fingerprint query, if anything."""
        keys = list(request.query.keys())
        if keys != list(QUERY_ORDER):
            return f"query parameters must be exactly {', '.join(QUERY_ORDER)} in order"
        empty = [key for key in QUERY_ORDER if request.query[key] in _MISSING_VALUES]
        if empty:
            return f"query parameters without a value: {', '.join(empty)}"
        if not request.query["unix"].isdigit():
            return "unix must be milliseconds since the epoch"
        return None

    def _stream_problem(
        self, request: web.Request, account: EmulatorAccount, form: dict[str, str]
    ) -> tuple[int, str] | None:
        """The in-stream error code and message for a bad signature, stale unix or foreign chat."""
        unix = request.query["unix"]
        if request.headers.get("yy") != v4_yy(request.raw_path, form, unix):
            return CODE_BAD_SIGNATURE, "Signature verification failed"
        if self.unix_window is not None:
            used = self._used_unix.setdefault(account.name, set())
            if abs(time.time() * 1000 - int(unix)) > self.unix_window * 1000 or unix in used:
                return CODE_EXPIRED, "Request expired, please refresh the page and try again"
            used.add(unix)
        chat_id = form["chatID"]
        if chat_id != "0":
            chat = self.chats.get(chat_id)
            if chat is None or chat.account != account.name:
                return CODE_CHAT_NOT_FOUND, "The conversation does not exist or has been deleted"
        return None

    # ------------------------------------------------------------------ handler

    async def chat(self, request: web.Request) -> web.StreamResponse:
        """``POST /v4/api/chat/msg``: check the request, then stream the answer."""
        raw_form = await request.post()
        form = {key: value for key, value in raw_form.items() if isinstance(value, str)}
        checked = self._caller(request, "chat", self.state.redact_body(form))
        if isinstance(checked, web.Response):
            return checked
        account, fault = checked
        problem = self._query_problem(request)
        missing = [name for name in FORM_FIELDS if name not in form]
        if problem or missing:
            return error_response(
                "bad_request", "v4", message=problem or f"missing form fields: {', '.join(missing)}"
            )
        await wait_first_byte(fault)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        stream = EventStream(request, response, self.state, fault, self.chunk_delay)
        await stream.serve(lambda: self._answer(stream, request, account, form, fault))
        return response

    async def _answer(
        self,
        stream: EventStream,
        request: web.Request,
        account: EmulatorAccount,
        form: dict[str, str],
        fault: Fault | None,
    ) -> None:
        """Write the frames of one answer (or of an in-stream error)."""
        problem = self._stream_problem(request, account, form)
        if problem is not None:
            await self._send_error(stream, *problem)
            return
        prompt = form["msgContent"]
        chat = self._chat_for(form["chatID"], account, prompt)
        send_result: dict[str, Any] = {
            "chatID": chat.chat_id,
            "userMsgID": random_digits(18),
            "systemMsgID": random_digits(18),
        }
        if form["chatID"] == "0":
            send_result["chatTitle"] = chat.title
        await stream.send(
            _frame(
                "send_result",
                {
                    "type": _TYPE_SEND_RESULT,
                    "statusInfo": _success(),
                    "data": {"sendResult": send_result},
                },
            )
        )
        scripted = self.state.next_script(account.name, prompt)
        answer = scripted.text if scripted else default_reply(prompt, len(chat.turns) + 1)
        chat.turns.append((prompt, answer))
        msg_id = send_result["systemMsgID"]
        error_at = (
            fault.int_param("after", 1)
            if fault is not None and fault.kind == "stream_error"
            else -1
        )
        for index, snapshot in enumerate(utf8_snapshots(answer, self.chunk_size)):
            if index == error_at:
                await self._send_fault_error(stream, fault)
                return
            await stream.send(self._message_frame(chat.chat_id, msg_id, snapshot, is_end=1))
        if error_at >= 0:
            await self._send_fault_error(stream, fault)
            return
        await stream.send(self._message_frame(chat.chat_id, msg_id, answer, is_end=0))
        await stream.send(
            _frame("close_chunk", {"type": _TYPE_CLOSE, "statusInfo": _success(), "data": {}})
        )

    def _chat_for(self, chat_id: str, account: EmulatorAccount, prompt: str) -> V4Chat:
        """The existing chat, or a new one named after the prompt."""
        if chat_id != "0":
            return self.chats[chat_id]
        new_id = random_digits(18)
        while new_id in self.chats:
            new_id = random_digits(18)
        title = " ".join(prompt.split())[:30] or "New chat"
        chat = V4Chat(chat_id=new_id, account=account.name, title=title)
        self.chats[new_id] = chat
        return chat

    @staticmethod
    def _message_frame(chat_id: str, msg_id: str, content: str, *, is_end: int) -> str:
        """A cumulative ``message_result`` frame (``isEnd`` 1 while growing, 0 on the last)."""
        result = {
            "content": content,
            "chatID": chat_id,
            "msgID": msg_id,
            "isEnd": is_end,
            "extra": {},
        }
        return _frame(
            "message_result",
            {
                "type": _TYPE_MESSAGE_RESULT,
                "statusInfo": _success(),
                "data": {"messageResult": result},
            },
        )

    @staticmethod
    async def _send_error(
        stream: EventStream, code: int, message: str, *, event: str = "send_result"
    ) -> None:
        """An in-stream error: a frame whose ``statusInfo.code`` is not 0."""
        kind = _TYPE_SEND_RESULT if event == "send_result" else _TYPE_MESSAGE_RESULT
        await stream.send(
            _frame(
                event, {"type": kind, "statusInfo": {"code": code, "message": message}, "data": {}}
            )
        )

    async def _send_fault_error(self, stream: EventStream, fault: Fault | None) -> None:
        """The ``stream_error`` fault: a ``message_result`` carrying ``code`` / ``message``."""
        params = fault.params if fault is not None else {}
        code = int(params.get("code", CODE_STREAM_ERROR))
        message = str(params.get("message", "Service busy, please try again later"))
        await self._send_error(stream, code, message, event="message_result")
