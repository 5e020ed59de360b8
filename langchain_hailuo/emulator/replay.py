"""``hailuo emulator --replay FILE``: serve a recorded transcript back, on 127.0.0.1.

Two origins, as the Agent has: ``control_url`` answers what the transcript recorded for the
control host (and for any other host, such as the page a redirect check fetched),
``stream_url`` what it recorded for the stream host. Each request is answered by the next
unused exchange with the same method and path, in recorded order: its status, its content
type and its body chunks with their recorded spacing (``speed`` scales it; 0: at once). A
request the transcript does not hold gets ``404 {"error": "not in the transcript"}``. No
signature or token is checked: the transcript's secrets were replaced by placeholders.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from types import TracebackType
from typing import Any, TextIO

from aiohttp import web
from typing_extensions import Self

__all__ = ["Replay", "run_replay"]

_ROLES = ("control", "stream")


class Replay:
    """A server answering from a transcript; ``unmatched`` lists what it could not answer."""

    def __init__(self, transcript: dict[str, Any], *, speed: float = 1.0) -> None:
        """Replay ``transcript``, ``speed`` times its chunk spacing (0: at once), once started."""
        self._exchanges: list[dict[str, Any]] = list(transcript["exchanges"])
        self._used: set[int] = set()
        self._speed = speed
        self._runners: list[web.AppRunner] = []
        self.control_url = ""
        self.stream_url = ""
        self.unmatched: list[str] = []

    def _take(self, role: str, method: str, path: str) -> dict[str, Any] | None:
        """The next unused exchange of a role (control also serves ``other``) and route."""
        roles = {role} if role == "stream" else {"control", "other"}
        for index, exchange in enumerate(self._exchanges):
            if (
                index not in self._used
                and exchange.get("origin") in roles
                and exchange.get("method") == method
                and exchange.get("path") == path
            ):
                self._used.add(index)
                return exchange
        return None

    def _handler(self, role: str) -> Any:
        """The catch-all handler of one origin."""

        async def handle(request: web.Request) -> web.StreamResponse:
            await request.read()
            exchange = self._take(role, request.method, request.path)
            if exchange is None or exchange.get("status") is None:
                self.unmatched.append(f"{request.method} {request.path}")
                return web.json_response({"error": "not in the transcript"}, status=404)
            headers = dict(exchange.get("response_headers") or {})
            response = web.StreamResponse(status=int(exchange["status"]), headers=headers)
            await response.prepare(request)
            previous = 0.0
            for at, text in exchange.get("chunks") or []:
                if self._speed > 0 and float(at) > previous:
                    await asyncio.sleep((float(at) - previous) * self._speed)
                previous = float(at)
                await response.write(str(text).encode("utf-8"))
            await response.write_eof()
            return response

        return handle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Listen: the control origin on ``port`` (0: a free one), the stream on a free one."""
        for role in _ROLES:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handler(role))
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            await runner.setup()
            self._runners.append(runner)
            site = web.TCPSite(runner, host, port if role == "control" else 0)
            await site.start()
            bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            url = f"http://{host}:{bound}"
            if role == "control":
                self.control_url = url
            else:
                self.stream_url = url
        return self

    async def stop(self) -> None:
        """Stop listening."""
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    async def __aenter__(self) -> Self:
        """Start on free ports."""
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop."""
        await self.stop()


async def _serve(replay: Replay, port: int, out: TextIO) -> None:
    """Start, print the environment to point a client at it, and wait for Ctrl+C."""
    await replay.start(port=port)
    print(f"Replaying {len(replay._exchanges)} recorded exchanges.", file=out)
    print(f"export HAILUO_BASE_URL={replay.control_url}", file=out)
    print(f"export HAILUO_STREAM_URL={replay.stream_url}", file=out, flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await replay.stop()


def run_replay(transcript: dict[str, Any], *, port: int = 0, out: TextIO | None = None) -> None:
    """Serve a ``hailuo doctor --record`` transcript in the foreground until Ctrl+C."""
    replay = Replay(transcript)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(replay, port, out or sys.stdout))
