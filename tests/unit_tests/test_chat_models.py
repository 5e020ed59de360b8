"""ChatHailuo over a fake provider: metadata, ids, conversation choice, streaming, sync paths."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.outputs import ChatGenerationChunk

from langchain_hailuo import chat_models
from langchain_hailuo._answer import AnswerBuilder
from langchain_hailuo._loop import LoopRunner, get_runner
from langchain_hailuo._prompt import TurnRequest
from langchain_hailuo.auth import AuthManager
from langchain_hailuo.chat_models import ChatHailuo
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoError,
    HailuoQuotaError,
    HailuoRateLimitError,
    HailuoStreamInterruptedError,
    HailuoTimeoutError,
    HailuoUnsupportedContentError,
)
from langchain_hailuo.types import (
    AuthResult,
    Conversation,
    FinishReason,
    MessageId,
    ProviderEvent,
    Reasoning,
    TitleGeneration,
    Usage,
    account_fingerprint,
)

TOKEN_A = "secret-token-of-account-a"
TOKEN_B = "secret-token-of-account-b"
METADATA_KEYS = {
    "model_name",
    "protocol",
    "chat_id",
    "character_id",
    "msg_id",
    "title",
    "account",
    "history_hash",
    "finish_reason",
}


@dataclass
class Call:
    """What the fake provider received."""

    model: str
    messages: list[Any]
    account: str
    conversation: Conversation | None
    kwargs: dict[str, Any]


@dataclass
class FakeProvider:
    """Follows the provider contract of docs/internals.md, with scripted answers."""

    protocol: str = "agent"
    replies: list[list[ProviderEvent | BaseException]] = field(default_factory=list)
    default_reply: str = "Hello there."
    delay: float = 0.0
    calls: list[Call] = field(default_factory=list)
    requests: list[TurnRequest] = field(default_factory=list)
    closed_streams: int = 0
    finished_streams: int = 0
    active: int = 0
    max_active: int = 0
    aclose_calls: int = 0
    _counter: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def stream_turn(
        self,
        model: str,
        request: TurnRequest,
        auth_result: AuthResult,
        return_conversation: bool = False,
        **kwargs: Any,
    ) -> AsyncIterator[list[ProviderEvent]]:
        account = auth_result.account_fingerprint
        conversation = request.conversation
        received = {**kwargs, "full_history": request.full_history}
        with self._lock:
            self._counter += 1
            n = self._counter
            self.calls.append(Call(model, list(request.messages), account, conversation, received))
            self.requests.append(request)
            script = self.replies.pop(0) if self.replies else None
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        continued = conversation is not None and conversation.belongs_to(auth_result)
        chat_id = conversation.chatID if continued and conversation else f"chat-{n}"
        try:
            first: list[ProviderEvent] = [] if continued else [TitleGeneration(f"Title {n}")]
            if return_conversation:
                first.append(Conversation(auth_result.token, chat_id, 1, protocol=self.protocol))  # type: ignore[arg-type]
            yield [*first, MessageId(f"msg-{n}")]
            events = script if script is not None else [self.default_reply]
            for event in events:
                # each scripted event arrives in a read of its own (as deltas a network
                # delivers one by one)
                await asyncio.sleep(self.delay)
                if isinstance(event, BaseException):
                    raise event
                yield [event]
            yield [FinishReason("stop")]
            self.finished_streams += 1
        finally:
            with self._lock:
                self.active -= 1
            self.closed_streams += 1

    async def aclose(self) -> None:
        self.aclose_calls += 1


def make_model(
    provider: FakeProvider | None = None, *, token: str = TOKEN_A, **kwargs: Any
) -> tuple[ChatHailuo, FakeProvider]:
    provider = provider or FakeProvider()
    model = ChatHailuo(token=token, protocol=provider.protocol, **kwargs)
    seen: list[str] = []

    def factory(protocol: str, auth_manager: AuthManager) -> FakeProvider:
        seen.append(protocol)
        return provider

    model._provider_factory = factory
    return model, provider


def collect(chunks: Iterator[AIMessageChunk]) -> tuple[list[AIMessageChunk], AIMessageChunk]:
    items = list(chunks)
    total = items[0]
    for chunk in items[1:]:
        total = total + chunk
    return items, total


# --------------------------------------------------------------------------- metadata and ids


def test_invoke_returns_the_answer_with_full_metadata() -> None:
    model, _ = make_model()
    result = model.invoke("Hi")
    assert isinstance(result, AIMessage)
    assert result.content == "Hello there."
    meta = result.response_metadata
    assert meta["model_provider"] == "hailuo"
    assert meta["model_name"] == "MiniMax-M3"
    assert meta["protocol"] == "agent"
    assert meta["chat_id"] == "chat-1"
    assert meta["character_id"] == 1
    assert meta["msg_id"] == "msg-1"
    assert meta["title"] == "Title 1"
    assert meta["account"] == account_fingerprint(TOKEN_A)
    assert meta["finish_reason"] == "stop"
    assert len(meta["history_hash"]) == 16
    assert result.id == "hailuo-msg-1"


def test_stream_puts_each_metadata_field_on_exactly_one_chunk() -> None:
    provider = FakeProvider(replies=[["Hel", "lo", " world"]])
    model, _ = make_model(provider)
    items, total = collect(model.stream("Hi"))
    assert [c.content for c in items[:3]] == ["Hel", "lo", " world"]
    for key in METADATA_KEYS:
        assert sum(key in c.response_metadata for c in items) == 1, key
    assert all(c.response_metadata.get("model_provider") == "hailuo" for c in items)
    assert items[-1].chunk_position == "last"
    assert total.content == "Hello world"
    assert total.response_metadata["chat_id"] == "chat-1"  # not "chat-1chat-1"
    assert total.response_metadata["model_provider"] == "hailuo"
    assert total.id == "hailuo-msg-1"


def test_streamed_and_invoked_answers_agree() -> None:
    model, _ = make_model(FakeProvider(replies=[["a", "b"], ["a", "b"]]))
    _, streamed = collect(model.stream("Hi"))
    invoked = model.invoke("Hi")
    assert streamed.content == invoked.content == "ab"
    drop = {"chat_id", "msg_id", "title"}
    assert {k: v for k, v in streamed.response_metadata.items() if k not in drop} == {
        k: v for k, v in invoked.response_metadata.items() if k not in drop
    }


def test_ids_are_unique_per_answer_and_never_the_chat_id() -> None:
    model, _ = make_model()
    first = model.invoke("Hi")
    second = model.invoke(["Hi", first, "More"])
    assert first.response_metadata["chat_id"] == second.response_metadata["chat_id"]
    assert first.id != second.id
    assert second.id is not None
    assert second.response_metadata["chat_id"] not in second.id


def test_answer_without_message_id_gets_a_random_hailuo_id() -> None:
    class NoIdProvider(FakeProvider):
        async def stream_turn(
            self, *args: Any, **kwargs: Any
        ) -> AsyncIterator[list[ProviderEvent]]:
            async for events in super().stream_turn(*args, **kwargs):
                yield [event for event in events if not isinstance(event, MessageId)]

    model, _ = make_model(NoIdProvider())
    a, b = model.invoke("x"), model.invoke("y")
    assert a.id
    assert a.id.startswith("hailuo-")
    assert a.id != b.id
    assert "msg_id" not in a.response_metadata


def test_usage_goes_on_the_last_chunk_only() -> None:
    provider = FakeProvider(replies=[["a", "b", Usage(3, 2, 5)]])
    model, _ = make_model(provider)
    items, total = collect(model.stream("Hi"))
    assert [c.usage_metadata is not None for c in items].count(True) == 1
    assert items[-1].usage_metadata == {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
    assert total.usage_metadata is not None
    assert total.usage_metadata["total_tokens"] == 5


def test_per_call_model_is_reported_and_sent() -> None:
    model, provider = make_model()
    result = model.invoke("Hi", model="MiniMax-M2.7")
    assert result.response_metadata["model_name"] == "MiniMax-M2.7"
    assert provider.calls[0].model == "MiniMax-M2.7"
    assert model._get_ls_params(model="MiniMax-M2.7")["ls_model_name"] == "MiniMax-M2.7"


# --------------------------------------------------------------------------- conversation choice


def test_second_turn_continues_the_chat_with_only_the_new_message() -> None:
    model, provider = make_model()
    history: list[BaseMessage] = [SystemMessage("Be brief."), HumanMessage("One")]
    first = model.invoke(history)
    history += [first, HumanMessage("Two")]
    second = model.invoke(history)
    call = provider.calls[1]
    assert call.conversation is not None
    assert call.conversation.chatID == first.response_metadata["chat_id"]
    assert call.messages == [{"role": "user", "content": "Two"}]
    assert call.kwargs["full_history"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "One"},
        {"role": "assistant", "content": "Hello there."},
        {"role": "user", "content": "Two"},
    ]
    assert second.response_metadata["chat_id"] == first.response_metadata["chat_id"]
    assert "title" not in second.response_metadata


def test_edited_history_starts_a_new_chat() -> None:
    model, provider = make_model()
    first = model.invoke([SystemMessage("Be brief."), HumanMessage("One")])
    model.invoke([SystemMessage("Be verbose."), HumanMessage("One"), first, HumanMessage("Two")])
    assert provider.calls[1].conversation is None
    assert len(provider.calls[1].messages) == 4


def test_per_call_conversation_and_chat_id_win() -> None:
    model, provider = make_model()
    first = model.invoke("One")
    model.invoke("Other", chat_id="chat-77")
    conv = Conversation(TOKEN_A, "chat-88", 1, protocol="agent")
    model.invoke(["One", first, "Two"], conversation=conv)
    model.bind(chat_id="chat-99").invoke("Pinned")
    got = [c.conversation.chatID if c.conversation else None for c in provider.calls]
    assert got == [None, "chat-77", "chat-88", "chat-99"]


def test_invocation_params_show_a_conversation_without_the_token() -> None:
    model, _ = make_model()
    conv = Conversation(TOKEN_A, "chat-88", 1, protocol="agent")
    params = model._get_invocation_params(conversation=conv)
    assert params["conversation"]["chatID"] == "chat-88"
    assert TOKEN_A not in repr(params)


@pytest.mark.parametrize("form", ["string", "dict", "conversation"])
def test_run_metadata_conversation_wins_over_history(form: str) -> None:
    model, provider = make_model()
    first = model.invoke("One")
    value: Any = {
        "string": "chat-55",
        "dict": {"chat_id": "chat-55"},
        "conversation": Conversation(TOKEN_A, "chat-55", protocol="agent"),
    }[form]
    config: Any = {"metadata": {"hailuo_conversation": value}}
    model.invoke(["One", first, "Two"], config=config)
    collect(model.stream("Three", config=config))
    assert [c.conversation.chatID for c in provider.calls[1:] if c.conversation] == [
        "chat-55",
        "chat-55",
    ]


async def test_run_metadata_conversation_async_paths() -> None:
    model, provider = make_model()
    config: Any = {"metadata": {"hailuo_conversation": "chat-66"}}
    await model.ainvoke("One", config=config)
    async for _ in model.astream("Two", config=config):
        pass
    assert [c.conversation.chatID for c in provider.calls if c.conversation] == [
        "chat-66",
        "chat-66",
    ]


def test_explicit_kwarg_beats_run_metadata() -> None:
    model, provider = make_model()
    model.invoke("x", config={"metadata": {"hailuo_conversation": "meta"}}, chat_id="kwarg")
    assert provider.calls[0].conversation is not None
    assert provider.calls[0].conversation.chatID == "kwarg"


def test_run_metadata_is_read_from_the_run_manager_too() -> None:
    model, provider = make_model()
    model.generate([[HumanMessage("x")]], metadata={"hailuo_conversation": "chat-rm"})
    assert provider.calls[0].conversation is not None
    assert provider.calls[0].conversation.chatID == "chat-rm"


def test_another_accounts_chat_is_never_continued() -> None:
    provider = FakeProvider()
    model_a, _ = make_model(provider, token=TOKEN_A)
    model_b, _ = make_model(provider, token=TOKEN_B)
    first = model_a.invoke("One")
    model_b.invoke(["One", first, "Two"])
    assert provider.calls[1].conversation is None
    assert provider.calls[1].account == account_fingerprint(TOKEN_B)
    model_b.invoke("Two", conversation=first.response_metadata)
    assert provider.calls[2].conversation is None


def test_model_instance_stays_stateless_under_batch() -> None:
    model, provider = make_model()
    results = model.batch(["a", "b", "c", "d"])
    assert len({r.response_metadata["chat_id"] for r in results}) == 4
    assert all(c.conversation is None for c in provider.calls)


async def test_abatch_keeps_conversations_apart() -> None:
    model, provider = make_model()
    firsts = await model.abatch([f"start {i}" for i in range(4)])
    follow: list[Any] = [[f"start {i}", firsts[i], f"next {i}"] for i in range(4)]
    seconds = await model.abatch(follow)
    for i in range(4):
        assert seconds[i].response_metadata["chat_id"] == firsts[i].response_metadata["chat_id"]
    sent = {c.messages[-1]["content"]: c.conversation for c in provider.calls[4:]}
    for i in range(4):
        conv = sent[f"next {i}"]
        assert conv is not None
        assert conv.chatID == firsts[i].response_metadata["chat_id"]


# --------------------------------------------------------------------------- streaming


def test_reasoning_is_kept_apart_from_the_answer() -> None:
    provider = FakeProvider(replies=[[Reasoning("Let me "), Reasoning("think."), "Answer."]])
    model, _ = make_model(provider)
    items, total = collect(model.stream("Q"))
    assert items[0].content == ""
    assert items[0].additional_kwargs == {"reasoning_content": "Let me "}
    assert total.content == "Answer."
    assert total.additional_kwargs["reasoning_content"] == "Let me think."
    blocks = total.content_blocks
    assert blocks[0] == {"type": "reasoning", "reasoning": "Let me think."}
    assert blocks[1]["type"] == "text"
    invoked = make_model(FakeProvider(replies=[[Reasoning("hmm"), "Yes."]]))[0].invoke("Q")
    assert invoked.content == "Yes."
    assert invoked.additional_kwargs["reasoning_content"] == "hmm"


def test_reasoning_flag_reaches_the_agent_provider_only() -> None:
    model, provider = make_model(reasoning=True)
    model.invoke("Q")
    model.invoke("Q", reasoning=False)
    assert [c.kwargs.get("reasoning") for c in provider.calls] == [True, False]
    v4, v4_provider = make_model(FakeProvider(protocol="v4"), reasoning=True)
    v4.invoke("Q")
    assert "reasoning" not in v4_provider.calls[0].kwargs


def test_output_version_v1_gives_content_blocks() -> None:
    provider = FakeProvider(replies=[[Reasoning("hmm"), "Yes."]])
    model, _ = make_model(provider, output_version="v1")
    result = model.invoke("Q")
    assert isinstance(result.content, list)
    assert [b["type"] for b in result.content] == ["reasoning", "text"]  # type: ignore[index]


def test_stop_sequence_split_across_deltas_cuts_and_closes_the_stream() -> None:
    provider = FakeProvider(replies=[["Hello ", "wor", "ld and more", " never sent"]])
    model, _ = make_model(provider)
    _, total = collect(model.stream("Q", stop=["world"]))
    assert total.content == "Hello "
    assert total.response_metadata["finish_reason"] == "stop"
    assert provider.closed_streams == 1
    assert provider.finished_streams == 0  # closed early, not read to the end


def test_stop_field_and_alias() -> None:
    provider = FakeProvider(replies=[["one. two. three."]])
    model, _ = make_model(provider, stop_sequences=["two"])
    assert model.stop == ["two"]
    assert model.invoke("Q").content == "one. "


def test_run_manager_gets_each_token() -> None:
    class Tokens(BaseCallbackHandler):
        def __init__(self) -> None:
            self.tokens: list[str] = []

        def on_llm_new_token(self, token: Any, **kwargs: Any) -> None:
            self.tokens.append(str(token))

    provider = FakeProvider(replies=[["a", "b", "c"]])
    model, _ = make_model(provider, streaming=True)
    handler = Tokens()
    assert model.invoke("Q", config={"callbacks": [handler]}).content == "abc"
    assert "".join(handler.tokens) == "abc"
    assert handler.tokens[:3] == ["a", "b", "c"]


async def test_async_stream_calls_the_async_run_manager() -> None:
    provider = FakeProvider(replies=[["x", "y"]])
    model, _ = make_model(provider)
    chunks = [c async for c in model.astream("Q")]
    assert "".join(str(c.content) for c in chunks) == "xy"
    assert chunks[-1].chunk_position == "last"


def test_answer_builder_alone() -> None:
    builder = AnswerBuilder(
        model="m", protocol="v4", account="acct-x", history_hash="h", stop=["!"]
    )
    out: list[ChatGenerationChunk | None] = [
        builder.on_event(TitleGeneration("T")),
        builder.on_event(Conversation(chatID="c", protocol="v4")),
        builder.on_event(MessageId("42")),
        builder.on_event("Hi"),
        builder.on_event("!"),
    ]
    assert [o.message.content if o else None for o in out] == [None, None, None, "Hi", None]
    assert builder.stopped
    last = builder.last_chunk().message
    assert isinstance(last, AIMessageChunk)
    assert last.id == "hailuo-42"
    assert last.response_metadata["title"] == "T"
    assert last.response_metadata["finish_reason"] == "stop"


# --------------------------------------------------------------------------- errors


def test_errors_propagate_unwrapped_with_partial_text() -> None:
    error = HailuoStreamInterruptedError("The stream broke off.", partial_text="par")
    provider = FakeProvider(replies=[["par", error]])
    model, _ = make_model(provider)
    with pytest.raises(HailuoStreamInterruptedError) as info:
        model.invoke("Q")
    assert info.value is error
    assert info.value.partial_text == "par"
    seen: list[str] = []
    provider.replies.append(["par", error])

    def consume() -> None:
        seen.extend(str(chunk.content) for chunk in model.stream("Q"))

    with pytest.raises(HailuoStreamInterruptedError):
        consume()
    assert seen == ["par"]


async def test_errors_propagate_on_the_async_path() -> None:
    error = HailuoStreamInterruptedError("broke")
    model, _ = make_model(FakeProvider(replies=[["a", error]]))
    with pytest.raises(HailuoStreamInterruptedError):
        await model.ainvoke("Q")


@pytest.mark.parametrize(
    "error",
    [
        HailuoQuotaError("Out of credits."),
        HailuoRateLimitError("Slow down.", retry_after=600),
        HailuoAuthError("The token was rejected."),
    ],
    ids=["quota", "rate-limit", "auth"],
)
async def test_an_account_failure_is_raised_as_is_and_the_next_call_tries_again(
    error: HailuoError,
) -> None:
    """One account has nothing to move to and no cool-down: the error, then a fresh try."""
    provider = FakeProvider(replies=[[error]])
    model, _ = make_model(provider)
    with pytest.raises(type(error)) as caught:
        await model.ainvoke("Q")
    assert caught.value is error
    assert (await model.ainvoke("Q")).content == "Hello there."
    assert len(provider.calls) == 2
    assert model.pool is None


def test_unsupported_content_and_empty_input() -> None:
    model, provider = make_model()
    audio = HumanMessage(content=[{"type": "audio", "base64": "AAAA", "mime_type": "audio/wav"}])
    with pytest.raises(HailuoUnsupportedContentError, match="'audio'"):
        model.invoke([audio])
    with pytest.raises(ValueError, match="at least one message"):
        model.invoke([])
    assert provider.calls == []


def test_missing_credential_fails_at_the_first_call(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("HAILUO_TOKEN", raising=False)
    monkeypatch.setenv("HAILUO_AUTH_FILE", str(tmp_path / "none.json"))
    model = ChatHailuo()
    assert model.token is None
    with pytest.raises(HailuoAuthError, match="hailuo login") as info:
        model.invoke("Hi")
    assert "HAILUO_TOKEN" in str(info.value)


def test_the_token_never_leaks(debug_logs: pytest.LogCaptureFixture) -> None:
    model, _ = make_model(proxy="http://user:pw@proxy:8080")
    result = model.invoke("Hi")
    _, streamed = collect(model.stream(["Hi", result, "Again"]))
    places = [
        repr(model),
        str(model),
        repr(model._identifying_params),
        repr(model._get_invocation_params()),
        repr(model._get_ls_params()),
        repr(result),
        repr(streamed),
        model.model_dump_json(),
        debug_logs.text,
    ]
    for text in places:
        assert TOKEN_A not in text
        assert "user:pw" not in text
    assert model._identifying_params["proxy"] == "http://***@proxy:8080"


def test_sampling_controls_are_accepted_but_said_to_be_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chat_models, "_UNUSED_CONTROLS_WARNED", set())
    with pytest.warns(UserWarning, match="ChatHailuo ignores") as said:
        model = ChatHailuo(temperature=0.2, max_tokens=10, api_key="t")
    messages = " | ".join(str(w.message) for w in said)
    assert "ignores temperature" in messages
    assert "ignores max_tokens" in messages
    assert model.temperature == 0.2
    assert "ls_temperature" not in model._get_ls_params()
    assert "ls_max_tokens" not in model._get_ls_params()
    assert model._identifying_params["temperature"] == 0.2


def test_fields_aliases_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAILUO_PROTOCOL", "v4")
    monkeypatch.setenv("HAILUO_UUID", "u-1")
    monkeypatch.setenv("HAILUO_DEVICE_ID", "d-1")
    model = ChatHailuo(model_name="MiniMax-M2.7", api_key="tok")
    assert model.model == "MiniMax-M2.7"
    assert model.token is not None
    assert model.token.get_secret_value() == "tok"
    assert (model.protocol, model.uuid, model.device_id) == ("v4", "u-1", "d-1")
    assert model.timeout == 300.0
    assert model.max_retries == 2
    assert model.max_concurrency == 1
    assert model._llm_type == "chat-hailuo"
    assert model.lc_secrets == {"token": "HAILUO_TOKEN"}
    assert not ChatHailuo.is_lc_serializable()
    monkeypatch.setenv("HAILUO_PROTOCOL", "v5")
    with pytest.raises(ValueError, match="protocol"):
        ChatHailuo()


@pytest.mark.parametrize(
    ("base_url", "protocol", "expected"),
    [
        ("https://www.hailuo.ai", "auto", "v4"),
        ("https://agent.minimax.io", "auto", "agent"),
        (None, "auto", "agent"),
        ("https://www.hailuo.ai", "agent", "agent"),
    ],
)
def test_protocol_resolution(base_url: str | None, protocol: str, expected: str) -> None:
    model = ChatHailuo(token="t", base_url=base_url, protocol=protocol)
    chosen: list[str] = []

    def factory(proto: str, auth_manager: AuthManager) -> FakeProvider:
        chosen.append(proto)
        return FakeProvider(protocol=proto)

    model._provider_factory = factory  # type: ignore[assignment]
    assert model.invoke("Hi").response_metadata["protocol"] == expected
    assert chosen == [expected]


# --------------------------------------------------------------------------- sync over async


async def test_sync_invoke_inside_a_running_event_loop() -> None:
    model, _ = make_model()
    assert model.invoke("Hi").content == "Hello there."
    assert next(c.content for c in model.stream("Hi")) == "Hello there."
    assert (await model.ainvoke("Hi")).content == "Hello there."


def test_sync_invoke_from_asyncio_run() -> None:
    model, _ = make_model()

    async def main() -> str:
        return str(model.invoke("Hi").content)

    assert asyncio.run(main()) == "Hello there."
    assert asyncio.run(main()) == "Hello there."


def test_repeated_sync_calls_reuse_one_loop() -> None:
    model, provider = make_model()
    for _ in range(20):
        assert model.invoke("Hi").content == "Hello there."
    assert len(provider.calls) == 20


def test_sync_calls_from_threads() -> None:
    model, _ = make_model(FakeProvider(delay=0.001), max_concurrency=4)
    results: list[str] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results.append(str(model.invoke(f"q{i}").content))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert results == ["Hello there."] * 8


def test_one_stream_per_account_by_default() -> None:
    provider = FakeProvider(delay=0.005, replies=[["a", "b", "c"]] * 4)
    model, _ = make_model(provider)
    model.batch(["1", "2", "3", "4"])
    assert provider.max_active == 1


async def test_max_concurrency_allows_parallel_streams() -> None:
    provider = FakeProvider(delay=0.01, replies=[["a", "b", "c"]] * 4)
    model, _ = make_model(provider, max_concurrency=2)
    await model.abatch(["1", "2", "3", "4"])
    assert provider.max_active == 2


def test_stopping_a_sync_stream_early_closes_the_provider_stream() -> None:
    provider = FakeProvider(replies=[["a", "b", "c", "d"]])
    model, _ = make_model(provider)
    stream = cast("Generator[AIMessageChunk, None, None]", model.stream("Q"))
    assert next(stream).content == "a"
    stream.close()
    assert provider.closed_streams == 1
    assert provider.finished_streams == 0
    assert provider.active == 0
    # the account slot was released: the next call does not hang
    assert model.invoke("Q").content == "Hello there."


def test_close_runs_provider_aclose_on_the_private_loop() -> None:
    model, provider = make_model()
    model.invoke("Hi")
    model.close()
    assert provider.aclose_calls == 1


async def test_aclose_closes_the_current_loops_sessions() -> None:
    model, provider = make_model()
    await model.ainvoke("Hi")
    await model.aclose()
    assert provider.aclose_calls == 1


# --------------------------------------------------------------------------- the runner


def test_runner_propagates_exceptions_and_values() -> None:
    runner = get_runner()

    async def boom() -> None:
        raise KeyError("x")

    assert runner.run(asyncio.sleep(0, "ok")) == "ok"
    with pytest.raises(KeyError):
        runner.run(boom())


def test_runner_iterate_has_backpressure_and_closes_early() -> None:
    produced: list[int] = []
    closed = threading.Event()

    async def numbers() -> AsyncIterator[int]:
        try:
            for i in range(100):
                produced.append(i)
                yield i
        finally:
            closed.set()

    it = cast("Generator[int, None, None]", get_runner().iterate(numbers()))
    assert next(it) == 0
    assert next(it) == 1
    time.sleep(0.02)
    assert produced == [0, 1]  # nothing read ahead
    it.close()
    assert closed.is_set()


def test_runner_iterate_raises_the_generators_error() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        raise ValueError("bad")

    it = get_runner().iterate(failing())
    assert next(it) == 1
    with pytest.raises(ValueError, match="bad"):
        next(it)


def test_runner_refuses_reentry_from_its_own_thread() -> None:
    """Refused, and the refused coroutine is closed (no "never awaited" warning later)."""
    runner = get_runner()
    refused = asyncio.sleep(0)

    async def reenter() -> None:
        runner.run(refused)

    with pytest.raises(RuntimeError, match="own event loop"):
        runner.run(reenter())
    assert inspect.getcoroutinestate(refused) == inspect.CORO_CLOSED


def test_runner_restarts_after_close() -> None:
    runner = LoopRunner(name="test-runner")
    assert runner.run(asyncio.sleep(0, 1)) == 1
    runner.close()
    assert runner.run(asyncio.sleep(0, 2)) == 2
    runner.close()


async def test_one_account_streams_once_across_threads_loops_and_models() -> None:
    """Two models of one account, called from this loop, three threads' own loops and sync
    calls from two more threads (the private loop), never stream on it at once."""
    provider = FakeProvider(delay=0.002, replies=[["a", "b", "c"]] * 12)
    model, _ = make_model(provider)
    twin, _ = make_model(provider)  # another model, the same account: the same limit
    answers: list[str] = []
    lock = threading.Lock()

    async def pair() -> None:
        for message in await asyncio.gather(model.ainvoke("1"), twin.ainvoke("2")):
            with lock:
                answers.append(str(message.content))

    def on_own_loop() -> None:
        asyncio.run(asyncio.wait_for(pair(), 30))

    def sync_call() -> None:
        message = model.invoke("3")
        with lock:
            answers.append(str(message.content))

    threads = [threading.Thread(target=on_own_loop) for _ in range(3)]
    threads += [threading.Thread(target=sync_call) for _ in range(2)]
    for t in threads:
        t.start()
    await pair()
    for t in threads:
        await asyncio.to_thread(t.join, 30)
    assert answers == ["abc"] * 10
    assert provider.max_active == 1
    assert provider.active == 0


async def test_a_call_on_a_busy_account_fails_at_its_timeout_with_a_timeout_error() -> None:
    """The wait for the account counts against the call's timeout; the account is not hurt."""
    provider = FakeProvider(delay=0.4, replies=[["a", "b", "c"]])
    model, _ = make_model(provider)
    first = asyncio.create_task(model.ainvoke("long"))
    while provider.active == 0:
        await asyncio.sleep(0.001)
    with pytest.raises(HailuoTimeoutError, match="waited for this account's other calls"):
        await model.ainvoke("short", timeout=0.05)
    assert (await first).content == "abc"
    assert (await model.ainvoke("next")).content == "Hello there."


def test_logs_name_the_plan(caplog: pytest.LogCaptureFixture) -> None:
    model, _ = make_model()
    with caplog.at_level(logging.DEBUG, logger="langchain_hailuo"):
        model.invoke("Hi")
    assert "plan=new" in caplog.text


@pytest.mark.parametrize("reuse", [True, False])
def test_a_call_is_planned_once_on_its_account(
    caplog: pytest.LogCaptureFixture, reuse: bool
) -> None:
    # Continued, or (history reuse off) a new chat although the history names this account.
    model, provider = make_model(use_previous_chat_id=reuse)
    first = model.invoke("Hi")
    with caplog.at_level(logging.DEBUG, logger="langchain_hailuo"):
        model.invoke([HumanMessage("Hi"), first, HumanMessage("Again")])
    assert caplog.text.count("ChatHailuo call:") == 1
    assert (provider.calls[-1].conversation is not None) is reuse
