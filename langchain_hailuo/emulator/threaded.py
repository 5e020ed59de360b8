"""An emulator served from a thread of its own, for any program (the pytest fixtures too)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from langchain_hailuo._loop import LoopRunner
from langchain_hailuo.emulator.app import Emulator

__all__ = ["serving"]


@contextlib.contextmanager
def serving(
    emulator: Emulator | None = None, *, name: str = "hailuo-emulator"
) -> Iterator[Emulator]:
    """Serve ``emulator`` (default ``Emulator()``) on its own loop in a daemon thread for the block.

    It is yielded started, so sync code (``model.invoke``, a subprocess) and async code on
    another loop both reach it, and stopped with its thread on exit::

        with serving(Emulator(chunk_delay=0.01)) as emulator:
            ChatHailuo(**emulator.model_kwargs()).invoke("Hello")
    """
    runner = LoopRunner(name=name)
    served = emulator or Emulator()
    try:
        runner.run(served.start())
        yield served
    finally:
        try:
            runner.run(served.stop())
        finally:
            runner.close()
