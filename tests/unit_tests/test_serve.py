"""The pure parts of ``hailuo serve``: store, keys, statuses, request parsing, stream events."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.tool import tool_call
from pydantic import SecretStr

from langchain_hailuo._structured import SchemaValidationError
from langchain_hailuo.cli import main
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoConfigurationError,
    HailuoConnectionError,
    HailuoNoAccountAvailableError,
    HailuoQuotaError,
    HailuoRateLimitError,
    HailuoServerError,
    HailuoSessionBusyError,
    HailuoStreamInterruptedError,
    HailuoTimeoutError,
)
from langchain_hailuo.serve import anthropic_api, openai_api
from langchain_hailuo.serve.app import _Keys, _Limits
from langchain_hailuo.serve.config import ServeConfig, key_id, parse_aliases
from langchain_hailuo.serve.core import (
    FinishedAnswer,
    History,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    _PrefillCut,
    resolve_model,
)
from langchain_hailuo.serve.status import ApiError, api_error
from langchain_hailuo.serve.store import MemoryStore
from tests.integration_tests._serve import check_lru_bound

# --------------------------------------------------------------------------- store


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_store_drops_the_least_recently_used_beyond_its_bound() -> None:
    store = MemoryStore(max_entries=2)
    await check_lru_bound(store)
    assert len(store) == 2


async def test_store_entries_expire_and_hits_renew_them() -> None:
    clock = Clock()
    store = MemoryStore(ttl=10, clock=clock)
    await store.put("a", {"chat_id": "1"})
    clock.now = 9
    assert await store.get("a") is not None  # renewed until 19
    clock.now = 18
    assert await store.get("a") is not None
    clock.now = 29
    assert await store.get("a") is None
    assert len(store) == 0


async def test_store_hands_out_copies() -> None:
    store = MemoryStore()
    value = {"chat_id": "1"}
    await store.put("a", value)
    value["chat_id"] = "changed"
    got = await store.get("a")
    assert got == {"chat_id": "1"}
    assert got is not None
    got["chat_id"] = "again"
    assert await store.get("a") == {"chat_id": "1"}


def test_store_rejects_bad_bounds() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        MemoryStore(max_entries=0)
    with pytest.raises(ValueError, match="ttl"):
        MemoryStore(ttl=0)


# --------------------------------------------------------------------------- config and keys


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "example.com"])  # noqa: S104
def test_public_hosts_need_a_key(host: str) -> None:
    with pytest.raises(HailuoConfigurationError, match="without an API key") as caught:
        ServeConfig(host=host).check()
    assert "\n" not in caught.value.message
    ServeConfig(host=host, api_keys=(SecretStr("k"),)).check()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_hosts_need_no_key(host: str) -> None:
    ServeConfig(host=host).check()


def test_empty_keys_and_bad_limits_are_refused() -> None:
    with pytest.raises(HailuoConfigurationError, match="empty"):
        ServeConfig(api_keys=(SecretStr(" "),)).check()
    with pytest.raises(HailuoConfigurationError, match="max-concurrency"):
        ServeConfig(max_concurrency=0).check()


def test_keys_match_exactly_and_name_a_hashed_namespace() -> None:
    keys = _Keys((SecretStr("alpha-key"), SecretStr("beta-key")))
    assert keys.required
    assert keys.namespace("alpha-key") == key_id("alpha-key")
    assert keys.namespace("beta-key") == key_id("beta-key")
    for wrong in (None, "", "alpha", "alpha-key ", "alpha-keyX", "ALPHA-KEY"):
        assert keys.namespace(wrong) is None
    assert "alpha" not in key_id("alpha-key")
    assert not _Keys(()).required


def test_limits_count_per_namespace() -> None:
    limits = _Limits(2)
    limits.enter("a")
    limits.enter("a")
    limits.enter("b")
    with pytest.raises(ApiError) as caught:
        limits.enter("a")
    assert caught.value.status == 429
    assert caught.value.headers() == {"Retry-After": "1"}
    limits.leave("a")
    limits.enter("a")


# --------------------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    ("error", "status", "headers"),
    [
        (HailuoRateLimitError("slow down", retry_after=2.5), 429, {"Retry-After": "3"}),
        (HailuoQuotaError("out of credits"), 429, {"x-should-retry": "false"}),
        (HailuoAuthError("token expired"), 502, {"x-should-retry": "false"}),
        (HailuoTimeoutError("stalled"), 504, {"x-should-retry": "false"}),
        (HailuoConfigurationError("unknown model 'x'"), 400, {"x-should-retry": "false"}),
        (HailuoServerError("boom", status=500), 502, {"x-should-retry": "false"}),
        (HailuoStreamInterruptedError("dropped mid-answer"), 502, {"x-should-retry": "false"}),
        (HailuoConnectionError("refused", request_sent=False), 502, {}),
        (HailuoConnectionError("reset", request_sent=True), 502, {"x-should-retry": "false"}),
        (HailuoSessionBusyError("busy"), 409, {"Retry-After": "1"}),
        (
            HailuoRateLimitError("slowed mid-answer", partial_text="Half an ans"),
            429,
            {"Retry-After": "1", "x-should-retry": "false"},
        ),
        (SchemaValidationError(["$.age: missing"], {}), 502, {"x-should-retry": "false"}),
        (ValueError("Nothing to send"), 400, {"x-should-retry": "false"}),
        (RuntimeError("secret internals"), 502, {"x-should-retry": "false"}),
        (
            HailuoNoAccountAvailableError("every account rests", next_free_at=1060.0, now=1000.0),
            503,
            {"Retry-After": "60"},
        ),
    ],
)
def test_typed_errors_map_to_statuses(
    error: BaseException, status: int, headers: dict[str, str]
) -> None:
    mapped = api_error(error)
    assert mapped.status == status
    assert mapped.headers() == headers
    assert "secret internals" not in mapped.message
    assert "hailuo login" in mapped.message or not isinstance(error, HailuoAuthError)


# --------------------------------------------------------------------------- OpenAI parsing


def test_openai_messages_become_langchain_messages() -> None:
    request = openai_api.parse_request(
        {
            "model": "MiniMax-M3",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}], "name": "Ann"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"x": 1}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "done"},
            ],
            "stop": "END",
            "stream": True,
            "stream_options": {"include_usage": True},
            "reasoning_effort": "none",
        }
    )
    system, user, ai, tool = request.chat_request.messages
    assert isinstance(system, SystemMessage)
    assert system.content == "Be brief."
    assert isinstance(user, HumanMessage)
    assert user.name == "Ann"
    assert isinstance(ai, AIMessage)
    assert ai.tool_calls == [tool_call(name="f", args={"x": 1}, id="call_1")]
    assert isinstance(tool, ToolMessage)
    assert tool.tool_call_id == "call_1"
    assert request.chat_request.stop == ["END"]
    assert request.chat_request.reasoning is False
    assert request.stream
    assert request.include_usage


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([], "JSON object"),
        ({"messages": []}, "non-empty"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "role 'robot'"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n=1"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"function": {"name": "f", "arguments": "{bad"}}],
                    }
                ]
            },
            "not valid JSON",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}},
            "not supported",
        ),
    ],
)
def test_openai_bad_requests_say_what_is_wrong(body: Any, words: str) -> None:
    with pytest.raises(ApiError) as caught:
        openai_api.parse_request(body)
    assert caught.value.status == 400
    assert words in caught.value.message


def test_openai_response_format_json_schema_keeps_the_name_as_title() -> None:
    request = openai_api.parse_request(
        {
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "Person", "schema": {"type": "object"}},
            },
        }
    )
    assert request.chat_request.structured is not None
    assert request.chat_request.structured.method == "json_schema"
    assert request.chat_request.structured.schema_json == {"type": "object", "title": "Person"}


ANSWER = FinishedAnswer(
    model="MiniMax-M3",
    text="Hello",
    reasoning="thought",
    tool_calls=[tool_call(name="f", args={"x": 1}, id="call_1")],
    finish_reason="tool_calls",
    input_tokens=3,
    output_tokens=4,
)


def _sse_data(raw: bytes) -> list[Any]:
    lines = [line for line in raw.decode().split("\n") if line.startswith("data: ")]
    return [
        line.removeprefix("data: ")
        if line == "data: [DONE]"
        else json.loads(line.removeprefix("data: "))
        for line in lines
    ]


def test_openai_chunks_in_order_and_done() -> None:
    request = openai_api.OpenAIRequest(
        chat_request=openai_api.parse_request(_ONE).chat_request, stream=True
    )
    renderer = openai_api.ChunkRenderer(request, "MiniMax-M3")
    raw = renderer.start() + b"".join(
        renderer.part(p)
        for p in (
            ReasoningPart("thought"),
            TextPart("Hel"),
            TextPart("lo"),
            ToolCallPart(0, ANSWER.tool_calls[0]),
            ANSWER,
        )
    )
    data = _sse_data(raw)
    assert data[-1] == "[DONE]"
    deltas = [d["choices"][0]["delta"] for d in data[:-1]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"reasoning_content": "thought"}
    assert deltas[4]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"x": 1}'}
    assert data[-2]["choices"][0]["finish_reason"] == "tool_calls"


_ONE = {"messages": [{"role": "user", "content": "x"}]}


# --------------------------------------------------------------------------- Anthropic


def test_anthropic_blocks_become_langchain_messages() -> None:
    request = anthropic_api.parse_request(
        {
            "system": [{"type": "text", "text": "Be brief."}],
            "messages": [
                {"role": "user", "content": "Weather?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hm", "signature": ""},
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "t1", "name": "w", "input": {"c": "P"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t1", "content": "Sunny"},
                        {"type": "text", "text": "Thanks"},
                    ],
                },
            ],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "tools": [{"name": "w", "input_schema": {"type": "object"}}],
        }
    )
    system, user, ai, tool, after = request.chat_request.messages
    assert isinstance(system, SystemMessage)
    assert isinstance(ai, AIMessage)
    assert ai.content == "Checking."
    assert ai.tool_calls == [tool_call(name="w", args={"c": "P"}, id="t1")]
    assert isinstance(tool, ToolMessage)
    assert tool.content == "Sunny"
    assert isinstance(after, HumanMessage)
    assert after.content == "Thanks"
    assert user.content == "Weather?"
    assert request.chat_request.reasoning is True
    assert request.chat_request.tools == [
        {"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}
    ]


def test_anthropic_events_open_and_close_blocks_in_order() -> None:
    request = anthropic_api.parse_request(_ONE)
    renderer = anthropic_api.EventRenderer(request, "MiniMax-M3")
    raw = renderer.start() + b"".join(
        renderer.part(p)
        for p in (
            ReasoningPart("th"),
            ReasoningPart("ought"),
            TextPart("Hello"),
            ToolCallPart(0, ANSWER.tool_calls[0]),
            ANSWER,
        )
    )
    events = [
        json.loads(line.removeprefix("data: "))
        for line in raw.decode().split("\n")
        if line.startswith("data: ")
    ]
    kinds = [(e["type"], e.get("index")) for e in events]
    assert kinds == [
        ("message_start", None),
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
        ("content_block_start", 2),
        ("content_block_delta", 2),
        ("content_block_stop", 2),
        ("message_delta", None),
        ("message_stop", None),
    ]
    assert events[8]["content_block"]["type"] == "tool_use"
    assert events[9]["delta"] == {"type": "input_json_delta", "partial_json": '{"x": 1}'}
    assert events[11]["delta"]["stop_reason"] == "tool_use"
    assert events[11]["usage"] == {"input_tokens": 3, "output_tokens": 4}


def test_anthropic_leaves_server_tools_out_and_refuses_odd_roles(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server_tool = {"type": "web_search_20250305", "name": "web_search"}
    with caplog.at_level("INFO", logger="langchain_hailuo.serve.core"):
        for _ in range(2):
            parsed = anthropic_api.parse_request({**_ONE, "tools": [server_tool]})
            assert parsed.chat_request.tools == []
    assert sum("web_search_20250305" in r.getMessage() for r in caplog.records) <= 1
    with pytest.raises(ApiError, match="client tool"):
        anthropic_api.parse_request({**_ONE, "tools": [{"type": "custom", "name": "x"}]})
    with pytest.raises(ApiError, match="user, assistant or system"):
        anthropic_api.parse_request({"messages": [{"role": "tool", "content": "x"}]})


def test_anthropic_system_messages_prefill_and_output_format() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    parsed = anthropic_api.parse_request(
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                {"role": "user", "content": "Count"},
                {"role": "assistant", "content": "The count is"},
            ],
            "output_config": {"format": {"type": "json_schema", "schema": schema}},
        }
    )
    turn = parsed.chat_request
    assert [type(m) for m in turn.messages] == [HumanMessage, SystemMessage, HumanMessage]
    assert turn.prefill == "The count is"
    assert turn.structured is not None
    assert turn.structured.schema == schema


# --------------------------------------------------------------------------- encodings


@pytest.mark.parametrize("text", ["Hello", 'a "quoted"\nline \\ done', "привет 🙂", ""])
def test_text_chunks_are_the_same_json_as_the_generic_encoding(text: str) -> None:
    request = openai_api.OpenAIRequest(
        chat_request=openai_api.parse_request(_ONE).chat_request, stream=True
    )
    renderer = openai_api.ChunkRenderer(request, "MiniMax-M3")
    assert renderer.part(TextPart(text)) == renderer._line({"content": text})
    events = anthropic_api.EventRenderer(anthropic_api.parse_request(_ONE), "MiniMax-M3")
    events.part(TextPart("first"))  # opens the text block
    assert events.part(TextPart(text)) == anthropic_api._event(
        "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": text}}
    )


# --------------------------------------------------------------------------- history keys


def test_history_keys_match_the_answer_as_clients_echo_it() -> None:
    call = tool_call(name="f", args={"x": 1}, id="call_1")
    asked = [SystemMessage("be brief"), HumanMessage("hi")]
    before = History(asked, "key-a")
    assert before.answer_key is None
    stored = before.key_with(AIMessage(content="Calling.", tool_calls=[call]))
    echoed = AIMessage(content=" Calling. ", tool_calls=[{**call, "id": "other"}])
    resent = History([*asked, echoed, ToolMessage("1", tool_call_id="call_1")], "key-a")
    assert resent.last_answer == 2
    assert resent.answer_key == stored
    assert History([*asked, echoed], "key-b").answer_key != stored  # another API key
    edited = History([SystemMessage("be brief"), HumanMessage("hello"), echoed], "key-a")
    assert edited.answer_key != stored


def test_history_keys_cover_media_blocks() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    other = {"type": "image_url", "image_url": {"url": "data:image/png;base64,BBBB"}}
    answer = AIMessage(content="A picture.")
    one = History([HumanMessage(content=[image])], "k").key_with(answer)
    assert History([HumanMessage(content=[image]), answer], "k").answer_key == one
    assert History([HumanMessage(content=[other]), answer], "k").answer_key != one


# --------------------------------------------------------------------------- media parsing


def test_media_parts_become_attachment_blocks() -> None:
    png = "data:image/png;base64,iVBORw0KGgo="
    turn = openai_api.parse_request(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "see"},
                        {"type": "image_url", "image_url": {"url": png, "detail": "low"}},
                        {"type": "file", "file": {"file_data": "QUJD", "filename": "a.txt"}},
                    ],
                }
            ]
        }
    ).chat_request
    assert turn.messages[0].content == [
        {"type": "text", "text": "see"},
        {"type": "image_url", "image_url": {"url": png}},
        {"type": "file", "file": {"file_data": "QUJD", "filename": "a.txt"}},
    ]
    claude = anthropic_api.parse_request(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}},
                        {
                            "type": "document",
                            "title": "n.txt",
                            "source": {"type": "text", "media_type": "text/plain", "data": "hi"},
                        },
                        {"type": "text", "text": "what?"},
                    ],
                }
            ]
        }
    ).chat_request
    assert claude.messages[0].content == [
        {"type": "image", "url": "https://x/a.png"},
        {"type": "text-plain", "text": "hi", "mime_type": "text/plain", "filename": "n.txt"},
        {"type": "text", "text": "what?"},
    ]


@pytest.mark.parametrize(
    ("part", "words"),
    [
        ({"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}, "'file' URL"),
        ({"type": "image_url", "image_url": {"url": "/etc/passwd"}}, "'relative' URL"),
        ({"type": "file", "file": {"file_id": "file-1"}}, "file ids"),
        ({"type": "input_audio", "input_audio": {"data": "AA"}}, "'input_audio' part"),
    ],
)
def test_media_parts_the_server_cannot_take_are_400s(part: dict[str, Any], words: str) -> None:
    with pytest.raises(ApiError) as caught:
        openai_api.parse_request({"messages": [{"role": "user", "content": [part]}]})
    assert caught.value.status == 400
    assert words in caught.value.message


def test_media_is_refused_outside_user_turns() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://x/a.png"}}
    with pytest.raises(ApiError, match="text parts only"):
        openai_api.parse_request(
            {"messages": [{"role": "system", "content": [image]}, {"role": "user", "content": "x"}]}
        )


def test_anthropic_stop_sequence_in_message_and_events() -> None:
    request = anthropic_api.parse_request({**_ONE, "stop_sequences": ["END"]})
    cut = FinishedAnswer("m", "text", "", [], "stop", stop_sequence="END")
    body = anthropic_api.message(request, cut)
    assert (body["stop_reason"], body["stop_sequence"]) == ("stop_sequence", "END")
    events = anthropic_api.EventRenderer(request, "m")
    delta = json.loads(events.end(cut).decode().split("data: ")[1].split("\n")[0])
    assert delta["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}
    plain = anthropic_api.message(request, FinishedAnswer("m", "text", "", [], "stop"))
    assert (plain["stop_reason"], plain["stop_sequence"]) == ("end_turn", None)
    oai = openai_api.completion(openai_api.parse_request(_ONE), cut)
    assert oai["choices"][0]["finish_reason"] == "stop"


# --------------------------------------------------------------------------- model aliases


def test_model_aliases_resolve_by_the_first_matching_pattern() -> None:
    aliases = parse_aliases(["claude-*-haiku*=MiniMax-M2.7", " claude-* = MiniMax-M3 "])
    assert aliases == (("claude-*-haiku*", "MiniMax-M2.7"), ("claude-*", "MiniMax-M3"))
    assert resolve_model("claude-3-5-haiku-latest", aliases) == "MiniMax-M2.7"
    assert resolve_model("claude-opus-4-1", aliases) == "MiniMax-M3"
    assert resolve_model("MiniMax-M3", aliases) == "MiniMax-M3"
    assert resolve_model(None, aliases) is None
    with pytest.raises(HailuoConfigurationError, match="PATTERN=MODEL"):
        parse_aliases(["claude-*"])


def test_a_bad_model_alias_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "0", "--model-alias", "=MiniMax-M3"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("hailuo: error: Model alias '=MiniMax-M3' is not PATTERN=MODEL")


# --------------------------------------------------------------------------- prefill


@pytest.mark.parametrize(
    ("pieces", "shown"),
    [
        (["The cap", "ital is", " Paris."], " Paris."),  # the repeat, split, is cut
        ([" Paris", "."], " Paris."),  # a plain continuation passes at once
        (["The"], "The"),  # a partial repeat that ends the answer is the answer
        (["The capital is"], ""),  # nothing but the repeat
        (["The capital was Paris."], "The capital was Paris."),
    ],
)
def test_a_repeated_prefill_is_cut_as_it_streams(pieces: list[str], shown: str) -> None:
    cut = _PrefillCut("The capital is")
    out = "".join(cut.take(piece) for piece in pieces) + cut.rest()
    assert out == shown
    assert "".join(cut.passed) == shown
