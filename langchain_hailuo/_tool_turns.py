"""What ``ChatHailuo`` adds to a turn when tools or a structured-output schema are bound.

The prompting core lives in :mod:`langchain_hailuo._tools` (tool syntax, parser, results)
and :mod:`langchain_hailuo._structured` (schema instructions, JSON extraction). This module
ties them to ``ChatHailuo``'s turns, still without I/O:

- :class:`TurnTools` reads a call's bound ``tools`` / ``tool_choice`` /
  ``hailuo_structured_output`` keyword arguments once: the instruction text and its short
  hash, the tools the answer is parsed against, and the check that may ask for one
  corrective turn;
- :class:`StructuredSpec` is what ``with_structured_output`` binds: the method, the schema
  and the parser that turns an answer into the requested value;
- :func:`fold_new_chat` and :func:`continued_turn` build what a new chat, or a continued one,
  is sent (the turn planner, :mod:`langchain_hailuo._turns`, calls them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.messages.tool import InvalidToolCall, ToolCall
from pydantic import BaseModel, ValidationError

from langchain_hailuo._messages import short_hash
from langchain_hailuo._structured import (
    MissingToolCallError,
    SchemaValidationError,
    StructuredMethod,
    StructuredOutputError,
    parse_structured_reply,
    render_schema_instruction,
    repair_instruction,
    schema_to_tool,
)
from langchain_hailuo._tools import (
    check_tool_choice,
    normalize_tool_choice,
    render_tool_instructions,
    render_tool_results,
)
from langchain_hailuo.types import MessageDict

__all__ = [
    "INSTRUCTIONS_WITHDRAWN",
    "STRUCTURED_KWARG",
    "Correction",
    "StructuredSpec",
    "TurnTools",
    "continued_turn",
    "fold_new_chat",
]


STRUCTURED_KWARG = "hailuo_structured_output"
"""The call keyword argument ``with_structured_output`` binds (a :class:`StructuredSpec`)."""

INSTRUCTIONS_WITHDRAWN = (
    "Note: the tool and output-format instructions given earlier in this chat no longer "
    "apply. Answer in plain text, without tool call blocks."
)
"""Sent at the start of a continued chat's turn when its instructions were unbound."""


# --------------------------------------------------------------------------- structured output


def _pydantic_errors(error: ValidationError) -> list[str]:
    """Pydantic's errors as ``$.path: message`` lines (the repair turn quotes them)."""
    lines = []
    for item in error.errors():
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"])
        lines.append(f"${path}: {item['msg']}")
    return lines


@dataclass(frozen=True)
class StructuredSpec:
    """What ``with_structured_output`` binds to the model.

    Attributes:
        method: ``json_schema``, ``json_mode`` or ``function_calling``.
        schema_json: The JSON schema (``None`` for ``json_mode`` without a schema).
        schema: The schema as given: a Pydantic class (answers become instances), a
            TypedDict, a JSON schema dict, or ``None``.
    """

    method: StructuredMethod
    schema_json: Mapping[str, Any] | None
    schema: Any = None

    @property
    def tool(self) -> dict[str, Any] | None:
        """``function_calling``: the one tool made from the schema."""
        if self.method != "function_calling" or not self.schema_json:
            return None
        return schema_to_tool(self.schema_json)

    @property
    def tool_name(self) -> str | None:
        """``function_calling``: that tool's name."""
        tool = self.tool
        return str(tool["function"]["name"]) if tool else None

    def instruction(self) -> str:
        """The instruction that asks for the structure."""
        return render_schema_instruction(self.schema_json, self.method)

    def _build(self, value: Any, text: str) -> Any:
        """A Pydantic instance from a checked JSON value (other schemas: the value)."""
        schema = self.schema
        if not isinstance(schema, type):
            return value
        try:
            if issubclass(schema, BaseModel):
                return schema.model_validate(value)
            from pydantic import v1  # noqa: PLC0415 - only for pydantic.v1 models

            if issubclass(schema, v1.BaseModel):
                return schema.parse_obj(value)
        except ValidationError as error:
            raise SchemaValidationError(_pydantic_errors(error), value, llm_output=text) from None
        except Exception as error:  # noqa: BLE001 - pydantic.v1's own ValidationError
            raise StructuredOutputError(
                f"The JSON does not fit {schema.__name__}: {error}", llm_output=text
            ) from None
        return value

    def parse_text(self, text: str) -> Any:
        """The requested value from an answer's raw text (tool syntax included)."""
        return self._build(parse_structured_reply(text, self.schema_json, self.method), text)

    def parse_message(self, message: BaseMessage) -> Any:
        """The requested value from the model's answer (the ``with_structured_output`` parser)."""
        # ``function_calling`` reads the call to the schema's tool (``tool_calls``); an answer whose
        # call was unusable raises with the call's error; an answer without a call is read as bare
        # JSON. The JSON methods read the answer text.
        text = message.text
        if self.method == "function_calling" and isinstance(message, AIMessage):
            name = self.tool_name
            calls = [call for call in message.tool_calls if call["name"] == name]
            if calls:
                return self._build(calls[0]["args"], text)
            if message.invalid_tool_calls:
                error = message.invalid_tool_calls[0].get("error") or "invalid tool call"
                raise MissingToolCallError(
                    f'The call to "{name}" could not be used: {error}', llm_output=text
                )
        return self.parse_text(text)


# --------------------------------------------------------------------------- a call's tools


