"""Shared emulator state: accounts, made-up tokens, scripts, faults, recorded requests.

The v4 routes (``v4.py``), the Agent routes (``agent.py``) and the login pages
(``pages.py``) all work on one :class:`EmulatorState`; none of them imports another.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import time
import uuid as uuid_module
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from langchain_hailuo._compat import TIMEOUT_ERRORS, timeout

__all__ = [
    "AGENT_FAULTS",
    "BASE_RESP_OK",
    "COMMON_FAULTS",
    "FAULT_KINDS",
    "HTTP_FAULTS",
    "STREAM_FAULTS",
    "V4_FAULTS",
    "EmulatorAccount",
    "EmulatorState",
    "EventStream",
    "Fault",
    "RecordedRequest",
    "ScriptedReply",
    "StreamAbortedError",
    "default_reasoning",
    "default_reply",
    "error_response",
    "json_text",
    "make_token",
    "random_digits",
    "wait_first_byte",
]


COMMON_FAULTS: Final = frozenset(
    {
        "http_401",
        "http_401_empty",
        "http_403_bot",
        "http_429",
        "http_500",
        "slow_first_byte",
        "stall",
        "drop",
        "malformed_line",
        "stream_error",
    }
)
"""Fault kinds both protocols understand."""

AGENT_ONLY_FAULTS: Final = frozenset(
    {
        "http_409",
        "not_configured",
        "invalid_signature",
        "quota_wall",
        "session_transient",
        "upload_refused",
        "storage_403",
        "attachment_refused",
        "internal_error",
        "risk_control",
        "frames",
    }
)
_FAULT_TARGETS: Final = {"upload_refused": "upload_prepare", "storage_403": "storage"}
"""Where a fault applies when no ``on`` is given (else the chat turn)."""
V4_FAULTS: Final = COMMON_FAULTS
"""Fault kinds the v4 chat route acts on."""
AGENT_FAULTS: Final = COMMON_FAULTS | AGENT_ONLY_FAULTS
"""Fault kinds the Agent routes act on."""
FAULT_KINDS: Final = AGENT_FAULTS
"""Every fault kind :meth:`EmulatorState.add_fault` accepts."""

HTTP_FAULTS: Final = frozenset(
    {
        "http_401",
        "http_401_empty",
        "http_403_bot",
        "http_429",
        "http_500",
        "http_409",
        "not_configured",
        "invalid_signature",
        "internal_error",
        "risk_control",
    }
)
"""Faults answered with an HTTP error instead of a stream."""
STREAM_FAULTS: Final = frozenset({"stall", "drop", "malformed_line"})
"""Faults the :class:`EventStream` applies while writing."""

FAULT_HEADER = "x-emulator-fault"
"""Request header that applies a fault to that one request: ``kind; key=value; ...``."""

_EPOCH_30_DAYS = 30 * 24 * 3600
RENEWED_LIFETIME: Final = 40 * 24 * 3600
"""Seconds a renewed token lives (protocol notes §2.5: about 40 days)."""
_DISCONNECT_POLL = 0.02
"""Seconds between checks for a client that left during a stall."""


def random_digits(count: int) -> str:
    """A random string of exactly ``count`` decimal digits, not starting with 0."""
    first = str(secrets.randbelow(9) + 1)
    return first + "".join(str(secrets.randbelow(10)) for _ in range(count - 1))


def _b64url_json(data: Mapping[str, Any]) -> str:
    """Compact JSON, base64url-encoded without padding (a JWT part)."""
    raw = json.dumps(data, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def make_token(*, user_id: str, device_id: str, name: str, expires_at: float) -> str:
    """Make up a JWT-shaped token (HS256-looking, random signature) for these claims.

    ``user_id`` is the JWT's ``user.id`` (18 digits; not the Agent ``realUserID``),
    ``expires_at`` its ``exp`` in epoch seconds.
    """
    header = {"alg": "HS256", "typ": "JWT"}
    payload = {
        "exp": int(expires_at),
        "iat": int(time.time()),
        "user": {
            "id": user_id,
            "name": name,
            "avatar": "",
            "deviceID": device_id,
            "isAnonymous": False,
        },
    }
    signature = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
    return f"{_b64url_json(header)}.{_b64url_json(payload)}.{signature}"


@dataclass
class EmulatorAccount:
    """One emulated user. Every field left empty is made up when the account is created.

    Attributes:
        name: The account's name (also the login page's username).
        token: The JWT-shaped login token (``_token``).
        uuid: Browser instance id (``UNIQUE_USER_ID``).
        device_id: v4 device id (``USER_HARD_WARE_INFO``, a long digit string).
        tab_device_id: Agent device id (sessionStorage ``tab_device_id``, 8 digits).
        user_id: The JWT's ``user.id`` (18 digits).
        real_user_id: Agent ``realUserID`` (18 digits, different from ``user_id``).
        agent_id: The numeric id of the account's ``mavis`` agent (15 digits).
        models: Model ids ``/config`` offers this account.
        expires_at: The token's ``exp``.
        plan: The plan's name (``get_membership_info``, §7.3).
        credits: Credits left (membership and ``credit/details``, §7.3).
    """

    name: str = "default"
    token: str = ""
    uuid: str = ""
    device_id: str = ""
    tab_device_id: str = ""
    user_id: str = ""
    real_user_id: str = ""
    agent_id: str = ""
    models: list[str] = field(default_factory=lambda: ["MiniMax-M3", "MiniMax-M2.7"])
    expires_at: float = 0.0
    plan: str = "Free"
    credits: float = 1000.0

    def __post_init__(self) -> None:
        """Make up every identifier that was not given."""
        self.uuid = self.uuid or str(uuid_module.uuid4())
        self.device_id = self.device_id or random_digits(18)
        self.tab_device_id = self.tab_device_id or random_digits(8)
        self.user_id = self.user_id or random_digits(18)
        while not self.real_user_id or self.real_user_id == self.user_id:
            self.real_user_id = random_digits(18)
        self.agent_id = self.agent_id or random_digits(15)
        self.expires_at = self.expires_at or time.time() + _EPOCH_30_DAYS
        self.token = self.token or self.new_token()

    def new_token(self, *, expires_at: float | None = None) -> str:
        """A fresh token for this account, not installed (default ``exp``: the account's)."""
        return make_token(
            user_id=self.user_id,
            device_id=self.device_id,
            name=self.name,
            expires_at=self.expires_at if expires_at is None else expires_at,
        )

    def __repr__(self) -> str:
        """Show the account without its token."""
        return f"EmulatorAccount(name={self.name!r}, real_user_id={self.real_user_id!r})"


@dataclass(frozen=True)
class ScriptedReply:
    """An exact reply queued with :meth:`Emulator.script`.

    ``reasoning`` is the Agent ``thinking_content`` (``None``: the default). With a ``marker``
    only a message holding it takes the reply, so a client's side requests (titles, warm-ups)
    leave it queued.
    """

    text: str
    reasoning: str | None = None
    marker: str | None = None


@dataclass
class Fault:
    """A queued failure of kind ``kind`` (:data:`FAULT_KINDS`) with its ``params``.

    ``account`` ``None`` applies to any account; ``times`` is how many requests it still
    affects (``-1``: always).
    """

    kind: str
    account: str | None = None
    times: int = 1
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        """Which call it applies to: an endpoint name, ``any``, or by default ``chat``."""
        return str(self.params.get("on", _FAULT_TARGETS.get(self.kind, "chat")))

    def matches(self, *, account: str | None, endpoint: str, protocol: str) -> bool:
        """Whether this fault fires for a request of ``account`` (``None``: unknown token)."""
        kinds = V4_FAULTS if protocol == "v4" else AGENT_FAULTS
        wanted_protocol = self.params.get("protocol")
        return (
            self.times != 0
            and self.kind in kinds
            and (self.account is None or self.account == account)
            and (wanted_protocol is None or wanted_protocol == protocol)
            and self.target in {endpoint, "any"}
        )

    def int_param(self, key: str, default: int) -> int:
        """An integer parameter."""
        return int(self.params.get(key, default))

    def float_param(self, key: str, default: float) -> float:
        """A number parameter."""
        return float(self.params.get(key, default))


@dataclass
class RecordedRequest:
    """A request the emulator received (tokens replaced by ``<token>``).

    Attributes:
        method: HTTP method.
        path: The path, without the query.
        query: The query parameters (last value wins).
        query_order: The query parameter names in the order received.
        headers: Lowercased header names to values.
        body: The parsed body: form fields (v4), JSON (Agent) or text; ``None`` if none.
        account: The caller's account name, once known.
        protocol: ``v4`` or ``agent`` (``None`` for pages and redirects).
        origin: Which emulator origin served it.
        endpoint: The route's name (``chat``, ``config``, ``login_page``...).
        disconnected: The client went away before the streamed answer ended (it closed
            the connection mid-answer, or during a stall).
    """

    method: str
    path: str
    query: dict[str, str]
    query_order: list[str]
    headers: dict[str, str]
    origin: str
    body: Any = None
    account: str | None = None
    protocol: str | None = None
    endpoint: str | None = None
    disconnected: bool = False


class StreamAbortedError(Exception):
    """A fault ended the answer early: the handler must return without finishing."""


def _parse_fault_header(value: str) -> Fault:
    """Read ``kind; key=value; ...`` from the per-request fault header."""
    kind, *pairs = (part.strip() for part in value.split(";"))
    params: dict[str, Any] = {"on": "any"}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        params[key.strip()] = raw.strip()
    return Fault(kind=kind, params=params)


class EmulatorState:
    """Accounts, queued scripts and faults, recorded requests and the stop signal."""

    def __init__(self, accounts: list[EmulatorAccount]) -> None:
        """Hold ``accounts``, the first the default (``ValueError`` for none or a repeated name)."""
        if not accounts:
            raise ValueError("the emulator needs at least one account")
        self.accounts: dict[str, EmulatorAccount] = {}
        for account in accounts:
            if account.name in self.accounts:
                raise ValueError(f"two emulator accounts are named {account.name!r}")
            self.accounts[account.name] = account
        self.default_account = accounts[0]
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.scripts: dict[str, deque[ScriptedReply]] = {}
        self.active: set[asyncio.Task[Any]] = set()
        self.stopped = asyncio.Event()
        self.revoked_tokens: set[str] = set()
        self.renewals = 0
        """How many tokens ``/v1/api/user/renewal`` issued."""
        self.registered_devices: list[str] = []
        """The ``uuid`` of every v4 ``/v1/api/user/device/register`` call, in order."""
        self.streams_now = 0
        self.peak_streams = 0
        self.account_streams: dict[str, int] = {}
        self.account_peaks: dict[str, int] = {}
        self._in_flight: dict[int, RecordedRequest] = {}

    # ------------------------------------------------------------------ accounts

    def account(self, name: str | None) -> EmulatorAccount:
        """The named account, or the default one for ``None`` (``KeyError`` if unknown)."""
        if name is None:
            return self.default_account
        try:
            return self.accounts[name]
        except KeyError:
            raise KeyError(f"no emulator account is named {name!r}") from None

    def by_token(self, token: str | None) -> EmulatorAccount | None:
        """The account a token belongs to, whether or not it is still valid."""
        if not token:
            return None
        return next((a for a in self.accounts.values() if a.token == token), None)

    def token_is_valid(self, account: EmulatorAccount) -> bool:
        """Whether the account's token is unexpired."""
        return account.expires_at > time.time()

    def rotate_token(self, name: str | None = None) -> str:
        """Give an account a new token, returned; the old one is rejected from now on."""
        account = self.account(name)
        self.revoked_tokens.add(account.token)
        account.token = account.new_token()
        return account.token

    def renew_token(self, name: str | None = None) -> str:
        """Renew a token as ``/v1/api/user/renewal`` does (counted); the old one is revoked.

        The new token's ``exp`` is :data:`RENEWED_LIFETIME` from now.
        """
        account = self.account(name)
        account.expires_at = time.time() + RENEWED_LIFETIME
        self.renewals += 1
        return self.rotate_token(account.name)

    def redact(self, text: str) -> str:
        """Replace every account token (current or revoked) in ``text`` by ``<token>``."""
        for token in (*(a.token for a in self.accounts.values()), *self.revoked_tokens):
            if token and token in text:
                text = text.replace(token, "<token>")
        return text

    # ------------------------------------------------------------------ scripts

    def add_script(
        self, replies: tuple[str | ScriptedReply, ...], name: str | None, reasoning: str | None
    ) -> None:
        """Queue exact replies for an account (FIFO)."""
        account = self.account(name)
        queue = self.scripts.setdefault(account.name, deque())
        for reply in replies:
            queue.append(
                reply if isinstance(reply, ScriptedReply) else ScriptedReply(reply, reasoning)
            )

    def next_script(self, name: str, prompt: str = "") -> ScriptedReply | None:
        """Pop the first queued reply ``prompt`` may take (a marked one needs its marker)."""
        queue = self.scripts.get(name) or deque()
        for index, reply in enumerate(queue):
            if reply.marker is None or reply.marker in prompt:
                del queue[index]
                return reply
        return None

    # ------------------------------------------------------------------ faults

    def add_fault(self, kind: str, name: str | None, times: int, params: dict[str, Any]) -> Fault:
        """Queue a fault for ``name`` (``None``: any); ``ValueError`` for a bad kind or times."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {sorted(FAULT_KINDS)}")
        if times == 0 or times < -1:
            raise ValueError("times must be positive, or -1 for always")
        if name is not None:
            self.account(name)
        fault = Fault(kind=kind, account=name, times=times, params=dict(params))
        self.faults.append(fault)
        return fault

    def take_fault(
        self, request: web.Request, *, account: str | None, endpoint: str, protocol: str
    ) -> Fault | None:
        """The fault for this request, one use consumed (an ``x-emulator-fault`` header wins)."""
        header = request.headers.get(FAULT_HEADER)
        if header:
            fault = _parse_fault_header(header)
            return (
                fault
                if fault.matches(account=account, endpoint=endpoint, protocol=protocol)
                else None
            )
        for fault in self.faults:
            if fault.matches(account=account, endpoint=endpoint, protocol=protocol):
                if fault.times > 0:
                    fault.times -= 1
                return fault
        return None

    def caller_of(
        self, request: web.Request, *, protocol: str, endpoint: str, body: Any
    ) -> tuple[EmulatorAccount | None, Fault | None, web.Response | None]:
        """Record a request; return its token's account, its fault and an HTTP fault's response."""
        record = self.record_of(request)
        record.protocol, record.endpoint, record.body = protocol, endpoint, body
        account = self.by_token(request.headers.get("token"))
        record.account = account.name if account else None
        fault = self.take_fault(
            request, account=record.account, endpoint=endpoint, protocol=protocol
        )
        if fault is not None and fault.kind in HTTP_FAULTS:
            return account, fault, error_response(fault.kind, protocol, fault.params)
        return account, fault, None

    # ------------------------------------------------------------------ requests

    def record(self, request: web.Request, origin: str) -> RecordedRequest:
        """Record a request's line and headers (tokens redacted); handlers add the rest."""
        query = {key: self.redact(value) for key, value in request.query.items()}
        if "token" in query:
            query["token"] = "<token>"  # noqa: S105 - a placeholder, not a secret
        headers = {key.lower(): self.redact(value) for key, value in request.headers.items()}
        if "token" in headers:
            headers["token"] = "<token>"  # noqa: S105 - a placeholder, not a secret
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=query,
            query_order=list(request.query.keys()),
            headers=headers,
            origin=origin,
        )
        self.requests.append(recorded)
        self._in_flight[id(request)] = recorded
        return recorded

    def record_of(self, request: web.Request) -> RecordedRequest:
        """The record of a request being handled (made by :meth:`record`)."""
        return self._in_flight[id(request)]

    def forget(self, request: web.Request) -> None:
        """Drop the link from a finished request to its record (the record stays)."""
        self._in_flight.pop(id(request), None)

    def redact_body(self, body: Any) -> Any:
        """A copy of a parsed body with tokens redacted (strings, dicts and lists)."""
        if isinstance(body, str):
            return self.redact(body)
        if isinstance(body, Mapping):
            return {key: self.redact_body(value) for key, value in body.items()}
        if isinstance(body, list):
            return [self.redact_body(value) for value in body]
        return body

    # ------------------------------------------------------------------ streams

    @contextlib.contextmanager
    def tracking(self, account: str | None = None) -> Iterator[None]:
        """Track the handler task for :meth:`Emulator.stop` and count the answers streaming."""
        task = asyncio.current_task()
        if task is not None:
            self.active.add(task)
        self.streams_now += 1
        self.peak_streams = max(self.peak_streams, self.streams_now)
        if account is not None:
            now = self.account_streams[account] = self.account_streams.get(account, 0) + 1
            self.account_peaks[account] = max(self.account_peaks.get(account, 0), now)
        try:
            yield
        finally:
            self.streams_now -= 1
            if account is not None:
                self.account_streams[account] -= 1
            if task is not None:
                self.active.discard(task)


