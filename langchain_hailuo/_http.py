"""HTTP plumbing shared by both protocol stacks.

One job each: a per-event-loop :class:`aiohttp.ClientSession` cache, timeouts, mapping of
HTTP statuses to typed errors, a POST that survives redirects, retries that happen only
before the first byte of an answer, and chunk reading with an idle timeout.

Nothing here knows a wire field of either protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import html
import json
import logging
import random
import re
import time
import typing
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus, urljoin, urlsplit

import aiohttp
import yarl

from langchain_hailuo._compat import TIMEOUT_ERRORS, timeout
from langchain_hailuo._sse import DEFAULT_MAX_LINE_BYTES
from langchain_hailuo._timeouts import Timeouts, checked_timeout
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoConfigurationError,
    HailuoConnectionError,
    HailuoError,
    HailuoProtocolError,
    HailuoRateLimitError,
    HailuoRedirectError,
    HailuoResponseTooLargeError,
    HailuoServerError,
    HailuoSessionBusyError,
    HailuoStreamInterruptedError,
    HailuoTimeoutError,
)

__all__ = [
    "DEFAULT_MAX_LINE_BYTES",
    "HttpOptions",
    "LoopSessions",
    "Redactor",
    "RedirectPolicy",
    "StreamedResponse",
    "Timeouts",
    "checked_timeout",
    "connection_dropped",
    "cookie_header",
    "cookieless_session",
    "iter_chunks",
    "origin_of",
    "parse_retry_after",
    "raise_for_http_status",
    "read_limited",
    "read_rest",
    "received_unread",
    "redact_tokens",
    "request_following_redirects",
    "retry_before_first_byte",
    "scrub_error",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_SECRET_MIN_CHARS = 6
"""Shorter secrets (a cookie value ``1``) are not scrubbed: they would mangle any text."""
BODY_END_GRACE = 2.0
"""Longest wait, in seconds, for the rest of a body after the answer finished."""
_JWT_LIKE = re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*")
_BOT_PAGE_MARKERS = (
    "just a moment",
    "cf-chl",
    "challenge-error-text",
    "unable to load site",
    "captcha",
)


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """Client settings shared by both stacks.

    Attributes:
        timeouts: Phase timeouts; ``timeouts.total`` is the whole call's budget.
        max_retries: Extra attempts after a retryable failure before the first byte (0: none).
        backoff_base: First backoff delay in seconds (doubled each attempt, with jitter).
        backoff_max: Longest single backoff delay (a server's ``Retry-After`` may exceed it
            up to ``retry_after_max``).
        retry_after_max: Longest ``Retry-After`` we honour by waiting; longer ones raise.
        proxy: An HTTP(S) proxy URL for every request.
        max_redirects: How many redirects a request may follow.
        max_line_bytes: Longest stream line, multi-line frame or JSON body accepted.
        deadline: ``time.monotonic()`` by which the whole call must end (set per call by
            :meth:`with_deadline`; ``None``: not started, or no total timeout).
    """

    timeouts: Timeouts = field(default_factory=Timeouts)
    max_retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    retry_after_max: float = 60.0
    proxy: str | None = None
    max_redirects: int = 5
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    deadline: float | None = None

    def with_deadline(self, deadline: float | None = None) -> HttpOptions:
        """These options with the call's deadline set (kept when one is set already).

        Args:
            deadline: An explicit deadline (``time.monotonic()`` based); default: now plus
                ``timeouts.total``.

        Returns:
            Options whose every wait ends by the deadline.
        """
        if self.deadline is not None and deadline is None:
            return self
        if deadline is None:
            if self.timeouts.total is None:
                return self
            deadline = time.monotonic() + self.timeouts.total
        return dataclasses.replace(self, deadline=deadline)

    def remaining(self) -> float | None:
        """Seconds left before the deadline (may be negative), or ``None`` without one."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def bounded(self, seconds: float | None) -> float | None:
        """``seconds`` cut to what is left before the deadline (``None``: no limit at all)."""
        left = self.remaining()
        if left is None:
            return seconds
        left = max(left, 0.0)
        return left if seconds is None else min(seconds, left)

    def out_of_time(self, doing: str) -> HailuoTimeoutError:
        """The error for a deadline that ran out while ``doing`` something.

        Args:
            doing: What was under way (``"waiting for the account's other calls"``).

        Returns:
            The typed error, naming the timeout.
        """
        return HailuoTimeoutError(
            f"The call ran out of its {self.timeouts.total:g} s timeout while {doing}; "
            "raise timeout= if the service is just slow."
        )


