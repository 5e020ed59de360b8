"""HTTP plumbing shared by both protocol stacks; nothing here knows a wire field of either.

A per-event-loop session cache, statuses mapped to typed errors, a POST that survives
redirects, retries only before an answer's first byte, and chunk reading under the timeouts.
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
        backoff_max: Longest backoff delay (a ``Retry-After`` may exceed it up to
            ``retry_after_max``, the longest one honoured by waiting; longer ones raise).
        proxy: An HTTP(S) proxy URL for every request.
        max_redirects: How many redirects a request may follow.
        max_line_bytes: Longest stream line, multi-line frame or JSON body accepted.
        deadline: ``time.monotonic()`` by which the call must end (set by :meth:`with_deadline`).
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
        """These options with a deadline (``deadline``, else now + ``timeouts.total``) if unset."""
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
        """The typed error for a deadline that ran out while ``doing`` something."""
        return HailuoTimeoutError(
            f"The call ran out of its {self.timeouts.total:g} s timeout while {doing}; "
            "raise timeout= if the service is just slow."
        )


class LoopSessions:
    """One :class:`aiohttp.ClientSession` per event loop, created on first use.

    A session is bound to its loop, and LangChain's sync paths, Jupyter and ``asyncio.run``
    each bring their own. Each session is tied to an async generator the loop finalises in
    ``shutdown_asyncgens()`` (``asyncio.run``, ``asyncio.Runner`` and the sync methods' loop
    call it), so no "Unclosed client session" is printed; a loop closed without that step has
    its session retired quietly at the next use.
    """

    def __init__(self, factory: Callable[[], aiohttp.ClientSession]) -> None:
        """Create the cache; ``factory`` builds a session inside the loop that will own it."""
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
        """Retire closed loops' sessions (collected, they would close sockets on a closed loop)."""
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
    """Tie ``session`` to the loop's ``shutdown_asyncgens()``; returns the hook to keep."""
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
    """The ``Cookie`` header for one account's cookies (``None``: none).

    Cookies whose name or value could break the header (``;``, ``,``, line breaks) are left
    out rather than sent mangled.
    """
    unsafe = frozenset(";,\r\n")
    pairs = [
        f"{name}={value}"
        for name, value in cookies.items()
        if name and "=" not in name and unsafe.isdisjoint(name) and unsafe.isdisjoint(value)
    ]
    return "; ".join(pairs) or None


def cookieless_session() -> aiohttp.ClientSession:
    """A session storing no cookies: it serves every account without mixing theirs."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of an absolute URL, without path or trailing slash."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` (delta-seconds or HTTP date); ``None`` if unreadable."""
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
    """``text`` with anything shaped like a JWT replaced by ``***`` (servers may echo a token)."""
    return _JWT_LIKE.sub("***", text)


