"""gpt4free's ``HailuoAI`` against the emulator process; runs in ``benchmarks/.venv-g4f``.

The same job and result format as ``ours_client.py``. g4f is used through its public
names only: the provider class's ``url`` is pointed at the emulator and it gets the
``AuthResult`` its browser callback would have produced (token, the ``path_and_query`` of
the page's chat request, whose ``unix`` it then reuses for every request, and that
``timestamp``), so every request it sends carries the same frozen ``unix``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from benchmarks.procmem import peak_rss_kib, reset_peak, rss_kib


async def _request(provider: Any, auth: Any, prompt: str, counter: list[int]) -> None:
    """One ``create_authed`` call, its text counted as it streams."""
    messages = [{"role": "user", "content": prompt}]
    async for item in provider.create_authed("minimax", messages, auth):
        if isinstance(item, str):
            counter[0] += len(item)


async def _run(job: dict[str, Any]) -> dict[str, Any]:
    """Time every case's requests (after the warm-up ones); report errors, never raise."""
    from g4f.Provider.needs_auth.mini_max.HailuoAI import HailuoAI  # type: ignore[import-not-found]
    from g4f.providers.response import AuthResult  # type: ignore[import-not-found]

    HailuoAI.url = job["url"]
    auth = AuthResult(
        token=job["account"]["token"],
        path_and_query=job["path_and_query"],
        timestamp=job["timestamp"],
        cookies={},
        headers={"user-agent": job["user_agent"]},
        impersonate="chrome",
        proxy=None,
    )
    times: dict[str, list[float]] = {}
    received: dict[str, int] = {}
    out: dict[str, Any] = {"times": times, "received": received, "error": None}
    for case in job["cases"]:
        name, prompt = case["name"], case["prompt"]
        counter = [0]
        start = time.perf_counter()
        try:
            for _ in range(job.get("warmup", 1)):
                await _request(HailuoAI, auth, prompt, counter)
            times[name] = []
            reset_peak()
            out["rss_before_kib"] = rss_kib()
            for _ in range(case["requests"]):
                counter[0] = 0
                start = time.perf_counter()
                await _request(HailuoAI, auth, prompt, counter)
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


def main() -> None:
    """Read the job, run it, print the result."""
    job = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(_run(job))))


if __name__ == "__main__":
    main()
