"""The API-neutral core of ``hailuo serve``: one request in, answer parts out, chats remembered.

The API modules parse requests into a :class:`ChatRequest` and render the parts
:meth:`Answerer.stream` yields; everything between is ``ChatHailuo``'s public behaviour.

Clients resend the whole history and keep no metadata, so after each answer the metadata
``ChatHailuo`` needs to continue the chat is stored under a key of the caller's namespace and
the history *with* that answer, as the client will resend it (:class:`History`). The next
call gives the newest assistant message that metadata back, so ``ChatHailuo`` continues the
chat (on the account that holds it) and sends only the new messages; an edited history has
another key and starts a new chat.
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
    "AnswerPart",
    "Answerer",
    "ChatRequest",
    "FinishedAnswer",
    "History",
    "ReasoningPart",
    "TextPart",
    "ToolCallPart",
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
    """Note a tool kind left out of the prompt (logged once per kind); the request is answered."""
    key = f"{api}:{kind}"
    if key not in _skipped_tools:
        _skipped_tools.add(key)
        logger.info("%s tools of type %r are left out: hailuo serve cannot run them", api, kind)


def estimate_tokens(text: str) -> int:
    """Estimate the tokens in ``text``: four ASCII characters or one other character a token.

    Used where the service reports no usage (the web chat shows none) and by ``count_tokens``.
    """
    ascii_chars = sum(1 for char in text if char < "\x80")
    return (ascii_chars + 3) // 4 + len(text) - ascii_chars


def resolve_model(name: str | None, aliases: tuple[tuple[str, str], ...]) -> str | None:
    """The model ``name`` stands for: the first shell-style alias it matches, else itself."""
    if name is None:
        return None
    for pattern, model in aliases:
        if fnmatch.fnmatchcase(name, pattern):
            return model
    return name


@dataclass(frozen=True)
class ChatRequest:
    """One request, whichever API it came in.

    Attributes:
        messages: The whole history as LangChain messages.
        model: The model asked for (``None``: the server's default).
        tools: Tools in OpenAI's format; ``tool_choice``: any spelling ``bind_tools`` takes.
        structured: Structured output asked for (``response_format``).
        stop: Stop strings.
        reasoning: Ask for reasoning (``None``: the model's default).
        prefill: The answer's start the client wrote (Anthropic's prefill): continued, not resent.
        continues: The id of an earlier answer whose chat this continues with only ``messages``
            as new input (the Responses API's ``previous_response_id``).
        remember_as: The id to keep this answer under (``None``: not kept, ``store: false``).
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
    """One complete tool call (``call``) and its position among the answer's calls (``index``)."""

    index: int
    call: ToolCall

    @property
    def arguments(self) -> str:
        """The arguments as JSON text (OpenAI's ``arguments``)."""
        return json.dumps(self.call["args"], ensure_ascii=False)


@dataclass(frozen=True)
class FinishedAnswer:
    """The finished answer, always the last part.

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


AnswerPart = TextPart | ReasoningPart | ToolCallPart | FinishedAnswer


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
    """The answer text with a repeated prefill cut off its start (held while it may be one)."""

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
    """One message as clients resend it: stripped text, tool calls without their ids."""
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
    """A request's history, fingerprinted once for the conversation store.

    The key of a history ending with an answer is a SHA-256 chained over the namespace and each
    message's fingerprint, so the lookup key (up to the newest answer, ``answer_key``) and the
    remember key (:meth:`key_with`) come from one pass. ``last_answer`` is that answer's index
    (``-1``: none).
    """

    def __init__(self, messages: list[BaseMessage], namespace: str) -> None:
        """Fingerprint ``messages`` under ``namespace`` (the caller's API key id)."""
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
    """Answers :class:`ChatRequest` s with one ``ChatHailuo`` and remembers their chats.

    ``aliases`` are ``(pattern, model)`` pairs applied by :func:`resolve_model`.
    """

    def __init__(
        self,
        model: ChatHailuo,
        store: ConversationStore,
        aliases: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Answer with ``model``, remembering chats in ``store``."""
        self.model = model
        self.store = store
        self.aliases = aliases

    def model_name(self, asked: str | None) -> str:
        """The model that answers a request asking for ``asked`` (aliases resolved)."""
        return resolve_model(asked, self.aliases) or self.model.model

    # ------------------------------------------------------------------ continuity

    async def known_chat(self, history: History) -> list[BaseMessage]:
        """The messages, the newest answer given its stored metadata (same list if unknown)."""
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
        self, history: History, answer: FinishedAnswer, meta: Mapping[str, Any], prefill: str
    ) -> None:
        """Store the answer's chat under the history the client will resend (prefill + answer)."""
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
        """The answer kept as ``answer_id`` with its metadata (an ``ApiError`` 400 if none)."""
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
        self, answer_id: str, namespace: str, answer: FinishedAnswer, meta: Mapping[str, Any]
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

    def _runnable(self, request: ChatRequest) -> tuple[Runnable[Any, Any], dict[str, Any]]:
        """The model with the request's tools bound, and the options to pass to ``astream``."""
        runnable: Runnable[Any, Any] = self.model
        if request.tools or request.tool_choice not in {None, "auto", "none"}:
            runnable = self.model.bind_tools(request.tools, tool_choice=request.tool_choice)
        options: dict[str, Any] = {}
        if request.structured is not None:
            options[STRUCTURED_KWARG] = request.structured
        if request.model:
            options["model"] = resolve_model(request.model, self.aliases)
        if request.reasoning is not None:
            options["reasoning"] = request.reasoning
        if request.stop:
            options["stop"] = list(request.stop)
        return runnable, options

    async def _prompt(
        self, request: ChatRequest, history: History, namespace: str
    ) -> list[BaseMessage]:
        """The messages ``ChatHailuo`` answers: the known chat, an earlier answer, a prefill."""
        messages = await self.known_chat(history)
        if request.continues is not None:
            messages = [await self._earlier(request.continues, namespace), *messages]
        if request.prefill:
            messages = [*messages, SystemMessage(_PREFILL_INSTRUCTION.format(request.prefill))]
        return messages

    async def stream(
        self, request: ChatRequest, namespace: str
    ) -> AsyncGenerator[AnswerPart, None]:
        """Answer ``request``: text, reasoning and tool call parts, then a :class:`FinishedAnswer`.

        With structured output the text is held and given once, as the checked JSON value.

        Raises:
            HailuoError: The typed errors of ``ChatHailuo``.
            StructuredOutputError: The answer did not fit the schema, even after a repair.
            ValueError: A request the model refuses (bad ``tool_choice``, nothing to send).
        """
        history = History(request.messages, namespace)
        messages = await self._prompt(request, history, namespace)
        held = request.structured is not None
        collector = _Collector()
        cut = _PrefillCut(request.prefill)
        runnable, options = self._runnable(request)
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
        if request.structured is not None and not collector.calls:
            value = request.structured.parse_message(AIMessage(content=text))
            text = json.dumps(value, ensure_ascii=False)
            yield TextPart(text)
        usage = last.usage_metadata if last is not None else None
        answer = FinishedAnswer(
            model=self.model_name(request.model),
            text=text,
            reasoning="".join(collector.reasoning),
            tool_calls=collector.calls,
            finish_reason=str(meta.get("finish_reason") or "stop"),
            input_tokens=usage["input_tokens"] if usage else request.estimated_input_tokens(),
            output_tokens=usage["output_tokens"] if usage else estimate_tokens(text),
            stop_sequence=meta.get("stop_sequence"),
        )
        await self._remember(history, answer, meta, request.prefill)
        if request.remember_as is not None and meta.get("chat_id"):
            await self._keep(request.remember_as, namespace, answer, meta)
        yield answer
