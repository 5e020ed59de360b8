"""HTTP plumbing shared by both protocol stacks.

One job each: a per-event-loop :class:`aiohttp.ClientSession` cache, timeouts, mapping of
HTTP statuses to typed errors, a POST that survives redirects, retries that happen only
before the first byte of an answer, and chunk reading with an idle timeout.

Nothing here knows a wire field of either protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
import re
import time
import typing
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import aiohttp
import yarl

from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoError,
    HailuoProtocolError,
    HailuoRateLimitError,
    HailuoServerError,
    HailuoSessionBusyError,
    HailuoStreamInterruptedError,
    HailuoTimeoutError,
)

__all__ = [
    "HttpOptions",
    "LoopSessions",
    "StreamedResponse",
    "Timeouts",
    "connection_dropped",
    "cookie_header",
    "cookieless_session",
    "iter_chunks",
    "origin_of",
    "parse_retry_after",
    "raise_for_http_status",
    "read_rest",
    "received_unread",
    "redact_tokens",
    "request_following_redirects",
    "retry_before_first_byte",
]

logger = logging.getLogger("langchain_hailuo.http")

T = TypeVar("T")

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
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
class Timeouts:
    """How long each phase of a request may take, in seconds (``None``: no limit).

    Attributes:
        connect: Opening the connection (TCP + TLS).
        first_byte: From sending the request to the response headers.
        idle: Longest silence between two chunks of a streamed answer.
        total: The whole answer, first byte to last.
    """

    connect: float | None = 15.0
    first_byte: float | None = 60.0
    idle: float | None = 90.0
    total: float | None = 600.0

    @classmethod
    def from_total(cls, total: float | None) -> Timeouts:
        """Build timeouts from a single LangChain-style ``timeout`` (the total budget).

        Args:
            total: Seconds for the whole answer, or ``None`` for the defaults.

        Returns:
            Timeouts whose phases never exceed ``total``.
        """
        if total is None:
            return cls()
        base = cls()
        return cls(
            connect=min(base.connect or total, total),
            first_byte=min(base.first_byte or total, total),
            idle=min(base.idle or total, total),
            total=total,
        )

    def client_timeout(self) -> aiohttp.ClientTimeout:
        """The aiohttp timeout for connecting and waiting for headers (the body is timed by us)."""
        return aiohttp.ClientTimeout(
            total=None, connect=self.connect, sock_connect=self.connect, sock_read=None
        )


@dataclass(frozen=True, slots=True)
class HttpOptions:
    """Client settings shared by both stacks.

    Attributes:
        timeouts: Phase timeouts.
        max_retries: Extra attempts after a retryable failure before the first byte (0: none).
        backoff_base: First backoff delay in seconds (doubled each attempt, with jitter).
        backoff_max: Longest single backoff delay (a server's ``Retry-After`` may exceed it
            up to ``retry_after_max``).
        retry_after_max: Longest ``Retry-After`` we honour by waiting; longer ones raise.
        proxy: An HTTP(S) proxy URL for every request.
        max_redirects: How many redirects a request may follow.
    """

    timeouts: Timeouts = field(default_factory=Timeouts)
    max_retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    retry_after_max: float = 60.0
    proxy: str | None = None
    max_redirects: int = 5


class LoopSessions:
    """One :class:`aiohttp.ClientSession` per event loop, created on first use.

    A session is bound to the loop it was created on; LangChain's sync paths, Jupyter and
    ``asyncio.run`` each bring their own loop, so the client keeps one session per loop
    and retires sessions whose loop has closed (without the "Unclosed client session"
    warning, since their sockets died with their loop).
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

    def get(self) -> aiohttp.ClientSession:
        """The session of the running loop (created when missing or closed)."""
        loop = asyncio.get_running_loop()
        self._retire_dead()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            session = self._factory()
            self._sessions[loop] = session
        return session

    def _retire_dead(self) -> None:
        """Drop sessions whose loop is closed, marking them closed without touching the loop."""
        for loop, session in list(self._sessions.items()):
            if loop.is_closed():
                _detach_dead_session(session)
                self._sessions.pop(loop, None)

    async def aclose(self) -> None:
        """Close the running loop's session and retire the ones whose loop has closed."""
        self._retire_dead()
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            session = self._sessions.pop(loop, None)
            if session is not None and not session.closed:
                await session.close()

    def close_all_dead(self) -> None:
        """Retire sessions of closed loops (safe to call from any thread)."""
        self._retire_dead()

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


