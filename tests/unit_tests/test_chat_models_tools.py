"""ChatHailuo's tool calling and structured output over a fake provider."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TypedDict, cast

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableBinding
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from langchain_hailuo import HailuoToolChoiceError, StructuredOutputError
from langchain_hailuo._structured import SchemaValidationError
from langchain_hailuo._tool_turns import INSTRUCTIONS_WITHDRAWN
from langchain_hailuo.types import Reasoning, Usage
from tests.unit_tests.test_chat_models import FakeProvider, collect, make_model


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"Sunny in {city}"


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Person(BaseModel):
    """A person."""

    name: str = Field(description="The name")
    age: int = Field(description="Age in years")


class PersonDict(TypedDict):
    """A person, as a dict."""

    name: str
    age: int


def block(name: str, arguments: Any) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def chunks_of(stream: Iterator[Any]) -> tuple[list[AIMessageChunk], AIMessageChunk]:
    return collect(cast("Iterator[AIMessageChunk]", stream))


def split_every(text: str, size: int) -> list[Any]:
    return [text[i : i + size] for i in range(0, len(text), size)]


# --------------------------------------------------------------------------- bind_tools


def test_bind_tools_converts_and_normalises_the_choice() -> None:
    model, _ = make_model()
    bound = model.bind_tools([get_weather, Person], tool_choice="required")
    assert isinstance(bound, RunnableBinding)
    tools = bound.kwargs["tools"]
    assert [t["function"]["name"] for t in tools] == ["get_weather", "Person"]
    assert bound.kwargs["tool_choice"] == "any"
    spelled = model.bind_tools(
        [get_weather], tool_choice={"type": "function", "function": {"name": "get_weather"}}
    )
    assert spelled.kwargs["tool_choice"] == "get_weather"  # type: ignore[attr-defined]
    assert model.bind_tools([get_weather], tool_choice=True).kwargs["tool_choice"] == (  # type: ignore[attr-defined]
        "get_weather"
    )
    with pytest.raises(ValueError, match="names no bound tool"):
        model.bind_tools([get_weather], tool_choice="nope")
    with pytest.raises(ValueError, match="no tools are bound"):
        model.bind_tools([], tool_choice="any")


def test_new_chat_gets_the_instructions_first_and_the_call_is_parsed() -> None:
    reply = "I'll check.\n" + block("get_weather", {"city": "Paris"})
    model, provider = make_model(FakeProvider(replies=[[reply]]))
    answer = model.bind_tools([get_weather]).invoke(
        [SystemMessage("Be brief."), HumanMessage("Weather in Paris?")]
    )
    sent = provider.calls[0].messages
    assert sent[0]["role"] == "system"
    assert sent[0]["content"].startswith("# Tools")
    assert "## get_weather" in sent[0]["content"]
    assert sent[1:] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
    ]
    assert provider.calls[0].kwargs["full_history"] == sent
    assert answer.content == "I'll check."
    assert len(answer.tool_calls) == 1
    call = answer.tool_calls[0]
    assert call["name"] == "get_weather"
    assert call["args"] == {"city": "Paris"}
    assert call["id"]
    assert call["id"].startswith("call_")
    meta = answer.response_metadata
    assert meta["finish_reason"] == "tool_calls"
    assert len(meta["tools_hash"]) == 16


def test_plain_answer_with_tools_bound_is_plain() -> None:
    model, _ = make_model(FakeProvider(replies=[["Just text."]]))
    answer = model.bind_tools([get_weather]).invoke("Hi")
    assert answer.content == "Just text."
    assert answer.tool_calls == []
    assert answer.response_metadata["finish_reason"] == "stop"


def test_no_tools_means_no_instructions_and_no_parsing() -> None:
    text = block("get_weather", {"city": "Paris"})
    model, provider = make_model(FakeProvider(replies=[[text]]))
    answer = model.invoke("Hi")
    assert provider.calls[0].messages == [{"role": "user", "content": "Hi"}]
    assert answer.content == text
    assert "tools_hash" not in answer.response_metadata


# --------------------------------------------------------------------------- streaming


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 11])
def test_stream_emits_tool_call_chunks_and_never_leaks_syntax(size: int) -> None:
    reply = (
        "Checking.\n```json\n"
        + block("get_weather", {"city": "東京"})
        + "\n```\n"
        + block("add", {"a": 2, "b": 3})
    )
    model, _ = make_model(FakeProvider(replies=[split_every(reply, size)]))
    items, total = chunks_of(model.bind_tools([get_weather, add]).stream("Go"))
    streamed = "".join(c.text for c in items)
    assert streamed.strip() == "Checking."
    for needle in ("<", "tool_call", "```", "{"):
        assert needle not in streamed
    with_calls = [c for c in items if c.tool_call_chunks]
    assert len(with_calls) >= 1
    assert [c["name"] for c in total.tool_calls] == ["get_weather", "add"]
    assert [c["args"] for c in total.tool_calls] == [{"city": "東京"}, {"a": 2, "b": 3}]
    assert len({c["id"] for c in total.tool_calls}) == 2
    assert sum("tools_hash" in c.response_metadata for c in items) == 1
    assert sum("finish_reason" in c.response_metadata for c in items) == 1
    assert total.response_metadata["finish_reason"] == "tool_calls"
    assert items[-1].chunk_position == "last"


def test_invalid_call_goes_to_invalid_tool_calls_on_invoke_and_is_not_streamed() -> None:
    reply = "Hmm.\n" + block("add", {"a": "two", "b": 3}) + "\n<tool_call>{broken</tool_call>"
    model, _ = make_model(FakeProvider(replies=[[reply], [reply]]))
    bound = model.bind_tools([add])
    answer = bound.invoke("Add")
    assert answer.content == "Hmm."
    assert answer.tool_calls == []
    assert len(answer.invalid_tool_calls) == 2
    assert "do not match its schema" in (answer.invalid_tool_calls[0]["error"] or "")
    assert "no valid JSON" in (answer.invalid_tool_calls[1]["error"] or "")
    items, total = chunks_of(bound.stream("Add"))
    assert all(not c.tool_call_chunks for c in items)
    assert total.tool_calls == []
    assert "tool_call" not in total.text


def test_stop_sequence_and_reasoning_still_work_with_tools() -> None:
    events: list[Any] = [Reasoning("Think "), "Sure.", Reasoning("more."), " END then more"]
    model, _ = make_model(FakeProvider(replies=[events]))
    _, total = chunks_of(model.bind_tools([add]).stream("Go", stop=["END"]))
    assert total.text.strip() == "Sure."
    assert total.additional_kwargs["reasoning_content"] == "Think more."
    assert total.response_metadata["finish_reason"] == "stop"


# --------------------------------------------------------------------------- tool results


def test_tool_results_continue_the_chat_with_only_the_results() -> None:
    first_reply = block("get_weather", {"city": "Paris"}) + block("add", {"a": 1, "b": 2})
    model, provider = make_model(FakeProvider(replies=[[first_reply], ["Sunny, and 3."]]))
    bound = model.bind_tools([get_weather, add])
    question = HumanMessage("Weather, and 1+2?")
    call = bound.invoke([question])
    first_id, second_id = (c["id"] for c in call.tool_calls)
    results = [
        ToolMessage("Sunny", tool_call_id=first_id),
        ToolMessage(
            [{"type": "text", "text": "3"}], tool_call_id=second_id, status="error", name="add"
        ),
    ]
    final = bound.invoke([question, call, *results])
    assert final.content == "Sunny, and 3."
    second = provider.calls[1]
    assert second.conversation is not None
    assert second.conversation.chatID == call.response_metadata["chat_id"]
    assert len(second.messages) == 1
    text = second.messages[0]["content"]
    assert text.startswith("Results of your tool calls:")
    assert f'<tool_result id="{first_id}" name="get_weather">\nSunny\n</tool_result>' in text
    assert f'<tool_result id="{second_id}" name="add" status="error">\n3\n</tool_result>' in text
    assert "# Tools" not in text
    assert "Weather, and 1+2?" not in text
    assert final.response_metadata["chat_id"] == call.response_metadata["chat_id"]
    assert final.response_metadata["tools_hash"] == call.response_metadata["tools_hash"]


def test_changed_tools_resend_the_instructions_and_unbinding_withdraws_them() -> None:
    model, provider = make_model(FakeProvider(replies=[["One."], ["Two."], ["Three."]]))
    first = model.bind_tools([add]).invoke("Q1")
    history: list[Any] = [HumanMessage("Q1"), first, HumanMessage("Q2")]
    second = model.bind_tools([add, get_weather]).invoke(history)
    text = provider.calls[1].messages[0]["content"]
    assert text.startswith("# Tools")
    assert "## get_weather" in text
    assert text.endswith("\n\nQ2")
    assert provider.calls[1].conversation is not None
    history += [second, HumanMessage("Q3")]
    model.invoke(history)
    assert provider.calls[2].messages == [
        {"role": "user", "content": f"{INSTRUCTIONS_WITHDRAWN}\n\nQ3"}
    ]


def test_same_tools_are_not_resent_on_a_plain_follow_up() -> None:
    model, provider = make_model(FakeProvider(replies=[["One."], ["Two."]]))
    bound = model.bind_tools([add])
    first = bound.invoke("Q1")
    bound.invoke([HumanMessage("Q1"), first, HumanMessage("Q2")])
    assert provider.calls[1].messages == [{"role": "user", "content": "Q2"}]


def test_history_from_elsewhere_is_folded_with_calls_and_grouped_results() -> None:
    model, provider = make_model(FakeProvider(replies=[["Done."]]))
    call = AIMessage(
        "",
        tool_calls=[
            {"name": "add", "args": {"a": 1, "b": 2}, "id": "c1"},
            {"name": "add", "args": {"a": 3, "b": 4}, "id": "c2"},
        ],
    )
    history = [
        HumanMessage("Sums?"),
        call,
        ToolMessage("3", tool_call_id="c1"),
        ToolMessage("7", tool_call_id="c2"),
    ]
    model.bind_tools([add]).invoke(history)
    sent = provider.calls[0].messages
    assert provider.calls[0].conversation is None
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[2]["content"].count("<tool_call>") == 2
    assert '"arguments": {"a": 1, "b": 2}' in sent[2]["content"]
    assert sent[3]["content"].count("<tool_result") == 2
    assert sent[3]["content"].count("Results of your tool calls:") == 1
    assert 'id="c2" name="add"' in sent[3]["content"]


def test_tool_results_without_tools_bound_are_still_rendered() -> None:
    model, provider = make_model(FakeProvider(replies=[["Ok."]]))
    call = AIMessage("", tool_calls=[{"name": "add", "args": {}, "id": "c1"}])
    model.invoke([HumanMessage("Q"), call, ToolMessage("3", tool_call_id="c1")])
    assert provider.calls[0].messages[-1]["content"].startswith("Results of your tool calls:")


# --------------------------------------------------------------------------- tool_choice


def test_forced_choice_gets_one_corrective_turn_in_the_same_chat() -> None:
    provider = FakeProvider(replies=[["No call here."], [block("get_weather", {"city": "Rome"})]])
    model, _ = make_model(provider)
    bound = model.bind_tools([get_weather], tool_choice="get_weather")
    _, total = chunks_of(bound.stream("Weather in Rome?"))
    assert "No call here" not in total.text  # the ignored answer is never shown
    assert total.tool_calls[0]["args"] == {"city": "Rome"}
    assert len(provider.calls) == 2
    corrective = provider.calls[1]
    assert corrective.conversation is not None
    assert corrective.conversation.chatID == "chat-1"
    assert len(corrective.messages) == 1
    assert 'must call the tool "get_weather"' in corrective.messages[0]["content"]
    assert total.response_metadata["chat_id"] == "chat-1"


def test_forced_choice_ignored_twice_raises_a_typed_error() -> None:
    model, provider = make_model(FakeProvider(replies=[["No."], ["Still no."]]))
    with pytest.raises(HailuoToolChoiceError) as caught:
        model.bind_tools([add], tool_choice="any").invoke("Add 1 and 2")
    assert caught.value.partial_text == "Still no."
    assert caught.value.chat_id == "chat-1"
    assert len(provider.calls) == 2


def test_choice_none_with_a_call_is_corrected() -> None:
    model, provider = make_model(
        FakeProvider(replies=[[block("add", {"a": 1, "b": 2})], ["It is 3."]])
    )
    answer = model.bind_tools([add], tool_choice="none").invoke("1+2?")
    assert answer.content == "It is 3."
    assert answer.tool_calls == []
    assert "must not call any tool" in provider.calls[1].messages[0]["content"]


def test_usage_of_a_corrective_turn_is_added() -> None:
    usage = Usage(input_tokens=10, output_tokens=2, total_tokens=12)
    model, _ = make_model(
        FakeProvider(replies=[["No.", usage], [block("add", {"a": 1, "b": 2}), usage]])
    )
    answer = model.bind_tools([add], tool_choice="any").invoke("1+2?")
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["total_tokens"] == 24


# --------------------------------------------------------------------------- structured output


class _Options(BaseCallbackHandler):
    def __init__(self) -> None:
        self.options: list[dict[str, Any]] = []

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        self.options.append(kwargs.get("options") or {})


@pytest.mark.parametrize("method", ["json_schema", "json_mode", "function_calling"])
def test_structured_output_pydantic_first_time(method: str) -> None:
    reply = (
        block("Person", {"name": "Ada", "age": 36})
        if method == "function_calling"
        else '{"name": "Ada", "age": 36}'
    )
    model, provider = make_model(FakeProvider(replies=[[reply]]))
    handler = _Options()
    result = model.with_structured_output(Person, method=method).invoke(  # type: ignore[arg-type]
        "Who?", config={"callbacks": [handler]}
    )
    assert result == Person(name="Ada", age=36)
    assert len(provider.calls) == 1
    assert provider.calls[0].messages[0]["role"] == "system"
    fmt = handler.options[0]["ls_structured_output_format"]
    assert fmt["kwargs"] == {"method": method, "strict": None}
    assert fmt["schema"]["title"] == "Person"


def test_structured_output_typeddict_and_json_schema_give_dicts() -> None:
    schema = {
        "title": "City",
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
    }
    model, _ = make_model(
        FakeProvider(replies=[['{"name": "Ada", "age": 36.0}'], ['{"name": "Rome"}']])
    )
    assert model.with_structured_output(PersonDict).invoke("Who?") == {"name": "Ada", "age": 36}
    assert model.with_structured_output(schema).invoke("Where?") == {"name": "Rome"}


def test_structured_output_repair_turn_then_typed_error() -> None:
    provider = FakeProvider(
        replies=[
            ['{"name": "Ada", "age": "old"}'],
            ['Sure: {"name": "Ada", "age": 36}'],
            ["no json"],
            ['{"name": 1}'],
        ]
    )
    model, _ = make_model(provider)
    structured = model.with_structured_output(Person)
    assert structured.invoke("Who?") == Person(name="Ada", age=36)
    repair = provider.calls[1]
    assert repair.conversation is not None
    assert repair.conversation.chatID == "chat-1"
    assert "$.age" in repair.messages[0]["content"]
    with pytest.raises(SchemaValidationError) as caught:
        structured.invoke("Who?")
    assert isinstance(caught.value, StructuredOutputError)
    assert len(provider.calls) == 4


def test_structured_output_include_raw() -> None:
    provider = FakeProvider(replies=[['{"name": "Ada", "age": 36}'], ["nope"], ["still nope"]])
    model, _ = make_model(provider)
    structured = model.with_structured_output(Person, include_raw=True)
    good = structured.invoke("Who?")
    assert good["parsed"] == Person(name="Ada", age=36)
    assert good["parsing_error"] is None
    assert isinstance(good["raw"], AIMessage)
    bad = structured.invoke("Who?")
    assert bad["parsed"] is None
    assert isinstance(bad["parsing_error"], StructuredOutputError)
    assert bad["raw"].content == "still nope"


def test_structured_output_streams_one_parsed_value() -> None:
    model, _ = make_model(FakeProvider(replies=[split_every('{"name": "Ada", "age": 36}', 3)]))
    chunks = list(model.with_structured_output(Person).stream("Who?"))
    assert chunks == [Person(name="Ada", age=36)]


def test_structured_output_rejects_bad_arguments() -> None:
    model, _ = make_model()
    with pytest.raises(ValueError, match="Unknown method"):
        model.with_structured_output(Person, method="xml")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs a schema"):
        model.with_structured_output(None)
    with pytest.raises(ValueError, match="unsupported arguments"):
        model.with_structured_output(Person, foo=1)


def test_structured_output_pydantic_validation_is_checked_too() -> None:
    class Positive(BaseModel):
        value: int = Field(gt=0)

    model, provider = make_model(FakeProvider(replies=[['{"value": -1}'], ['{"value": 2}']]))
    assert model.with_structured_output(Positive).invoke("n?") == Positive(value=2)
    assert "$.value" in provider.calls[1].messages[0]["content"]


def test_chunks_are_message_chunks() -> None:
    model, _ = make_model(FakeProvider(replies=[[block("add", {"a": 1, "b": 2})]]))
    for chunk in model.bind_tools([add]).stream("Go"):
        assert isinstance(chunk, AIMessageChunk)


@pytest.mark.parametrize("output_version", ["v0", "v1"])
def test_text_and_calls_stay_separate_content_blocks(output_version: str) -> None:
    reply = "Let me add.\n" + block("add", {"a": 1, "b": 2}) + block("add", {"a": 3, "b": 4})
    pieces = [*split_every(reply, 5), "\nDone."]
    model, _ = make_model(FakeProvider(replies=[pieces]), output_version=output_version)
    _, total = chunks_of(model.bind_tools([add]).stream("Go"))
    blocks = total.content_blocks
    assert [b["type"] for b in blocks if b["type"] != "text"] == ["tool_call", "tool_call"]
    calls = [b for b in blocks if b["type"] == "tool_call"]
    assert [c["args"] for c in calls] == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]
    assert "".join(b["text"] for b in blocks if b["type"] == "text") == "Let me add.\n\nDone."
