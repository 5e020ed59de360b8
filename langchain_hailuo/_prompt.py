"""Folding a message list into the one prompt a web chat takes.

The web chats take one text per turn and keep the history server-side. A new chat gets the
whole history folded into one prompt (:func:`format_prompt`); a continued chat gets only
the user's newest message(s) (:func:`get_last_user_message`). Both stacks use these rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langchain_hailuo.errors import HailuoUnsupportedContentError

__all__ = ["format_prompt", "get_last_user_message", "last_user_run", "message_text"]

_ROLE_LABELS = {
    "system": "System",
    "developer": "System",
    "user": "User",
    "human": "User",
    "assistant": "Assistant",
    "ai": "Assistant",
}


def message_text(content: Any) -> str:
    """The text of a message's content: a string, or OpenAI-style text parts.

    Args:
        content: A string, or a list of strings and ``{"type": "text", "text": ...}`` parts.

    Returns:
        The text (parts joined with nothing between them, as LangChain does).

    Raises:
        HailuoUnsupportedContentError: A part is not text (image, audio, file…).
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Iterable) and not isinstance(content, Mapping | bytes):
        return "".join(_part_text(part) for part in content)
    return _part_text(content)


def _part_text(part: Any) -> str:
    """The text of one content part."""
    if isinstance(part, str):
        return part
    if isinstance(part, Mapping) and part.get("type") == "text":
        return str(part.get("text") or "")
    kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
    raise HailuoUnsupportedContentError(
        f"The web chat takes text only; a message holds a {kind!r} part. "
        "Remove it or describe it in words."
    )


def _role_label(role: str) -> str:
    """``System`` / ``User`` / ``Assistant`` (other roles capitalised)."""
    return _ROLE_LABELS.get(role.lower(), role.capitalize())


def format_prompt(messages: Sequence[Mapping[str, Any]]) -> str:
    """Fold a whole conversation into one prompt for a new chat.

    One message is sent as its content, unchanged. Several become ``Role: content`` lines
    (roles ``System``, ``User``, ``Assistant``; empty or blank contents dropped) followed by
    ``Assistant:`` on its own line, so the model answers as the assistant.

    Args:
        messages: Dicts with ``role`` and ``content``.

    Returns:
        The prompt (empty when there are no messages).

    Example:
        ```python
        print(
            format_prompt(
                [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi"},
                ]
            )
        )
        # System: Be brief.
        # User: Hi
        # Assistant:
        ```
    """
    if not messages:
        return ""
    if len(messages) == 1:
        return message_text(messages[0].get("content"))
    lines = []
    for message in messages:
        text = message_text(message.get("content"))
        if text.strip():
            lines.append(f"{_role_label(str(message.get('role', 'user')))}: {text}")
    return "\n".join(lines) + "\nAssistant:"


def get_last_user_message(messages: Sequence[Mapping[str, Any]]) -> str:
    """The user's newest message(s), for continuing a chat the server already holds.

    Trailing non-user messages are skipped; then the run of consecutive user messages
    before them is collected (each stripped, blank ones dropped) and joined with newlines, in order.

    Args:
        messages: Dicts with ``role`` and ``content``.

    Returns:
        The text to send (empty when there is no user message).
    """
    run = (message_text(message.get("content")).strip() for message in last_user_run(messages))
    return "\n".join(text for text in run if text)


def last_user_run(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The messages :func:`get_last_user_message` sends: the newest run of user messages.

    Args:
        messages: Dicts with ``role`` and ``content``.

    Returns:
        The run, in order (empty when there is no user message).
    """
    end = len(messages)
    while end and not _is_user(messages[end - 1]):
        end -= 1
    start = end
    while start and _is_user(messages[start - 1]):
        start -= 1
    return list(messages[start:end])


def _is_user(message: Mapping[str, Any]) -> bool:
    """Whether a message is the user's."""
    return str(message.get("role", "")).lower() in {"user", "human"}
