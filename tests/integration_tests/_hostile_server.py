"""A deliberately misbehaving server for both wire protocols, on 127.0.0.1.

The emulator plays the service as it should be, with a few faults on its happy path; this
server plays it as it should never be: redirects to foreign hosts, failures after the
message arrived, a ``Retry-After`` longer than any budget, stalls, lines that never end,
hundreds of thousands of tiny deltas, the token echoed back, JSON nested without end, bare
CR line ends, an answer whose connection is left open. It speaks just enough of each
protocol (the Agent's identity calls and session, the v4 chat POST) for ``ChatHailuo`` to
reach the misbehaviour, checks no signature, and records every request it receives.

It runs in its own thread with its own event loop, so sync calls (``invoke``) from the test
thread reach it while the test's loop is blocked, and it stops itself at the end of the
module.

Example:
    ```python
    with HostileServer() as server:
        server.behave(Behaviour.redirect_to("http://localhost:9/elsewhere"))
        model = ChatHailuo(**server.model_kwargs("agent"))
    ```
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web
from typing_extensions import Self

from langchain_hailuo._compat import TIMEOUT_ERRORS, timeout

TOKEN = "hostile-test-token-7Q9xZ2"
"""The account's token: not a JWT, so only exact scrubbing can hide it."""
AGENT_ID = "123456789012345"
SESSION_ID = "900000000000001"
V4_CHAT_ID = "424242"
PREFIX = "/minimax-cloud/api/v1"
CHAT_PATHS = (f"{PREFIX}/session/{SESSION_ID}/message", "/v4/api/chat/msg")


@dataclass(frozen=True)
class Seen:
    """One request the server received."""

    method: str
    path: str
    token: str | None
    body: bytes


def agent_chunk(text: str, *, finish: bool = False) -> str:
    """One Agent ``agent_message_chunk`` frame."""
    chunk: dict[str, Any] = {"role": "assistant", "msg_content": text, "finish": finish}
    if finish:
        chunk["finish_reason"] = "stop"
    return "data: " + json.dumps({"type": 6, "agent_message_chunk": chunk}) + "\n\n"


def agent_final(text: str) -> str:
    """The Agent's final type-2 message: the whole answer, ``finish_reason`` and usage."""
    message = {
        "role": "assistant",
        "msg_content": text,
        "finish_reason": "stop",
        "usage": {"input_tokens": 3, "output_tokens": 5, "total_tokens": 8},
    }
    return "data: " + json.dumps({"type": 2, "agent_message": message}) + "\n\n"


def agent_error(message: str) -> str:
    """An Agent error frame (``finish_reason: "error"``)."""
    frame = {"type": 2, "agent_message": {"msg_content": message, "finish_reason": "error"}}
    return "data: " + json.dumps(frame) + "\n\n"


