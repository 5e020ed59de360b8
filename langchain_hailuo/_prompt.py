"""The text rules both protocol stacks share, and the request a turn hands them.

The web chats take one text per turn and keep the history server-side: a new chat gets the
whole history folded into one prompt (:func:`format_prompt`), a continued chat only the
user's newest message(s) (:func:`get_last_user_message`). One turn sends one
:class:`TurnRequest`, decided by the turn planner (:mod:`langchain_hailuo._turns`) for
``ChatHailuo`` or by :func:`request_from_dicts` for the gpt4free-compatible
``create_authed``. Here too: the one content-to-text rule (:func:`content_text`), the one
role table (:data:`ROLES`) and the one continuation rule (:func:`continues`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, cast
from typing import Protocol as TypingProtocol

from langchain_hailuo._attachments import Attachment, attachments_of
from langchain_hailuo.errors import HailuoUnsupportedContentError
from langchain_hailuo.types import AuthResult, Conversation, MessageDict, Protocol, ProviderEvent

__all__ = [
    "ROLES",
    "ContentKind",
    "TurnProvider",
    "TurnRequest",
    "canonical_role",
    "check_encodable",
    "compact_json",
    "content_text",
    "continues",
    "format_prompt",
    "get_last_user_message",
    "last_user_run",
    "message_text",
    "request_from_dicts",
]

logger = logging.getLogger(__name__)

ROLES: dict[str, tuple[str, str]] = {
    "system": ("system", "System"),
    "developer": ("system", "System"),
    "user": ("user", "User"),
    "human": ("user", "User"),
    "assistant": ("assistant", "Assistant"),
    "ai": ("assistant", "Assistant"),
}
"""The one role table: a role as callers spell it -> (the providers' role, its prompt label)."""

ContentKind = Literal["message", "answer", "tool_result"]
"""Whose content is read: a plain message, an AI answer, or a tool result."""

_ANSWER_ONLY_BLOCKS = frozenset(
    {"reasoning", "thinking", "redacted_thinking", "tool_call", "tool_call_chunk", "tool_use"}
)
"""Blocks of an AI message that are not part of its answer text (never sent back)."""

_NO_CHAT = frozenset({"", "0"})


def _block_kind(block: Any) -> str:
    """The ``type`` of a content block (or the Python type name of something odd)."""
    if isinstance(block, Mapping):
        return str(block.get("type") or "untyped")
    return type(block).__name__


def compact_json(value: Any) -> str:
    """JSON on one line, unicode kept as is (how prompts quote schemas, calls and results)."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def content_text(content: Any, kind: ContentKind = "message") -> str:
    """The text of a message's content (a string, ``None``, a block, or a list): the one rule.

    Text blocks give their text, joined with nothing between (as LangChain's ``.text``). Other
    blocks: refused in a user ``message`` (files and images were taken out before, see
    :mod:`langchain_hailuo._attachments`); in an ``answer``, reasoning and tool-call blocks are
    left out and others refused; in a ``tool_result``, ``json`` blocks become compact JSON,
    others a short note, parts joined with newlines. A refusal is a
    :class:`HailuoUnsupportedContentError` naming the block type.
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if (
        isinstance(content, Mapping)
        or not isinstance(content, Iterable)
        or isinstance(content, bytes)
    ):
        content = [content]
    parts: list[str] = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
            continue
        block_kind = _block_kind(block)
        if block_kind == "text" and isinstance(block, Mapping):
            parts.append(str(block.get("text") or ""))
        elif kind == "answer" and block_kind in _ANSWER_ONLY_BLOCKS:
            continue
        elif kind == "tool_result":
            if block_kind == "json" and isinstance(block, Mapping) and "json" in block:
                parts.append(compact_json(block["json"]))
            else:
                parts.append(f"[{block_kind} content omitted: this chat takes text only]")
        else:
            raise HailuoUnsupportedContentError(
                f"The web chat takes text only here; a message holds a {block_kind!r} block. "
                "Images and files are sent from user messages and tool results (MiniMax "
                "Agent protocol); otherwise remove the block, or describe it in words."
            )
    return ("\n" if kind == "tool_result" else "").join(parts)


def message_text(content: Any) -> str:
    """The text of a plain message's content (:func:`content_text` of kind ``message``)."""
    return content_text(content)


def canonical_role(role: str) -> str | None:
    """The providers' role (``system`` / ``user`` / ``assistant``) of a role, if known."""
    entry = ROLES.get(role.lower())
    return entry[0] if entry else None


def _role_label(role: str) -> str:
    """``System`` / ``User`` / ``Assistant`` (other roles capitalised)."""
    entry = ROLES.get(role.lower())
    return entry[1] if entry else role.capitalize()


def format_prompt(messages: Sequence[Mapping[str, Any]]) -> str:
    """Fold a whole conversation into one prompt for a new chat (``""`` for none).

    One message is sent as its content, unchanged. Several become ``Role: content`` lines
    (``System``, ``User``, ``Assistant``; blank contents dropped) and a last ``Assistant:``
    line, so the model answers as the assistant.
    """
    if not messages:
        return ""
    if len(messages) == 1:
        return content_text(messages[0].get("content"))
    lines = []
    for message in messages:
        text = content_text(message.get("content"))
        if text.strip():
            lines.append(f"{_role_label(str(message.get('role', 'user')))}: {text}")
    return "\n".join(lines) + "\nAssistant:"


def get_last_user_message(messages: Sequence[Mapping[str, Any]]) -> str:
    """The user's newest message(s) for a held chat: the run before trailing non-user messages.

    Each is stripped, blank ones dropped, joined with newlines (``""`` with no user message).
    """
    run = (content_text(message.get("content")).strip() for message in last_user_run(messages))
    return "\n".join(text for text in run if text)


def last_user_run(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The newest run of user messages, in order (what :func:`get_last_user_message` sends)."""
    end = len(messages)
    while end and not _is_user(messages[end - 1]):
        end -= 1
    start = end
    while start and _is_user(messages[start - 1]):
        start -= 1
    return list(messages[start:end])


def _is_user(message: Mapping[str, Any]) -> bool:
    """Whether a message is the user's."""
    return canonical_role(str(message.get("role", ""))) == "user"


def continues(conversation: Conversation | None, account: str, protocol: Protocol) -> bool:
    """Whether a call may continue ``conversation``: a real chat of this protocol and account."""
    return (
        conversation is not None
        and conversation.protocol == protocol
        and conversation.chatID not in _NO_CHAT
        and conversation.account in {None, account}
    )


PlanReason = Literal[
    "new", "continued", "override", "edited", "foreign", "not-user", "no-history-reuse"
]


@dataclass(frozen=True)
class TurnRequest:
    """What one turn sends, decided once; providers execute it as it is.

    Attributes:
        conversation: The chat to continue (``None``: start a new chat).
        messages: With a conversation, the messages after its last answer (their trailing
            user run is sent); else the whole history, as :attr:`full_history`.
        full_history: The whole history (instructions and tool results folded in), folded
            into one prompt for a new chat.
        history_hash: The hash of this turn's prompt, stored on the answer.
        tools_hash: The hash of the tool / output-format instructions in effect, if any.
        reason: Why (for logs and tests): ``new``, ``continued``, ``override``, ``edited`` (the
            history before the last answer changed), ``foreign`` (another account's or
            protocol's override), ``not-user`` (non-user messages after the last answer),
            ``no-history-reuse`` (``use_previous_chat_id=False``).
    """

    conversation: Conversation | None
    messages: list[MessageDict]
    full_history: list[MessageDict]
    history_hash: str = ""
    tools_hash: str | None = None
    reason: PlanReason = "new"

    @property
    def continued(self) -> bool:
        """Whether the turn continues a server chat."""
        return self.conversation is not None

    def for_account(self, account: str, protocol: Protocol) -> TurnRequest:
        """This request as ``account`` may send it (renewed credentials may be another's)."""
        if self.conversation is None or continues(self.conversation, account, protocol):
            return self
        logger.info(
            "chat %s belongs to another account; starting a new chat", self.conversation.chatID
        )
        return TurnRequest(
            None,
            self.full_history,
            self.full_history,
            self.history_hash,
            self.tools_hash,
            reason="foreign",
        )

    @cached_property
    def new_chat_text(self) -> str:
        """The prompt of a new chat: the whole history folded."""
        return format_prompt(self.full_history)

    @cached_property
    def text(self) -> str:
        """The text this turn sends: the newest user run, or the new chat's prompt."""
        return get_last_user_message(self.messages) if self.continued else self.new_chat_text

    @cached_property
    def attachments(self) -> tuple[Attachment, ...]:
        """The files and images of what this turn sends."""
        if self.continued:
            return tuple(attachments_of(last_user_run(self.messages)))
        return self.new_chat_attachments

    @cached_property
    def new_chat_attachments(self) -> tuple[Attachment, ...]:
        """The files and images a new chat sends (the whole history's)."""
        return tuple(attachments_of(self.full_history))


def request_from_dicts(
    messages: Sequence[Mapping[str, Any]],
    account: str,
    protocol: Protocol,
    conversation: Conversation | None = None,
    full_history: Sequence[Mapping[str, Any]] | None = None,
) -> TurnRequest:
    """The request of a ``create_authed(model, messages, ...)`` call.

    A ``conversation`` that :func:`continues` gets the trailing user message(s) of
    ``messages``; else a new chat starts from ``full_history`` (default ``messages``).
    """
    history = cast("list[MessageDict]", list(full_history or messages))
    if continues(conversation, account, protocol):
        turn = cast("list[MessageDict]", list(messages))
        return TurnRequest(conversation, turn, history, reason="continued")
    if conversation is not None:
        logger.debug("not continuing chat %s: another account or protocol", conversation.chatID)
    return TurnRequest(None, history, history, reason="new")


def check_encodable(messages: Sequence[Mapping[str, Any]]) -> None:
    """Refuse text that cannot be sent as UTF-8 (a lone surrogate, named), before any request."""
    for index, message in enumerate(messages):
        for text in _texts_in(message.get("content")):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise HailuoUnsupportedContentError(
                    f"Message {index} holds a lone surrogate (U+{ord(text[exc.start]):04X} at "
                    f"character {exc.start}), which cannot be sent as UTF-8; it usually comes "
                    "from text decoded with errors='surrogateescape' or a broken emoji. Fix or "
                    "drop that character."
                ) from None


def _texts_in(content: Any) -> list[str]:
    """The strings inside a message content (a string, or parts holding strings)."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, Mapping):
        return [t for value in content.values() for t in _texts_in(value)]
    if isinstance(content, list | tuple):
        return [t for item in content for t in _texts_in(item)]
    return []


class TurnProvider(TypingProtocol):
    """What an answer needs of a provider (``HailuoAI``, ``MiniMaxAgent`` or a fake)."""

    def stream_turn(
        self,
        model: str,
        request: TurnRequest,
        auth_result: AuthResult,
        return_conversation: bool = False,  # noqa: FBT001, FBT002 - as create_authed
        **kwargs: Any,
    ) -> AsyncIterator[list[ProviderEvent]]:
        """Execute the request and stream the answer's events, one list per network read."""
        ...