class LoopSessions:
    """One :class:`aiohttp.ClientSession` per event loop, created on first use.

    A session is bound to the loop it was created on; LangChain's sync paths, Jupyter and
    ``asyncio.run`` each bring their own loop, so the client keeps one session per loop.
    Each session closes when its loop shuts down: it is tied to an async generator that
    the loop finalises in ``shutdown_asyncgens()`` (which ``asyncio.run``, ``asyncio.Runner``
    and the private loop of the sync methods all call), so a model used inside
    ``asyncio.run(main())`` leaves no socket to the garbage collector and prints no
    "Unclosed client session". A loop closed without that step has its session retired
    quietly at the next use (its sockets died with the loop).
    """

    def __init__(self, factory: Callable[[], aiohttp.ClientSession]) -> None:
        """Create the cache.

        Args:
            factory: Builds a new session; called inside the loop that will own it.
        """
        self._factory = factory
        # Loops are held strongly on purpose: a loop collected together with its session
        # (one reference cycle) would let the connector close sockets through a dead loop.
        # A closed loop's session is retired at the next get(), aclose() or collection.
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._closers: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}

    def get(self) -> aiohttp.ClientSession:
        """The session of the running loop (created when missing or closed)."""
        loop = asyncio.get_running_loop()
        self._retire_dead()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            session = self._factory()
            self._sessions[loop] = session
            self._finish_closer(loop)
            self._closers[loop] = _close_at_loop_shutdown(session)
        return session

    def _finish_closer(self, loop: asyncio.AbstractEventLoop) -> None:
        """Finish the shutdown hook of a loop whose session is closed or gone."""
        closer = self._closers.pop(loop, None)
        if closer is not None:
            _run_without_loop(closer.aclose())

    def _retire_dead(self) -> None:
        """Drop sessions whose loop is closed, marking them closed without touching the loop."""
        for loop, session in list(self._sessions.items()):
            if loop.is_closed():
                _detach_dead_session(session)
                self._sessions.pop(loop, None)
                self._finish_closer(loop)

    async def aclose(self) -> None:
        """Close the running loop's session and retire the ones whose loop has closed."""
        self._retire_dead()
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            session = self._sessions.pop(loop, None)
            if session is not None and not session.closed:
                await session.close()
            self._finish_closer(loop)

    def __del__(self) -> None:
        """Retire sessions of closed loops before they are collected with this cache.

        Otherwise their connectors would try, while being collected, to close sockets
        through a loop that is already closed ("Event loop is closed" at interpreter level).
        """
        with contextlib.suppress(Exception):
            self._retire_dead()

    def __len__(self) -> int:
        """How many live sessions the cache holds."""
        return sum(1 for s in self._sessions.values() if not s.closed)


