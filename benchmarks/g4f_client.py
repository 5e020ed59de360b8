"""gpt4free's HailuoAI against the emulator; run with the benchmark's g4f environment.

Reads a JSON job from standard input; prints JSON results. Only public g4f names are used; the
provider is pointed at the emulator by setting its ``url``.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time


async def _one(provider: type, auth: object, prompt: str) -> int:
    received = 0
    async for item in provider.create_authed(
        "minimax", [{"role": "user", "content": prompt}], auth
    ):
        if isinstance(item, str):
            received += len(item)
    return received


async def _run(job: dict) -> dict:
    from g4f.Provider.needs_auth.mini_max.HailuoAI import HailuoAI
    from g4f.providers.response import AuthResult

    HailuoAI.url = job["url"]
    auth = AuthResult(
        token=job["token"],
        path_and_query=job["path_and_query"],
        timestamp=job["timestamp"],
        cookies={},
        headers={"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36"},
        impersonate="chrome",
        proxy=None,
    )
    times: list[float] = []
    received = 0
    error = None
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(job["requests"]):
        start = time.perf_counter()
        try:
            received = await _one(HailuoAI, auth, job["prompt"])
        except Exception as exc:  # noqa: BLE001 - reported, not hidden
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
            times.append(time.perf_counter() - start)
            break
        times.append(time.perf_counter() - start)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "times": times,
        "received": received,
        "error": error,
        "peak_rss_kib": rss_after,
        "rss_growth_kib": rss_after - rss_before,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_run(json.loads(sys.stdin.read())))))
