"""``POST /v1/responses`` (the OpenAI Responses API) driven by the real ``openai`` SDK and the
OpenAI Agents SDK's default model, over the emulator."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest
from pydantic import BaseModel, SecretStr

from langchain_hailuo.emulator import ScriptedReply
from langchain_hailuo.emulator.app import Emulator
from tests.integration_tests._chats import frames_apart, mark, sent
from tests.integration_tests._serve import (
    API_KEY,
    MODEL,
    Served,
    call_block,
    openai_client,
    openai_sdk,
    served_by,
    serving,
)

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


served = served_by(model_aliases=(("gpt-*", MODEL),))
client = openai_client  # the shared fixture, by this module's name


def test_create_answers_a_string_input(client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.script("Hello from the Responses API.")
    response = client.responses.create(model=MODEL, input="Hi", instructions="Be kind.")
    assert response.status == "completed"
    assert response.output_text == "Hello from the Responses API."
    assert [item.type for item in response.output] == ["message"]
    assert response.usage is not None
    assert response.usage.output_tokens > 0
    assert response.instructions == "Be kind."


def test_stream_gives_the_documented_events(client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.script("One two three four five six seven.")
    with (
        frames_apart(emulator, 0.02),
        client.responses.stream(model=MODEL, input="Count") as stream,
    ):
        events = list(stream)
        final = stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "One two three four five six seven."
    assert final.output_text == "One two three four five six seven."
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_previous_response_id_continues_the_chat_with_only_the_new_input(
    client: openai.OpenAI, emulator: Emulator
) -> None:
    start = mark(emulator)
    first = client.responses.create(model=MODEL, input="First message")
    second = client.responses.create(
        model=MODEL, input="Second message", previous_response_id=first.id
    )
    with client.responses.stream(
        model=MODEL, input="Third message", previous_response_id=second.id
    ) as stream:
        third = stream.get_final_response()
    assert third.output_text.endswith("This chat has 3 turn(s).")
    posts = sent(emulator, "agent", start)
    assert [p.text for p in posts] == ["First message", "Second message", "Third message"]
    assert posts[0].chat_id == posts[1].chat_id == posts[2].chat_id


def test_store_false_continues_by_the_resent_history(
    client: openai.OpenAI, emulator: Emulator
) -> None:
    start = mark(emulator)
    history: Any = [{"role": "user", "content": "Stateless one"}]
    first = client.responses.create(model=MODEL, input=history, store=False)
    history += [item.model_dump(exclude_none=True) for item in first.output]
    history.append({"role": "user", "content": "Stateless two"})
    second = client.responses.create(model=MODEL, input=history, store=False)
    assert second.output_text.endswith("This chat has 2 turn(s).")
    posts = sent(emulator, "agent", start)
    assert [p.text for p in posts] == ["Stateless one", "Stateless two"]
    assert posts[0].chat_id == posts[1].chat_id
    with pytest.raises(openai.BadRequestError) as caught:  # nothing was kept by id
        client.responses.create(model=MODEL, input="more", previous_response_id=second.id)
    assert "not found" in str(caught.value)


def test_function_tool_round_trip(client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.script(call_block("get_weather", {"city": "Paris"}), "It is sunny in Paris.")
    start = mark(emulator)
    first = client.responses.create(
        model=MODEL,
        input="Weather in Paris?",
        tools=[WEATHER, {"type": "web_search"}, {"type": "custom", "name": "apply_patch"}],
    )
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    second = client.responses.create(
        model=MODEL,
        previous_response_id=first.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"}],
    )
    assert second.output_text == "It is sunny in Paris."
    posts = sent(emulator, "agent", start)
    assert posts[1].chat_id == posts[0].chat_id
    assert f'<tool_result id="{call.call_id}" name="get_weather">' in posts[1].text
    assert "Weather in Paris?" not in posts[1].text


def test_streamed_function_call(client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.script("Checking.\n" + call_block("get_weather", {"city": "Rome"}))
    with client.responses.stream(model=MODEL, input="Rome?", tools=[WEATHER]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.done" in kinds
    assert [item.type for item in final.output] == ["message", "function_call"]
    assert final.output_text.strip() == "Checking."


class City(BaseModel):
    name: str
    population: int


def test_text_format_json_schema_is_structured_output(
    client: openai.OpenAI, emulator: Emulator
) -> None:
    emulator.script('```json\n{"name": "Paris", "population": 2100000}\n```')
    parsed = client.responses.parse(model=MODEL, input="Biggest French city?", text_format=City)
    assert parsed.output_parsed == City(name="Paris", population=2100000)


def test_reasoning_becomes_a_reasoning_item(client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.script(ScriptedReply("Four.", reasoning="Two plus two."))
    response = client.responses.create(model=MODEL, input="2+2?", reasoning={"effort": "high"})
    items: list[Any] = list(response.output)  # the SDK's union has two dozen item kinds
    reasoning, message = items
    assert (reasoning.type, message.type) == ("reasoning", "message")
    assert [s.text for s in reasoning.summary] == ["Two plus two."]
    assert response.output_text == "Four."
    emulator.script(ScriptedReply("Six.", reasoning="Three times two."))
    with client.responses.stream(model=MODEL, input="3*2?", reasoning={"effort": "high"}) as stream:
        events = list(stream)
        final = stream.get_final_response()
    thought = [e.delta for e in events if e.type == "response.reasoning_summary_text.delta"]
    assert "".join(thought) == "Three times two."
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output_text == "Six."


def test_a_drop_mid_stream_is_response_failed_and_never_resent(
    served: Served, emulator: Emulator
) -> None:
    start = mark(emulator)
    with openai_sdk(served, max_retries=openai.DEFAULT_MAX_RETRIES) as sdk:  # default retries
        emulator.fault("drop", after=4)
        with pytest.raises(openai.APIError) as caught:
            for _ in sdk.responses.create(model=MODEL, input="A long answer please", stream=True):
                pass
        assert "dropped mid-answer" in str(caught.value)
        emulator.fault("drop", after=0)
        with pytest.raises(openai.InternalServerError) as before:
            sdk.responses.create(model=MODEL, input="A long answer please")
    assert before.value.response.headers["x-should-retry"] == "false"
    assert mark(emulator) - start == 2


def test_agents_sdk_default_model_with_a_function_tool(served: Served, emulator: Emulator) -> None:
    agents = pytest.importorskip("agents")  # the test extra installs it
    calls: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        calls.append(city)
        return f"Sunny in {city}"

    emulator.script(call_block("get_weather", {"city": "Oslo"}), "Oslo is sunny today.")
    start = mark(emulator)
    agents.set_tracing_disabled(True)

    async def run() -> Any:
        async with openai.AsyncOpenAI(
            base_url=served.base_url, api_key=API_KEY, max_retries=0
        ) as client:
            agent = agents.Agent(
                name="Weather",
                instructions="Answer with the weather tool.",
                tools=[get_weather],
                model=agents.OpenAIResponsesModel(model="gpt-4.1", openai_client=client),
            )
            return await agents.Runner.run(agent, "Weather in Oslo?")

    result = asyncio.run(run())
    assert calls == ["Oslo"]
    assert result.final_output == "Oslo is sunny today."
    posts = sent(emulator, "agent", start)
    assert len(posts) == 2
    assert posts[1].chat_id == posts[0].chat_id
    assert "Sunny in Oslo" in posts[1].text


def test_a_response_id_is_kept_per_api_key(emulator: Emulator) -> None:
    other = "sk-serve-test-another-key"
    keys = (SecretStr(API_KEY), SecretStr(other))
    with serving(emulator, api_keys=keys) as served:
        with openai_sdk(served) as mine:
            first = mine.responses.create(model=MODEL, input="Mine")
        with (
            openai_sdk(served, api_key=other) as theirs,
            pytest.raises(openai.BadRequestError) as caught,
        ):
            theirs.responses.create(model=MODEL, input="Theirs", previous_response_id=first.id)
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert "not found" in str(caught.value)
