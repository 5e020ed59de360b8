"""Benchmark 3: what the LangChain layer adds: ``ChatHailuo.astream`` over ``create_authed``.

Both stream the same answers (the emulator's echo of one prompt, new chat each time) from
the emulator process, in this process, on one event loop, alternating.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.bodies import answer_text
from benchmarks.common import Report, emulator_process, ms, paired
from langchain_hailuo import AuthResult, ChatHailuo, HailuoAI

Measure = Callable[[], Awaitable[int]]


def _timed_batch(loop: asyncio.AbstractEventLoop, measure: Measure, batch: int) -> float:
    """The median seconds of ``batch`` answers."""
    values = []
    for _ in range(batch):
        start = time.perf_counter()
        loop.run_until_complete(measure())
        values.append(time.perf_counter() - start)
    return statistics.median(values)


def _paths(info: dict[str, Any], prompt: str) -> tuple[HailuoAI, ChatHailuo, Measure, Measure]:
    """The provider, the model and one answer through each (returning its chunk count)."""
    account = info["accounts"][0]
    auth = AuthResult(token=account["token"], uuid=account["uuid"], device_id=account["device_id"])
    provider = HailuoAI(base_url=info["url"])
    model = ChatHailuo(
        protocol="v4",
        base_url=info["url"],
        token=account["token"],
        uuid=account["uuid"],
        device_id=account["device_id"],
        use_previous_chat_id=False,
    )

    async def via_provider() -> int:
        messages = [{"role": "user", "content": prompt}]
        return sum(
            [
                1
                async for item in provider.create_authed("MiniMax", messages, auth)
                if isinstance(item, str)
            ]
        )

    async def via_model() -> int:
        return sum([1 async for _ in model.astream(prompt)])

    return provider, model, via_provider, via_model


def bench_layer(report: Report, runs: int, batch: int = 5) -> None:
    """Benchmark 3 into the report."""
    prompt = answer_text(2000)
    loop = asyncio.new_event_loop()
    try:
        with emulator_process(chunk_size=8) as info:
            provider, model, via_provider, via_model = _paths(info, prompt)
            deltas = loop.run_until_complete(via_provider())
            chunks = loop.run_until_complete(via_model())
            result = paired(
                runs,
                lambda: _timed_batch(loop, via_provider, batch),
                lambda: _timed_batch(loop, via_model, batch),
            )
            loop.run_until_complete(provider.aclose())
            loop.run_until_complete(model.aclose())
    finally:
        loop.close()
    p, m = result.first_median, result.second_median
    report.section("3. LangChain layer: `ChatHailuo.astream` vs `HailuoAI.create_authed`")
    report.add(
        f"The same answer (~{len(prompt) + 40:,} characters in 8-byte snapshots, a new chat each "
        f"time) from the emulator process; {runs} alternating rounds of {batch} answers per "
        "path (median per round, then over rounds)."
    )
    report.add()
    report.table(
        ["path", "chunks per answer", "median per answer"],
        [
            ["`HailuoAI.create_authed` (text deltas)", str(deltas), ms(p, 2)],
            ["`ChatHailuo.astream` (`AIMessageChunk`s)", str(chunks), ms(m, 2)],
        ],
    )
    per_chunk = (m - p) / max(deltas, 1)
    report.add(
        f"The LangChain layer adds {ms(m - p, 2)} per answer ({1 / result.ratio:.2f}× the "
        f"provider's time): **{per_chunk * 1e6:.0f} µs per chunk**, for turning each delta "
        "into an `AIMessageChunk` / `ChatGenerationChunk`, LangChain's run manager and "
        "callbacks, and building the final message (not broken down further here)."
    )
