"""Tool calling and structured output end to end, on the emulator with scripted replies.

The emulator's replies are queued with ``Emulator.script``; what ChatHailuo posted is read
back from ``Emulator.requests_to("chat")``. Both protocols. The emulator runs on its own loop
in a daemon thread, so the sync LangChain calls (and LangGraph's agent) reach it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.prebuilt import create_react_agent
from pydantic import BaseModel, Field

from langchain_hailuo import HailuoToolChoiceError, StructuredOutputError
from langchain_hailuo.emulator.app import Emulator
from tests.integration_tests._chats import PROTOCOLS, frames_apart, mark, model_for, sent


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"Sunny, 21 C in {city}"


def call_block(name: str, arguments: dict[str, Any]) -> str:
    """A tool call block in the syntax the instructions teach."""
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


class Person(BaseModel):
    """A person."""

    name: str = Field(description="The person's name")
    age: int = Field(description="Age in years")


# --------------------------------------------------------------------------- agent loop


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_react_agent_loop_runs_in_one_server_chat(emulator: Emulator, protocol: str) -> None:
    model = model_for(emulator, protocol)
    agent = create_react_agent(model, [get_weather])
    emulator.script(
        "Let me look that up.\n" + call_block("get_weather", {"city": "Paris"}),
        "It is sunny and 21 C in Paris.",
    )
    start = mark(emulator)
    state = agent.invoke({"messages": [HumanMessage("What is the weather in Paris?")]})
    messages = state["messages"]
    call, result, final = messages[1], messages[2], messages[3]
    assert isinstance(call, AIMessage)
    assert [c["name"] for c in call.tool_calls] == ["get_weather"]
    assert call.tool_calls[0]["args"] == {"city": "Paris"}
    assert call.content == "Let me look that up."
    assert call.response_metadata["finish_reason"] == "tool_calls"
    assert isinstance(result, ToolMessage)
    assert result.content == "Sunny, 21 C in Paris"
    assert final.content == "It is sunny and 21 C in Paris."
    assert final.response_metadata["chat_id"] == call.response_metadata["chat_id"]

    posts = sent(emulator, protocol, start)
    assert len(posts) == 2
    first, second = posts
    assert "# Tools" in first.text
    assert "## get_weather" in first.text
    assert "What is the weather in Paris?" in first.text
    # The second post goes to the same chat and carries only the tool result.
    assert second.chat_id == call.response_metadata["chat_id"]
    call_id = call.tool_calls[0]["id"]
    assert second.text.startswith("Results of your tool calls:")
    assert f'<tool_result id="{call_id}" name="get_weather">' in second.text
    assert "Sunny, 21 C in Paris" in second.text
    assert "What is the weather" not in second.text
    assert "# Tools" not in second.text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_streamed_tool_call_never_leaks_syntax(emulator: Emulator, protocol: str) -> None:
    model = model_for(emulator, protocol).bind_tools([get_weather])
    emulator.script(
        "Checking both.\n"
        + call_block("get_weather", {"city": "東京"})
        + "\n"
        + call_block("get_weather", {"city": "Paris"})
    )
    with frames_apart(emulator):  # small pieces read one by one, so markers are split
        chunks = [
            c for c in model.stream("Weather in Tokyo and Paris?") if isinstance(c, AIMessageChunk)
        ]
    assert len(chunks) > 3  # the emulator sends small pieces, so markers are split
    streamed = "".join(c.text for c in chunks)
    assert streamed.strip() == "Checking both."
    assert "<tool" not in streamed
    assert "tool_call" not in streamed
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    assert [c["args"] for c in total.tool_calls] == [{"city": "東京"}, {"city": "Paris"}]
    assert all(c["id"] for c in total.tool_calls)
    assert total.response_metadata["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_forced_tool_choice_ignored_once_then_obeyed(emulator: Emulator, protocol: str) -> None:
    model = model_for(emulator, protocol).bind_tools([get_weather], tool_choice="get_weather")
    emulator.script("It is probably sunny in Rome.", call_block("get_weather", {"city": "Rome"}))
    start = mark(emulator)
    answer = model.invoke("Weather in Rome?")
    assert answer.tool_calls[0]["args"] == {"city": "Rome"}
    assert "probably" not in answer.text
    posts = sent(emulator, protocol, start)
    assert len(posts) == 2
    assert 'you MUST call the tool "get_weather"' in posts[0].text
    assert posts[1].chat_id == answer.response_metadata["chat_id"]
    assert 'must call the tool "get_weather"' in posts[1].text
    assert "Weather in Rome?" not in posts[1].text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_forced_tool_choice_ignored_twice_is_a_typed_error(
    emulator: Emulator, protocol: str
) -> None:
    model = model_for(emulator, protocol).bind_tools([get_weather], tool_choice="any")
    emulator.script("No tools today.", "Still no tools.")
    start = mark(emulator)
    with pytest.raises(HailuoToolChoiceError) as caught:
        model.invoke("Weather in Oslo?")
    assert caught.value.partial_text == "Still no tools."
    posts = sent(emulator, protocol, start)
    assert len(posts) == 2
    assert caught.value.chat_id is not None


# --------------------------------------------------------------------------- structured output


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_structured_output_valid_first_time(emulator: Emulator, protocol: str) -> None:
    model = model_for(emulator, protocol).with_structured_output(Person)
    emulator.script('{"name": "Ada", "age": 36}')
    start = mark(emulator)
    assert model.invoke("Who wrote the first program?") == Person(name="Ada", age=36)
    posts = sent(emulator, protocol, start)
    assert len(posts) == 1
    assert "JSON schema" in posts[0].text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_structured_output_after_one_repair(emulator: Emulator, protocol: str) -> None:
    model = model_for(emulator, protocol).with_structured_output(Person, include_raw=True)
    emulator.script(
        '{"name": "Ada", "age": "thirty-six"}', '```json\n{"name": "Ada", "age": 36}\n```'
    )
    start = mark(emulator)
    out = model.invoke("Who wrote the first program?")
    assert out["parsed"] == Person(name="Ada", age=36)
    assert out["parsing_error"] is None
    raw = out["raw"]
    posts = sent(emulator, protocol, start)
    assert len(posts) == 2
    assert posts[1].chat_id == raw.response_metadata["chat_id"]
    assert "$.age" in posts[1].text
    assert "Who wrote" not in posts[1].text


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_structured_output_fails_after_a_second_bad_reply(
    emulator: Emulator, protocol: str
) -> None:
    model = model_for(emulator, protocol).with_structured_output(Person, method="function_calling")
    emulator.script("I'd rather not.", "Still no.")
    start = mark(emulator)
    with pytest.raises(StructuredOutputError, match="Person"):
        model.invoke("Who wrote the first program?")
    assert len(sent(emulator, protocol, start)) == 2

    emulator.script("nope", "nope again")
    raw_model = model_for(emulator, protocol).with_structured_output(Person, include_raw=True)
    out = raw_model.invoke("Who?")
    assert out["parsed"] is None
    assert isinstance(out["parsing_error"], StructuredOutputError)
    assert out["raw"].content == "nope again"
