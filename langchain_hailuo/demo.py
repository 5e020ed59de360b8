"""The README's main command: a streamed two-turn LCEL chat that keeps its context.

``python -m langchain_hailuo.demo`` (``make demo``) talks to MiniMax when credentials are
set and otherwise to the bundled emulator, saying which. The second turn continues the
first's server chat: only the new question is sent, and both print the same chat id.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, TextIO

from langchain_core.messages import AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.ai import add_ai_message_chunks
from langchain_core.messages.utils import message_chunk_to_message
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

from langchain_hailuo.auth import AuthStore
from langchain_hailuo.chat_models import ChatHailuo

__all__ = ["example_model", "example_pool", "has_credentials", "main", "run_demo"]

QUESTIONS = (
    "My name is Ada and I like green tea. Say hello in one sentence.",
    "What is my name, and what do I like to drink?",
)


def has_credentials(env: dict[str, str] | None = None) -> bool:
    """Whether ``HAILUO_TOKEN`` or a saved login exists (device pairs alone do not count)."""
    values = os.environ if env is None else env
    if values.get("HAILUO_TOKEN"):
        return True
    return AuthStore(env=values).load() is not None


@contextlib.asynccontextmanager
async def example_model(
    out: TextIO | None = None, *, use_emulator: bool | None = None, **model_kwargs: Any
) -> AsyncIterator[ChatHailuo]:
    """A ``ChatHailuo`` for the demo and examples: real with credentials, else on the emulator.

    ``use_emulator`` forces one (``None``: :func:`has_credentials` decides); the choice is said
    on ``out``; its sessions (and the emulator) close on exit.
    """
    out = sys.stdout if out is None else out
    emulate = not has_credentials() if use_emulator is None else use_emulator
    async with contextlib.AsyncExitStack() as stack:
        kwargs: dict[str, Any] = {}
        if emulate:
            from langchain_hailuo.emulator import Emulator  # noqa: PLC0415 - only when needed

            emulator = await stack.enter_async_context(Emulator(chunk_delay=0.01))
            kwargs = emulator.model_kwargs(protocol="agent")
            print(
                "No Hailuo credentials found (HAILUO_TOKEN or `hailuo login`): "
                f"using the bundled local emulator at {emulator.agent_url}.",
                file=out,
            )
        else:
            print("Using your Hailuo / MiniMax credentials against the real service.", file=out)
        model = ChatHailuo(**kwargs, **model_kwargs)
        stack.push_async_callback(model.aclose)
        yield model


@contextlib.contextmanager
def example_pool(out: TextIO | None = None) -> Iterator[None]:
    """The pool examples' setting in ``os.environ``: real accounts and Redis when named.

    Without ``HAILUO_TOKENS`` / ``HAILUO_ACCOUNTS_DIR`` the emulator serves two made-up
    accounts; without ``HAILUO_POOL_URL`` a private ``redis-server`` runs on a loopback port.
    Each is said on ``out`` and stopped on exit.
    """
    out = sys.stdout if out is None else out
    with _pool_accounts(out), _pool_redis(out):
        yield


@contextlib.contextmanager
def _pool_accounts(out: TextIO) -> Iterator[None]:
    """Two emulator accounts, unless the environment names a pool's accounts."""
    if os.environ.get("HAILUO_TOKENS") or os.environ.get("HAILUO_ACCOUNTS_DIR"):
        yield
        return
    from langchain_hailuo.emulator import Emulator, EmulatorAccount  # noqa: PLC0415
    from langchain_hailuo.emulator.pytest_plugin import serving  # noqa: PLC0415

    accounts = [EmulatorAccount("ada"), EmulatorAccount("grace")]
    with (
        serving(Emulator(accounts=accounts)) as emulator,
        _environment(
            HAILUO_TOKENS=",".join(account.token for account in accounts),
            HAILUO_BASE_URL=emulator.agent_url,
            HAILUO_STREAM_URL=emulator.agent_stream_url,
        ),
    ):
        print("(no HAILUO_TOKENS or HAILUO_ACCOUNTS_DIR: using the local emulator)", file=out)
        yield


@contextlib.contextmanager
def _pool_redis(out: TextIO) -> Iterator[None]:
    """A private ``redis-server`` on a free loopback port, unless ``HAILUO_POOL_URL`` is set."""
    if os.environ.get("HAILUO_POOL_URL"):
        yield
        return
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("Set HAILUO_POOL_URL=redis://..., or install redis-server to run one.")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    args = [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)  # noqa: S603 - our own argv
    try:
        _wait_for_port(port)
        with _environment(HAILUO_POOL_URL=f"redis://127.0.0.1:{port}/0"):
            print(f"(no HAILUO_POOL_URL: using a private redis-server on port {port})", file=out)
            yield
    finally:
        process.terminate()
        process.wait()


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the block, then restore them."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _wait_for_port(port: int) -> None:
    """Return once something accepts connections on the loopback ``port``."""
    deadline = time.monotonic() + 30  # redis-server starts in well under that, even loaded
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        else:
            return


async def run_demo(out: TextIO, *, use_emulator: bool | None = None) -> int:
    """Stream two turns of an LCEL chat (prompt | model) with history; returns the exit code."""
    async with example_model(out, use_emulator=use_emulator) as model:
        prompt = ChatPromptTemplate.from_messages(
            [MessagesPlaceholder("history"), ("human", "{question}")]
        )
        chain = prompt | model
        history: list[BaseMessage] = []
        for question in QUESTIONS:
            print(f"\nyou> {question}\nhailuo> ", end="", file=out, flush=True)
            answer: AIMessageChunk | None = None
            async for chunk in chain.astream({"history": history, "question": question}):
                if not isinstance(chunk, AIMessageChunk):  # pragma: no cover - streams chunks
                    continue
                print(chunk.text, end="", file=out, flush=True)
                answer = chunk if answer is None else add_ai_message_chunks(answer, chunk)
            if answer is None:
                print("(no answer)", file=out)
                return 1
            message = message_chunk_to_message(answer)
            history += [HumanMessage(question), message]
            meta = message.response_metadata
            print(
                f"\n   [protocol={meta.get('protocol')} chat_id={meta.get('chat_id')} "
                f"model={meta.get('model_name')}]",
                file=out,
                flush=True,
            )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; ``--emulator`` forces the emulator even with credentials."""
    parser = argparse.ArgumentParser(prog="python -m langchain_hailuo.demo", description=__doc__)
    parser.add_argument("--emulator", action="store_true", help="always use the local emulator")
    args = parser.parse_args(argv)
    return asyncio.run(run_demo(sys.stdout, use_emulator=True if args.emulator else None))


if __name__ == "__main__":
    sys.exit(main())
