"""Pure helpers of ChatHailuo: message mapping, history hash, conversation choice, stop strings."""

from __future__ import annotations

import random

import pytest
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from langchain_hailuo import _turns
from langchain_hailuo._answer import StopSequenceFilter
from langchain_hailuo._messages import (
    content_text,
    conversation_from_value,
    history_hash,
    message_to_dict,
    to_message_dicts,
)
from langchain_hailuo._tool_turns import TurnTools
from langchain_hailuo._turns import RenderedCall, scan_answers
from langchain_hailuo.errors import HailuoUnsupportedContentError
from langchain_hailuo.types import Conversation, MessageDict

ACCOUNT = "acct-aaaaaaaaaaaa"
OTHER = "acct-bbbbbbbbbbbb"


# --------------------------------------------------------------------------- mapping


def test_roles_map_to_provider_dicts() -> None:
    msgs: list[BaseMessage] = [
        SystemMessage("Be brief."),
        HumanMessage("Hi"),
        AIMessage("Hello!"),
        ChatMessage(role="developer", content="Rules"),
        ChatMessage(role="assistant", content="ok"),
    ]
    assert to_message_dicts(msgs) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "system", "content": "Rules"},
        {"role": "assistant", "content": "ok"},
    ]


def test_human_name_prefixes_the_text() -> None:
    assert message_to_dict(HumanMessage("hi there", name="Ann")) == {
        "role": "user",
        "content": "Ann: hi there",
    }
    # a blank message gets no dangling "Ann: "
    assert message_to_dict(HumanMessage("", name="Ann"))["content"] == ""


def test_multi_part_text_content_is_joined() -> None:
    msg = HumanMessage(content=["Hello ", {"type": "text", "text": "world"}, "!"])
    assert message_to_dict(msg)["content"] == "Hello world!"


def test_ai_reasoning_and_tool_call_blocks_are_not_sent_back() -> None:
    msg = AIMessage(
        content=[
            {"type": "reasoning", "reasoning": "thinking..."},
            {"type": "text", "text": "Answer"},
        ]
    )
    assert message_to_dict(msg) == {"role": "assistant", "content": "Answer"}


@pytest.mark.parametrize(
    "block",
    [
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
        {"type": "image", "url": "https://x/y.png"},
        {"type": "audio", "base64": "AAAA", "mime_type": "audio/wav"},
        {"type": "file", "base64": "AAAA", "mime_type": "application/pdf"},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
    ],
)
def test_unsupported_blocks_name_their_type(block: dict) -> None:
    with pytest.raises(HailuoUnsupportedContentError) as info:
        message_to_dict(HumanMessage(content=[{"type": "text", "text": "see"}, block]))
    assert repr(block["type"]) in str(info.value)


def test_reasoning_block_in_a_user_message_is_rejected() -> None:
    with pytest.raises(HailuoUnsupportedContentError, match="'reasoning'"):
        content_text([{"type": "reasoning", "reasoning": "x"}])


def test_function_message_is_a_clear_error() -> None:
    with pytest.raises(HailuoUnsupportedContentError, match="function calling"):
        message_to_dict(FunctionMessage(name="f", content="42"))


def test_tool_results_are_rendered_as_labelled_blocks_named_by_their_call() -> None:
    call = AIMessage("", tool_calls=[{"name": "lookup", "args": {}, "id": "c"}])
    dicts = to_message_dicts([HumanMessage("q"), call, ToolMessage("42", tool_call_id="c")])
    assert dicts[2]["role"] == "user"
    assert '<tool_result id="c" name="lookup">\n42\n</tool_result>' in dicts[2]["content"]
    assert '"name": "lookup"' in dicts[1]["content"]


def test_unknown_chat_role_is_rejected() -> None:
    with pytest.raises(ValueError, match="role 'critic'"):
        message_to_dict(ChatMessage(role="critic", content="x"))


def test_empty_list_and_no_text_are_value_errors() -> None:
    with pytest.raises(ValueError, match="at least one message"):
        to_message_dicts([])
    with pytest.raises(ValueError, match="Nothing to send"):
        to_message_dicts([HumanMessage("   "), SystemMessage("")])


# --------------------------------------------------------------------------- history hash


def test_history_hash_is_short_stable_and_role_sensitive() -> None:
    a: list[MessageDict] = [{"role": "user", "content": "hi"}]
    assert history_hash(a) == history_hash([{"role": "user", "content": " hi \n"}])
    assert len(history_hash(a)) == 16
    assert history_hash(a) != history_hash([{"role": "system", "content": "hi"}])
    # blank messages do not count (they are dropped when folding too)
    assert history_hash(a) == history_hash([{"role": "system", "content": ""}, *a])


# --------------------------------------------------------------------------- conversation choice


