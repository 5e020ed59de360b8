"""Events -> chunks: one answer's way up to LangChain.

- :class:`AnswerBuilder` turns one answer's provider events into message chunks (text and
  reasoning as they come, tool calls parsed out of the text, everything else on the last
  chunk), with the stop-sequence filter (:class:`StopSequenceFilter`) and usage;
- the provider hands over its events one list per network read, so the deltas of one
  kind that arrived together become one chunk, and a slow stream's first delta goes out
  at once;
- :class:`Answer` is one call's answer: the first turn and, for a checked answer (a forced
  ``tool_choice`` or structured output), the one corrective or repair turn, with
  :meth:`Answer.stream` and :attr:`Answer.result`;
- the ``hailuo`` content-block translator is registered here (LangChain's ``content_blocks``).
"""

from __future__ import annotations

import logging
import uuid as uuid_lib
from collections.abc import (
    AsyncGenerator,
    Mapping,
    Sequence,
)
from contextlib import aclosing
from typing import Any, cast

from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.messages import content as types
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.block_translators import register_translator
from langchain_core.messages.tool import InvalidToolCall, ToolCall
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

from langchain_hailuo._messages import PROVIDER_NAME
from langchain_hailuo._prompt import TurnProvider, TurnRequest
from langchain_hailuo._tool_turns import Correction, TurnTools
from langchain_hailuo._tools import ToolCallStreamParser
from langchain_hailuo.errors import HailuoToolChoiceError
from langchain_hailuo.types import (
    AgentActivity,
    AuthResult,
    Conversation,
    FinishReason,
    MessageDict,
    MessageId,
    ProviderEvent,
    Reasoning,
    TitleGeneration,
    Usage,
)
from langchain_hailuo.types import (
    Protocol as WireProtocol,
)

__all__ = [
    "Answer",
    "AnswerBuilder",
    "StopSequenceFilter",
    "TurnProvider",
]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- usage


def add_usage(first: Usage | None, second: Usage | None) -> Usage | None:
    """Token counts of two answers together (a corrective turn costs tokens too)."""
    if first is None or second is None:
        return second or first
    return Usage(
        input_tokens=first.input_tokens + second.input_tokens,
        output_tokens=first.output_tokens + second.output_tokens,
        total_tokens=first.total_tokens + second.total_tokens,
    )


def usage_metadata(usage: Usage) -> UsageMetadata:
    """LangChain usage metadata from the provider's counts."""
    # Built as a dict and cast (here and below): LangChain's TypedDicts declare optional
    # keys with typing.NotRequired, which mypy reads as required under Python 3.10's rules.
    return cast(
        "UsageMetadata",
        {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
        },
    )


# --------------------------------------------------------------------------- content blocks


def _translate_message(message: AIMessage) -> list[types.ContentBlock]:
    """Content blocks of a whole answer: LangChain's own best-effort parsing."""
    raise NotImplementedError


def _translate_chunk(chunk: AIMessageChunk) -> list[types.ContentBlock]:
    """Content blocks of one streamed chunk: reasoning, text, then tool call chunks."""
    # Tool call chunks get "lc_tc_<n>" block indexes: with output_version="v1" LangChain
    # numbers unindexed blocks itself (text 0, 1...), so a call's own index would collide
    # with the text block before it and the two would merge when chunks are added.
    if not isinstance(chunk.content, str):
        raise NotImplementedError
    blocks: list[types.ContentBlock] = []
    reasoning = chunk.additional_kwargs.get("reasoning_content")
    if isinstance(reasoning, str):
        blocks.append(cast("types.ContentBlock", {"type": "reasoning", "reasoning": reasoning}))
    if chunk.content:
        blocks.append(cast("types.ContentBlock", {"type": "text", "text": chunk.content}))
    if chunk.chunk_position == "last":
        blocks.extend(
            cast(
                "types.ContentBlock",
                {"type": "tool_call", "name": call["name"], "args": call["args"], "id": call["id"]},
            )
            for call in chunk.tool_calls
        )
        blocks.extend(
            cast(
                "types.ContentBlock",
                {
                    "type": "invalid_tool_call",
                    "name": bad.get("name"),
                    "args": bad.get("args"),
                    "id": bad.get("id"),
                    "error": bad.get("error"),
                },
            )
            for bad in chunk.invalid_tool_calls
        )
        return blocks
    for piece in chunk.tool_call_chunks:
        block = cast(
            "types.ToolCallChunk",
            {
                "type": "tool_call_chunk",
                "id": piece.get("id"),
                "name": piece.get("name"),
                "args": piece.get("args"),
            },
        )
        if (index := piece.get("index")) is not None:
            block["index"] = f"lc_tc_{index}"
        blocks.append(block)
    return blocks


