"""``hailuo serve`` driven by ``langchain-openai``'s ``ChatOpenAI`` with ``base_url`` set."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from langchain_hailuo.emulator.app import Emulator
from tests.integration_tests._chats import frames_apart, mark, sent
from tests.integration_tests._serve import API_KEY, MODEL, Served, call_block, served_by


class Person(BaseModel):
    """A person."""

    name: str
    age: int


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"Sunny, 21 C in {city}"


served = served_by()


@pytest.fixture
def llm(served: Served, emulator: Emulator) -> ChatOpenAI:
    emulator.clear_faults()
    return ChatOpenAI(model=MODEL, base_url=served.base_url, api_key=API_KEY, max_retries=0)


def test_invoke_and_stream(llm: ChatOpenAI, emulator: Emulator) -> None:
    answer = llm.invoke("Hello there")
    assert answer.content == "You said: Hello there. This chat has 1 turn(s)."
    assert answer.response_metadata["finish_reason"] == "stop"
    assert answer.usage_metadata is not None
    with frames_apart(emulator):
        chunks = list(llm.stream("Streaming hello"))
    assert len([c for c in chunks if c.content]) > 1
    assert "".join(str(c.content) for c in chunks) == (
        "You said: Streaming hello. This chat has 1 turn(s)."
    )


async def test_async_stream(llm: ChatOpenAI) -> None:
    text = "".join([str(c.content) async for c in llm.astream("Async hello")])
    assert text == "You said: Async hello. This chat has 1 turn(s)."


def test_tool_round_trip(llm: ChatOpenAI, emulator: Emulator) -> None:
    emulator.script(call_block("get_weather", {"city": "Rome"}), "Sunny in Rome.")
    start = mark(emulator)
    model = llm.bind_tools([get_weather])
    history: list[BaseMessage] = [HumanMessage("Weather in Rome?")]
    call = model.invoke(history)
    assert isinstance(call, AIMessage)
    assert [c["name"] for c in call.tool_calls] == ["get_weather"]
    assert call.tool_calls[0]["args"] == {"city": "Rome"}
    history += [
        call,
        ToolMessage(
            get_weather.invoke(call.tool_calls[0]["args"]), tool_call_id=call.tool_calls[0]["id"]
        ),
    ]
    final = model.invoke(history)
    assert final.content == "Sunny in Rome."
    first, second = sent(emulator, "agent", start)
    assert second.chat_id == first.chat_id
    assert "Sunny, 21 C in Rome" in second.text
    assert "Weather in Rome?" not in second.text


def test_structured_output(llm: ChatOpenAI, emulator: Emulator) -> None:
    emulator.script('{"name": "Bo", "age": 7}')
    person = llm.with_structured_output(Person).invoke("Bo is seven.")
    assert person == Person(name="Bo", age=7)


def test_three_turns_in_one_chat(llm: ChatOpenAI, emulator: Emulator) -> None:
    start = mark(emulator)
    history: list[BaseMessage] = []
    for turn, question in enumerate(["Alpha", "Beta", "Gamma"], 1):
        history.append(HumanMessage(question))
        answer = llm.invoke(history)
        assert str(answer.content).endswith(f"This chat has {turn} turn(s).")
        history.append(answer)
    posts = sent(emulator, "agent", start)
    assert [p.text for p in posts] == ["Alpha", "Beta", "Gamma"]
    assert len({p.chat_id for p in posts}) == 1
