"""``hailuo serve`` driven by the real ``openai`` SDK, over the emulator.

One server and one emulator per module (faults and scripts are queued per test and used up
by it). What the server posted to the emulator is read back with the ``_chats`` helpers.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from langchain_hailuo.emulator import ScriptedReply
from langchain_hailuo.emulator.app import Emulator
from tests.integration_tests._chats import frames_apart, mark, sent
from tests.integration_tests._serve import (
    MODEL,
    Served,
    call_block,
    openai_client,
    openai_sdk,
    served_by,
    serving,
)


class Person(BaseModel):
    name: str
    age: int


served = served_by()
client = openai_client  # the shared fixture, by this module's name


WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_non_streaming_answer(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello there"}]
    )
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "You said: Hello there. This chat has 1 turn(s)."
    assert choice.finish_reason == "stop"
    assert reply.model == MODEL
    assert reply.object == "chat.completion"
    assert reply.usage is not None
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streaming_answer_arrives_in_pieces_and_ends_with_done(
    client: openai.OpenAI, emulator: Emulator
) -> None:
    with frames_apart(emulator):
        stream = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Stream this please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(texts) > 1
    assert "".join(texts) == "You said: Stream this please. This chat has 1 turn(s)."
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert len({c.id for c in chunks}) == 1


def test_reasoning_is_returned_as_reasoning_content(
    client: openai.OpenAI, emulator: Emulator
) -> None:
    emulator.script(ScriptedReply("Four.", reasoning="Two plus two is four."))
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "2+2?"}], reasoning_effort="medium"
    )
    message = reply.choices[0].message
    assert message.content == "Four."
    assert message.model_extra is not None
    assert message.model_extra["reasoning_content"] == "Two plus two is four."

    emulator.script(ScriptedReply("Six.", reasoning="Three times two."))
    stream = client.chat.completions.create(
        model="MiniMax-M2.7", messages=[{"role": "user", "content": "3*2?"}], stream=True
    )
    reasoning, text = [], []
    for chunk in stream:
        delta = chunk.choices[0].delta
        if delta.content:
            text.append(delta.content)
        extra = delta.model_extra or {}
        if extra.get("reasoning_content"):
            reasoning.append(extra["reasoning_content"])
    assert "".join(reasoning) == "Three times two."
    assert "".join(text) == "Six."


def test_three_turns_of_growing_history_land_in_one_chat(
    client: openai.OpenAI, emulator: Emulator
) -> None:
    start = mark(emulator)
    history: Any = [{"role": "system", "content": "Be brief."}]
    for turn, question in enumerate(["First question", "Second question", "Third question"], 1):
        history.append({"role": "user", "content": question})
        reply = client.chat.completions.create(model=MODEL, messages=history)
        answer = reply.choices[0].message.content
        assert answer is not None
        assert answer.endswith(f"This chat has {turn} turn(s).")
        history.append({"role": "assistant", "content": answer})
    posts = sent(emulator, "agent", start)
    assert len(posts) == 3
    assert len({p.chat_id for p in posts}) == 1
    assert "Be brief." in posts[0].text
    assert posts[1].text == "Second question"
    assert posts[2].text == "Third question"


def test_streamed_turns_continue_the_chat_too(client: openai.OpenAI, emulator: Emulator) -> None:
    start = mark(emulator)
    history: Any = []
    for question in ["Streamed one", "Streamed two"]:
        history.append({"role": "user", "content": question})
        stream = client.chat.completions.create(model=MODEL, messages=history, stream=True)
        answer = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        history.append({"role": "assistant", "content": answer})
    posts = sent(emulator, "agent", start)
    assert [p.text for p in posts][1] == "Streamed two"
    assert posts[0].chat_id == posts[1].chat_id


def test_an_edited_history_starts_a_new_chat(client: openai.OpenAI, emulator: Emulator) -> None:
    first: Any = [{"role": "user", "content": "Original question"}]
    answer = client.chat.completions.create(model=MODEL, messages=first).choices[0].message
    start = mark(emulator)
    edited: Any = [
        {"role": "user", "content": "Edited question"},
        {"role": "assistant", "content": answer.content},
        {"role": "user", "content": "Follow-up"},
    ]
    reply = client.chat.completions.create(model=MODEL, messages=edited)
    assert reply.choices[0].message.content is not None
    assert reply.choices[0].message.content.endswith("This chat has 1 turn(s).")
    (post,) = sent(emulator, "agent", start)
    assert "Edited question" in post.text
    assert "Follow-up" in post.text


def test_tool_round_trip_in_openai_format(client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.script(
        "Let me check.\n" + call_block("get_weather", {"city": "Paris"}),
        "It is sunny in Paris.",
    )
    start = mark(emulator)
    messages: Any = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[WEATHER_TOOL],
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    (call,) = choice.message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"})
    second = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        tools=[WEATHER_TOOL],
    )
    assert second.choices[0].message.content == "It is sunny in Paris."
    assert second.choices[0].finish_reason == "stop"
    posts = sent(emulator, "agent", start)
    assert len(posts) == 2
    assert "## get_weather" in posts[0].text
    assert posts[1].chat_id == posts[0].chat_id
    assert f'<tool_result id="{call.id}" name="get_weather">' in posts[1].text
    assert "Weather in Paris?" not in posts[1].text


def test_tool_calls_stream_as_deltas(client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.script(call_block("get_weather", {"city": "Oslo"}))
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
        stream=True,
    )
    chunks = list(stream)
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(deltas) == 1
    assert deltas[0].index == 0
    assert deltas[0].function is not None
    assert deltas[0].function.name == "get_weather"
    assert json.loads(deltas[0].function.arguments or "") == {"city": "Oslo"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert not any(c.choices[0].delta.content for c in chunks)


def test_structured_output_with_response_format(client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.script('Here you go: ```json\n{"name": "Ann", "age": 31}\n```')
    start = mark(emulator)
    completion = client.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "Ann is 31."}],
        response_format=Person,
    )
    assert completion.choices[0].message.parsed == Person(name="Ann", age=31)
    assert json.loads(completion.choices[0].message.content or "") == {"name": "Ann", "age": 31}
    (post,) = sent(emulator, "agent", start)
    assert "JSON schema" in post.text


def test_json_object_response_format(client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.script('{"ok": true}')
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Say ok as JSON"}],
        response_format={"type": "json_object"},
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in reply if c.choices)
    assert json.loads(text) == {"ok": True}


def test_stop_strings_cut_the_answer(client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.script("one two STOP three")
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Count"}], stop=["STOP"]
    )
    assert reply.choices[0].message.content == "one two "


def test_models_lists_the_accounts_models(client: openai.OpenAI, emulator: Emulator) -> None:
    ids = [model.id for model in client.models.list()]
    assert ids == emulator.default_account.models


def test_request_without_the_key_gets_401_in_openai_shape(served: Served) -> None:
    with (
        openai_sdk(served, api_key="wrong-key") as bad,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        bad.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 401
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "authentication_error"
    assert "API key" in caught.value.body["message"]


def test_quota_wall_gets_429(client: openai.OpenAI, emulator: Emulator) -> None:
    emulator.fault("quota_wall")
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.status_code == 429
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "insufficient_quota"


def test_service_rate_limit_gets_429_with_retry_after(emulator: Emulator) -> None:
    emulator.clear_faults()
    emulator.fault("http_429", seconds=7)
    with (
        serving(emulator, model={"max_retries": 0}) as own,
        openai_sdk(own) as sdk,
        pytest.raises(openai.RateLimitError) as caught,
    ):
        sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Hi"}])
    assert caught.value.response.headers["Retry-After"] == "7"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "rate_limit_error"


def test_bad_requests_get_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
                    ],
                }
            ],
        )
    assert "'input_audio' part" in str(caught.value.body)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Hi"}],
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "no_such_tool"}},
        )
    with pytest.raises(openai.BadRequestError) as unknown:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hi"}])
    assert "gpt-4o" in str(unknown.value.body)


def test_stream_error_after_the_start_is_an_error_event(
    client: openai.OpenAI, emulator: Emulator
) -> None:
    emulator.fault("drop", after=4)
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "A long answer please"}], stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert "dropped mid-answer" in str(caught.value)


def test_continuity_over_the_v4_protocol_too(emulator: Emulator) -> None:
    start = mark(emulator)
    history: Any = []
    with (
        serving(emulator, protocol="v4") as own,
        openai_sdk(own) as sdk,
    ):
        for turn, question in enumerate(["v4 one", "v4 two", "v4 three"], 1):
            history.append({"role": "user", "content": question})
            answer = sdk.chat.completions.create(model="MiniMax", messages=history)
            text = answer.choices[0].message.content or ""
            assert text.endswith(f"This chat has {turn} turn(s).")
            history.append({"role": "assistant", "content": text})
    posts = sent(emulator, "v4", start)
    assert [p.text for p in posts] == ["v4 one", "v4 two", "v4 three"]
    assert posts[0].chat_id is None  # a new chat...
    assert posts[1].chat_id is not None
    assert posts[1].chat_id == posts[2].chat_id  # ...continued twice
