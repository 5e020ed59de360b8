"""Benchmark 8: the account pool: 200 conversations over 50 accounts, pool vs no pool.

The emulator process holds each answer back 100 ms (``slow_first_byte``). The same work,
200 new chats over 50 accounts, is done four ways in one run, fresh models each time:

- **no pool, 1 process**: one single-account ``ChatHailuo`` per account, each running 4
  chats one after another, the 50 side by side (what a user without a pool would write);
- **pool, 1 process**: one ``ChatHailuo(accounts=<50>)``, the 200 calls at once; the pool
  keeps one answer per account streaming and hands each freed account to a waiting call;
- **no pool, 4 processes**: the 50 accounts split over 4 processes, as above in each;
- **pool, 4 processes (Redis)**: 4 processes each sending 50 of the calls at once through a
  pool of all 50 accounts shared in a private ``redis-server``.

Ideal: 4 answer latencies (200 answers / 50 accounts, one at a time each). Redis round
trips are counted by the client (``RedisBackend.round_trips``) and by the server
(``total_commands_processed``). Run alone with ``python -m benchmarks.pool [--quick]``,
which rewrites only this section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import HERE, ROOT, Report, emulator_process, load_average, ms
from langchain_hailuo import AuthResult, ChatHailuo

ACCOUNTS = 50
CONVERSATIONS = 200
LATENCY = 0.1
PROCESSES = 4
TITLE = "8. The account pool: 200 conversations over 50 accounts, pool vs no pool"


def _auth(account: dict[str, Any]) -> AuthResult:
    """An emulator account as an AuthResult."""
    return AuthResult(token=account["token"], uuid=account["uuid"], device_id=account["device_id"])


def _model(url: str, **kwargs: Any) -> ChatHailuo:
    """A model on the emulator's v4 origin."""
    return ChatHailuo(protocol="v4", base_url=url, max_retries=0, timeout=120, **kwargs)


async def no_pool(url: str, accounts: list[dict[str, Any]], per_account: int) -> float:
    """One model per account, ``per_account`` chats each one after another, side by side."""
    models = [
        _model(url, token=a["token"], uuid=a["uuid"], device_id=a["device_id"]) for a in accounts
    ]

    async def chats(i: int, model: ChatHailuo) -> None:
        for k in range(per_account):
            await model.ainvoke(f"Conversation {i}-{k}: hello!")

    start = time.perf_counter()
    await asyncio.gather(*(chats(i, m) for i, m in enumerate(models)))
    seconds = time.perf_counter() - start
    for model in models:
        await model.aclose()
    return seconds


async def through_pool(
    url: str, accounts: list[dict[str, Any]], calls: int, pool_url: str | None
) -> tuple[float, int]:
    """``calls`` new chats at once through one pooled model; seconds and Redis round trips."""
    model = _model(url, accounts=[_auth(a) for a in accounts], pool_url=pool_url)
    pool = model.pool
    assert pool is not None
    await pool.accounts()  # loading the accounts is set-up, not work
    before = getattr(pool.backend, "round_trips", 0)
    start = time.perf_counter()
    await asyncio.gather(*(model.ainvoke(f"Conversation {i}: hello!") for i in range(calls)))
    seconds = time.perf_counter() - start
    trips = getattr(pool.backend, "round_trips", 0) - before
    await model.aclose()
    return seconds, trips


async def one_answer(url: str, account: dict[str, Any]) -> float:
    """One answer on a warm model (the latency the ideal is made of)."""
    model = _model(
        url, token=account["token"], uuid=account["uuid"], device_id=account["device_id"]
    )
    await model.ainvoke("warm up")
    start = time.perf_counter()
    await model.ainvoke("one answer")
    seconds = time.perf_counter() - start
    await model.aclose()
    return seconds


# --------------------------------------------------------------------------- processes


def _worker_main() -> None:
    """A worker process: read the job, say ready, wait for go, do it, print the result."""
    job = json.loads(sys.stdin.readline())
    loop = asyncio.new_event_loop()
    print("ready", flush=True)
    sys.stdin.readline()  # go
    if job["pool_url"] is None:
        seconds = loop.run_until_complete(no_pool(job["url"], job["accounts"], job["per_account"]))
        trips = 0
    else:
        seconds, trips = loop.run_until_complete(
            through_pool(job["url"], job["accounts"], job["calls"], job["pool_url"])
        )
    loop.close()
    print(json.dumps({"seconds": seconds, "round_trips": trips}), flush=True)


