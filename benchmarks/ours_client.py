"""Our ``HailuoAI`` against the emulator process (main environment).

Reads a JSON job on standard input, prints one JSON result line; the job format is shared
with ``g4f_client.py``: ``url``, ``account`` (``token``, ``uuid``, ``device_id``), ``cases``
(``name``, ``prompt``, ``requests``), ``warmup``. With ``"mode": "raw"`` it only POSTs the
same signed request and reads the body to its end without decoding it: the floor set by the
emulator and the loopback connection.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aiohttp

from benchmarks.timing import timed_cases
from langchain_hailuo import AuthResult, HailuoAI
from langchain_hailuo.v4.client import V4Client, build_form

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


def _auth(job: dict[str, Any]) -> AuthResult:
    """The emulator account as an AuthResult."""
    account = job["account"]
    return AuthResult(
        token=account["token"], uuid=account["uuid"], device_id=account["device_id"], user_agent=UA
    )


async def _run_provider(job: dict[str, Any]) -> dict[str, Any]:
    """Requests through ``HailuoAI.create_authed`` (one provider: connections are reused)."""
    auth = _auth(job)
    async with HailuoAI(base_url=job["url"], timeout=600) as provider:

        async def request(prompt: str, counter: list[int]) -> None:
            messages = [{"role": "user", "content": prompt}]
            async for item in provider.create_authed("MiniMax", messages, auth):
                if isinstance(item, str):
                    counter[0] += len(item)

        return await timed_cases(job, request)


async def _run_raw(job: dict[str, Any]) -> dict[str, Any]:
    """The same signed POSTs, the body read to its end and thrown away (no decoding)."""
    auth = _auth(job)
    client = V4Client()
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:

        async def request(prompt: str, counter: list[int]) -> None:
            form = build_form(msg_content=prompt)
            url = client.chat_url(auth, job["url"])
            data = aiohttp.FormData(default_to_multipart=True)
            for name, value in form.items():
                data.add_field(name, value)
            headers = client.headers_for(auth, url, form)
            async with session.post(url, data=data, headers=headers) as resp:
                resp.raise_for_status()
                async for chunk in resp.content.iter_any():
                    counter[0] += len(chunk)

        return await timed_cases(job, request)


def main() -> None:
    """Read the job, run it, print the result."""
    job = json.loads(sys.stdin.read())
    runner = _run_raw if job.get("mode") == "raw" else _run_provider
    print(json.dumps(asyncio.run(runner(job))))


if __name__ == "__main__":
    main()