register_translator(PROVIDER_NAME, _translate_message, _translate_chunk)


class StopSequenceFilter:
    """Cut streamed text at the first stop string, across delta boundaries.

    Text is passed through as it arrives, except for the shortest tail that could still
    become a stop string (a proper prefix of one); that tail is held back until the next
    delta settles it. Once a stop string is seen, the text before it is released and
    everything after is dropped.

    Example:
        ```python
        f = StopSequenceFilter(["END"])
        f.feed("Hello E")  # 'Hello '   ('E' held back)
        f.feed("ND more")  # ''         (stopped)
        f.stopped  # True
        ```
    """

    def __init__(self, stops: Sequence[str] | None) -> None:
        """Create the filter."""
        self.stops: tuple[str, ...] = tuple(dict.fromkeys(s for s in stops or () if s))
        self._held = ""
        self.stopped = False
        self.matched: str | None = None
        """The stop string that ended the answer (``None``: none did)."""

    def feed(self, text: str) -> str:
        """Take a delta; return the text that is safe to emit now."""
        if self.stopped:
            return ""
        if not self.stops:
            return text
        buffer = self._held + text
        cut, matched = min(
            ((i, s) for s in self.stops if (i := buffer.find(s)) >= 0), default=(-1, None)
        )
        if matched is not None:
            self.stopped = True
            self.matched = matched
            self._held = ""
            return buffer[:cut]
        hold = self._longest_pending_prefix(buffer)
        self._held = buffer[len(buffer) - hold :] if hold else ""
        return buffer[: len(buffer) - hold]

    def flush(self) -> str:
        """The held-back tail, at the end of the answer (no stop string followed it)."""
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _longest_pending_prefix(self, buffer: str) -> int:
        """Length of the longest suffix of ``buffer`` that is a proper prefix of a stop."""
        best = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(buffer)), best, -1):
                if buffer.endswith(stop[:size]):
                    best = size
                    break
        return best


# --------------------------------------------------------------------------- one answer