def default_reply(prompt: str, turns: int) -> str:
    """``You said: <prompt>. This chat has N turn(s).``: proves the server kept the context.

    No second full stop when the prompt already ends with ``.``, ``!``, ``?`` or ``…``.
    """
    quoted = prompt.rstrip()
    stop = "" if quoted.endswith((".", "!", "?", "\u2026", "\u3002", "\uff01", "\uff1f")) else "."
    return f"You said: {quoted}{stop} This chat has {turns} turn(s)."


def default_reasoning(prompt: str) -> str:
    """Reasoning text used when none was scripted."""
    return f"The user wrote {len(prompt)} characters. I will repeat them and count the turns."


class EventStream:
    """Writes stream frames to a prepared response, applying a stream fault on the way.

    ``stall`` and ``drop`` fire after ``after`` frames (default 2), or mid-frame after
    ``after_bytes`` bytes; ``malformed_line`` writes one broken ``data:`` line before frame
    ``after`` (default 1). A ``stall`` with ``keepalive`` seconds writes a ``: ping`` line that
    often, or ``keepalive_frame`` as a ``data:`` line (an event that is not answer progress).
    """

    def __init__(
        self,
        request: web.Request,
        response: web.StreamResponse,
        state: EmulatorState,
        fault: Fault | None,
        delay: float,
    ) -> None:
        """Wrap a prepared response, ``delay`` seconds between frames."""
        self._request = request
        self._response = response
        self._state = state
        self._fault = fault if fault is not None and fault.kind in STREAM_FAULTS else None
        self._delay = delay
        self.frames = 0
        self.bytes = 0

    async def send(self, frame: str) -> None:
        """Write one frame (with its blank line); ``StreamAbortedError`` once a fault fired."""
        if self.frames and self._delay:
            await asyncio.sleep(self._delay)
        data = frame.encode("utf-8")
        fault = self._fault
        if fault is not None:
            if fault.kind == "malformed_line" and self.frames == fault.int_param("after", 1):
                await self._write(b'data: {"type":2,"data":{"messageResult":{"content":"\n\n')
                self._fault = None
            elif fault.kind in {"stall", "drop"}:
                await self._maybe_cut(fault, data)
        await self._write(data)
        self.frames += 1

    async def _maybe_cut(self, fault: Fault, data: bytes) -> None:
        """Apply ``stall`` / ``drop`` before (or within) this frame when its limit is reached."""
        if "after_bytes" in fault.params:
            room = fault.int_param("after_bytes", 0) - self.bytes
            if room >= len(data):
                return
            await self._write(data[: max(room, 0)])
        elif self.frames < fault.int_param("after", 2):
            return
        if fault.kind == "stall":
            await self._stall(fault)
        self._abort()
        raise StreamAbortedError

    def client_gone(self) -> bool:
        """Whether the client has closed its end of the connection."""
        transport = self._request.transport
        return transport is None or transport.is_closing()

    async def _stall(self, fault: Fault) -> None:
        """Write no answer (keep-alives only) until the emulator stops or the client leaves."""
        every = fault.float_param("keepalive", 0.0)
        frame = fault.params.get("keepalive_frame")
        line = f"data: {frame}\n\n" if frame else ": ping\n\n"
        loop = asyncio.get_running_loop()
        next_at = loop.time() + every
        while not self._state.stopped.is_set():
            if self.client_gone():
                raise ConnectionResetError("the client closed the connection during a stall")
            if every > 0 and loop.time() >= next_at:
                next_at = loop.time() + every
                await self._write(line.encode("utf-8"))
            with contextlib.suppress(*TIMEOUT_ERRORS):
                async with timeout(_DISCONNECT_POLL):
                    await self._state.stopped.wait()

    async def serve(self, write: Callable[[], Awaitable[None]]) -> None:
        """Write an answer with ``write``, then end the body.

        A fault that cut the answer ends it quietly, and so does a client that went away (the
        request is marked ``disconnected``, see :attr:`Emulator.disconnects`).
        """
        with self._state.tracking(self._state.record_of(self._request).account):
            try:
                await write()
                await self._response.write_eof()
            except StreamAbortedError:
                return
            except ConnectionError:  # aiohttp's "Cannot write to closing transport" too
                self._state.record_of(self._request).disconnected = True

    async def _write(self, data: bytes) -> None:
        """Write and count bytes."""
        if data:
            await self._response.write(data)
            self.bytes += len(data)

    def _abort(self) -> None:
        """Close the connection without ending the body."""
        transport = self._request.transport
        if transport is not None:
            transport.abort()


