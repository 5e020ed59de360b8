"""Structured output by prompting: schema instructions, JSON extraction, validation, repair.

``with_structured_output`` cannot ask the web chat for JSON or a forced function call, so
:func:`render_schema_instruction` asks in words (``function_calling`` reuses the tool call
syntax of :mod:`langchain_hailuo._tools` with one tool made from the schema),
:func:`parse_structured_reply` turns the answer into a validated value or raises a
:class:`StructuredOutputError`, and :func:`repair_instruction` words the one repair turn.
The errors subclass LangChain's ``OutputParserException``, so ``include_raw=True`` chains
report them as ``parsing_error``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from langchain_core.exceptions import OutputParserException

from langchain_hailuo._prompt import compact_json
from langchain_hailuo._schema import validate_json_schema
from langchain_hailuo._tools import (
    TOOL_CALL_OPEN,
    parse_tool_reply,
    render_tool_instructions,
)

__all__ = [
    "JSONExtractionError",
    "MissingToolCallError",
    "SchemaValidationError",
    "StructuredMethod",
    "StructuredOutputError",
    "extract_json",
    "parse_structured_reply",
    "render_schema_instruction",
    "repair_instruction",
    "schema_to_tool",
    "validate_against_schema",
]

StructuredMethod = Literal["function_calling", "json_mode", "json_schema"]
"""The ``method`` values of ``with_structured_output``."""

_METHODS = ("function_calling", "json_mode", "json_schema")
_FENCED = re.compile(r"```[\w+-]*[ \t]*\r?\n?(.*?)```", re.DOTALL)
_TOOL_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_PREVIEW = 80


class StructuredOutputError(OutputParserException):
    """The reply could not be turned into the requested structure."""

    def __init__(self, message: str, *, llm_output: str | None = None) -> None:
        """Create the error: ``message`` says what was wrong with the reply ``llm_output``."""
        super().__init__(message, llm_output=llm_output)
        self.message = message


class JSONExtractionError(StructuredOutputError):
    """The reply holds no usable JSON value."""


class SchemaValidationError(StructuredOutputError):
    """The reply's JSON ``value`` is off the schema; ``errors``: one ``$.path: ...`` per problem."""

    def __init__(self, errors: list[str], value: Any, *, llm_output: str | None = None) -> None:
        """Create the error for ``value`` and its problems."""
        lines = "\n".join(f"- {error}" for error in errors)
        super().__init__(f"The JSON does not match the schema:\n{lines}", llm_output=llm_output)
        self.errors = errors
        self.value = value


class MissingToolCallError(StructuredOutputError):
    """``function_calling``: the reply made no usable call to the schema's tool."""


def _check_method(method: str) -> None:
    """Reject unknown methods with a message naming the known ones."""
    if method not in _METHODS:
        raise ValueError(
            f"Unknown structured output method {method!r}; use one of {', '.join(_METHODS)}."
        )


def schema_to_tool(schema_json: Mapping[str, Any]) -> dict[str, Any]:
    """The one OpenAI-format tool of the ``function_calling`` method (an OpenAI tool is kept as is).

    A JSON schema becomes a tool named after its ``title`` (``structured_output`` without one;
    characters other than letters, digits, ``_`` and ``-`` become ``_``), described by its
    ``description``, whose parameters are the rest of the schema (``$defs`` stay).
    """
    if schema_json.get("type") == "function" and isinstance(schema_json.get("function"), Mapping):
        return dict(schema_json)
    title = str(schema_json.get("title") or "structured_output")
    name = _TOOL_NAME_CHARS.sub("_", title).strip("_") or "structured_output"
    description = str(schema_json.get("description") or "Give your answer in this structure.")
    parameters = {k: v for k, v in schema_json.items() if k not in {"title", "description"}}
    return {
        "type": "function",
        "function": {"name": name, "description": description, "parameters": parameters},
    }


