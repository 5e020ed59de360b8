"""A LangGraph chatbot with a checkpointer: the recommended way to keep chat state.

The checkpointer stores the messages per ``thread_id``; ChatHailuo reads the server chat id
from the last answer and sends only the new user message to the same server chat.

Run: ``python examples/langgraph_chatbot.py``.
"""

from __future__ import annotations

import asyncio

from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph

from langchain_hailuo import ChatHailuo
from langchain_hailuo.demo import example_model


def build_graph(model: ChatHailuo) -> CompiledStateGraph:
    """A one-node graph: the model answers the conversation so far."""

    async def chatbot(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("chatbot", chatbot)
    graph.add_edge(START, "chatbot")
    return graph.compile(checkpointer=InMemorySaver())


async def main() -> None:
    async with example_model() as model:
        app = build_graph(model)
        config: RunnableConfig = {"configurable": {"thread_id": "tea-chat"}}
        for text in ("I like oolong tea.", "Which tea do I like?"):
            state = await app.ainvoke({"messages": [HumanMessage(text)]}, config)
            answer = state["messages"][-1]
            print(f"you> {text}\nhailuo> {answer.content}")
            print(f"   [chat_id={answer.response_metadata.get('chat_id')}]")


if __name__ == "__main__":
    asyncio.run(main())