# ---------------------------------------------------------------------- error answers

_CLOUDFLARE_PAGE = """<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="refresh" content="360"></head><body><div class="main-wrapper" role="main">
<div class="main-content"><h1>Just a moment...</h1><p id="challenge-error-text">Enable JavaScript
and cookies to continue</p></div></div>
<script src="/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1"></script>
</body></html>"""

NOT_CONFIGURED_TEXT: Final = "[1400010501] Environment Variables not configured"
"""The Agent's answer to a message sent before ``/config`` was called."""
QUOTA_WALL_TEXT: Final = "No conversation resources are available. Subscribe to continue."
"""The Agent's billing wall, sent as the answer text with HTTP 200."""
DEVICE_ID_ERROR_CODE: Final = 1406011050
"""``base_resp.status_code`` of the Agent's answer to a non-numeric ``device_id``."""


def _envelope(protocol: str, code: int, message: str) -> dict[str, Any]:
    """The error envelope of a protocol: ``statusInfo`` (v4) or ``base_resp`` (Agent)."""
    if protocol == "v4":
        return {"statusInfo": {"code": code, "message": message}, "data": {}}
    return {"base_resp": {"status_code": code, "status_msg": message}}


def _cloudflare_challenge(
    _protocol: str, _message: str | None, _params: dict[str, Any]
) -> web.Response:
    """A Cloudflare bot challenge ("Just a moment...")."""
    return web.Response(
        status=403,
        text=_CLOUDFLARE_PAGE,
        content_type="text/html",
        headers={"cf-mitigated": "challenge", "server": "cloudflare"},
    )


