"""``hailuo doctor``: check the live path step by step and say which step fails.

The one command to run when something fails against the real site, and to paste into a
bug report. Each step is timed and marked ``OK``, ``FAIL`` (with the typed error's advice)
or ``SKIP`` (when a step it needs failed, or it was switched off):

1. ``credentials``: which credentials were found, and where;
2. ``token expiry``: the JWT ``exp`` (and whether renewal is due);
3. ``control origin`` / ``stream origin``: DNS and TCP/TLS reach (the stream origin is the
   Agent's ``agent-stream.<domain>``);
4. ``redirects``: the redirect chain from the configured base URL;
5. ``cloudflare``: whether the API answers with a Cloudflare challenge page;
6. ``user info`` (Agent: ``realUserID``) or ``device register`` (v4);
7. ``config`` (Agent: the models);
7a. ``credits`` (Agent: the plan and the credits left, §7.3);
8. ``chat``: one short chat turn (``--no-chat`` skips it: it spends credits);
9. ``protocol drift``: stream frames, fields, event types or error codes the decoder met
   and does not know (their shape only), which is how an upstream change shows first.

Nothing secret is printed: no token, no cookie, no JWT; the account shows as its
fingerprint and ``realUserID`` by its last digits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import aiohttp

from langchain_hailuo._compat import TIMEOUT_ERRORS, timeout
from langchain_hailuo.agent.client import AgentClient
from langchain_hailuo.agent.credits import read_credits
from langchain_hailuo.agent.provider import MiniMaxAgent
from langchain_hailuo.agent.stream import drift_seen
from langchain_hailuo.auth import (
    DEFAULT_BASE_URL,
    RENEWAL_WINDOW,
    AuthManager,
    prepare_credentials,
    recorded_protocol,
    resolve_protocol,
    with_device,
)
from langchain_hailuo.errors import HailuoError, HailuoTokenExpiredError
from langchain_hailuo.transcript import Recorder
from langchain_hailuo.types import AuthResult, Protocol
from langchain_hailuo.v4.provider import HailuoAI

__all__ = ["DoctorOptions", "Step", "challenge_page", "format_step", "run_doctor"]

Status = Literal["OK", "FAIL", "SKIP"]

_MAX_HOPS = 10
_PEEK_BYTES = 4096
_CHAT_PROMPT = "Reply with the single word OK."
_CHALLENGE_MARKERS = ("just a moment", "challenge-platform", "cf-chl", "attention required")


class _StepFailedError(Exception):
    """A step's failure, with the one line to show."""


@dataclass(frozen=True)
class DoctorOptions:
    """What ``hailuo doctor`` checks.

    Attributes:
        base_url: The site (default: ``HAILUO_BASE_URL``, the login's origin, else the
            live Agent site).
        stream_url: The Agent stream origin (default: the login's, else derived).
        protocol: ``auto``, ``agent`` or ``v4``.
        auth_file: The auth file (default: ``HAILUO_AUTH_FILE`` or the per-user file).
        chat: Whether to send one short chat turn.
        timeout: Seconds each step may take.
        env: The environment to read (defaults to ``os.environ``).
        record: Write a transcript of every HTTP exchange of the run to this file, the
            account's secrets replaced by placeholders (see :mod:`langchain_hailuo.transcript`);
            ``hailuo emulator --replay FILE`` serves it back.
    """

    base_url: str | None = None
    stream_url: str | None = None
    protocol: str = "auto"
    auth_file: str | None = None
    chat: bool = True
    timeout: float = 20.0
    env: Mapping[str, str] | None = None
    record: Path | None = None


@dataclass
class Step:
    """One step's result.

    Attributes:
        name: The step's name (``"user info"``).
        status: ``OK``, ``FAIL`` or ``SKIP``.
        detail: What was found, or the error's advice (one line, no secret).
        seconds: How long it took.
    """

    name: str
    status: Status
    detail: str
    seconds: float = 0.0


def format_step(step: Step) -> str:
    """One output line for a step: ``OK   user info        0.03 s  realUserID ...5678``."""
    return f"{step.status:<4}  {step.name:<16} {step.seconds:6.2f} s  {step.detail}"


def challenge_page(status: int, headers: Mapping[str, str], body: bytes) -> bool:
    """Whether an answer is a Cloudflare challenge ("Just a moment...").

    Args:
        status: The HTTP status.
        headers: The response headers.
        body: The start of the body.

    Returns:
        ``True`` for a 403/429/503 with Cloudflare's challenge header or page.
    """
    if status not in {403, 429, 503}:
        return False
    if headers.get("cf-mitigated", "").lower() == "challenge":
        return True
    text = body.decode("utf-8", "replace").lower()
    return any(marker in text for marker in _CHALLENGE_MARKERS)


