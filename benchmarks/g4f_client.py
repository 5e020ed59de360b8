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
from typing import Any

from benchmarks.timing import timed_cases


async def _request(provider: Any, auth: Any, prompt: str, counter: list[int]) -> None:
    """One ``create_authed`` call, its text counted as it streams."""
    messages = [{"role": "user", "content": prompt}]
    async for item in provider.create_authed("minimax", messages, auth):
        if isinstance(item, str):
            counter[0] += len(item)


async def _run(job: dict[str, Any]) -> dict[str, Any]:
    """Point gpt4free's provider at the emulator and time the job's cases through it."""
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

    async def request(prompt: str, counter: list[int]) -> None:
        await _request(HailuoAI, auth, prompt, counter)

    return await timed_cases(job, request)


def main() -> None:
    """Read the job, run it, print the result."""
    job = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(_run(job))))


if __name__ == "__main__":
    main()
