"""Many accounts, many processes: LangGraph workers sharing one account pool through Redis.

Four worker processes each answer a share of the conversations (threads); every turn goes
through a pool of all the accounts whose leases live in Redis, so an account never streams
two answers at once, whichever process asks, and a thread's second turn goes back to the
account (and server chat) of its first.

Run: ``python examples/pool_workers.py [THREADS]`` with ``HAILUO_ACCOUNTS_DIR`` (a folder of
auth files, see ``hailuo login --add NAME``) or ``HAILUO_TOKENS``, and ``HAILUO_POOL_URL``
(``redis://...``). Without accounts it talks to the bundled local emulator (two made-up
accounts), and without a pool URL it starts a private ``redis-server`` on a free loopback
port (Debian: ``apt-get install redis-server``), saying so. Needs
``pip install "langchain-hailuo[examples]"`` (LangGraph and the Redis client).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph

from langchain_hailuo import ChatHailuo
from langchain_hailuo.emulator import Emulator, EmulatorAccount
from langchain_hailuo.emulator.pytest_plugin import serving


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


@contextlib.contextmanager
def emulated_accounts() -> Iterator[None]:
    """Without accounts in the environment: two accounts of the bundled emulator."""
    if os.environ.get("HAILUO_TOKENS") or os.environ.get("HAILUO_ACCOUNTS_DIR"):
        yield
        return
    accounts = [EmulatorAccount("ada"), EmulatorAccount("grace")]
    with serving(Emulator(accounts=accounts)) as emulator:
        print("(no HAILUO_TOKENS / HAILUO_ACCOUNTS_DIR: using the bundled local emulator)")
        os.environ.update(
            HAILUO_TOKENS=",".join(a.token for a in accounts),
            HAILUO_BASE_URL=emulator.agent_url,
            HAILUO_STREAM_URL=emulator.agent_stream_url,
        )
        yield


@contextlib.contextmanager
def redis_pool() -> Iterator[None]:
    """Without ``HAILUO_POOL_URL``: a private ``redis-server`` on a free loopback port."""
    if os.environ.get("HAILUO_POOL_URL"):
        yield
        return
    server = shutil.which("redis-server")
    if server is None:
        sys.exit("Set HAILUO_POOL_URL=redis://..., or install redis-server to run one here.")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    args = [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)  # noqa: S603 - our own argv
    try:
        _wait_for_port(port)
        print(f"(no HAILUO_POOL_URL: using a private redis-server on 127.0.0.1:{port})")
        os.environ["HAILUO_POOL_URL"] = f"redis://127.0.0.1:{port}/0"
        yield
    finally:
        process.terminate()
        process.wait()


def _wait_for_port(port: int) -> None:
    """Return once something accepts connections on the loopback ``port``."""
    deadline = time.monotonic() + 30  # a busy machine starts redis-server in well under that
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        else:
            return


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    threads = [f"user-{i}" for i in range(count)]
    spawn = multiprocessing.get_context("spawn")  # fresh processes: no threads forked
    with emulated_accounts(), redis_pool(), ProcessPoolExecutor(4, mp_context=spawn) as workers:
        # 4 processes (started with the environment set above), one pool of accounts
        for lines in workers.map(work, [threads[i::4] for i in range(4)]):
            print("\n".join(lines))
