"""Many accounts, many processes: LangGraph workers sharing one account pool through Redis.

Four worker processes each answer a share of the conversations (threads); every turn goes
through a pool of all the accounts whose leases live in Redis, so an account never streams
two answers at once, whichever process asks, and a thread's second turn goes back to the
account (and server chat) of its first.

Run: ``python examples/pool_workers.py [THREADS]`` with ``HAILUO_ACCOUNTS_DIR`` (a folder of
auth files, see ``hailuo login --add NAME``) or ``HAILUO_TOKENS``, and ``HAILUO_POOL_URL``
(``redis://...``). Without accounts it talks to the bundled local emulator (two made-up
accounts), and without a pool URL it starts a private ``redis-server`` on a free loopback
port (Debian: ``apt-get install redis-server``), saying so (``example_pool``). Needs
``pip install "langchain-hailuo[examples]"`` (LangGraph and the Redis client).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph

from langchain_hailuo import ChatHailuo
from langchain_hailuo.demo import example_pool


def build_graph(model: ChatHailuo) -> CompiledStateGraph:
    """A one-node graph: the model answers the conversation so far."""

    async def chat(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState).add_node("chat", chat).add_edge(START, "chat")
    return graph.compile(checkpointer=InMemorySaver())


async def answer_threads(thread_ids: list[str]) -> list[str]:
    """Two turns of each thread, all threads at once; one line per thread."""
    model = ChatHailuo()  # HAILUO_TOKENS / HAILUO_ACCOUNTS_DIR, shared via HAILUO_POOL_URL
    graph = build_graph(model)

    async def one(thread_id: str) -> str:
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        for question in ("Hello!", "And a second question?"):  # same chat, same account
            state = await graph.ainvoke({"messages": [HumanMessage(question)]}, config)
        answers = [m for m in state["messages"] if isinstance(m, AIMessage)]
        where = {(m.response_metadata["account"], m.response_metadata["chat_id"]) for m in answers}
        return f"{thread_id}: {len(answers)} answers, chat(s) {sorted(where)}"

    try:
        return await asyncio.gather(*(one(t) for t in thread_ids))
    finally:
        await model.aclose()


def work(thread_ids: list[str]) -> list[str]:
    """One worker process's share."""
    return asyncio.run(answer_threads(thread_ids))


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    threads = [f"user-{i}" for i in range(count)]
    spawn = multiprocessing.get_context("spawn")  # fresh processes: no threads forked
    with example_pool(), ProcessPoolExecutor(4, mp_context=spawn) as workers:
        # 4 processes (started with the environment set above), one pool of accounts
        for lines in workers.map(work, [threads[i::4] for i in range(4)]):
            print("\n".join(lines))