def _tool_schema(schema_json: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """Name and parameter schema of the ``function_calling`` tool."""
    function = schema_to_tool(schema_json)["function"]
    return str(function["name"]), function.get("parameters") or {}


def render_schema_instruction(
    schema_json: Mapping[str, Any] | None, method: StructuredMethod = "json_schema"
) -> str:
    """The instruction that asks the model for output in the schema's shape.

    ``json_schema``: one conforming JSON value, nothing else; ``json_mode``: one JSON object
    (the schema, when given, shown as the shape); ``function_calling``: the tool instructions
    for :func:`schema_to_tool`'s tool, forced. ``ValueError`` for an unknown method or a
    missing schema (only ``json_mode`` may have none).
    """
    _check_method(method)
    if method == "json_mode":
        text = (
            "# Output format\n\n"
            "Reply with one valid JSON object and nothing else: no text before or after it, "
            "no code fences, no comments."
        )
        if schema_json:
            text += f"\n\nThe object must conform to this JSON schema: {compact_json(schema_json)}"
        return text
    if not schema_json:
        raise ValueError(f"Structured output with method={method!r} needs a schema.")
    if method == "function_calling":
        tool = schema_to_tool(schema_json)
        name = tool["function"]["name"]
        return (
            render_tool_instructions([tool], name)
            + f'\n\nGive your whole answer as the arguments of one call to "{name}".'
        )
    return (
        "# Output format\n\n"
        "Reply with one JSON value that conforms to the JSON schema below, and nothing else: "
        "no text before or after it, no code fences, no comments.\n\n"
        f"JSON schema: {compact_json(schema_json)}"
    )


def _preview(text: str) -> str:
    """The start of a reply, for error messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= _PREVIEW else flat[: _PREVIEW - 3] + "..."


def _longest_embedded_json(text: str) -> tuple[bool, Any]:
    """The longest JSON object or array embedded in ``text`` (found, value)."""
    decoder = json.JSONDecoder()
    best: tuple[int, Any] | None = None
    position = 0
    while True:
        starts = [i for i in (text.find("{", position), text.find("[", position)) if i >= 0]
        if not starts:
            break
        start = min(starts)
        try:
            value, end = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        if best is None or end - start > best[0]:
            best = (end - start, value)
        position = end
    return (False, None) if best is None else (True, best[1])


def extract_json(text: str) -> Any:
    """The one JSON value in a reply (:class:`JSONExtractionError` if none).

    Tried in order: the whole reply; each code fence's body; the longest JSON object or array
    embedded in prose (``Here you go: {...} Enjoy!``).
    """
    stripped = text.strip()
    if not stripped:
        raise JSONExtractionError("The reply is empty; a JSON value was expected.", llm_output=text)
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as error:
        first_error = error
    for match in _FENCED.finditer(stripped):
        try:
            return json.loads(match.group(1).strip())
        except json.JSONDecodeError:
            continue
    found, value = _longest_embedded_json(stripped)
    if found:
        return value
    raise JSONExtractionError(
        f"The reply holds no valid JSON object or array ({first_error.msg} at character "
        f"{first_error.pos}). It begins: {_preview(stripped)!r}",
        llm_output=text,
    )


def validate_against_schema(
    value: Any,
    schema_json: Mapping[str, Any],
    *,
    coerce_integers: bool = True,
    llm_output: str | None = None,
) -> Any:
    """``value`` checked against the schema, whole floats made ints where integers are wanted.

    Raises :class:`SchemaValidationError` listing every problem.
    """
    checked, errors = validate_json_schema(value, schema_json, coerce_integers=coerce_integers)
    if errors:
        raise SchemaValidationError(errors, value, llm_output=llm_output)
    return checked


def _parse_function_call(text: str, schema_json: Mapping[str, Any]) -> Any:
    """The arguments of the schema tool's call, or JSON written without the call syntax."""
    tool = schema_to_tool(schema_json)
    name, parameters = _tool_schema(schema_json)
    reply = parse_tool_reply(text, [tool])
    if reply.tool_calls:
        return reply.tool_calls[0]["args"]
    if reply.invalid_tool_calls:
        error = reply.invalid_tool_calls[0].get("error") or "invalid tool call"
        raise MissingToolCallError(
            f'The call to "{name}" could not be used: {error}', llm_output=text
        )
    try:
        value = extract_json(text)
    except JSONExtractionError:
        raise MissingToolCallError(
            f'The reply does not call "{name}" with a {TOOL_CALL_OPEN} block.', llm_output=text
        ) from None
    if isinstance(value, dict) and value.get("name") == name:
        for key in ("arguments", "args", "parameters"):
            if isinstance(value.get(key), dict):
                value = value[key]
                break
    return validate_against_schema(value, parameters, llm_output=text)


def parse_structured_reply(
    text: str, schema_json: Mapping[str, Any] | None, method: StructuredMethod = "json_schema"
) -> Any:
    """Turn a reply into a JSON value that matches the schema (a dict for object schemas).

    ``schema_json`` may be ``None`` only for ``json_mode``, which then checks valid JSON only.

    Raises:
        JSONExtractionError: No JSON in the reply.
        SchemaValidationError: The JSON does not match the schema.
        MissingToolCallError: ``function_calling`` and no usable call.
        ValueError: Unknown method, or no schema where one is needed.
    """
    _check_method(method)
    if method == "function_calling":
        if not schema_json:
            raise ValueError("Structured output with method='function_calling' needs a schema.")
        return _parse_function_call(text, schema_json)
    value = extract_json(text)
    if schema_json:
        return validate_against_schema(value, schema_json, llm_output=text)
    return value


def repair_instruction(
    error: Exception, method: StructuredMethod = "json_schema", *, tool_name: str | None = None
) -> str:
    """The repair turn's text: what was wrong (``error`` quoted) and what to send instead."""
    if isinstance(error, SchemaValidationError):
        problem = "it does not match the required schema:\n" + "\n".join(
            f"- {item}" for item in error.errors
        )
    elif isinstance(error, StructuredOutputError):
        problem = error.message
    else:
        problem = str(error) or type(error).__name__
    if method == "function_calling":
        target = f'only one {TOOL_CALL_OPEN} block calling "{tool_name or "the tool"}"'
    elif method == "json_mode":
        target = "only the corrected JSON object"
    else:
        target = "only the corrected JSON value that conforms to the schema"
    return (
        f"Your previous reply could not be used: {problem}\n"
        f"Reply again with {target}. No other text, no code fences."
    )
