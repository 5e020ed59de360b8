"""Conversation state end to end, checked on the emulator's side (what it received).

RunnableWithMessageHistory and a LangGraph checkpointer keep ``response_metadata``, so a
second turn must continue the first turn's chat and post only the new user message; an
edited history must start a new chat; concurrent conversations must never cross.

The emulator runs on its own loop in a daemon thread, so sync calls (and sync calls made
from inside a running event loop) reach it.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.chat_history import InMemoryChatMessageHistory
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph

from langchain_hailuo.emulator.app import Emulator
from tests.integration_tests._chats import PROTOCOLS, Sent, mark, model_for, sent


def is_new_chat(item: Sent, known: set[str]) -> bool:
    """Whether a request started a new chat (v4: chat id 0; agent: a session not seen before)."""
    return item.chat_id is None or item.chat_id not in known


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # RunnableWithMessageHistory & co.
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_runnable_with_message_history_continues_the_chat(
    emulator: Emulator, protocol: str
) -> None:
    model = model_for(emulator, protocol)
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are terse."), MessagesPlaceholder("history"), ("human", "{question}")]
    )
    store: dict[str, InMemoryChatMessageHistory] = {}

    def history(session_id: str) -> InMemoryChatMessageHistory:
        return store.setdefault(session_id, InMemoryChatMessageHistory())

    chain = RunnableWithMessageHistory(
        prompt | model,
        history,
        input_messages_key="question",
        history_messages_key="history",
    )
    config: Any = {"configurable": {"session_id": "s1"}}
    start = mark(emulator)
    first = chain.invoke({"question": "My name is Ada."}, config=config)
    second = chain.invoke({"question": "What is my name?"}, config=config)
    requests = sent(emulator, protocol, start)
    assert len(requests) == 2
    chat_id = first.response_metadata["chat_id"]
    assert requests[1] == Sent(chat_id, "What is my name?")
    assert second.response_metadata["chat_id"] == chat_id
    assert "2 turn(s)" in second.text
    assert first.id != second.id


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_langgraph_checkpointer_continues_the_chat(emulator: Emulator, protocol: str) -> None:
    model = model_for(emulator, protocol)

    def call_model(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("model", call_model)
    builder.add_edge(START, "model")
    graph = builder.compile(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": f"t-{protocol}"}}
    start = mark(emulator)
    out1 = graph.invoke({"messages": [HumanMessage("Hello, I am Bo.")]}, config)
    out2 = graph.invoke({"messages": [HumanMessage("Who am I?")]}, config)
    first, second = out1["messages"][-1], out2["messages"][-1]
    requests = sent(emulator, protocol, start)
    assert requests[1] == Sent(first.response_metadata["chat_id"], "Who am I?")
    # add_messages replaces by id: both answers must survive, in order
    assert [type(m).__name__ for m in out2["messages"]] == [
        "HumanMessage",
        "AIMessage",
        "HumanMessage",
        "AIMessage",
    ]
    assert second.response_metadata["chat_id"] == first.response_metadata["chat_id"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_edited_history_starts_a_new_chat(emulator: Emulator, protocol: str) -> None:
    model = model_for(emulator, protocol)
    start = mark(emulator)
    first = model.invoke([SystemMessage("Be brief."), HumanMessage("One")])
    known = {first.response_metadata["chat_id"]}
    # a different system prompt before the answer: the server's chat no longer matches
    edited = model.invoke(
        [SystemMessage("Be verbose."), HumanMessage("One"), first, HumanMessage("Two")]
    )
    requests = sent(emulator, protocol, start)
    assert is_new_chat(requests[1], known)
    assert "System: Be verbose." in requests[1].text
    assert "User: Two" in requests[1].text
    assert edited.response_metadata["chat_id"] != first.response_metadata["chat_id"]
    # trimming the history before the answer also starts over
    trimmed = model.invoke([HumanMessage("Two"), edited, HumanMessage("Three")])
    assert trimmed.response_metadata["chat_id"] != edited.response_metadata["chat_id"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_abatch_keeps_four_conversations_apart(emulator: Emulator, protocol: str) -> None:
    model = model_for(emulator, protocol)
    firsts = await model.abatch([f"I am user {i}." for i in range(4)])
    chats = [m.response_metadata["chat_id"] for m in firsts]
    assert len(set(chats)) == 4
    start = mark(emulator)
    follow: list[Any] = [[f"I am user {i}.", firsts[i], f"Who is {i}?"] for i in range(4)]
    seconds = await model.abatch(follow)
    requests = sent(emulator, protocol, start)
    assert sorted((r.chat_id, r.text) for r in requests) == sorted(
        (chats[i], f"Who is {i}?") for i in range(4)
    )
    for i in range(4):
        assert seconds[i].response_metadata["chat_id"] == chats[i]
        assert f"You said: Who is {i}?" in seconds[i].text


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_sync_invoke_inside_a_running_loop(emulator: Emulator, protocol: str) -> None:
    model = model_for(emulator, protocol)
    first = model.invoke("Hello from a coroutine.")  # blocks this loop, runs on the private one
    second = await model.ainvoke(["Hello from a coroutine.", first, "Again."])
    third = model.invoke(["Hello from a coroutine.", first, "Again.", second, "Once more."])
    assert (
        first.response_metadata["chat_id"]
        == second.response_metadata["chat_id"]
        == third.response_metadata["chat_id"]
    )
    chunks = [chunk.text for chunk in model.stream("Streamed inside a loop.")]
    assert "".join(chunks).startswith("You said: Streamed inside a loop.")
    await model.aclose()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_stream_metadata_and_stop_sequence(emulator: Emulator, protocol: str) -> None:
    model = model_for(emulator, protocol)
    total: Any = None
    for chunk in model.stream("Hello", stop=["chat has"]):
        total = chunk if total is None else total + chunk
    assert isinstance(total.content, str)
    assert total.content == "You said: Hello. This "
    meta = total.response_metadata
    assert meta["finish_reason"] == "stop"
    assert meta["protocol"] == protocol
    assert meta["model_provider"] == "hailuo"
    assert meta["account"].startswith("acct-")
    # string metadata was on one chunk only: the summed chat id is a real one, not doubled
    known = emulator.v4.chats if protocol == "v4" else emulator.agent.sessions
    assert meta["chat_id"] in known
    assert len(meta["history_hash"]) == 16


def test_another_accounts_chat_is_not_continued(emulator: Emulator) -> None:
    model = model_for(emulator, "v4")
    first = model.invoke("Mine.")
    other = AIMessage(
        first.text,
        response_metadata={**first.response_metadata, "account": "acct-000000000000"},
    )
    start = mark(emulator)
    model.invoke(["Mine.", other, "Next."])
    assert sent(emulator, "v4", start)[0].chat_id is None


def test_agent_reasoning_streams_apart_from_the_answer(emulator: Emulator) -> None:
    model = model_for(emulator, "agent", reasoning=True)
    total: Any = None
    for chunk in model.stream("Think first."):
        assert "reasoning_content" not in chunk.additional_kwargs or not chunk.content
        total = chunk if total is None else total + chunk
    assert total.content.startswith("You said: Think first.")
    assert total.additional_kwargs["reasoning_content"]
    assert total.content_blocks[0]["type"] == "reasoning"
    assert emulator.requests_to("chat")[-1].body["model"]["reasoning"] is True
