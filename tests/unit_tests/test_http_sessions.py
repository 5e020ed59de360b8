"""The per-loop session cache retires sessions whose loop has closed, also when it is dropped."""

from __future__ import annotations

import asyncio
import gc
import warnings

import aiohttp

from langchain_hailuo._http import LoopSessions, cookieless_session


def _session_made_on_a_loop_that_then_closed(cache: LoopSessions) -> aiohttp.ClientSession:
    async def make() -> aiohttp.ClientSession:
        return cache.get()

    return asyncio.run(make())


def test_dropping_the_cache_retires_sessions_of_closed_loops() -> None:
    cache = LoopSessions(cookieless_session)
    session = _session_made_on_a_loop_that_then_closed(cache)
    assert not session.closed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del cache
        gc.collect()
    assert session.closed  # detached, so collecting it touches no closed loop
    assert not [w for w in caught if "Unclosed" in str(w.message)]


def test_the_next_loop_gets_a_new_session_and_the_dead_one_is_retired() -> None:
    cache = LoopSessions(cookieless_session)
    first = _session_made_on_a_loop_that_then_closed(cache)
    second = _session_made_on_a_loop_that_then_closed(cache)
    assert first is not second
    assert first.closed
