"""The v4 chat request: a signed multipart POST whose answer streams back as events.

One :class:`V4Client` serves any number of accounts: it keeps one
:class:`aiohttp.ClientSession` per event loop (created on first use) with a cookie jar
that stores nothing, and sends each account's cookies as a ``Cookie`` header of its own
requests. So a ``Set-Cookie`` from one account's answer can never ride along on another
account's request; the price is that cookies the server renews mid-session are not kept
(a fresh ``hailuo login`` renews them).

Each request gets a fresh fingerprint query (a new ``unix``, strictly increasing within a
client) and a ``yy`` signature over exactly the path and query that go on the wire. A
redirect is followed by POSTing the same form again to the new location, re-signed for
that URL; :attr:`V4Answer.origin` reports where the answer finally came from.

Example:
    ```python
    client = V4Client()
    form = build_form(msg_content="Hello!")
    async with client.chat(auth, form, base_url="https://www.hailuo.ai") as answer:
        async for event in answer.events():
            print(event)
    await client.aclose()
    ```
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid as uuid_module
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import yarl

from langchain_hailuo._http import (
    HttpOptions,
    LoopSessions,
    Redactor,
    RedirectPolicy,
    StreamedResponse,
    cookie_header,
    cookieless_session,
    origin_of,
    raise_for_http_status,
    read_rest,
    request_following_redirects,
    retry_before_first_byte,
)
from langchain_hailuo._sse import loads_json
from langchain_hailuo.errors import (
    HailuoError,
    HailuoProtocolError,
    HailuoServerError,
)
from langchain_hailuo.types import AuthResult, DeviceIdentity, StreamEvent
from langchain_hailuo.v4.crypt import (
    API_PATH,
    DEFAULT_USER_AGENT,
    build_fingerprint_query,
    generate_yy_header,
    get_body_to_yy,
    now_ms,
)
from langchain_hailuo.v4.stream import V4StreamDecoder

__all__ = [
    "DEVICE_LIFETIME",
    "DEVICE_REGISTER_PATH",
    "QueryOptions",
    "V4Answer",
    "V4Client",
    "build_form",
]

DEVICE_REGISTER_PATH = "/v1/api/user/device/register"
"""Where a token-only v4 client gets a device id (protocol notes v4 §1.3)."""
DEVICE_LIFETIME = 10800.0
"""Seconds a registered device pair is used before registering again (3 h, as LRT does)."""

logger = logging.getLogger(__name__)

WHAT = "chat request"
BODY_END_GRACE = 0.25
"""Seconds the v4 client waits for the close frame and the body's end after the answer."""
_ERROR_BODY_LIMIT = 64 * 1024
V4_HOSTS = frozenset({"www.hailuo.ai", "hailuo.ai", "chat.minimax.io", "agent.minimax.io"})
"""The documented chain ``www.hailuo.ai`` → ``chat.minimax.io`` → ``agent.minimax.io``: the
hosts a redirect may lead to with the credentials (besides the configured origin)."""
V4_DOMAINS = (".minimaxi.com",)
"""The China site's domain (any of its hosts, over https)."""
_BASE_URL_HINT = (
    "check the base URL setting (base_url / HAILUO_BASE_URL): it must point at a Hailuo web "
    "chat that speaks the v4 protocol (the live MiniMax Agent site needs protocol='agent')"
)


@dataclass(frozen=True, slots=True)
class QueryOptions:
    """Fixed values of the fingerprint query (see :func:`~.crypt.build_fingerprint_query`).

    Attributes:
        lang: The site language (default: the login's, else ``en``).
        version_code: The web app's version code.
        biz_id: The business id of the international web chat.
        app_id: The web app id.
    """

    lang: str | None = None
    version_code: str = "22201"
    biz_id: str = "2"
    app_id: str = "3001"


