"""What the ``hailuo serve`` tests share: a server over the emulator, run in a thread of its own,
and the SDK clients that talk to it (as fixtures too)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from pydantic import SecretStr

from langchain_hailuo._loop import LoopRunner
from langchain_hailuo.chat_models import ChatHailuo
from langchain_hailuo.emulator.app import Emulator
from langchain_hailuo.serve import ConversationStore, ServeConfig, Server

API_KEY = "sk-serve-test-0123456789"
MODEL = "MiniMax-M3"


def call_block(name: str, arguments: dict[str, Any]) -> str:
    """A tool call in the package's call syntax (what a scripted emulator reply says)."""
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


@dataclasses.dataclass
class Served:
    """A running server: its base URL (``…/v1``), the server, and the loop it runs on."""

    base_url: str
    server: Server
    runner: LoopRunner

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:port`` (no ``/v1``)."""
        return self.base_url.removesuffix("/v1")


@contextlib.contextmanager
def serving(
    emulator: Emulator,
    *,
    protocol: str = "agent",
    model: dict[str, Any] | None = None,
    chat: ChatHailuo | None = None,
    store: ConversationStore | None = None,
    **config: Any,
) -> Iterator[Served]:
    """Run ``hailuo serve``'s server over ``emulator`` on 127.0.0.1 while the block runs.

    The server has one API key (:data:`API_KEY`) unless ``api_keys`` is given; it runs on
    its own event loop in a daemon thread (sync SDK clients reach it) and is stopped, and
    the thread ended, on exit. ``chat`` serves a model built by the caller (a pool);
    else one is built from the emulator's default account and ``model``.
    """
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "api_keys": (SecretStr(API_KEY),),
        **config,
    }
    if chat is None:
        chat = ChatHailuo(**{**emulator.model_kwargs(protocol=protocol), **(model or {})})
    server = Server(chat, ServeConfig(**settings), store=store)
    runner = LoopRunner(name="hailuo-serve-test")
    try:
        url = runner.run(server.start())
        yield Served(f"{url}/v1", server, runner)
    finally:
        try:
            runner.run(server.stop())
        finally:
            runner.close()


def served_by(**config: Any) -> Any:
    """A module's ``served`` fixture: :func:`serving` over its emulator with ``config``.

    Assign it in the module (``served = served_by(max_body_bytes=...)``): pytest takes the
    name the module gives it.
    """

    @pytest.fixture(scope="module")
    def served(emulator: Emulator) -> Iterator[Served]:
        with serving(emulator, **config) as running:
            yield running

    return served


def openai_sdk(
    served: Served | Command, *, api_key: str = API_KEY, max_retries: int = 0
) -> openai.OpenAI:
    """The OpenAI SDK on ``served`` (no retries unless ``max_retries`` says so)."""
    return openai.OpenAI(base_url=served.base_url, api_key=api_key, max_retries=max_retries)


def anthropic_sdk(
    served: Served, *, api_key: str = API_KEY, max_retries: int = 0
) -> anthropic.Anthropic:
    """The Anthropic SDK on ``served`` (no retries unless ``max_retries`` says so)."""
    return anthropic.Anthropic(base_url=served.origin, api_key=api_key, max_retries=max_retries)


@pytest.fixture
def openai_client(served: Served, emulator: Emulator) -> Iterator[openai.OpenAI]:
    """An OpenAI SDK client of the module's server; the emulator's faults cleared first."""
    emulator.clear_faults()
    with openai_sdk(served) as sdk:
        yield sdk


@pytest.fixture
def anthropic_client(served: Served, emulator: Emulator) -> Iterator[anthropic.Anthropic]:
    """An Anthropic SDK client of the module's server; the emulator's faults cleared first."""
    emulator.clear_faults()
    with anthropic_sdk(served) as sdk:
        yield sdk


@dataclasses.dataclass
class Command:
    """A running ``hailuo serve`` child process: its first output line and base URL."""

    process: subprocess.Popen[str]
    banner: str

    @property
    def base_url(self) -> str:
        """The ``…/v1`` URL the banner names."""
        return self.banner.split()[2]

    def stop(self) -> tuple[str, str]:
        """SIGINT, then :meth:`wait`."""
        self.process.send_signal(signal.SIGINT)
        return self.wait()

    def wait(self) -> tuple[str, str]:
        """The rest of its standard output and error once it exits (it must exit 0)."""
        out, err = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, err
        return out, err


@contextlib.contextmanager
def serve_command(env: dict[str, str], *flags: str) -> Iterator[Command]:
    """Run the real ``hailuo serve --host 127.0.0.1 --port 0 FLAGS`` with ``env``.

    Yields once its banner is read; killed on exit if still running.
    """
    command = [sys.executable, "-m", "langchain_hailuo.cli", "serve", "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", "0", *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith("Serving on http://127.0.0.1:"), banner
        yield Command(process, banner)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


async def check_lru_bound(store: ConversationStore) -> None:
    """A store bounded to 2 entries drops the least recently *used* one."""
    await store.put("a", {"chat_id": "1"})
    await store.put("b", {"chat_id": "2"})
    assert await store.get("a") == {"chat_id": "1"}  # a is now the most recent
    await store.put("c", {"chat_id": "3"})
    assert await store.get("b") is None
    assert await store.get("a") == {"chat_id": "1"}
    assert await store.get("c") == {"chat_id": "3"}
