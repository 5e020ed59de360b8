"""Benchmark 7: what ``hailuo serve`` adds over calling ``ChatHailuo`` directly.

The emulator runs in one process, ``hailuo serve`` (the real command) in another, and this
process holds both clients on one event loop: ``ChatHailuo`` talking to the emulator
directly, and a plain aiohttp client talking to the server (which runs its own
``ChatHailuo`` against the same emulator). Both are measured in the same run, alternating.

- Non-streaming: short answers, single requests alternating between the paths; the figure
  is the median of the pairs' differences (target ≤ 2 ms), for ``/v1/chat/completions``
  and for ``/v1/responses`` (the Responses API, each answer kept by id as by default).
- Streaming: 50 streams at once, each a new chat with a ~1,000-character answer the emulator
  paces at 5 ms per 8-byte frame, as the service streams; the figure is the wall time for
  all 50 through the server over the time direct, per round, then the median (target ≤ 1.10).

Run alone with ``python -m benchmarks.serve [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
from pydantic import SecretStr

from benchmarks.bodies import answer_text
from benchmarks.common import (
    ROOT,
    Paired,
    Report,
    emulator_process,
    load_average,
    ms,
    paired,
    verdict,
)
from langchain_hailuo import ChatHailuo
from langchain_hailuo.serve import ServeConfig, Server

STREAMS = 50
API_KEY = "bench-key-not-secret"
FRAME_DELAY = 0.005


@contextlib.contextmanager
def serve_process(info: dict[str, Any]) -> Iterator[str]:
    """``hailuo serve`` over the emulator process; yields its ``…/v1`` base URL."""
    account = info["accounts"][0]
    env = {
        **os.environ,
        "HAILUO_TOKEN": account["token"],
        "HAILUO_UUID": account["uuid"],
        "HAILUO_DEVICE_ID": account["device_id"],
        "HAILUO_BASE_URL": info["url"],
        "HAILUO_PROTOCOL": "v4",
        "HAILUO_SERVE_API_KEYS": API_KEY,
        "HAILUO_AUTH_FILE": os.devnull,
    }
    command = [
        sys.executable,
        "-m",
        "langchain_hailuo.cli",
        "serve",
        "--port=0",
        f"--account-concurrency={STREAMS + 14}",
        f"--max-concurrency={STREAMS + 14}",
    ]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        banner = proc.stdout.readline() if proc.stdout else ""
        if not banner.startswith("Serving on "):
            raise RuntimeError(f"hailuo serve did not start: {banner!r}")
        yield banner.split()[2]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _model(info: dict[str, Any]) -> ChatHailuo:
    """A ``ChatHailuo`` on the emulator process's first account (as the server's own)."""
    account = info["accounts"][0]
    return ChatHailuo(
        protocol="v4",
        base_url=info["url"],
        token=account["token"],
        uuid=account["uuid"],
        device_id=account["device_id"],
        max_concurrency=STREAMS + 14,
    )


class Paths:
    """One answer through each path (each returns the characters received)."""

    def __init__(self, info: dict[str, Any], base_url: str) -> None:
        """Create the direct model and the HTTP client's settings."""
        self.model = _model(info)
        self.url = f"{base_url}/chat/completions"
        self.responses_url = f"{base_url}/responses"
        self.headers = {"Authorization": f"Bearer {API_KEY}"}
        self.session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        """Open the HTTP client's session (one per run, as any client keeps)."""
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=STREAMS + 14))

    async def close(self) -> None:
        """Close both clients."""
        if self.session is not None:
            await self.session.close()
        await self.model.aclose()

    async def direct(self, prompt: str) -> int:
        """``ChatHailuo.ainvoke``."""
        return len(str((await self.model.ainvoke(prompt)).content))

    async def direct_stream(self, prompt: str) -> int:
        """``ChatHailuo.astream``."""
        return sum([len(chunk.text) async for chunk in self.model.astream(prompt)])

    async def served(self, prompt: str) -> int:
        """``POST /v1/chat/completions``, the whole answer."""
        assert self.session is not None
        body = {"model": "MiniMax", "messages": [{"role": "user", "content": prompt}]}
        async with self.session.post(self.url, json=body, headers=self.headers) as response:
            response.raise_for_status()
            data = await response.json()
        return len(data["choices"][0]["message"]["content"])

    async def served_response(self, prompt: str) -> int:
        """``POST /v1/responses``, the whole answer (its message items' text)."""
        assert self.session is not None
        body = {"model": "MiniMax", "input": prompt}
        async with self.session.post(self.responses_url, json=body, headers=self.headers) as got:
            got.raise_for_status()
            data = await got.json()
        return sum(
            len(part["text"])
            for item in data["output"]
            if item["type"] == "message"
            for part in item["content"]
        )

    async def served_stream(self, prompt: str) -> int:
        """``POST /v1/chat/completions`` with ``stream``: SSE chunks up to ``[DONE]``."""
        assert self.session is not None
        body = {
            "model": "MiniMax",
            "messages": [{"role": "user", "content": prompt}],
            "stream": True,
        }
        received = 0
        async with self.session.post(self.url, json=body, headers=self.headers) as response:
            response.raise_for_status()
            async for line in response.content:
                if not line.startswith(b"data: "):
                    continue
                if line.startswith(b"data: [DONE]"):
                    return received
                delta = json.loads(line[6:])["choices"][0]["delta"]
                received += len(delta.get("content") or "")
        raise RuntimeError("the stream ended without [DONE]")


