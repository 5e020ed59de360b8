"""Benchmarks for issue #7: ``make bench`` (``python benchmarks/run.py``).

Every figure is the median of at least 5 runs; ratios are measured in the same run. The
results and the machine's facts go to ``benchmarks/RESULTS.md``. gpt4free is installed from
the package registry into ``benchmarks/.venv-g4f`` (git-ignored), never into our environment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import langchain_core
from aiohttp import StreamReader

from benchmarks.bodies import answer_text, chunked, v4_body
from langchain_hailuo import AuthResult, ChatHailuo, HailuoAI
from langchain_hailuo._loop import LoopRunner
from langchain_hailuo.emulator import Emulator
from langchain_hailuo.emulator.pytest_plugin import serving
from langchain_hailuo.v4.client import V4Client
from langchain_hailuo.v4.crypt import build_fingerprint_query
from langchain_hailuo.v4.stream import V4StreamDecoder

HERE = Path(__file__).resolve().parent
G4F_VENV = HERE / ".venv-g4f"
UA = "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36"


@dataclass
class Report:
    """Lines of RESULTS.md, filled section by section."""

    lines: list[str] = field(default_factory=list)

    def section(self, title: str) -> None:
        self.lines += ["", f"## {title}", ""]

    def add(self, text: str = "") -> None:
        self.lines.append(text)
        print(text, flush=True)


def median_of(runs: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    """Median and all values of ``runs`` calls of ``measure``."""
    values = [measure() for _ in range(runs)]
    return statistics.median(values), values


def target(ok: bool) -> str:
    return "met" if ok else "**missed**"


# ------------------------------------------------------------------ 1. decoding


def decode_ours(chunks: list[bytes]) -> float:
    start = time.perf_counter()
    decoder = V4StreamDecoder()
    for chunk in chunks:
        decoder.feed(chunk)
    decoder.close()
    return time.perf_counter() - start


class _NoFlowControl:
    """Stands in for the connection: the whole body is already in memory."""

    _reading_paused = False

    def pause_reading(self, *_args: object, **_kwargs: object) -> None:
        """Nothing to pause."""

    def resume_reading(self, *_args: object, **_kwargs: object) -> None:
        """Nothing to resume."""


async def _floor(chunks: list[bytes]) -> None:
    """aiohttp's own line reading + json.loads + delta slicing, the least any client does."""
    loop = asyncio.get_running_loop()
    reader = StreamReader(_NoFlowControl(), 2**16, loop=loop)  # type: ignore[arg-type]
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    emitted = 0
    async for line in reader:
        if line.startswith(b"data:"):
            data = json.loads(line[5:])
            result = data.get("data", {}).get("messageResult")
            if result:
                content = result["content"]
                _ = content[emitted:]
                emitted = len(content)


def decode_floor(chunks: list[bytes]) -> float:
    loop = asyncio.new_event_loop()
    try:
        start = time.perf_counter()
        loop.run_until_complete(_floor(chunks))
        return time.perf_counter() - start
    finally:
        loop.close()


def bench_decoding(report: Report, runs: int) -> None:
    report.section("1. Stream decoding vs the raw floor")
    body = v4_body(snapshots=2000, chars=20000)
    chunks = chunked(body)
    decode_ours(chunks)
    decode_floor(chunks)  # warm both
    pairs = [(decode_ours(chunks), decode_floor(chunks)) for _ in range(max(runs, 9))]
    ours = statistics.median(p[0] for p in pairs)
    floor = statistics.median(p[1] for p in pairs)
    ratio = statistics.median(p[0] / p[1] for p in pairs)  # interleaved: load hits both alike
    report.add(
        f"A recorded-style body of {len(body) / 2**20:.1f} MiB (2,000 cumulative snapshots of a "
        f"20,000-character multilingual answer), fed in 16 KiB chunks."
    )
    report.add("")
    report.add("| decoder | median |")
    report.add("|---|---|")
    report.add(f"| `V4StreamDecoder` | {ours * 1000:.1f} ms |")
    report.add(f"| floor: aiohttp line reading + `json.loads` + slicing | {floor * 1000:.1f} ms |")
    report.add("")
    report.add(
        f"Ratio ours / floor (median of {len(pairs)} interleaved pairs): **{ratio:.2f}** "
        f"(target ≤ 1.3: {target(ratio <= 1.3)})."
    )


# ------------------------------------------------------------------ helpers: emulator process


