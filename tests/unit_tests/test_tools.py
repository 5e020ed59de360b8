"""Tests for the prompted tool calling core (langchain_hailuo._tools)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field

from langchain_hailuo._schema import validate_json_schema
from langchain_hailuo._tools import (
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    ParsedReply,
    StreamDelta,
    ToolCallStreamParser,
    check_tool_choice,
    new_tool_call_id,
    normalize_tool_choice,
    parse_tool_reply,
    render_tool_call_history,
    render_tool_instructions,
    render_tool_results,
)

# -- fixtures ---------------------------------------------------------------------------------


@tool
def magic_function(input: int) -> int:  # noqa: A002 - the name the standard tests use
    """Apply a magic function to an input."""
    return input + 2


@tool
def get_weather(city: str, unit: str | None = None) -> str:
    """Get the current weather in a city.

    Args:
        city: The city name.
        unit: "c" or "f".
    """
    return f"sunny in {city}"


class Address(BaseModel):
    """A postal address."""

    street: str
    zip_code: int


class CreatePerson(BaseModel):
    """Create a person record."""

    name: str = Field(description="Full name")
    age: int | None = None
    addresses: list[Address] = Field(default_factory=list)
    role: str = Field(default="user", json_schema_extra={"enum": ["user", "admin"]})


@tool
def no_args() -> str:
    """Take no arguments."""
    return "ok"


OPEN, CLOSE = TOOL_CALL_OPEN, TOOL_CALL_CLOSE
TOOLS = [convert_to_openai_tool(t) for t in (magic_function, get_weather, CreatePerson, no_args)]


def counter_ids() -> Any:
    """An id factory giving call_0, call_1, ..."""
    counter = itertools.count()
    return lambda: f"call_{next(counter)}"


def block(name: str, arguments: Any, key: str = "arguments") -> str:
    body = json.dumps({"name": name, key: arguments}, ensure_ascii=False)
    return f"{OPEN}\n{body}\n{CLOSE}"


def run_stream(pieces: list[str], tools: Any = TOOLS) -> tuple[list[StreamDelta], ParsedReply]:
    parser = ToolCallStreamParser(tools, id_factory=counter_ids())
    deltas = [parser.feed(piece) for piece in pieces]
    deltas.append(parser.finish())
    return deltas, parser.result


def streamed_content(deltas: list[StreamDelta]) -> str:
    return "".join(d.content for d in deltas)


# -- instructions -----------------------------------------------------------------------------


def test_instructions_list_every_tool_and_the_syntax() -> None:
    text = render_tool_instructions(TOOLS, "auto")
    assert TOOL_CALL_OPEN in text
    assert TOOL_CALL_CLOSE in text
    assert '{"name": "<tool name>", "arguments": {<arguments as a JSON object>}}' in text
    for name in ("magic_function", "get_weather", "CreatePerson", "no_args"):
        assert f"## {name}" in text
    assert "Get the current weather in a city." in text
    assert '"required": ["input"]' in text
    assert "answer normally in plain text" in text
    assert "stop writing and wait" in text


def test_instructions_are_deterministic_and_keep_unicode() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "translate",
                "description": "翻訳する",
                "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
            },
        }
    ]
    first = render_tool_instructions(tools, "auto")
    assert first == render_tool_instructions(tools, "auto")
    assert "翻訳する" in first
    assert "\\u" not in first


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "Call a tool when it helps you answer"),
        (None, "Call a tool when it helps you answer"),
        ("any", "MUST call at least one tool"),
        ("required", "MUST call at least one tool"),
        ("none", "must NOT call any tool"),
        ("get_weather", 'MUST call the tool "get_weather", and no other tool'),
        ({"type": "function", "function": {"name": "get_weather"}}, 'the tool "get_weather"'),
    ],
)
def test_instructions_tool_choice_rules(choice: Any, expected: str) -> None:
    assert expected in render_tool_instructions(TOOLS, choice)


def test_instructions_reject_unknown_forced_tool() -> None:
    with pytest.raises(ValueError, match="names no bound tool"):
        render_tool_instructions(TOOLS, "launch_rockets")


def test_instructions_without_tools() -> None:
    assert render_tool_instructions([], "auto") == ""
    with pytest.raises(ValueError, match="no tools are bound"):
        render_tool_instructions([], "any")


def test_instructions_tool_without_parameters() -> None:
    text = render_tool_instructions([{"type": "function", "function": {"name": "ping"}}], "auto")
    assert '## ping\nParameters (JSON schema): {"type": "object", "properties": {}}' in text


@pytest.mark.parametrize(
    ("choice", "names", "expected"),
    [
        (None, ["a"], "auto"),
        ("auto", ["a"], "auto"),
        ("any", ["a", "b"], "any"),
        ("required", ["a"], "any"),
        (True, ["a"], "a"),
        (True, ["a", "b"], "any"),
        (False, ["a"], "none"),
        ("none", ["a"], "none"),
        ("b", ["a", "b"], "b"),
        ({"type": "function", "function": {"name": "a"}}, ["a"], "a"),
        ({"type": "tool", "name": "a"}, ["a"], "a"),
        ({"type": "any"}, ["a"], "any"),
    ],
)
def test_normalize_tool_choice(choice: Any, names: list[str], expected: str) -> None:
    assert normalize_tool_choice(choice, names) == expected


def test_normalize_tool_choice_rejects_odd_values() -> None:
    with pytest.raises(ValueError, match="Unsupported tool_choice"):
        normalize_tool_choice(3, ["a"])  # type: ignore[arg-type]


def test_tool_without_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="has no name"):
        render_tool_instructions([{"type": "function", "function": {}}], "auto")


# -- parsing whole replies --------------------------------------------------------------------


def test_single_call() -> None:
    reply = parse_tool_reply(block("magic_function", {"input": 3}), TOOLS, id_factory=counter_ids())
    assert reply == ParsedReply(
        content="",
        tool_calls=[
            {"name": "magic_function", "args": {"input": 3}, "id": "call_0", "type": "tool_call"}
        ],
        invalid_tool_calls=[],
    )


def test_prose_around_calls_is_content() -> None:
    text = "Let me look that up.\n" + block("get_weather", {"city": "Paris"}) + "\n"
    reply = parse_tool_reply(text, TOOLS)
    assert reply.content == "Let me look that up."
    assert reply.tool_calls[0]["args"] == {"city": "Paris"}


def test_two_calls_get_indexes_0_and_1() -> None:
    text = block("get_weather", {"city": "Paris"}) + "\n" + block("magic_function", {"input": 1})
    deltas, reply = run_stream([text])
    chunks = [c for d in deltas for c in d.tool_call_chunks]
    assert [c["index"] for c in chunks] == [0, 1]
    assert [c["name"] for c in chunks] == ["get_weather", "magic_function"]
    assert [c["id"] for c in chunks] == ["call_0", "call_1"]
    assert [c["id"] for c in reply.tool_calls] == ["call_0", "call_1"]
    assert json.loads(chunks[0]["args"] or "") == {"city": "Paris"}


def test_chunks_aggregate_into_an_ai_message_chunk() -> None:
    text = "Sure. " + block("get_weather", {"city": "東京"}) + block("magic_function", {"input": 3})
    deltas, reply = run_stream(list(text))
    total = AIMessageChunk(content="")
    for delta in deltas:
        total += AIMessageChunk(content=delta.content, tool_call_chunks=delta.tool_call_chunks)
    assert total.tool_calls == reply.tool_calls
    assert total.content == "Sure. "
    assert reply.content == "Sure."


def test_nested_and_optional_arguments() -> None:
    args = {
        "name": "Ada",
        "age": None,
        "addresses": [{"street": "1 Main St", "zip_code": 12345}],
        "role": "admin",
    }
    reply = parse_tool_reply(block("CreatePerson", args), TOOLS)
    assert reply.invalid_tool_calls == []
    assert reply.tool_calls[0]["args"] == args


@pytest.mark.parametrize(
    "value",
    ["你好，世界", "東京都の天気", "こんにちは、世界！", "Ünïcödé ✓ 🌧"],  # noqa: RUF001
)
def test_unicode_arguments_are_preserved(value: str) -> None:
    deltas, reply = run_stream([block("get_weather", {"city": value})])
    assert reply.tool_calls[0]["args"] == {"city": value}
    args_text = deltas[0].tool_call_chunks[0]["args"] or ""
    assert value in args_text
    assert "\\u" not in args_text


def test_unicode_escaped_by_the_model_is_decoded() -> None:
    text = f'{OPEN}{{"name": "get_weather", "arguments": {{"city": "\\u6771\\u4eac"}}}}{CLOSE}'
    assert parse_tool_reply(text, TOOLS).tool_calls[0]["args"] == {"city": "東京"}


def test_malformed_json_becomes_invalid_call() -> None:
    text = f'{OPEN}{{"name": "get_weather", "arguments": {{"city": "Paris"}}{CLOSE}'
    reply = parse_tool_reply(text, TOOLS)
    assert reply.tool_calls == []
    assert reply.content == ""
    (bad,) = reply.invalid_tool_calls
    assert bad["name"] == "get_weather"
    assert "no valid JSON" in (bad["error"] or "")
    assert bad["args"] == '{"name": "get_weather", "arguments": {"city": "Paris"}'
    assert (bad["id"] or "").startswith("call_")


def test_empty_block_is_invalid() -> None:
    reply = parse_tool_reply(f"Hi {TOOL_CALL_OPEN} {TOOL_CALL_CLOSE}", TOOLS)
    assert reply.content == "Hi"
    assert reply.invalid_tool_calls[0]["name"] is None


def test_unknown_tool_is_invalid() -> None:
    reply = parse_tool_reply(block("launch_rockets", {"count": 3}), TOOLS)
    assert reply.tool_calls == []
    (bad,) = reply.invalid_tool_calls
    assert bad["name"] == "launch_rockets"
    assert bad["args"] == '{"count": 3}'
    assert "unknown tool 'launch_rockets'" in (bad["error"] or "")
    assert "magic_function" in (bad["error"] or "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "$: missing required property 'input'"),
        ({"input": "three"}, "$.input: expected integer, got string"),
        ({"input": True}, "$.input: expected integer, got boolean"),
        ({"input": 2.5}, "$.input: expected integer, got number 2.5"),
    ],
)
def test_schema_violations_are_invalid(args: dict[str, Any], message: str) -> None:
    reply = parse_tool_reply(block("magic_function", args), TOOLS)
    assert reply.tool_calls == []
    (bad,) = reply.invalid_tool_calls
    assert "do not match its schema" in (bad["error"] or "")
    assert message in (bad["error"] or "")


def test_nested_schema_violation_names_the_path() -> None:
    args = {"name": "Ada", "addresses": [{"street": "x", "zip_code": "12345"}], "role": "boss"}
    (bad,) = parse_tool_reply(block("CreatePerson", args), TOOLS).invalid_tool_calls
    assert "$.addresses[0].zip_code: expected integer, got string" in (bad["error"] or "")
    assert '$.role: string "boss" is not one of "user", "admin"' in (bad["error"] or "")


def test_whole_float_is_coerced_to_integer() -> None:
    (call,) = parse_tool_reply(block("magic_function", {"input": 3.0}), TOOLS).tool_calls
    assert call["args"] == {"input": 3}
    assert isinstance(call["args"]["input"], int)


def test_integer_coercion_can_be_switched_off() -> None:
    parser = ToolCallStreamParser(TOOLS, coerce_integers=False)
    parser.feed(block("magic_function", {"input": 3.0}))
    parser.finish()
    assert parser.result.tool_calls == []
    assert "expected integer" in (parser.result.invalid_tool_calls[0]["error"] or "")


def test_arguments_as_json_string() -> None:
    reply = parse_tool_reply(block("magic_function", '{"input": 3}'), TOOLS)
    assert reply.tool_calls[0]["args"] == {"input": 3}


def test_arguments_as_broken_string_is_invalid() -> None:
    (bad,) = parse_tool_reply(block("magic_function", "{input: 3"), TOOLS).invalid_tool_calls
    assert "not JSON" in (bad["error"] or "")
    assert bad["args"] == "{input: 3"


@pytest.mark.parametrize("key", ["args", "parameters", "input"])
def test_alternative_argument_keys(key: str) -> None:
    reply = parse_tool_reply(block("get_weather", {"city": "Oslo"}, key=key), TOOLS)
    assert reply.tool_calls[0]["args"] == {"city": "Oslo"}


def test_openai_style_function_wrapper() -> None:
    body = {"type": "function", "function": {"name": "magic_function", "arguments": '{"input": 1}'}}
    text = f"{TOOL_CALL_OPEN}{json.dumps(body)}{TOOL_CALL_CLOSE}"
    assert parse_tool_reply(text, TOOLS).tool_calls[0]["args"] == {"input": 1}


def test_missing_arguments_means_no_arguments() -> None:
    text = f'{TOOL_CALL_OPEN}{{"name": "no_args"}}{TOOL_CALL_CLOSE}'
    reply = parse_tool_reply(text, TOOLS)
    assert reply.tool_calls[0]["name"] == "no_args"
    assert reply.tool_calls[0]["args"] == {}


def test_arguments_not_an_object_is_invalid() -> None:
    (bad,) = parse_tool_reply(block("magic_function", [3]), TOOLS).invalid_tool_calls
    assert '"arguments" must be a JSON object' in (bad["error"] or "")


def test_call_without_name_is_invalid() -> None:
    text = f'{TOOL_CALL_OPEN}{{"arguments": {{}}}}{TOOL_CALL_CLOSE}'
    (bad,) = parse_tool_reply(text, TOOLS).invalid_tool_calls
    assert 'no "name"' in (bad["error"] or "")


def test_non_object_call_is_invalid() -> None:
    (bad,) = parse_tool_reply(f"{TOOL_CALL_OPEN}42{TOOL_CALL_CLOSE}", TOOLS).invalid_tool_calls
    assert "holds no JSON object" in (bad["error"] or "")
    (bad,) = parse_tool_reply(f"{TOOL_CALL_OPEN}[42]{TOOL_CALL_CLOSE}", TOOLS).invalid_tool_calls
    assert "must be a JSON object, got integer 42" in (bad["error"] or "")


def test_code_fence_inside_the_block() -> None:
    text = (
        f"{TOOL_CALL_OPEN}\n```json\n"
        '{"name": "magic_function", "arguments": {"input": 5}}\n'
        f"```\n{TOOL_CALL_CLOSE}"
    )
    reply = parse_tool_reply(text, TOOLS)
    assert reply.tool_calls[0]["args"] == {"input": 5}
    assert reply.content == ""


def test_code_fence_around_the_blocks() -> None:
    text = (
        "Calling now:\n```xml\n"
        + block("magic_function", {"input": 5})
        + "\n"
        + block("magic_function", {"input": 6})
        + "\n```\nThat is all."
    )
    reply = parse_tool_reply(text, TOOLS)
    assert [c["args"]["input"] for c in reply.tool_calls] == [5, 6]
    assert reply.content == "Calling now:\n\nThat is all."
    assert "```" not in reply.content


def test_code_block_before_a_call_is_kept() -> None:
    text = "Example:\n```python\nprint(1)\n```\n" + block("magic_function", {"input": 5})
    reply = parse_tool_reply(text, TOOLS)
    assert reply.content == "Example:\n```python\nprint(1)\n```"
    assert reply.tool_calls[0]["args"] == {"input": 5}


def test_ordinary_code_block_is_untouched() -> None:
    text = 'Here:\n```json\n{"a": 1}\n```\nDone.'
    deltas, reply = run_stream(list(text))
    assert reply.content == text
    assert streamed_content(deltas) == text
    assert reply.tool_calls == []


def test_trailing_text_inside_the_block_is_ignored() -> None:
    text = f'{OPEN}{{"name": "magic_function", "arguments": {{"input": 2}}}} I will wait.{CLOSE}'
    reply = parse_tool_reply(text, TOOLS)
    assert reply.tool_calls[0]["args"] == {"input": 2}
    assert reply.content == ""


def test_several_objects_or_an_array_in_one_block() -> None:
    one = {"name": "magic_function", "arguments": {"input": 1}}
    two = {"name": "magic_function", "arguments": {"input": 2}}
    for body in (f"{json.dumps(one)}\n{json.dumps(two)}", json.dumps([one, two])):
        reply = parse_tool_reply(f"{TOOL_CALL_OPEN}{body}{TOOL_CALL_CLOSE}", TOOLS)
        assert [c["args"]["input"] for c in reply.tool_calls] == [1, 2]


def test_unclosed_block_at_end_of_stream() -> None:
    text = "Checking. " + TOOL_CALL_OPEN + '{"name": "magic_function", "arguments": {"input": 9}}'
    deltas, reply = run_stream([text])
    assert reply.tool_calls[0]["args"] == {"input": 9}
    assert reply.content == "Checking."
    assert deltas[-1].tool_call_chunks[0]["index"] == 0


def test_unclosed_block_cut_short_by_the_next_one() -> None:
    text = (
        TOOL_CALL_OPEN
        + '{"name": "magic_function", "arguments": {"input": 1}}\n'
        + block("magic_function", {"input": 2})
    )
    reply = parse_tool_reply(text, TOOLS)
    assert [c["args"]["input"] for c in reply.tool_calls] == [1, 2]


def test_stray_closing_marker_is_dropped() -> None:
    reply = parse_tool_reply(f"All done.{TOOL_CALL_CLOSE}", TOOLS)
    assert reply.content == "All done."


def test_marker_lookalikes_stay_in_content() -> None:
    text = "a < b and <tool> or <tool_cal and </tool_calls are prose"
    deltas, reply = run_stream(list(text))
    assert reply.content == text
    assert streamed_content(deltas) == text


def test_prose_with_no_tools_bound_accepts_any_call() -> None:
    reply = parse_tool_reply(block("anything", {"x": [1, 2]}), None)
    assert reply.tool_calls[0]["name"] == "anything"


def test_invalid_calls_take_index_slots() -> None:
    text = block("nope", {}) + block("magic_function", {"input": 1})
    deltas, reply = run_stream([text])
    assert reply.invalid_tool_calls[0].get("index") == 0
    assert deltas[0].tool_call_chunks[0]["index"] == 1
    assert deltas[0].invalid_tool_calls[0]["name"] == "nope"


def test_default_ids_are_uuid_hex() -> None:
    call_id = new_tool_call_id()
    assert call_id.startswith("call_")
    assert len(call_id) == len("call_") + 32
    int(call_id[5:], 16)
    assert call_id != new_tool_call_id()


def test_parser_lifecycle() -> None:
    parser = ToolCallStreamParser(TOOLS)
    with pytest.raises(RuntimeError, match="after finish"):
        _ = parser.result
    parser.feed("hi")
    parser.finish()
    assert parser.finish() == StreamDelta()
    with pytest.raises(RuntimeError, match="after finish"):
        parser.feed("more")


# -- streaming: markers split everywhere ------------------------------------------------------

SAMPLES = [
    "Plain answer, no tools at all.",
    "Let me check the weather.\n" + block("get_weather", {"city": "東京"}) + "\n",
    block("get_weather", {"city": "Paris"}) + "\n" + block("magic_function", {"input": 3}),
    "Calling:\n```json\n" + block("magic_function", {"input": 5}) + "\n```\nDone.",
    "Example:\n```python\nprint('<tool')\n```\n" + block("magic_function", {"input": 5}) + " ok",
    f'{OPEN}\n```json\n{{"name": "magic_function", "arguments": {{"input": 7}}}}\n```\n{CLOSE}',
    f'Broken: {OPEN}{{"name": "get_weather", "arguments": {{"city": "x"}}{CLOSE} tail',
    "a <tool_cal b </tool_c c ``` d ``",
    "Unclosed " + TOOL_CALL_OPEN + '{"name": "magic_function", "arguments": {"input": 1}}',
    "stray " + TOOL_CALL_CLOSE + " close and " + block("no_args", {}) + TOOL_CALL_CLOSE,
]


def _signature(reply: ParsedReply) -> tuple[Any, ...]:
    return (
        reply.content,
        [(c["name"], c["args"], c["id"]) for c in reply.tool_calls],
        [(c["name"], c["args"], c["error"]) for c in reply.invalid_tool_calls],
    )


def _assert_no_syntax(content: str) -> None:
    assert TOOL_CALL_OPEN not in content
    assert TOOL_CALL_CLOSE not in content
    assert '"arguments"' not in content


@pytest.mark.parametrize("text", SAMPLES)
def test_every_two_way_split_gives_the_same_result(text: str) -> None:
    _, whole = run_stream([text])
    whole_deltas, _ = run_stream([text])
    for cut in range(len(text) + 1):
        deltas, reply = run_stream([text[:cut], text[cut:]])
        assert _signature(reply) == _signature(whole), cut
        assert streamed_content(deltas) == streamed_content(whole_deltas), cut
        _assert_no_syntax(streamed_content(deltas))


@pytest.mark.parametrize("text", SAMPLES)
def test_every_three_way_split_never_leaks(text: str) -> None:
    _, whole = run_stream([text])
    step = max(1, len(text) // 40)
    for first, second in itertools.combinations(range(0, len(text) + 1, step), 2):
        deltas, reply = run_stream([text[:first], text[first:second], text[second:]])
        assert _signature(reply) == _signature(whole), (first, second)
        _assert_no_syntax(streamed_content(deltas))


@pytest.mark.parametrize("text", SAMPLES)
def test_character_by_character(text: str) -> None:
    _, whole = run_stream([text])
    deltas, reply = run_stream(list(text))
    assert _signature(reply) == _signature(whole)
    for delta in deltas:
        _assert_no_syntax(delta.content)


def test_hold_back_is_minimal() -> None:
    parser = ToolCallStreamParser(TOOLS)
    assert parser.feed("Hello <to").content == "Hello "
    assert parser.feed("y> world").content == "<toy> world"
    assert parser.feed(" x<").content == " x"
    assert parser.feed("b").content == "<b"
    assert parser.feed("``").content == ""
    assert parser.feed("`py\n").content == ""
    assert parser.feed("x = 1").content == "```py\nx = 1"
    assert parser.finish().content == ""


def test_stream_emits_the_call_as_soon_as_it_closes() -> None:
    parser = ToolCallStreamParser(TOOLS, id_factory=counter_ids())
    first = parser.feed("One moment." + TOOL_CALL_OPEN + '{"name": "magic_function", ')
    assert first.content == "One moment."
    assert first.tool_call_chunks == []
    second = parser.feed('"arguments": {"input": 3}}' + TOOL_CALL_CLOSE + "\n")
    assert second.tool_call_chunks == [
        {
            "name": "magic_function",
            "args": '{"input": 3}',
            "id": "call_0",
            "index": 0,
            "type": "tool_call_chunk",
        }
    ]


_fragments = st.sampled_from(
    [
        "Hi ",
        "东京 ",
        "a<b ",
        "<tool",
        "``` ",
        "```json\n",
        "\n```\n",
        TOOL_CALL_CLOSE,
        block("magic_function", {"input": 4}),
        block("get_weather", {"city": "大阪"}),
        block("nope", {}),
        f'{TOOL_CALL_OPEN}{{"name": "magic_function", "arguments": {TOOL_CALL_CLOSE}',
        f'{OPEN}\n```json\n{{"name": "no_args", "arguments": {{}}}}\n```\n{CLOSE}',
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(_fragments, min_size=1, max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_any_rechunking_gives_the_same_content_and_calls(parts: list[str], cuts: list[int]) -> None:
    text = "".join(parts)
    points = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in itertools.pairwise([0, *points, len(text)])]
    whole_deltas, whole = run_stream([text])
    deltas, reply = run_stream(pieces)
    assert _signature(reply) == _signature(whole)
    assert streamed_content(deltas) == streamed_content(whole_deltas)
    _assert_no_syntax(streamed_content(deltas))
    assert streamed_content(deltas).strip() == reply.content


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "schema", "errors"),
    [
        ("x", {"type": "string"}, []),
        (1, {"type": "string"}, ["$: expected string, got integer 1"]),
        (1, {"type": "number"}, []),
        (1.5, {"type": "number"}, []),
        (True, {"type": "number"}, ["$: expected number, got boolean true"]),
        (False, {"type": "boolean"}, []),
        (None, {"type": "null"}, []),
        (None, {"type": ["string", "null"]}, []),
        (
            [1, "a"],
            {"type": "array", "items": {"type": "integer"}},
            ['$[1]: expected integer, got string "a"'],
        ),
        ({"a": 1}, {"type": "object"}, []),
        ([], {"type": "object"}, ["$: expected object, got array []"]),
        ("c", {"enum": ["a", "b"]}, ['$: string "c" is not one of "a", "b"']),
        (1, {"enum": [True]}, ["$: integer 1 is not one of true"]),
        (1, {"const": 1.0}, []),
        (
            "x",
            {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            ["matches none of the allowed shapes"],
        ),
        (None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}, []),
        (
            3,
            {"oneOf": [{"type": "integer"}, {"type": "number"}]},
            ["matches more than one oneOf option"],
        ),
        ("x", {"oneOf": [{"type": "integer"}, {"type": "string"}]}, []),
        (5, {"allOf": [{"type": "integer"}, {"minimum": 6}]}, ["$: must be >= 6, got 5"]),
        (
            {"b": 1},
            {"type": "object", "additionalProperties": False},
            ["$: unexpected property 'b'"],
        ),
        ({"b": "x"}, {"additionalProperties": {"type": "integer"}}, ["$.b: expected integer"]),
        ("ab", {"minLength": 3}, ["$: must be at least 3 characters long"]),
        ("abcd", {"maxLength": 3}, ["$: must be at most 3 characters long"]),
        ("abc", {"pattern": "^a"}, []),
        ("xbc", {"pattern": "^a"}, ["does not match /^a/"]),
        ("x", {"pattern": "("}, []),
        ([], {"minItems": 1}, ["$: needs at least 1 items, got 0"]),
        ([1, 2], {"maxItems": 1}, ["$: allows at most 1 items, got 2"]),
        ([1, "a"], {"prefixItems": [{"type": "integer"}, {"type": "string"}]}, []),
        (
            [1, 2],
            {"items": [{"type": "integer"}], "additionalItems": {"type": "string"}},
            ["$[1]: expected string"],
        ),
        (10, {"maximum": 9}, ["$: must be <= 9, got 10"]),
        (9, {"exclusiveMaximum": 9}, ["$: must be < 9, got 9"]),
        (0, {"exclusiveMinimum": 0}, ["$: must be > 0, got 0"]),
        ("anything", {}, []),
        (1, {"not_a_keyword": 3}, []),
    ],
)
def test_validate_json_schema(value: Any, schema: dict[str, Any], errors: list[str]) -> None:
    _, found = validate_json_schema(value, schema)
    assert len(found) == len(errors), found
    for expected, message in zip(errors, found, strict=True):
        assert expected in message


def test_validate_refs_and_defs() -> None:
    schema = {
        "type": "object",
        "properties": {"home": {"$ref": "#/$defs/Address"}, "old": {"$ref": "#/definitions/A"}},
        "required": ["home"],
        "$defs": {"Address": {"type": "object", "properties": {"zip": {"type": "integer"}}}},
        "definitions": {"A": {"type": "string"}},
    }
    value, errors = validate_json_schema({"home": {"zip": 1.0}, "old": "x"}, schema)
    assert errors == []
    assert value == {"home": {"zip": 1}, "old": "x"}
    assert isinstance(value["home"]["zip"], int)
    _, errors = validate_json_schema({"home": {"zip": "1"}}, schema)
    assert errors == ['$.home.zip: expected integer, got string "1"']
    _, errors = validate_json_schema({"home": 1}, {"properties": {"home": {"$ref": "#/$defs/X"}}})
    assert "does not define" in errors[0]


def test_validate_boolean_subschemas_and_odd_keys() -> None:
    assert validate_json_schema({"a": 1}, {"properties": {"a": True}})[1] == []
    assert validate_json_schema({"a": 1}, {"properties": {"a": False}})[1] == [
        "$.a: no value is allowed here"
    ]
    _, errors = validate_json_schema({"a b": "x"}, {"properties": {"a b": {"type": "integer"}}})
    assert errors[0].startswith("$['a b']: expected integer")


def test_validate_recursive_schema() -> None:
    schema = {
        "$ref": "#/$defs/Node",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
            }
        },
    }
    _, errors = validate_json_schema({"children": [{"children": [{"children": 1}]}]}, schema)
    assert errors == ["$.children[0].children[0].children: expected array, got integer 1"]


def test_integer_coercion_rules() -> None:
    assert validate_json_schema(3.0, {"type": "integer"}) == (3, [])
    assert validate_json_schema(3.0, {"type": "integer"}, coerce_integers=False)[1]
    assert validate_json_schema(3.5, {"type": "integer"})[1]
    assert validate_json_schema("3", {"type": "integer"})[1]
    assert validate_json_schema(float("inf"), {"type": "integer"})[1]
    assert validate_json_schema(3.0, {"type": "number"}) == (3.0, [])


def test_validation_does_not_mutate_input() -> None:
    value = {"a": [1.0]}
    checked, _ = validate_json_schema(value, {"properties": {"a": {"items": {"type": "integer"}}}})
    assert value == {"a": [1.0]}
    assert isinstance(value["a"][0], float)
    assert checked == {"a": [1]}


# -- tool results and history -----------------------------------------------------------------


def test_render_tool_results_string_list_and_error() -> None:
    ai = AIMessage(
        content="",
        tool_calls=[
            {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_a"},
            {"name": "magic_function", "args": {"input": 1}, "id": "call_b"},
            {"name": "no_args", "args": {}, "id": "call_c"},
        ],
    )
    messages = [
        HumanMessage("ignored"),
        ai,
        ToolMessage("Sunny, 21 °C, 晴れ", tool_call_id="call_a"),
        ToolMessage(
            [{"type": "text", "text": "3"}, "and", {"type": "image", "url": "http://x"}],
            tool_call_id="call_b",
        ),
        ToolMessage("Error: boom", tool_call_id="call_c", status="error", name="no_args"),
    ]
    text = render_tool_results(messages)
    assert text == (
        "Results of your tool calls:\n\n"
        '<tool_result id="call_a" name="get_weather">\nSunny, 21 °C, 晴れ\n</tool_result>\n'
        '<tool_result id="call_b" name="magic_function">\n'
        "3\nand\n[image content omitted: this chat takes text only]\n</tool_result>\n"
        '<tool_result id="call_c" name="no_args" status="error">\nError: boom\n</tool_result>\n\n'
        "Use these results to continue. If you need more tools, reply with <tool_call> blocks "
        "again; otherwise give your final answer."
    )


def test_render_tool_results_names_from_mapping_and_fallback() -> None:
    messages = [
        ToolMessage('{"ok": true}', tool_call_id="x1"),
        ToolMessage([{"type": "json", "json": {"k": "値"}}], tool_call_id="x2"),
    ]
    text = render_tool_results(messages, tool_names={"x1": "lookup"}, reminder=False)
    assert '<tool_result id="x1" name="lookup">\n{"ok": true}\n</tool_result>' in text
    assert '<tool_result id="x2" name="unknown">\n{"k": "値"}\n</tool_result>' in text
    assert "Use these results" not in text


def test_render_tool_results_without_tool_messages() -> None:
    assert render_tool_results([HumanMessage("hi")]) == ""


def test_render_tool_results_escapes_attributes() -> None:
    text = render_tool_results([ToolMessage("x", tool_call_id='a"b', name="t")])
    assert '<tool_result id="a\\"b" name="t">' in text


def test_render_tool_call_history_round_trips_through_the_parser() -> None:
    ai = AIMessage(
        content="Checking both.",
        tool_calls=[
            {"name": "get_weather", "args": {"city": "東京"}, "id": "call_a"},
            {"name": "magic_function", "args": {"input": 3}, "id": "call_b"},
        ],
        invalid_tool_calls=[{"name": "x", "args": "{", "id": "call_c", "error": "bad"}],
    )
    text = render_tool_call_history(ai)
    assert text == (
        "Checking both.\n"
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "東京"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "magic_function", "arguments": {"input": 3}}\n</tool_call>'
    )
    reply = parse_tool_reply(text, TOOLS)
    assert reply.content == "Checking both."
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("get_weather", {"city": "東京"}),
        ("magic_function", {"input": 3}),
    ]


def test_render_tool_call_history_plain_and_list_content() -> None:
    assert render_tool_call_history(AIMessage("just text")) == "just text"
    ai = AIMessage(
        content=[{"type": "text", "text": "Hmm."}],
        tool_calls=[{"name": "no_args", "args": {}, "id": "c"}],
    )
    assert render_tool_call_history(ai) == (
        'Hmm.\n<tool_call>\n{"name": "no_args", "arguments": {}}\n</tool_call>'
    )


# -- tool_choice after the reply --------------------------------------------------------------


def _call(name: str) -> Any:
    return {"name": name, "args": {}, "id": "call_x", "type": "tool_call"}


def test_check_tool_choice_auto_is_always_fine() -> None:
    assert check_tool_choice("auto", []) is None
    assert check_tool_choice(None, [_call("a")]) is None


def test_check_tool_choice_any() -> None:
    assert check_tool_choice("any", [_call("a")]) is None
    text = check_tool_choice("required", [])
    assert text is not None
    assert "must call at least one" in text
    assert TOOL_CALL_OPEN in text


def test_check_tool_choice_named() -> None:
    assert check_tool_choice("get_weather", [_call("get_weather")]) is None
    missing = check_tool_choice("get_weather", [])
    assert missing is not None
    assert 'must call the tool "get_weather"' in missing
    assert "You did not." in missing
    other = check_tool_choice("get_weather", [_call("get_weather"), _call("magic_function")])
    assert other is not None
    assert "You called 'magic_function' instead." in other
    as_dict = {"type": "function", "function": {"name": "get_weather"}}
    assert check_tool_choice(as_dict, [_call("get_weather")]) is None


def test_check_tool_choice_none() -> None:
    assert check_tool_choice("none", []) is None
    text = check_tool_choice("none", [_call("a")])
    assert text is not None
    assert "must not call any tool" in text
    invalid = [{"name": "a", "args": "{", "id": "i", "error": "bad", "type": "invalid_tool_call"}]
    assert check_tool_choice("none", [], invalid) is not None  # type: ignore[arg-type]


def test_check_tool_choice_reports_invalid_attempts() -> None:
    invalid = [
        {
            "name": "magic_function",
            "args": '{"input": "x"}',
            "id": "i",
            "error": "arguments for tool 'magic_function' do not match its schema: ...",
            "type": "invalid_tool_call",
        }
    ]
    text = check_tool_choice("magic_function", [], invalid)  # type: ignore[arg-type]
    assert text is not None
    assert "These calls could not be used:\n- magic_function: arguments for tool" in text


def test_check_tool_choice_with_tool_names() -> None:
    assert check_tool_choice(True, [_call("only")], tool_names=["only"]) is None
    assert check_tool_choice(True, [_call("other")], tool_names=["only"]) is not None