def _in_processes(jobs: list[dict[str, Any]]) -> tuple[float, list[dict[str, Any]]]:
    """Start one worker per job, release them together; wall seconds and their results."""
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "benchmarks.pool", "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in jobs
    ]
    try:
        for worker, job in zip(workers, jobs, strict=True):
            assert worker.stdin is not None
            assert worker.stdout is not None
            worker.stdin.write(json.dumps(job) + "\n")
            worker.stdin.flush()
            assert worker.stdout.readline().strip() == "ready"
        start = time.perf_counter()
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results = []
        for worker in workers:
            assert worker.stdout is not None
            line = worker.stdout.readline()
            if not line:
                raise RuntimeError(f"a pool benchmark worker failed (code {worker.wait()})")
            results.append(json.loads(line))
        return time.perf_counter() - start, results
    finally:
        for worker in workers:
            with contextlib.suppress(OSError):
                if worker.stdin is not None:
                    worker.stdin.close()
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    """A private ``redis-server`` on a free loopback port (``None`` when not installed)."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), 1) as c,
            ):
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _commands(url: str) -> int:
    """The server's ``total_commands_processed``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()


def _flush(url: str) -> None:
    """Empty the benchmark's Redis between runs."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()


# --------------------------------------------------------------------------- the benchmark


def _split(items: list[Any], parts: int) -> list[list[Any]]:
    """``items`` in ``parts`` nearly equal slices (in order)."""
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(items[start:end])
        start = end
    return out


def bench_pool(report: Report, runs: int) -> None:  # noqa: PLR0915 - one table of many figures
    """Benchmark 8 into the report."""
    per_account = CONVERSATIONS // ACCOUNTS
    samples: dict[str, list[float]] = {
        k: [] for k in ("nopool1", "pool1", "redis1", "nopool4", "redis4", "latency")
    }
    trips: dict[str, list[float]] = {"redis1": [], "redis4": [], "server1": [], "server4": []}
    load_before = load_average()
    with (
        emulator_process(accounts=ACCOUNTS, chunk_size=64, first_byte_delay=LATENCY) as info,
        redis_server() as url,
    ):
        accounts = info["accounts"]
        loop = asyncio.new_event_loop()
        try:
            for _ in range(runs):  # the ways alternate within each run
                samples["latency"].append(
                    loop.run_until_complete(one_answer(info["url"], accounts[0]))
                )
                samples["nopool1"].append(
                    loop.run_until_complete(no_pool(info["url"], accounts, per_account))
                )
                seconds, _ = loop.run_until_complete(
                    through_pool(info["url"], accounts, CONVERSATIONS, None)
                )
                samples["pool1"].append(seconds)
                shares = _split(accounts, PROCESSES)
                wall, _ = _in_processes(
                    [
                        {
                            "url": info["url"],
                            "accounts": s,
                            "per_account": per_account,
                            "pool_url": None,
                        }
                        for s in shares
                    ]
                )
                samples["nopool4"].append(wall)
                if url is None:
                    continue
                _flush(url)
                before = _commands(url)
                seconds, used = loop.run_until_complete(
                    through_pool(info["url"], accounts, CONVERSATIONS, url)
                )
                samples["redis1"].append(seconds)
                trips["redis1"].append(used / CONVERSATIONS)
                trips["server1"].append((_commands(url) - before - 1) / CONVERSATIONS)
                _flush(url)
                before = _commands(url)
                calls = _split(list(range(CONVERSATIONS)), PROCESSES)
                wall, results = _in_processes(
                    [
                        {"url": info["url"], "accounts": accounts, "calls": len(c), "pool_url": url}
                        for c in calls
                    ]
                )
                samples["redis4"].append(wall)
                trips["redis4"].append(sum(r["round_trips"] for r in results) / CONVERSATIONS)
                trips["server4"].append((_commands(url) - before - 1) / CONVERSATIONS)
        finally:
            loop.close()
    med = {k: statistics.median(v) for k, v in samples.items() if v}
    ideal = 4 * med["latency"]
    report.section(TITLE)
    report.add(
        "The emulator process (v4 origin) holds each answer back 100 ms before its first byte. "
        "The same 200 new chats over 50 accounts, done four ways, fresh models each time, the "
        f"ways alternating within each of {runs} runs (medians below). No pool: one "
        "single-account `ChatHailuo` per account, 4 chats one after another each, the 50 side "
        "by side. Pool: one `ChatHailuo(accounts=<50>)` given all 200 calls at once (1 "
        "process), or 4 processes each given 50 calls at once, sharing a pool of all 50 "
        "accounts through a private `redis-server` on 127.0.0.1. The 4-process figures are "
        "wall time from releasing the (already started and imported) workers to their last "
        "answer. Ideal: 4 answer latencies (one answer on a warm model, measured in the same "
        f"runs). 1-minute load average {load_before} at the start, {load_average()} at the end "
        "(other work shares the machine)."
    )
    report.add()
    rows = [["one answer (warm)", ms(med["latency"], 0), "", ""]]

    def row(name: str, key: str, base: str | None) -> None:
        if key not in med:
            rows.append([name, "not measured (no redis-server)", "", ""])
            return
        versus = f"{med[key] / med[base]:.2f}×" if base else ""
        rows.append([name, ms(med[key], 0), versus, f"{med[key] / ideal:.2f}×"])

    row("no pool, 1 process", "nopool1", None)
    row("pool, 1 process (in-process leases)", "pool1", "nopool1")
    row("pool, 1 process (Redis leases)", "redis1", "nopool1")
    row("no pool, 4 processes", "nopool4", None)
    row("pool, 4 processes (Redis leases)", "redis4", "nopool4")
    report.table(["200 conversations", "median", "pool / no pool", "/ ideal"], rows)
    target_1 = med["pool1"] / med["nopool1"]
    lines = [
        f"- Target, pool ≤ 1.10 × no pool in one process: {'met' if target_1 <= 1.10 else '**missed**'} ({target_1:.2f})."
    ]
    if "redis4" in med:
        target_4 = med["redis4"] / med["nopool4"]
        lines.append(
            f"- Target, pool ≤ 1.10 × no pool across 4 processes sharing Redis: "
            f"{'met' if target_4 <= 1.10 else '**missed**'} ({target_4:.2f})."
        )
        lines.append(
            "- Redis round trips per answer, counted by the clients: "
            f"{statistics.median(trips['redis1']):.2f} (1 process), "
            f"{statistics.median(trips['redis4']):.2f} (4 processes). Each answer costs one "
            "acquire script and one release script (which also publishes `freed`); the "
            "releasing process hands the account to its own waiting call directly, other "
            "processes each wake one waiting call on the message; what is above 2 is those "
            "woken calls' retries that lost the account to another process, plus each "
            "process's subscription and registration. Nothing polls. (Redis's own "
            "`total_commands_processed` grew by "
            f"{statistics.median(trips['server1']):.0f} and "
            f"{statistics.median(trips['server4']):.0f} per answer: it also counts the "
            "commands inside the scripts, three per candidate account of each acquire.)"
        )
    for line in lines:
        report.add(line)
    report.add()
    report.add(
        "Where the time beyond the ideal goes: every way runs 200 HTTP exchanges, 200 LangChain "
        "calls and the emulator's 200 answers on 2 cores shared by the emulator process and the "
        "client process(es) (and by other work on this machine), so even the no-pool runs sit "
        "above 4 latencies: that is CPU time, not waiting. The pool adds, per answer, the "
        "lease bookkeeping (in-process: a lock and a dict; Redis: two scripts on a loopback "
        "socket) and, for a call that waits, the hand-over from the released account to the "
        "woken call (one event-loop turn in process, one pub/sub message with Redis)."
    )
    report.add()
    report.add(
        "With Redis the pool misses its target here, and the 4-process run most. This is "
        "not fully explained; what differs from the no-pool runs: each hand-over of an "
        "account between processes needs the waiting process and `redis-server` to get a "
        "core (see the load average above); "
        "each acquire sends every candidate account's key (50) to the script; and each "
        "process ends up with a connection per account it used (up to 200 in all instead "
        f"of 50). The in-process pool, which has none of these, measured {target_1:.2f}× "
        "no pool in the same runs."
    )


def _replace_section(path: Path, section: list[str]) -> None:
    """Put this benchmark's section into RESULTS.md (replacing an older one)."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    lines = text.rstrip("\n").split("\n")
    header = f"## {TITLE}"
    if header in lines:
        start = lines.index(header)
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        while start > 0 and not lines[start - 1].strip():
            start -= 1
        lines = lines[:start] + lines[end:] if end < len(lines) else lines[:start]
    path.write_text("\n".join([*lines, *section]).rstrip() + "\n", encoding="utf-8")


def main() -> int:
    """Run this benchmark alone and update its section of the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="3 runs instead of 5")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    if args.worker:
        _worker_main()
        return 0
    report = Report()
    bench_pool(report, 3 if args.quick else 5)
    _replace_section(args.output, report.lines)
    print(f"\nsection written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
