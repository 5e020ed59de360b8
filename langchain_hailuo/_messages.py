"""LangChain messages -> the providers' ``{"role", "content"}`` dicts, and history hashes.

The turn planner (:mod:`langchain_hailuo._turns`) maps each message of a call once with
:func:`to_message_dicts`: text through the one content rule of :mod:`langchain_hailuo._prompt`,
roles through its one role table, tool results and earlier tool calls in the prompting
syntax of :mod:`langchain_hailuo._tools`. Nothing here does I/O or knows a wire detail.

- :func:`history_hash` fingerprints a history (role + text), so an edited history is noticed.
- :func:`conversation_from_value` accepts a conversation in the forms users keep it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

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
from langchain_hailuo._prompt import canonical_role, content_text
from langchain_hailuo._tools import render_tool_call_history, render_tool_results, tool_names_by_id
from langchain_hailuo.errors import HailuoUnsupportedContentError
from langchain_hailuo.types import Conversation, MessageDict, Protocol

__all__ = [
    "HASH_LENGTH",
    "PROVIDER_NAME",
    "content_text",
    "conversation_from_value",
    "has_payload",
    "history_hash",
    "message_to_dict",
    "short_hash",
    "to_message_dicts",
]


PROVIDER_NAME = "hailuo"
"""``response_metadata["model_provider"]`` of every answer."""

HASH_LENGTH = 16
"""Hex digits of the short hashes stored on answers (``history_hash``, ``tools_hash``)."""


def short_hash(text: str) -> str:
    """The first :data:`HASH_LENGTH` hex digits of the SHA-256 of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_LENGTH]


# --------------------------------------------------------------------------- mapping


def message_to_dict(message: BaseMessage, names: Mapping[str, str] | None = None) -> MessageDict:
    """Map one LangChain message to the providers' ``{"role", "content"}`` dict.

    ``HumanMessage(name="Ann")`` becomes ``"Ann: <text>"`` (the web chat has no speaker
    field); system and AI messages map to ``system`` / ``assistant``; an AI message's own
    reasoning and tool-call blocks are left out, and its tool calls are written in the
    prompting syntax; a tool result becomes a user message holding one labelled
    ``<tool_result>`` block.
    """
    if isinstance(message, ToolMessage):
        text = render_tool_results([message], tool_names=names or {}, reminder=False)
        return {"role": "user", "content": text}
    if isinstance(message, FunctionMessage):
        raise HailuoUnsupportedContentError(
            "FunctionMessage is not supported: the Hailuo web chat has no function calling."
        )
    if isinstance(message, AIMessage):
        text = content_text(message.content, "answer")
        if message.tool_calls:
            text = render_tool_call_history(AIMessage(content=text, tool_calls=message.tool_calls))
        return {"role": "assistant", "content": text}
    if isinstance(message, SystemMessage):
        return {"role": "system", "content": content_text(message.content)}
    if isinstance(message, HumanMessage):
        text = content_text(message.content)
        if message.name and text.strip():
            text = f"{message.name}: {text}"
        return {"role": "user", "content": text}
    if isinstance(message, ChatMessage):
        role = canonical_role(message.role)
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
    names: Mapping[str, str] | None = None,
    media: Sequence[Sequence[Attachment]] | None = None,
) -> list[MessageDict]:
    """Map every message (one dict per message, same order, blank ones kept)."""
    if not messages:
        raise ValueError("ChatHailuo needs at least one message; got an empty list.")
    if names is None:
        names = tool_names_by_id(messages)
    dicts = [message_to_dict(m, names) for m in messages]
    if media is not None:
        dicts = with_attachments(dicts, media)
    if not any(has_payload(d) for d in dicts):
        raise ValueError("Nothing to send: none of the messages holds any text.")
    return dicts


def has_payload(message: Mapping[str, Any]) -> bool:
    """Whether a mapped message holds text or attachments."""
    return bool(str(message["content"]).strip() or message.get("attachments"))


def history_hash(dicts: Sequence[MessageDict]) -> str:
    """A short fingerprint of a history: role and stripped text of each non-blank message.

    Stored on each answer (``response_metadata["history_hash"]``) over the prompt it
    answered, and recomputed on the next call to notice an edited history.
    """
    basis = [
        [d["role"], d["content"].strip(), *(a.sha256 for a in d.get("attachments") or ())]
        for d in dicts
        if has_payload(d)
    ]
    return short_hash(json.dumps(basis, ensure_ascii=False))


# --------------------------------------------------------------------------- conversation


def conversation_from_value(value: Any, protocol: Protocol) -> Conversation | None:
    """Accept a conversation as users give it: a :class:`Conversation`, a dict or a chat id."""
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