def _rate_limited(protocol: str, message: str | None, params: dict[str, Any]) -> web.Response:
    """HTTP 429 with ``Retry-After`` (param ``seconds``, default 2)."""
    body = _envelope(protocol, 429, message or "Too many requests, please try again later")
    return web.json_response(
        body, status=429, headers={"Retry-After": str(params.get("seconds", 2))}
    )


def _agent_gateway_error(
    status: int, code: int, status_msg: str, error: str, error_code: str
) -> Callable[[str, str | None, dict[str, Any]], web.Response]:
    """A builder of the Agent gateway's ``{"error", "code", "base_resp"}`` answers."""

    def build(_protocol: str, message: str | None, _params: dict[str, Any]) -> web.Response:
        body: dict[str, Any] = {"error": message or error, "code": error_code}
        body.update(_envelope("agent", code, status_msg))
        return web.json_response(body, status=status)

    return build


_SPECIAL_ANSWERS: Final[dict[str, Callable[[str, str | None, dict[str, Any]], web.Response]]] = {
    "http_401_empty": lambda _protocol, _message, _params: web.Response(status=401),
    "http_403_bot": _cloudflare_challenge,
    "http_429": _rate_limited,
    "not_configured": _agent_gateway_error(
        500,
        1400010501,
        "Environment Variables not configured",
        NOT_CONFIGURED_TEXT,
        "UNEXPECTED_ERROR",
    ),
    "invalid_signature": _agent_gateway_error(
        400, 1400010400, "invalid signature", "invalid signature", "INVALID_SIGNATURE"
    ),
    "device_id": _agent_gateway_error(
        400, DEVICE_ID_ERROR_CODE, "internal error", "internal error", "UNEXPECTED_ERROR"
    ),
    # The same generic answer for a request the server will not serve (§7.2).
    "internal_error": _agent_gateway_error(
        400, DEVICE_ID_ERROR_CODE, "internal error", "internal error", "UNEXPECTED_ERROR"
    ),
}
_PLAIN_ANSWERS: Final = {
    "http_401": (401, 1004, "Login expired, please log in again"),
    "http_409": (409, 409, "session is busy, a turn is still running"),
    "http_500": (500, 500, "Internal Server Error"),
    "bad_request": (400, 1000001, "invalid params"),
    # The notes record the text only; the code is made up.
    "risk_control": (200, 1000050, "operation too often, please try again later"),
    "not_found": (404, 404, "not found"),
}