@dataclass(frozen=True)
class Correction:
    """The one corrective turn a checked answer may get.

    Attributes:
        kind: ``tool_choice`` (a forced choice was not followed) or ``structured`` (the
            reply did not give the requested structure).
        text: The user turn to send to the same chat.
    """

    kind: Literal["tool_choice", "structured"]
    text: str


@dataclass(frozen=True)
class TurnTools:
    """The tools and structured output bound to one call.

    Attributes:
        tools: The bound tools in OpenAI format.
        tool_choice: The normalised choice (``auto``, ``any``, ``none`` or a tool name).
        structured: The ``with_structured_output`` spec, if any.
    """

    tools: tuple[Mapping[str, Any], ...] = ()
    tool_choice: str = "auto"
    structured: StructuredSpec | None = None

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> TurnTools:
        """Read ``tools``, ``tool_choice`` and the structured spec from call kwargs."""
        tools = tuple(kwargs.get("tools") or ())
        names = [str(tool.get("function", tool).get("name")) for tool in tools]
        choice = normalize_tool_choice(kwargs.get("tool_choice"), names)
        if not tools and choice not in {"auto", "none"}:
            raise ValueError(f"tool_choice={choice!r} forces a tool call, but no tools are bound.")
        spec = kwargs.get(STRUCTURED_KWARG)
        return cls(tools, choice, spec if isinstance(spec, StructuredSpec) else None)

    @property
    def tool_names(self) -> list[str]:
        """The bound tools' names."""
        return [str(tool.get("function", tool).get("name")) for tool in self.tools]

    @property
    def parser_tools(self) -> list[Mapping[str, Any]] | None:
        """The tools an answer is parsed against (``None``: answers are plain text)."""
        tools = list(self.tools)
        spec_tool = self.structured.tool if self.structured else None
        if spec_tool is not None:
            tools.append(spec_tool)
        return tools or None

    @property
    def instructions(self) -> str:
        """The instruction text for the chat (tools first, then the output format)."""
        parts = []
        if self.tools:
            parts.append(render_tool_instructions(list(self.tools), self.tool_choice))
        if self.structured is not None:
            parts.append(self.structured.instruction())
        return "\n\n".join(part for part in parts if part)

    @property
    def instructions_hash(self) -> str | None:
        """A short hash of :attr:`instructions` (``response_metadata["tools_hash"]``)."""
        text = self.instructions
        if not text:
            return None
        return short_hash(text)

    @property
    def checked(self) -> bool:
        """Whether answers are checked (a forced ``tool_choice``, or structured output)."""
        return (bool(self.tools) and self.tool_choice != "auto") or self.structured is not None

    def correction(
        self,
        text: str,
        tool_calls: Sequence[ToolCall],
        invalid_tool_calls: Sequence[InvalidToolCall],
    ) -> Correction | None:
        """The corrective turn a checked answer needs, or ``None`` when it is fine."""
        if self.tools and self.tool_choice != "auto":
            bound = set(self.tool_names)
            own = [call for call in tool_calls if call["name"] in bound]
            instruction = check_tool_choice(
                self.tool_choice, own, invalid_tool_calls, tool_names=self.tool_names
            )
            if instruction is not None:
                return Correction("tool_choice", instruction)
        if self.structured is not None:
            try:
                self.structured.parse_text(text)
            except StructuredOutputError as error:
                return Correction(
                    "structured",
                    repair_instruction(
                        error, self.structured.method, tool_name=self.structured.tool_name
                    ),
                )
        return None


# --------------------------------------------------------------------------- messages


def fold_new_chat(
    messages: Sequence[BaseMessage],
    dicts: Sequence[MessageDict],
    names: Mapping[str, str],
    instructions: str,
) -> list[MessageDict]:
    """What a new chat is sent: the instructions, then the history with tool runs grouped."""
    # A run of tool messages becomes one user message of result blocks (no reminder line).
    folded: list[MessageDict] = []
    if instructions:
        folded.append({"role": "system", "content": instructions})
    index = 0
    while index < len(messages):
        if isinstance(messages[index], ToolMessage):
            end = index
            while end < len(messages) and isinstance(messages[end], ToolMessage):
                end += 1
            text = render_tool_results(messages[index:end], tool_names=names, reminder=False)
            folded.append({"role": "user", "content": text})
            index = end
            continue
        folded.append(dicts[index])
        index += 1
    return folded


def continued_turn(
    messages: Sequence[BaseMessage],
    dicts: Sequence[MessageDict],
    names: Mapping[str, str],
    *,
    prefix: str = "",
    reminder: bool = True,
) -> str:
    """The text of a continued chat's turn: tool results and the user's new messages."""
    # Only what follows the last AI message of ``messages`` is sent. Each run of tool messages
    # becomes one block of labelled results keyed by tool call id; runs of user messages are joined
    # with newlines; parts are separated by blank lines.
    start = 0
    for index, message in enumerate(messages):
        if isinstance(message, AIMessage):
            start = index + 1
    parts = [prefix] if prefix else []
    users: list[str] = []
    index = start
    while index < len(messages):
        if isinstance(messages[index], ToolMessage):
            if users:
                parts.append("\n".join(users))
                users = []
            end = index
            while end < len(messages) and isinstance(messages[end], ToolMessage):
                end += 1
            parts.append(
                render_tool_results(messages[index:end], tool_names=names, reminder=reminder)
            )
            index = end
            continue
        item = dicts[index]
        if item["role"] == "user" and item["content"].strip():
            users.append(item["content"].strip())
        index += 1
    if users:
        parts.append("\n".join(users))
    return "\n\n".join(parts)
