"""One frame up: a chunk climbs at most six package frames from the socket read to the model.

At the moment each network read of the answer returns (aiohttp's ``readany``, or
``read_nowait`` for bytes already received, called by the package's body reader), the
running stack is walked up: every frame whose code lives in ``langchain_hailuo`` counts, up
to ``_astream`` (for ``astream``) or to the step of the private loop's task (for the sync
``stream``). Both protocols, against the emulator over loopback.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from pathlib import Path
from types import FrameType

import aiohttp
import pytest

import langchain_hailuo
from langchain_hailuo.chat_models import ChatHailuo
from langchain_hailuo.emulator import Emulator
from tests.integration_tests._chats import PROTOCOLS, frames_apart, model_for

pytestmark = pytest.mark.timeout(60)

PACKAGE = str(Path(langchain_hailuo.__file__).parent)
EMULATOR = str(Path(langchain_hailuo.__file__).parent / "emulator")
LIMIT = 6
READERS = {"iter_chunks", "read_rest"}
"""The package's functions that read an answer's body from the socket."""


def _package_chain(frame: FrameType | None) -> list[str] | None:
    """The package frames from a body read up to ``_astream`` (``None``: not a body read)."""
    if frame is None or frame.f_code.co_name not in READERS:
        return None
    chain: list[str] = []
    while frame is not None:
        code = frame.f_code
        if code.co_name == "_astream" and code.co_filename.startswith(PACKAGE):
            return chain
        if code.co_filename == asyncio.events.__file__:  # the loop ran the task's step
            return chain
        if code.co_filename.startswith(PACKAGE) and not code.co_filename.startswith(EMULATOR):
            chain.append(code.co_name)
        frame = frame.f_back
    return chain


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The package frame chain of every answer read while the test runs."""
    seen: list[list[str]] = []
    guard = threading.Lock()
    waiting, in_hand = aiohttp.StreamReader.readany, aiohttp.StreamReader.read_nowait

    def note(caller: FrameType) -> None:
        chain = _package_chain(caller)
        if chain is not None:
            with guard:
                seen.append(chain)

    async def readany(self: aiohttp.StreamReader) -> bytes:
        data = await waiting(self)
        note(sys._getframe(1))
        return data

    def read_nowait(self: aiohttp.StreamReader, n: int = -1) -> bytes:
        data = in_hand(self, n)
        if data:
            note(sys._getframe(1))
        return data

    monkeypatch.setattr(aiohttp.StreamReader, "readany", readany)
    monkeypatch.setattr(aiohttp.StreamReader, "read_nowait", read_nowait)
    return seen


async def _answer(model: ChatHailuo, mode: str, prompt: str) -> str:
    """The answer through ``astream``, or the sync ``stream`` from a thread."""
    if mode == "astream":
        text = "".join([chunk.text async for chunk in model.astream(prompt)])
        await model.aclose()
        return text
    text = await asyncio.to_thread(lambda: "".join(c.text for c in model.stream(prompt)))
    await asyncio.to_thread(model.close)
    return text


@pytest.mark.parametrize("mode", ["astream", "stream"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_chunks_climb_at_most_six_frames(
    emulator: Emulator, protocol: str, mode: str, reads: list[list[str]]
) -> None:
    model = model_for(emulator, protocol)
    emulator.script("one two three four five six")
    with frames_apart(emulator, 0.01):
        text = await _answer(model, mode, "Count.")
    assert text == "one two three four five six"
    assert len(reads) >= 2, reads  # the answer came in several reads, all of them seen
    deepest = max(reads, key=len)
    assert len(deepest) <= LIMIT, deepest
    assert deepest[-1] == "_achunks"  # ...and the chain reached the model's own loop
