"""What the emulator-backed ChatHailuo tests share: a model on the emulator, the chats it posted."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from langchain_hailuo.chat_models import ChatHailuo
from langchain_hailuo.emulator.app import Emulator

PROTOCOLS = ["agent", "v4"]


@dataclass(frozen=True)
class Sent:
    """One chat message the emulator received: the chat it went to and its text."""

    chat_id: str | None
    text: str


def sent(emu: Emulator, protocol: str, start: int = 0) -> list[Sent]:
    """The chat messages received over ``protocol`` since ``start`` (``None``: a new v4 chat)."""
    out: list[Sent] = []
    for request in emu.requests_to("chat")[start:]:
        if request.protocol != protocol:
            continue
        body = request.body or {}
        if protocol == "v4":
            chat = body.get("chatID")
            out.append(Sent(None if chat in {None, "0"} else str(chat), body["msgContent"]))
        else:
            chat = request.path.split("/session/")[1].split("/")[0]
            out.append(Sent(chat, body["content"]))
    return out


def mark(emu: Emulator) -> int:
    """How many chat requests the emulator has received so far."""
    return len(emu.requests_to("chat"))


def model_for(emu: Emulator, protocol: str, **kwargs: Any) -> ChatHailuo:
    """A ChatHailuo pointed at the emulator (``kwargs`` override its settings)."""
    return ChatHailuo(**{**emu.model_kwargs(protocol=protocol), **kwargs})


@contextmanager
def frames_apart(emu: Emulator, seconds: float = 0.05) -> Iterator[None]:
    """Stream frames ``seconds`` apart, so a client reads them one by one, as in pieces.

    Deltas that reach the client in one read are one chunk (ChatHailuo makes one chunk per
    network read); a test that wants an answer in several chunks spaces the frames.
    """
    before = (emu.agent.chunk_delay, emu.v4.chunk_delay)
    emu.agent.chunk_delay = emu.v4.chunk_delay = seconds
    try:
        yield
    finally:
        emu.agent.chunk_delay, emu.v4.chunk_delay = before
