"""What the ``hailuo serve`` tests share: a server over the emulator, run in a thread of its own."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

from pydantic import SecretStr

from langchain_hailuo._loop import LoopRunner
from langchain_hailuo.chat_models import ChatHailuo
from langchain_hailuo.emulator.app import Emulator
from langchain_hailuo.serve import ConversationStore, ServeConfig, Server

API_KEY = "sk-serve-test-0123456789"
MODEL = "MiniMax-M3"


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
