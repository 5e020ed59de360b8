"""The :class:`Emulator`: several loopback origins serving both protocols.

One server cannot be two origins, so each role gets its own aiohttp site on a free port of
127.0.0.1: the v4 API and its login page (``url``), the Agent control API and its login page
(``agent_url``), the Agent stream host (``agent_stream_url``), and two origins that only
redirect (``redirect_url`` to ``url``, ``agent_redirect_url`` to ``agent_url``).
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import socket
import sys
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final, TextIO

from aiohttp import web
from typing_extensions import Self

from langchain_hailuo.emulator.agent import DEFAULT_API_PREFIX, AgentRoutes
from langchain_hailuo.emulator.control import CONTROL_PATH, add_control_routes, apply_entries
from langchain_hailuo.emulator.core import (
    EmulatorAccount,
    EmulatorState,
    Fault,
    RecordedRequest,
    ScriptedReply,
)
from langchain_hailuo.emulator.pages import LoginPages
from langchain_hailuo.emulator.uploads import StoredObject
from langchain_hailuo.emulator.v4 import V4Routes

__all__ = ["Emulator", "run_forever"]

_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
_ROLES: Final = ("v4", "agent", "agent_stream", "redirect", "agent_redirect", "storage")
_MAX_BODY: Final = 64 * 1024 * 1024  # long folded histories are sent as one prompt

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _recording_middleware(state: EmulatorState, origin: str) -> Any:
    """A middleware that records every request an origin receives."""

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        state.record(request, origin)
        try:
            return await handler(request)
        finally:
            state.forget(request)

    return record


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port`` (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.setblocking(False)  # noqa: FBT003 - socket API
    return sock


class Emulator:
    """A local stand-in for the Hailuo v4 web chat and the MiniMax Agent, on 127.0.0.1.

    Use it as an async context manager, or call :meth:`start` and :meth:`stop`::

        async with Emulator() as emulator:
            token = emulator.default_account.token
            ...  # talk to emulator.url / emulator.agent_url / emulator.agent_stream_url

    Attributes:
        url: The v4 origin (``POST /v4/api/chat/msg``) and its login page (``GET /``).
        agent_url: The Agent control origin (user info, config, agents, sessions, login page).
        agent_stream_url: The Agent stream origin (``POST {prefix}/session/{id}/message``).
        storage_url: The object storage of Agent uploads (``POST /<bucket>``, answers 204).
        redirect_url: Answers every request with ``redirect_status`` to the same path on ``url``.
        agent_redirect_url: The same, pointing at ``agent_url``.
        redirect_status: 301 (default) or 308 etc.; may be changed at any time.
        default_account: The first account (made up when none are given).
        accounts: The accounts by name.
        v4: The v4 routes (``v4.chats`` holds the chats).
        agent: The Agent routes (``agent.sessions`` holds the sessions; ``agent.require_config``).
    """

    def __init__(
        self,
        *,
        accounts: list[EmulatorAccount] | None = None,
        chunk_delay: float = 0.0,
        chunk_size: int = 8,
        host: str = "127.0.0.1",
        port: int = 0,
        redirect_status: int = 301,
        api_prefix: str = DEFAULT_API_PREFIX,
        require_config: bool = True,
        unix_window: float | None = 60.0,
        agent_final_message: bool = True,
        first_byte_delay: float = 0.0,
    ) -> None:
        """Configure the emulator (nothing listens before :meth:`start`)."""
        if host not in _LOOPBACK_HOSTS:
            raise ValueError(f"the emulator binds loopback addresses only, not {host!r}")
        if redirect_status not in _REDIRECT_STATUSES:
            raise ValueError(f"{redirect_status} is not a redirect status")
        self._host = "127.0.0.1" if host == "localhost" else host
        self._port = port
        self.redirect_status = redirect_status
        self._state = EmulatorState(accounts or [EmulatorAccount()])
        self.v4 = V4Routes(
            self._state, chunk_size=chunk_size, chunk_delay=chunk_delay, unix_window=unix_window
        )
        self.agent = AgentRoutes(
            self._state,
            chunk_size=chunk_size,
            chunk_delay=chunk_delay,
            api_prefix=api_prefix,
            require_config=require_config,
            final_message=agent_final_message,
            first_byte_delay=first_byte_delay,
        )
        self._runners: list[web.AppRunner] = []
        self._urls: dict[str, str] = {}

    # ------------------------------------------------------------------ public state

    @property
    def default_account(self) -> EmulatorAccount:
        """The default account (the first one)."""
        return self._state.default_account

    @property
    def accounts(self) -> dict[str, EmulatorAccount]:
        """The accounts by name."""
        return self._state.accounts

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (tokens replaced by ``<token>``)."""
        return self._state.requests

    @property
    def faults(self) -> list[Fault]:
        """The queued faults (with their remaining ``times``)."""
        return self._state.faults

    @property
    def disconnects(self) -> list[RecordedRequest]:
        """The streamed requests whose client went away before the answer ended, oldest first."""
        # A client that closes the connection mid-answer (a cancelled task, a ``break`` out of the
        # stream, an idle timeout during a ``stall``) ends the turn: the Agent session is free again
        # and nothing is logged.
        return [r for r in self._state.requests if r.disconnected]

    @property
    def peak_streams(self) -> int:
        """The most answers streamed at the same time so far (both protocols, all accounts)."""
        return self._state.peak_streams

    @property
    def account_peaks(self) -> dict[str, int]:
        """Per account name: the most answers it streamed at the same time so far."""
        return dict(self._state.account_peaks)

    def reset_peak_streams(self) -> None:
        """Start counting :attr:`peak_streams` and :attr:`account_peaks` afresh (from now)."""
        self._state.peak_streams = self._state.streams_now
        self._state.account_peaks = {k: v for k, v in self._state.account_streams.items() if v}

    def requests_to(self, endpoint: str, *, account: str | None = None) -> list[RecordedRequest]:
        """The recorded requests of one endpoint (``chat``, ``config``, ``session``...)."""
        return [
            r
            for r in self._state.requests
            if r.endpoint == endpoint and (account is None or r.account == account)
        ]

    def _url(self, role: str) -> str:
        """The origin of a listener (``v4``, ``agent``, ``agent_stream``...), once started."""
        try:
            return self._urls[role]
        except KeyError:
            raise RuntimeError("the emulator is not running: call start() first") from None

    @property
    def url(self) -> str:
        """The v4 origin, e.g. ``http://127.0.0.1:41234``."""
        return self._url("v4")

    @property
    def agent_url(self) -> str:
        """The Agent control origin."""
        return self._url("agent")

    @property
    def agent_stream_url(self) -> str:
        """The Agent stream origin."""
        return self._url("agent_stream")

    @property
    def storage_url(self) -> str:
        """The object storage origin the Agent's upload prepare call points at."""
        return self._url("storage")

    @property
    def uploads(self) -> list[StoredObject]:
        """Every object the storage accepted, oldest first (one per upload made)."""
        return self.agent.uploads.stored

    def expire_uploads(self) -> None:
        """Forget the stored objects: a turn that names one is refused (HTTP 400)."""
        self.agent.uploads.expire()

    @property
    def redirect_url(self) -> str:
        """An origin that redirects every request to :attr:`url`."""
        return self._url("redirect")

    @property
    def agent_redirect_url(self) -> str:
        """An origin that redirects every request to :attr:`agent_url`."""
        return self._url("agent_redirect")

    def model_kwargs(
        self, *, protocol: str = "agent", account: str | None = None
    ) -> dict[str, Any]:
        """Keyword arguments that point ``ChatHailuo`` (or a provider) at this emulator."""
        # ``protocol``, ``token``, ``base_url``, ``uuid``, ``device_id`` and, for the Agent,
        # ``stream_url``. The token is the emulator's made-up one.
        chosen = self.account(account)
        if protocol == "v4":
            return {
                "protocol": "v4",
                "token": chosen.token,
                "base_url": self.url,
                "uuid": chosen.uuid,
                "device_id": chosen.device_id,
            }
        if protocol != "agent":
            raise ValueError(f"unknown protocol {protocol!r}: use 'agent' or 'v4'")
        return {
            "protocol": "agent",
            "token": chosen.token,
            "base_url": self.agent_url,
            "stream_url": self.agent_stream_url,
            "uuid": chosen.uuid,
            "device_id": chosen.tab_device_id,
        }

    # ------------------------------------------------------------------ scripts and faults

    def account(self, name: str | None = None) -> EmulatorAccount:
        """An account by name (the default one for ``None``)."""
        return self._state.account(name)

    def script(
        self,
        *replies: str | ScriptedReply,
        account: str | None = None,
        reasoning: str | None = None,
    ) -> None:
        """Queue exact replies (FIFO, per account) used instead of the default reply."""
        self._state.add_script(replies, account, reasoning)

    def fault(
        self, kind: str, *, account: str | None = None, times: int = 1, **params: Any
    ) -> Fault:
        """Make the next request(s) fail."""
        # The queued fault (its ``times`` counts down).
        return self._state.add_fault(kind, account, times, params)

    def clear_faults(self) -> None:
        """Forget every queued fault."""
        self._state.faults.clear()

    def clear_script(self) -> None:
        """Forget every queued reply and fault (``DELETE /_emulator/script``)."""
        self._state.scripts.clear()
        self._state.faults.clear()

    def quota_wall(self, account: str | None = None, *, times: int = -1) -> Fault:
        """Put an account behind a quota wall (Agent): its answers are the billing wall."""
        return self.fault("quota_wall", account=self.account(account).name, times=times)

    def rate_limit(
        self, account: str | None = None, *, seconds: float = 2.0, times: int = -1
    ) -> Fault:
        """Rate-limit an account: its answers get HTTP 429 with ``Retry-After: seconds``."""
        name = self.account(account).name
        return self.fault("http_429", account=name, times=times, seconds=f"{seconds:g}")

    def lift(self, fault: Fault) -> None:
        """Withdraw a queued fault (a quota wall or rate limit ends)."""
        self._state.faults[:] = [f for f in self._state.faults if f is not fault]

    @property
    def renewals(self) -> int:
        """How many tokens ``POST /v1/api/user/renewal`` issued (the Agent's renewal)."""
        return self._state.renewals

    @property
    def registered_devices(self) -> list[str]:
        """The ``uuid`` of every v4 ``/v1/api/user/device/register`` call, in order."""
        return self._state.registered_devices

    def rotate_token(self, account: str | None = None) -> str:
        """Give an account a new token; the old one gets 401 from now on."""
        return self._state.rotate_token(account)

    # ------------------------------------------------------------------ lifecycle

    def _build_app(self, role: str) -> web.Application:
        """The application serving one origin."""
        uploads = self.agent.uploads
        app = web.Application(
            middlewares=[_recording_middleware(self._state, role)],
            client_max_size=_MAX_BODY + (uploads.max_bytes if role == "storage" else 0),
        )
        if role == "v4":
            LoginPages(self._state, "v4").add_to(app)
            self.v4.add_to(app)
            add_control_routes(app, self)
        elif role == "agent":
            LoginPages(self._state, "agent").add_to(app)
            self.agent.add_control_to(app)
        elif role == "agent_stream":
            self.agent.add_stream_to(app)
        elif role == "storage":
            uploads.add_storage_to(app)
        else:
            target = "v4" if role == "redirect" else "agent"
            app.router.add_route("*", "/{tail:.*}", self._redirect_handler(target))
        return app

    def _redirect_handler(self, target: str) -> Handler:
        """A handler answering ``redirect_status`` to the same path on another origin."""

        async def redirect(request: web.Request) -> web.StreamResponse:
            self._state.record_of(request).endpoint = "redirect"
            location = self._urls[target] + request.raw_path
            return web.Response(status=self.redirect_status, headers={"Location": location})

        return redirect

    async def start(self) -> Self:
        """Start every origin on its own free loopback port."""
        if self._runners:
            raise RuntimeError("the emulator is already running")
        self._state.stopped.clear()
        host = f"[{self._host}]" if ":" in self._host else self._host
        for role in _ROLES:
            runner = web.AppRunner(self._build_app(role), access_log=None, shutdown_timeout=0.5)
            await runner.setup()
            self._runners.append(runner)
            sock = _bind(self._host, self._port if role == "v4" else 0)
            port = sock.getsockname()[1]
            await web.SockSite(runner, sock).start()
            self._urls[role] = f"http://{host}:{port}"
        self.agent.uploads.storage_url = self._urls["storage"]
        return self

    async def stop(self) -> None:
        """Stop every origin; streams still running (stalled ones too) are cut off."""
        self._state.stopped.set()
        tasks = list(self._state.active)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        runners, self._runners = self._runners, []
        for runner in runners:
            with contextlib.suppress(Exception):
                await runner.cleanup()
        self._urls.clear()

    async def __aenter__(self) -> Self:
        """Start the emulator."""
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the emulator."""
        await self.stop()

    def describe(self) -> str:
        """The origins and the default account, one per line (shows the made-up token)."""
        account = self.default_account
        lines = [
            f"v4 chat + login page:   {self.url}",
            f"agent control + login:  {self.agent_url}",
            f"agent stream:           {self.agent_stream_url}",
            f"agent upload storage:   {self.storage_url}",
            f"redirect -> v4:         {self.redirect_url}",
            f"redirect -> agent:      {self.agent_redirect_url}",
            f"script control:         POST/DELETE {self.url}{CONTROL_PATH} (JSON entries)",
            f"account:                {account.name}",
            f"token (made up):        {account.token}",
            f"uuid:                   {account.uuid}",
            f"device_id (v4):         {account.device_id}",
            f"tab_device_id (agent):  {account.tab_device_id}",
            f"realUserID (agent):     {account.real_user_id}",
        ]
        return "\n".join(lines)

    def export_lines(self, protocol: str = "agent", account: str | None = None) -> list[str]:
        """Ready-to-paste shell lines that point ``ChatHailuo`` / ``hailuo`` at this emulator."""
        # Only the token is given (as a user would have it): the device pair is made up and kept by
        # the client, v4 registers a device.
        token = self.account(account).token
        if protocol == "v4":
            values = {"HAILUO_PROTOCOL": "v4", "HAILUO_BASE_URL": self.url}
        else:
            values = {
                "HAILUO_PROTOCOL": "agent",
                "HAILUO_BASE_URL": self.agent_url,
                "HAILUO_STREAM_URL": self.agent_stream_url,
            }
        values["HAILUO_TOKEN"] = token
        return [f"export {name}={shlex.quote(value)}" for name, value in values.items()]


async def _serve(emulator: Emulator, out: TextIO) -> None:
    """Run until cancelled, printing the URLs and the ``export`` lines first."""
    async with emulator:
        print(emulator.describe(), file=out)
        for protocol in ("agent", "v4"):
            print(f"\n# {protocol} protocol: paste into another shell", file=out)
            print("\n".join(emulator.export_lines(protocol)), file=out)
        print(file=out, flush=True)
        await asyncio.Event().wait()


def run_forever(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    out: TextIO | None = None,
    script: list[dict[str, Any]] | None = None,
    **options: Any,
) -> None:
    """Run an emulator in the foreground until Ctrl+C, printing its URLs and default token."""
    emulator = Emulator(host=host, port=port, **options)
    apply_entries(emulator, script or [])
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(emulator, out or sys.stdout))
