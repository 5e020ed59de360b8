"""The timing loop both benchmark clients share (stdlib only: the g4f environment runs it too).

Running the very same loop in ``ours_client.py`` and ``g4f_client.py`` keeps the two sides'
figures comparable.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.procmem import peak_rss_kib, reset_peak, rss_kib

Request = Callable[[str, list[int]], Awaitable[None]]
"""Sends one request with a prompt and adds the characters received to ``counter[0]``."""


async def timed_cases(job: dict[str, Any], request: Request) -> dict[str, Any]:
    """Time every case's requests (after the warm-up ones); report errors, never raise."""
    times: dict[str, list[float]] = {}
    received: dict[str, int] = {}
    out: dict[str, Any] = {"times": times, "received": received, "error": None}
    for case in job["cases"]:
        name, prompt = case["name"], case["prompt"]
        counter = [0]
        start = time.perf_counter()
        try:
            for _ in range(job.get("warmup", 1)):
                await request(prompt, counter)
            times[name] = []
            reset_peak()
            out["rss_before_kib"] = rss_kib()
            for _ in range(case["requests"]):
                counter[0] = 0
                start = time.perf_counter()
                await request(prompt, counter)
                times[name].append(time.perf_counter() - start)
            out["peak_rss_kib"] = peak_rss_kib()
        except Exception as exc:  # noqa: BLE001 - reported in RESULTS.md, not hidden
            out["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            out["failed_after_s"] = time.perf_counter() - start
            out["peak_rss_kib"] = peak_rss_kib()
        finally:
            received[name] = counter[0]
        if out["error"]:
            break
    return out
