"""``hailuo serve`` driven by the real ``anthropic`` SDK (Messages API), over the emulator."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from langchain_hailuo.emulator import ScriptedReply
from langchain_hailuo.emulator.app import Emulator
from tests.integration_tests._chats import frames_apart, mark, sent
from tests.integration_tests._serve import (
    MODEL,
    Served,
    anthropic_client,
    anthropic_sdk,
    call_block,
    served_by,
)

WEATHER_TOOL: Any = {
    "name": "get_weather",
    "description": "Get the current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


served = served_by()
client = anthropic_client  # the shared fixture, by this module's name


def blocks(message: Any) -> list[Any]:
    """A message's content blocks, untyped (the SDK's union has a dozen block kinds)."""
    return list(message.content)


def test_non_streaming_message(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model=MODEL, max_tokens=256, messages=[{"role": "user", "content": "Hello there"}]
    )
    assert message.role == "assistant"
    assert message.stop_reason == "end_turn"
    (block,) = blocks(message)
    assert block.type == "text"
    assert block.text == "You said: Hello there. This chat has 1 turn(s)."
    assert message.usage.output_tokens > 0


def test_streaming_message(client: anthropic.Anthropic, emulator: Emulator) -> None:
    with (
        frames_apart(emulator),
        client.messages.stream(
            model=MODEL, max_tokens=256, messages=[{"role": "user", "content": "Stream this"}]
        ) as stream,
    ):
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(texts) > 1
    assert "".join(texts) == "You said: Stream this. This chat has 1 turn(s)."
    assert [b.type for b in blocks(final)] == ["text"]
    assert final.stop_reason == "end_turn"


def test_thinking_blocks_from_reasoning(client: anthropic.Anthropic, emulator: Emulator) -> None:
    emulator.script(
        ScriptedReply("Four.", reasoning="Two plus two."),
        ScriptedReply("Six.", reasoning="Three times two."),
    )
    message = client.messages.create(
        model=MODEL,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "2+2?"}],
    )
    assert [b.type for b in blocks(message)] == ["thinking", "text"]
    assert blocks(message)[0].thinking == "Two plus two."
    assert blocks(message)[1].text == "Four."

    with client.messages.stream(
        model=MODEL,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "3*2?"}],
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert "thinking" in kinds
    assert [b.type for b in blocks(final)] == ["thinking", "text"]
    assert blocks(final)[0].thinking == "Three times two."
    assert blocks(final)[1].text == "Six."


def test_tool_round_trip_in_anthropic_format(
    client: anthropic.Anthropic, emulator: Emulator
) -> None:
    emulator.script(
        "Let me check.\n" + call_block("get_weather", {"city": "Paris"}),
        "It is sunny in Paris.",
    )
    start = mark(emulator)
    messages: Any = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.messages.create(
        model=MODEL,
        max_tokens=256,
        tools=[WEATHER_TOOL],
        messages=messages,
    )
    assert first.stop_reason == "tool_use"
    assert [b.type for b in blocks(first)] == ["text", "tool_use"]
    use = blocks(first)[1]
    assert use.type == "tool_use"
    assert use.name == "get_weather"
    assert use.input == {"city": "Paris"}

    messages.append({"role": "assistant", "content": [b.model_dump() for b in blocks(first)]})
    messages.append(
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 21 C"}],
        }
    )
    second = client.messages.create(
        model=MODEL,
        max_tokens=256,
        tools=[WEATHER_TOOL],
        messages=messages,
    )
    assert blocks(second)[0].text == "It is sunny in Paris."
    assert second.stop_reason == "end_turn"
    posts = sent(emulator, "agent", start)
    assert len(posts) == 2
    assert posts[1].chat_id == posts[0].chat_id
    assert f'<tool_result id="{use.id}" name="get_weather">' in posts[1].text
    assert "Weather in Paris?" not in posts[1].text


def test_tool_use_streams_as_a_block(client: anthropic.Anthropic, emulator: Emulator) -> None:
    emulator.script(call_block("get_weather", {"city": "Oslo"}))
    with client.messages.stream(
        model=MODEL,
        max_tokens=256,
        tools=[WEATHER_TOOL],
        tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    (use,) = blocks(final)
    assert use.type == "tool_use"
    assert use.input == {"city": "Oslo"}


def test_three_turns_land_in_one_chat(client: anthropic.Anthropic, emulator: Emulator) -> None:
    start = mark(emulator)
    history: Any = []
    for turn, question in enumerate(["One", "Two", "Three"], 1):
        history.append({"role": "user", "content": question})
        message = client.messages.create(
            model=MODEL,
            max_tokens=256,
            system="Be brief.",
            messages=history,
        )
        text = blocks(message)[0].text
        assert text.endswith(f"This chat has {turn} turn(s).")
        history.append({"role": "assistant", "content": [b.model_dump() for b in blocks(message)]})
    posts = sent(emulator, "agent", start)
    assert len({p.chat_id for p in posts}) == 1
    assert [p.text for p in posts[1:]] == ["Two", "Three"]


def test_request_without_the_key_gets_401_in_anthropic_shape(served: Served) -> None:
    with (
        anthropic_sdk(served, api_key="nope") as bad,
        pytest.raises(anthropic.AuthenticationError) as caught,
    ):
        bad.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.status_code == 401
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "authentication_error",
            "message": "Missing or wrong API key: send it as 'Authorization: Bearer KEY' or "
            "'x-api-key: KEY'.",
        },
    }


def test_quota_wall_gets_429(client: anthropic.Anthropic, emulator: Emulator) -> None:
    emulator.fault("quota_wall")
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.status_code == 429
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "rate_limit_error"


def test_an_image_by_file_id_is_refused_with_400(client: anthropic.Anthropic) -> None:
    image: Any = {"type": "file", "file_id": "file_123"}
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model=MODEL,
            max_tokens=10,
            messages=[{"role": "user", "content": [{"type": "image", "source": image}]}],
        )
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "'file' source" in caught.value.body["error"]["message"]


def test_models_in_anthropic_shape(client: anthropic.Anthropic, emulator: Emulator) -> None:
    assert [m.id for m in client.models.list()] == emulator.default_account.models
