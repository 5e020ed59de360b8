"""OpenAI Chat Completions <-> the serve core: request parsing, answers, chunks, errors.

Pure translation, no I/O. ``POST /v1/chat/completions`` bodies become a
:class:`~langchain_hailuo.serve.core.ChatRequest`; answer parts become a ``chat.completion`` or
``chat.completion.chunk`` objects (SSE ``data:`` lines ending with ``[DONE]``); failures
become ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import ToolCall, tool_call

from langchain_hailuo._tool_turns import StructuredSpec
from langchain_hailuo.serve.core import (
    AnswerPart,
    ChatRequest,
    FinishedAnswer,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    new_id,
)
from langchain_hailuo.serve.media import MEDIA_PARTS, openai_media
from langchain_hailuo.serve.status import ApiError, ErrorKind, bad_request, request_messages

__all__ = [
    "ChunkRenderer",
    "OpenAIRequest",
    "compact",
    "completion",
    "error_body",
    "message_content",
    "parse_request",
    "reasoning_effort",
    "response_format_spec",
]

_ERROR_TYPES: dict[ErrorKind, str] = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "not_found": "not_found_error",
    "too_large": "invalid_request_error",
    "rate_limit": "rate_limit_error",
    "quota": "insufficient_quota",
    "busy": "conflict_error",
    "upstream": "api_error",
    "timeout": "timeout_error",
    "overloaded": "server_error",
}
_ERROR_CODES: dict[ErrorKind, str] = {
    "quota": "insufficient_quota",
    "rate_limit": "rate_limit_exceeded",
    "too_large": "request_too_large",
}
_SYSTEM_ROLES = frozenset({"system", "developer"})


@dataclass(frozen=True)
class OpenAIRequest:
    """A parsed request: the API-neutral request and how to answer it.

    Attributes:
        chat_request: The API-neutral request.
        stream: Answer as SSE chunks.
        include_usage: ``stream_options.include_usage``: a last chunk with the usage.
        id: The response id.
        created: The response's Unix time.
    """

    chat_request: ChatRequest
    stream: bool = False
    include_usage: bool = False
    id: str = field(default_factory=lambda: new_id("chatcmpl-"))
    created: int = field(default_factory=lambda: int(time.time()))


# --------------------------------------------------------------------------- request


def _text(content: Any, where: str) -> str:
    """The text of a message's ``content``: a string, ``null`` or a list of text parts."""
    content = message_content(content, where, media=False)
    return content if isinstance(content, str) else ""


def message_content(content: Any, where: str, *, media: bool) -> str | list[str | dict[Any, Any]]:
    """A message's ``content``: its text, or (``media``: a user turn) text and media blocks.

    Raises:
        ApiError: A 400 naming a part this server cannot take.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad_request(f"{where}.content must be a string or a list of parts.", where)
    texts: list[str] = []
    blocks: list[str | dict[Any, Any]] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            texts.append(str(part.get("text") or ""))
            blocks.append({"type": "text", "text": texts[-1]})
        elif media and kind in MEDIA_PARTS:
            blocks.append(openai_media(part, f"{where}.content[{index}]"))
        else:
            takes = "text, image_url and file parts" if media else "text parts only"
            raise bad_request(
                f"{where}.content[{index}] is a {kind or type(part).__name__!r} part; hailuo "
                f"serve takes {takes} here.",
                where,
            )
    return "".join(texts) if len(blocks) == len(texts) else blocks


def _tool_calls(raw: Any, where: str) -> list[ToolCall]:
    """An assistant message's ``tool_calls`` as LangChain calls."""
    calls: list[ToolCall] = []
    for index, item in enumerate(raw or []):
        function = item.get("function") if isinstance(item, Mapping) else None
        if not isinstance(function, Mapping) or not function.get("name"):
            raise bad_request(f"{where}.tool_calls[{index}] needs a function name.", where)
        try:
            args = json.loads(function.get("arguments") or "{}")
        except json.JSONDecodeError:
            raise bad_request(
                f"{where}.tool_calls[{index}].function.arguments is not valid JSON.", where
            ) from None
        calls.append(tool_call(name=str(function["name"]), args=args, id=item.get("id")))
    return calls


