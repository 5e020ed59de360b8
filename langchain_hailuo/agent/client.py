"""The MiniMax Agent HTTP client: identity bootstrap, sessions and the streamed turn.

One :class:`AgentClient` serves any number of accounts. It keeps one
:class:`aiohttp.ClientSession` per event loop (no cookie jar: each request carries its
account's cookies as a ``Cookie`` header) and signs every request with a fresh clock
reading (see :mod:`langchain_hailuo.agent.signing`).

The cycle (protocol notes §10), with control calls on ``base_url`` (``agent.<domain>``) and
the turn on ``stream_url`` (``agent-stream.<domain>``):

1. once per account: ``GET /v1/api/user/info`` (``realUserID``), ``GET {prefix}/config``
   (the model ids) and ``GET {prefix}/agent`` (the id of the ``mavis`` agent), cached on
   the returned :class:`~langchain_hailuo.types.AuthResult` and in the client;
2. per conversation: ``POST {prefix}/agent/{agent_id}/session`` gives a ``session_id``;
3. per turn: ``POST {stream_url}{prefix}/session/{session_id}/message`` streams the answer.

Example:
    ```python
    client = AgentClient()
    auth = await client.bootstrap(auth)
    session_id = await client.create_session(auth, ModelChoice("MiniMax-M3"))
    async with client.send_message(auth, session_id, "Hello!", ModelChoice("MiniMax-M3")) as turn:
        async for event in turn.events():
            print(event)
    await client.aclose()
    ```
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import time
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

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
    read_limited,
    read_rest,
    request_following_redirects,
    retry_before_first_byte,
)
from langchain_hailuo._sse import loads_json
from langchain_hailuo._timeouts import Timeouts
from langchain_hailuo.agent.signing import (
    QueryProfile,
    browser_unix_ms,
    build_query,
    dumps_body,
    identity_query_values,
    local_timezone_offset,
    now_ms,
    sign_request,
    uses_fetch_wrapper,
)
from langchain_hailuo.agent.stream import (
    DEVICE_ID_CODE,
    AgentNotConfiguredError,
    AgentStreamDecoder,
    drift_note,
    drift_of_call,
    error_for_code,
    find_error_code,
)
from langchain_hailuo.errors import (
    LOGIN_HINT,
    HailuoAuthError,
    HailuoConfigurationError,
    HailuoError,
    HailuoProtocolError,
    HailuoServerError,
    HailuoSessionBusyError,
    HailuoStallError,
    HailuoTimeoutError,
)
from langchain_hailuo.types import AuthResult, StreamEvent

__all__ = [
    "AGENT_HTTP_OPTIONS",
    "DEFAULT_API_PREFIX",
    "DEFAULT_BASE_URL",
    "DEFAULT_USER_AGENT",
    "WEB_CLIENT_TIMEOUTS",
    "AgentClient",
    "AgentSettings",
    "AgentTurn",
    "ModelChoice",
    "both",
    "check_device_id",
    "default_region",
    "default_stream_url",
    "parse_agent_id",
    "parse_model_ids",
    "parse_real_user_id",
    "parse_renewed_token",
    "parse_session_id",
    "registrable_domain",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_BASE_URL = "https://agent.minimax.io"
DEFAULT_API_PREFIX = "/minimax-cloud/api/v1"
DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/136.0.0.0 Safari/537.36"
)
JSON_ACCEPT = "application/json, text/plain, */*"
STREAM_ACCEPT = "text/event-stream"
_ERROR_BODY_LIMIT = 64 * 1024
WEB_CLIENT_TIMEOUTS = Timeouts(first_byte=120.0, idle=90.0)
"""The production web client's limits (§12.4) as the Agent stack's phase timeouts: a request
times out after 120 s, a stream without data for 90 s has stalled (``HailuoStallError``).
The v4 stack keeps the shared :class:`Timeouts` defaults."""
AGENT_HTTP_OPTIONS = HttpOptions(timeouts=WEB_CLIENT_TIMEOUTS)
"""The Agent stack's default options (the one place its defaults are decided)."""
MESSAGE_RETRY_DELAY = 1.0
"""The web client's one retry of a message refused before it was taken (§12.2): about 1 s
(the backoff's jitter makes it 0.5-1 s)."""
_SECOND_LEVEL_LABELS = frozenset({"ac", "co", "com", "edu", "gov", "net", "org"})
_CN_DOMAINS = frozenset({"minimaxi.com", "minimax.cn"})
AGENT_HOSTS = frozenset({"agent.minimax.io", "agent-stream.minimax.io", "chat.minimax.io"})
"""The international MiniMax Agent hosts a redirect may lead to with the credentials."""
AGENT_DOMAINS = (".minimaxi.com",)
"""The China site's domain: any of its hosts may receive the credentials (over https)."""


# --------------------------------------------------------------------------- settings


def registrable_domain(host: str) -> str:
    """The registrable domain of a host name, without a public-suffix list."""
    # The last two labels, or the last three when the second-to-last is a generic second-level label
    # (``example.com.cn``).
    labels = host.lower().rstrip(".").split(".")
    keep = 3 if len(labels) > 2 and labels[-2] in _SECOND_LEVEL_LABELS else 2  # noqa: PLR2004
    return ".".join(labels[-keep:])


