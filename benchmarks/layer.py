"""Benchmark 3: what the LangChain layer adds: ``ChatHailuo.astream`` over ``create_authed``.

Both stream the same answers (the emulator's echo of one prompt, new chat each time) from
the emulator process, in this process, on one event loop, alternating.
"""

from __future__ import annotations

import asyncio

from benchmarks.bodies import answer_text
from benchmarks.common import Report, emulator_process, ms, paired, timed_batch
from benchmarks.pipeline import paths


def bench_layer(report: Report, runs: int, batch: int = 5) -> None:
    """Benchmark 3 into the report."""
    prompt = answer_text(2000)
    loop = asyncio.new_event_loop()
    try:
        with emulator_process(chunk_size=8) as info:
            clients = paths(info, "v4", prompt, model_name="MiniMax")
            deltas = loop.run_until_complete(clients.via_provider())
            chunks = loop.run_until_complete(clients.via_model())
            result = paired(
                runs,
                lambda: timed_batch(loop, clients.via_provider, batch),
                lambda: timed_batch(loop, clients.via_model, batch),
            )
            loop.run_until_complete(clients.aclose())
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
