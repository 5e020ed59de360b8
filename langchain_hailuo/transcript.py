"""Transcripts of HTTP exchanges: ``hailuo doctor --record FILE`` writes them for replay.

A :class:`Recorder` hooks aiohttp's tracing into a run's sessions and keeps every exchange:
method, origin role (``control`` / ``stream`` / ``other``), path and query, allow-listed
request headers, request body, status, a few response headers and the response body as
timed chunks. When written, everything that identifies the account becomes a placeholder:
the token (raw, URL-encoded, JSON-escaped, each base64 segment), cookie values, device and
user ids; signature headers are never kept. What remains is the protocol's shape, enough
to reproduce a failure offline (``hailuo emulator --replay FILE``).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

import aiohttp

from langchain_hailuo.types import AuthResult, decode_jwt_payload

__all__ = ["TRANSCRIPT_VERSION", "Recorder", "load_transcript", "scrub", "secrets_of"]

TRANSCRIPT_VERSION = 1
_REQUEST_HEADERS = frozenset(
    {"accept", "accept-language", "content-type", "origin", "referer", "user-agent"}
)
"""Request headers kept as they are (``x-timestamp`` too: a time is no secret)."""
_PLACEHOLDER_HEADERS = {
    "token": "<token>",
    "cookie": "<cookies>",
    "x-signature": "<signature>",
    "yy": "<signature>",
    "authorization": "<token>",
}
_RESPONSE_HEADERS = frozenset({"content-type", "location", "retry-after", "cf-mitigated"})
_MIN_SECRET = 4
"""Shorter values are not replaced (they would match unrelated text)."""


def _variants(value: str) -> list[str]:
    """A value as it may appear in a URL, a query, a JSON string or a header."""
    return [value, quote_plus(value), quote(value, safe=""), json.dumps(value)[1:-1]]


def secrets_of(auth: AuthResult | None) -> list[tuple[str, str]]:
    """``(secret, placeholder)`` pairs of one account (``None``: none), longest secret first."""
    if auth is None:
        return []
    token = auth.token.get_secret_value()
    pairs: list[tuple[str, str]] = [(v, "<token>") for v in _variants(token)]
    pairs += [(part, "<token-part>") for part in token.split(".") if len(part) >= _MIN_SECRET]
    claims = decode_jwt_payload(token) or {}
    user = claims.get("user")
    ids = {
        "<user_id>": [auth.real_user_id, user.get("id") if isinstance(user, dict) else None],
        "<device_id>": [auth.device_id],
        "<uuid>": [auth.uuid],
    }
    for placeholder, values in ids.items():
        for value in values:
            if value is not None and len(str(value)) >= _MIN_SECRET:
                pairs += [(v, placeholder) for v in _variants(str(value))]
    for value in auth.cookies.values():
        if len(value) >= _MIN_SECRET:
            pairs += [(v, "<cookie>") for v in _variants(value)]
    unique = {secret: placeholder for secret, placeholder in pairs if secret}
    return sorted(unique.items(), key=lambda pair: -len(pair[0]))


def scrub(text: str, secrets: list[tuple[str, str]]) -> str:
    """``text`` with every secret replaced by its placeholder (longest first)."""
    for secret, placeholder in secrets:
        text = text.replace(secret, placeholder)
    return text


@dataclass
class _Exchange:
    """One request and its answer, as recorded (not yet scrubbed)."""

    method: str
    url: str
    started: float
    headers: dict[str, str]
    body: bytearray = field(default_factory=bytearray)
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    chunks: list[tuple[float, bytes]] = field(default_factory=list)
    error: str | None = None


class _RecordingContent:
    """A response's body stream that notes every chunk read from it (with its time)."""

    def __init__(self, inner: aiohttp.StreamReader, exchange: _Exchange) -> None:
        self._inner = inner
        self._exchange = exchange

    def _note(self, data: bytes) -> bytes:
        if data:
            self._exchange.chunks.append((time.monotonic() - self._exchange.started, data))
        return data

    async def read(self, n: int = -1) -> bytes:
        return self._note(await self._inner.read(n))

    async def readany(self) -> bytes:
        return self._note(await self._inner.readany())

    def read_nowait(self, n: int = -1) -> bytes:
        return self._note(self._inner.read_nowait(n))

    async def readline(self) -> bytes:
        return self._note(await self._inner.readline())

    async def readexactly(self, n: int) -> bytes:
        return self._note(await self._inner.readexactly(n))

    async def readchunk(self) -> tuple[bytes, bool]:
        data, end = await self._inner.readchunk()
        return self._note(data), end

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Recorder:
    """Records the HTTP exchanges of the sessions it makes, for a transcript."""

    def __init__(self, *, control: str | None = None, stream: str | None = None) -> None:
        """Record exchanges, tagged by origin: ``control``, ``stream`` or ``other``."""
        self.control = control
        self.stream = stream
        self.exchanges: list[_Exchange] = []
        self._origin = time.monotonic()

    # ------------------------------------------------------------------ recording

    def trace_config(self) -> aiohttp.TraceConfig:
        """An aiohttp trace config that feeds this recorder."""
        config = aiohttp.TraceConfig()
        config.on_request_start.append(self._on_start)
        config.on_request_chunk_sent.append(self._on_sent)
        config.on_request_end.append(self._on_end)
        config.on_request_exception.append(self._on_exception)
        return config

    def session(self) -> aiohttp.ClientSession:
        """A session without a cookie jar whose exchanges are recorded."""
        return aiohttp.ClientSession(
            cookie_jar=aiohttp.DummyCookieJar(), trace_configs=[self.trace_config()]
        )

    async def _on_start(
        self, _s: Any, ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        ctx.exchange = _Exchange(
            method=params.method,
            url=str(params.url),
            started=time.monotonic(),
            headers={k.lower(): v for k, v in params.headers.items()},
        )
        self.exchanges.append(ctx.exchange)

    async def _on_sent(
        self, _s: Any, ctx: SimpleNamespace, params: aiohttp.TraceRequestChunkSentParams
    ) -> None:
        if getattr(ctx, "exchange", None) is not None:
            ctx.exchange.body += params.chunk

    async def _on_end(
        self, _s: Any, ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        exchange: _Exchange | None = getattr(ctx, "exchange", None)
        if exchange is not None:
            exchange.status = params.response.status
            exchange.response_headers = {
                k.lower(): v
                for k, v in params.response.headers.items()
                if k.lower() in _RESPONSE_HEADERS
            }
            # aiohttp traces body chunks of read() only: wrap the stream to see every read
            params.response.content = _RecordingContent(  # type: ignore[assignment]
                params.response.content, exchange
            )

    async def _on_exception(
        self, _s: Any, ctx: SimpleNamespace, params: aiohttp.TraceRequestExceptionParams
    ) -> None:
        exchange: _Exchange | None = getattr(ctx, "exchange", None)
        if exchange is not None:
            exchange.error = type(params.exception).__name__

    # ------------------------------------------------------------------ writing

    def _role(self, url: str) -> str:
        """``control``, ``stream`` or ``other`` for a URL."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        for role, known in (("stream", self.stream), ("control", self.control)):
            if known and origin == known.rstrip("/"):
                return role
        return "other"

    def transcript(self, auth: AuthResult | None) -> dict[str, Any]:
        """The exchanges as a JSON-ready transcript, ``auth``'s token, cookies and ids replaced."""
        secrets = secrets_of(auth)

        def clean(text: str) -> str:
            return scrub(text, secrets)

        exchanges = []
        for ex in self.exchanges:
            parts = urlsplit(ex.url)
            headers = {k: v for k, v in ex.headers.items() if k in _REQUEST_HEADERS}
            headers |= {k: _PLACEHOLDER_HEADERS[k] for k in ex.headers if k in _PLACEHOLDER_HEADERS}
            if "x-timestamp" in ex.headers:
                headers["x-timestamp"] = ex.headers["x-timestamp"]
            exchanges.append(
                {
                    "method": ex.method,
                    "origin": self._role(ex.url),
                    "path": clean(parts.path or "/"),
                    "query": clean(parts.query),
                    "headers": {k: clean(v) for k, v in sorted(headers.items())},
                    "body": clean(bytes(ex.body).decode("utf-8", "replace")),
                    "status": ex.status,
                    "response_headers": {k: clean(v) for k, v in ex.response_headers.items()},
                    "chunks": [
                        [round(at, 4), clean(chunk.decode("utf-8", "replace"))]
                        for at, chunk in ex.chunks
                    ],
                    "error": ex.error,
                }
            )
        return {
            "version": TRANSCRIPT_VERSION,
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "exchanges": exchanges,
        }

    def write(self, path: Path, auth: AuthResult | None) -> None:
        """Write the scrubbed transcript to ``path`` atomically, mode 0600."""
        text = json.dumps(self.transcript(auth), ensure_ascii=False, indent=1)
        path = path.expanduser()
        fd, tmp = tempfile.mkstemp(dir=path.parent or Path(), prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text + "\n")
            Path(tmp).chmod(0o600)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def load_transcript(path: Path) -> dict[str, Any]:
    """Read a transcript :class:`Recorder` wrote (``ValueError`` for another file or version)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    version, exchanges = (
        (data.get("version"), data.get("exchanges")) if isinstance(data, dict) else (None, None)
    )
    if version != TRANSCRIPT_VERSION or not isinstance(exchanges, list):
        raise ValueError(f"{path} is not a langchain-hailuo transcript (version 1)")
    return data