def _message(raw: Any, index: int) -> BaseMessage:
    """One request message as a LangChain message."""
    where = f"messages[{index}]"
    if not isinstance(raw, Mapping):
        raise bad_request(f"{where} must be an object.", where)
    role = raw.get("role")
    if role in _SYSTEM_ROLES:
        return SystemMessage(_text(raw.get("content"), where))
    if role == "user":
        return HumanMessage(
            message_content(raw.get("content"), where, media=True), name=raw.get("name")
        )
    if role == "assistant":
        return AIMessage(
            content=_text(raw.get("content"), where),
            tool_calls=_tool_calls(raw.get("tool_calls"), where),
        )
    if role == "tool":
        if not raw.get("tool_call_id"):
            raise bad_request(f"{where} (role tool) needs a tool_call_id.", where)
        return ToolMessage(_text(raw.get("content"), where), tool_call_id=raw["tool_call_id"])
    raise bad_request(
        f"{where}.role {role!r} is not supported; use system, developer, user, assistant or tool.",
        where,
    )


def response_format_spec(response_format: Any) -> StructuredSpec | None:
    """``response_format`` as a structured-output spec (``text`` / absent: ``None``)."""
    if response_format is None:
        return None
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind in {None, "text"}:
        return None
    if kind == "json_object":
        return StructuredSpec("json_mode", None)
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise bad_request("response_format.json_schema.schema must be a JSON schema.")
        schema = dict(schema)
        if isinstance(spec, Mapping) and spec.get("name"):
            schema.setdefault("title", str(spec["name"]))
        return StructuredSpec("json_schema", schema, schema)
    raise bad_request(f"response_format.type {kind!r} is not supported.", "response_format")


def _tools(raw: Any) -> list[dict[str, Any]]:
    """``tools`` (function tools only)."""
    tools = []
    for index, tool in enumerate(raw or []):
        if not isinstance(tool, Mapping) or tool.get("type", "function") != "function":
            raise bad_request(f"tools[{index}] must be a function tool.", "tools")
        tools.append(dict(tool))
    return tools


def reasoning_effort(effort: Any) -> bool | None:
    """``reasoning_effort``: ``none`` turns thinking off, any other level on."""
    if effort is None:
        return None
    return effort != "none"


def parse_request(body: Any) -> OpenAIRequest:
    """A ``POST /v1/chat/completions`` body as a request.

    Sampling settings (``temperature``, ``max_tokens``...) are accepted and ignored: the web
    chat has none.

    Raises:
        ApiError: A 400 naming the field at fault.
    """
    raw_messages = request_messages(body)
    if body.get("n") not in {None, 1}:
        raise bad_request("Only n=1 is supported.", "n")
    stop = body.get("stop")
    options = body.get("stream_options")
    chat_request = ChatRequest(
        messages=[_message(raw, index) for index, raw in enumerate(raw_messages)],
        model=body.get("model") or None,
        tools=_tools(body.get("tools")),
        tool_choice=body.get("tool_choice"),
        structured=response_format_spec(body.get("response_format")),
        stop=[stop] if isinstance(stop, str) else (list(stop) if stop else None),
        reasoning=reasoning_effort(body.get("reasoning_effort")),
    )
    return OpenAIRequest(
        chat_request,
        stream=bool(body.get("stream")),
        include_usage=bool(isinstance(options, Mapping) and options.get("include_usage")),
    )


# --------------------------------------------------------------------------- response


def _finish_reason(answer: FinishedAnswer) -> str:
    """OpenAI's ``finish_reason``."""
    if answer.tool_calls:
        return "tool_calls"
    return "length" if answer.finish_reason in {"length", "max_tokens"} else "stop"


