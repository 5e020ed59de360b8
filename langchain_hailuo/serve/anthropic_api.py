"""Anthropic Messages <-> the serve core: request parsing, messages, stream events, errors.

Pure translation, no I/O. ``POST /v1/messages`` bodies become a
:class:`~langchain_hailuo.serve.core.ChatRequest`; answer parts become a ``message`` with
``thinking``, ``text`` and ``tool_use`` blocks, or the Messages stream events
(``message_start``, ``content_block_*``, ``message_delta``, ``message_stop``); failures
become ``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

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
    skip_tool,
)
from langchain_hailuo.serve.media import MEDIA_BLOCKS, anthropic_media
from langchain_hailuo.serve.status import ApiError, ErrorKind, bad_request, request_messages

__all__ = ["AnthropicRequest", "EventRenderer", "error_body", "message", "parse_request"]

_ERROR_TYPES: dict[ErrorKind, str] = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "not_found": "not_found_error",
    "too_large": "request_too_large",
    "rate_limit": "rate_limit_error",
    "quota": "rate_limit_error",
    "busy": "rate_limit_error",
    "upstream": "api_error",
    "timeout": "timeout_error",
    "overloaded": "overloaded_error",
}
_SKIPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})


@dataclass(frozen=True)
class AnthropicRequest:
    """A parsed request: the API-neutral request and how to answer it.

    Attributes:
        chat_request: The API-neutral request.
        stream: Answer as stream events.
        id: The message id.
    """

    chat_request: ChatRequest
    stream: bool = False
    id: str = field(default_factory=lambda: new_id("msg_"))


# --------------------------------------------------------------------------- request


def _block_text(block: Mapping[str, Any], where: str) -> str:
    """A ``text`` block's text (other kinds are refused)."""
    if block.get("type") != "text":
        raise bad_request(
            f"{where} is a {block.get('type')!r} block; hailuo serve takes text here (and "
            "image and document blocks in user turns and tool results).",
            where,
        )
    return str(block.get("text") or "")


def _blocks(content: Any, where: str) -> list[Mapping[str, Any]]:
    """A message's content as a list of blocks (a string is one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not all(isinstance(b, Mapping) for b in content):
        raise bad_request(f"{where}.content must be a string or a list of blocks.", where)
    return content


def _content_block(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A text, image or document block (a user turn's, a tool result's) in ChatHailuo's form."""
    if block.get("type") in MEDIA_BLOCKS:
        return anthropic_media(block, where)
    return {"type": "text", "text": _block_text(block, where)}


def _joined(blocks: list[dict[str, Any]]) -> str | list[str | dict[Any, Any]]:
    """A message's content: its text alone, or its text and media blocks in order."""
    if all(block["type"] == "text" for block in blocks):
        return "".join(block["text"] for block in blocks)
    return list[str | dict[Any, Any]](blocks)


def _tool_result(block: Mapping[str, Any], where: str) -> ToolMessage:
    """A ``tool_result`` block as a tool message (its images and documents as attachments)."""
    if not block.get("tool_use_id"):
        raise bad_request(f"{where} needs a tool_use_id.", where)
    inner = _blocks(block.get("content") or "", where)
    content = _joined([_content_block(b, f"{where}.content[{i}]") for i, b in enumerate(inner)])
    status: Literal["success", "error"] = "error" if block.get("is_error") else "success"
    return ToolMessage(content, tool_call_id=str(block["tool_use_id"]), status=status)


def _user(content: Any, where: str) -> list[BaseMessage]:
    """A user turn: its tool results, its text and its images and documents, in order."""
    out: list[BaseMessage] = []
    run: list[dict[str, Any]] = []  # the blocks since the last tool result
    for index, block in enumerate(_blocks(content, where)):
        at = f"{where}.content[{index}]"
        if block.get("type") == "tool_result":
            if run:
                out.append(HumanMessage(_joined(run)))
                run = []
            out.append(_tool_result(block, at))
        else:
            run.append(_content_block(block, at))
    if run or not out:
        out.append(HumanMessage(_joined(run)))
    return out


def _assistant(content: Any, where: str) -> AIMessage:
    """An assistant turn: its text and its ``tool_use`` calls (thinking is not sent back)."""
    texts: list[str] = []
    calls: list[ToolCall] = []
    for index, block in enumerate(_blocks(content, where)):
        kind = block.get("type")
        if kind in _SKIPPED_BLOCKS:
            continue
        if kind == "tool_use":
            args = block.get("input")
            calls.append(
                tool_call(
                    name=str(block.get("name") or ""),
                    args=dict(args) if isinstance(args, Mapping) else {},
                    id=block.get("id"),
                )
            )
        else:
            texts.append(_block_text(block, f"{where}.content[{index}]"))
    return AIMessage(content="".join(texts), tool_calls=calls)