def _looks_like_bot_page(body: str) -> bool:
    """Whether a 403 body is a bot-protection / login wall page."""
    lowered = body[:4096].lower()
    return any(marker in lowered for marker in _BOT_PAGE_MARKERS)


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


async def request_following_redirects(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    build: Callable[[str], Mapping[str, Any]],
    options: HttpOptions,
    encoded: bool = False,
) -> aiohttp.ClientResponse:
    """Send a request, re-sending it with the same method and body on each redirect.

    aiohttp (like browsers) turns a POST answered with 301/302 into a body-less GET; the
    chat APIs need the POST itself, so redirects are followed here by hand. The target is
    re-signed through ``build`` for each hop.

    Args:
        session: The session to use.
        method: ``"POST"`` or ``"GET"``.
        url: The first absolute URL.
        build: Given the URL about to be requested, returns the keyword arguments for
            ``session.request`` (``headers``, ``data``, ``params``…); called once per hop so
            bodies and signatures are fresh.
        options: Redirect limit, proxy and timeouts.
        encoded: The URL is already percent-encoded exactly as it must be sent (and signed):
            send it byte for byte instead of letting aiohttp re-quote it.

    Returns:
        The final (non-redirect) response; ``str(response.url)`` tells where it landed.

    Raises:
        HailuoProtocolError: Too many redirects, or one without a ``Location``.
        HailuoTimeoutError: Connecting or waiting for headers took too long.
        aiohttp.ClientError: Connection failures (the retry loop decides about them).
    """
    for _ in range(options.max_redirects + 1):
        try:
            async with asyncio.timeout(options.timeouts.first_byte):
                resp = await session.request(
                    method,
                    yarl.URL(url, encoded=True) if encoded else url,
                    allow_redirects=False,
                    proxy=options.proxy,
                    timeout=options.timeouts.client_timeout(),
                    **build(url),
                )
        except TimeoutError as exc:
            raise HailuoTimeoutError(
                f"No response from {origin_of(url)} within "
                f"{options.timeouts.first_byte} s (first-byte timeout)."
            ) from exc
        if resp.status not in REDIRECT_STATUSES:
            return resp
        location = resp.headers.get("Location")
        resp.release()
        if not location:
            raise HailuoProtocolError(
                f"{origin_of(url)} answered HTTP {resp.status} without a Location header."
            )
        new_url = urljoin(url, location)
        logger.info(
            "following HTTP %s from %s to %s", resp.status, origin_of(url), origin_of(new_url)
        )
        url = new_url
    raise HailuoProtocolError(
        f"Too many redirects (more than {options.max_redirects}) starting from {origin_of(url)}; "
        "check the base URL."
    )


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


