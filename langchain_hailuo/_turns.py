"""The turn planner: one call's messages and settings -> one :class:`TurnRequest`.

``ChatHailuo`` maps every message once (:func:`render_call`:
one content-to-text rule, one role table, files and images taken out first), then, once the
account and protocol are known, calls :func:`plan`: it decides once whether the call
continues a server chat, and folds in what bound tools or a structured-output schema add
(instructions, tool results as the turn). Providers get
the request and execute it; they never decide again. Calls go downward only: nothing here
is handed a function of a higher layer.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from langchain_hailuo._attachments import carry_attachments, detach_media
from langchain_hailuo._messages import (
    PROVIDER_NAME,
    conversation_from_value,
    has_payload,
    history_hash,
    to_message_dicts,
)
from langchain_hailuo._prompt import PlanReason, TurnRequest, continues
from langchain_hailuo._tool_turns import (
    INSTRUCTIONS_WITHDRAWN,
    TurnTools,
    continued_turn,
    fold_new_chat,
)
from langchain_hailuo._tools import tool_names_by_id
from langchain_hailuo.types import Conversation, MessageDict, Protocol

__all__ = [
    "Anchor",
    "Answers",
    "RenderedCall",
    "TurnRequest",
    "plan",
    "render_call",
    "scan_answers",
]

logger = logging.getLogger(__name__)

_NO_PREVIOUS = "<unknown>"
"""The instructions hash of a chat whose last answer is not in the history."""


@dataclass(frozen=True, slots=True)
class Anchor:
    """The newest Hailuo answer of one account in a history.

    Attributes:
        index: Its position in the messages.
        conversation: The chat it belongs to.
        history_hash: The hash of the prompt it answered, if recorded.
        tools_hash: The hash of the instructions it answered under, if recorded.
        protocol: The protocol it was answered on, as recorded.
    """

    index: int
    conversation: Conversation
    history_hash: str | None
    tools_hash: str | None = None
    protocol: str | None = None


@dataclass(frozen=True, slots=True)
class Answers:
    """A history's Hailuo answers, scanned once: each account's newest, and each chat's account.

    Attributes:
        newest: Account -> its newest answer, the account answering last first.
        chats: Chat id -> the account of its newest answer.
    """

    newest: dict[str, Anchor]
    chats: dict[str, str]

    def anchor(self, account: str, protocol: Protocol) -> Anchor | None:
        """The newest answer of ``account``, if it was answered on ``protocol``."""
        found = self.newest.get(account)
        return found if found is not None and found.protocol == protocol else None

    def owner(self, accounts: Collection[str], chat_id: str | None = None) -> str | None:
        """The account of ``accounts`` that answered last (in chat ``chat_id``, if given)."""
        if chat_id is not None:
            owner = self.chats.get(chat_id)
            return owner if owner in accounts else None
        return next((name for name in self.newest if name in accounts), None)


def scan_answers(messages: Sequence[BaseMessage]) -> Answers:
    """Scan a history backwards once for its Hailuo answers (other providers' are skipped)."""
    newest: dict[str, Anchor] = {}
    chats: dict[str, str] = {}
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if not isinstance(message, AIMessage):
            continue
        meta = message.response_metadata or {}
        chat_id, account = meta.get("chat_id"), meta.get("account")
        if meta.get("model_provider") != PROVIDER_NAME or not chat_id or not account:
            continue
        chats.setdefault(str(chat_id), str(account))
        if account in newest:
            continue
        protocol = meta.get("protocol")
        stored, tools = meta.get("history_hash"), meta.get("tools_hash")
        newest[str(account)] = Anchor(
            index,
            Conversation(
                chatID=str(chat_id),
                characterID=meta.get("character_id") or 1,
                account=str(account),
                protocol=protocol if protocol in {"agent", "v4"} else "agent",
            ),
            stored if isinstance(stored, str) else None,
            tools if isinstance(tools, str) else None,
            protocol if isinstance(protocol, str) else None,
        )
    return Answers(newest, chats)


def _new_chat(dicts: list[MessageDict], reason: PlanReason) -> TurnRequest:
    """A request that starts a new chat from the whole history."""
    return TurnRequest(None, dicts, dicts, history_hash(dicts), reason=reason)


def _require_text(dicts: Sequence[MessageDict]) -> None:
    """Raise when the user messages to send hold no text (or files)."""
    if not any(d["role"] == "user" and has_payload(d) for d in dicts):
        raise ValueError(
            "Nothing to send: the history ends with an answer of this chat. Add a user "
            "message to continue it."
        )


def _decide(  # noqa: PLR0911 - one return per documented outcome
    dicts: list[MessageDict],
    anchor: Anchor | None,
    *,
    account: str,
    protocol: Protocol,
    override: Conversation | None,
    use_history: bool,
) -> TurnRequest:
    """Continue the anchor's chat or start a new one (an override wins, see :func:`plan`)."""
    if override is not None:
        if not continues(override, account, protocol):
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
        return TurnRequest(override, newer, dicts, history_hash(dicts), reason="override")
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
    return TurnRequest(anchor.conversation, newer, dicts, history_hash(dicts), reason="continued")


def _with_tools(
    request: TurnRequest,
    anchor: Anchor | None,
    messages: Sequence[BaseMessage],
    dicts: list[MessageDict],
    *,
    tools: TurnTools,
    names: Mapping[str, str],
) -> TurnRequest:
    """Add the tool instructions, results and calls to what a turn sends."""
    # A new chat gets the instructions first and each run of tool results as one block; a
    # continued chat gets the results as its turn, the instructions only when they changed.
    instructions = tools.instructions
    current = tools.instructions_hash
    request = dataclasses.replace(request, tools_hash=current)
    if request.conversation is None:
        if not instructions and not any(isinstance(m, ToolMessage) for m in messages):
            return request
        folded = carry_attachments(fold_new_chat(messages, dicts, names, instructions), dicts)
        return dataclasses.replace(request, messages=folded, full_history=folded)
    previous: Any = _NO_PREVIOUS
    if anchor is not None and anchor.conversation.chatID == request.conversation.chatID:
        previous = anchor.tools_hash
    prefix = ""
    if current is not None and previous != current:
        prefix = instructions
    elif current is None and previous not in {None, _NO_PREVIOUS}:
        prefix = INSTRUCTIONS_WITHDRAWN
    turn = len(request.messages)
    turn_messages = messages[len(messages) - turn :]
    if not prefix and not any(isinstance(m, ToolMessage) for m in turn_messages):
        return request
    text = continued_turn(
        turn_messages, dicts[len(dicts) - turn :], names, prefix=prefix, reminder=bool(tools.tools)
    )
    folded = carry_attachments(fold_new_chat(messages, dicts, names, instructions), dicts)
    turn_dicts = carry_attachments([{"role": "user", "content": text}], request.messages)
    return dataclasses.replace(request, messages=turn_dicts, full_history=folded)


@dataclass(frozen=True)
class RenderedCall:
    """A call's messages, mapped once (files and images taken out first).

    Attributes:
        messages: The messages, files and images detached.
        dicts: The same messages as the providers' dicts, index for index.
        names: Tool call id -> tool name.
    """

    messages: Sequence[BaseMessage]
    dicts: list[MessageDict]
    names: dict[str, str]

    @cached_property
    def answers(self) -> Answers:
        """The history's Hailuo answers (:func:`scan_answers`, on first use)."""
        return scan_answers(self.messages)


def render_call(messages: Sequence[BaseMessage], *, max_attachment_bytes: int) -> RenderedCall:
    """Map a call's messages once: one content-to-text rule, one role table."""
    names = tool_names_by_id(messages)
    detached, media = detach_media(messages, max_bytes=max_attachment_bytes)
    return RenderedCall(detached, to_message_dicts(detached, names=names, media=media), names)


def plan(
    call: RenderedCall,
    *,
    tools: TurnTools,
    account: str,
    protocol: Protocol,
    override: Any = None,
    use_history: bool = True,
) -> TurnRequest:
    """Plan a mapped call for one account: the one place the call is judged.

    1. An ``override`` (per-call ``conversation=`` / ``chat_id=``, or the run's metadata)
       wins, unless it belongs to another account or protocol (then a new chat starts).
    2. Else the newest Hailuo answer of this account, if answered on this protocol (see
       :func:`scan_answers`), decides: its chat continues with only the messages after it,
       provided the history before it is unchanged (its ``history_hash``) and only user
       messages follow it.
    3. Else a new chat starts from the whole history.

    Then the bound tools' instructions and tool results are folded in.
    """
    anchor = call.answers.anchor(account, protocol)
    request = _decide(
        call.dicts,
        anchor,
        account=account,
        protocol=protocol,
        override=conversation_from_value(override, protocol),
        use_history=use_history,
    )
    return _with_tools(request, anchor, call.messages, call.dicts, tools=tools, names=call.names)
