"""Benchmark 5: 200 conversations over 50 accounts with 100 ms emulated latency per answer.

The emulator process holds every answer's headers back for 100 ms (``slow_first_byte``).
Sockets opened are counted by an aiohttp ``TraceConfig`` on the client's session.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from benchmarks.common import Report, emulator_process, median_of, ms
from langchain_hailuo import AuthResult, HailuoAI
from langchain_hailuo.v4.client import V4Client

ACCOUNTS = 50
CONVERSATIONS = 200
LATENCY = 0.1


class Counted:
    """A HailuoAI whose session counts the connections it opens."""

    def __init__(self, url: str) -> None:
        """Create the provider with a counting session factory."""
        self.opened = 0
        self.provider = HailuoAI(base_url=url, client=V4Client(session_factory=self._session))

    def _session(self) -> aiohttp.ClientSession:
        """The client's session: no cookie jar (as the default), plus the counter."""
        trace = aiohttp.TraceConfig()
        trace.on_connection_create_end.append(self._count)
        return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), trace_configs=[trace])

    async def _count(self, *_args: object) -> None:
        """One more connection opened."""
        self.opened += 1


async def _conversation(provider: HailuoAI, auth: AuthResult, n: int) -> None:
    """One new chat, streamed to its end."""
    messages = [{"role": "user", "content": f"Conversation {n}: hello!"}]
    async for _ in provider.create_authed("MiniMax", messages, auth):
        pass


async def _all(provider: HailuoAI, auths: list[AuthResult]) -> float:
    """200 conversations, four per account one after another, the accounts side by side."""

    async def per_account(i: int, auth: AuthResult) -> None:
        for k in range(CONVERSATIONS // ACCOUNTS):
            await _conversation(provider, auth, i * 10 + k)

    start = time.perf_counter()
    await asyncio.gather(*(per_account(i, a) for i, a in enumerate(auths)))
    return time.perf_counter() - start


def _fresh_run(
    loop: asyncio.AbstractEventLoop,
    url: str,
    auths: list[AuthResult],
    stats: dict[str, list[float]],
) -> Callable[[], float]:
    """A measure: 200 conversations through a new provider (cold connection pool)."""

    def run() -> float:
        counted = Counted(url)
        cpu = time.process_time()
        seconds = loop.run_until_complete(_all(counted.provider, auths))
        stats["cpu"].append(time.process_time() - cpu)
        loop.run_until_complete(counted.provider.aclose())
        stats["opened"].append(counted.opened)
        return seconds

    return run


def bench_many(report: Report, runs: int) -> None:
    """Benchmark 5 into the report."""
    loop = asyncio.new_event_loop()
    stats: dict[str, list[float]] = {"cpu": [], "opened": []}
    try:
        with emulator_process(accounts=ACCOUNTS, chunk_size=64, first_byte_delay=LATENCY) as info:
            auths = [_auth(a) for a in info["accounts"]]
            single = Counted(info["url"])
            one = loop.run_until_complete  # bound once, used below

            def one_conversation() -> float:
                start = time.perf_counter()
                one(_conversation(single.provider, auths[0], 0))
                return time.perf_counter() - start

            one_conversation()  # warm: the session and its connection exist from here on
            single_s = median_of(runs, one_conversation)
            loop.run_until_complete(single.provider.aclose())
            many_s = median_of(runs, _fresh_run(loop, info["url"], auths, stats))
    finally:
        loop.close()
    report.section("5. 200 conversations over 50 accounts, 100 ms emulated latency per answer")
    report.add(
        "The emulator process holds each answer back 100 ms before its first byte. 50 accounts "
        "side by side, each running 4 new chats one after another (the service streams one "
        "answer per account at a time), through one `HailuoAI` created fresh for each run "
        f"(empty connection pool); {runs} runs. One conversation: the same provider warm."
    )
    report.add()
    report.table(
        ["measure", "median"],
        [
            ["one conversation", ms(single_s, 0)],
            ["200 conversations over 50 accounts", ms(many_s, 0)],
            ["wall time / one conversation", f"{many_s / single_s:.1f}× (ideal: 4×)"],
            ["client CPU time per run", ms(statistics.median(stats["cpu"]), 0)],
            [
                "sockets opened per run",
                f"{', '.join(str(int(n)) for n in stats['opened'])} (200 requests each)",
            ],
        ],
    )
    beyond = many_s - 4 * single_s
    report.add(
        f"The accounts' answers overlap, so 200 answers take 4 answer latencies plus {ms(beyond, 0)}: "
        "that is CPU time, the client's (above) and the emulator process's, on 2 cores shared "
        "with each other. Connections are kept alive and reused: one per account streaming at "
        "the same time (50), not one per request (200)."
    )


def _auth(account: dict[str, Any]) -> AuthResult:
    """An emulator account as an AuthResult."""
    return AuthResult(token=account["token"], uuid=account["uuid"], device_id=account["device_id"])