async def retry_before_first_byte(
    attempt: Callable[[], Awaitable[T]],
    *,
    options: HttpOptions,
    what: str,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run ``attempt`` until it succeeds, retrying retryable failures with backoff.

    ``attempt`` must cover only the part of a request before any answer byte is handed to
    the caller (connect, headers, status check): a failure after that must never be
    retried here, or text would be duplicated.

    Args:
        attempt: The coroutine factory to run.
        options: ``max_retries`` and backoff settings.
        what: A short name of the request for log lines and messages.
        sleep: The sleep function (tests pass a fake).

    Returns:
        What ``attempt`` returned.

    Raises:
        HailuoError: The last failure, typed.
    """
    tries = 0
    while True:
        try:
            return await attempt()
        except (HailuoError, aiohttp.ClientError) as exc:
            tries += 1
            delay = _backoff_delay(tries, options, exc) if is_retryable(exc) else None
            if delay is None or tries > options.max_retries:
                if isinstance(exc, HailuoError):
                    raise
                raise HailuoServerError(
                    f"The {what} could not reach the service: {type(exc).__name__}: {exc}",
                    retryable=True,
                ) from exc
            logger.warning(
                "%s failed (%s); retry %d of %d in %.2f s",
                what,
                type(exc).__name__,
                tries,
                options.max_retries,
                delay,
            )
            await sleep(delay)


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
    resp: aiohttp.ClientResponse, *, timeouts: Timeouts, started: float | None = None
) -> AsyncIterator[bytes]:
    """Yield the body's chunks as they arrive, enforcing the idle and total timeouts.

    No line splitting happens here, so arbitrarily long lines are fine (the decoders split).

    Args:
        resp: The streaming response.
        timeouts: ``idle`` bounds the wait for each chunk, ``total`` the whole body.
        started: ``time.monotonic()`` when the request began (defaults to now).

    Yields:
        Raw body chunks.

    Raises:
        HailuoTimeoutError: A timeout ran out (the decoders attach the partial text).
    """
    start = time.monotonic() if started is None else started
    while True:
        wait = timeouts.idle
        if timeouts.total is not None:
            remaining = timeouts.total - (time.monotonic() - start)
            if remaining <= 0:
                raise HailuoTimeoutError(
                    f"The answer took longer than {timeouts.total} s (total timeout)."
                )
            wait = remaining if wait is None else min(wait, remaining)
        try:
            async with asyncio.timeout(wait):
                chunk = await resp.content.readany()
        except TimeoutError as exc:
            total_hit = timeouts.total is not None and time.monotonic() - start >= timeouts.total
            raise HailuoTimeoutError(
                f"The answer took longer than {timeouts.total} s (total timeout)."
                if total_hit
                else f"The answer stalled: no data for {timeouts.idle} s (idle timeout)."
            ) from exc
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
            rest = received_unread(resp.content)
            if rest:
                yield rest  # what arrived before the connection broke is part of the answer
            raise
        if not chunk:
            return
        yield chunk


async def read_rest(
    chunks: AsyncIterator[bytes],
    *,
    timeouts: Timeouts,
    feed: Callable[[bytes], object] | None = None,
    grace: float = BODY_END_GRACE,
) -> bool:
    """Read what follows a finished answer until the body ends, for a short while only.

    The answer is complete, so a slow, broken or stalled rest is not an error: reading
    just stops. Reading to the end lets the server finish the turn (it is free for the
    next one at once) and returns the connection to the pool.

    Args:
        chunks: The body's remaining chunks (from :func:`iter_chunks`).
        timeouts: ``idle`` caps the wait, together with ``grace``.
        feed: Called with each chunk (e.g. a decoder collecting trailing metadata).
        grace: The longest wait in seconds (default :data:`BODY_END_GRACE`).

    Returns:
        Whether the body ended (the response may go back to the pool).
    """
    grace = grace if timeouts.idle is None else min(timeouts.idle, grace)
    try:
        async with asyncio.timeout(grace):
            async for chunk in chunks:
                if feed is not None:
                    feed(chunk)
    except (TimeoutError, HailuoError, aiohttp.ClientError) as exc:
        logger.debug("stopped reading after the finished answer: %s", type(exc).__name__)
        return False
    return True


class StreamedResponse:
    """An open streaming answer: its body's chunks under the timeouts, and how to let it go.

    The protocol stacks subclass it with their decoder and event loop; this part is the
    same for both.
    """

    def __init__(
        self, response: aiohttp.ClientResponse, *, options: HttpOptions, started: float
    ) -> None:
        """Wrap a response whose status and content type were checked.

        Args:
            response: The open response.
            options: The timeouts for reading the body.
            started: ``time.monotonic()`` when the request began.
        """
        self._response = response
        self._options = options
        self._started = started
        self._eof = False

    def _chunks(self) -> AsyncGenerator[bytes, None]:
        """The body's chunks (an async generator: close it when reading stops early)."""
        return typing.cast(
            "AsyncGenerator[bytes, None]",
            iter_chunks(self._response, timeouts=self._options.timeouts, started=self._started),
        )

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