def _system_text(content: Any, where: str) -> str:
    """A system prompt's text (a string or text blocks)."""
    return "".join(
        _block_text(block, f"{where}[{index}]")
        for index, block in enumerate(_blocks(content, where))
    )


def _system(system: Any) -> list[BaseMessage]:
    """The top-level ``system`` prompt (a string or text blocks)."""
    return [SystemMessage(_system_text(system, "system"))] if system else []


def _tools(raw: Any) -> list[dict[str, Any]]:
    """Client tools in OpenAI's format (server tools, run by Anthropic, are left out)."""
    tools = []
    for index, tool in enumerate(raw or []):
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        if kind not in {None, "custom"} and "input_schema" not in tool:
            skip_tool("anthropic", str(kind))
            continue
        if not isinstance(tool, Mapping) or not tool.get("name") or "input_schema" not in tool:
            raise bad_request(
                f"tools[{index}] must be a client tool with a name and an input_schema.", "tools"
            )
        function: dict[str, Any] = {"name": tool["name"], "parameters": tool["input_schema"]}
        if tool.get("description"):
            function["description"] = tool["description"]
        tools.append({"type": "function", "function": function})
    return tools


def _reasoning(thinking: Any) -> bool | None:
    """``thinking``: ``enabled`` / ``adaptive`` ask for reasoning, ``disabled`` turns it off."""
    kind = thinking.get("type") if isinstance(thinking, Mapping) else None
    return {"enabled": True, "adaptive": True, "disabled": False}.get(str(kind))


def _structured(body: Mapping[str, Any]) -> StructuredSpec | None:
    """``output_config.format`` (or the older ``output_format``) as structured output."""
    config = body.get("output_config")
    spec = config.get("format") if isinstance(config, Mapping) else None
    spec = spec if spec is not None else body.get("output_format")
    if spec is None:
        return None
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    if not isinstance(spec, Mapping) or spec.get("type") != "json_schema":
        raise bad_request(
            "output_config.format must be {'type': 'json_schema', 'schema': {...}}.",
            "output_config",
        )
    if not isinstance(schema, Mapping):
        raise bad_request("output_config.format.schema must be a JSON schema.", "output_config")
    return StructuredSpec("json_schema", dict(schema), dict(schema))


def _prefill(messages: list[BaseMessage]) -> str:
    """Take a trailing assistant message without tool calls off ``messages``: the prefill."""
    last = messages[-1] if messages else None
    if isinstance(last, AIMessage) and not last.tool_calls and str(last.content).strip():
        messages.pop()
        return str(last.content)
    return ""


def parse_request(body: Any) -> AnthropicRequest:
    """A ``POST /v1/messages`` body as a request.

    ``max_tokens``, ``temperature`` and other sampling settings are accepted and ignored:
    the web chat has none; so are fields Claude Code sends that have no meaning here
    (``context_management``, ``output_config.effort``, ``metadata``, betas). A ``system``
    message inside ``messages`` is a system instruction at its place; a trailing
    assistant message is a prefill the answer continues.

    Raises:
        ApiError: A 400 naming the field at fault.
    """
    raw_messages = request_messages(body)
    messages = _system(body.get("system"))
    for index, raw in enumerate(raw_messages):
        where = f"messages[{index}]"
        role = raw.get("role") if isinstance(raw, Mapping) else None
        if role == "user":
            messages.extend(_user(raw.get("content"), where))
        elif role == "assistant":
            messages.append(_assistant(raw.get("content"), where))
        elif role == "system":
            messages.append(SystemMessage(_system_text(raw.get("content"), where)))
        else:
            raise bad_request(
                f"{where}.role must be user, assistant or system; got {role!r}.", where
            )
    stop = body.get("stop_sequences")
    prefill = _prefill(messages)
    chat_request = ChatRequest(
        messages=messages,
        model=body.get("model") or None,
        tools=_tools(body.get("tools")),
        tool_choice=body.get("tool_choice"),
        structured=_structured(body),
        stop=list(stop) if stop else None,
        reasoning=_reasoning(body.get("thinking")),
        prefill=prefill,
    )
    return AnthropicRequest(chat_request, stream=bool(body.get("stream")))


# --------------------------------------------------------------------------- response


def _stop_reason(answer: FinishedAnswer) -> str:
    """Anthropic's ``stop_reason``."""
    if answer.tool_calls:
        return "tool_use"
    if answer.stop_sequence is not None:
        return "stop_sequence"
    return "max_tokens" if answer.finish_reason in {"length", "max_tokens"} else "end_turn"


def _stop_sequence(answer: FinishedAnswer) -> str | None:
    """The stop string that ended the answer, when ``stop_reason`` is ``stop_sequence``."""
    return None if answer.tool_calls else answer.stop_sequence


