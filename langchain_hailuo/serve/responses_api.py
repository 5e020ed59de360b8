"""OpenAI Responses <-> the serve core: request parsing, response objects, stream events.

Pure translation, no I/O. ``POST /v1/responses`` bodies become a
:class:`~langchain_hailuo.serve.core.ChatRequest`: ``input`` (a string, or ``message``,
``function_call``, ``function_call_output`` and ``reasoning`` items), ``instructions``,
function ``tools`` and ``tool_choice``, ``text.format`` and ``reasoning``. Answer parts
become a ``response`` object with ``reasoning``, ``message`` and ``function_call`` output
items, or the documented stream events (``response.created`` ... ``response.completed``;
``response.failed`` and ``error`` on a failure after the stream started). Failures before
it are OpenAI's error object.

Continuity: ``previous_response_id`` continues the chat of an answer kept by id (with
only the new input); with ``store: false`` nothing is kept by id, and the conversation
continues by its history, as chat completions do. Built-in tools (``web_search``,
``file_search``, ``custom``, ``namespace``...) cannot run here: they are left out of the
prompt and logged once.
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
from langchain_hailuo.serve.openai_api import (
    compact,
    error_body,
    message_content,
    reasoning_effort,
    response_format_spec,
)
from langchain_hailuo.serve.status import ApiError, bad_request

__all__ = ["EventRenderer", "ResponsesRequest", "parse_request", "response_body"]

_SYSTEM_ROLES = frozenset({"system", "developer"})
_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "summary_text", "refusal"})
_SKIPPED_ITEMS = frozenset({"reasoning"})
"""Input items accepted and not sent: the model's own reasoning is not sent back."""


@dataclass(frozen=True)
class ResponsesRequest:
    """A parsed request: the API-neutral request, how to answer it, and what the response echoes.

    Attributes:
        chat_request: The API-neutral request.
        stream: Answer as stream events.
        echo: The request fields the response object repeats (``instructions``, ``tools``,
            ``tool_choice``, ``text``, ``reasoning``, ``previous_response_id``, ``store``,
            ``metadata``...).
        id: The response id (``resp_…``).
        created: The response's Unix time.
    """

    chat_request: ChatRequest
    stream: bool = False
    echo: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: new_id("resp_"))
    created: int = field(default_factory=lambda: int(time.time()))


# --------------------------------------------------------------------------- request


def _chat_part(part: Any, where: str) -> dict[str, Any]:
    """A Responses content part as the Chat Completions part the OpenAI parser reads."""
    kind = part.get("type") if isinstance(part, Mapping) else None
    if kind in _TEXT_PARTS:
        return {"type": "text", "text": str(part.get("text") or part.get("refusal") or "")}
    if kind == "input_image":
        url = part.get("image_url")
        if not url:
            raise bad_request(
                f"{where} is an input_image without image_url; hailuo serve cannot read "
                "OpenAI file ids: send the image as a data: or http(s) URL.",
                where,
            )
        return {"type": "image_url", "image_url": {"url": url}}
    if kind == "input_file":
        file = {k: part[k] for k in ("file_data", "filename") if part.get(k)}
        return {"type": "file", "file": file}
    raise bad_request(
        f"{where} is a {kind or type(part).__name__!r} part; hailuo serve takes input_text, "
        "output_text, input_image and input_file parts.",
        where,
    )


def _content(content: Any, where: str, *, media: bool) -> str | list[str | dict[Any, Any]]:
    """An item's ``content`` (a string or parts): its text, or text and media blocks."""
    if content is None or isinstance(content, str):
        return content or ""
    if not isinstance(content, list):
        raise bad_request(f"{where}.content must be a string or a list of parts.", where)
    parts = [_chat_part(part, f"{where}.content[{i}]") for i, part in enumerate(content)]
    return message_content(parts, where, media=media)


def _text(content: Any, where: str) -> str:
    """An item's text (media refused)."""
    text = _content(content, where, media=False)
    return text if isinstance(text, str) else ""


