"""Prompt folding shared by both stacks (protocol notes v4 §1.5)."""

from __future__ import annotations

from typing import Any

import pytest

from langchain_hailuo._prompt import format_prompt, get_last_user_message, message_text
from langchain_hailuo.errors import HailuoUnsupportedContentError


def m(role: str, content: Any) -> dict[str, Any]:
    return {"role": role, "content": content}


def test_single_message_is_sent_unchanged() -> None:
    assert format_prompt([m("user", "  Hello\nthere  ")]) == "  Hello\nthere  "
    assert format_prompt([m("system", "Only a system prompt")]) == "Only a system prompt"


def test_several_messages_are_folded_with_roles() -> None:
    messages = [
        m("system", "Be brief."),
        m("user", "Hi"),
        m("assistant", "Hello!"),
        m("user", "How are you?"),
    ]
    assert format_prompt(messages) == (
        "System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: How are you?\nAssistant:"
    )


def test_empty_contents_are_dropped_and_roles_mapped() -> None:
    messages = [
        m("developer", "Rules"),
        m("human", "q"),
        m("assistant", "  "),
        m("ai", ""),
        m("tool", "42"),
        m("user", "again"),
    ]
    assert format_prompt(messages) == "System: Rules\nUser: q\nTool: 42\nUser: again\nAssistant:"


def test_no_messages() -> None:
    assert format_prompt([]) == ""
    assert get_last_user_message([]) == ""


def test_last_user_messages() -> None:
    messages = [
        m("user", "old"),
        m("assistant", "answer"),
        m("user", " first "),
        m("user", ""),
        m("user", "second"),
        m("assistant", "trailing"),
        m("system", "trailing too"),
    ]
    assert get_last_user_message(messages) == "first\nsecond"


def test_last_user_message_without_user() -> None:
    assert get_last_user_message([m("assistant", "a"), m("system", "s")]) == ""


def test_text_parts() -> None:
    parts = [{"type": "text", "text": "Hello "}, "world", {"type": "text", "text": None}]
    assert message_text(parts) == "Hello world"
    assert format_prompt([m("user", parts)]) == "Hello world"
    assert message_text(None) == ""


@pytest.mark.parametrize(
    "part", [{"type": "image_url", "image_url": {"url": "data:..."}}, 42, b"raw"]
)
def test_non_text_parts_are_refused(part: Any) -> None:
    with pytest.raises(HailuoUnsupportedContentError, match="text only"):
        format_prompt([m("user", [{"type": "text", "text": "see"}, part])])