def _usage(answer: FinishedAnswer) -> dict[str, int]:
    """The ``usage`` object (the service's counts, else estimates)."""
    return {"input_tokens": answer.input_tokens, "output_tokens": answer.output_tokens}


def _tool_use(call: ToolCall) -> dict[str, Any]:
    """A call as a ``tool_use`` block."""
    return {"type": "tool_use", "id": call["id"], "name": call["name"], "input": call["args"]}


def message(request: AnthropicRequest, answer: FinishedAnswer) -> dict[str, Any]:
    """The ``message`` object of a whole answer."""
    content: list[dict[str, Any]] = []
    if answer.reasoning:
        content.append({"type": "thinking", "thinking": answer.reasoning, "signature": ""})
    if answer.text:
        content.append({"type": "text", "text": answer.text})
    content.extend(_tool_use(call) for call in answer.tool_calls)
    return {
        "id": request.id,
        "type": "message",
        "role": "assistant",
        "model": answer.model,
        "content": content,
        "stop_reason": _stop_reason(answer),
        "stop_sequence": _stop_sequence(answer),
        "usage": _usage(answer),
    }


def _compact(value: Any) -> str:
    """JSON without spaces between items, non-ASCII text as is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _event(kind: str, data: Mapping[str, Any]) -> bytes:
    """One SSE event."""
    payload = _compact({"type": kind, **data})
    return f"event: {kind}\ndata: {payload}\n\n".encode()


def _text_delta(index: int, text: str) -> bytes:
    """A ``text_delta`` event (the most frequent one; the same JSON :func:`_event` writes)."""
    return (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
        + str(index).encode()
        + b',"delta":{"type":"text_delta","text":'
        + _compact(text).encode()
        + b"}}\n\n"
    )


class EventRenderer:
    """Answer parts as Messages stream events (one content block per run of a kind)."""

    def __init__(self, request: AnthropicRequest, model: str) -> None:
        """Render the answer to ``request`` as ``model``'s."""
        self.request = request
        self.model = model
        self._index = -1
        self._open: str | None = None

    def start(self) -> bytes:
        """``message_start``."""
        shell: dict[str, Any] = {
            "id": self.request.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return _event("message_start", {"message": shell})

    def _close(self) -> bytes:
        """``content_block_stop`` for the open block, if any."""
        if self._open is None:
            return b""
        self._open = None
        return _event("content_block_stop", {"index": self._index})

    def _begin(self, kind: str, block: Mapping[str, Any]) -> bytes:
        """Close the open block and start a new one."""
        out = self._close()
        self._index += 1
        self._open = kind
        return out + _event("content_block_start", {"index": self._index, "content_block": block})

    def _delta(self, kind: str, block: Mapping[str, Any], delta: Mapping[str, Any]) -> bytes:
        """A delta, in the open block of its kind (started when another kind is open)."""
        out = b"" if self._open == kind else self._begin(kind, block)
        return out + _event("content_block_delta", {"index": self._index, "delta": delta})

    def part(self, part: AnswerPart) -> bytes:
        """The events of one part (the end, for the :class:`FinishedAnswer`)."""
        if isinstance(part, TextPart):
            if self._open == "text":
                return _text_delta(self._index, part.text)
            return self._delta(
                "text", {"type": "text", "text": ""}, {"type": "text_delta", "text": part.text}
            )
        if isinstance(part, ReasoningPart):
            return self._delta(
                "thinking",
                {"type": "thinking", "thinking": "", "signature": ""},
                {"type": "thinking_delta", "thinking": part.text},
            )
        if isinstance(part, ToolCallPart):
            block = {**_tool_use(part.call), "input": {}}
            delta = {"type": "input_json_delta", "partial_json": part.arguments}
            return (
                self._begin("tool_use", block)
                + _event("content_block_delta", {"index": self._index, "delta": delta})
                + self._close()
            )
        return self.end(part)

    def end(self, answer: FinishedAnswer) -> bytes:
        """Close the open block, then ``message_delta`` and ``message_stop``."""
        delta = {"stop_reason": _stop_reason(answer), "stop_sequence": _stop_sequence(answer)}
        return (
            self._close()
            + _event("message_delta", {"delta": delta, "usage": _usage(answer)})
            + _event("message_stop", {})
        )

    @staticmethod
    def error(error: ApiError) -> bytes:
        """A failure after the stream started: an ``error`` event."""
        return _event("error", {"error": error_body(error)["error"]})


def error_body(error: ApiError) -> dict[str, Any]:
    """Anthropic's error object."""
    return {"type": "error", "error": {"type": _ERROR_TYPES[error.kind], "message": error.message}}