BASE_RESP_OK: Final = {"status_code": 0, "status_msg": "success"}
"""The Agent ``base_resp`` of a successful call (copy it before changing it)."""


def error_response(
    kind: str, protocol: str, params: Mapping[str, Any] | None = None, *, message: str | None = None
) -> web.Response:
    """The HTTP answer for an HTTP-level failure, as the real service would send it.

    ``kind`` is one of :data:`HTTP_FAULTS`, ``device_id``, ``bad_request`` or ``not_found``;
    ``protocol`` picks the JSON envelope. ``params`` may hold ``seconds`` (``http_429``'s
    ``Retry-After``), ``message`` (``message`` overrides it) and ``code`` (the envelope's code).
    """
    params = dict(params or {})
    message = message or params.get("message")
    special = _SPECIAL_ANSWERS.get(kind)
    if special is not None:
        return special(protocol, message, params)
    status, code, default = _PLAIN_ANSWERS.get(kind, _PLAIN_ANSWERS["http_500"])
    code = int(params.get("code", code))
    return web.json_response(_envelope(protocol, code, message or default), status=status)


async def wait_first_byte(fault: Fault | None) -> None:
    """Apply ``slow_first_byte``: sleep ``delay`` seconds (default 2) before answering."""
    if fault is not None and fault.kind == "slow_first_byte":
        await asyncio.sleep(fault.float_param("delay", 2.0))


def json_text(data: Any) -> str:
    """Compact JSON that keeps non-ASCII characters, as ``JSON.stringify`` writes it."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
