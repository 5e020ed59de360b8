"""What every benchmark shares: the report, paired timing, the emulator process, client runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
G4F_VENV = HERE / ".venv-g4f"
G4F_PYTHON = G4F_VENV / "bin" / "python"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


@dataclass
class Report:
    """The lines of RESULTS.md, also echoed to the terminal as they come."""

    lines: list[str] = field(default_factory=list)

    def section(self, title: str) -> None:
        """Start a ``##`` section."""
        self.add("")
        self.add(f"## {title}")
        self.add("")

    def add(self, text: str = "") -> None:
        """Add one line."""
        self.lines.append(text)
        print(text, flush=True)

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        """Add a Markdown table (``|`` in cells is escaped)."""
        self.add("| " + " | ".join(header) + " |")
        self.add("|" + "---|" * len(header))
        for row in rows:
            self.add("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
        self.add()


@dataclass(frozen=True)
class Paired:
    """Two measures taken alternately (A B, B A, A B…), so drift hits both alike."""

    first: list[float]
    second: list[float]

    @property
    def first_median(self) -> float:
        """The median of the first measure."""
        return statistics.median(self.first)

    @property
    def second_median(self) -> float:
        """The median of the second measure."""
        return statistics.median(self.second)

    @property
    def ratio(self) -> float:
        """The median of the per-round ratios first / second."""
        return statistics.median(a / b for a, b in zip(self.first, self.second, strict=True))


def paired(runs: int, first: Callable[[], float], second: Callable[[], float]) -> Paired:
    """Run two measures ``runs`` times each, alternating which goes first in a round."""
    a: list[float] = []
    b: list[float] = []
    for i in range(runs):
        if i % 2 == 0:
            a.append(first())
            b.append(second())
        else:
            b.append(second())
            a.append(first())
    return Paired(a, b)


def rotated(runs: int, measures: Sequence[Callable[[], float]]) -> list[list[float]]:
    """Run several measures ``runs`` times each, the order rotating round by round.

    Returns:
        One list of ``runs`` values per measure, in the order given.
    """
    values: list[list[float]] = [[] for _ in measures]
    for i in range(runs):
        for k in range(len(measures)):
            index = (i + k) % len(measures)
            values[index].append(measures[index]())
    return values


def timed_batch(
    loop: asyncio.AbstractEventLoop, measure: Callable[[], Awaitable[object]], batch: int
) -> float:
    """The median seconds of ``batch`` runs of the coroutine ``measure`` on ``loop``."""
    values = []
    for _ in range(batch):
        start = time.perf_counter()
        loop.run_until_complete(measure())
        values.append(time.perf_counter() - start)
    return statistics.median(values)


def median_of(runs: int, measure: Callable[[], float]) -> float:
    """The median of ``runs`` calls of ``measure``."""
    return statistics.median(measure() for _ in range(runs))


def verdict(ok: bool) -> str:
    """``met`` or a bold ``missed``."""
    return "met" if ok else "**missed**"


def ms(seconds: float, digits: int = 1) -> str:
    """Seconds as milliseconds text."""
    return f"{seconds * 1000:.{digits}f} ms"


# ------------------------------------------------------------------ machine facts


def _cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory() -> str:
    """Total memory from /proc/meminfo."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        return f"{kib / 2**20:.1f} GiB"
    return "unknown"


def _git_commit() -> str:
    """The checked-out commit (short), or ``unknown``."""
    result = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


def load_average() -> str:
    """The 1-minute load average (how busy the shared machine was)."""
    with contextlib.suppress(OSError):
        return f"{os.getloadavg()[0]:.2f}"
    return "unknown"


def machine_facts(g4f_version: str | None) -> list[str]:
    """Bullet lines: date, CPU, memory, Python and library versions."""
    import aiohttp
    import langchain_core

    return [
        f"- Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; commit {_git_commit()}",
        f"- CPU: {_cpu_model()}, {os.cpu_count()} cores; memory {_memory()}",
        f"- OS: {platform.system()} {platform.release()}",
        (
            f"- Python {platform.python_version()}, aiohttp {aiohttp.__version__}, "
            f"langchain-core {langchain_core.__version__}, "
            f"g4f {g4f_version or 'not installed'} (its own venv)"
        ),
    ]


# ------------------------------------------------------------------ processes


@contextlib.contextmanager
def emulator_process(
    *,
    accounts: int = 1,
    chunk_size: int = 8,
    first_byte_delay: float = 0.0,
    chunk_delay: float = 0.0,
) -> Iterator[dict[str, Any]]:
    """An emulator in its own process, so the clients never share its CPU time or GIL.

    Yields:
        ``{"url", "accounts": [{"token", "uuid", "device_id"}…]}``.
    """
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.serve_emulator",
            f"--accounts={accounts}",
            f"--chunk-size={chunk_size}",
            f"--first-byte-delay={first_byte_delay}",
            f"--chunk-delay={chunk_delay}",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            raise RuntimeError("the emulator process did not start")
        yield json.loads(line)
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ensure_g4f() -> str | None:
    """Create ``benchmarks/.venv-g4f`` with g4f from the registry if needed; its version."""
    if not G4F_PYTHON.exists():
        print("creating benchmarks/.venv-g4f (python -m venv + pip install g4f)…", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(G4F_VENV)], check=True)
    if _g4f_version() is None:
        subprocess.run(
            [str(G4F_PYTHON), "-m", "pip", "install", "-q", "g4f"],
            check=False,
        )
    return _g4f_version()


def _g4f_version() -> str | None:
    """The installed g4f version in the benchmark venv, or None when it cannot be imported."""
    probe = (
        "import importlib.metadata as m; "
        "from g4f.Provider.needs_auth.mini_max.HailuoAI import HailuoAI; "
        "print(m.version('g4f'))"
    )
    result = subprocess.run(
        [str(G4F_PYTHON), "-c", probe], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else None


def run_client(python: Path | str, module: str, job: dict[str, Any]) -> dict[str, Any]:
    """Run a client script on a JSON job in a fresh interpreter; its JSON result.

    A crash is returned as ``{"error": ...}`` so one failing client never stops the run.
    """
    result = subprocess.run(
        [str(python), str(HERE / f"{module}.py")],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        timeout=900,
    )
    if result.returncode != 0 or not result.stdout.strip():
        tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {result.returncode}: {tail[0]}", "times": {}}
    return json.loads(result.stdout.strip().splitlines()[-1])