@dataclass
class _Context:
    """What the steps share."""

    options: DoctorOptions
    manager: AuthManager
    session: aiohttp.ClientSession
    auth: AuthResult | None = None
    protocol: Protocol = "agent"
    base_url: str = DEFAULT_BASE_URL
    failed: set[str] = field(default_factory=set)
    provider: Any = None
    recorder: Recorder | None = None


async def run_doctor(
    options: DoctorOptions, *, report: Callable[[Step], None] | None = None
) -> list[Step]:
    """Run every step (each under ``options.timeout``) and return their results.

    Args:
        options: What to check.
        report: Called with each step as soon as it is done (the CLI prints it).

    Returns:
        The steps in order; the run passed when none has status ``FAIL``.
    """
    manager = AuthManager(auth_file=options.auth_file, base_url=options.base_url, env=options.env)
    steps: list[Step] = []
    recorder = Recorder() if options.record is not None else None
    session = (
        recorder.session()
        if recorder is not None
        else aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
    )
    async with session:
        ctx = _Context(options=options, manager=manager, session=session, recorder=recorder)
        ctx.base_url = (options.base_url or DEFAULT_BASE_URL).rstrip("/")
        try:
            for name, check, needs in _steps(ctx):
                step = await _run_step(ctx, name, check, needs)
                steps.append(step)
                if report is not None:
                    report(step)
        finally:
            if ctx.provider is not None:
                await ctx.provider.aclose()
            if recorder is not None and options.record is not None:
                recorder.write(options.record, ctx.auth)
    return steps


_Check = Callable[["_Context"], Awaitable[str]]


def _steps(ctx: _Context) -> list[tuple[str, _Check, tuple[str, ...]]]:
    """The steps of this run: name, check, and the steps it needs."""
    steps: list[tuple[str, _Check, tuple[str, ...]]] = [
        ("credentials", _credentials, ()),
        ("token expiry", _expiry, ("credentials",)),
        ("control origin", _control_reach, ()),
        ("stream origin", _stream_reach, ()),
        ("redirects", _redirects, ("control origin",)),
        ("cloudflare", _cloudflare, ("control origin",)),
        ("identity", _identity, ("credentials", "control origin")),
        ("config", _config, ("credentials", "identity")),
        ("credits", _credits, ("credentials", "identity")),
        ("chat", _chat, ("credentials", "identity", "stream origin")),
    ]
    if not ctx.options.chat:
        steps[-1] = ("chat", _skipped_chat, ())
    steps.append(("protocol drift", _drift, ()))
    return steps


async def _drift(ctx: _Context) -> str:
    """What the stream decoder met and did not know this run (shape only, never values)."""
    if ctx.protocol != "agent":
        raise _SkippedError("the v4 protocol has no drift report")
    seen = drift_seen()
    if not seen:
        return "no unknown frame, field, event or error code"
    listed = ", ".join(f"{kind} x{count}" for kind, count in sorted(seen.items()))
    # not a failure (the answer still arrived), but named so an upstream change shows early
    return f"unknown to this version (ignored; update langchain-hailuo or report it): {listed}"


async def _run_step(ctx: _Context, name: str, check: _Check, needs: tuple[str, ...]) -> Step:
    """Run one step, timed; a step whose prerequisite failed is skipped and blocks its own."""
    missing = [need for need in needs if need in ctx.failed]
    if missing:
        ctx.failed.add(name)
        return Step(name, "SKIP", f"needs {', '.join(missing)}")
    started = time.monotonic()
    status: Status = "OK"
    try:
        async with timeout(ctx.options.timeout):
            detail = await check(ctx)
    except _SkippedError as skip:
        status, detail = "SKIP", str(skip)
    except TIMEOUT_ERRORS:
        status, detail = "FAIL", f"no answer within {ctx.options.timeout:g} s"
    except _StepFailedError as exc:
        status, detail = "FAIL", str(exc)
    except HailuoError as exc:
        status, detail = "FAIL", f"{type(exc).__name__}: {exc.message}"
    if status == "FAIL":
        ctx.failed.add(name)  # a step that does not apply (SKIP) blocks nothing
    return Step(name, status, detail, time.monotonic() - started)