class Redactor:
    """Scrubs one account's secrets from server text: the token in any form, the cookies.

    A server may echo the token (an error body or frame, a title) raw, percent-encoded as it
    travelled in a query, JSON- or HTML-escaped; each form, each cookie value and anything
    shaped like a JWT become ``***``: ``Redactor.of(auth)(f"bad token {token}")`` gives
    ``'bad token ***'``.
    """

    __slots__ = ("_forms", "_secrets")

    def __init__(self, secrets: Iterable[str]) -> None:
        """Scrub ``secrets`` (under 6 characters: ignored); encoded forms are built on first use."""
        self._secrets = tuple(s for s in secrets if len(s) >= _SECRET_MIN_CHARS)
        self._forms: tuple[str, ...] | None = None

    @classmethod
    def of(cls, auth: Any) -> Redactor:
        """The scrubber of an ``AuthResult``: its token and cookie values."""
        return cls([auth.token.get_secret_value(), *auth.cookies.values()])

    def __call__(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``.

        Plain substring replacement, longest form first: no per-account pattern to compile, which
        each of a pool's many accounts would pay for on its first answer.
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
    """Scrub secrets from an error's message and server message in place; returns the error."""
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
    """A non-streamed body, or :class:`HailuoResponseTooLargeError` past ``limit`` bytes."""
    body = await resp.content.read(limit + 1)
    if len(body) > limit:
        raise HailuoResponseTooLargeError(
            f"The answer to the {what} is larger than max_line_bytes ({limit} bytes); "
            f"{origin_of(str(resp.url))} may not be the service (check base_url), or raise "
            "max_line_bytes in provider_settings."
        )
    return body


async def raise_for_http_status(resp: aiohttp.ClientResponse, *, what: str) -> None:
    """Raise the typed error for an error status; 2xx returns quietly.

    401 and a 403 login or bot-protection page are :class:`HailuoAuthError`, 429
    :class:`HailuoRateLimitError` (with ``retry_after``), 409 :class:`HailuoSessionBusyError`,
    5xx a retryable :class:`HailuoServerError` and other 4xx a final one.
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

    Allowed: the same host, one of the configured ``origins`` exactly, or an ``https`` origin
    on one of the service's ``hosts`` or under its ``domains``; never from ``https`` to
    anything else.
    """

    origins: frozenset[str] = frozenset()
    hosts: frozenset[str] = frozenset()
    domains: tuple[str, ...] = ()

    @classmethod
    def for_origins(
        cls, *origins: str, hosts: Iterable[str] = (), domains: Iterable[str] = ()
    ) -> RedirectPolicy:
        """The policy trusting ``origins`` and the service's hosts and (dot-led) domains."""
        return cls(frozenset(origins), frozenset(h.lower() for h in hosts), tuple(domains))

    def refusal(self, source: str, target: str) -> str | None:
        """Why a redirect from ``source`` to ``target`` may not be followed (``None``: it may)."""
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
    """Refuse a header value with a control character (the error does not show it)."""
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

    aiohttp, like browsers, turns a POST answered with 301/302 into a body-less GET; the chat
    APIs need the POST itself, so redirects are followed here. ``build`` gives the keyword
    arguments of ``session.request`` for the URL about to be requested, so each hop is signed
    afresh; only targets ``policy`` allows are followed. A permanent redirect (301/308) that
    only changes the origin is remembered for the process (forgotten when the new origin
    cannot be reached). ``encoded`` sends a URL already encoded as signed byte for byte.
    Transport failures come back typed, without the URL (its query may hold the token).

    Raises:
        HailuoRedirectError: A redirect to a place the credentials must not go.
        HailuoProtocolError: Too many redirects, or one without a ``Location``.
        HailuoTimeoutError: No response headers within the first-byte timeout or the deadline.
        HailuoConnectionError: The connection failed (``request_sent`` tells whether any of
            the request may have been written).
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
    """Whether an error raised before the first byte may go away on a second try."""
    if isinstance(error, HailuoError):
        return error.retryable
    return isinstance(error, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError)


def provably_unsent(error: BaseException) -> bool:
    """Whether a failed request cannot have reached the service, so a resend is safe.

    The connection failed before anything was written, or the server refused the request:
    429 (rate limited) or 409 (the conversation is busy).
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

    ``attempt`` must end before any answer byte reaches the caller (connect, headers, status):
    a later failure retried here would duplicate text. A request that is not ``idempotent`` (a
    chat message, a new session) is retried only when :func:`provably_unsent`; otherwise its
    error says the message may have arrived in ``chat_id``. Every wait (backoff,
    ``Retry-After``) fits in the deadline: a longer one raises the failure at once. Raised
    errors are typed and scrubbed with ``redact``.
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

    After a mid-body break aiohttp raises the payload error on every read, even while bytes
    that arrived before it are buffered; a reader slower than the network would lose answer
    text. They are taken from the stream's buffer (aiohttp has no public read past the
    error); an aiohttp without that buffer gives nothing.
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
    """Yield the body's chunks under the idle timeout and the deadline (no line splitting here).

    ``idle_error`` builds the error for ``timeouts.idle`` seconds of silence (default
    :func:`idle_timed_out`); the decoders attach the partial text to timeouts.
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
            rest = received_unread(content)
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
    """Read what follows a finished answer for a short while; returns whether the body ended.

    The answer is complete, so a slow, broken or stalled rest just stops the reading. Reading
    to the end frees the server for the next turn and returns the connection to the pool;
    ``content`` is the body's reader the answer came from, ``feed`` gets each chunk, ``grace``
    (default :data:`BODY_END_GRACE`) caps the wait.
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
    """An open streaming answer: its chunks under the timeouts, and its release."""

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        *,
        options: HttpOptions,
        redact: Callable[[str], str] = redact_tokens,
    ) -> None:
        """Wrap a response whose status and content type were checked."""
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
        """The typed, scrubbed error for a failure while reading, with the partial answer."""
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
    """The error for a connection that broke mid-answer (nothing is ever sent again)."""
    return HailuoStreamInterruptedError(
        f"The connection dropped mid-answer ({type(exc).__name__}); the message was not sent "
        "again (that would post it twice). partial_text holds what arrived.",
        partial_text=partial_text,
        partial_reasoning=partial_reasoning,
        chat_id=chat_id,
    )
