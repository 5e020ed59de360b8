"""Tool calling by prompting: instructions, a streaming parser, the results folded back.

The web chats have no native tool calling, so ``ChatHailuo`` describes the tools in the
prompt (:func:`render_tool_instructions`) and reads calls back out of the answer text
(:class:`ToolCallStreamParser`), one block per call, several for parallel calls::

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

Results go back as ``<tool_result id="..." name="...">...</tool_result>`` blocks
(:func:`render_tool_results`); arguments are checked by
:func:`langchain_hailuo._schema.validate_json_schema`, which structured output shares.
Nothing here knows HTTP or a wire protocol.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.messages.tool import (
    InvalidToolCall,
    ToolCall,
    ToolCallChunk,
    invalid_tool_call,
    tool_call,
    tool_call_chunk,
)

from langchain_hailuo._prompt import compact_json, content_text
from langchain_hailuo._schema import describe_value, validate_json_schema

__all__ = [
    "TOOL_CALL_CLOSE",
    "TOOL_CALL_OPEN",
    "TOOL_RESULT_CLOSE",
    "ParsedReply",
    "StreamDelta",
    "ToolCallStreamParser",
    "ToolChoice",
    "check_tool_choice",
    "new_tool_call_id",
    "normalize_tool_choice",
    "parse_tool_reply",
    "render_tool_call_history",
    "render_tool_instructions",
    "render_tool_results",
    "tool_names_by_id",
]

TOOL_CALL_OPEN = "<tool_call>"
"""Opens one tool call block in the model's answer."""

TOOL_CALL_CLOSE = "</tool_call>"
"""Closes one tool call block."""

TOOL_RESULT_CLOSE = "</tool_result>"
"""Closes one tool result block (the opening tag carries attributes)."""

_MARKERS = (TOOL_CALL_OPEN, TOOL_CALL_CLOSE)

_ARGUMENT_KEYS = ("arguments", "args", "parameters", "input")
"""Keys accepted for the arguments, in order of preference (models drift between them)."""

# A code fence opener (```json, ``` and so on) with any whitespace after it. Models often
# wrap a tool call block in a fence; the fence is then part of the call syntax.
_FENCE_BEFORE_CALL = re.compile(r"```[\w+-]*\s*\Z")
# What might still grow into a fence opener followed by a call block.
_FENCE_PREFIX = re.compile(r"(?:```[\w+-]*\s*|`{1,2})\Z")
_FENCE_AFTER_CALL = re.compile(r"\A\s*```[ \t]*\r?\n")
_FENCE_AT_END = re.compile(r"\A\s*```[ \t]*\Z")
# A fenced block inside a call block: ```json { ... } ```.
_NAME_GUESS = re.compile(r'"name"\s*:\s*"([^"\\]{1,200})"')
"""Finds the tool name in a block whose JSON is broken, for a useful InvalidToolCall."""
_INNER_FENCE = re.compile(r"\A```[\w+-]*\s*(.*?)\s*(?:```\s*)?\Z", re.DOTALL)

ToolChoice = str | Mapping[str, Any] | bool | None
"""What ``bind_tools(tool_choice=...)`` accepts (see :func:`normalize_tool_choice`)."""


def new_tool_call_id() -> str:
    """A fresh tool call id, ``call_<32 hex digits>``."""
    return f"call_{uuid.uuid4().hex}"


# ---------------------------------------------------------------------------------------------
# Tools and tool_choice
# ---------------------------------------------------------------------------------------------