async def _session_closer(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Suspended until its loop finalises it (``shutdown_asyncgens``), then closes ``session``."""
    try:
        yield
    finally:
        if not session.closed:
            await session.close()


def _close_at_loop_shutdown(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Tie ``session`` to the running loop's shutdown; returns the hook (keep a reference).

    The first step of an async generator registers it with the running loop (through the
    loop's async-generator hooks); the loop's ``shutdown_asyncgens()`` then closes it, and
    its ``finally`` closes the session while the loop still runs.
    """
    closer = _session_closer(session)
    _run_without_loop(anext(closer))
    return closer


def _run_without_loop(step: Awaitable[Any]) -> None:
    """Run an awaitable that never suspends (the hook's steps when no close is needed)."""
    coro = typing.cast("typing.Coroutine[Any, Any, Any]", step)
    try:
        coro.send(None)
    except (StopIteration, StopAsyncIteration, RuntimeError):
        return
    coro.close()  # it would have suspended: the session is closed elsewhere


def _detach_dead_session(session: aiohttp.ClientSession) -> None:
    """Mark a session (and its connector) closed after its event loop has gone."""
    connector = session.connector
    if connector is not None:
        with contextlib.suppress(Exception):
            connector._close()  # the loop is closed: only flips the flag
    session.detach()


def cookie_header(cookies: Mapping[str, str]) -> str | None:
    """The ``Cookie`` header for one account's cookies, or ``None`` when there are none.

    Cookies whose name or value could break the header (``;``, ``,``, line breaks) are
    left out rather than sent mangled.

    Args:
        cookies: Cookie names and values.

    Returns:
        ``name=value`` pairs joined with ``"; "``.
    """
    unsafe = frozenset(";,\r\n")
    pairs = [
        f"{name}={value}"
        for name, value in cookies.items()
        if name and "=" not in name and unsafe.isdisjoint(name) and unsafe.isdisjoint(value)
    ]
    return "; ".join(pairs) or None


def cookieless_session() -> aiohttp.ClientSession:
    """A session that stores no cookies: each request carries its own account's cookies.

    One session then serves every account of a client without mixing their cookies.
    """
    return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL.

    Args:
        url: An absolute URL.

    Returns:
        Its origin, without path or trailing slash.
    """
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date).

    Args:
        value: The header's value.
        now: The current time (for tests).

    Returns:
        Non-negative seconds, or ``None`` when absent or unreadable.
    """
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def redact_tokens(text: str) -> str:
    """Replace anything shaped like a JWT in server text (which may echo a token) with ``***``.

    Args:
        text: A snippet of a response body.

    Returns:
        The text, safe to put in an exception message or a log line.
    """
    return _JWT_LIKE.sub("***", text)


class Redactor:
    """Scrubs one account's secrets from server text: the token in any form, the cookies.

    A server may echo the token (in an error body, an error frame, a title), raw,
    percent-encoded as it travelled in a query, JSON- or HTML-escaped; each of those forms,
    each cookie value and anything shaped like a JWT become ``***``.

    Example:
        ```python
        redact = Redactor.of(auth)
        redact(f"bad token {token}")  # 'bad token ***'
        ```
    """

    __slots__ = ("_forms", "_secrets")

    def __init__(self, secrets: Iterable[str]) -> None:
        """Build the scrubber (the encoded forms are worked out on first use).

        Args:
            secrets: The secret values (shorter than 6 characters are ignored).
        """
        self._secrets = tuple(s for s in secrets if len(s) >= _SECRET_MIN_CHARS)
        self._forms: tuple[str, ...] | None = None

    @classmethod
    def of(cls, auth: Any) -> Redactor:
        """The scrubber of an account (an ``AuthResult``: its token and cookie values).

        Args:
            auth: The account.

        Returns:
            Its scrubber.
        """
        return cls([auth.token.get_secret_value(), *auth.cookies.values()])

    def __call__(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``.

        Plain substring replacement, longest form first: no pattern to compile per
        account, which a pool's many accounts would each pay for on their first answer.
        """
        if self._forms is None:
            self._forms = _secret_forms(self._secrets)
        for form in self._forms:
            if form in text:
                text = text.replace(form, "***")
        return redact_tokens(text)


def _secret_forms(secrets: Iterable[str]) -> tuple[str, ...]:
    """Each secret raw, percent-, plus-, JSON- and HTML-encoded, longest first."""
    forms: set[str] = set()
    for secret in secrets:
        forms.update(
            (
                secret,
                quote(secret, safe=""),
                quote_plus(secret),
                json.dumps(secret)[1:-1],
                json.dumps(secret, ensure_ascii=False)[1:-1],
                html.escape(secret),
            )
        )
    return tuple(sorted(forms, key=len, reverse=True))


def scrub_error(error: HailuoError, redact: Callable[[str], str]) -> HailuoError:
    """Scrub secrets from an error's message and server message (in place).

    Args:
        error: The error about to reach the caller.
        redact: The account's :class:`Redactor`.

    Returns:
        The same error, for ``raise scrub_error(exc, redact)``.
    """
    _reword(error, redact(error.message))
    server_message = getattr(error, "server_message", None)
    if isinstance(server_message, str):
        error.server_message = redact(server_message)  # type: ignore[attr-defined]
    return error


def _reword(error: HailuoError, message: str) -> None:
    """Replace an error's message (``str(error)`` follows)."""
    error.message = message
    error.args = (message,)


def _looks_like_bot_page(body: str) -> bool:
    """Whether a 403 body is a bot-protection / login wall page."""
    lowered = body[:4096].lower()
    return any(marker in lowered for marker in _BOT_PAGE_MARKERS)


async def read_limited(resp: aiohttp.ClientResponse, limit: int, *, what: str) -> bytes:
    """The whole body of a (non-streamed) answer, refusing one longer than ``limit`` bytes.

    Args:
        resp: The response.
        limit: The most bytes accepted.
        what: A short name of the request for the message.

    Returns:
        The body.

    Raises:
        HailuoResponseTooLargeError: The body is longer than ``limit``.
    """
    body = await resp.content.read(limit + 1)
    if len(body) > limit:
        raise HailuoResponseTooLargeError(
            f"The answer to the {what} is larger than max_line_bytes ({limit} bytes); "
            f"{origin_of(str(resp.url))} may not be the service (check base_url), or raise "
            "max_line_bytes in provider_settings."
        )
    return body


async def raise_for_http_status(resp: aiohttp.ClientResponse, *, what: str) -> None:
    """Turn an error status into the matching typed error (2xx returns quietly).

    Args:
        resp: The response, body not yet read.
        what: A short name of the request for messages (``"chat request"``).

    Raises:
        HailuoAuthError: 401, or a 403 login / bot-protection page.
        HailuoRateLimitError: 429 (with ``retry_after``).
        HailuoSessionBusyError: 409.
        HailuoServerError: 5xx (retryable) and other 4xx (not).
    """
    status = resp.status
    if status < 400:  # noqa: PLR2004
        return
    body = ""
    with contextlib.suppress(Exception):
        body = (await resp.content.read(8192)).decode("utf-8", "replace")
    resp.release()
    snippet = redact_tokens(" ".join(body.split())[:200])
    if status == 401:  # noqa: PLR2004
        raise HailuoAuthError(f"The {what} was rejected as unauthorised (HTTP 401).", status=401)
    if status == 403:  # noqa: PLR2004
        if _looks_like_bot_page(body):
            raise HailuoAuthError(
                f"The {what} hit a bot-protection or login page (HTTP 403); the browser cookies "
                "are missing or stale. Run `hailuo login` again for fresh cookies.",
                status=403,
            )
        raise HailuoAuthError(f"The {what} was refused (HTTP 403): {snippet}", status=403)
    if status == 429:  # noqa: PLR2004
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        wait = f" Retry after {retry_after:g} s." if retry_after is not None else ""
        raise HailuoRateLimitError(
            f"The {what} was rate limited (HTTP 429).{wait}", retry_after=retry_after
        )
    if status == 409:  # noqa: PLR2004
        raise HailuoSessionBusyError(
            f"The conversation is busy answering another message (HTTP 409); {what} not sent.",
            code=409,
            status=409,
            server_message=snippet,
        )
    raise HailuoServerError(
        f"The {what} failed with HTTP {status}: {snippet or resp.reason}",
        code=status,
        status=status,
        server_message=snippet,
        retryable=status >= 500,  # noqa: PLR2004
    )


def _origin_key(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of a URL, normalised (lower case, default port filled in)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


def _without_query(url: str) -> str:
    """``scheme://host/path`` of a URL: its query (which may hold the token) left out."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


@dataclass(frozen=True, slots=True)
class RedirectPolicy:
    """Where a request may follow a redirect, taking its token and cookies along.

    A target is allowed when it is on the same host, one of the configured ``origins``
    (exactly), or an ``https`` origin on one of the known ``hosts`` or under one of the
    known ``domains``; and never when the redirect goes from ``https`` to anything else.

    Attributes:
        origins: The configured origins (base and stream URL).
        hosts: Host names of the service itself (``agent.minimax.io``).
        domains: Domain suffixes of the service (``.minimaxi.com``).
    """

    origins: frozenset[str] = frozenset()
    hosts: frozenset[str] = frozenset()
    domains: tuple[str, ...] = ()

    @classmethod
    def for_origins(
        cls, *origins: str, hosts: Iterable[str] = (), domains: Iterable[str] = ()
    ) -> RedirectPolicy:
        """The policy trusting ``origins`` and the service's known hosts and domains.

        Args:
            *origins: The configured origins.
            hosts: The service's host names.
            domains: The service's domain suffixes (with the leading dot).

        Returns:
            The policy.
        """
        return cls(frozenset(origins), frozenset(h.lower() for h in hosts), tuple(domains))

    def refusal(self, source: str, target: str) -> str | None:
        """Why a redirect from ``source`` to ``target`` may not be followed, or ``None``.

        Args:
            source: The URL that answered with the redirect.
            target: The absolute URL it points to.

        Returns:
            The reason, or ``None`` when the redirect may be followed.
        """
        src, dst = _origin_key(source), _origin_key(target)
        if dst[0] not in {"http", "https"} or not dst[1]:
            return "it is not an http(s) URL"
        if src[0] == "https" and dst[0] != "https":
            return "it leaves https for plain http"
        if dst[1] == src[1] or dst in {_origin_key(origin) for origin in self.origins}:
            return None  # the same host (another port or https) or a configured origin
        host = dst[1]
        if dst[0] == "https" and (host in self.hosts or host.endswith(self.domains)):
            return None
        return "it is neither a configured origin nor a host of the service"


_UNSAFE_HEADER_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def _check_headers(headers: Mapping[str, str]) -> None:
    """Refuse header values that would break the request (a token with a line break).

    Raises:
        HailuoConfigurationError: A value holds a control character (the value is not shown).
    """
    for name, value in headers.items():
        if _UNSAFE_HEADER_CHARS.search(value):
            raise HailuoConfigurationError(
                f"The {name!r} header would hold a control character (a line break, tab or "
                "NUL), so the request was not sent. If it is the token, copy it again "
                "without surrounding whitespace, or run `hailuo login`."
            )


PERMANENT_REDIRECTS = frozenset({301, 308})
_MOVED: dict[str, str] = {}
"""Origins that answered a permanent redirect to another origin, and where to (this process)."""
_MOVED_LIMIT = 64
"""At most this many moves are remembered (a handful of service hosts in practice)."""


def _moved(url: str, policy: RedirectPolicy) -> str:
    """``url`` on the origin its own origin permanently moved to, when this policy allows it."""
    origin = origin_of(url)
    target = _MOVED.get(origin)
    if target is None:
        return url
    moved = target + url[len(origin) :]
    return moved if policy.refusal(url, moved) is None else url


def _remember_move(status: int, url: str, new_url: str) -> None:
    """Keep a permanent redirect that only changes the origin, for the next requests."""
    old, new = origin_of(url), origin_of(new_url)
    if status not in PERMANENT_REDIRECTS or old == new or url[len(old) :] != new_url[len(new) :]:
        return
    if old in _MOVED or len(_MOVED) < _MOVED_LIMIT:
        _MOVED[old] = new
        logger.info("%s moved permanently to %s; going there directly from now on", old, new)


def _forget_move(url: str) -> None:
    """Drop remembered moves to ``url``'s origin (it could not be reached)."""
    gone = origin_of(url)
    for old in [old for old, new in _MOVED.items() if new == gone]:
        _MOVED.pop(old, None)


async def request_following_redirects(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    build: Callable[[str], Mapping[str, Any]],
    options: HttpOptions,
    policy: RedirectPolicy,
    what: str = "request",
    encoded: bool = False,
) -> aiohttp.ClientResponse:
    """Send a request, re-sending it with the same method and body on each allowed redirect.

    aiohttp (like browsers) turns a POST answered with 301/302 into a body-less GET; the
    chat APIs need the POST itself, so redirects are followed here by hand. The target is
    re-signed through ``build`` for each hop, and only followed where ``policy`` lets the
    credentials go. A permanent redirect (301/308) that only changes the origin is
    remembered for the process: later requests to that origin go straight to the new one
    (where ``policy`` allows it; forgotten again when the new origin cannot be reached).
    Transport failures come back typed, without the URL (its query may hold the token).

    Args:
        session: The session to use.
        method: ``"POST"`` or ``"GET"``.
        url: The first absolute URL.
        build: Given the URL about to be requested, returns the keyword arguments for
            ``session.request`` (``headers``, ``data``, ``params``…); called once per hop so
            bodies and signatures are fresh.
        options: Redirect limit, proxy, timeouts and the call's deadline.
        policy: Where redirects may lead.
        what: A short name of the request for messages.
        encoded: The URL is already percent-encoded exactly as it must be sent (and signed):
            send it byte for byte instead of letting aiohttp re-quote it.

    Returns:
        The final (non-redirect) response; ``str(response.url)`` tells where it landed.

    Raises:
        HailuoRedirectError: A redirect to a place the credentials must not go.
        HailuoProtocolError: Too many redirects, or one without a ``Location``.
        HailuoTimeoutError: No response headers within the first-byte timeout or the
            call's deadline.
        HailuoConnectionError: The connection failed (``request_sent`` tells whether any
            of the request may have been written).
        HailuoConfigurationError: A header value holds a control character.
    """
    first, url = url, _moved(url, policy)
    for _ in range(options.max_redirects + 1):
        kwargs = build(url)
        _check_headers(kwargs.get("headers") or {})
        try:
            resp = await _request_once(session, method, url, kwargs, options, what, encoded=encoded)
        except HailuoConnectionError:
            if url != first:
                _forget_move(url)
            raise
        if resp.status not in REDIRECT_STATUSES:
            return resp
        location = resp.headers.get("Location")
        resp.release()
        if not location:
            raise HailuoProtocolError(
                f"{origin_of(url)} answered HTTP {resp.status} without a Location header."
            )
        new_url = urljoin(url, location)
        reason = policy.refusal(url, new_url)
        if reason is not None:
            target = _without_query(new_url)
            raise HailuoRedirectError(
                f"{origin_of(url)} redirected the {what} to {target}, which was not followed "
                f"because {reason}: the token and cookies go only to the configured origins "
                "and MiniMax's own hosts. Nothing was sent there; if that is the service's "
                "new address, set base_url (or stream_url) to it.",
                target=target,
            )
        logger.info(
            "following HTTP %s from %s to %s", resp.status, origin_of(url), origin_of(new_url)
        )
        _remember_move(resp.status, url, new_url)
        url = new_url
    raise HailuoProtocolError(
        f"Too many redirects (more than {options.max_redirects}) starting from {origin_of(url)}; "
        "check the base URL."
    )


async def _request_once(  # noqa: PLR0917 - private, one call site
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    kwargs: Mapping[str, Any],
    options: HttpOptions,
    what: str,
    *,
    encoded: bool,
) -> aiohttp.ClientResponse:
    """One hop: the response headers within the first-byte timeout, failures typed."""
    timeouts = options.timeouts
    wait = options.bounded(timeouts.first_byte)
    if wait is not None and wait <= 0:
        raise options.out_of_time(f"about to send the {what}")
    connect = options.bounded(timeouts.connect)
    left = options.remaining()
    deadline_first = left is not None and (
        timeouts.first_byte is None or left < timeouts.first_byte
    )
    try:
        async with timeout(wait):
            return await session.request(
                method,
                yarl.URL(url, encoded=True) if encoded else url,
                allow_redirects=False,
                proxy=options.proxy,
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=connect, sock_connect=connect, sock_read=None
                ),
                **kwargs,
            )
    except aiohttp.ConnectionTimeoutError:
        error: HailuoError = HailuoConnectionError(
            f"The {what} could not reach {origin_of(url)}: no connection within {connect:g} s "
            "(connect timeout).",
            request_sent=False,
        )
    except aiohttp.ClientConnectorError as exc:
        error = HailuoConnectionError(
            f"The {what} could not reach {origin_of(url)}: no connection "
            f"({type(exc).__name__}: {exc.os_error.strerror or type(exc.os_error).__name__}).",
            request_sent=False,
        )
    except TIMEOUT_ERRORS:
        if deadline_first:
            error = options.out_of_time(f"waiting for the answer to the {what}")
        else:
            error = HailuoTimeoutError(
                f"No response from {origin_of(url)} within {wait:g} s (first-byte timeout)."
            )
    except aiohttp.ClientError as exc:  # the message may quote the URL: only its type
        error = HailuoConnectionError(
            f"The {what} could not reach {origin_of(url)}: the connection failed "
            f"({type(exc).__name__}).",
            request_sent=True,
        )
    raise error


def _backoff_delay(attempt: int, options: HttpOptions, error: BaseException) -> float | None:
    """Seconds to sleep before retry number ``attempt`` (1-based), or ``None`` to give up."""
    if isinstance(error, HailuoRateLimitError) and error.retry_after is not None:
        if error.retry_after > options.retry_after_max:
            return None
        return error.retry_after
    delay = min(options.backoff_max, options.backoff_base * (2 ** (attempt - 1)))
    return delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto


def is_retryable(error: BaseException) -> bool:
    """Whether an error raised before the first byte may go away on a second try.

    Args:
        error: What the attempt raised.

    Returns:
        ``True`` for connection errors and retryable :class:`HailuoError` subclasses.
    """
    if isinstance(error, HailuoError):
        return error.retryable
    return isinstance(error, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError)


def provably_unsent(error: BaseException) -> bool:
    """Whether a failed request provably did not reach the service (so a resend is safe).

    The connection failed before anything was written, or the server answered that it
    did not take the request: 429 (rate limited) or 409 (the conversation is busy).

    Args:
        error: What the attempt raised.

    Returns:
        ``True`` only when the request cannot have been processed.
    """
    if isinstance(error, HailuoConnectionError):
        return not error.request_sent
    return isinstance(error, HailuoRateLimitError | HailuoSessionBusyError)


def _may_have_arrived(error: BaseException) -> bool:
    """Whether a failed send may have delivered the message (no answer says otherwise)."""
    if isinstance(error, HailuoConnectionError):
        return error.request_sent
    if isinstance(error, HailuoTimeoutError):
        return True
    return isinstance(error, HailuoServerError) and (error.status or 0) >= 500  # noqa: PLR2004


def _mark_may_have_arrived(error: HailuoError, chat_id: str | None) -> None:
    """Say on the error that the message may have reached the server, and where to look."""
    error.may_have_arrived = True
    error.retryable = False
    error.chat_id = error.chat_id or chat_id
    where = f"chat {chat_id}" if chat_id else "the account's newest chat"
    _reword(
        error,
        f"{error.message} The message may have reached the server: it was not sent again "
        f"(that could post it twice). Look in {where} before sending it once more.",
    )


async def retry_before_first_byte(
    attempt: Callable[[], Awaitable[T]],
    *,
    options: HttpOptions,
    what: str,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    idempotent: bool = True,
    chat_id: str | None = None,
    redact: Callable[[str], str] = redact_tokens,
) -> T:
    """Run ``attempt`` until it succeeds, retrying retryable failures with backoff.

    ``attempt`` must cover only the part of a request before any answer byte is handed to
    the caller (connect, headers, status check): a failure after that must never be
    retried here, or text would be duplicated. A request that is not idempotent (a chat
    message, a new session) is retried only when it provably did not reach the server
    (:func:`provably_unsent`); otherwise its error says the message may have arrived.
    Every wait (backoff, ``Retry-After``) fits inside the call's deadline: a wait longer
    than what is left raises the failure at once.

    Args:
        attempt: The coroutine factory to run.
        options: ``max_retries``, backoff settings and the deadline.
        what: A short name of the request for log lines and messages.
        sleep: The sleep function (tests pass a fake).
        idempotent: Whether sending the request twice is harmless (reads).
        chat_id: The chat the message goes to, named when it may have arrived.
        redact: Scrubs the account's secrets from the messages of errors raised.

    Returns:
        What ``attempt`` returned.

    Raises:
        HailuoError: The last failure, typed and scrubbed.
    """
    tries = 0
    while True:
        try:
            return await attempt()
        except (HailuoError, aiohttp.ClientError) as exc:
            tries += 1
            error = _typed(exc, what)
            allowed = (idempotent or provably_unsent(error)) and tries <= options.max_retries
            delay = _backoff_delay(tries, options, error) if allowed and error.retryable else None
            left = options.remaining()
            if delay is not None and (left is None or delay < left):
                logger.warning(
                    "%s failed (%s); retry %d of %d in %.2f s",
                    what,
                    type(error).__name__,
                    tries,
                    options.max_retries,
                    delay,
                )
                await sleep(delay)
                continue
            final = error if delay is None else _no_time_to_wait(error, delay, left, options)
            if not idempotent and _may_have_arrived(final):
                _mark_may_have_arrived(final, chat_id)
            scrub_error(final, redact)
            if final is exc:
                raise
            raise final from None  # an aiohttp error's text may quote the URL (the token)


def _typed(exc: BaseException, what: str) -> HailuoError:
    """A failure as a :class:`HailuoError` (an aiohttp error's text may quote the URL)."""
    if isinstance(exc, HailuoError):
        return exc
    return HailuoConnectionError(
        f"The {what} failed: the connection broke ({type(exc).__name__}).", request_sent=True
    )


def _no_time_to_wait(
    error: HailuoError, delay: float, left: float | None, options: HttpOptions
) -> HailuoError:
    """The error for a retry whose wait would not fit in what is left of the deadline."""
    if isinstance(error, HailuoRateLimitError):
        return HailuoRateLimitError(
            f"{error.message} That is longer than the {max(left or 0.0, 0.0):.1f} s left of the "
            f"{options.timeouts.total:g} s timeout, so the call gives up now; retry after "
            f"{delay:g} s.",
            retry_after=error.retry_after,
        )
    return error


def received_unread(content: aiohttp.StreamReader) -> bytes:
    """Body bytes that arrived but were not read yet, from a stream that failed.

    When the connection breaks mid-body, aiohttp sets the payload error on the response's
    stream, and from then on every read raises it, even while bytes that did arrive before
    the break are still buffered. A reader slower than the network (a busy event loop)
    would lose them, and with them answer text the server sent. They are taken from the
    stream's buffer here (aiohttp offers no public read past the error); an aiohttp
    without that buffer gives nothing back, as before.

    Args:
        content: The response's body stream.

    Returns:
        The buffered bytes, in order (empty when there are none).
    """
    buffer = getattr(content, "_buffer", None)
    if not buffer:
        return b""
    offset = getattr(content, "_buffer_offset", 0)  # of the first chunk, partly read
    return b"".join(buffer)[offset:]


async def iter_chunks(
    resp: aiohttp.ClientResponse,
    *,
    options: HttpOptions,
    idle_error: Callable[[float], HailuoTimeoutError] | None = None,
) -> AsyncIterator[bytes]:
    """Yield the body's chunks as they arrive, enforcing the idle timeout and the deadline.

    No line splitting happens here, so arbitrarily long lines are fine (the decoders split
    and bound them).

    Args:
        resp: The streaming response.
        options: ``timeouts.idle`` bounds the wait for each chunk, ``deadline`` the whole
            call (see :meth:`HttpOptions.with_deadline`).
        idle_error: Builds the error for a silence of ``timeouts.idle`` seconds (default:
            :func:`idle_timed_out`).

    Yields:
        Raw body chunks.

    Raises:
        HailuoTimeoutError: A timeout ran out (the decoders attach the partial text).
    """
    idle = options.timeouts.idle
    content = resp.content
    while True:
        left = options.remaining()
        if left is not None and left <= 0:
            raise _answer_too_slow(options)
        by_deadline = left is not None and (idle is None or left <= idle)
        try:
            chunk = content.read_nowait()  # what already arrived needs no timer
            if not chunk and not content.at_eof():
                async with timeout(left if by_deadline else idle):
                    chunk = await content.readany()
        except TIMEOUT_ERRORS as exc:
            if by_deadline:
                raise _answer_too_slow(options) from exc
            raise (idle_error or idle_timed_out)(typing.cast("float", idle)) from exc
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
            rest = received_unread(resp.content)
            if rest:
                yield rest  # what arrived before the connection broke is part of the answer
            raise
        if not chunk:
            return
        yield chunk


def idle_timed_out(idle: float) -> HailuoTimeoutError:
    """The error for a stream that sent nothing for ``idle`` seconds (the idle timeout)."""
    return HailuoTimeoutError(f"The answer stalled: no data for {idle} s (idle timeout).")


def _answer_too_slow(options: HttpOptions) -> HailuoTimeoutError:
    """The error for an answer still streaming when the call's deadline came."""
    return HailuoTimeoutError(
        f"The answer took longer than {options.timeouts.total:g} s (total timeout)."
    )


async def read_rest(
    content: aiohttp.StreamReader,
    *,
    options: HttpOptions,
    feed: Callable[[bytes], object] | None = None,
    grace: float = BODY_END_GRACE,
) -> bool:
    """Read what follows a finished answer until the body ends, for a short while only.

    The answer is complete, so a slow, broken or stalled rest is not an error: reading
    just stops. Reading to the end lets the server finish the turn (it is free for the
    next one at once) and returns the connection to the pool.

    Args:
        content: The response body's reader (the answer's chunks were read from it).
        options: ``timeouts.idle`` and the deadline cap the wait, together with ``grace``.
        feed: Called with each chunk (e.g. a decoder collecting trailing metadata).
        grace: The longest wait in seconds (default :data:`BODY_END_GRACE`).

    Returns:
        Whether the body ended (the response may go back to the pool).
    """
    idle = options.timeouts.idle
    wait = options.bounded(grace if idle is None else min(idle, grace))
    try:
        async with timeout(wait):
            while chunk := await content.readany():
                if feed is not None:
                    feed(chunk)
    except (TimeoutError, asyncio.TimeoutError, HailuoError, aiohttp.ClientError) as exc:
        logger.debug("stopped reading after the finished answer: %s", type(exc).__name__)
        return False
    return True


class StreamedResponse:
    """An open streaming answer: its body's chunks under the timeouts, and how to let it go.

    The protocol stacks subclass it with their decoder and event loop; this part is the
    same for both.
    """

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        *,
        options: HttpOptions,
        redact: Callable[[str], str] = redact_tokens,
    ) -> None:
        """Wrap a response whose status and content type were checked.

        Args:
            response: The open response.
            options: The timeouts and the call's deadline for reading the body.
            redact: Scrubs the account's secrets from server text in errors.
        """
        self._response = response
        self._options = options
        self._redact = redact
        self._eof = False

    def _chunks(self) -> AsyncGenerator[bytes, None]:
        """The body's chunks (an async generator: close it when reading stops early)."""
        return typing.cast(
            "AsyncGenerator[bytes, None]",
            iter_chunks(self._response, options=self._options, idle_error=self._idle_error),
        )

    def _idle_error(self, idle: float) -> HailuoTimeoutError:
        """The error for a body silent for ``idle`` seconds (a stack may name it its way)."""
        return idle_timed_out(idle)

    def _failed(
        self,
        exc: BaseException,
        *,
        partial_text: str,
        partial_reasoning: str = "",
        chat_id: str | None,
    ) -> HailuoError:
        """The typed, scrubbed error for a failure while reading, with the partial answer.

        Args:
            exc: What reading raised (a typed error, or a transport error).
            partial_text: Answer text received before the failure.
            partial_reasoning: Reasoning text received before it.
            chat_id: The chat / session id, if known.

        Returns:
            The error to raise (``exc`` itself when it was typed already).
        """
        if isinstance(exc, HailuoError):
            error = exc.with_partial(
                partial_text=partial_text, partial_reasoning=partial_reasoning, chat_id=chat_id
            )
        else:
            error = connection_dropped(
                exc,
                partial_text=partial_text,
                partial_reasoning=partial_reasoning,
                chat_id=chat_id,
            )
        return scrub_error(error, self._redact)

    def close(self) -> None:
        """Let go of the response: back to the pool when fully read, else drop the connection."""
        if self._eof:
            self._response.release()
        else:
            self._response.close()


def connection_dropped(
    exc: BaseException, *, partial_text: str, partial_reasoning: str = "", chat_id: str | None
) -> HailuoStreamInterruptedError:
    """The error for a connection that broke mid-answer (nothing is ever sent again).

    Args:
        exc: The transport error.
        partial_text: Answer text received before the drop.
        partial_reasoning: Reasoning text received before the drop.
        chat_id: The chat / session id, if known.

    Returns:
        The typed error, to raise ``from exc``.
    """
    return HailuoStreamInterruptedError(
        f"The connection dropped mid-answer ({type(exc).__name__}); the message was not sent "
        "again (that would post it twice). partial_text holds what arrived.",
        partial_text=partial_text,
        partial_reasoning=partial_reasoning,
        chat_id=chat_id,
    )
