"""Our HailuoAI against the emulator, the same job format as ``g4f_client.py``."""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

from langchain_hailuo import AuthResult, HailuoAI


async def _run(job: dict) -> dict:
    auth = AuthResult(
        token=job["token"],
        uuid=job["uuid"],
        device_id=job["device_id"],
        user_agent="Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36",
    )
    times: list[float] = []
    received = 0
    error = None
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    async with HailuoAI(base_url=job["url"], timeout=600) as provider:
        for _ in range(job["requests"]):
            start = time.perf_counter()
            received = 0
            try:
                async for item in provider.create_authed(
                    "MiniMax", [{"role": "user", "content": job["prompt"]}], auth
                ):
                    if isinstance(item, str):
                        received += len(item)
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
