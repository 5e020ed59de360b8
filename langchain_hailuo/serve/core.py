"""The API-neutral core of ``hailuo serve``: one turn in, answer parts out, chats remembered.

Both API modules parse their requests into a :class:`Turn` (LangChain messages plus the
tools, structured output, stop strings and model asked for) and render the parts
:meth:`Answerer.stream` yields. Everything between is ``ChatHailuo``'s public behaviour:
``bind_tools`` for prompted tool calling, the structured-output spec, stop strings,
reasoning, and its conversation state in ``response_metadata``.

Conversation continuity: clients resend the whole history and keep no metadata. After each
answer the metadata ``ChatHailuo`` needs to continue the chat (chat id, account, protocol,
the history and instruction hashes) is stored under a key made of the caller's namespace
and a fingerprint of the history *with* that answer, as the client will resend it
(:class:`History`). On the next call the newest assistant message is looked up the same
way and gets its metadata back, so ``ChatHailuo`` continues that chat and sends only the
new messages; an edited history has another key, and ``ChatHailuo`` itself checks its own
history hash of the chat it continues, so an edited history starts a new chat. The account is
in the stored metadata: ``ChatHailuo`` never continues another account's chat, and an
account pool can route a continued history to the account that holds its chat.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, cast

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import ToolCall, tool_call
from langchain_core.runnables import Runnable

from langchain_hailuo._tool_turns import STRUCTURED_KWARG, StructuredSpec
from langchain_hailuo.chat_models import ChatHailuo
from langchain_hailuo.serve.status import ApiError
from langchain_hailuo.serve.store import ConversationStore

__all__ = [
    "Answer",
    "AnswerPart",
    "Answerer",
    "History",
    "ReasoningPart",
    "TextPart",
    "ToolCallPart",
    "Turn",
    "estimate_tokens",
    "new_id",
    "resolve_model",
    "skip_tool",
]

logger = logging.getLogger(__name__)

_KEPT_METADATA = (
    "model_provider",
    "chat_id",
    "character_id",
    "account",
    "protocol",
    "history_hash",
    "tools_hash",
)
"""The ``response_metadata`` keys ``ChatHailuo`` reads to continue a chat."""


_PREFILL_INSTRUCTION = (
    "Your answer has already begun with the text between the markers below. Continue it "
    "from exactly where it stops, without repeating it.\n<answer_start>\n{}\n</answer_start>"
)
"""Sent after the history when a client prefilled the start of the answer."""

_skipped_tools: set[str] = set()
"""The tool types a request brought that this server cannot serve (each logged once)."""


def new_id(prefix: str) -> str:
    """A fresh response id (``chatcmpl-…``, ``msg_…``)."""
    return f"{prefix}{uuid.uuid4().hex}"


def skip_tool(api: str, kind: str) -> None:
    """Note a tool this server leaves out of the prompt (a built-in tool of the client's API).

    The request is answered without it; the first request bringing a kind logs it once.
    """
    key = f"{api}:{kind}"
    if key not in _skipped_tools:
        _skipped_tools.add(key)
        logger.info("%s tools of type %r are left out: hailuo serve cannot run them", api, kind)


def estimate_tokens(text: str) -> int:
    """An estimate of the tokens in ``text`` (the web chat counts none the client can see).

    About four ASCII characters a token and one token per other character (CJK text): an
    estimate, used where the service reports no usage and by ``count_tokens``.
    """
    ascii_chars = sum(1 for char in text if char < "\x80")
    return (ascii_chars + 3) // 4 + len(text) - ascii_chars


def resolve_model(name: str | None, aliases: tuple[tuple[str, str], ...]) -> str | None:
    """The model a request's name stands for: the first alias pattern it matches, else itself.

    Args:
        name: The model asked for (``None``: the server's default).
        aliases: ``(pattern, model)`` pairs; patterns are shell-style (``claude-*``).
    """
    if name is None:
        return None
    for pattern, model in aliases:
        if fnmatch.fnmatchcase(name, pattern):
            return model
    return name


@dataclass(frozen=True)
class Turn:
    """One request, whichever API it came in.

    Attributes:
        messages: The whole history as LangChain messages.
        model: The model asked for (``None``: the server's default).
        tools: Tools in OpenAI's format.
        tool_choice: Any ``tool_choice`` spelling ``bind_tools`` takes.
        structured: Structured output asked for (``response_format``).
        stop: Stop strings.
        reasoning: Ask for reasoning (``None``: the model's default).
        prefill: The start of the answer the client wrote (Anthropic's assistant prefill):
            the answer continues it and is returned without it.
        continues: The id of an earlier answer whose chat this turn continues, with only
            ``messages`` as the new input (the Responses API's ``previous_response_id``).
        remember_as: The id to keep this answer under for a later ``continues`` (``None``:
            not kept, as with the Responses API's ``store: false``).
    """

    messages: list[BaseMessage]
    model: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = None
    structured: StructuredSpec | None = None
    stop: list[str] | None = None
    reasoning: bool | None = None
    prefill: str = ""
    continues: str | None = None
    remember_as: str | None = None

    def estimated_input_tokens(self) -> int:
        """The estimated prompt tokens (:func:`estimate_tokens` of every text and tool)."""
        texts = [str(message.text) for message in self.messages]
        texts.extend(json.dumps(tool, ensure_ascii=False) for tool in self.tools)
        return estimate_tokens("\n".join([*texts, self.prefill]))


@dataclass(frozen=True)
class TextPart:
    """New answer text."""

    text: str


@dataclass(frozen=True)
class ReasoningPart:
    """New reasoning text."""

    text: str


@dataclass(frozen=True)
class ToolCallPart:
    """One complete tool call (the prompted parser emits calls whole).

    Attributes:
        index: Its position among the answer's calls.
        call: The call (``id``, ``name``, ``args``).
    """

    index: int
    call: ToolCall

    @property
    def arguments(self) -> str:
        """The arguments as JSON text (OpenAI's ``arguments``)."""
        return json.dumps(self.call["args"], ensure_ascii=False)


@dataclass(frozen=True)
class Answer:
    """The finished answer (always the last part).

    Attributes:
        model: The model name reported.
        text: The whole answer text (with structured output: the JSON value).
        reasoning: The whole reasoning text.
        tool_calls: The valid tool calls.
        finish_reason: ``stop``, ``tool_calls`` or the service's own reason.
        input_tokens: Prompt tokens: the service's count, else :func:`estimate_tokens`'s.
        output_tokens: Answer tokens: the service's count, else an estimate.
        stop_sequence: The stop string that ended the answer (``None``: none did).
    """

    model: str
    text: str
    reasoning: str
    tool_calls: list[ToolCall]
    finish_reason: str
    input_tokens: int = 0
    output_tokens: int = 0
    stop_sequence: str | None = None


AnswerPart = TextPart | ReasoningPart | ToolCallPart | Answer


class _Collector:
    """Gathers one answer's chunks (linear: parts are joined once, at the end)."""

    def __init__(self) -> None:
        self.reasoning: list[str] = []
        self.calls: list[ToolCall] = []
        self.last: AIMessageChunk | None = None

    def take(self, chunk: AIMessageChunk) -> list[TextPart | ReasoningPart | ToolCallPart]:
        """The parts one chunk brings."""
        parts: list[TextPart | ReasoningPart | ToolCallPart] = []
        reasoning = chunk.additional_kwargs.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            self.reasoning.append(reasoning)
            parts.append(ReasoningPart(reasoning))
        if isinstance(chunk.content, str) and chunk.content:
            parts.append(TextPart(chunk.content))
        for piece in chunk.tool_call_chunks:
            args = json.loads(piece.get("args") or "{}")
            call = tool_call(name=piece.get("name") or "", args=args, id=piece.get("id"))
            parts.append(ToolCallPart(len(self.calls), call))
            self.calls.append(call)
        if chunk.chunk_position == "last":
            self.last = chunk
        return parts


class _PrefillCut:
    """The answer text, with a repeated prefill taken off its start as it streams.

    The model is asked to continue the prefill without repeating it; when it repeats it
    all the same, the repeat is cut, so the client never gets the prefill twice. Text is
    held only while it could still be the prefill's start.

    Attributes:
        passed: Every piece of text passed on (the answer's text, joined once at the end).
    """

    def __init__(self, prefill: str) -> None:
        self._prefill = prefill.strip()
        self._held = ""
        self._done = not self._prefill
        self.passed: list[str] = []

    def take(self, text: str) -> str:
        """The text to pass on now (``""`` while it may still be the repeated prefill)."""
        if not self._done:
            held, self._held = self._held + text, ""
            stripped = held.lstrip()
            if self._prefill.startswith(stripped):
                self._held = held
                return ""  # still (possibly) the repeat
            self._done = True
            text = stripped[len(self._prefill) :] if stripped.startswith(self._prefill) else held
        if text:
            self.passed.append(text)
        return text

    def rest(self) -> str:
        """What is still held when the answer ends (a partial repeat is the answer itself)."""
        held, self._held, self._done = self._held, "", True
        if held.strip() == self._prefill:
            return ""
        if held:
            self.passed.append(held)
        return held


def _fingerprint(message: BaseMessage) -> bytes:
    """What identifies one message in a resent history: its kind, text or blocks, calls.

    Text is stripped and tool call ids are left out, so an answer matches the way clients
    echo it back (OpenAI's ``content: null`` beside ``tool_calls``, Anthropic's blocks).
    """
    content = message.content
    text: Any = content.strip() if isinstance(content, str) else content
    calls = (
        [[c["name"], c["args"]] for c in message.tool_calls]
        if isinstance(message, AIMessage)
        else None
    )
    extra = message.tool_call_id if isinstance(message, ToolMessage) else None
    return json.dumps(
        [message.type, text, calls, extra], ensure_ascii=False, separators=(",", ":")
    ).encode("utf-8")


class History:
    """A request's history, fingerprinted in one pass for the conversation store.

    The store key of a history ending with an answer is a SHA-256 chained over the caller's
    namespace and each message's :func:`_fingerprint`, so the key of the newest answer's
    prefix (to look up) and of the whole history plus the new answer (to remember) come
    from one pass, each message encoded once.

    Args:
        messages: The history as the client sent it.
        namespace: The caller's namespace (its API key's id).

    Attributes:
        messages: The history.
        last_answer: The index of the newest assistant message (``-1``: none).
        answer_key: The store key of the history up to that answer (``None``: none).
    """

    def __init__(self, messages: list[BaseMessage], namespace: str) -> None:
        """Fingerprint ``messages`` (see the class docstring)."""
        self.messages = messages
        self.last_answer = -1
        self.answer_key: str | None = None
        self._hash = hashlib.sha256(namespace.encode("utf-8"))
        for index, message in enumerate(messages):
            self._hash.update(_fingerprint(message))
            if isinstance(message, AIMessage):
                self.last_answer = index
                self.answer_key = self._hash.hexdigest()

    def key_with(self, answer: AIMessage) -> str:
        """The store key of the whole history followed by ``answer``."""
        extended = self._hash.copy()
        extended.update(_fingerprint(answer))
        return extended.hexdigest()


class Answerer:
    """Answers :class:`Turn` s with one ``ChatHailuo`` and remembers the chats they continue.

    Args:
        model: The configured model (one account, or a pool).
        store: Where continued chats are remembered.
        aliases: ``(pattern, model)`` pairs: a request naming a model that matches a
            pattern (``claude-*``) is answered by that model (:func:`resolve_model`).
    """

    def __init__(
        self,
        model: ChatHailuo,
        store: ConversationStore,
        aliases: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Create the answerer (see the class docstring)."""
        self.model = model
        self.store = store
        self.aliases = aliases

    def model_name(self, asked: str | None) -> str:
        """The model that answers a request asking for ``asked`` (aliases resolved)."""
        return resolve_model(asked, self.aliases) or self.model.model

    # ------------------------------------------------------------------ continuity

    async def known_chat(self, history: History) -> list[BaseMessage]:
        """The messages, the newest assistant answer given back its stored metadata.

        Args:
            history: The history as the client sent it, fingerprinted.

        Returns:
            The same list when the answer is unknown (a new chat starts), else a copy.
        """
        index, key = history.last_answer, history.answer_key
        if key is None:
            return history.messages
        meta = await self.store.get(key)
        if meta is None:
            return history.messages
        messages = history.messages
        known = messages[index].model_copy(update={"response_metadata": meta})
        return [*messages[:index], known, *messages[index + 1 :]]

    async def _remember(
        self, history: History, answer: Answer, meta: Mapping[str, Any], prefill: str
    ) -> None:
        """Store the chat the answer belongs to under the history the client will resend.

        A prefilled answer is resent as the prefill followed by the answer.
        """
        if not meta.get("chat_id"):
            return
        echoed = AIMessage(content=prefill + answer.text, tool_calls=answer.tool_calls)
        try:
            await self.store.put(
                history.key_with(echoed), {k: meta[k] for k in _KEPT_METADATA if k in meta}
            )
        except Exception as exc:  # noqa: BLE001 - the answer is given all the same
            # Never lose an answer for the store: the next turn starts a new chat instead.
            shown = exc.message if isinstance(exc, ApiError) else type(exc).__name__
            logger.warning("The conversation store failed to remember a chat: %s", shown)

    @staticmethod
    def _answer_key(namespace: str, answer_id: str) -> str:
        """The store key of an answer kept by id (per caller: another key cannot use it)."""
        digest = hashlib.sha256(f"{namespace}\0{answer_id}".encode()).hexdigest()
        return f"answer:{digest}"

    async def _earlier(self, answer_id: str, namespace: str) -> AIMessage:
        """The answer kept as ``answer_id``, with the metadata that continues its chat.

        Raises:
            ApiError: A 400 when no answer is kept under that id (unknown, expired, another
                key's, or answered with ``store: false``).
        """
        kept = await self.store.get(self._answer_key(namespace, answer_id))
        if kept is None:
            raise ApiError(
                400,
                "invalid_request",
                f"Previous response with id {answer_id!r} not found (unknown, expired, or "
                "answered with store: false); send the whole conversation as input instead.",
                param="previous_response_id",
            )
        calls = [tool_call(name=n, args=a, id=i) for i, n, a in kept.get("calls") or []]
        # The id proves which chat this continues: the history before it is not resent, so
        # there is no history to compare with the chat's own (its hash is left out).
        meta = {k: v for k, v in (kept.get("meta") or {}).items() if k != "history_hash"}
        return AIMessage(content=kept.get("text") or "", tool_calls=calls, response_metadata=meta)

    async def _keep(
        self, answer_id: str, namespace: str, answer: Answer, meta: Mapping[str, Any]
    ) -> None:
        """Keep an answer by id, so a later turn can continue its chat with only new input."""
        value = {
            "meta": {k: meta[k] for k in _KEPT_METADATA if k in meta},
            "text": answer.text,
            "calls": [[c["id"], c["name"], c["args"]] for c in answer.tool_calls],
        }
        try:
            await self.store.put(self._answer_key(namespace, answer_id), value)
        except Exception as exc:  # noqa: BLE001 - the answer is given all the same
            shown = exc.message if isinstance(exc, ApiError) else type(exc).__name__
            logger.warning("The conversation store failed to keep a response: %s", shown)

    # ------------------------------------------------------------------ answering

    def _runnable(self, turn: Turn) -> tuple[Runnable[Any, Any], dict[str, Any]]:
        """The model (with the turn's tools bound) and the call options to stream it with.

        The options are passed to ``astream`` itself rather than bound: one wrapper fewer
        per request.
        """
        runnable: Runnable[Any, Any] = self.model
        if turn.tools or turn.tool_choice not in {None, "auto", "none"}:
            runnable = self.model.bind_tools(turn.tools, tool_choice=turn.tool_choice)
        options: dict[str, Any] = {}
        if turn.structured is not None:
            options[STRUCTURED_KWARG] = turn.structured
        if turn.model:
            options["model"] = resolve_model(turn.model, self.aliases)
        if turn.reasoning is not None:
            options["reasoning"] = turn.reasoning
        if turn.stop:
            options["stop"] = list(turn.stop)
        return runnable, options

    async def _prompt(self, turn: Turn, history: History, namespace: str) -> list[BaseMessage]:
        """The messages ``ChatHailuo`` answers: the known chat, an earlier answer, a prefill."""
        messages = await self.known_chat(history)
        if turn.continues is not None:
            messages = [await self._earlier(turn.continues, namespace), *messages]
        if turn.prefill:
            messages = [*messages, SystemMessage(_PREFILL_INSTRUCTION.format(turn.prefill))]
        return messages

    async def stream(self, turn: Turn, namespace: str) -> AsyncGenerator[AnswerPart, None]:
        """Answer ``turn``: text, reasoning and tool call parts, then the :class:`Answer`.

        With structured output the text is held and given once, as the checked JSON value.

        Args:
            turn: The request.
            namespace: The caller's namespace (its API key's id).

        Yields:
            The parts, :class:`Answer` last.

        Raises:
            HailuoError: The typed errors of ``ChatHailuo``.
            StructuredOutputError: The answer did not fit the schema, even after a repair.
            ValueError: A request the model refuses (bad ``tool_choice``, nothing to send).
        """
        history = History(turn.messages, namespace)
        messages = await self._prompt(turn, history, namespace)
        held = turn.structured is not None
        collector = _Collector()
        cut = _PrefillCut(turn.prefill)
        runnable, options = self._runnable(turn)
        chunks_of = cast("AsyncGenerator[Any, None]", runnable.astream(messages, **options))
        async with aclosing(chunks_of) as chunks:
            async for chunk in chunks:
                for part in collector.take(chunk):
                    if isinstance(part, TextPart):
                        piece = cut.take(part.text)
                        if held or not piece:
                            continue
                        part = TextPart(piece)  # noqa: PLW2901 - a repeated prefill cut off
                    yield part
        if (rest := cut.rest()) and not held:
            yield TextPart(rest)
        last = collector.last
        meta = dict(last.response_metadata) if last is not None else {}
        text = "".join(cut.passed)
        if collector.calls:
            text = text.strip()  # the blank left where the call blocks were cut out
        if turn.structured is not None and not collector.calls:
            value = turn.structured.parse_message(AIMessage(content=text))
            text = json.dumps(value, ensure_ascii=False)
            yield TextPart(text)
        usage = last.usage_metadata if last is not None else None
        answer = Answer(
            model=self.model_name(turn.model),
            text=text,
            reasoning="".join(collector.reasoning),
            tool_calls=collector.calls,
            finish_reason=str(meta.get("finish_reason") or "stop"),
            input_tokens=usage["input_tokens"] if usage else turn.estimated_input_tokens(),
            output_tokens=usage["output_tokens"] if usage else estimate_tokens(text),
            stop_sequence=meta.get("stop_sequence"),
        )
        await self._remember(history, answer, meta, turn.prefill)
        if turn.remember_as is not None and meta.get("chat_id"):
            await self._keep(turn.remember_as, namespace, answer, meta)
        yield answer
