"""Benchmark 9: the one-way turn pipeline: what ``ChatHailuo`` adds over its provider.

One emulator process per answer shape; the client side runs in this process, on one event
loop, the two paths alternating: the provider alone (``create_authed``, its text deltas
counted) and ``ChatHailuo.astream`` (its chunks counted). Both protocols. Then 200,000
one-character deltas through ``invoke`` (time against the provider's, and the growth of this
process's peak resident memory), and the import of ``ChatHailuo``.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.common import Report, emulator_process, ms, paired, verdict
from benchmarks.procmem import peak_rss_kib, reset_peak, rss_kib
from langchain_hailuo import AuthResult, ChatHailuo, HailuoAI, MiniMaxAgent

Measure = Callable[[], Awaitable[int]]

SHAPES = [("256 KiB in 500 snapshots", 256 * 1024, 500), ("4 KiB in 200 snapshots", 4096, 200)]
"""(name, answer bytes, snapshots)."""

_SUFFIX = ". This chat has 1 turn(s)."


def _prompt(size: int) -> str:
    """An ASCII prompt whose echo answer is about ``size`` bytes."""
    words = "".join(f"w{n} " for n in range(size // 3))
    return words[: max(size - len("You said: ") - len(_SUFFIX), 1)].rstrip()


def _paths(
    info: dict[str, Any], protocol: str, prompt: str
) -> tuple[Any, ChatHailuo, Measure, Measure]:
    """The provider, the model, and one answer through each (counting deltas / chunks)."""
    messages = [{"role": "user", "content": prompt}]
    if protocol == "v4":
        account = info["accounts"][0]
        auth = AuthResult(
            token=account["token"], uuid=account["uuid"], device_id=account["device_id"]
        )
        provider: Any = HailuoAI(base_url=info["url"])
        model = ChatHailuo(
            protocol="v4",
            base_url=info["url"],
            token=account["token"],
            uuid=account["uuid"],
            device_id=account["device_id"],
            use_previous_chat_id=False,
        )
    else:
        kwargs = info["agent"]
        auth = AuthResult(token=kwargs["token"], uuid=kwargs["uuid"], device_id=kwargs["device_id"])
        provider = MiniMaxAgent(
            base_url=kwargs["base_url"], stream_url=kwargs["stream_url"], session_delay=0.0
        )
        model = ChatHailuo(**kwargs, use_previous_chat_id=False)

    async def via_provider() -> int:
        count = 0
        async for item in provider.create_authed("", messages, auth):
            count += isinstance(item, str)
        return count

    async def via_model() -> int:
        return sum([1 async for _ in model.astream(prompt)])

    return provider, model, via_provider, via_model


def _timed(loop: asyncio.AbstractEventLoop, measure: Measure, batch: int) -> float:
    """The median seconds of ``batch`` answers."""
    values = []
    for _ in range(batch):
        start = time.perf_counter()
        loop.run_until_complete(measure())
        values.append(time.perf_counter() - start)
    return statistics.median(values)


def _layer(runs: int, protocol: str, size: int, snapshots: int) -> dict[str, Any]:
    """Provider alone and ``astream`` on one answer shape."""
    chunk = max(size // snapshots, 1)
    batch = 1 if size > 64 * 1024 else 5
    loop = asyncio.new_event_loop()
    try:
        with emulator_process(chunk_size=chunk) as info:
            provider, model, via_provider, via_model = _paths(info, protocol, _prompt(size))
            deltas = loop.run_until_complete(via_provider())
            chunks = loop.run_until_complete(via_model())
            result = paired(
                runs,
                lambda: _timed(loop, via_provider, batch),
                lambda: _timed(loop, via_model, batch),
            )
            loop.run_until_complete(provider.aclose())
            loop.run_until_complete(model.aclose())
    finally:
        loop.close()
    return {
        "deltas": deltas,
        "chunks": chunks,
        "provider": result.first_median,
        "model": result.second_median,
        "ratio": statistics.median(m / p for p, m in zip(result.first, result.second, strict=True)),
    }


def _many_deltas(runs: int, count: int) -> dict[str, float]:
    """``count`` one-character deltas: ``invoke`` against the provider, and memory."""
    loop = asyncio.new_event_loop()
    try:
        with emulator_process(chunk_size=1) as info:
            provider, model, via_provider, _ = _paths(info, "agent", _prompt(count))
            prompt = _prompt(count)

            async def via_invoke() -> int:
                return len(str((await model.ainvoke(prompt)).content))

            loop.run_until_complete(via_provider())
            loop.run_until_complete(via_invoke())
            result = paired(
                runs,
                lambda: _timed(loop, via_provider, 1),
                lambda: _timed(loop, via_invoke, 1),
            )
            gc.collect()
            before = rss_kib()
            reset_peak()
            loop.run_until_complete(via_invoke())
            growth = (peak_rss_kib() - before) / 1024
            loop.run_until_complete(provider.aclose())
            loop.run_until_complete(model.aclose())
    finally:
        loop.close()
    return {
        "provider": result.first_median,
        "invoke": result.second_median,
        "ratio": statistics.median(m / p for p, m in zip(result.first, result.second, strict=True)),
        "growth_mib": growth,
    }


def _import_ms(statement: str) -> float:
    """Wall time of a fresh interpreter running ``statement`` (seconds)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    return time.perf_counter() - start


