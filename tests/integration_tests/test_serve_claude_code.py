"""``hailuo serve``'s Messages API as Claude Code uses it, driven by the real ``anthropic`` SDK.

Claude Code puts ``system`` messages inside ``messages``, images inside ``tool_result``
blocks, asks for structured output with ``output_config.format``, prefills answers, counts
tokens, looks its model up by id under a ``claude-*`` name, and sends fields that mean
nothing here. Each is answered as the Messages API would, over the emulator.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import anthropic
import openai
import pytest

from langchain_hailuo.emulator.app import Emulator
from langchain_hailuo.serve.core import estimate_tokens
from tests.integration_tests._chats import mark, sent
from tests.integration_tests._media import png_bytes
from tests.integration_tests._serve import (
    MODEL,
    Served,
    anthropic_client,
    anthropic_sdk,
    call_block,
    openai_sdk,
    served_by,
    serving,
)

ALIASES = (("claude-*", MODEL),)
BASH_TOOL: Any = {
    "name": "Bash",
    "description": "Run a shell command.",
    "input_schema": {
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
    },
}


served = served_by(model_aliases=ALIASES, max_body_bytes=512 * 1024)
client = anthropic_client  # the shared fixture, by this module's name


def text_of(message: Any) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def test_system_messages_inside_messages_are_instructions_in_place(
    client: anthropic.Anthropic, emulator: Emulator
) -> None:
    start = mark(emulator)
    messages: Any = [
        {"role": "user", "content": "First question"},
        {"role": "system", "content": "Mid-conversation note: answer tersely."},
        {"role": "user", "content": [{"type": "text", "text": "Second question"}]},
    ]
    reply = client.messages.create(model=MODEL, max_tokens=256, messages=messages)
    assert text_of(reply)
    (post,) = sent(emulator, "agent", start)
    first = post.text.index("First question")
    note = post.text.index("Mid-conversation note: answer tersely.")
    assert first < note < post.text.index("Second question")


def test_an_image_inside_a_tool_result_is_uploaded(
    client: anthropic.Anthropic, emulator: Emulator
) -> None:
    png = png_bytes()
    emulator.script(
        "Taking a screenshot.\n" + call_block("Bash", {"command": "shot"}), "A red box."
    )
    start, uploads = mark(emulator), len(emulator.uploads)
    messages: Any = [{"role": "user", "content": "What is on screen?"}]
    first = client.messages.create(
        model=MODEL, max_tokens=256, tools=[BASH_TOOL], messages=messages
    )
    use = next(block for block in first.content if block.type == "tool_use")
    messages += [
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": use.id,
                    "content": [
                        {"type": "text", "text": "saved shot.png"},
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/png",
                                "data": base64.b64encode(png).decode(),
                            },
                        },
                    ],
                }
            ],
        },
    ]
    second = client.messages.create(
        model=MODEL, max_tokens=256, tools=[BASH_TOOL], messages=messages
    )
    assert text_of(second) == "A red box."
    assert len(emulator.uploads) == uploads + 1
    posts = sent(emulator, "agent", start)
    assert posts[1].chat_id == posts[0].chat_id
    assert "saved shot.png" in posts[1].text
    assert emulator.requests_to("chat")[start + 1].body.get("attachments")


def test_output_config_format_is_structured_output(
    client: anthropic.Anthropic, emulator: Emulator
) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    emulator.script('Here you go: {"city": "Paris", "population": 2100000}')
    reply = client.messages.create(
        model=MODEL,
        max_tokens=256,
        messages=[{"role": "user", "content": "The biggest French city?"}],
        extra_body={"output_config": {"format": {"type": "json_schema", "schema": schema}}},
    )
    assert json.loads(text_of(reply)) == {"city": "Paris", "population": 2100000}


def test_an_output_config_format_that_is_never_met_is_not_retried(
    served: Served, emulator: Emulator
) -> None:
    emulator.script("no JSON here", "still no JSON")  # the answer and its repair turn
    start = mark(emulator)
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    with (
        anthropic_sdk(served, max_retries=anthropic.DEFAULT_MAX_RETRIES) as sdk,  # default retries
        pytest.raises(anthropic.APIStatusError) as caught,
    ):
        sdk.messages.create(
            model=MODEL,
            max_tokens=64,
            messages=[{"role": "user", "content": "A number"}],
            extra_body={"output_config": {"format": {"type": "json_schema", "schema": schema}}},
        )
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert mark(emulator) - start == 2  # the answer and one repair turn, never a resend


@pytest.mark.parametrize(
    "reply", ["Paris, of course.", "The capital of France is Paris, of course."]
)
def test_an_assistant_prefill_is_continued_without_repeating_it(
    client: anthropic.Anthropic, emulator: Emulator, reply: str
) -> None:
    emulator.script(reply)
    start = mark(emulator)
    messages: Any = [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "The capital of France is"},
    ]
    whole = client.messages.create(model=MODEL, max_tokens=64, messages=messages)
    assert text_of(whole).strip() == "Paris, of course."
    (post,) = sent(emulator, "agent", start)
    assert "The capital of France is" in post.text  # the prefill went up as an instruction
    emulator.script(reply)
    with client.messages.stream(model=MODEL, max_tokens=64, messages=messages) as stream:
        streamed = "".join(stream.text_stream)
    assert streamed.strip() == "Paris, of course."


def test_count_tokens_is_the_usage_estimate(client: anthropic.Anthropic) -> None:
    short = client.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "Hello there"}]
    )
    longer = client.messages.count_tokens(
        model=MODEL,
        system="Be brief.",
        tools=[BASH_TOOL],
        messages=[{"role": "user", "content": "Hello there " * 50}],
    )
    assert short.input_tokens == estimate_tokens("Hello there\n")
    assert longer.input_tokens > short.input_tokens


def test_fields_claude_code_sends_are_accepted(
    client: anthropic.Anthropic, emulator: Emulator
) -> None:
    reply = client.messages.create(
        model="claude-sonnet-4-5-20250929",
        max_tokens=256,
        system=[
            {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}
        ],
        messages=[{"role": "user", "content": "Hi"}],
        tools=[BASH_TOOL, {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}],
        extra_headers={"anthropic-beta": "context-management-2025-06-27,interleaved-thinking"},
        extra_body={
            "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
            "output_config": {"effort": "high"},
            "thinking": {"type": "adaptive"},
            "metadata": {"user_id": "someone"},
        },
    )
    assert text_of(reply)
    assert reply.model == MODEL  # the alias answered by the real model


def test_models_retrieve_in_both_shapes_with_aliases(served: Served) -> None:
    with anthropic_sdk(served) as claude:
        real = claude.models.retrieve(MODEL)
        alias = claude.models.retrieve("claude-opus-4-1")
        listed = [model.id for model in claude.models.list()]
        with pytest.raises(anthropic.NotFoundError):
            claude.models.retrieve("gpt-4o")
    assert (real.id, real.type) == (MODEL, "model")
    assert alias.id == "claude-opus-4-1"
    assert MODEL in alias.display_name
    assert MODEL in listed
    assert not any(name.startswith("claude-") for name in listed)
    with openai_sdk(served) as gpt:
        model = gpt.models.retrieve(MODEL)
        with pytest.raises(openai.NotFoundError):
            gpt.models.retrieve("gpt-4o")
    assert (model.id, model.object) == (MODEL, "model")


def test_a_token_only_login_lists_the_accounts_own_models(emulator: Emulator) -> None:
    account = emulator.account()
    before = account.models
    account.models = [MODEL, "MiniMax-Account-Only"]
    try:
        with (
            serving(emulator) as own,  # a token, no saved login: the list comes from /config
            openai_sdk(own) as gpt,
        ):
            listed = [model.id for model in gpt.models.list()]
            found = gpt.models.retrieve("MiniMax-Account-Only")
    finally:
        account.models = before
    assert listed == [MODEL, "MiniMax-Account-Only"]
    assert found.id == "MiniMax-Account-Only"