def _pairs(
    loop: asyncio.AbstractEventLoop,
    first: Callable[[str], Awaitable[int]],
    second: Callable[[str], Awaitable[int]],
    prompts: list[str],
) -> list[tuple[float, float]]:
    """Seconds of one request on each path, request by request, alternating which goes first.

    Pairing single requests (not batches) lets the machine's other work hit both sides alike.
    """
    pairs = []
    for index, prompt in enumerate(prompts):
        times = {}
        order = (first, second) if index % 2 == 0 else (second, first)
        for call in order:
            start = time.perf_counter()
            loop.run_until_complete(call(prompt))
            times[call] = time.perf_counter() - start
        pairs.append((times[first], times[second]))
    return pairs


@dataclass(frozen=True)
class PerRequest:
    """Paired single requests: served and direct seconds."""

    pairs: list[tuple[float, float]]

    @property
    def served(self) -> float:
        """The median served request."""
        return statistics.median(a for a, _ in self.pairs)

    @property
    def direct(self) -> float:
        """The median direct request."""
        return statistics.median(b for _, b in self.pairs)

    @property
    def added(self) -> float:
        """The median of the pairs' differences, served - direct."""
        return statistics.median(a - b for a, b in self.pairs)


@contextlib.contextmanager
def _same_loop_server(loop: asyncio.AbstractEventLoop, info: dict[str, Any]) -> Iterator[str]:
    """The same server on this process's loop (no second process); yields its base URL."""
    config = ServeConfig(port=0, api_keys=(SecretStr(API_KEY),), max_concurrency=STREAMS + 14)
    server = Server(_model(info), config)
    url = loop.run_until_complete(server.start())
    try:
        yield f"{url}/v1"
    finally:
        loop.run_until_complete(server.stop())


def _all_at_once(
    loop: asyncio.AbstractEventLoop, call: Callable[[str], Awaitable[int]], prompts: list[str]
) -> float:
    """The seconds for every prompt's stream, all started at once, to end."""

    async def run() -> None:
        await asyncio.gather(*(call(prompt) for prompt in prompts))

    start = time.perf_counter()
    loop.run_until_complete(run())
    return time.perf_counter() - start


def _non_streaming(
    loop: asyncio.AbstractEventLoop,
    info: dict[str, Any],
    base_url: str,
    prompts: list[str],
    *,
    responses: bool = False,
) -> PerRequest:
    """Paired short answers, served (chat completions, or ``responses``) and direct."""
    paths = Paths(info, base_url)
    served = paths.served_response if responses else paths.served
    loop.run_until_complete(paths.open())
    try:
        for _ in range(3):
            loop.run_until_complete(paths.direct(prompts[0]))
            loop.run_until_complete(served(prompts[0]))
        return PerRequest(_pairs(loop, served, paths.direct, prompts))
    finally:
        loop.run_until_complete(paths.close())