def answer(text: str, chat_id: str, prompt: list[BaseMessage], **meta: object) -> AIMessage:
    """An AIMessage as ChatHailuo would return it for ``prompt``."""
    metadata = {
        "model_provider": "hailuo",
        "chat_id": chat_id,
        "character_id": 1,
        "protocol": "agent",
        "account": ACCOUNT,
        "history_hash": history_hash(to_message_dicts(prompt)),
        **meta,
    }
    return AIMessage(text, response_metadata=metadata, id=f"hailuo-{chat_id}-{len(prompt)}")


def plan(messages: list[BaseMessage], **kwargs: object):  # type: ignore[no-untyped-def]
    options: dict = {"account": ACCOUNT, "protocol": "agent", **kwargs}
    call = RenderedCall(messages, to_message_dicts(messages), {})
    return _turns.plan(call, tools=TurnTools.from_kwargs({}), **options)


def test_no_hailuo_answer_starts_a_new_chat_from_everything() -> None:
    msgs: list[BaseMessage] = [HumanMessage("hi"), AIMessage("plain AI"), HumanMessage("again")]
    result = plan(msgs)
    assert result.conversation is None
    assert result.reason == "new"
    assert result.messages == result.full_history == to_message_dicts(msgs)
    assert result.history_hash == history_hash(to_message_dicts(msgs))


def test_newest_matching_answer_is_continued_with_only_newer_messages() -> None:
    first: list[BaseMessage] = [SystemMessage("sys"), HumanMessage("one")]
    a1 = answer("A1", "chat-1", first)
    second: list[BaseMessage] = [*first, a1, HumanMessage("two")]
    a2 = answer("A2", "chat-1", second)
    msgs: list[BaseMessage] = [*second, a2, HumanMessage("three"), HumanMessage("four")]
    result = plan(msgs)
    assert result.reason == "continued"
    assert result.conversation is not None
    assert result.conversation.chatID == "chat-1"
    assert result.messages == [
        {"role": "user", "content": "three"},
        {"role": "user", "content": "four"},
    ]
    assert result.full_history == to_message_dicts(msgs)


@pytest.mark.parametrize(
    "edit",
    ["trimmed", "summarised", "system prompt changed"],
)
def test_edited_history_before_the_answer_starts_a_new_chat(edit: str) -> None:
    first: list[BaseMessage] = [SystemMessage("sys"), HumanMessage("one")]
    a1 = answer("A1", "chat-1", first)
    second: list[BaseMessage] = [*first, a1, HumanMessage("two")]
    a2 = answer("A2", "chat-1", second)
    edited: list[BaseMessage] = {
        "trimmed": [HumanMessage("two"), a2, HumanMessage("three")],
        "summarised": [
            SystemMessage("Summary: one, A1"),
            HumanMessage("two"),
            a2,
            HumanMessage("3"),
        ],
        "system prompt changed": [
            SystemMessage("other"),
            HumanMessage("one"),
            a1,
            HumanMessage("two"),
            a2,
            HumanMessage("three"),
        ],
    }[edit]
    result = plan(edited)
    assert result.reason == "edited"
    assert result.conversation is None
    assert result.messages == to_message_dicts(edited)


def test_answer_without_a_recorded_hash_is_trusted() -> None:
    a1 = answer("A1", "chat-1", [HumanMessage("one")])
    del a1.response_metadata["history_hash"]
    result = plan([HumanMessage("edited"), a1, HumanMessage("two")])
    assert result.reason == "continued"


def test_foreign_account_and_other_protocol_answers_are_skipped() -> None:
    prompt: list[BaseMessage] = [HumanMessage("one")]
    mine = answer("mine", "chat-mine", prompt)
    theirs = answer("theirs", "chat-theirs", [*prompt, mine, HumanMessage("x")], account=OTHER)
    msgs: list[BaseMessage] = [*prompt, mine, HumanMessage("x"), theirs, HumanMessage("y")]
    anchor = scan_answers(msgs).anchor(ACCOUNT, "agent")
    assert anchor is not None
    assert anchor.conversation.chatID == "chat-mine"
    assert scan_answers(msgs).anchor(ACCOUNT, "v4") is None
    # only the foreign answer: a new chat
    result = plan([HumanMessage("one"), theirs, HumanMessage("y")])
    assert result.conversation is None


def test_non_user_messages_after_the_answer_start_a_new_chat() -> None:
    prompt: list[BaseMessage] = [HumanMessage("one")]
    a1 = answer("A1", "chat-1", prompt)
    result = plan([*prompt, a1, HumanMessage("two"), AIMessage("other model"), HumanMessage("3")])
    assert result.reason == "not-user"
    assert result.conversation is None


def test_history_ending_with_the_answer_has_nothing_to_send() -> None:
    prompt: list[BaseMessage] = [HumanMessage("one")]
    with pytest.raises(ValueError, match="Add a user message"):
        plan([*prompt, answer("A1", "chat-1", prompt)])


