"""Tests for prompted structured output (langchain_hailuo._structured)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.exceptions import OutputParserException
from langchain_core.utils.function_calling import convert_to_json_schema
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from langchain_hailuo._structured import (
    JSONExtractionError,
    MissingToolCallError,
    SchemaValidationError,
    extract_json,
    parse_structured_reply,
    render_schema_instruction,
    repair_instruction,
    schema_to_tool,
    validate_against_schema,
)
from langchain_hailuo._tools import TOOL_CALL_CLOSE, TOOL_CALL_OPEN, render_tool_instructions


class Joke(BaseModel):
    """Joke to tell user."""

    setup: str = Field(description="question to set up a joke")
    punchline: str = Field(description="answer to resolve the joke")
    rating: int | None = Field(default=None, description="How funny, 1 to 10")


class Pet(BaseModel):
    """A pet."""

    kind: str


class Owner(BaseModel):
    """An owner and their pets."""

    name: str
    pets: list[Pet]


class JokeDict(TypedDict):
    """Joke to tell user."""

    setup: str
    punchline: str


JOKE = convert_to_json_schema(Joke)
OWNER = convert_to_json_schema(Owner)
GOOD = {"setup": "Why?", "punchline": "Because.", "rating": 7}


# -- instructions -----------------------------------------------------------------------------


def test_json_schema_instruction() -> None:
    text = render_schema_instruction(JOKE, "json_schema")
    assert "Reply with one JSON value that conforms to the JSON schema below" in text
    assert "no code fences" in text
    assert json.dumps(JOKE, ensure_ascii=False, separators=(", ", ": ")) in text
    assert text == render_schema_instruction(JOKE, "json_schema")


def test_json_mode_instruction_with_and_without_schema() -> None:
    bare = render_schema_instruction(None, "json_mode")
    assert "Reply with one valid JSON object and nothing else" in bare
    assert "schema" not in bare
    assert "conform to this JSON schema" in render_schema_instruction(JOKE, "json_mode")


def test_function_calling_instruction_reuses_the_tool_syntax() -> None:
    text = render_schema_instruction(JOKE, "function_calling")
    assert text.startswith(render_tool_instructions([schema_to_tool(JOKE)], "Joke"))
    assert 'MUST call the tool "Joke"' in text
    assert TOOL_CALL_OPEN in text
    assert 'Give your whole answer as the arguments of one call to "Joke".' in text


def test_instruction_keeps_unicode() -> None:
    schema = {"title": "天気", "type": "object", "properties": {"都市": {"type": "string"}}}
    text = render_schema_instruction(schema, "json_schema")
    assert "都市" in text
    assert "\\u" not in text


def test_instruction_errors() -> None:
    with pytest.raises(ValueError, match="needs a schema"):
        render_schema_instruction(None, "json_schema")
    with pytest.raises(ValueError, match="Unknown structured output method"):
        render_schema_instruction(JOKE, "xml")  # type: ignore[arg-type]


def test_schema_to_tool() -> None:
    tool = schema_to_tool(JOKE)
    assert tool["type"] == "function"
    assert tool["function"]["name"] == "Joke"
    assert tool["function"]["description"] == "Joke to tell user."
    assert "title" not in tool["function"]["parameters"]
    assert tool["function"]["parameters"]["required"] == ["setup", "punchline"]
    assert schema_to_tool(tool) == tool
    odd = schema_to_tool({"title": "My Schema!", "type": "object"})
    assert odd["function"]["name"] == "My_Schema"
    assert schema_to_tool({"type": "object"})["function"]["name"] == "structured_output"


# -- extraction -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(GOOD),
        f"  {json.dumps(GOOD, indent=2)}\n",
        f"```json\n{json.dumps(GOOD)}\n```",
        f"```\n{json.dumps(GOOD)}\n```",
        f"Here is the joke:\n```json\n{json.dumps(GOOD)}\n```\nHope you like it!",
        f"Sure! {json.dumps(GOOD)} Enjoy.",
        f"Note [1]: see below.\n{json.dumps(GOOD)}\nThat's it.",
        f"Some {{braces}} in prose, then {json.dumps(GOOD)}",
    ],
)
def test_extract_json_tolerates_fences_and_prose(text: str) -> None:
    assert extract_json(text) == GOOD


def test_extract_json_arrays_and_unicode() -> None:
    assert extract_json('Result: [1, 2, {"名前": "太郎"}] done') == [1, 2, {"名前": "太郎"}]
    assert extract_json('"just a string"') == "just a string"


def test_extract_json_skips_broken_fences() -> None:
    text = '```json\n{broken\n```\nand then ```json\n{"a": 1}\n```'
    assert extract_json(text) == {"a": 1}


@pytest.mark.parametrize("text", ["", "   ", "No JSON here.", "{not: json}", "```json\n{\n```"])
def test_extract_json_failure_is_typed(text: str) -> None:
    with pytest.raises(JSONExtractionError) as info:
        extract_json(text)
    assert isinstance(info.value, OutputParserException)
    assert isinstance(info.value, ValueError)
    assert info.value.llm_output == text
    assert "JSON" in str(info.value)


def test_extract_json_error_shows_the_reply_start() -> None:
    with pytest.raises(JSONExtractionError, match="It begins: 'I cannot do that"):
        extract_json("I cannot do that " + "x" * 200)


# -- validation -------------------------------------------------------------------------------


def test_validate_against_schema_ok_and_coerces() -> None:
    assert validate_against_schema({**GOOD, "rating": 7.0}, JOKE) == GOOD
    assert validate_against_schema({"setup": "a", "punchline": "b"}, JOKE) == {
        "setup": "a",
        "punchline": "b",
    }


def test_validate_against_schema_nested_with_defs() -> None:
    value = {"name": "Ana", "pets": [{"kind": "cat"}, {"kind": 3}]}
    with pytest.raises(SchemaValidationError) as info:
        validate_against_schema(value, OWNER, llm_output="raw")
    assert info.value.errors == ["$.pets[1].kind: expected string, got integer 3"]
    assert info.value.value == value
    assert info.value.llm_output == "raw"
    assert "- $.pets[1].kind" in str(info.value)


def test_validate_against_schema_collects_every_problem() -> None:
    with pytest.raises(SchemaValidationError) as info:
        validate_against_schema({"setup": 1, "rating": "high"}, JOKE)
    errors = info.value.errors
    assert "$: missing required property 'punchline'" in errors
    assert "$.setup: expected string, got integer 1" in errors
    assert any(e.startswith("$.rating: string") for e in errors)


# -- whole replies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema", [JOKE, convert_to_json_schema(JokeDict), convert_to_json_schema(Owner)]
)
def test_parse_json_schema_reply(schema: dict[str, Any]) -> None:
    value = (
        {"name": "Ana", "pets": [{"kind": "cat"}]}
        if schema is OWNER or schema.get("title") == "Owner"
        else {"setup": "Why?", "punchline": "Because."}
    )
    text = f"Here you go:\n```json\n{json.dumps(value)}\n```"
    assert parse_structured_reply(text, schema, "json_schema") == value


def test_parse_json_mode_without_schema() -> None:
    assert parse_structured_reply('Sure: {"anything": [1]}', None, "json_mode") == {"anything": [1]}


def test_parse_json_schema_reply_invalid() -> None:
    with pytest.raises(SchemaValidationError):
        parse_structured_reply('{"setup": "x"}', JOKE, "json_schema")
    with pytest.raises(JSONExtractionError):
        parse_structured_reply("I'd rather not.", JOKE, "json_schema")


def test_parse_function_calling_reply() -> None:
    text = (
        "Here it is.\n"
        f'{TOOL_CALL_OPEN}\n{{"name": "Joke", "arguments": {json.dumps(GOOD)}}}\n{TOOL_CALL_CLOSE}'
    )
    assert parse_structured_reply(text, JOKE, "function_calling") == GOOD


def test_parse_function_calling_unicode() -> None:
    value = {"setup": "なぜ？", "punchline": "因为。"}  # noqa: RUF001
    text = f"{TOOL_CALL_OPEN}{json.dumps({'name': 'Joke', 'arguments': value}, ensure_ascii=False)}{TOOL_CALL_CLOSE}"  # noqa: E501
    assert parse_structured_reply(text, JOKE, "function_calling") == value


def test_parse_function_calling_falls_back_to_bare_json() -> None:
    assert parse_structured_reply(json.dumps(GOOD), JOKE, "function_calling") == GOOD
    wrapped = json.dumps({"name": "Joke", "arguments": GOOD})
    assert parse_structured_reply(f"```json\n{wrapped}\n```", JOKE, "function_calling") == GOOD
    with pytest.raises(SchemaValidationError):
        parse_structured_reply('{"setup": 1}', JOKE, "function_calling")


def test_parse_function_calling_failures() -> None:
    with pytest.raises(MissingToolCallError, match='does not call "Joke"'):
        parse_structured_reply("No.", JOKE, "function_calling")
    bad = f'{TOOL_CALL_OPEN}{{"name": "Joke", "arguments": {{"setup": "x"}}}}{TOOL_CALL_CLOSE}'
    with pytest.raises(MissingToolCallError, match="missing required property 'punchline'"):
        parse_structured_reply(bad, JOKE, "function_calling")
    with pytest.raises(ValueError, match="needs a schema"):
        parse_structured_reply("{}", None, "function_calling")
    with pytest.raises(ValueError, match="Unknown structured output method"):
        parse_structured_reply("{}", JOKE, "yaml")  # type: ignore[arg-type]


def test_parse_function_calling_accepts_an_openai_tool() -> None:
    tool = schema_to_tool(JOKE)
    text = f"{TOOL_CALL_OPEN}{json.dumps({'name': 'Joke', 'arguments': GOOD})}{TOOL_CALL_CLOSE}"
    assert parse_structured_reply(text, tool, "function_calling") == GOOD


# -- repair -----------------------------------------------------------------------------------


def test_repair_instruction_for_schema_errors() -> None:
    error = SchemaValidationError(["$.setup: expected string, got integer 1"], {"setup": 1})
    text = repair_instruction(error, "json_schema")
    assert text == (
        "Your previous reply could not be used: it does not match the required schema:\n"
        "- $.setup: expected string, got integer 1\n"
        "Reply again with only the corrected JSON value that conforms to the schema. "
        "No other text, no code fences."
    )


def test_repair_instruction_for_missing_json_and_calls() -> None:
    with pytest.raises(JSONExtractionError) as info:
        extract_json("nope")
    text = repair_instruction(info.value, "json_mode")
    assert "holds no valid JSON object or array" in text
    assert "only the corrected JSON object" in text
    call = repair_instruction(MissingToolCallError("no call"), "function_calling", tool_name="Joke")
    assert 'only one <tool_call> block calling "Joke"' in call
    assert "no call" in call


def test_repair_instruction_for_other_errors() -> None:
    assert "boom" in repair_instruction(RuntimeError("boom"))
    assert "KeyError" in repair_instruction(KeyError())