def build_form(
    *,
    msg_content: str,
    character_id: str | int = 1,
    chat_id: str | int = "0",
    search_mode: str = "0",
) -> dict[str, str]:
    """The four text fields of a chat request, in the order they are sent."""
    # ``characterID``, ``msgContent``, ``chatID`` and ``searchMode`` as strings.
    return {
        "characterID": str(character_id),
        "msgContent": msg_content,
        "chatID": str(chat_id),
        "searchMode": search_mode,
    }


def _multipart(form: Mapping[str, str]) -> aiohttp.FormData:
    """A fresh multipart body of text fields (a FormData can be sent only once)."""
    data = aiohttp.FormData(default_to_multipart=True)
    for name, value in form.items():
        data.add_field(name, value)
    return data


def _unix_of(url: yarl.URL) -> int | None:
    """The ``unix`` query value of a URL, when it holds a number."""
    value = url.query.get("unix")
    return int(value) if value is not None and value.isdigit() else None


class V4Answer(StreamedResponse):
    """One streaming answer: where it came from and its events.

    Obtained from :meth:`V4Client.chat`, which closes it on exit.

    Attributes:
        origin: The origin that answered (after redirects).
        requested_origin: The origin the request was first sent to.
        decoder: The stream decoder (``text``, ``chat_id``… of what arrived).
    """

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        *,
        requested_origin: str,
        options: HttpOptions,
        redact: Redactor,
    ) -> None:
        """Wrap a response whose status and content type were checked."""
        super().__init__(response, options=options, redact=redact)
        self.origin = origin_of(str(response.url))
        self.requested_origin = requested_origin
        self.decoder = V4StreamDecoder(max_line_bytes=options.max_line_bytes, redact=redact)

    @property
    def redirected(self) -> bool:
        """Whether the answer came from another origin than the one asked."""
        return self.origin != self.requested_origin

    async def events(self) -> AsyncGenerator[list[StreamEvent], None]:
        """Stream the answer's events, one list per network read, then read the body's rest."""
        # After the final snapshot the server sends a close frame and ends the body; reading them
        # (for at most :data:`BODY_END_GRACE` seconds, the answer is complete by then) ends the
        # answer on the server's side before the account's next one starts, and returns the
        # connection to the pool. A server that keeps the body open is left.
        # The decoder's non-empty event lists, :class:`~langchain_hailuo.types.FinishReason` last.
        decoder = self.decoder
        chunks = self._chunks()
        try:
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    events = decoder.feed(chunk)
                    if events:
                        yield events
                    decoder.raise_pending()  # an error that followed those events
                    if decoder.finished:  # let the server end the body (its close frame)
                        self._eof = await read_rest(
                            self._response.content, options=self._options, grace=BODY_END_GRACE
                        )
                        return
            self._eof = True
            events = decoder.close()
            if events:
                yield events
        except (HailuoError, aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            error = self._failed(exc, partial_text=decoder.text, chat_id=decoder.chat_id)
            if error is exc:
                raise
            raise error from exc
        finally:
            self.close()


class V4Client:
    """Sends v4 chat requests; one instance serves many accounts and event loops."""

    def __init__(
        self,
        *,
        options: HttpOptions | None = None,
        query: QueryOptions | None = None,
        clock: Callable[[], int] = now_ms,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        session_factory: Callable[[], aiohttp.ClientSession] | None = None,
    ) -> None:
        """Create the client."""
        self.options = options or HttpOptions()
        self.query = query or QueryOptions()
        self._clock = clock
        self._sleep = sleep
        self._last_unix = 0
        self._sessions = LoopSessions(session_factory or cookieless_session)

    def next_unix(self) -> int:
        """A request time in milliseconds, strictly greater than the previous one."""
        self._last_unix = max(self._clock(), self._last_unix + 1)
        return self._last_unix

    def chat_url(self, auth: AuthResult, base_url: str) -> str:
        """The chat URL with a fresh fingerprint query."""
        q = self.query
        query = build_fingerprint_query(
            auth,
            self.next_unix(),
            lang=q.lang,
            version_code=q.version_code,
            biz_id=q.biz_id,
            app_id=q.app_id,
        )
        return f"{base_url.rstrip('/')}{API_PATH}?{query}"

    def headers_for(self, auth: AuthResult, url: str, form: Mapping[str, str]) -> dict[str, str]:
        """The headers of one chat request to ``url`` (``yy`` over the form's hashes)."""
        return self.signed_headers(auth, url, get_body_to_yy(form))

    def signed_headers(self, auth: AuthResult, url: str, body_to_yy: str) -> dict[str, str]:
        """The headers of one request to ``url``, ``yy`` signed over what goes on the wire."""
        # aiohttp normalises a URL's percent-escapes before sending it, so the path and query are
        # signed in that normalised form, with the ``unix`` value the URL carries.
        # ``token``, ``yy``, ``user-agent``, ``referer``, ``accept``, ``accept-language`` and, when
        # there are cookies, ``cookie``.
        wire = yarl.URL(url)
        unix = _unix_of(wire)
        yy = generate_yy_header(
            wire.raw_path_qs,
            body_to_yy,
            self.next_unix() if unix is None else unix,
        )
        headers = {
            "token": auth.token.get_secret_value(),
            "yy": yy,
            "user-agent": auth.user_agent or DEFAULT_USER_AGENT,
            "referer": origin_of(url) + "/",
            "accept": "*/*",
            "accept-language": auth.browser_language or "en-US",
        }
        cookie = cookie_header(auth.cookies)
        if cookie:
            headers["cookie"] = cookie
        return headers

    @contextlib.asynccontextmanager
    async def chat(
        self,
        auth: AuthResult,
        form: Mapping[str, str],
        *,
        base_url: str,
        options: HttpOptions | None = None,
    ) -> AsyncIterator[V4Answer]:
        """Send one chat request and hold its answer open for streaming."""
        # The message is sent again only when it provably did not reach the server (the connection
        # failed before anything was written, a 429), with backoff inside the call's deadline; any
        # other failure raises, saying whether the message may have arrived. Redirects are followed
        # only to the configured origin and Hailuo / MiniMax hosts. The response is closed when the
        # ``async with`` block exits, however it exits.
        opts = (options or self.options).with_deadline()
        requested = origin_of(base_url)
        redact = Redactor.of(auth)
        policy = RedirectPolicy.for_origins(requested, hosts=V4_HOSTS, domains=V4_DOMAINS)

        def build(hop_url: str) -> dict[str, Any]:
            return {"headers": self.headers_for(auth, hop_url, form), "data": _multipart(form)}

        async def attempt() -> aiohttp.ClientResponse:
            url = self.chat_url(auth, base_url)  # every attempt is signed afresh
            logger.debug(
                "POST %s%s (%d prompt chars)", requested, API_PATH, len(form.get("msgContent", ""))
            )
            resp = await request_following_redirects(
                self._sessions.get(),
                "POST",
                url,
                build=build,
                options=opts,
                policy=policy,
                what=WHAT,
            )
            await raise_for_http_status(resp, what=WHAT)
            try:
                await _check_content_type(resp)
            except BaseException:
                resp.close()
                raise
            return resp

        chat_id = form.get("chatID")
        resp = await retry_before_first_byte(
            attempt,
            options=opts,
            what=WHAT,
            sleep=self._sleep,
            idempotent=False,
            chat_id=chat_id if chat_id not in {None, "", "0"} else None,
            redact=redact,
        )
        answer = V4Answer(resp, requested_origin=requested, options=opts, redact=redact)
        if answer.redirected:
            logger.info("the chat answer came from %s (asked %s)", answer.origin, requested)
        try:
            yield answer
        finally:
            answer.close()

    async def register_device(
        self, auth: AuthResult, *, base_url: str, options: HttpOptions | None = None
    ) -> DeviceIdentity:
        """Ask the site for a device id: ``POST /v1/api/user/device/register``."""
        # As the protocol notes describe it: a fresh random UUID goes in the JSON body and as the
        # query's ``uuid``, without a ``device_id``; the answer's ``data.deviceIDStr`` is the device
        # id. The pair is good for :data:`DEVICE_LIFETIME` seconds.
        opts = (options or self.options).with_deadline()
        policy = RedirectPolicy.for_origins(origin_of(base_url), hosts=V4_HOSTS, domains=V4_DOMAINS)
        fresh = str(uuid_module.uuid4())
        probe = auth.model_copy(update={"uuid": fresh, "device_id": None})
        body = json.dumps({"uuid": fresh}, separators=(",", ":"))
        q = self.query
        query = build_fingerprint_query(
            probe, self.next_unix(), lang=q.lang, version_code=q.version_code,
            biz_id=q.biz_id, app_id=q.app_id,
        )  # fmt: skip
        url = f"{base_url.rstrip('/')}{DEVICE_REGISTER_PATH}?{query}"
        what = "device registration"

        def build(hop_url: str) -> dict[str, Any]:
            headers = self.signed_headers(auth, hop_url, body)
            headers["content-type"] = "application/json"
            return {"headers": headers, "data": body.encode("utf-8")}

        async def attempt() -> Any:
            resp = await request_following_redirects(
                self._sessions.get(),
                "POST",
                url,
                build=build,
                options=opts,
                policy=policy,
                what=what,
            )
            try:
                await raise_for_http_status(resp, what=what)
                return loads_json(await resp.read())
            except ValueError:
                raise HailuoProtocolError(
                    f"{origin_of(url)} answered the {what} with a non-JSON body."
                ) from None
            finally:
                resp.release()

        answer = await retry_before_first_byte(
            attempt, options=opts, what=what, sleep=self._sleep, redact=Redactor.of(auth)
        )
        return _registered_identity(answer, fresh, origin_of(url))

    async def aclose(self) -> None:
        """Close the running loop's session (and retire those of closed loops)."""
        await self._sessions.aclose()


def _registered_identity(answer: Any, fresh_uuid: str, origin: str) -> DeviceIdentity:
    """The pair of a device registration answer, or the typed error it amounts to."""
    status = answer.get("statusInfo") if isinstance(answer, dict) else None
    code = status.get("code") if isinstance(status, dict) else None
    if code not in {None, 0, "0"}:
        message = status.get("message") or status.get("msg") or "" if status else ""
        raise HailuoServerError(
            f"The device registration failed with code {code}: {message}",
            code=code,
            server_message=str(message),
        )
    data = answer.get("data") if isinstance(answer, dict) else None
    device_id = data.get("deviceIDStr") if isinstance(data, dict) else None
    if isinstance(device_id, int) and not isinstance(device_id, bool):
        device_id = str(device_id)
    if not isinstance(device_id, str) or not device_id.isdigit():
        raise HailuoProtocolError(f"{origin} answered the device registration without an id.")
    return DeviceIdentity(device_id, fresh_uuid, expires_at=time.time() + DEVICE_LIFETIME)


async def _check_content_type(resp: aiohttp.ClientResponse) -> None:
    """Refuse a 2xx answer that is an HTML page or a JSON error instead of a stream."""
    ctype = resp.headers.get("Content-Type", "").lower()
    origin = origin_of(str(resp.url))
    if "html" in ctype:
        raise HailuoProtocolError(
            f"{origin} answered the {WHAT} with an HTML page instead of an answer stream; "
            f"{_BASE_URL_HINT}."
        )
    if "json" not in ctype:
        return
    raw = await resp.content.read(_ERROR_BODY_LIMIT)
    try:
        body = loads_json(raw.decode("utf-8", "replace"))
    except ValueError:
        body = None
    status = body.get("statusInfo") if isinstance(body, dict) else None
    if isinstance(status, dict) and status.get("code") not in {None, 0, "0"}:
        server_message = str(status.get("message") or "")
        raise HailuoServerError(
            f"{origin} refused the {WHAT}: error {status.get('code')}"
            + (f": {server_message}" if server_message else ""),
            code=status.get("code"),
            server_message=server_message,
            status=resp.status,
        )
    raise HailuoProtocolError(
        f"{origin} answered the {WHAT} with JSON instead of an answer stream; {_BASE_URL_HINT}."
    )