def _arguments(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A ``function_call`` item's ``arguments`` (JSON text) as a dict."""
    try:
        args = json.loads(item.get("arguments") or "{}")
    except json.JSONDecodeError:
        raise bad_request(f"{where}.arguments is not valid JSON.", where) from None
    return args if isinstance(args, dict) else {}


class _Items:
    """Input items into LangChain messages, one pass.

    An assistant ``message`` item and the ``function_call`` items after it are one
    assistant turn (one ``AIMessage``), as the answer that produced them was; ``reasoning``
    items between them are skipped without ending the turn.
    """

    def __init__(self) -> None:
        self.messages: list[BaseMessage] = []
        self._turn: AIMessage | None = None  # the assistant turn still taking calls

    def _close(self) -> None:
        """End the open assistant turn."""
        if self._turn is not None:
            self.messages.append(self._turn)
            self._turn = None

    def _call(self, item: Mapping[str, Any], where: str) -> None:
        """A ``function_call`` item: a call of the open assistant turn (opened if none)."""
        if not item.get("name"):
            raise bad_request(f"{where} needs a name.", where)
        call = tool_call(
            name=str(item["name"]),
            args=_arguments(item, where),
            id=str(item.get("call_id") or item.get("id") or ""),
        )
        turn = self._turn or AIMessage(content="")
        self._turn = AIMessage(content=turn.content, tool_calls=[*turn.tool_calls, call])

    def _output(self, item: Mapping[str, Any], where: str) -> None:
        """A ``function_call_output`` item: a tool result."""
        if not item.get("call_id"):
            raise bad_request(f"{where} needs a call_id.", where)
        output = item.get("output")
        content = output if isinstance(output, str) else _content(output, where, media=True)
        self._close()
        self.messages.append(ToolMessage(content, tool_call_id=str(item["call_id"])))

    def _message(self, item: Mapping[str, Any], where: str) -> None:
        """A ``message`` item (also the bare ``{"role", "content"}`` form)."""
        role = item.get("role")
        self._close()
        if role == "assistant":
            self._turn = AIMessage(content=_text(item.get("content"), where))
        elif role == "user":
            self.messages.append(HumanMessage(_content(item.get("content"), where, media=True)))
        elif role in _SYSTEM_ROLES:
            self.messages.append(SystemMessage(_text(item.get("content"), where)))
        else:
            raise bad_request(
                f"{where}.role {role!r} is not supported; use user, assistant, system or "
                "developer.",
                where,
            )

    def take(self, item: Any, index: int) -> None:
        """One input item."""
        where = f"input[{index}]"
        kind = item.get("type", "message") if isinstance(item, Mapping) else None
        if not isinstance(item, Mapping):
            raise bad_request(f"{where} must be an object.", where)
        if kind == "message":
            self._message(item, where)
        elif kind == "function_call":
            self._call(item, where)
        elif kind == "function_call_output":
            self._output(item, where)
        elif kind not in _SKIPPED_ITEMS:
            raise bad_request(
                f"{where} is a {kind!r} item; hailuo serve takes message, function_call, "
                "function_call_output and reasoning items.",
                where,
            )

    def done(self) -> list[BaseMessage]:
        """The messages (the last assistant turn closed)."""
        self._close()
        return self.messages


def _messages(body: Mapping[str, Any]) -> list[BaseMessage]:
    """``instructions`` and ``input`` as LangChain messages."""
    raw = body.get("input")
    instructions = body.get("instructions")
    head: list[BaseMessage] = [SystemMessage(str(instructions))] if instructions else []
    if isinstance(raw, str) and raw:
        return [*head, HumanMessage(raw)]
    if not isinstance(raw, list) or not raw:
        raise bad_request("input must be a non-empty string or a list of items.", "input")
    items = _Items()
    for index, item in enumerate(raw):
        items.take(item, index)
    return [*head, *items.done()]


def _tools(raw: Any) -> list[dict[str, Any]]:
    """Function tools in Chat Completions' format; built-in tools left out (logged once)."""
    tools = []
    for index, tool in enumerate(raw or []):
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        if kind != "function":
            skip_tool("responses", str(kind))
            continue
        if not tool.get("name"):
            raise bad_request(f"tools[{index}] needs a name.", "tools")
        function = {key: tool[key] for key in ("name", "description", "parameters") if key in tool}
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(raw: Any) -> Any:
    """``tool_choice``: the strings as they are, a named function in the Chat shape."""
    if raw is None or isinstance(raw, str):
        return raw
    if isinstance(raw, Mapping) and raw.get("type") == "function" and raw.get("name"):
        return {"type": "function", "function": {"name": str(raw["name"])}}
    kind = raw.get("type") if isinstance(raw, Mapping) else type(raw).__name__
    raise bad_request(
        f"tool_choice of type {kind!r} is not supported; use auto, none, required or "
        "{'type': 'function', 'name': ...}.",
        "tool_choice",
    )


def _format(text: Any) -> Any:
    """``text.format`` in Chat Completions' ``response_format`` shape."""
    spec = text.get("format") if isinstance(text, Mapping) else None
    if not isinstance(spec, Mapping) or spec.get("type") != "json_schema":
        return spec
    inner = {k: spec[k] for k in ("name", "schema", "strict") if k in spec}
    return {"type": "json_schema", "json_schema": inner}


_ECHOED = (
    "instructions",
    "tools",
    "tool_choice",
    "text",
    "reasoning",
    "previous_response_id",
    "metadata",
    "max_output_tokens",
    "parallel_tool_calls",
    "temperature",
    "top_p",
    "user",
)


def parse_request(body: Any) -> ResponsesRequest:
    """A ``POST /v1/responses`` body as a request.

    Sampling settings (``temperature``, ``max_output_tokens``...) and ``include``,
    ``truncation``, ``prompt_cache_key`` and the like are accepted and ignored.

    Raises:
        ApiError: A 400 naming the field at fault.
    """
    if not isinstance(body, Mapping):
        raise bad_request("The request body must be a JSON object.")
    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, Mapping) else None
    previous = body.get("previous_response_id")
    store = body.get("store", True) is not False
    response_id = new_id("resp_")
    chat_request = ChatRequest(
        messages=_messages(body),
        model=body.get("model") or None,
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice")),
        structured=response_format_spec(_format(body.get("text"))),
        reasoning=reasoning_effort(effort),
        continues=str(previous) if previous else None,
        remember_as=response_id if store else None,
    )
    echo = {key: body.get(key) for key in _ECHOED}
    echo["store"] = store
    return ResponsesRequest(chat_request, bool(body.get("stream")), echo, response_id)


