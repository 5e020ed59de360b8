"""Structured output by prompting: schema instructions, JSON extraction, validation, repair.

``ChatHailuo.with_structured_output`` cannot ask the server for JSON or a forced function call,
so it asks the model in words and checks the answer here:

- :func:`render_schema_instruction` says what to reply (``json_schema``, ``json_mode``, or
  ``function_calling``, which reuses the tool call syntax of :mod:`langchain_hailuo._tools`
  with one tool made from the schema);
- :func:`parse_structured_reply` (built on :func:`extract_json` and
  :func:`validate_against_schema`) turns the answer into a validated JSON value or raises a
  :class:`StructuredOutputError`;
- :func:`repair_instruction` turns that error into the text of the one repair turn.

The errors subclass LangChain's ``OutputParserException``, so ``include_raw=True`` chains
report them as ``parsing_error`` like any other parser failure.
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
        """Create the error.

        Args:
            message: What was wrong with the reply.
            llm_output: The reply text.
        """
        super().__init__(message, llm_output=llm_output)
        self.message = message


class JSONExtractionError(StructuredOutputError):
    """The reply holds no usable JSON value."""


class SchemaValidationError(StructuredOutputError):
    """The reply's JSON does not match the schema.

    Attributes:
        errors: One message per problem, each starting with a JSON path (``$.age: ...``).
        value: The JSON value that failed.
    """

    def __init__(self, errors: list[str], value: Any, *, llm_output: str | None = None) -> None:
        """Create the error.

        Args:
            errors: The problems found.
            value: The JSON value that failed.
            llm_output: The reply text.
        """
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
    """The single OpenAI-format tool used by the ``function_calling`` method.

    An OpenAI tool (``{"type": "function", "function": {...}}``) is returned as is. A JSON
    schema becomes a tool named after its ``title`` (``structured_output`` without one; other
    characters than letters, digits, ``_`` and ``-`` become ``_``), described by its
    ``description``, whose parameters are the schema without those two keys (``$defs`` stay,
    so references still resolve).

    Args:
        schema_json: A JSON schema (``convert_to_json_schema`` output) or an OpenAI tool.

    Returns:
        The tool.
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

    - ``json_schema``: one JSON value conforming to the schema, nothing else;
    - ``json_mode``: one JSON object, nothing else (the schema, when given, is shown as the
      shape to follow; LangChain's JSON mode otherwise leaves the shape to the prompt);
    - ``function_calling``: the tool instructions of :func:`render_tool_instructions` for one
      tool made from the schema (:func:`schema_to_tool`), with that tool forced.

    Args:
        schema_json: The JSON schema (``convert_to_json_schema(schema)``), or an OpenAI tool
            for ``function_calling``. May be ``None`` for ``json_mode`` only.
        method: The ``with_structured_output`` method.

    Returns:
        The instruction text.

    Raises:
        ValueError: Unknown method, or no schema where one is needed.
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
    """Find the one JSON value in a reply.

    Tried in order: the whole reply; the body of each code fence (```` ```json ... ``` ````);
    the longest JSON object or array embedded in prose (``Here you go: {...} Enjoy!``).

    Args:
        text: The reply.

    Returns:
        The decoded value.

    Raises:
        JSONExtractionError: The reply is empty or holds no decodable JSON object or array.
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
    """Validate a JSON value with :func:`langchain_hailuo._tools.validate_json_schema`.

    Args:
        value: The decoded JSON value.
        schema_json: The JSON schema.
        coerce_integers: Whether whole floats count as integers (and are converted).
        llm_output: The reply text, kept on the error.

    Returns:
        The value, with whole floats turned into ints where the schema wants integers.

    Raises:
        SchemaValidationError: The value does not match; ``errors`` lists every problem.
    """
    checked, errors = validate_json_schema(value, schema_json, coerce_integers=coerce_integers)
    if errors:
        raise SchemaValidationError(errors, value, llm_output=llm_output)
    return checked


def _parse_function_call(text: str, schema_json: Mapping[str, Any]) -> Any:
    """``function_calling``: the arguments of the call to the schema's tool.

    Falls back to JSON written without the call syntax (the arguments themselves, or a
    ``{"name": ..., "arguments": ...}`` object).
    """
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
    """Turn a reply into a JSON value that matches the schema.

    Args:
        text: The reply (the whole answer text).
        schema_json: The JSON schema (or an OpenAI tool for ``function_calling``); ``None``
            only for ``json_mode``, which then checks nothing beyond valid JSON.
        method: The ``with_structured_output`` method.

    Returns:
        The validated value (a dict for object schemas); build the Pydantic model or
        TypedDict from it.

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
    """The text of the one repair turn after a failed structured reply.

    Args:
        error: What :func:`parse_structured_reply` raised (any exception is accepted; its
            text is quoted).
        method: The ``with_structured_output`` method.
        tool_name: For ``function_calling``, the tool's name (``schema_to_tool(...)``).

    Returns:
        An instruction saying what was wrong and what to send instead.
    """
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