def bench_serve(report: Report, runs: int, requests: int = 25) -> tuple[float, float]:
    """Benchmark 7 into the report; returns (added ms per request, streaming ratio)."""
    loop = asyncio.new_event_loop()
    short = [f"Hello number {i}, how are you today?" for i in range(runs * requests)]
    long_text = answer_text(1000)
    streams = [f"{i}: {long_text}" for i in range(STREAMS)]
    try:
        with emulator_process(chunk_size=8) as quick:
            with serve_process(quick) as quick_url:
                whole = _non_streaming(loop, quick, quick_url, short)
                api = _non_streaming(
                    loop, quick, quick_url, short[: len(short) // 2], responses=True
                )
            with _same_loop_server(loop, quick) as same_loop_url:
                inline = _non_streaming(loop, quick, same_loop_url, short[: len(short) // 2])
        with (
            emulator_process(chunk_size=8, chunk_delay=FRAME_DELAY) as paced,
            serve_process(paced) as paced_url,
        ):
            paths = Paths(paced, paced_url)
            loop.run_until_complete(paths.open())
            got = loop.run_until_complete(paths.served_stream(streams[0]))
            want = loop.run_until_complete(paths.direct_stream(streams[0]))
            if got != want:
                raise RuntimeError(f"the two paths disagree: {got} vs {want} characters")
            streamed = paired(
                max(3, runs // 2),
                lambda: _all_at_once(loop, paths.served_stream, streams),
                lambda: _all_at_once(loop, paths.direct_stream, streams),
            )
            loop.run_until_complete(paths.close())
    finally:
        loop.close()
    _write(report, whole=whole, responses=api, inline=inline, streamed=streamed, chars=want)
    return whole.added * 1000, streamed.ratio


def _write(
    report: Report,
    *,
    whole: PerRequest,
    responses: PerRequest,
    inline: PerRequest,
    streamed: Paired,
    chars: int,
) -> None:
    """The section."""
    report.section("7. `hailuo serve` vs `ChatHailuo` called directly")
    report.add(
        "The emulator in one process, the real `hailuo serve` command in another (v4 protocol, "
        "one account), this process holding both clients on one event loop: `ChatHailuo` "
        "against the emulator, and a plain aiohttp client against the server (which runs "
        "its own `ChatHailuo` against the same emulator). Every request is a new chat. "
        "Non-streaming requests alternate one by one (served, direct, direct, served…) and "
        "the figure is the median of the pairs' differences; the streaming rounds alternate "
        "and the figure is the median of the rounds' ratios. A second row does the same through "
        "`POST /v1/responses`; a third runs the same server "
        "on the client's own event loop (no second process) to separate what the server's "
        "code costs from what a second process costs on this shared 2-core machine."
    )
    report.add()
    report.table(
        ["measure", "through `hailuo serve`", "`ChatHailuo` directly", "added"],
        [
            [
                (
                    f"non-streaming, short answer, `hailuo serve` process ({len(whole.pairs)} "
                    "pairs): median per request"
                ),
                ms(whole.served, 2),
                ms(whole.direct, 2),
                f"**+{ms(whole.added, 2)}** (median of differences)",
            ],
            [
                (
                    f"non-streaming, short answer, `POST /v1/responses` (the Responses API, "
                    f"{len(responses.pairs)} pairs): median per request"
                ),
                ms(responses.served, 2),
                ms(responses.direct, 2),
                f"**+{ms(responses.added, 2)}** (median of differences)",
            ],
            [
                f"same, server on the client's event loop ({len(inline.pairs)} pairs)",
                ms(inline.served, 2),
                ms(inline.direct, 2),
                f"+{ms(inline.added, 2)}",
            ],
            [
                (
                    f"streaming, {STREAMS} streams at once, ~{chars:,} characters each, "
                    f"{FRAME_DELAY * 1000:g} ms per 8-byte frame, `hailuo serve` process: wall "
                    f"time for all ({len(streamed.first)} rounds)"
                ),
                ms(streamed.first_median, 0),
                ms(streamed.second_median, 0),
                f"**{(streamed.ratio - 1) * 100:+.1f} %** (median of rounds' ratios)",
            ],
        ],
    )
    report.add(
        f"Targets: serve adds ≤ 2 ms per non-streaming request: "
        f"{verdict(whole.added <= 0.002)} (+{ms(whole.added, 2)}), through the Responses API "
        f"too: {verdict(responses.added <= 0.002)} (+{ms(responses.added, 2)}); ≤ 10 % to the streaming "
        f"time of {STREAMS} concurrent streams: {verdict(streamed.ratio <= 1.10)} "
        f"({(streamed.ratio - 1) * 100:+.1f} %). Load average at the end: {load_average()}."
    )
    report.add()
    report.add(
        "What the server adds per request: parsing the JSON body and the API key check, one "
        "pass over the history for the conversation store (a chained hash: the key to look "
        "up and the key to remember come from the same pass), one more loopback HTTP hop "
        "with its own connection handling, and encoding each chunk as an SSE line (text "
        "deltas around a frame encoded once per answer) that the client parses again. The "
        "third row shows what the server's own code costs on one event loop; what the first "
        "row adds beyond it is the second process: every request and every chunk needs it "
        "to be scheduled, which on a machine whose two cores are shared with other work "
        "(see the load average) is waiting, not our code."
    )


def main() -> None:
    """Run benchmark 7 alone and print its section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    args = parser.parse_args()
    bench_serve(Report(), 3 if args.quick else 9)


if __name__ == "__main__":
    main()
