"""An emulator served from a thread of its own, for any program (pytest is not needed).

``serving()`` runs an :class:`~langchain_hailuo.emulator.app.Emulator` on its own event loop
in a daemon thread, so sync code (``model.invoke(...)``, a subprocess under test) and
async code on another loop both reach it; the pytest fixtures use it too.
"""

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
    """Run an emulator on its own event loop in a daemon thread while the block runs.

    Args:
        emulator: The emulator to serve (default: ``Emulator()``); not started yet.
        name: The thread's name.

    Yields:
        The started emulator; stopped, and the thread ended, on exit.

    Example:
        ```python
        with serving(Emulator(chunk_delay=0.01)) as emulator:
            model = ChatHailuo(**emulator.model_kwargs())
            model.invoke("Hello")
        ```
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