class _SkippedError(Exception):
    """A step that does not apply (e.g. no stream origin on v4)."""


# --------------------------------------------------------------------------- steps


async def _credentials(ctx: _Context) -> str:
    """Find the credentials (argument-free: ``HAILUO_TOKEN``, then the auth file)."""
    auth = await ctx.manager.get()
    base = (ctx.options.base_url or auth.api_origin or DEFAULT_BASE_URL).rstrip("/")
    ctx.auth, ctx.base_url = auth, base
    ctx.protocol = resolve_protocol(base, ctx.options.protocol, recorded_protocol(auth, base))
    provider: Any
    if ctx.protocol == "agent":
        recorder = ctx.recorder
        client = AgentClient(session_factory=recorder.session) if recorder is not None else None
        provider = MiniMaxAgent(
            base_url=base, stream_url=_stream_setting(ctx.options), client=client
        )
        if recorder is not None:
            recorder.control = base
            with contextlib.suppress(HailuoError):  # an IP base URL without a stream URL
                recorder.stream = provider.settings_for(auth, {}).stream_origin
    else:
        provider = HailuoAI(base_url=base)
    ctx.provider = provider
    return f"{ctx.manager.describe()}; protocol {ctx.protocol} at {base}"


async def _expiry(ctx: _Context) -> str:
    """The token's lifetime."""
    auth = _auth(ctx)
    if auth.expires_at is None:
        return "the token carries no exp; the server decides"
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(auth.expires_at))
    if auth.is_expired(skew=0):
        raise HailuoTokenExpiredError(f"The token expired at {stamp}.")
    days = (auth.expires_at - time.time()) / 86400
    note = ""
    if auth.is_expired(skew=RENEWAL_WINDOW):
        note = (
            "; renewal is due and happens on the next call"
            if ctx.manager.source in {"file", "browser"}
            else "; renewal is due: log in again (HAILUO_TOKEN is never renewed)"
        )
    return f"expires {stamp} (in {days:.1f} days){note}"


async def _control_reach(ctx: _Context) -> str:
    """DNS and TCP/TLS reach of the control origin (the base URL)."""
    return await _reach(ctx.base_url)


async def _stream_reach(ctx: _Context) -> str:
    """DNS and TCP/TLS reach of the Agent stream origin."""
    if ctx.auth is None and _stream_setting(ctx.options) is None:
        raise _SkippedError("the stream origin follows from the credentials (none found)")
    if ctx.protocol != "agent":
        raise _SkippedError("v4 streams from its base URL")
    if ctx.auth is None:
        url = _stream_setting(ctx.options) or ""
    else:  # as a chat would: the setting, else the login's, else agent-stream.<domain>
        url = ctx.provider.settings_for(ctx.auth, {}).stream_origin
    return await _reach(url)


async def _redirects(ctx: _Context) -> str:
    """The redirect chain of the base URL's page (no credentials sent)."""
    chain, status, _, _ = await _follow(ctx.session, ctx.base_url + "/")
    hops = " -> ".join(chain)
    if len(chain) > 1:
        return f"{hops} (HTTP {status}); set base_url to the last one to skip the redirect"
    return f"{hops} (HTTP {status}), no redirect"


async def _cloudflare(ctx: _Context) -> str:
    """Whether the API is behind a Cloudflare challenge for this network."""
    path = "/v1/api/user/info" if ctx.protocol == "agent" else "/"
    chain, status, headers, body = await _follow(ctx.session, ctx.base_url + path)
    if challenge_page(status, headers, body):
        raise _StepFailedError(
            f"{chain[-1]} answered with a Cloudflare challenge page (HTTP {status}). Run "
            "`hailuo login` in a browser on this machine so its cookies are saved with the "
            "login, or use another network."
        )
    return f"no challenge (HTTP {status} without credentials)"


async def _identity(ctx: _Context) -> str:
    """Agent: ``realUserID`` from user info; v4: a device registration."""
    if ctx.protocol == "v4":
        pair = await ctx.provider._client.register_device(_auth(ctx), base_url=ctx.base_url)
        ctx.auth = with_device(_auth(ctx), pair)  # what the chat step then sends
        digits = f"...{pair.device_id[-4:]} ({len(pair.device_id)} digits)"
        return f"device register: device id {digits}"
    auth = await _prepared(ctx)
    settings = ctx.provider.settings_for(auth, {})
    real_user_id = await ctx.provider._client.fetch_real_user_id(auth, settings=settings)
    ctx.auth = auth.model_copy(update={"real_user_id": real_user_id})
    return f"user info: realUserID ...{real_user_id[-4:]} ({len(real_user_id)} digits)"


