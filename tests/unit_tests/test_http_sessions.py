"""The per-loop session cache closes each loop's session when that loop shuts down, and
retires sessions whose loop closed without shutting down, also when it is dropped."""

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


def _session_made_on_a_loop_closed_without_shutdown(cache: LoopSessions) -> aiohttp.ClientSession:
    async def make() -> aiohttp.ClientSession:
        return cache.get()

    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(make())
    finally:
        loop.close()  # no shutdown_asyncgens(): the session outlives its loop


def test_asyncio_run_closes_the_session_at_its_loop_shutdown() -> None:
    cache = LoopSessions(cookieless_session)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = _session_made_on_a_loop_that_then_closed(cache)
        assert session.closed
        gc.collect()
    assert not [w for w in caught if "nclosed" in str(w.message)]


def test_dropping_the_cache_retires_sessions_of_closed_loops() -> None:
    cache = LoopSessions(cookieless_session)
    session = _session_made_on_a_loop_closed_without_shutdown(cache)
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
