"""Benchmarks of langchain-hailuo: ``make bench`` (``python -m benchmarks.run``).

Writes ``benchmarks/RESULTS.md`` (or ``--output``): the machine's facts, then nine figures,
each the median of at least 3 runs (ratios measured in the same run, the two sides
alternating). gpt4free, the comparison, is installed from the package registry into
``benchmarks/.venv-g4f`` (git-ignored) on first use, never into this environment.
Everything else talks to emulators on 127.0.0.1. ``--quick`` is a fast smoke run with fewer
iterations and smaller inputs: its figures are not the published ones.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import HERE, Report, ensure_g4f, load_average, machine_facts
from benchmarks.decoding import bench_decoding
from benchmarks.e2e import bench_big, bench_vs_g4f
from benchmarks.imports import bench_imports
from benchmarks.layer import bench_layer
from benchmarks.many import bench_many
from benchmarks.newchat import bench_new_chat
from benchmarks.pipeline import bench_pipeline
from benchmarks.pool import POOL_RUNS, bench_pool
from benchmarks.serve import bench_serve


@dataclass(frozen=True)
class Plan:
    """How much each benchmark does."""

    runs: int
    decode_chars: int
    requests: int
    big_bytes: int
    big_runs: int
    serve_requests: int
    many_deltas: int
    pool_runs: int


FULL = Plan(
    runs=9,
    decode_chars=20000,
    requests=15,
    big_bytes=2**20,
    big_runs=5,
    serve_requests=25,
    many_deltas=200_000,
    pool_runs=POOL_RUNS,
)
QUICK = Plan(
    runs=3,
    decode_chars=4000,
    requests=3,
    big_bytes=2**17,
    big_runs=3,
    serve_requests=5,
    many_deltas=20_000,
    pool_runs=3,
)


def _args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (3 runs each)")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md", help="the report")
    parser.add_argument("--no-g4f", action="store_true", help="skip gpt4free (no venv, no pip)")
    return parser.parse_args()


def _summary(
    report: Report,
    decode: float,
    vs_g4f: float | None,
    serve: tuple[float, float],
    new_chat: bool,
) -> None:
    """The targets, met or missed, right under the machine facts."""
    report.add()
    report.add("Targets:")
    report.add()
    ok = "met" if decode <= 1.3 else "**missed**"
    report.add(f"- decoding, `V4StreamDecoder` / raw floor ≤ 1.3: {ok} ({decode:.2f})")
    if vs_g4f is None:
        report.add("- end to end, ours / gpt4free ≤ 1.0: not measured (gpt4free unavailable)")
    else:
        ok = "met" if vs_g4f <= 1.0 else "**missed**"
        report.add(
            f"- end to end, ours / gpt4free ≤ 1.0: {ok} ({vs_g4f:.2f}, short answers; see 2)"
        )
    added_ms, stream_ratio = serve
    ok = "met" if added_ms <= 2.0 else "**missed**"
    report.add(
        f"- `hailuo serve` adds ≤ 2 ms per non-streaming request: {ok} (+{added_ms:.2f} ms; see 7)"
    )
    ok = "met" if stream_ratio <= 1.10 else "**missed**"
    report.add(
        f"- `hailuo serve` adds ≤ 10 % to 50 concurrent streams: {ok} "
        f"({(stream_ratio - 1) * 100:+.1f} %; see 7)"
    )
    ok = "met" if new_chat else "**missed**"
    report.add(
        f"- a new chat's first token ≤ a continued turn's + create round trip + 50 ms: {ok} "
        "(see 10)"
    )


def main() -> int:
    """Run every benchmark and write the report."""
    args = _args()
    plan = QUICK if args.quick else FULL
    started = time.monotonic()
    load_before = load_average()
    g4f_version = None if args.no_g4f else ensure_g4f()
    header = Report()
    header.add("# Benchmark results")
    header.add()
    header.add(
        "Written by `python -m benchmarks.run --quick`: a smoke run, not the published figures."
        if args.quick
        else "Written by `make bench` (`python -m benchmarks.run`)."
    )
    header.add()
    for line in machine_facts(g4f_version):
        header.add(line)
    body = Report()
    decode = bench_decoding(body, plan.runs, chars=plan.decode_chars)
    vs_g4f = bench_vs_g4f(body, plan.runs, plan.requests, g4f=g4f_version is not None)
    bench_layer(body, plan.runs)
    bench_big(body, plan.big_runs, g4f_version is not None, size=plan.big_bytes)
    bench_many(body, plan.runs)
    bench_imports(body, plan.runs)
    serve = bench_serve(body, plan.runs, requests=plan.serve_requests)
    bench_pool(body, plan.pool_runs)
    bench_pipeline(body, plan.runs, many=plan.many_deltas)
    new_chat = bench_new_chat(body, max(plan.runs, 9))
    header.add(
        f"- Whole run: {time.monotonic() - started:.0f} s; 1-minute load average "
        f"{load_before} at the start, {load_average()} at the end (other work shares the machine)"
    )
    _summary(header, decode, vs_g4f, serve, new_chat)
    lines = header.lines + body.lines
    args.output.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