class AnswerBuilder:
    """Turns one answer's provider events into message chunks.

    Text and reasoning deltas become chunks as they come (reasoning in
    ``additional_kwargs["reasoning_content"]``, never in ``content``); everything else
    (chat id, message id, title, usage, finish reason) is collected and put on the last
    chunk only, because string metadata is concatenated when chunks are added. Deltas of
    one kind that arrive together (:meth:`on_events`) make one chunk; text, reasoning and
    tool calls never share one.

    With tools bound, the text (after the stop filter) goes through a
    :class:`~langchain_hailuo._tools.ToolCallStreamParser`: prose streams as ``content``,
    each complete call as one ``tool_call_chunks`` entry, and no tool call syntax ever
    reaches ``content``. Unusable calls are kept in :attr:`invalid_tool_calls` only.
    """

    def __init__(
        self,
        *,
        model: str,
        protocol: WireProtocol,
        account: str,
        history_hash: str,
        stop: Sequence[str] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        tools_hash: str | None = None,
    ) -> None:
        """Create the builder (see the class docstring)."""
        self.model = model
        self.protocol: WireProtocol = protocol
        self.account = account
        self.history_hash = history_hash
        self.tools_hash = tools_hash
        self.stop_filter = StopSequenceFilter(stop)
        self.parser = ToolCallStreamParser(tools) if tools is not None else None
        self.earlier_usage: Usage | None = None
        self._raw: list[str] = []
        self.conversation: Conversation | None = None
        self.msg_id: str | None = None
        self.title: str | None = None
        self.usage: Usage | None = None
        self.activity = AgentActivity()
        self.finish_reason: str | None = None
        self._fallback_id = f"hailuo-{uuid_lib.uuid4().hex}"

    @property
    def stopped(self) -> bool:
        """Whether a stop string cut the answer (the stream should be closed)."""
        return self.stop_filter.stopped

    @property
    def text(self) -> str:
        """The answer text so far, tool call syntax included (after the stop filter)."""
        return "".join(self._raw)

    @property
    def tool_calls(self) -> list[ToolCall]:
        """The valid calls of the finished answer."""
        return self.parser.result.tool_calls if self.parser else []

    @property
    def invalid_tool_calls(self) -> list[InvalidToolCall]:
        """The unusable calls of the finished answer (never streamed)."""
        return self.parser.result.invalid_tool_calls if self.parser else []

    @property
    def message_id(self) -> str | None:
        """The LangChain message id: ``hailuo-<msg id>`` once the server sent one."""
        return f"hailuo-{self.msg_id}" if self.msg_id else None

    def _chunk(self, content: str = "", **fields: Any) -> ChatGenerationChunk:
        """A chunk carrying only ``model_provider`` (equal values merge without concatenating)."""
        message = AIMessageChunk(
            content=content,
            id=self.message_id,
            response_metadata={"model_provider": PROVIDER_NAME},
            **fields,
        )
        return ChatGenerationChunk(message=message)

    def _on_text(self, delta: str) -> list[ChatGenerationChunk]:
        """Answer text: through the stop filter, then (with tools) the call parser."""
        text = self.stop_filter.feed(delta)
        self._raw.append(text)
        if self.parser is None or not text:
            return [self._chunk(text)] if text else []
        piece = self.parser.feed(text)
        chunks = [self._chunk(piece.content)] if piece.content else []
        if piece.tool_call_chunks:
            chunks.append(self._chunk(tool_call_chunks=piece.tool_call_chunks))
        return chunks

    def _on_reasoning(self, text: str) -> list[ChatGenerationChunk]:
        """Reasoning text: one chunk with ``reasoning_content``."""
        if not text:
            return []
        return [self._chunk(additional_kwargs={"reasoning_content": text})]

    def _on_metadata(self, event: ProviderEvent) -> None:
        """Keep a non-delta event for the last chunk."""
        if isinstance(event, Conversation):
            self.conversation = event
        elif isinstance(event, MessageId):
            self.msg_id = event.msg_id
        elif isinstance(event, TitleGeneration):
            self.title = event.title
        elif isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, FinishReason):
            self.finish_reason = event.reason
        elif isinstance(event, AgentActivity):
            self.activity = event

    def on_event(self, event: ProviderEvent) -> ChatGenerationChunk | None:
        """Take one provider event; return what it adds as one chunk, or ``None``."""
        chunks = self.on_events([event])
        return chunks[0] + chunks[1:] if chunks else None

    def on_events(self, events: Sequence[ProviderEvent]) -> list[ChatGenerationChunk]:
        """Take events that arrived together; deltas of one kind in a row become one chunk."""
        chunks: list[ChatGenerationChunk] = []
        texts: list[str] = []
        thoughts: list[str] = []
        for event in events:
            if isinstance(event, str):
                if thoughts:
                    chunks += self._on_reasoning("".join(thoughts))
                    thoughts = []
                texts.append(event)
            elif isinstance(event, Reasoning):
                if texts:
                    chunks += self._on_text("".join(texts))
                    texts = []
                thoughts.append(event.text)
            else:
                self._on_metadata(event)
        if texts:
            chunks += self._on_text("".join(texts))
        if thoughts:
            chunks += self._on_reasoning("".join(thoughts))
        return chunks

    def response_metadata(self) -> dict[str, Any]:
        """Everything the answer's ``response_metadata`` holds (no ``None`` values)."""
        conversation = self.conversation
        meta: dict[str, Any] = {
            "model_provider": PROVIDER_NAME,
            "model_name": self.model,
            "protocol": self.protocol,
            "chat_id": conversation.chatID if conversation else None,
            "character_id": conversation.characterID if conversation else None,
            "msg_id": self.msg_id,
            "title": self.title,
            "account": self.account,
            "history_hash": self.history_hash,
            "tools_hash": self.tools_hash,
            "finish_reason": self._finish_reason(),
            "stop_sequence": self.stop_filter.matched,
            "agent_tool_calls": [dict(c) for c in self.activity.tool_calls] or None,
            "unknown_frames": dict(self.activity.unknown) or None,
        }
        return {key: value for key, value in meta.items() if value is not None}

    def _finish_reason(self) -> str:
        """``tool_calls`` when calls were made, else ``stop`` or the server's reason."""
        if self.tool_calls:
            return "tool_calls"
        return "stop" if self.stopped else (self.finish_reason or "stop")

    def last_chunk(self, sent_in: Conversation | None = None) -> ChatGenerationChunk:
        """The final chunk: held-back text, all metadata, usage, ``chunk_position="last"``."""
        if self.conversation is None:
            self.conversation = sent_in
        content = self.stop_filter.flush()
        self._raw.append(content)
        fields: dict[str, Any] = {}
        if self.parser is not None:
            pieces = [self.parser.feed(content), self.parser.finish()]
            content = "".join(piece.content for piece in pieces)
            chunks = [chunk for piece in pieces for chunk in piece.tool_call_chunks]
            if chunks:
                fields["tool_call_chunks"] = chunks
            if self.invalid_tool_calls:
                logger.info(
                    "ChatHailuo: %d unusable tool call(s) in the answer (not streamed): %s",
                    len(self.invalid_tool_calls),
                    "; ".join(str(call.get("error")) for call in self.invalid_tool_calls),
                )
        usage = add_usage(self.earlier_usage, self.usage)
        message = AIMessageChunk(
            content=content,
            **fields,
            id=self.message_id or self._fallback_id,
            response_metadata=self.response_metadata(),
            usage_metadata=usage_metadata(usage) if usage else None,
            chunk_position="last",
        )
        return ChatGenerationChunk(message=message)