@contextlib.contextmanager
def emulator_process(
    *, accounts: int = 1, chunk_size: int = 8, first_byte_delay: float = 0.0
) -> Iterator[dict[str, Any]]:
    """An emulator in its own process (so no client shares its CPU time)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "serve_emulator.py"),
            f"--accounts={accounts}",
            f"--chunk-size={chunk_size}",
            f"--first-byte-delay={first_byte_delay}",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        yield info
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def ensure_g4f() -> Path | None:
    """The g4f benchmark environment's Python (created on first use), or None."""
    python = G4F_VENV / "bin" / "python"
    if not python.exists():
        print("creating the g4f benchmark environment (pip install g4f)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(G4F_VENV)], check=True)
        result = subprocess.run([str(python), "-m", "pip", "install", "-q", "g4f"], check=False)
        if result.returncode != 0:
            return None
    return python


def job_for(info: dict[str, Any], prompt: str, requests: int) -> dict[str, Any]:
    """One client job: the emulator account and a g4f-style frozen fingerprint query."""
    account = info["accounts"][0]
    unix = int(time.time() * 1000)
    auth = AuthResult(
        token=account["token"], uuid=account["uuid"], device_id=account["device_id"], user_agent=UA
    )
    query = build_fingerprint_query(auth, unix)
    return {
        "url": info["url"],
        "token": account["token"],
        "uuid": account["uuid"],
        "device_id": account["device_id"],
        "path_and_query": f"/v4/api/chat/msg?{query}",
        "timestamp": unix,
        "prompt": prompt,
        "requests": requests,
    }


def run_client(python: Path | str, script: str, job: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    result = subprocess.run(
        [str(python), str(HERE / script)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=900,
    )
    if result.returncode != 0:
        return {"times": [], "error": result.stderr.strip().splitlines()[-1:], "received": 0}
    return json.loads(result.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ 2. end to end vs g4f


def bench_vs_g4f(report: Report, runs: int, g4f: Path | None) -> None:
    report.section("2. `HailuoAI.create_authed` end to end vs gpt4free's `HailuoAI`")
    prompt = answer_text(400)
    per_run = 20
    with emulator_process(chunk_size=8) as info:
        ours_runs: list[dict[str, Any]] = []
        g4f_runs: list[dict[str, Any]] = []
        for _ in range(runs):  # interleaved, so machine load hits both clients alike
            job = job_for(info, prompt, per_run)
            ours_runs.append(run_client(sys.executable, "ours_client.py", job))
            if g4f:
                g4f_runs.append(run_client(g4f, "g4f_client.py", job_for(info, prompt, per_run)))
    ours = statistics.median(statistics.median(r["times"]) for r in ours_runs)
    report.add(
        f"{per_run} sequential new chats per run, {runs} runs, against one emulator process "
        f"(no artificial delay; a ~{len(prompt) + 40}-character answer in 8-byte snapshots)."
    )
    report.add("")
    report.add("| client | median per answer | errors |")
    report.add("|---|---|---|")
    report.add(f"| ours | {ours * 1000:.2f} ms | {sum(1 for r in ours_runs if r['error'])} |")
    if not g4f_runs or any(not r["times"] for r in g4f_runs):
        report.add(
            "| gpt4free | could not run | " + str([r.get("error") for r in g4f_runs][:1]) + " |"
        )
        return
    theirs = statistics.median(statistics.median(r["times"]) for r in g4f_runs)
    report.add(
        f"| gpt4free `HailuoAI` | {theirs * 1000:.2f} ms | {sum(1 for r in g4f_runs if r['error'])} |"
    )
    ratio = ours / theirs
    report.add("")
    report.add(f"Ratio ours / gpt4free: **{ratio:.2f}** (target ≤ 1.0: {target(ratio <= 1.0)}).")
    report.add(
        "gpt4free opens a new `ClientSession` (and connection) per request and freezes `unix`; "
        "the emulator ran with its freshness check off so it could answer at all."
    )


# ------------------------------------------------------------------ 3. LangChain layer cost


def bench_layer(report: Report, runs: int) -> None:
    report.section("3. `ChatHailuo.astream` vs `HailuoAI.create_authed` on the same answers")
    prompt = answer_text(2000)
    with serving(Emulator(chunk_size=8, unix_window=None)) as emulator:
        kwargs = emulator.model_kwargs(protocol="v4")
        runner = LoopRunner()
        auth = AuthResult(token=kwargs["token"], uuid=kwargs["uuid"], device_id=kwargs["device_id"])
        provider = HailuoAI(base_url=kwargs["base_url"])
        model = ChatHailuo(**kwargs, use_previous_chat_id=False)

        async def via_provider() -> tuple[float, int]:
            start = time.perf_counter()
            n = 0
            async for item in provider.create_authed(
                "MiniMax", [{"role": "user", "content": prompt}], auth
            ):
                n += isinstance(item, str)
            return time.perf_counter() - start, n

        async def via_model() -> tuple[float, int]:
            start = time.perf_counter()
            n = 0
            async for _chunk in model.astream(prompt):
                n += 1
            return time.perf_counter() - start, n

        def measure(fn: Callable[[], Any]) -> tuple[float, int]:
            samples = [runner.run(fn()) for _ in range(5)]
            return statistics.median(s[0] for s in samples), samples[0][1]

        runner.run(via_provider())
        runner.run(via_model())  # warm both
        p_vals = [measure(via_provider) for _ in range(runs)]
        m_vals = [measure(via_model) for _ in range(runs)]
        runner.run(provider.aclose())
        runner.run(model.aclose())
    p = statistics.median(v[0] for v in p_vals)
    m = statistics.median(v[0] for v in m_vals)
    chunks = p_vals[0][1]
    report.add(
        f"A {len(prompt) + 40}-character answer in {chunks} deltas (8-byte snapshots), in-process emulator."
    )
    report.add("")
    report.add("| path | median per answer |")
    report.add("|---|---|")
    report.add(f"| `HailuoAI.create_authed` | {p * 1000:.2f} ms |")
    report.add(f"| `ChatHailuo.astream` | {m * 1000:.2f} ms |")
    report.add("")
    report.add(
        f"LangChain layer: {(m - p) * 1000:.2f} ms per answer, "
        f"**{(m - p) / max(chunks, 1) * 1e6:.1f} µs per chunk** ({m / p:.2f}×)."
    )


# ------------------------------------------------------------------ 4. 1 MiB answer


def bench_big(report: Report, runs: int, g4f: Path | None) -> None:
    report.section("4. A 1 MiB answer in 2,000 snapshots")
    size = 2**20
    prompt = answer_text(size - 50)
    with emulator_process(chunk_size=size // 2000) as info:
        ours = [
            run_client(sys.executable, "ours_client.py", job_for(info, prompt, 1))
            for _ in range(runs)
        ]
        theirs = (
            [run_client(g4f, "g4f_client.py", job_for(info, prompt, 1)) for _ in range(runs)]
            if g4f
            else []
        )
    body_gib = sum(size * n / 2000 for n in range(1, 2001)) / 2**30
    report.add(
        f"The emulator echoes a 1 MiB prompt; the answer arrives as 2,000 cumulative snapshots "
        f"(about {body_gib:.1f} GiB of `data:` lines, the longest over 1 MiB)."
    )
    report.add("")
    report.add("| client | median time | peak RSS | RSS growth during the answer | result |")
    report.add("|---|---|---|---|---|")

    def row(name: str, results: list[dict[str, Any]]) -> None:
        if not results:
            report.add(f"| {name} | – | – | – | not run |")
            return
        t = statistics.median(r["times"][0] if r["times"] else 0.0 for r in results)
        rss = statistics.median(r.get("peak_rss_kib", 0) for r in results) / 1024
        growth = statistics.median(r.get("rss_growth_kib", 0) for r in results) / 1024
        errors = {" ".join(str(r["error"]).split())[:160] for r in results if r["error"]}
        outcome = (
            "; ".join(sorted(errors))
            if errors
            else f"complete ({results[0]['received']:,} characters)"
        ).replace("|", "/")
        report.add(f"| {name} | {t:.2f} s | {rss:.0f} MiB | {growth:.0f} MiB | {outcome} |")

    row("ours", ours)
    row("gpt4free `HailuoAI`", theirs)
    report.add("")
    report.add(
        "Our decoder splits lines itself, so any line length works; gpt4free iterates aiohttp's "
        "`response.content`, whose line limit is twice its read buffer, so it fails as soon as a "
        "snapshot passes that size. The time is mostly spent parsing the ~1 GiB of JSON the "
        "service's cumulative format sends."
    )


# ------------------------------------------------------------------ 5. many conversations


def bench_many(report: Report, runs: int) -> None:
    report.section("5. 200 conversations over 50 accounts, 100 ms emulated latency per answer")
    runner = LoopRunner()
    created = 0

    async def on_create(*_args: object) -> None:
        nonlocal created
        created += 1

    def session() -> aiohttp.ClientSession:
        trace = aiohttp.TraceConfig()
        trace.on_connection_create_end.append(on_create)
        return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), trace_configs=[trace])

    with emulator_process(accounts=50, chunk_size=64, first_byte_delay=0.1) as info:
        provider = HailuoAI(base_url=info["url"], client=V4Client(session_factory=session))
        auths = [
            AuthResult(token=a["token"], uuid=a["uuid"], device_id=a["device_id"])
            for a in info["accounts"]
        ]

        async def conversation(auth: AuthResult) -> None:
            messages = [{"role": "user", "content": "hello"}]
            async for _ in provider.create_authed("MiniMax", messages, auth):
                pass

        async def per_account(auth: AuthResult) -> None:
            for _ in range(4):  # one stream per account at a time, as the service allows
                await conversation(auth)

        async def all_of_them() -> float:
            start = time.perf_counter()
            await asyncio.gather(*(per_account(a) for a in auths))
            return time.perf_counter() - start

        async def one() -> float:
            start = time.perf_counter()
            await conversation(auths[0])
            return time.perf_counter() - start

        single, _ = median_of(runs, lambda: runner.run(one()))
        sockets: list[int] = []

        def many() -> float:
            nonlocal created
            created = 0
            value = runner.run(all_of_them())
            sockets.append(created)
            return value

        wall, _ = median_of(runs, many)
        runner.run(provider.aclose())
    report.add("Our client in this process, the emulator in its own process; one `HailuoAI`.")
    report.add("")
    report.add("| measure | median |")
    report.add("|---|---|")
    report.add(f"| one conversation | {single * 1000:.0f} ms |")
    report.add(
        f"| 200 conversations (50 accounts × 4, sequential per account) | {wall * 1000:.0f} ms |"
    )
    report.add(
        f"| wall time / one conversation | {wall / single:.1f}× (floor: 4×, one stream per account) |"
    )
    report.add(
        f"| sockets opened | {sockets[0]} in the first run, then {sockets[1:]} "
        "(kept-alive connections reused) |"
    )


# ------------------------------------------------------------------ 6. import time


def _import_time(stmt: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", stmt], check=True)
    return time.perf_counter() - start


def bench_import(report: Report, runs: int) -> None:
    report.section("6. `import langchain_hailuo` vs `import langchain_core`")
    n = max(runs, 7)
    base, _ = median_of(n, lambda: _import_time("pass"))
    core, _ = median_of(n, lambda: _import_time("import langchain_core"))
    core_models, _ = median_of(
        n, lambda: _import_time("from langchain_core.language_models import BaseChatModel")
    )
    ours, _ = median_of(n, lambda: _import_time("import langchain_hailuo"))
    report.add("Wall time of a fresh interpreter, minus an empty one (median of 7).")
    report.add("")
    report.add("| import | median |")
    report.add("|---|---|")
    report.add(f"| `langchain_core` | {(core - base) * 1000:.0f} ms |")
    report.add(
        f"| `BaseChatModel` (what any chat model package imports) | {(core_models - base) * 1000:.0f} ms |"
    )
    report.add(f"| `langchain_hailuo` | {(ours - base) * 1000:.0f} ms |")
    report.add("")
    report.add(
        f"`langchain_hailuo` costs {(ours - core) * 1000:.0f} ms over `langchain_core` alone and "
        f"{(ours - core_models) * 1000:.0f} ms over `BaseChatModel` "
        "(aiohttp, LangChain's tool and structured-output helpers, our modules; nodriver and "
        "the emulator are not imported)."
    )


# ------------------------------------------------------------------ main


def machine_facts() -> list[str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kib / 2**20:.0f} GiB"
    return [
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- CPU: {cpu}, {os.cpu_count()} cores; memory {mem}",
        (
            f"- Python {platform.python_version()}, aiohttp {aiohttp.__version__}, "
            f"langchain-core {langchain_core.__version__}"
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 runs, smaller where possible")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--no-g4f", action="store_true", help="skip the gpt4free comparisons")
    args = parser.parse_args()
    runs = 5
    report = Report(
        [
            "# Benchmark results",
            "",
            "Written by `make bench` (`benchmarks/run.py`).",
            "",
            *machine_facts(),
        ]
    )
    g4f = None if args.no_g4f else ensure_g4f()
    bench_decoding(report, runs)
    bench_vs_g4f(report, runs, g4f)
    bench_layer(report, runs)
    bench_big(report, runs, g4f)
    bench_many(report, runs)
    bench_import(report, runs)
    args.output.write_text("\n".join(report.lines) + "\n", encoding="utf-8")
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    sys.exit(main())
