"""Pure helpers: LangChain messages -> the providers' dicts, conversation choice, stop sequences.

Nothing here does I/O or knows a wire detail. :mod:`langchain_hailuo.chat_models` uses
these helpers; each is tested on its own.

- :func:`to_message_dicts` maps messages to ``{"role", "content"}`` dicts, one per message.
- :func:`history_hash` fingerprints a history (role + text), so an edited history is noticed.
- :func:`plan_turn` decides whether a call continues a server-side chat (and with which
  messages) or starts a new one.
- :class:`StopSequenceFilter` cuts streamed text at the first stop string, even when the
  string is split across deltas.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_hailuo._attachments import Attachment, with_attachments
from langchain_hailuo.errors import HailuoUnsupportedContentError
from langchain_hailuo.types import Conversation, MessageDict, Protocol

__all__ = [
    "PROVIDER_NAME",
    "StopSequenceFilter",
    "ToolCallRenderer",
    "ToolRenderer",
    "TurnPlan",
    "content_text",
    "conversation_from_value",
    "find_anchor",
    "history_hash",
    "message_to_dict",
    "plan_turn",
    "to_message_dicts",
]

logger = logging.getLogger("langchain_hailuo.chat_models")

PROVIDER_NAME = "hailuo"
"""``response_metadata["model_provider"]`` of every answer."""

ToolRenderer = Callable[[ToolMessage], MessageDict]
"""Turns a tool result into a message the web chat can take (supplied by a tools layer)."""

ToolCallRenderer = Callable[[AIMessage], MessageDict]
"""Turns an AI message that made tool calls into text the web chat can take (a tools layer)."""

_TEXT_BLOCKS = frozenset({"text"})
"""Content block types whose ``text`` is sent."""
_SKIPPED_BLOCKS = frozenset(
    {"reasoning", "thinking", "redacted_thinking", "tool_call", "tool_call_chunk", "tool_use"}
)
"""Blocks of an AI message that are not part of its answer text (never sent back)."""
_CHAT_ROLES: dict[str, str] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
}
_HASH_LENGTH = 16


# --------------------------------------------------------------------------- mapping


def _block_type(block: Any) -> str:
    """The ``type`` of a content block (or the Python type name of something odd)."""
    if isinstance(block, Mapping):
        return str(block.get("type") or "untyped")
    return type(block).__name__


def content_text(content: str | list[str | dict[str, Any]], *, skip_reasoning: bool = False) -> str:
    """The text of a message's content: a string, or a list of strings and text blocks.

    Args:
        content: A message's ``content``.
        skip_reasoning: Drop reasoning and tool-call blocks (an AI message's own), instead
            of rejecting them.

    Returns:
        The text, parts joined with nothing between them (as LangChain's ``.text`` does).

    Raises:
        HailuoUnsupportedContentError: A block is not text (image, audio, file...); the
            message names the block type.
    """
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
            continue
        kind = _block_type(block)
        if kind in _TEXT_BLOCKS and isinstance(block, Mapping):
            parts.append(str(block.get("text") or ""))
        elif skip_reasoning and kind in _SKIPPED_BLOCKS:
            continue
        else:
            raise HailuoUnsupportedContentError(
                f"The Hailuo web chat cannot take a {kind!r} content block here. Images and "
                "files are sent from user messages and tool results (MiniMax Agent protocol); "
                "otherwise remove the block, or describe it in words."
            )
    return "".join(parts)


def message_to_dict(  # noqa: C901 - one branch per message type
    message: BaseMessage,
    *,
    render_tool: ToolRenderer | None = None,
    render_tool_calls: ToolCallRenderer | None = None,
) -> MessageDict:
    """Map one LangChain message to the providers' ``{"role", "content"}`` dict.

    ``HumanMessage(name="Ann")`` becomes ``"Ann: <text>"`` (the web chat has no speaker
    field); system and AI messages map to ``system`` / ``assistant``; an AI message's own
    reasoning and tool-call blocks are left out.

    Args:
        message: The message.
        render_tool: How to render a :class:`ToolMessage` (supplied by a tools layer).
        render_tool_calls: How to render an :class:`AIMessage` that made tool calls
            (supplied by a tools layer; without one, only its text is kept).

    Returns:
        The dict.

    Raises:
        HailuoUnsupportedContentError: Non-text content, or a tool result with no tools
            layer to render it.
        ValueError: A :class:`ChatMessage` with a role the web chat has no use for.
    """
    if isinstance(message, ToolMessage):
        if render_tool is None:
            raise HailuoUnsupportedContentError(
                "A ToolMessage was given, but ChatHailuo has no tools bound: tool calling "
                "is not supported yet. Remove tool results from the history."
            )
        return render_tool(message)
    if isinstance(message, FunctionMessage):
        raise HailuoUnsupportedContentError(
            "FunctionMessage is not supported: the Hailuo web chat has no function calling."
        )
    if isinstance(message, SystemMessage):
        return {"role": "system", "content": content_text(message.content)}
    if isinstance(message, AIMessage):
        if render_tool_calls is not None and message.tool_calls:
            return render_tool_calls(message)
        return {"role": "assistant", "content": content_text(message.content, skip_reasoning=True)}
    if isinstance(message, HumanMessage):
        text = content_text(message.content)
        if message.name and text.strip():
            text = f"{message.name}: {text}"
        return {"role": "user", "content": text}
    if isinstance(message, ChatMessage):
        role = _CHAT_ROLES.get(message.role.lower())
        if role is None:
            raise ValueError(
                f"ChatMessage role {message.role!r} is not supported; use 'system', 'user' "
                "or 'assistant'."
            )
        return {"role": role, "content": content_text(message.content)}
    raise ValueError(f"Unsupported message type {type(message).__name__}.")


def to_message_dicts(
    messages: Sequence[BaseMessage],
    *,
    render_tool: ToolRenderer | None = None,
    render_tool_calls: ToolCallRenderer | None = None,
    media: Sequence[Sequence[Attachment]] | None = None,
) -> list[MessageDict]:
    """Map every message (one dict per message, same order, blank ones kept).

    Args:
        messages: The call's messages.
        render_tool: How to render tool results (supplied by a tools layer).
        render_tool_calls: How to render AI messages with tool calls (a tools layer).
        media: The files and images taken out of each message
            (:func:`~langchain_hailuo._attachments.detach_media`), added as ``attachments``.

    Returns:
        The dicts, index for index with ``messages``.

    Raises:
        ValueError: The list is empty, or no message holds any text.
        HailuoUnsupportedContentError: See :func:`message_to_dict`.
    """
    if not messages:
        raise ValueError("ChatHailuo needs at least one message; got an empty list.")
    dicts = [
        message_to_dict(m, render_tool=render_tool, render_tool_calls=render_tool_calls)
        for m in messages
    ]
    if media is not None:
        dicts = with_attachments(dicts, media)
    if not any(_has_payload(d) for d in dicts):
        raise ValueError("Nothing to send: none of the messages holds any text.")
    return dicts


def history_hash(dicts: Sequence[MessageDict]) -> str:
    """A short fingerprint of a history: role and stripped text of each non-blank message.

    Stored on each answer (``response_metadata["history_hash"]``) over the prompt it
    answered, and recomputed on the next call to notice an edited history.

    Args:
        dicts: The mapped messages.

    Returns:
        16 hex digits.
    """
    basis = [
        [d["role"], d["content"].strip(), *(a.sha256 for a in d.get("attachments") or ())]
        for d in dicts
        if _has_payload(d)
    ]
    digest = hashlib.sha256(json.dumps(basis, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()[:_HASH_LENGTH]


# --------------------------------------------------------------------------- conversation


def conversation_from_value(value: Any, protocol: Protocol) -> Conversation | None:
    """Accept a conversation as users give it: a :class:`Conversation`, a dict or a chat id.

    Args:
        value: A :class:`Conversation`; a dict (``Conversation.get_dict()`` output or an
            answer's ``response_metadata``, with ``chatID``/``chat_id``); a chat id string or
            int; or ``None``.
        protocol: The protocol in use, assumed when the value does not name one.

    Returns:
        The conversation, or ``None`` for ``None`` / an empty value.

    Raises:
        TypeError: The value is of another type.
    """
    if value is None or value == "":
        return None
    if isinstance(value, Conversation):
        return value
    if isinstance(value, Mapping):
        data = dict(value)
        if not (data.get("chatID") or data.get("chat_id")):
            return None
        data.setdefault("protocol", protocol)
        return Conversation.from_dict(data)
    if isinstance(value, str | int) and not isinstance(value, bool):
        return Conversation(chatID=str(value), protocol=protocol)
    raise TypeError(
        f"A conversation must be a Conversation, a dict or a chat id; got {type(value).__name__}."
    )


@dataclass(frozen=True, slots=True)
class Anchor:
    """The newest Hailuo answer of the same account and protocol in a history.

    Attributes:
        index: Its position in the messages.
        conversation: The chat it belongs to.
        history_hash: The hash of the prompt it answered, if recorded.
    """

    index: int
    conversation: Conversation
    history_hash: str | None


def find_anchor(
    messages: Sequence[BaseMessage], *, account: str, protocol: Protocol
) -> Anchor | None:
    """Find the newest Hailuo answer whose account and protocol match.

    Answers of other providers, other accounts or the other protocol are skipped (another
    account's chat is never continued).

    Args:
        messages: The call's messages.
        account: The account fingerprint about to send.
        protocol: The protocol in use.

    Returns:
        The anchor, or ``None`` when the history holds no such answer.
    """
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if not isinstance(message, AIMessage):
            continue
        meta = message.response_metadata or {}
        chat_id = meta.get("chat_id")
        if meta.get("model_provider") != PROVIDER_NAME or not chat_id:
            continue
        if meta.get("account") != account or meta.get("protocol") != protocol:
            continue
        conversation = Conversation(
            chatID=str(chat_id),
            characterID=meta.get("character_id") or 1,
            account=account,
            protocol=protocol,
        )
        stored = meta.get("history_hash")
        return Anchor(index, conversation, stored if isinstance(stored, str) else None)
    return None


PlanReason = Literal[
    "new", "continued", "override", "edited", "foreign", "not-user", "no-history-reuse"
]


@dataclass(frozen=True, slots=True)
class TurnPlan:
    """What one call sends to the provider.

    Attributes:
        conversation: The chat to continue (``None``: start a new chat).
        messages: The messages passed to the provider (with a conversation, the ones after
            its last answer; the provider sends their trailing user run).
        full_history: Every message, for the provider to fold if it must start over.
        history_hash: The hash of this call's prompt, stored on the answer.
        reason: Why (for logs and tests): ``new``, ``continued``, ``override``,
            ``edited`` (the history before the last answer changed), ``foreign`` (an
            override of another account or protocol), ``not-user`` (non-user messages
            after the last answer), ``no-history-reuse`` (``use_previous_chat_id=False``).
    """

    conversation: Conversation | None
    messages: list[MessageDict]
    full_history: list[MessageDict]
    history_hash: str
    reason: PlanReason = "new"


def _new_chat(dicts: list[MessageDict], reason: PlanReason) -> TurnPlan:
    """A plan that starts a new chat from the whole history."""
    return TurnPlan(None, dicts, dicts, history_hash(dicts), reason)


def _has_payload(message: MessageDict) -> bool:
    """Whether a mapped message holds text or attachments."""
    return bool(message["content"].strip() or message.get("attachments"))


def _require_text(dicts: Sequence[MessageDict]) -> None:
    """Raise when the user messages to send hold no text (or files)."""
    if not any(d["role"] == "user" and _has_payload(d) for d in dicts):
        raise ValueError(
            "Nothing to send: the history ends with an answer of this chat. Add a user "
            "message to continue it."
        )


def plan_turn(  # noqa: PLR0911 - one return per documented outcome
    messages: Sequence[BaseMessage],
    dicts: list[MessageDict],
    *,
    account: str,
    protocol: Protocol,
    override: Conversation | None = None,
    use_history: bool = True,
) -> TurnPlan:
    """Decide whether this call continues a server-side chat, and what it sends.

    1. An ``override`` (per-call ``conversation=`` / ``chat_id=``, or the run's metadata)
       wins, unless it belongs to another account or protocol (then a new chat starts).
    2. Else the newest Hailuo answer of this account and protocol (see :func:`find_anchor`)
       decides: its chat continues with only the messages after it, provided the history
       before it is unchanged (its ``history_hash``) and only user messages follow it.
    3. Else a new chat starts from the whole history.

    Args:
        messages: The call's messages.
        dicts: The same messages mapped by :func:`to_message_dicts`.
        account: The account fingerprint about to send.
        protocol: The protocol in use.
        override: An explicit conversation, if the caller gave one.
        use_history: Whether answers in the history may be continued.

    Returns:
        The plan.

    Raises:
        ValueError: A continued chat would get no user text.
    """
    anchor = find_anchor(messages, account=account, protocol=protocol)
    if override is not None:
        if override.account not in {None, account} or override.protocol != protocol:
            logger.warning(
                "Not continuing chat %s: it belongs to %s on %s, and this call uses %s on %s; "
                "starting a new chat.",
                override.chatID,
                override.account or "another account",
                override.protocol,
                account,
                protocol,
            )
            return _new_chat(dicts, "foreign")
        newer = dicts
        if anchor is not None and anchor.conversation.chatID == override.chatID:
            newer = dicts[anchor.index + 1 :]
        _require_text(newer)
        return TurnPlan(override, newer, dicts, history_hash(dicts), "override")
    if not use_history:
        return _new_chat(dicts, "no-history-reuse")
    if anchor is None:
        return _new_chat(dicts, "new")
    if anchor.history_hash is not None and anchor.history_hash != history_hash(
        dicts[: anchor.index]
    ):
        logger.info(
            "The history before the last answer of chat %s was edited; starting a new chat.",
            anchor.conversation.chatID,
        )
        return _new_chat(dicts, "edited")
    newer = dicts[anchor.index + 1 :]
    if any(d["role"] != "user" for d in newer):
        logger.info(
            "Messages other than the user's follow the last answer of chat %s; starting a "
            "new chat from the whole history.",
            anchor.conversation.chatID,
        )
        return _new_chat(dicts, "not-user")
    _require_text(newer)
    return TurnPlan(anchor.conversation, newer, dicts, history_hash(dicts), "continued")


# --------------------------------------------------------------------------- stop sequences


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
        """Create the filter.

        Args:
            stops: The stop strings (empty ones are ignored).
        """
        self.stops: tuple[str, ...] = tuple(dict.fromkeys(s for s in stops or () if s))
        self._held = ""
        self.stopped = False

    @property
    def active(self) -> bool:
        """Whether there is any stop string to watch for."""
        return bool(self.stops)

    def feed(self, text: str) -> str:
        """Take a delta; return the text that is safe to emit now.

        Args:
            text: The next answer delta.

        Returns:
            Text to emit (possibly empty). After a stop string, always empty.
        """
        if self.stopped:
            return ""
        if not self.stops:
            return text
        buffer = self._held + text
        cut = min((i for s in self.stops if (i := buffer.find(s)) >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return buffer[:cut]
        hold = self._longest_pending_prefix(buffer)
        self._held = buffer[len(buffer) - hold :] if hold else ""
        return buffer[: len(buffer) - hold]

    def flush(self) -> str:
        """The held-back tail, at the end of the answer (no stop string followed it).

        Returns:
            The text still held (empty after a stop).
        """
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