# --------------------------------------------------------------------------- one call


class Answer:
    """One call's answer: a turn, and one corrective or repair turn when a check fails.

    Plain answers stream as they come. Checked answers (a forced ``tool_choice``, or
    structured output) are held until checked: an answer that gets a corrective turn in
    the same chat is never shown, and the corrected one is checked again (a forced choice
    still not followed raises :class:`~langchain_hailuo.errors.HailuoToolChoiceError`).
    """

    def __init__(
        self,
        provider: TurnProvider,
        request: TurnRequest,
        *,
        auth: AuthResult,
        model: str,
        protocol: WireProtocol,
        tools: TurnTools,
        stop: Sequence[str] | None,
        call_kwargs: Mapping[str, Any],
    ) -> None:
        """Describe the answer (nothing is sent before :meth:`stream`)."""
        self.provider = provider
        self.request = request
        self.auth = auth
        self.model = model
        self.protocol: WireProtocol = protocol
        self.tools = tools
        self.stop = stop
        self.call_kwargs = dict(call_kwargs)
        self._result: AnswerBuilder | None = None
        self.started = False
        """Whether answer text or reasoning arrived (the message was taken: never resend it)."""

    @property
    def result(self) -> AnswerBuilder:
        """The builder of the answer given (its text, calls, chat, usage), once streamed."""
        if self._result is None:
            raise RuntimeError("Answer.result is known once Answer.stream() has finished.")
        return self._result

    def _builder(self) -> AnswerBuilder:
        """A builder for one turn of this answer."""
        return AnswerBuilder(
            model=self.model,
            protocol=self.protocol,
            account=self.auth.account_fingerprint,
            history_hash=self.request.history_hash,
            stop=self.stop,
            tools=self.tools.parser_tools,
            tools_hash=self.request.tools_hash,
        )

    async def stream(self) -> AsyncGenerator[ChatGenerationChunk, None]:
        """Send the turn (and a corrective one if needed); yield the answer's chunks.

        Each list of events the provider read from the network becomes its chunks at once
        (:meth:`AnswerBuilder.on_events`); a checked answer's chunks are held until checked.
        """
        builder, request, checked = self._builder(), self.request, self.tools.checked
        held: list[ChatGenerationChunk] = []
        while True:
            turn = self.provider.stream_turn(
                self.model, request, self.auth, return_conversation=True, **self.call_kwargs
            )
            async with aclosing(cast("Any", turn)):
                async for events in turn:
                    chunks = builder.on_events(events)
                    if chunks:
                        self.started = True
                        if checked:
                            held += chunks
                        else:
                            for chunk in chunks:
                                yield chunk
                    if builder.stopped:
                        break
            last = builder.last_chunk(request.conversation)
            if not checked:
                self._result = builder
                yield last
                return
            held.append(last)
            correction = self._correction(builder, corrected=request is not self.request)
            if correction is None:
                break
            logger.info(
                "ChatHailuo: the answer needs a %s correction; asking once more in chat %s",
                correction.kind,
                builder.conversation.chatID if builder.conversation else None,
            )
            first, builder, held = builder, self._builder(), []
            builder.earlier_usage = first.usage
            request = self._corrective(first, correction.text)
        self._result = builder
        for chunk in held:
            yield chunk

    def _correction(self, builder: AnswerBuilder, *, corrected: bool) -> Correction | None:
        """The corrective turn the answer needs (none after one; a forced choice raises)."""
        correction = self.tools.correction(
            builder.text, builder.tool_calls, builder.invalid_tool_calls
        )
        if correction is None or not corrected:
            return correction
        if correction.kind == "tool_choice":
            conversation = builder.conversation
            raise HailuoToolChoiceError(
                f"The model did not follow tool_choice={self.tools.tool_choice!r}, even "
                "after a corrective turn. Rephrase the request, or bind the tools with "
                "tool_choice='auto' and check AIMessage.tool_calls yourself.",
                partial_text=builder.parser.result.content if builder.parser else "",
                chat_id=conversation.chatID if conversation else None,
            )
        return None

    def _corrective(self, first: AnswerBuilder, text: str) -> TurnRequest:
        """The corrective turn: ``text`` in the first answer's chat (or a new one with all)."""
        history: list[MessageDict] = [
            *self.request.full_history,
            {"role": "assistant", "content": first.text},
            {"role": "user", "content": text},
        ]
        conversation = first.conversation or self.request.conversation
        turn: list[MessageDict] = [{"role": "user", "content": text}]
        return TurnRequest(
            conversation,
            turn if conversation is not None else history,
            history,
            self.request.history_hash,
            self.request.tools_hash,
            reason="continued" if conversation is not None else "new",
        )

    def result_of(self, chunks: Sequence[ChatGenerationChunk]) -> ChatResult:
        """The whole answer as a :class:`ChatResult`, from the chunks :meth:`stream` gave.

        With tool calls in the answer, the whitespace left around the removed call blocks
        is stripped from ``content``, and unusable calls (which streams leave out) are put
        in ``invalid_tool_calls``.
        """
        result = generate_from_stream(iter(chunks))
        builder = self.result
        message = result.generations[0].message
        if builder.parser is not None and isinstance(message, AIMessage):
            reply = builder.parser.result
            if reply.tool_calls or reply.invalid_tool_calls:
                message.content = reply.content
                message.invalid_tool_calls = list(reply.invalid_tool_calls)
                info = result.generations[0].generation_info
                result = ChatResult(
                    generations=[ChatGeneration(message=message, generation_info=info)]
                )
        return result
