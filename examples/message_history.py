"""A chat that keeps its context with ``RunnableWithMessageHistory``.

langchain-core 1.6.4+ deprecates ``RunnableWithMessageHistory`` and
``InMemoryChatMessageHistory`` in favour of LangGraph persistence (see
``examples/langgraph_chatbot.py``); many applications still use them, and ChatHailuo
supports them: each answer stored in the history carries the server chat id, so the second
turn sends only the new message to the same server chat.

Run: ``python examples/message_history.py``.
"""

from __future__ import annotations

import asyncio
import warnings

from langchain_core.chat_history import InMemoryChatMessageHistory
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.history import RunnableWithMessageHistory

from langchain_hailuo.demo import example_model

STORES: dict[str, InMemoryChatMessageHistory] = {}


def get_history(session_id: str) -> InMemoryChatMessageHistory:
    """One in-memory history per session id."""
    return STORES.setdefault(session_id, InMemoryChatMessageHistory())


async def main() -> None:
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the deprecation above
    async with example_model() as model:
        prompt = ChatPromptTemplate.from_messages(
            [MessagesPlaceholder("history"), ("human", "{question}")]
        )
        chat = RunnableWithMessageHistory(
            prompt | model,
            get_history,
            input_messages_key="question",
            history_messages_key="history",
        )
        config: RunnableConfig = {"configurable": {"session_id": "ada"}}
        for question in ("Hi, I'm Ada.", "What's my name?"):
            answer = await chat.ainvoke({"question": question}, config=config)
            print(f"you> {question}\nhailuo> {answer.content}")
            print(f"   [chat_id={answer.response_metadata.get('chat_id')}]")


if __name__ == "__main__":
    asyncio.run(main())