def _usage(answer: FinishedAnswer) -> dict[str, int]:
    """The ``usage`` object (the service's counts, else estimates)."""
    return {
        "prompt_tokens": answer.input_tokens,
        "completion_tokens": answer.output_tokens,
        "total_tokens": answer.input_tokens + answer.output_tokens,
    }


def _call(part: ToolCallPart) -> dict[str, Any]:
    """A tool call in OpenAI's shape."""
    return {
        "id": part.call["id"],
        "type": "function",
        "function": {"name": part.call["name"], "arguments": part.arguments},
    }


def completion(request: OpenAIRequest, answer: FinishedAnswer) -> dict[str, Any]:
    """The ``chat.completion`` object of a whole answer."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.text or None}
    if answer.tool_calls:
        message["tool_calls"] = [
            _call(ToolCallPart(i, call)) for i, call in enumerate(answer.tool_calls)
        ]
    if answer.reasoning:
        message["reasoning_content"] = answer.reasoning
    body: dict[str, Any] = {
        "id": request.id,
        "object": "chat.completion",
        "created": request.created,
        "model": answer.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _finish_reason(answer),
                "logprobs": None,
            }
        ],
        "usage": _usage(answer),
    }
    return body


class ChunkRenderer:
    """Answer parts as ``chat.completion.chunk`` SSE lines."""

    def __init__(self, request: OpenAIRequest, model: str) -> None:
        """Render the answer to ``request`` as ``model``'s."""
        self.request = request
        self.model = model
        # A text delta is the answer's most frequent chunk: everything around its text is
        # the same each time, so it is encoded once (the same JSON as :meth:`_line`).
        head, _, tail = self._line({"content": ""}).partition(b'{"content":""}')
        self._text_head = head + b'{"content":'
        self._text_tail = b"}" + tail

    def _line(self, delta: Mapping[str, Any], finish: str | None = None) -> bytes:
        """One chunk as an SSE ``data:`` line."""
        chunk = {
            "id": self.request.id,
            "object": "chat.completion.chunk",
            "created": self.request.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        return b"data: " + compact(chunk).encode() + b"\n\n"

    def start(self) -> bytes:
        """The first chunk: the role."""
        return self._line({"role": "assistant", "content": ""})

    def part(self, part: AnswerPart) -> bytes:
        """The chunk of one part (the end, for the :class:`FinishedAnswer`)."""
        if isinstance(part, TextPart):
            return self._text_head + compact(part.text).encode() + self._text_tail
        if isinstance(part, ReasoningPart):
            return self._line({"reasoning_content": part.text})
        if isinstance(part, ToolCallPart):
            return self._line({"tool_calls": [{"index": part.index, **_call(part)}]})
        return self.end(part)

    def end(self, answer: FinishedAnswer) -> bytes:
        """The finish chunk, the usage chunk when asked for, then ``[DONE]``."""
        out = self._line({}, _finish_reason(answer))
        if self.request.include_usage:
            chunk = {
                "id": self.request.id,
                "object": "chat.completion.chunk",
                "created": self.request.created,
                "model": self.model,
                "choices": [],
                "usage": _usage(answer),
            }
            out += b"data: " + json.dumps(chunk).encode() + b"\n\n"
        return out + b"data: [DONE]\n\n"

    @staticmethod
    def error(error: ApiError) -> bytes:
        """A failure after the stream started: an ``error`` chunk (no ``[DONE]``)."""
        return b"data: " + json.dumps(error_body(error)).encode() + b"\n\n"


def compact(value: Any) -> str:
    """JSON without spaces between items, non-ASCII text as is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def error_body(error: ApiError) -> dict[str, Any]:
    """OpenAI's error object."""
    return {
        "error": {
            "message": error.message,
            "type": _ERROR_TYPES[error.kind],
            "param": error.param,
            "code": _ERROR_CODES.get(error.kind),
        }
    }
