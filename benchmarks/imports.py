"""Benchmark 6: the time ``import langchain_hailuo`` takes over ``import langchain_core`` alone.

Each figure is a fresh interpreter's wall time minus an empty interpreter's (``-c pass``),
median of the runs; the statements are run alternately round by round. ``-X importtime``
then names the packages that make up the difference.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict

from benchmarks.common import ROOT, Report, ms

STATEMENTS = {
    "empty interpreter": "pass",
    "`import langchain_core`": "import langchain_core",
    "`from langchain_core.language_models import BaseChatModel`": (
        "from langchain_core.language_models import BaseChatModel"
    ),
    "`import langchain_hailuo`": "import langchain_hailuo",
}


# Byte-code caches on, as in any installed package (PYTHONDONTWRITEBYTECODE would leave
# our source modules to be compiled on every import, and only ours: site-packages has them).
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _wall(statement: str) -> float:
    """Seconds a fresh interpreter takes to run ``statement`` and exit."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, cwd=ROOT, env=_ENV)
    return time.perf_counter() - start


def _self_times(statement: str) -> dict[str, int]:
    """Microseconds of import self-time per top-level package (``-X importtime``)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=_ENV,
    )
    totals: dict[str, int] = defaultdict(int)
    for line in result.stderr.splitlines():
        parts = line.split("|")
        if (
            len(parts) == 3
            and parts[0].startswith("import time:")
            and parts[0][12:].strip().isdigit()
        ):
            totals[parts[2].strip().split(".")[0]] += int(parts[0][12:].strip())
    return totals


def _extra_packages(top: int = 5) -> str:
    """The packages ``langchain_hailuo`` imports beyond ``BaseChatModel``, heaviest first."""
    base = _self_times(STATEMENTS["`from langchain_core.language_models import BaseChatModel`"])
    ours = _self_times("import langchain_hailuo")
    extra = {name: us - base.get(name, 0) for name, us in ours.items()}
    heaviest = sorted(extra.items(), key=lambda item: -item[1])[:top]
    return ", ".join(f"`{name}` {us / 1000:.0f} ms" for name, us in heaviest if us > 0)


def bench_imports(report: Report, runs: int) -> None:
    """Benchmark 6 into the report."""
    samples: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    for statement in STATEMENTS.values():
        _wall(statement)  # writes the byte-code caches
    for _ in range(runs):
        for name, statement in STATEMENTS.items():
            samples[name].append(_wall(statement))
    median = {name: sorted(v)[len(v) // 2] for name, v in samples.items()}
    empty = median["empty interpreter"]
    core = median["`import langchain_core`"] - empty
    chat = median["`from langchain_core.language_models import BaseChatModel`"] - empty
    ours = median["`import langchain_hailuo`"] - empty
    report.section("6. Import time: `import langchain_hailuo` vs `import langchain_core`")
    report.add(
        f"Fresh interpreters, wall time minus an empty interpreter's ({ms(empty, 0)}), "
        f"median of {runs} alternating rounds."
    )
    report.add()
    report.table(
        ["import", "median"],
        [
            ["`import langchain_core` (the package alone imports little)", ms(core, 0)],
            ["`BaseChatModel` (what any LangChain chat model imports)", ms(chat, 0)],
            ["`import langchain_hailuo`", ms(ours, 0)],
        ],
    )
    report.add(
        f"`import langchain_hailuo` costs **{ms(ours - core, 0)} over `import langchain_core` "
        f"alone**, of which {ms(chat - core, 0)} is `BaseChatModel` itself, which any chat "
        f"model package pays; {ms(ours - chat, 0)} is ours on top of that. Heaviest packages "
        f"beyond `BaseChatModel` by `-X importtime` self time: {_extra_packages()}. "
        "(nodriver and the emulator are imported only when used; byte-code caches were "
        "written before timing.)"
    )