_CHECK = (
    "import sys; from langchain_hailuo import ChatHailuo; "
    "bad = [m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'nodriver') "
    "or m.startswith('langchain_hailuo.emulator')]; print(','.join(bad))"
)


def _imports(runs: int) -> dict[str, Any]:
    """``from langchain_hailuo import ChatHailuo`` over ``BaseChatModel`` alone."""
    base = "from langchain_core.language_models.chat_models import BaseChatModel"
    ours = "from langchain_hailuo import ChatHailuo"
    result = paired(runs, lambda: _import_ms(ours), lambda: _import_ms(base))
    loaded = subprocess.run(
        [sys.executable, "-c", _CHECK], check=True, capture_output=True, text=True
    ).stdout.strip()
    return {
        "ours": result.first_median,
        "base": result.second_median,
        "over": statistics.median(a - b for a, b in zip(result.first, result.second, strict=True)),
        "loaded": loaded,
    }


def bench_pipeline(report: Report, runs: int, *, many: int = 200_000) -> None:
    """Benchmark 9 into the report."""
    report.section("9. The one-way turn pipeline: `ChatHailuo` over its provider")
    report.add(
        "Each row: one emulator process for the answer shape (UTF-8 bytes per v4 snapshot, "
        "characters per Agent chunk), the client in this process on one event loop, "
        f"{runs} alternating rounds (median per round; the ratio is the median of the "
        "rounds' ratios). `ChatHailuo` groups the deltas already in hand into one chunk, so "
        "it yields fewer chunks than the provider's deltas when several arrive in one read."
    )
    report.add()
    rows = []
    layer: dict[tuple[str, str], dict[str, Any]] = {}
    for protocol in ("v4", "agent"):
        for name, size, snapshots in SHAPES:
            got = layer[protocol, name] = _layer(runs, protocol, size, snapshots)
            rows.append(
                [
                    protocol,
                    name,
                    str(got["deltas"]),
                    str(got["chunks"]),
                    ms(got["provider"], 2),
                    ms(got["model"], 2),
                    f"**{got['ratio']:.2f}**",
                ]
            )
    report.table(
        [
            "protocol",
            "answer",
            "provider deltas",
            "`astream` chunks",
            "provider alone",
            "`ChatHailuo.astream`",
            "astream / provider",
        ],
        rows,
    )
    deltas = _many_deltas(max(3, runs // 3), many)
    imports = _imports(runs)
    report.add()
    report.add(
        f"{many:,} one-character deltas (MiniMax Agent, one chunk per character from the "
        f"emulator): provider {ms(deltas['provider'], 0)}, `ainvoke` {ms(deltas['invoke'], 0)}; "
        f"ratio **{deltas['ratio']:.2f}** (target ≤ 1.5: {verdict(deltas['ratio'] <= 1.5)}); "
        f"peak resident growth during one `ainvoke` **{deltas['growth_mib']:.1f} MiB** "
        f"(target ≤ 50 MB: {verdict(deltas['growth_mib'] * 1.048576 <= 50)})."
    )
    report.add()
    report.add(
        f"`from langchain_hailuo import ChatHailuo`: {ms(imports['ours'], 0)} in a fresh "
        f"interpreter, `BaseChatModel` alone {ms(imports['base'], 0)}: "
        f"**{ms(imports['over'], 0)} over** (target ≤ 150 ms: "
        f"{verdict(imports['over'] <= 0.150)}); aiohttp, nodriver or emulator modules "
        f"loaded: {imports['loaded'] or 'none'}."
    )