# --------------------------------------------------------------------------- response


class _Ids:
    """The output items' ids of one response (the same in its events and its object)."""

    def __init__(self, response_id: str) -> None:
        self._tail = response_id.removeprefix("resp_")
        self.reasoning = f"rs_{self._tail}"
        self.message = f"msg_{self._tail}"

    def call(self, index: int) -> str:
        """The item id of the answer's ``index``-th function call."""
        return f"fc_{self._tail}_{index}"


def _reasoning_item(ids: _Ids, text: str) -> dict[str, Any]:
    """A ``reasoning`` output item (its text as the summary)."""
    summary = [{"type": "summary_text", "text": text}] if text else []
    return {"type": "reasoning", "id": ids.reasoning, "summary": summary}


def _text_part(text: str) -> dict[str, Any]:
    """An ``output_text`` content part."""
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message_item(ids: _Ids, text: str | None, status: str = "completed") -> dict[str, Any]:
    """An assistant ``message`` output item (``text`` ``None``: no content part yet)."""
    content = [] if text is None else [_text_part(text)]
    return {
        "type": "message",
        "id": ids.message,
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _call_item(ids: _Ids, index: int, call: ToolCall, arguments: str) -> dict[str, Any]:
    """A ``function_call`` output item."""
    return {
        "type": "function_call",
        "id": ids.call(index),
        "call_id": call["id"],
        "name": call["name"],
        "arguments": arguments,
        "status": "completed",
    }


def _output(ids: _Ids, answer: FinishedAnswer) -> list[dict[str, Any]]:
    """The output items of a whole answer: reasoning, message, function calls."""
    items: list[dict[str, Any]] = []
    if answer.reasoning:
        items.append(_reasoning_item(ids, answer.reasoning))
    if answer.text or not answer.tool_calls:
        items.append(_message_item(ids, answer.text))
    items.extend(
        _call_item(ids, i, call, ToolCallPart(i, call).arguments)
        for i, call in enumerate(answer.tool_calls)
    )
    return items


def _usage(answer: FinishedAnswer) -> dict[str, Any]:
    """The ``usage`` object (the service's counts, else estimates)."""
    return {
        "input_tokens": answer.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": answer.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": answer.input_tokens + answer.output_tokens,
    }


def _shell(
    request: ResponsesRequest,
    model: str,
    status: str,
    output: list[dict[str, Any]],
    **extra: Any,
) -> dict[str, Any]:
    """A ``response`` object: the request's echoed fields around a status and output."""
    echo = request.echo
    return {
        "id": request.id,
        "object": "response",
        "created_at": request.created,
        "status": status,
        "model": model,
        "output": output,
        "error": None,
        "incomplete_details": None,
        "usage": None,
        **{key: echo.get(key) for key in _ECHOED},
        "tool_choice": echo.get("tool_choice") or "auto",
        "tools": echo.get("tools") or [],
        "text": echo.get("text") or {"format": {"type": "text"}},
        "parallel_tool_calls": echo.get("parallel_tool_calls") is not False,
        "metadata": echo.get("metadata") or {},
        "store": echo.get("store"),
        "truncation": "disabled",
        **extra,
    }


def _status(answer: FinishedAnswer) -> tuple[str, dict[str, str] | None]:
    """The response's status, and why it is incomplete (an answer cut at its length)."""
    if answer.finish_reason in {"length", "max_tokens"} and not answer.tool_calls:
        return "incomplete", {"reason": "max_output_tokens"}
    return "completed", None


def response_body(request: ResponsesRequest, answer: FinishedAnswer) -> dict[str, Any]:
    """The ``response`` object of a whole answer."""
    status, incomplete = _status(answer)
    return _shell(
        request,
        answer.model,
        status,
        _output(_Ids(request.id), answer),
        usage=_usage(answer),
        incomplete_details=incomplete,
    )


class EventRenderer:
    """Answer parts as Responses stream events, each output item opened and closed in turn."""

    def __init__(self, request: ResponsesRequest, model: str) -> None:
        """Render the answer to ``request`` as ``model``'s."""
        self.request = request
        self.model = model
        self._ids = _Ids(request.id)
        self._sequence = 0
        self._index = -1  # the open (or last) output item's index
        self._open: str | None = None  # "reasoning" or "message" while one is streaming
        self._text: list[str] = []  # the open item's text so far
        self._done: list[dict[str, Any]] = []  # the finished output items

    def _event(self, kind: str, **data: Any) -> bytes:
        """One SSE event with its sequence number."""
        payload = compact({"type": kind, "sequence_number": self._sequence, **data})
        self._sequence += 1
        return f"event: {kind}\ndata: {payload}\n\n".encode()

    def start(self) -> bytes:
        """``response.created`` and ``response.in_progress``."""
        shell = _shell(self.request, self.model, "in_progress", [])
        return self._event("response.created", response=shell) + self._event(
            "response.in_progress", response=shell
        )

    def _close(self) -> bytes:
        """Finish the open reasoning or message item."""
        kind, self._open = self._open, None
        text, self._text = "".join(self._text), []
        where = {"item_id": "", "output_index": self._index}
        if kind == "reasoning":
            where["item_id"] = self._ids.reasoning
            part = {"type": "summary_text", "text": text}
            item = _reasoning_item(self._ids, text)
            out = self._event(
                "response.reasoning_summary_text.done", **where, summary_index=0, text=text
            )
            out += self._event(
                "response.reasoning_summary_part.done", **where, summary_index=0, part=part
            )
        elif kind == "message":
            where["item_id"] = self._ids.message
            item = _message_item(self._ids, text)
            out = self._event(
                "response.output_text.done", **where, content_index=0, text=text, logprobs=[]
            )
            out += self._event(
                "response.content_part.done", **where, content_index=0, part=_text_part(text)
            )
        else:
            return b""
        self._done.append(item)
        return out + self._event("response.output_item.done", output_index=self._index, item=item)

    def _open_item(self, kind: str) -> bytes:
        """Close the open item and open a reasoning or message item."""
        out = self._close()
        self._index += 1
        self._open = kind
        if kind == "reasoning":
            where = {"item_id": self._ids.reasoning, "output_index": self._index}
            item = {**_reasoning_item(self._ids, ""), "summary": []}
            part = {"type": "summary_text", "text": ""}
            return (
                out
                + self._event("response.output_item.added", output_index=self._index, item=item)
                + self._event(
                    "response.reasoning_summary_part.added", **where, summary_index=0, part=part
                )
            )
        where = {"item_id": self._ids.message, "output_index": self._index}
        item = _message_item(self._ids, None, "in_progress")
        return (
            out
            + self._event("response.output_item.added", output_index=self._index, item=item)
            + self._event(
                "response.content_part.added", **where, content_index=0, part=_text_part("")
            )
        )

    def part(self, part: AnswerPart) -> bytes:
        """The events of one part (the end, for the :class:`FinishedAnswer`)."""
        if isinstance(part, TextPart | ReasoningPart):
            kind = "message" if isinstance(part, TextPart) else "reasoning"
            out = b"" if self._open == kind else self._open_item(kind)
            self._text.append(part.text)
            if kind == "message":
                return out + self._event(
                    "response.output_text.delta",
                    item_id=self._ids.message,
                    output_index=self._index,
                    content_index=0,
                    delta=part.text,
                    logprobs=[],
                )
            return out + self._event(
                "response.reasoning_summary_text.delta",
                item_id=self._ids.reasoning,
                output_index=self._index,
                summary_index=0,
                delta=part.text,
            )
        if isinstance(part, ToolCallPart):
            return self._call(part)
        return self.end(part)

    def _call(self, part: ToolCallPart) -> bytes:
        """A whole function call item: added, its arguments, done."""
        out = self._close()
        self._index += 1
        item = _call_item(self._ids, part.index, part.call, part.arguments)
        where = {"item_id": item["id"], "output_index": self._index}
        self._done.append(item)
        return (
            out
            + self._event(
                "response.output_item.added",
                output_index=self._index,
                item={**item, "arguments": "", "status": "in_progress"},
            )
            + self._event("response.function_call_arguments.delta", **where, delta=part.arguments)
            + self._event(
                "response.function_call_arguments.done",
                **where,
                name=part.call["name"],
                arguments=part.arguments,
            )
            + self._event("response.output_item.done", output_index=self._index, item=item)
        )

    def end(self, answer: FinishedAnswer) -> bytes:
        """Close the open item, then ``response.completed`` (or ``.incomplete``)."""
        out = self._close()
        if not self._done:  # an empty answer is still one (empty) message
            out += self._open_item("message") + self._close()
        status, incomplete = _status(answer)
        response = _shell(
            self.request,
            self.model,
            status,
            self._done,
            usage=_usage(answer),
            incomplete_details=incomplete,
        )
        return out + self._event(f"response.{status}", response=response)

    def error(self, error: ApiError) -> bytes:
        """A failure after the stream started: ``response.failed``, then ``error``."""
        failure = {"code": error_body(error)["error"]["type"], "message": error.message}
        response = _shell(self.request, self.model, "failed", self._done, error=failure)
        body = error_body(error)["error"]
        return self._event("response.failed", response=response) + self._event(
            "error",
            code=body["code"] or body["type"],
            message=error.message,
            param=error.param,
            error=body,
        )