def _function(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``function`` part of an OpenAI tool (or the tool itself when already unwrapped)."""
    function = tool.get("function")
    return function if isinstance(function, Mapping) else tool


def _tool_name(tool: Mapping[str, Any]) -> str:
    """The name of an OpenAI-format tool (``ValueError`` if it has none)."""
    name = _function(tool).get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"Tool {dict(tool)!r} has no name; pass tools through convert_to_openai_tool first."
        )
    return name


def _tool_parameters(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    """The JSON schema of a tool's arguments (an empty object schema when none is given)."""
    parameters = _function(tool).get("parameters")
    if isinstance(parameters, Mapping):
        return parameters
    return {"type": "object", "properties": {}}


def normalize_tool_choice(tool_choice: ToolChoice, tool_names: Sequence[str] | None) -> str:
    """Reduce any ``tool_choice`` spelling to ``"auto"``, ``"any"``, ``"none"`` or a tool's name.

    Accepted: ``None`` / ``"auto"``; ``"any"`` / ``"required"`` / ``True`` (``True`` with one
    tool forces it, as in ``ChatOpenAI``); ``"none"`` / ``False``; a tool name; OpenAI's
    ``{"type": "function", "function": {"name": ...}}``, Anthropic's ``{"type": "tool",
    "name": ...}`` and ``{"type": "any" | "auto" | "none"}``. With ``tool_names`` ``None`` any
    name is taken at its word; a name not bound or an unknown shape is a ``ValueError``.
    """
    choice: Any = tool_choice
    if isinstance(choice, Mapping):
        function = choice.get("function")
        if isinstance(function, Mapping) and function.get("name"):
            choice = function["name"]
        elif choice.get("name"):
            choice = choice["name"]
        else:
            choice = choice.get("type")
    if choice is None or choice == "auto":
        return "auto"
    if choice is True:
        return tool_names[0] if tool_names and len(tool_names) == 1 else "any"
    if choice is False or choice == "none":
        return "none"
    if choice in {"any", "required"}:
        return "any"
    if isinstance(choice, str):
        if tool_names is None or choice in tool_names:
            return choice
        raise ValueError(
            f"tool_choice={choice!r} names no bound tool; bound tools: "
            f"{', '.join(tool_names) or '(none)'}. Use 'auto', 'any', 'none' or one of those."
        )
    raise ValueError(f"Unsupported tool_choice {tool_choice!r}.")


# ---------------------------------------------------------------------------------------------
# Instructions
# ---------------------------------------------------------------------------------------------

_INSTRUCTIONS_HEAD = f"""\
# Tools

You can call the tools listed below. To call a tool, write a tool call block in exactly \
this form:

{TOOL_CALL_OPEN}
{{"name": "<tool name>", "arguments": {{<arguments as a JSON object>}}}}
{TOOL_CALL_CLOSE}

Rules for tool calls:
- One block per call. To make several calls at once, write several blocks one after another.
- Inside a block write only that one JSON object: no code fences, comments or other text.
- "arguments" is a JSON object that matches the tool's parameter schema. Give every required \
parameter; write {{}} when the tool takes no arguments.
- After your tool call blocks, stop writing and wait. The results arrive in the next message \
as <tool_result> blocks. Never write tool results yourself.
- Only call the tools listed here, by their exact names."""

_CHOICE_RULES = {
    "auto": "- Call a tool when it helps you answer. When no tool is needed, answer normally in "
    "plain text, without any tool call block.",
    "any": "- In this reply you MUST call at least one tool. Reply with tool call blocks only.",
    "none": "- In this reply you must NOT call any tool. Answer in plain text only, without any "
    "tool call block.",
}


def _choice_rule(choice: str) -> str:
    """The rule line for a normalised tool choice."""
    if choice in _CHOICE_RULES:
        return _CHOICE_RULES[choice]
    return (
        f'- In this reply you MUST call the tool "{choice}", and no other tool. Reply with its '
        "tool call block only."
    )


def _render_tool(tool: Mapping[str, Any]) -> str:
    """One tool's entry in the instruction block: name, description, parameter schema."""
    function = _function(tool)
    lines = [f"## {_tool_name(tool)}"]
    description = str(function.get("description") or "").strip()
    if description:
        lines.append(description)
    lines.append(f"Parameters (JSON schema): {compact_json(dict(_tool_parameters(tool)))}")
    return "\n".join(lines)


def render_tool_instructions(tools: Sequence[Mapping[str, Any]], tool_choice: ToolChoice) -> str:
    """The instruction block that teaches the model the call syntax and lists the tools.

    The block has a ``# Tools`` heading, the ``<tool_call>`` form, the rules (one block per
    call, the ``tool_choice`` rule) and each tool as ``## name``, its description and its JSON
    schema. It depends only on the arguments (tool order kept), so the same tools give the same
    text on every call. ``""`` when there are no tools and none is required.

    Raises:
        ValueError: ``tool_choice`` names an unknown tool, or forces a call with no tools.
    """
    names = [_tool_name(tool) for tool in tools]
    choice = normalize_tool_choice(tool_choice, names)
    if not tools:
        if choice == "any":
            raise ValueError("tool_choice forces a tool call, but no tools are bound.")
        return ""
    parts = [
        _INSTRUCTIONS_HEAD,
        _choice_rule(choice),
        "",
        "Available tools:",
        "",
        "\n\n".join(_render_tool(tool) for tool in tools),
    ]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# Reading calls out of text
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamDelta:
    """What one piece of streamed text yields.

    Attributes:
        content: Prose that is safe to stream now (never tool call syntax).
        tool_call_chunks: One complete chunk per valid call finished in this piece, ready for
            ``AIMessageChunk(tool_call_chunks=...)``.
        invalid_tool_calls: Calls finished here that cannot be used (unparseable, unknown
            tool, arguments off the schema), each in its own ``index`` slot.
    """

    content: str = ""
    tool_call_chunks: list[ToolCallChunk] = field(default_factory=list)
    invalid_tool_calls: list[InvalidToolCall] = field(default_factory=list)


@dataclass(frozen=True)
class ParsedReply:
    """A whole answer: stripped prose, valid calls (with ids), invalid ones (with ``error``)."""

    content: str
    tool_calls: list[ToolCall]
    invalid_tool_calls: list[InvalidToolCall]


def _hold_length(text: str) -> int:
    """Length of ``text``'s longest suffix that could still become call syntax."""
    marker_hold = 0
    for marker in _MARKERS:
        for size in range(min(len(marker) - 1, len(text)), marker_hold, -1):
            if text.endswith(marker[:size]):
                marker_hold = size
                break
    open_hold = 0
    for size in range(min(len(TOOL_CALL_OPEN) - 1, len(text)), 0, -1):
        if text.endswith(TOOL_CALL_OPEN[:size]):
            open_hold = size
            break
    head = text[: len(text) - open_hold]
    pattern = _FENCE_BEFORE_CALL if open_hold else _FENCE_PREFIX
    match = pattern.search(head)
    fence_hold = len(text) - match.start() if match else 0
    return max(marker_hold, fence_hold)


def _strip_inner_fence(body: str) -> str:
    """The JSON inside a call block, with a surrounding code fence removed."""
    body = body.strip()
    match = _INNER_FENCE.match(body)
    return match.group(1) if match else body


def _decode_call_objects(body: str) -> list[Any]:
    """Every top-level JSON value in a block body (``ValueError`` if the first is invalid)."""
    decoder = json.JSONDecoder()
    text = _strip_inner_fence(body)
    values: list[Any] = []
    start = _next_json_start(text, 0)
    while start >= 0:
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError as error:
            if values:
                break  # trailing text that merely contains a brace
            raise ValueError(
                f"the tool call block holds no valid JSON: {error.msg} at character {error.pos}"
            ) from None
        values.extend(value if isinstance(value, list) else [value])
        start = _next_json_start(text, end)
    if not values:
        raise ValueError("the tool call block holds no JSON object")
    return values


def _next_json_start(text: str, position: int) -> int:
    """Index of the next ``{`` or ``[`` at or after ``position``, or -1."""
    starts = [i for i in (text.find("{", position), text.find("[", position)) if i >= 0]
    return min(starts) if starts else -1


def _extract_name_and_arguments(obj: Any) -> tuple[str | None, Any, str | None]:
    """Name, arguments and error of one call object (tolerating the usual model deviations)."""
    if not isinstance(obj, dict):
        return None, obj, f"a tool call must be a JSON object, got {describe_value(obj)}"
    function = obj.get("function")
    if isinstance(function, dict) and "name" in function:
        obj = {**obj, **function}
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return None, obj, 'the tool call has no "name"'
    name = name.strip()
    arguments: Any = next((obj[key] for key in _ARGUMENT_KEYS if key in obj), None)
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        arguments = {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as error:
            return name, arguments, f'"arguments" is a string that is not JSON ({error.msg})'
    if not isinstance(arguments, dict):
        return (
            name,
            arguments,
            f'"arguments" must be a JSON object, got {describe_value(arguments)}',
        )
    return name, arguments, None


def _args_text(arguments: Any) -> str:
    """Arguments as the JSON string LangChain keeps in chunks (unicode not escaped)."""
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, ensure_ascii=False)


class ToolCallStreamParser:
    """Split streamed answer text into prose and tool calls, delta by delta.

    Feed each text delta to :meth:`feed`, call :meth:`finish` at the end, read :attr:`result`.
    Whatever the cut points between deltas, the streamed ``content`` never holds call syntax
    (markers, a fence around a block, its JSON), only the shortest suffix that could still
    become such syntax is held back, and the same text gives the same result.

    Tolerated: a code fence around a block or its JSON, ``"arguments"`` as a JSON string,
    ``"args"`` / ``"parameters"`` / ``"input"`` for it, an OpenAI ``{"function": {...}}``
    wrapper, text after the JSON, several objects (or an array) in one block, a block never
    closed (or cut short by the next opening marker), and stray closing markers (dropped).
    """

    def __init__(
        self,
        tools: Sequence[Mapping[str, Any]] | None = None,
        *,
        id_factory: Callable[[], str] = new_tool_call_id,
        coerce_integers: bool = True,
    ) -> None:
        """Parse one answer's calls of ``tools`` (``None``: any name and arguments object)."""
        self._schemas: dict[str, Mapping[str, Any]] | None = (
            None if tools is None else {_tool_name(t): _tool_parameters(t) for t in tools}
        )
        self._id_factory = id_factory
        self._coerce_integers = coerce_integers
        self._buffer = ""
        self._in_call = False
        self._fenced_call = False
        self._content: list[str] = []
        self._tool_calls: list[ToolCall] = []
        self._invalid: list[InvalidToolCall] = []
        self._index = 0
        self._finished = False

    @property
    def result(self) -> ParsedReply:
        """The whole answer: prose and calls (``RuntimeError`` before :meth:`finish`)."""
        if not self._finished:
            raise RuntimeError("ToolCallStreamParser.result is available after finish().")
        return ParsedReply(
            content="".join(self._content).strip(),
            tool_calls=list(self._tool_calls),
            invalid_tool_calls=list(self._invalid),
        )

    def feed(self, text: str) -> StreamDelta:
        """The prose safe to stream now and the calls ``text`` completes."""
        if self._finished:
            raise RuntimeError("ToolCallStreamParser.feed() called after finish().")
        self._buffer += text
        return self._drain(final=False)

    def finish(self) -> StreamDelta:
        """End the answer: release held-back text and parse an unclosed call block."""
        if self._finished:
            return StreamDelta()
        delta = self._drain(final=True)
        self._finished = True
        return delta

    # -- internals --------------------------------------------------------------------------

    def _drain(self, *, final: bool) -> StreamDelta:
        """Consume as much of the buffer as can be decided now."""
        content: list[str] = []
        chunks: list[ToolCallChunk] = []
        invalid: list[InvalidToolCall] = []
        while True:
            if self._in_call:
                if not self._drain_call(final=final, chunks=chunks, invalid=invalid):
                    break
            elif not self._drain_text(final=final, content=content):
                break
        text = "".join(content)
        self._content.append(text)
        return StreamDelta(content=text, tool_call_chunks=chunks, invalid_tool_calls=invalid)

    def _emit_text(self, text: str, content: list[str]) -> None:
        """Pass prose on."""
        if text:
            content.append(text)

    def _drain_text(self, *, final: bool, content: list[str]) -> bool:
        """Handle the buffer in prose mode. Returns whether to continue draining."""
        if self._fenced_call and not self._drop_fence_after_call(final=final):
            return False
        buffer = self._buffer
        positions = [(buffer.find(m), m) for m in _MARKERS]
        found = [(pos, marker) for pos, marker in positions if pos >= 0]
        if not found:
            keep = 0 if final else _hold_length(buffer)
            self._emit_text(buffer[: len(buffer) - keep], content)
            self._buffer = buffer[len(buffer) - keep :]
            return False
        pos, marker = min(found)
        before = buffer[:pos]
        self._buffer = buffer[pos + len(marker) :]
        if marker == TOOL_CALL_CLOSE:  # a stray closing marker: drop it
            self._emit_text(before, content)
            return True
        fence = _FENCE_BEFORE_CALL.search(before)
        # A fence right before the marker wraps the call, unless it closes an open code block.
        prose = "".join(self._content) + "".join(content) + before[: fence.start()] if fence else ""
        if fence and prose.count("```") % 2 == 0:
            self._fenced_call = True
            before = before[: fence.start()]
        self._emit_text(before, content)
        self._in_call = True
        return True

    def _drop_fence_after_call(self, *, final: bool) -> bool:
        """Drop the fence line closing a fenced call block; ``False`` while more text is needed."""
        match = _FENCE_AFTER_CALL.match(self._buffer) or (
            _FENCE_AT_END.match(self._buffer) if final else None
        )
        if match:
            self._buffer = self._buffer[match.end() :]
            self._fenced_call = False
            return True
        stripped = self._buffer.lstrip()
        if stripped.startswith(TOOL_CALL_OPEN):
            return True  # another call block inside the same fence
        undecided = (
            TOOL_CALL_OPEN.startswith(stripped)
            or "```".startswith(stripped)
            or (stripped.startswith("```") and not stripped[3:].strip(" \t"))
        )
        if undecided and not final:
            return False
        self._fenced_call = False
        return True

    def _drain_call(
        self, *, final: bool, chunks: list[ToolCallChunk], invalid: list[InvalidToolCall]
    ) -> bool:
        """Handle the buffer inside a call block. Returns whether to continue draining."""
        buffer = self._buffer
        positions = [(buffer.find(m), m) for m in _MARKERS]
        found = [(pos, marker) for pos, marker in positions if pos >= 0]
        if not found and not final:
            return False
        if found:
            pos, marker = min(found)
            body = buffer[:pos]
            # A new opening marker ends an unclosed block and starts the next one.
            self._buffer = (
                buffer[pos + len(marker) :] if marker == TOOL_CALL_CLOSE else buffer[pos:]
            )
        else:
            body, self._buffer = buffer, ""
        self._in_call = False
        self._record_block(body, chunks, invalid)
        return True

    def _record_block(
        self, body: str, chunks: list[ToolCallChunk], invalid: list[InvalidToolCall]
    ) -> None:
        """Parse one block body into calls (valid ones as chunks, the rest as invalid)."""
        try:
            objects = _decode_call_objects(body)
        except ValueError as decode_error:
            guess = _NAME_GUESS.search(body)
            self._add_invalid(
                guess.group(1) if guess else None, body.strip(), str(decode_error), invalid
            )
            return
        for obj in objects:
            name, arguments, problem = _extract_name_and_arguments(obj)
            if problem is None and name is not None:
                arguments, problem = self._check_arguments(name, arguments)
            if problem is not None or name is None:
                raw = _args_text(arguments) if name else _args_text(obj)
                self._add_invalid(name, raw, problem or "invalid tool call", invalid)
                continue
            call_id = self._id_factory()
            self._tool_calls.append(tool_call(name=name, args=arguments, id=call_id))
            chunks.append(
                tool_call_chunk(
                    name=name, args=_args_text(arguments), id=call_id, index=self._index
                )
            )
            self._index += 1

    def _check_arguments(self, name: str, arguments: dict[str, Any]) -> tuple[Any, str | None]:
        """Check the tool name and validate the arguments against its schema."""
        if self._schemas is None:
            return arguments, None
        if name not in self._schemas:
            known = ", ".join(self._schemas) or "(none)"
            return arguments, f"unknown tool {name!r}; available tools: {known}"
        checked, errors = validate_json_schema(
            arguments, self._schemas[name], coerce_integers=self._coerce_integers
        )
        if errors:
            return arguments, (
                f"arguments for tool {name!r} do not match its schema: " + "; ".join(errors)
            )
        return checked, None

    def _add_invalid(
        self, name: str | None, args: str, error: str, invalid: list[InvalidToolCall]
    ) -> None:
        """Record an unusable call (it takes an index slot, as valid calls do)."""
        call = invalid_tool_call(name=name, args=args, id=self._id_factory(), error=error)
        call["index"] = self._index
        self._index += 1
        self._invalid.append(call)
        invalid.append(call)


def parse_tool_reply(
    text: str,
    tools: Sequence[Mapping[str, Any]] | None = None,
    *,
    id_factory: Callable[[], str] = new_tool_call_id,
) -> ParsedReply:
    """Split a whole (non-streamed) answer into prose, valid calls and invalid calls."""
    parser = ToolCallStreamParser(tools, id_factory=id_factory)
    parser.feed(text)
    parser.finish()
    return parser.result


# ---------------------------------------------------------------------------------------------
# Results and history
# ---------------------------------------------------------------------------------------------


def _attribute(value: str) -> str:
    """A value for a ``key="value"`` attribute (quotes and newlines escaped)."""
    return json.dumps(value, ensure_ascii=False)


def tool_names_by_id(messages: Sequence[BaseMessage]) -> dict[str, str]:
    """Tool call id -> tool name, from the AI messages of a history."""
    names: dict[str, str] = {}
    for message in messages:
        if isinstance(message, AIMessage):
            for call in message.tool_calls:
                if call.get("id"):
                    names[str(call["id"])] = call["name"]
    return names


def render_tool_results(
    messages: Sequence[BaseMessage],
    *,
    tool_names: Mapping[str, str] | None = None,
    reminder: bool = True,
) -> str:
    """Render tool messages as labelled result blocks for the next turn.

    Each :class:`~langchain_core.messages.ToolMessage` becomes a ``<tool_result id="call_1"
    name="get_weather">`` block, with ``status="error"`` for failed tools; list content is
    joined (JSON parts as JSON, others as a short note). AI messages in ``messages`` (and
    ``tool_names``) name the tools by call id; ``reminder`` ends with a line saying how to go
    on. ``""`` when there is no tool message.
    """
    names = {**tool_names_by_id(messages), **(tool_names or {})}
    blocks = []
    for message in messages:
        if not isinstance(message, ToolMessage):
            continue
        call_id = str(message.tool_call_id)
        name = message.name or names.get(call_id) or "unknown"
        status = ' status="error"' if message.status == "error" else ""
        body = content_text(message.content, "tool_result").strip()
        blocks.append(
            f"<tool_result id={_attribute(call_id)} name={_attribute(name)}{status}>\n"
            f"{body}\n{TOOL_RESULT_CLOSE}"
        )
    if not blocks:
        return ""
    lines = ["Results of your tool calls:", "", "\n".join(blocks)]
    if reminder:
        lines += [
            "",
            (
                "Use these results to continue. If you need more tools, reply with "
                f"{TOOL_CALL_OPEN} blocks again; otherwise give your final answer."
            ),
        ]
    return "\n".join(lines)


def render_tool_call_history(message: AIMessage) -> str:
    """Fold an earlier AI answer with tool calls back into text, in the model's own syntax.

    For a new chat started from a history with calls: the prose, then one ``<tool_call>``
    block per call (no ids: the results name them). Invalid calls are left out, so the model
    is not shown bad syntax as an example.
    """
    content = content_text(message.content, "tool_result") if message.content else ""
    blocks = [
        f"{TOOL_CALL_OPEN}\n"
        f"{compact_json({'name': call['name'], 'arguments': call['args']})}\n"
        f"{TOOL_CALL_CLOSE}"
        for call in message.tool_calls
    ]
    return "\n".join(part for part in [content.strip(), *blocks] if part)


# ---------------------------------------------------------------------------------------------
# tool_choice after the reply
# ---------------------------------------------------------------------------------------------


def check_tool_choice(
    tool_choice: ToolChoice,
    tool_calls: Sequence[ToolCall],
    invalid_tool_calls: Sequence[InvalidToolCall] = (),
    *,
    tool_names: Sequence[str] | None = None,
) -> str | None:
    """``None`` if a reply follows ``tool_choice``, else a corrective instruction for the next turn.

    It corrects a forced call (``"any"`` or a name) that was not made, or a call made under
    ``"none"``; the invalid calls' errors go into the text.
    """
    choice = normalize_tool_choice(tool_choice, tool_names)
    called = [call["name"] for call in tool_calls]
    if choice == "auto" or _choice_followed(choice, called, attempted=bool(invalid_tool_calls)):
        return None
    if choice == "none":
        return (
            "You must not call any tool in this reply. Answer the previous request again in "
            f"plain text only, without any {TOOL_CALL_OPEN} block."
        )
    problems = "".join(
        f"\n- {call.get('name') or 'unnamed call'}: {call.get('error')}"
        for call in invalid_tool_calls
    )
    problem_text = f" These calls could not be used:{problems}\n" if problems else ""
    if choice == "any":
        return (
            "Your previous reply did not call a tool, but this reply must call at least one."
            f"{problem_text} Reply again with only {TOOL_CALL_OPEN} blocks, following the tool "
            "call rules exactly."
        )
    other = sorted({name for name in called if name != choice})
    made = f" You called {', '.join(repr(n) for n in other)} instead." if other else " You did not."
    return (
        f'This reply must call the tool "{choice}" and no other tool.{made}{problem_text} '
        f'Reply again with only a {TOOL_CALL_OPEN} block calling "{choice}".'
    )


def _choice_followed(choice: str, called: Sequence[str], *, attempted: bool) -> bool:
    """Whether calls named ``called`` satisfy a normalised (non-auto) tool choice."""
    if choice == "none":
        return not called and not attempted
    if choice == "any":
        return bool(called)
    return bool(called) and all(name == choice for name in called)
