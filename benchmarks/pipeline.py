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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.common import (
    Report,
    emulator_process,
    ms,
    paired,
    rotated,
    timed_batch,
    verdict,
)
from benchmarks.floor import AgentFloor, V4Floor
from benchmarks.procmem import peak_rss_kib, reset_peak, rss_kib
from langchain_hailuo import AuthResult, ChatHailuo, HailuoAI, MiniMaxAgent

Measure = Callable[[], Awaitable[int]]

SHAPES = [
    ("256 KiB in 500 snapshots", 256 * 1024, 500, 1.15, 1.05),
    ("4 KiB in 200 snapshots", 4096, 200, 1.4, 1.15),
]
"""(name, answer bytes, snapshots, target astream / floor, target provider / floor)."""

_SUFFIX = ". This chat has 1 turn(s)."


def _prompt(size: int) -> str:
    """An ASCII prompt whose echo answer is about ``size`` bytes."""
    words = "".join(f"w{n} " for n in range(size // 3))
    return words[: max(size - len("You said: ") - len(_SUFFIX), 1)].rstrip()


@dataclass
class Paths:
    """The three clients of one emulator and one answer through each (counting deltas)."""

    floor: V4Floor | AgentFloor
    provider: Any
    model: ChatHailuo
    via_floor: Measure
    via_provider: Measure
    via_model: Measure

    async def aclose(self) -> None:
        """Close the three clients."""
        await self.floor.aclose()
        await self.provider.aclose()
        await self.model.aclose()


def paths(info: dict[str, Any], protocol: str, prompt: str, model_name: str = "") -> Paths:
    """The floor, the provider and the model on the emulator of ``info``."""
    messages = [{"role": "user", "content": prompt}]
    if protocol == "v4":
        account = info["accounts"][0]
        auth = AuthResult(
            token=account["token"], uuid=account["uuid"], device_id=account["device_id"]
        )
        floor: V4Floor | AgentFloor = V4Floor(info["url"], auth)
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
        floor = AgentFloor(kwargs)
        provider = MiniMaxAgent(base_url=kwargs["base_url"], stream_url=kwargs["stream_url"])
        model = ChatHailuo(**kwargs, use_previous_chat_id=False)

    async def via_floor() -> int:
        return await floor.answer(prompt)

    async def via_provider() -> int:
        count = 0
        async for item in provider.create_authed(model_name, messages, auth):
            count += isinstance(item, str)
        return count

    async def via_model() -> int:
        return sum([1 async for _ in model.astream(prompt)])

    return Paths(floor, provider, model, via_floor, via_provider, via_model)


def _per_round(over: list[float], under: list[float]) -> float:
    """The median of the rounds' ratios ``over / under``."""
    return statistics.median(a / b for a, b in zip(over, under, strict=True))


def _against(ratio: float, target: float) -> str:
    """A ratio and its verdict against the target."""
    return f"**{ratio:.2f}** (≤ {target}: {verdict(ratio <= target)})"


def _timer(loop: asyncio.AbstractEventLoop, measure: Measure, batch: int) -> Callable[[], float]:
    """A measure of ``batch`` answers through ``measure`` (the median seconds)."""
    return lambda: timed_batch(loop, measure, batch)


def _layer(runs: int, protocol: str, size: int, snapshots: int) -> dict[str, Any]:
    """The floor, the provider alone and ``astream`` on one answer shape."""
    chunk = max(size // snapshots, 1)
    batch = 1 if size > 64 * 1024 else 5
    loop = asyncio.new_event_loop()
    try:
        with emulator_process(chunk_size=chunk) as info:
            clients = paths(info, protocol, _prompt(size))
            measures = (clients.via_floor, clients.via_provider, clients.via_model)
            counts = [loop.run_until_complete(measure()) for measure in measures]
            floor, provider, model = rotated(
                runs,
                [_timer(loop, measure, batch) for measure in measures],
            )
            loop.run_until_complete(clients.aclose())
    finally:
        loop.close()
    return {
        "floor_deltas": counts[0],
        "deltas": counts[1],
        "chunks": counts[2],
        "floor": statistics.median(floor),
        "provider": statistics.median(provider),
        "model": statistics.median(model),
        "provider_floor": _per_round(provider, floor),
        "model_floor": _per_round(model, floor),
        "ratio": _per_round(model, provider),
    }


def _many_deltas(runs: int, count: int) -> dict[str, float]:
    """``count`` one-character deltas: ``invoke`` against the provider, and memory."""
    loop = asyncio.new_event_loop()
    try:
        with emulator_process(chunk_size=1) as info:
            prompt = _prompt(count)
            clients = paths(info, "agent", prompt)
            model, via_provider = clients.model, clients.via_provider

            async def via_invoke() -> int:
                return len(str((await model.ainvoke(prompt)).content))

            loop.run_until_complete(via_provider())
            loop.run_until_complete(via_invoke())
            result = paired(
                runs,
                lambda: timed_batch(loop, via_provider, 1),
                lambda: timed_batch(loop, via_invoke, 1),
            )
            gc.collect()
            before = rss_kib()
            reset_peak()
            loop.run_until_complete(via_invoke())
            growth = (peak_rss_kib() - before) / 1024
            loop.run_until_complete(clients.aclose())
    finally:
        loop.close()
    return {
        "provider": result.first_median,
        "invoke": result.second_median,
        "ratio": statistics.median(m / p for p, m in zip(result.first, result.second, strict=True)),
        "growth_mib": growth,
    }


def _import_ms(statement: str) -> float:
    """CPU time a fresh interpreter spends running ``statement`` (seconds)."""
    # CPU time, not wall time: on a shared machine the wait for a core is not the import's.
    timed = f"import time; t = time.process_time(); {statement}; print(time.process_time() - t)"
    done = subprocess.run([sys.executable, "-c", timed], check=True, capture_output=True, text=True)
    return float(done.stdout)


_CHECK = (
    "import sys; from langchain_hailuo import ChatHailuo; "
    "bad = [m for m in sys.modules if m.split('.')[0] in ('nodriver', 'aiohttp') "
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
    report.section("9. The one-way turn pipeline: `ChatHailuo` over its provider and the floor")
    report.add(
        "Each row: one emulator process for the answer shape (UTF-8 bytes per v4 snapshot, "
        "characters per Agent chunk), the clients in this process on one event loop, "
        f"{runs} rounds in rotating order (median per round; each ratio is the median of the "
        "rounds' ratios). The floor is `benchmarks/floor.py`: one aiohttp session, the signed "
        "POST(s), the body split into lines and each `data:` line `json.loads`-ed, nothing "
        "else (the Agent floor creates a session per answer, as the provider does for a new "
        "chat). `ChatHailuo` makes one chunk of the deltas of one network read, so it yields "
        "fewer chunks than the provider's deltas when several arrive in one read."
    )
    report.add()
    rows = []
    verdicts = []
    for protocol in ("v4", "agent"):
        for name, size, snapshots, model_target, provider_target in SHAPES:
            got = _layer(runs, protocol, size, snapshots)
            model_ok = got["model_floor"] <= model_target
            provider_ok = got["provider_floor"] <= provider_target
            verdicts.append((protocol, name, model_ok, provider_ok, got))
            rows.append(
                [
                    protocol,
                    name,
                    f"{got['floor_deltas']} / {got['deltas']} / {got['chunks']}",
                    ms(got["floor"], 2),
                    ms(got["provider"], 2),
                    ms(got["model"], 2),
                    _against(got["provider_floor"], provider_target),
                    _against(got["model_floor"], model_target),
                    f"{got['ratio']:.2f}",
                ]
            )
    report.table(
        [
            "protocol",
            "answer",
            "deltas: floor / provider / `astream` chunks",
            "floor",
            "provider alone",
            "`ChatHailuo.astream`",
            "provider / floor",
            "astream / floor",
            "astream / provider",
        ],
        rows,
    )
    missed = [
        f"{protocol} {name}"
        + ("" if model_ok else f" (astream {got['model'] - got['floor']:+.4f} s over the floor)")
        + ("" if provider_ok else f" (provider {got['provider'] - got['floor']:+.4f} s)")
        for protocol, name, model_ok, provider_ok, got in verdicts
        if not (model_ok and provider_ok)
    ]
    report.add()
    report.add(
        "Where the time goes, per answer (differences of the medians): "
        + "; ".join(
            f"{protocol} {name}: provider {ms(got['provider'] - got['floor'], 2)} over the "
            f"floor, `astream` {ms(got['model'] - got['provider'], 2)} over the provider"
            for protocol, name, _, _, got in verdicts
        )
        + ". Over the floor, the provider pays for what the floor skips (the deadline and "
        "idle timers of each read, line limits, the decoders' checks and typed errors, the "
        "account's credentials and re-authentication); over the provider, `astream` pays a "
        "fixed cost per call (LangChain's run manager and callbacks, the plan, the account's "
        "slot) and one `AIMessageChunk` per network read, so small answers show the "
        "largest ratios."
    )
    report.add()
    report.add(
        "Targets against the floor: "
        + (
            "all met."
            if not missed
            else f"missed on {len(missed)} of {len(verdicts)} rows: " + "; ".join(missed) + "."
        )
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
        f"interpreter (CPU time, median of the paired rounds), `BaseChatModel` alone {ms(imports['base'], 0)}: "
        f"**{ms(imports['over'], 0)} over** (target ≤ 150 ms: "
        f"{verdict(imports['over'] <= 0.150)}); aiohttp, nodriver or emulator modules "
        f"loaded: {imports['loaded'] or 'none'}."
    )