def test_override_wins_over_the_history() -> None:
    prompt: list[BaseMessage] = [HumanMessage("one")]
    a1 = answer("A1", "chat-1", prompt)
    msgs: list[BaseMessage] = [*prompt, a1, HumanMessage("two")]
    pinned = Conversation(chatID="chat-9", account=ACCOUNT, protocol="agent")
    result = plan(msgs, override=pinned)
    assert result.reason == "override"
    assert result.conversation == pinned
    assert result.messages == to_message_dicts(msgs)  # the provider sends the trailing user run
    same = plan(msgs, override=Conversation(chatID="chat-1", account=ACCOUNT, protocol="agent"))
    assert same.messages == [{"role": "user", "content": "two"}]


def test_override_of_another_account_or_protocol_is_not_continued() -> None:
    msgs: list[BaseMessage] = [HumanMessage("one")]
    foreign = Conversation(chatID="chat-9", account=OTHER, protocol="agent")
    assert plan(msgs, override=foreign).conversation is None
    other_protocol = Conversation(chatID="chat-9", account=ACCOUNT, protocol="v4")
    assert plan(msgs, override=other_protocol).reason == "foreign"


def test_history_reuse_can_be_switched_off() -> None:
    prompt: list[BaseMessage] = [HumanMessage("one")]
    msgs: list[BaseMessage] = [*prompt, answer("A1", "chat-1", prompt), HumanMessage("two")]
    result = plan(msgs, use_history=False)
    assert result.conversation is None
    assert result.reason == "no-history-reuse"


def test_conversation_from_value_accepts_the_usual_forms() -> None:
    conv = Conversation(chatID="c1", account=ACCOUNT, protocol="agent")
    assert conversation_from_value(conv, "v4") is conv
    from_str = conversation_from_value("c2", "agent")
    assert from_str is not None
    assert (from_str.chatID, from_str.protocol, from_str.account) == ("c2", "agent", None)
    from_meta = conversation_from_value(
        {"chat_id": "c3", "character_id": 7, "account": ACCOUNT}, "agent"
    )
    assert from_meta == Conversation(chatID="c3", characterID=7, account=ACCOUNT, protocol="agent")
    assert conversation_from_value(conv.get_dict(), "v4") == conv
    assert conversation_from_value(None, "agent") is None
    assert conversation_from_value({}, "agent") is None
    with pytest.raises(TypeError):
        conversation_from_value(3.5, "agent")


# --------------------------------------------------------------------------- stop strings


def run_filter(stops: list[str], deltas: list[str]) -> tuple[list[str], bool]:
    f = StopSequenceFilter(stops)
    out = [f.feed(d) for d in deltas]
    out.append(f.flush())
    return out, f.stopped


def test_stop_without_stops_passes_text_through() -> None:
    assert run_filter([], ["a", "b"]) == (["a", "b", ""], False)
    assert StopSequenceFilter(["", ""]).stops == ()


def test_stop_in_one_delta() -> None:
    out, stopped = run_filter(["END"], ["Hello END world", "more"])
    assert out == ["Hello ", "", ""]
    assert stopped


def test_stop_split_across_deltas_holds_back_only_the_possible_prefix() -> None:
    out, stopped = run_filter(["END"], ["Hello E", "N", "D tail"])
    assert out == ["Hello ", "", "", ""]
    assert stopped


def test_false_alarm_prefix_is_released() -> None:
    out, stopped = run_filter(["END"], ["Hello E", "xit EN", "o"])
    assert "".join(out) == "Hello Exit ENo"
    assert out[0] == "Hello "
    assert not stopped


def test_held_tail_is_flushed_at_the_end() -> None:
    out, stopped = run_filter(["</stop>"], ["answer </st"])
    assert out == ["answer ", "</st"]
    assert not stopped


def test_earliest_of_several_stops_wins() -> None:
    out, _ = run_filter(["world", "lo w"], ["hello world"])
    assert out[0] == "hel"


def test_overlapping_prefix_keeps_the_longest_candidate() -> None:
    # "aab": after "aa" both "a" and "aa" are prefixes; the longer must be held.
    out, stopped = run_filter(["aab"], ["xaa", "b!"])
    assert out == ["x", "", ""]
    assert stopped


@pytest.mark.parametrize("seed", range(30))
def test_random_splits_match_a_one_shot_cut(seed: int) -> None:
    rng = random.Random(seed)
    alphabet = "ab\n<>/"
    text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
    stops = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4))) for _ in range(2)]
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    expected = text[: min(cuts)] if cuts else text
    pieces, i = [], 0
    while i < len(text):
        j = i + rng.randint(1, 5)
        pieces.append(text[i:j])
        i = j
    out, stopped = run_filter(stops, pieces)
    assert "".join(out) == expected
    assert stopped == bool(cuts)