def v4_frames(text: str, *, title: str = "A chat", pieces: int = 3) -> list[str]:
    """A v4 answer: the send result, cumulative snapshots, the final one and the close."""

    def frame(event: str, kind: int, data: dict[str, Any]) -> str:
        envelope = {"type": kind, "statusInfo": {"code": 0, "message": "ok"}, "data": data}
        return f"event: {event}\ndata: {json.dumps(envelope)}\n\n"

    step = max(1, len(text) // pieces)
    cuts = [*range(step, len(text), step), len(text)]
    snapshots = [
        frame(
            "message_result",
            2,
            {
                "messageResult": {
                    "chatID": V4_CHAT_ID,
                    "msgID": "77",
                    "content": text[:cut],
                    "isEnd": 0 if cut == len(text) else 1,
                }
            },
        )
        for cut in cuts
    ]
    return [
        frame("send_result", 1, {"sendResult": {"chatID": V4_CHAT_ID, "chatTitle": title}}),
        *snapshots,
        frame("close_chunk", 8, {}),
    ]


def answer_frames(protocol: str, text: str) -> list[str]:
    """A good answer's frames in ``protocol``: text in pieces, then its end."""
    if protocol == "v4":
        return v4_frames(text)
    pieces = [text[i : i + 8] for i in range(0, len(text), 8)]
    return [*(agent_chunk(p) for p in pieces), agent_chunk("", finish=True), agent_final(text)]


@dataclass
class Behaviour:
    """What the chat endpoint does (identity calls, sessions and redirects are separate).

    Attributes:
        status: Answer with this HTTP status instead of a stream (``body`` as its body).
        body: The error body for ``status``.
        headers: Extra headers (``Retry-After``, ``Location``).
        delay: Seconds to wait before the headers (a first-byte stall).
        frames: The stream's text, in writes (``None``: a good answer to the prompt).
        stall: Keep the connection open, silent, after the frames (until the client goes).
        endless: After the frames, write one line without end, forever.
        raw: Bytes to write as they are (for line-end tricks), after the frames.
        answer_delay: Seconds to wait before writing a good answer (a slow service).
        warm_up: Answer the first chat message well (imports and identity warm up on it).
    """

    status: int | None = None
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    frames: list[str] | None = None
    stall: bool = False
    endless: bool = False
    raw: bytes = b""
    answer_delay: float = 0.0
    warm_up: bool = False


class HostileServer:
    """The server; one per test module (see the module docstring)."""

    def __init__(self) -> None:
        """Create the server (not started)."""
        self.seen: list[Seen] = []
        self.behaviour = Behaviour()
        self.disconnects = 0
        self.active = 0
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Self:
        """Start serving on a free port of 127.0.0.1."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop serving, end the thread and close its loop."""
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/v1/api/user/info", self._user_info)
        app.router.add_get(f"{PREFIX}/config", self._config)
        app.router.add_get(f"{PREFIX}/agent", self._agents)
        app.router.add_post(f"{PREFIX}/agent/{AGENT_ID}/session", self._session)
        app.router.add_route("*", "/{tail:.*}", self._chat)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ test controls

    def behave(self, behaviour: Behaviour) -> None:
        """Set what the chat endpoint does from now on (and forget earlier requests)."""
        self.behaviour = behaviour
        self.seen.clear()
        self.disconnects = 0

    def chat_posts(self) -> list[Seen]:
        """The chat messages received (both protocols)."""
        return [s for s in self.seen if s.path in CHAT_PATHS]

    def model_kwargs(self, protocol: str, **overrides: Any) -> dict[str, Any]:
        """``ChatHailuo`` settings pointing at this server (``overrides`` win)."""
        base: dict[str, Any] = {
            "protocol": protocol,
            "token": TOKEN,
            "base_url": self.url,
            "uuid": "hostile-uuid",
            "device_id": "12345678",
            "max_retries": 2,
        }
        if protocol == "agent":
            base["stream_url"] = self.url
        return {**base, **overrides}

    # ------------------------------------------------------------------ handlers

    def _record(self, request: web.Request, body: bytes) -> None:
        self.seen.append(Seen(request.method, request.path, request.headers.get("token"), body))

    async def _json(self, request: web.Request, payload: dict[str, Any]) -> web.Response:
        self._record(request, await request.read())
        return web.json_response(payload)

    async def _user_info(self, request: web.Request) -> web.Response:
        return await self._json(request, {"data": {"userInfo": {"realUserID": "5550001"}}})

    async def _config(self, request: web.Request) -> web.Response:
        return await self._json(request, {"models": [{"model_id": "MiniMax-M3"}]})

    async def _agents(self, request: web.Request) -> web.Response:
        return await self._json(request, {"agents": [{"agent_role": "mavis", "name": AGENT_ID}]})

    async def _session(self, request: web.Request) -> web.Response:
        return await self._json(request, {"session_id": SESSION_ID})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self._record(request, await request.read())
        b = self.behaviour
        if b.warm_up and len(self.chat_posts()) == 1:
            b = Behaviour()
        if b.delay:
            await self._sleep_or_stop(b.delay)
        if b.status is not None:
            return web.Response(status=b.status, text=b.body, headers=b.headers)
        protocol = "v4" if request.path.startswith("/v4/") else "agent"
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        self.active += 1
        try:
            await response.prepare(request)
            await self._sleep_or_stop(b.answer_delay)
            frames = b.frames if b.frames is not None else answer_frames(protocol, "Fine, thanks.")
            await self._write(response, frames)
            if b.raw:
                await response.write(b.raw)
            if b.endless:
                await self._endless(response)
            if b.stall:
                await self._stall(request)
            else:
                await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self.disconnects += 1
        finally:
            self.active -= 1
        return response

    @staticmethod
    async def _write(response: web.StreamResponse, frames: list[str]) -> None:
        batch: list[bytes] = []
        for frame in frames:  # written in batches: 200,000 frames in a handful of writes
            batch.append(frame.encode("utf-8"))
            if len(batch) >= 4096:
                await response.write(b"".join(batch))
                batch.clear()
        if batch:
            await response.write(b"".join(batch))

    async def _endless(self, response: web.StreamResponse) -> None:
        await response.write(b"data: ")
        piece = b"x" * 65536
        while not self._stopping.is_set():
            await response.write(piece)  # raises once the client has gone

    async def _stall(self, request: web.Request) -> None:
        while not self._stopping.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                raise ConnectionResetError
            await self._sleep_or_stop(0.05)

    async def _sleep_or_stop(self, seconds: float) -> None:
        if seconds > 0:
            with contextlib.suppress(*TIMEOUT_ERRORS):
                async with timeout(seconds):
                    await self._stopping.wait()