async def _config(ctx: _Context) -> str:
    """Agent: the models ``/config`` offers (also initialises the account's agent)."""
    if ctx.protocol != "agent":
        raise _SkippedError("v4 has no model list")
    auth = _auth(ctx)
    models = await ctx.provider._client.fetch_models(
        auth, settings=ctx.provider.settings_for(auth, {})
    )
    return "models: " + (", ".join(models) or "(none listed)")


async def _credits(ctx: _Context) -> str:
    """Agent: the plan and the credits left (§7.3; read at most once a minute)."""
    if ctx.protocol != "agent":
        raise _SkippedError("v4 has no credit readout")
    auth = _auth(ctx)
    settings = ctx.provider.settings_for(auth, {})
    reading = await read_credits(ctx.provider._client, auth, settings=settings)
    return reading.describe()


async def _chat(ctx: _Context) -> str:
    """One short chat turn through the provider (as ``ChatHailuo`` sends it)."""
    auth = _auth(ctx)
    started = time.monotonic()
    first: float | None = None
    text = ""
    stream = ctx.provider.create_authed(
        "", [{"role": "user", "content": _CHAT_PROMPT}], auth, auth_manager=ctx.manager
    )
    async with contextlib.aclosing(stream):
        async for item in stream:
            if isinstance(item, str) and item:
                first = first if first is not None else time.monotonic() - started
                text += item
    if not text.strip():
        raise _StepFailedError("the chat turn finished without any answer text")
    return f"answered {len(text)} characters; first text after {first or 0.0:.2f} s"


async def _skipped_chat(_ctx: _Context) -> str:
    """``--no-chat``."""
    raise _SkippedError("skipped (--no-chat): it spends credits")


# --------------------------------------------------------------------------- helpers


def _stream_setting(options: DoctorOptions) -> str | None:
    """The configured stream origin: the option, else ``HAILUO_STREAM_URL``."""
    env = os.environ if options.env is None else options.env
    return options.stream_url or env.get("HAILUO_STREAM_URL") or None


def _auth(ctx: _Context) -> AuthResult:
    """The credentials found by the first step."""
    if ctx.auth is None:  # pragma: no cover - steps needing it are skipped
        raise _StepFailedError("no credentials")
    return ctx.auth


async def _prepared(ctx: _Context) -> AuthResult:
    """The credentials with their device pair, as a provider sends them."""
    auth = await prepare_credentials(_auth(ctx), ctx.protocol, ctx.manager)
    ctx.auth = auth
    return auth


async def _reach(url: str) -> str:
    """Resolve, connect and (for https) shake hands with ``url``'s host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise _StepFailedError(f"DNS lookup of {host} failed ({exc.strerror or exc})") from None
    address = str(infos[0][4][0])
    context = ssl.create_default_context() if secure else None
    try:
        _, writer = await asyncio.open_connection(
            address, port, ssl=context, server_hostname=host if secure else None
        )
    except ssl.SSLError as exc:
        raise _StepFailedError(f"TLS handshake with {host} failed ({exc.reason})") from None
    except OSError as exc:
        raise _StepFailedError(
            f"cannot connect to {host} ({address}:{port}): {exc.strerror or type(exc).__name__}"
        ) from None
    tls = "plain HTTP, no TLS"
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is not None:
        tls = f"{ssl_object.version()}, certificate valid"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return f"{host} -> {address}:{port}, {tls}"


async def _follow(
    session: aiohttp.ClientSession, url: str
) -> tuple[list[str], int, Mapping[str, str], bytes]:
    """GET ``url`` uncredentialed, following redirects: hops, status, headers, body start."""
    chain = [url]
    for _ in range(_MAX_HOPS):
        try:
            async with session.get(chain[-1], allow_redirects=False) as resp:
                body = await resp.content.read(_PEEK_BYTES)
                location = resp.headers.get("Location")
                if resp.status in {301, 302, 303, 307, 308} and location:
                    chain.append(urljoin(chain[-1], location))
                    continue
                return chain, resp.status, dict(resp.headers), body
        except aiohttp.ClientError as exc:
            raise _StepFailedError(f"GET {chain[-1]} failed: {type(exc).__name__}") from None
    raise _StepFailedError(f"more than {_MAX_HOPS} redirects: {' -> '.join(chain[:4])} ...")