def _is_named_host(host: str) -> bool:
    """Whether a host is a DNS name with a domain (not an IP, not ``localhost``)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return "." in host and not host.endswith(".localhost") and host != "localhost"
    return False


def default_stream_url(base_url: str) -> str:
    """The stream origin that goes with a control origin: ``agent-stream.<domain>``."""
    # ``https://agent.minimax.io`` gives ``https://agent-stream.minimax.io``; scheme and port are
    # kept. An IP address, ``localhost`` or a host without a domain has no stream host to derive (a
    # local emulator serves it on another port), so the caller must pass ``stream_url`` (or set
    # ``HAILUO_STREAM_URL``).
    # The stream origin, without a trailing slash.
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.scheme not in {"http", "https"} or not host:
        raise HailuoConfigurationError(
            f"base_url {base_url!r} is not an absolute http(s) URL; use e.g. {DEFAULT_BASE_URL}."
        )
    if not _is_named_host(host):
        raise HailuoConfigurationError(
            f"Cannot derive the Agent stream origin from {origin_of(base_url)} (an IP address "
            "or local host): pass stream_url= (or set HAILUO_STREAM_URL) to the origin that "
            "serves the message stream."
        )
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://agent-stream.{registrable_domain(host)}{port}"


def default_region(base_url: str) -> str:
    """The ``region`` query value for a control origin: ``cn`` for the China site, else ``en``."""
    # ``cn`` for ``*.minimaxi.com`` / ``*.minimax.cn``, ``en`` otherwise.
    host = urlsplit(base_url).hostname or ""
    return "cn" if _is_named_host(host) and registrable_domain(host) in _CN_DOMAINS else "en"


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """Where and how to talk to MiniMax Agent; every wire path is a setting.

    Attributes:
        base_url: The control origin (the web app), e.g. ``https://agent.minimaxi.com``.
        stream_url: The origin of the message stream (default: ``agent-stream.<domain>``,
            see :func:`default_stream_url`).
        api_prefix: The API generation's prefix (``/archon/api/v1`` for the older one).
        user_info_path: The identity endpoint (absolute path, not under the prefix).
        renewal_path: The token renewal endpoint (absolute path, not under the prefix).
        config_path: The model list, under the prefix.
        agents_path: The agent list, under the prefix.
        session_path: Session creation, under the prefix (``{agent_id}`` is filled in).
        message_path: The turn, under the prefix (``{session_id}`` is filled in).
        upload_prepare_path: The upload's prepare call, under the prefix (§6.1).
        membership_path: The plan and balance readout (absolute path, §7.3).
        credit_details_path: The credit grants, under the prefix (§7.3).
        agent_role: The ``agent_role`` of the agent to talk to.
        provider_id: The ``provider_id`` of the model object.
        heartbeat_stall: Seconds of heartbeats without data after which a turn has stalled
            (the web client's watchdog: 60 s; a silent stream is the idle timeout's, 90 s,
            see :data:`WEB_CLIENT_TIMEOUTS`).
        generating_stuck: Seconds a turn may go on without its answer growing (no new text,
            reasoning or agent tool call) before it is stuck, even while other frames
            arrive (the web client's "generating" watchdog: 120 s).
        region: The ``region`` query value (default: from the base URL's domain).
        lang: The ``lang`` / ``sys_language`` query value (default: the login's, else ``en``).
        user_agent: The user agent when the login recorded none.
    """

    base_url: str = DEFAULT_BASE_URL
    stream_url: str | None = None
    api_prefix: str = DEFAULT_API_PREFIX
    user_info_path: str = "/v1/api/user/info"
    renewal_path: str = "/v1/api/user/renewal"
    config_path: str = "/config"
    agents_path: str = "/agent"
    session_path: str = "/agent/{agent_id}/session"
    message_path: str = "/session/{session_id}/message"
    upload_prepare_path: str = "/uploads/prepare"
    membership_path: str = "/matrix/api/v1/commerce/get_membership_info"
    credit_details_path: str = "/credit/details"
    agent_role: str = "mavis"
    provider_id: str = "minimax"
    heartbeat_stall: float = 60.0
    generating_stuck: float = 120.0
    region: str | None = None
    lang: str | None = None
    user_agent: str = DEFAULT_USER_AGENT

    @property
    def control_origin(self) -> str:
        """The control origin without a trailing slash."""
        return self.base_url.rstrip("/")

    @property
    def stream_origin(self) -> str:
        """The stream origin (explicit or derived)."""
        return (self.stream_url or default_stream_url(self.base_url)).rstrip("/")

    @property
    def origins(self) -> tuple[str, ...]:
        """The origins the credentials belong to: control, and stream wherever it is known."""
        # A local base URL (an IP address) without ``stream_url`` has no stream origin to derive;
        # its control calls still work, and a turn then asks for ``stream_url``.
        if self.stream_url or _is_named_host(urlsplit(self.base_url).hostname or ""):
            return (self.control_origin, self.stream_origin)
        return (self.control_origin,)

    def prefixed(self, path: str) -> str:
        """A path under the API prefix."""
        return "/" + "/".join(p.strip("/") for p in (self.api_prefix, path) if p.strip("/"))


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """The model object of sessions and turns.

    Attributes:
        model_id: The model id (``MiniMax-M3``).
        reasoning: Thinking on or off; ``None`` leaves the model's default (key omitted).
    """

    model_id: str
    reasoning: bool | None = None

    def payload(self, provider_id: str) -> dict[str, Any]:
        """``{"provider_id", "model_id"[, "reasoning"]}`` as sent."""
        model: dict[str, Any] = {"provider_id": provider_id, "model_id": self.model_id}
        if self.reasoning is not None:
            model["reasoning"] = self.reasoning
        return model


# --------------------------------------------------------------------------- pure helpers


def check_device_id(auth: AuthResult) -> None:
    """Refuse a non-numeric device id before it is sent (the server answers 1406011050)."""
    if auth.device_id is not None and not auth.device_id.isdigit():
        raise HailuoConfigurationError(
            "The Agent site needs a numeric device id (the sessionStorage tab_device_id), "
            "but the credentials hold a non-numeric one. Remove HAILUO_DEVICE_ID (or the "
            "device_id argument) so langchain-hailuo keeps a generated one, or run "
            "`hailuo login` again."
        )


def _data_of(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``data`` object of an envelope, or the body itself."""
    data = body.get("data")
    return data if isinstance(data, Mapping) else body


def parse_real_user_id(body: Mapping[str, Any]) -> str | None:
    """``data.userInfo.realUserID`` of ``/v1/api/user/info`` as text (it can exceed 2^53)."""
    # The id, or ``None`` when absent.
    info = _data_of(body).get("userInfo")
    value = info.get("realUserID") if isinstance(info, Mapping) else None
    return str(value) if value not in (None, "", 0) else None


def parse_renewed_token(body: Mapping[str, Any]) -> str | None:
    """The new JWT of a ``/v1/api/user/renewal`` answer (``data.token``, else ``token``)."""
    # The token, or ``None`` when the answer holds none.
    for holder in (_data_of(body), body):
        token = holder.get("token")
        if isinstance(token, str) and token.strip():
            return token.strip()
    return None


def parse_model_ids(body: Mapping[str, Any]) -> list[str]:
    """The model ids of ``/config`` (``models[].model_id``, top level or under ``data``)."""
    models = body.get("models")
    if not isinstance(models, list):
        models = _data_of(body).get("models")
    ids: list[str] = []
    for model in models if isinstance(models, list) else []:
        value = model.get("model_id") or model.get("id") if isinstance(model, Mapping) else model
        if isinstance(value, str) and value:
            ids.append(value)
    return ids


def parse_agent_id(body: Mapping[str, Any], role: str) -> str | None:
    """The numeric id of the agent with ``agent_role == role`` in ``/agent``."""
    # The id is the agent's ``name`` (a 15-digit number); ``agent_id`` / ``id`` are read too.
    # The id as text, or ``None`` when no agent has that role.
    agents: Any = body.get("agents")
    if not isinstance(agents, list):
        data = body.get("data")
        agents = data if isinstance(data, list) else _data_of(body).get("agents")
    for agent in agents if isinstance(agents, list) else []:
        if not isinstance(agent, Mapping) or agent.get("agent_role") != role:
            continue
        for key in ("agent_id", "name", "id"):
            value = agent.get(key)
            if value is not None and str(value).isdigit():
                return str(value)
    return None


def parse_session_id(body: Mapping[str, Any]) -> str | None:
    """The new session's id: ``session_id`` at top level, under ``data`` or under ``session``."""
    # The id as text, or ``None``.
    for holder in (body, body.get("data"), body.get("session")):
        if isinstance(holder, Mapping):
            value = holder.get("session_id")
            if value not in (None, "", 0):
                return str(value)
    return None


def _envelope_error(body: Any) -> tuple[str | None, str] | None:
    """``(code, message)`` of a ``base_resp`` / ``statusInfo`` envelope reporting an error."""
    if not isinstance(body, Mapping):
        return None
    for key, code_key, message_keys in (
        ("base_resp", "status_code", ("status_msg",)),
        ("statusInfo", "code", ("message", "msg")),
    ):
        envelope = body.get(key)
        if isinstance(envelope, Mapping) and envelope.get(code_key) not in (None, 0, "0"):
            message = next((str(envelope[k]) for k in message_keys if envelope.get(k)), "")
            return str(envelope.get(code_key)), message
    error = body.get("error")
    if error:
        message = str(error.get("message", "")) if isinstance(error, Mapping) else str(error)
        return find_error_code(body, message), message
    return None


def _account_key(auth: AuthResult, settings: AgentSettings) -> tuple[str, str]:
    """An account on one site, for what is learnt once per account."""
    return (auth.account_fingerprint, settings.control_origin)


A = TypeVar("A")
B = TypeVar("B")


async def both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Run two calls side by side; when one fails, the other is cancelled and awaited."""
    tasks = (asyncio.ensure_future(first), asyncio.ensure_future(second))
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    # raise the failure that ended the wait, never the other call's cancellation
    failures = [t.exception() for t in tasks if t in done and not t.cancelled()]
    error = next((exc for exc in failures if exc is not None), None)
    if error is not None:
        raise error
    return tasks[0].result(), tasks[1].result()


def _json_or_none(text: str) -> Any:
    """Parsed JSON, or ``None`` (JSON nested too deeply raises typed)."""
    try:
        return loads_json(text)
    except ValueError:
        return None


# --------------------------------------------------------------------------- the turn


class AgentTurn(StreamedResponse):
    """One streaming answer; obtained from :meth:`AgentClient.send_message`, which closes it.

    Attributes:
        session_id: The session the turn belongs to.
        turn_id: The turn's id (a fresh UUID4).
        decoder: The stream decoder (``text``, ``reasoning``… of what arrived).
    """

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        *,
        decoder: AgentStreamDecoder,
        session_id: str,
        turn_id: str,
        options: HttpOptions,
        redact: Redactor,
        heartbeat_stall: float = 60.0,
        generating_stuck: float = 120.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Wrap a response whose status and content type were checked."""
        super().__init__(response, options=options, redact=redact)
        self._heartbeat_stall = heartbeat_stall
        self._generating_stuck = generating_stuck
        self._monotonic = monotonic
        self.decoder = decoder
        self._frames, self._growth = decoder.frames, decoder.growth
        self._last_data = self._last_growth = monotonic()
        self.session_id = session_id
        self.turn_id = turn_id

    async def events(self) -> AsyncGenerator[list[StreamEvent], None]:
        """Stream the turn's events, one list per network read, then the usage after them."""
        # After the ``finish: true`` chunk the service still sends a final message with the token
        # usage, then ends the body. The text is complete at the chunk, so the remaining bytes are
        # read for at most ``_http.BODY_END_GRACE`` seconds (or the idle timeout, if shorter);
        # reading them also ends the turn cleanly on the server's side (the session is free for the
        # next turn at once). The watchdogs (heartbeats alone, an answer that stopped growing) are
        # checked after every read.
        # The decoder's non-empty event lists; ``Usage`` (when reported) and
        # :class:`~langchain_hailuo.types.FinishReason` in the last one.
        decoder = self.decoder
        chunks = self._chunks()
        finish: list[StreamEvent] = []
        try:
            async with contextlib.aclosing(chunks):
                self._last_data = self._last_growth = self._monotonic()
                async for chunk in chunks:
                    events = decoder.feed(chunk)
                    if decoder.finished:  # FinishReason is last: it goes after the usage
                        finish.append(events.pop())
                    if events:
                        yield events
                    decoder.raise_pending()  # an error that followed those events
                    if finish:
                        break
                    self._watch()
                else:
                    self._eof = True
                    events = decoder.close()
                    finish.append(events.pop())
                    if events:
                        yield events
                if not self._eof and not decoder.final_message:
                    self._eof = await read_rest(
                        self._response.content, options=self._options, feed=decoder.feed
                    )
            yield [*decoder.trailer(), *finish]
        except (HailuoError, aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            error = self._failed(
                exc,
                partial_text=decoder.received_text,
                partial_reasoning=decoder.reasoning,
                chat_id=self.session_id,
            )
            if error is exc:
                raise
            raise error from exc
        finally:
            self.close()

    def _watch(self) -> None:
        """Raise when only heartbeats came, or the answer stopped growing, for too long."""
        decoder, now = self.decoder, self._monotonic()
        if decoder.frames != self._frames:
            self._frames, self._last_data = decoder.frames, now
        if decoder.growth != self._growth:
            self._growth, self._last_growth = decoder.growth, now
        if decoder.heartbeats_since_data and now - self._last_data >= self._heartbeat_stall:
            raise self._stalled(now - self._last_data)
        if now - self._last_growth >= self._generating_stuck:
            raise self._stuck(now - self._last_growth)

    def _idle_error(self, idle: float) -> HailuoTimeoutError:
        """A stream without data for ``idle`` seconds: the web client's stall (§12.4)."""
        return HailuoStallError(
            f"The answer stalled: no data for {idle:g} s (the web client gives up after 90 s "
            "of silence too; `timeouts.idle`). The message was not sent again; partial_text "
            "holds what arrived. Try again, or in a new conversation."
        )

    def _stuck(self, seconds: float) -> HailuoStallError:
        """The stuck error: the answer did not grow for ``seconds`` although frames came."""
        return HailuoStallError(
            f"The answer is stuck: it has not grown for {seconds:.0f} s although the stream "
            f"kept sending events (the web client gives up on a message still generating "
            f"after {self._generating_stuck:g} s too). The message was not sent again; "
            "partial_text holds what arrived. Try again, or in a new conversation."
        )

    def _stalled(self, seconds: float) -> HailuoStallError:
        """The stall error: only heartbeats for ``seconds`` (the partial text is attached)."""
        return HailuoStallError(
            f"The answer stalled: only heartbeats for {seconds:.0f} s (the web client gives up "
            f"after {self._heartbeat_stall:g} s too). The message was not sent again; "
            "partial_text holds what arrived. Try again, or in a new conversation."
        )


# --------------------------------------------------------------------------- the client


@dataclass(frozen=True, slots=True)
class _Identity:
    """What the bootstrap learnt about one account on one site."""

    real_user_id: str
    models: tuple[str, ...]
    agent_id: str


class AgentClient:
    """Sends MiniMax Agent requests; one instance serves many accounts and event loops."""

    def __init__(
        self,
        settings: AgentSettings | None = None,
        *,
        options: HttpOptions | None = None,
        profile: QueryProfile | None = None,
        clock: Callable[[], int] = now_ms,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        session_factory: Callable[[], aiohttp.ClientSession] | None = None,
    ) -> None:
        """Create the client."""
        self.settings = settings or AgentSettings()
        self.options = options or AGENT_HTTP_OPTIONS
        self.profile = profile or QueryProfile(timezone_offset=local_timezone_offset())
        self._clock = clock
        self._sleep = sleep
        self._sessions = LoopSessions(session_factory or cookieless_session)
        self._identities: dict[tuple[str, str], _Identity] = {}
        self._configured_accounts: set[tuple[str, str]] = set()

    # ------------------------------------------------------------------ request building

    def next_unix(self) -> int:
        """A request's clock reading as the browser takes it: whole seconds, in milliseconds."""
        return browser_unix_ms(self._clock())

    def _profile_for(self, settings: AgentSettings) -> QueryProfile:
        """The query profile with the settings' region and language applied."""
        return dataclasses.replace(
            self.profile,
            region=settings.region or default_region(settings.base_url),
            lang=settings.lang or self.profile.lang,
        )

    def build_url(
        self,
        auth: AuthResult,
        origin: str,
        path: str,
        unix_ms: int,
        *,
        settings: AgentSettings | None = None,
        user_id: str | None = None,
        params: Sequence[tuple[str, str]] = (),
    ) -> str:
        """The absolute URL of a request, with the browser's query (§12.1)."""
        # ``origin + path + "?" + query``, exactly as it goes on the wire.
        values = identity_query_values(
            auth,
            unix_ms,
            self._profile_for(settings or self.settings),
            user_id=user_id,
            fetch_wrapper=uses_fetch_wrapper(path),
        )
        return f"{origin}{path}?{build_query(values, params)}"

    def headers_for(
        self,
        auth: AuthResult,
        url: str,
        body: str,
        *,
        stream: bool = False,
        settings: AgentSettings | None = None,
    ) -> dict[str, str]:
        """The headers of one request to ``url``, signed over that URL and ``body``."""
        # ``token``, the three signature headers, ``accept``, ``content-type`` (with a body),
        # ``origin``, ``referer``, ``user-agent`` and, with cookies, ``cookie``.
        settings = settings or self.settings
        unix = yarl.URL(url, encoded=True).query.get("unix", "")
        unix_ms = int(unix) if unix.isdigit() else self.next_unix()
        headers = {
            "token": auth.token.get_secret_value(),
            **sign_request(url, body, unix_ms, stream=stream).headers(),
            "accept": STREAM_ACCEPT if stream else JSON_ACCEPT,
            "origin": settings.control_origin,
            "referer": settings.control_origin + "/",
            "user-agent": auth.user_agent or settings.user_agent,
        }
        if body:
            headers["content-type"] = "application/json"
        if auth.browser_language:
            headers["accept-language"] = auth.browser_language
        cookie = cookie_header(auth.cookies)
        if cookie:
            headers["cookie"] = cookie
        return headers

    # ------------------------------------------------------------------ errors

    def _unauthorised(self, auth: AuthResult, url: str, settings: AgentSettings) -> HailuoAuthError:
        """The 401 error, naming the identity values that were sent (never the token)."""
        region = settings.region or default_region(settings.base_url)
        return HailuoAuthError(
            f"{origin_of(url)} rejected the request as unauthorised (HTTP 401). Sent: "
            f"user_id={auth.real_user_id or '(none)'}, device_id={auth.device_id or '(none)'}, "
            f"region={region}, origin={settings.control_origin}. The Agent site answers 401 "
            "when user_id is not the account's realUserID, when the token expired, or when the "
            "account or network belongs to the other region (China accounts use "
            f"https://agent.minimaxi.com; mainland-China networks are refused by "
            f"agent.minimax.io). {LOGIN_HINT}",
            status=401,
        )

    async def _check_status(
        self, resp: aiohttp.ClientResponse, auth: AuthResult, what: str, settings: AgentSettings
    ) -> None:
        """Raise the typed Agent error for an error status (2xx returns quietly)."""
        try:
            await raise_for_http_status(resp, what=what)
        except HailuoAuthError as exc:
            if exc.status == 401:  # noqa: PLR2004
                raise self._unauthorised(auth, str(resp.url), settings) from exc
            raise
        except HailuoServerError as exc:
            message = exc.server_message
            code = find_error_code(_json_or_none(message), message)
            refined = error_for_code(
                code, message, what=what, status=exc.status, device_id=auth.device_id
            )
            if isinstance(exc, HailuoSessionBusyError) or (
                type(refined) is HailuoServerError and code != DEVICE_ID_CODE
            ):
                if refined.drift:  # an unknown code: say so on the HTTP error raised
                    exc.drift.update(refined.drift)
                    exc.message += drift_note(exc)
                    exc.args = (exc.message,)
                raise  # nothing more specific to say than the HTTP error already does
            raise refined from exc

    async def _read_json(
        self, resp: aiohttp.ClientResponse, what: str, settings: AgentSettings, opts: HttpOptions
    ) -> Mapping[str, Any]:
        """The JSON object of a 2xx answer (within ``max_line_bytes``); envelope errors typed."""
        raw = await read_limited(resp, opts.max_line_bytes, what=what)
        body = _json_or_none(raw.decode("utf-8", "replace"))
        if not isinstance(body, Mapping):
            kind = "an HTML page" if raw.lstrip()[:1] == b"<" else "a non-JSON body"
            raise HailuoProtocolError(
                f"{origin_of(str(resp.url))} answered the {what} with {kind}; check base_url "
                f"({settings.control_origin}) and api_prefix ({settings.api_prefix})."
            )
        error = _envelope_error(body)
        if error is not None:
            raise error_for_code(error[0], error[1], what=what, status=resp.status)
        return body

    async def _send(
        self,
        method: str,
        url: str,
        *,
        build: Callable[[str], Mapping[str, Any]],
        options: HttpOptions,
        settings: AgentSettings,
        what: str,
    ) -> aiohttp.ClientResponse:
        """Send a pre-encoded URL, following redirects only within the Agent's origins."""
        policy = RedirectPolicy.for_origins(
            *settings.origins,
            hosts=AGENT_HOSTS,
            domains=AGENT_DOMAINS,
        )
        return await request_following_redirects(
            self._sessions.get(),
            method,
            url,
            build=build,
            options=options,
            policy=policy,
            what=what,
            encoded=True,
        )

    # ------------------------------------------------------------------ control calls

    def _call_options(self, options: HttpOptions | None) -> HttpOptions:
        """Per-call options or the client's."""
        return options or self.options

    async def request_json(
        self,
        auth: AuthResult,
        method: str,
        path: str,
        *,
        what: str,
        payload: Any = None,
        settings: AgentSettings | None = None,
        options: HttpOptions | None = None,
        user_id: str | None = None,
    ) -> Mapping[str, Any]:
        """Send a signed control call to the control origin and return its JSON."""
        # Retried with backoff on connection errors, 429 and 5xx (only before the answer).
        settings = settings or self.settings
        opts = self._call_options(options).with_deadline()
        check_device_id(auth)
        body = "" if payload is None else dumps_body(payload)

        def build(hop_url: str) -> dict[str, Any]:
            kwargs: dict[str, Any] = {
                "headers": self.headers_for(auth, hop_url, body, settings=settings)
            }
            if body:
                kwargs["data"] = body.encode("utf-8")
            return kwargs

        async def attempt() -> Mapping[str, Any]:
            url = self.build_url(
                auth,
                settings.control_origin,
                path,
                self.next_unix(),
                settings=settings,
                user_id=user_id,
            )
            logger.debug("%s %s%s", method, settings.control_origin, path)
            resp = await self._send(
                method, url, build=build, options=opts, settings=settings, what=what
            )
            try:
                await self._check_status(resp, auth, what, settings)
                return await self._read_json(resp, what, settings, opts)
            finally:
                resp.release()

        return await retry_before_first_byte(
            attempt,
            options=opts,
            what=what,
            sleep=self._sleep,
            idempotent=method == "GET",
            redact=Redactor.of(auth),
        )

    async def _configured(
        self,
        auth: AuthResult,
        call: Callable[[], Awaitable[T]],
        *,
        settings: AgentSettings,
        options: HttpOptions | None,
    ) -> T:
        """Run ``call``; on error 1400010501 call ``/config`` once and run it again."""
        try:
            return await call()
        except AgentNotConfiguredError:
            logger.info("the agent environment was not configured; calling /config and retrying")
            await self.fetch_models(auth, settings=settings, options=options)
            return await call()

    async def fetch_real_user_id(
        self,
        auth: AuthResult,
        *,
        settings: AgentSettings | None = None,
        options: HttpOptions | None = None,
    ) -> str:
        """``realUserID`` from ``GET /v1/api/user/info`` (sent without a ``user_id``)."""
        settings = settings or self.settings
        return await self._user_call(
            auth,
            "GET",
            settings.user_info_path,
            what="user info request",
            parse=parse_real_user_id,
            missing="data.userInfo.realUserID; check base_url (and user_info_path)",
            settings=settings,
            options=options,
        )

    async def get_prefixed(
        self,
        auth: AuthResult,
        path: str,
        *,
        what: str,
        settings: AgentSettings,
        options: HttpOptions | None = None,
    ) -> Mapping[str, Any]:
        """``GET {prefix}{path}`` on the control origin and return its JSON."""
        # The read-only control calls (``/config``, the agent list, the credit details) all take
        # this shape; :meth:`request_json` does the signing, retries and typing.
        return await self.request_json(
            auth, "GET", settings.prefixed(path), what=what, settings=settings, options=options
        )

    async def _user_call(
        self,
        auth: AuthResult,
        method: str,
        path: str,
        *,
        what: str,
        parse: Callable[[Mapping[str, Any]], str | None],
        missing: str,
        settings: AgentSettings,
        options: HttpOptions | None,
        payload: Any = None,
    ) -> str:
        """A ``/v1/api/user/*`` call (no ``user_id`` needed) and the one value it is for."""
        body = await self.request_json(
            auth,
            method,
            path,
            what=what,
            payload=payload,
            settings=settings,
            options=options,
            user_id=auth.real_user_id or "",
        )
        value = parse(body)
        if value is None:
            raise HailuoProtocolError(
                f"{settings.control_origin}{path} answered without {missing}."
            )
        return value

    async def renew_token(
        self,
        auth: AuthResult,
        *,
        settings: AgentSettings | None = None,
        options: HttpOptions | None = None,
    ) -> str:
        """A new token from ``POST /v1/api/user/renewal`` (protocol notes §2.5)."""
        # Signed like any control call, body ``{}``; the answer's ``data.token`` is the new JWT
        # (about 40 days). The old one should not be used afterwards.
        settings = settings or self.settings
        return await self._user_call(
            auth,
            "POST",
            settings.renewal_path,
            what="token renewal",
            parse=parse_renewed_token,
            missing="data.token; the renewal call may have changed",
            settings=settings,
            options=options,
            payload={},
        )

    async def fetch_models(
        self,
        auth: AuthResult,
        *,
        settings: AgentSettings | None = None,
        options: HttpOptions | None = None,
    ) -> list[str]:
        """The account's model ids from ``GET {prefix}/config`` (also initialises the agent)."""
        settings = settings or self.settings
        body = await self.get_prefixed(
            auth, settings.config_path, what="config request", settings=settings, options=options
        )
        self._configured_accounts.add(_account_key(auth, settings))
        return parse_model_ids(body)

    async def ensure_configured(
        self,
        auth: AuthResult,
        *,
        settings: AgentSettings | None = None,
        options: HttpOptions | None = None,
    ) -> None:
        """Call ``/config`` once per account before its first message (§12.2)."""
        # The service answers a message of an account whose ``/config`` was never read with ``500
        # [1400010501]``; the browser reads it at start, in parallel with its other first calls.
        # Free after the first time (per client).
        settings = settings or self.settings
        if _account_key(auth, settings) not in self._configured_accounts:
            await self.fetch_models(auth, settings=settings, options=options)

    async def fetch_agent_id(
        self,
        auth: AuthResult,
        *,
        settings: AgentSettings | None = None,
        options: HttpOptions | None = None,
    ) -> str:
        """The numeric id of the agent whose ``agent_role`` is ``settings.agent_role``."""
        settings = settings or self.settings
        body = await self.get_prefixed(
            auth,
            settings.agents_path,
            what="agent list request",
            settings=settings,
            options=options,
        )
        agent_id = parse_agent_id(body, settings.agent_role)
        if agent_id is None:
            raise HailuoConfigurationError(
                f"The account has no agent with agent_role {settings.agent_role!r}; set "
                "agent_role to one the account lists (e.g. 'mavis', 'general', 'chat')."
            )
        return agent_id

    async def bootstrap(
        self,
        auth: AuthResult,
        *,
        settings: AgentSettings | None = None,
        options: HttpOptions | None = None,
        refresh_models: bool = False,
    ) -> AuthResult:
        """Learn the account's ``realUserID``, model ids and agent id, once per account."""
        # Values already on ``auth`` (from a previous bootstrap saved with the login) are kept; the
        # rest are fetched and cached in the client.
        # ``auth`` itself when nothing was missing, else an updated copy.
        settings = settings or self.settings
        check_device_id(auth)
        key = _account_key(auth, settings)
        cached = self._identities.get(key)
        real_user_id = auth.real_user_id or (cached.real_user_id if cached else None)
        models = auth.models or (list(cached.models) if cached else None)
        agent_id = auth.agent_id or (cached.agent_id if cached else None)
        if real_user_id is None:
            real_user_id = await self.fetch_real_user_id(auth, settings=settings, options=options)
        current = auth.model_copy(update={"real_user_id": real_user_id})

        known_models = None if refresh_models else models
        known_agent = agent_id

        async def read_models() -> list[str]:
            if known_models is not None:
                return known_models
            return await self.fetch_models(current, settings=settings, options=options)

        async def read_agent_id() -> str:
            if known_agent is not None:
                return known_agent
            return await self.fetch_agent_id(current, settings=settings, options=options)

        # the browser reads config and the agent list side by side (§12.2)
        read, read_agent = await both(read_models(), read_agent_id())
        self._identities[key] = _Identity(real_user_id, tuple(read), read_agent)
        update = {"real_user_id": real_user_id, "models": read, "agent_id": read_agent}
        if all(getattr(auth, name) == value for name, value in update.items()):
            return auth
        return auth.model_copy(update=update)

    async def create_session(
        self,
        auth: AuthResult,
        model: ModelChoice,
        *,
        settings: AgentSettings | None = None,
        options: HttpOptions | None = None,
    ) -> str:
        """Open a session with the account's agent (``auth.agent_id`` must be known)."""
        settings = settings or self.settings
        if not auth.agent_id:
            raise HailuoConfigurationError("The agent id is unknown: call bootstrap() first.")
        path = settings.prefixed(settings.session_path.format(agent_id=auth.agent_id))
        payload = {"model": model.payload(settings.provider_id)}

        async def call() -> Mapping[str, Any]:
            return await self.request_json(
                auth,
                "POST",
                path,
                what="session request",
                payload=payload,
                settings=settings,
                options=options,
            )

        body = await self._configured(auth, call, settings=settings, options=options)
        session_id = parse_session_id(body)
        if session_id is None:
            raise HailuoProtocolError(
                f"{settings.control_origin} created no session (no session_id in the answer); "
                f"check agent_role ({settings.agent_role!r}) and api_prefix "
                f"({settings.api_prefix})."
            )
        logger.debug("created session %s", session_id)
        return session_id

    # ------------------------------------------------------------------ the turn

    @contextlib.asynccontextmanager
    async def send_message(
        self,
        auth: AuthResult,
        session_id: str,
        content: str,
        model: ModelChoice,
        *,
        settings: AgentSettings | None = None,
        options: HttpOptions | None = None,
        attachments: Sequence[Mapping[str, Any]] = (),
    ) -> AsyncIterator[AgentTurn]:
        """Send one turn and hold its answer open for streaming."""
        # The turn is sent again at most once, after about 1 s as the web client does (§12.2), and
        # only when it provably did not reach the server (the connection failed before anything was
        # written, a 429, a 409 "session busy"), inside the call's deadline; any other failure
        # raises, saying whether the message may have arrived. The response is closed when the
        # ``async with`` block exits, however it exits.
        settings = settings or self.settings
        opts = self._call_options(options).with_deadline()
        check_device_id(auth)
        redact = Redactor.of(auth)
        turn_id = str(uuid.uuid4())
        path = settings.prefixed(settings.message_path.format(session_id=session_id))
        message: dict[str, Any] = {"content": content}
        if attachments:
            message["content"] = content if content.strip() else " "
            message["attachments"] = list(attachments)
        message.update(
            {
                "model": model.payload(settings.provider_id),
                "turn_id": turn_id,
                "worktreeMode": False,
            }
        )
        body = dumps_body(message)
        what = "message request"
        origin = settings.stream_origin

        def build(hop_url: str) -> dict[str, Any]:
            headers = self.headers_for(auth, hop_url, body, stream=True, settings=settings)
            return {"headers": headers, "data": body.encode("utf-8")}

        async def attempt() -> aiohttp.ClientResponse:
            url = self.build_url(auth, origin, path, self.next_unix(), settings=settings)
            logger.debug("POST %s%s (%d prompt chars)", origin, path, len(content))
            resp = await self._send(
                "POST", url, build=build, options=opts, settings=settings, what=what
            )
            try:
                await self._check_status(resp, auth, what, settings)
                await self._check_stream_type(resp, what, settings)
            except BaseException:
                resp.close()
                raise
            return resp

        # §12.2: one retry after about 1 s, only while the message is provably unsent (a 409
        # "session busy", a 429, a connection that failed before sending)
        once = dataclasses.replace(
            opts,
            max_retries=min(opts.max_retries, 1),
            backoff_base=MESSAGE_RETRY_DELAY,
            backoff_max=MESSAGE_RETRY_DELAY,
        )

        async def send() -> aiohttp.ClientResponse:
            return await retry_before_first_byte(
                attempt,
                options=once,
                what=what,
                sleep=self._sleep,
                idempotent=False,
                chat_id=session_id,
                redact=redact,
            )

        with drift_of_call() as drift:  # unknown codes of refusals before the answer
            resp = await self._configured(auth, send, settings=settings, options=opts)
        decoder = AgentStreamDecoder(
            message["content"], chat_id=session_id, max_line_bytes=opts.max_line_bytes
        )
        decoder.unknown.update(drift)  # counted in the answer's response_metadata
        turn = AgentTurn(
            resp,
            decoder=decoder,
            session_id=session_id,
            turn_id=turn_id,
            options=opts,
            redact=redact,
            heartbeat_stall=settings.heartbeat_stall,
            generating_stuck=settings.generating_stuck,
        )
        try:
            yield turn
        finally:
            turn.close()

    async def _check_stream_type(
        self, resp: aiohttp.ClientResponse, what: str, settings: AgentSettings
    ) -> None:
        """Refuse a 2xx answer that is an HTML page or a JSON body instead of a stream."""
        ctype = resp.headers.get("Content-Type", "").lower()
        if "html" in ctype:
            raise HailuoProtocolError(
                f"{origin_of(str(resp.url))} answered the {what} with an HTML page instead of "
                f"an event stream; check stream_url ({settings.stream_origin}) and api_prefix "
                f"({settings.api_prefix})."
            )
        if "json" not in ctype:
            return
        raw = await resp.content.read(_ERROR_BODY_LIMIT)
        body = _json_or_none(raw.decode("utf-8", "replace"))
        error = _envelope_error(body)
        if error is not None:
            raise error_for_code(error[0], error[1], what=what, status=resp.status)
        raise HailuoProtocolError(
            f"{origin_of(str(resp.url))} answered the {what} with JSON instead of an event "
            f"stream; check stream_url ({settings.stream_origin})."
        )

    def http_session(self) -> aiohttp.ClientSession:
        """The running loop's HTTP session (for requests built elsewhere: the upload's POST)."""
        return self._sessions.get()

    async def aclose(self) -> None:
        """Close the running loop's session (and retire those of closed loops)."""
        await self._sessions.aclose()
