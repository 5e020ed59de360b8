"""Waiting for something another thread or the server does (a disconnect, a request seen).

The limit is a guard against a test hanging, never a measurement: it is generous, and a
loaded machine only makes the wait longer, never the test fail.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

LIMIT = 20.0
"""Seconds to wait before the test fails, saying what never happened."""
_POLL = 0.005


def wait_until(predicate: Callable[[], bool], what: str, limit: float = LIMIT) -> None:
    """Poll ``predicate`` (from any thread) until it holds; fail naming ``what`` after ``limit``."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {limit:g} s: {what}")
        time.sleep(_POLL)


async def await_until(predicate: Callable[[], bool], what: str, limit: float = LIMIT) -> None:
    """:func:`wait_until` for a coroutine: the event loop keeps running while it waits."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {limit:g} s: {what}")
        await asyncio.sleep(_POLL)
