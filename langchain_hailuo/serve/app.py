"""The ``hailuo serve`` web app: routes, API keys, limits, CORS, streaming, shutdown.

Routes: ``POST /v1/chat/completions`` and ``POST /v1/responses`` (OpenAI),
``POST /v1/messages`` and ``POST /v1/messages/count_tokens`` (Anthropic), ``GET /v1/models``
and ``GET /v1/models/{id}`` (OpenAI's shape, or Anthropic's when the request carries an
``anthropic-version`` header). Every failure is answered in the calling API's error shape
with the status :func:`~langchain_hailuo.serve.status.api_error` picks. A request's answer
is pulled up to its first part before any header is sent, so failures before the answer
starts get a real status; later ones become the API's in-stream error event.

Nothing secret is logged or sent: the access log is this module's own line (method, path,
status, the key's hashed name, seconds), unexpected exceptions are logged by type only, and
the Hailuo token never leaves ``ChatHailuo``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing, suppress
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from langchain_hailuo.chat_models import ChatHailuo
from langchain_hailuo.serve import anthropic_api, openai_api, responses_api
from langchain_hailuo.serve.config import ServeConfig, key_id
from langchain_hailuo.serve.core import Answerer, AnswerPart, FinishedAnswer
from langchain_hailuo.serve.status import ApiError, ErrorKind, api_error, bad_request
from langchain_hailuo.serve.store import ConversationStore, open_store

__all__ = ["Server", "serve_forever"]

logger = logging.getLogger(__name__)

OPEN_NAMESPACE = "open"
"""The namespace of callers when no API key is configured (loopback only)."""

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _Renderer(Protocol):
    """What both APIs' stream renderers offer."""

    def start(self) -> bytes: ...
    def part(self, part: AnswerPart) -> bytes: ...
    def error(self, error: ApiError) -> bytes: ...


@dataclass(frozen=True)
class _Api:
    """One API's translation functions."""

    name: str
    parse: Callable[[Any], Any]
    body: Callable[[Any, FinishedAnswer], dict[str, Any]]
    renderer: Callable[[Any, str], _Renderer]
    error_body: Callable[[ApiError], dict[str, Any]]


OPENAI = _Api(
    "openai",
    openai_api.parse_request,
    openai_api.completion,
    openai_api.ChunkRenderer,
    openai_api.error_body,
)
RESPONSES = _Api(
    "responses",
    responses_api.parse_request,
    responses_api.response_body,
    responses_api.EventRenderer,
    openai_api.error_body,
)
ANTHROPIC = _Api(
    "anthropic",
    anthropic_api.parse_request,
    anthropic_api.message,
    anthropic_api.EventRenderer,
    anthropic_api.error_body,
)
_NAMESPACE_KEY = web.RequestKey("hailuo_serve_namespace", str)


def _api_of(request: web.Request) -> _Api:
    """The API a request speaks: Anthropic's for its path or header, else OpenAI's."""
    if request.path.startswith("/v1/messages") or "anthropic-version" in request.headers:
        return ANTHROPIC
    return OPENAI


def _error_response(api: _Api, error: ApiError) -> web.Response:
    """An error in the API's shape, with its status and headers."""
    return web.json_response(api.error_body(error), status=error.status, headers=error.headers())


def _presented_key(request: web.Request) -> str | None:
    """The key a client sent: ``x-api-key``, else ``Authorization: Bearer``."""
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


class _Keys:
    """The configured API keys, compared in constant time."""

    def __init__(self, keys: tuple[Any, ...]) -> None:
        self._keys = [
            (key.get_secret_value().encode("utf-8"), key_id(key.get_secret_value())) for key in keys
        ]

    @property
    def required(self) -> bool:
        return bool(self._keys)

    def namespace(self, presented: str | None) -> str | None:
        """The key's namespace, or ``None`` when it matches no key (every key is compared)."""
        given = (presented or "").encode("utf-8")
        found = None
        for secret, name in self._keys:
            if hmac.compare_digest(given, secret) and presented is not None:
                found = name
        return found


class _Limits:
    """Requests answered at once, per API key namespace."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._running: dict[str, int] = {}

    def enter(self, namespace: str) -> None:
        """Count one more request, or raise a 429 when the key is at its limit."""
        running = self._running.get(namespace, 0)
        if running >= self.limit:
            raise ApiError(
                429,
                "rate_limit",
                f"This API key already has {self.limit} requests running; wait for one to finish.",
                retry_after=1.0,
                retry=True,  # refused before anything was sent
            )
        self._running[namespace] = running + 1

    def leave(self, namespace: str) -> None:
        """Count one request fewer."""
        running = self._running.get(namespace, 1) - 1
        if running:
            self._running[namespace] = running
        else:
            self._running.pop(namespace, None)


class Server:
    """``hailuo serve``: the web app over one ``ChatHailuo``.

    Args:
        model: The configured model: one account, or an account pool (``accounts=`` /
            ``HAILUO_TOKENS`` / ``HAILUO_ACCOUNTS_DIR``, shared with ``pool_url=``). A
            continued conversation goes to the account that owns its chat (its stored
            metadata names it); a new one to the pool's least-loaded healthy account.
        config: Listening address and limits (checked by :meth:`start`).
        store: Where conversations are remembered (default: in Redis when the model has a
            ``pool_url``, so replicas share them, else in this process; sized by ``config``).
    """

    def __init__(
        self,
        model: ChatHailuo,
        config: ServeConfig | None = None,
        *,
        store: ConversationStore | None = None,
    ) -> None:
        """Serve ``model``; nothing listens before :meth:`start`."""
        self.config = config or ServeConfig()
        self.model = model
        self.answerer = Answerer(
            model,
            store
            if store is not None  # (an empty MemoryStore is falsy: it has a length)
            else open_store(
                model.pool_url, max_entries=self.config.store_entries, ttl=self.config.store_ttl
            ),
            self.config.model_aliases,
        )
        self._keys = _Keys(self.config.api_keys)
        self._limits = _Limits(self.config.max_concurrency)
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.app = self._build_app()

    # ------------------------------------------------------------------ app

    def _build_app(self) -> web.Application:
        """The aiohttp application with its middlewares and routes."""
        middlewares = [self._log, self._errors, self._auth]
        if self.config.cors_origins:
            middlewares.insert(0, self._cors)
        app = web.Application(middlewares=middlewares, client_max_size=self.config.max_body_bytes)
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/messages", self._anthropic)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/models/{model_id:.+}", self._model)
        app.on_cleanup.append(self._close_model)
        return app

    async def _close_model(self, _app: web.Application) -> None:
        """Close the model's HTTP sessions and the store once every answer has finished."""
        try:
            await self.model.aclose()
        finally:
            await self.answerer.store.aclose()

    @web.middleware
    async def _log(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """One log line per request (no header, body or key is logged)."""
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        finally:
            logger.info(
                "%s %s %d %s %.3fs",
                request.method,
                request.path,
                status,
                request.get(_NAMESPACE_KEY, "-"),
                time.perf_counter() - started,
            )

    @web.middleware
    async def _errors(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Every failure in the calling API's error shape."""
        try:
            return await handler(request)
        except ApiError as error:
            return _error_response(_api_of(request), error)
        except web.HTTPRequestEntityTooLarge:
            limit = self.config.max_body_bytes
            return _error_response(
                _api_of(request),
                ApiError(413, "too_large", f"The request body is over {limit} bytes."),
            )
        except web.HTTPException as error:
            kind: ErrorKind = "not_found" if error.status == 404 else "invalid_request"  # noqa: PLR2004
            return _error_response(_api_of(request), ApiError(error.status, kind, error.reason))

    @web.middleware
    async def _auth(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """Check the API key (when keys are configured) and name the caller's namespace."""
        if not self._keys.required:
            request[_NAMESPACE_KEY] = OPEN_NAMESPACE
            return await handler(request)
        namespace = self._keys.namespace(_presented_key(request))
        if namespace is None:
            raise ApiError(
                401,
                "authentication",
                "Missing or wrong API key: send it as 'Authorization: Bearer KEY' or "
                "'x-api-key: KEY'.",
            )
        request[_NAMESPACE_KEY] = namespace
        return await handler(request)

    @web.middleware
    async def _cors(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """CORS for the configured origins only (installed only when some are)."""
        origin = request.headers.get("Origin")
        allowed = origin is not None and (
            "*" in self.config.cors_origins or origin in self.config.cors_origins
        )
        if request.method == "OPTIONS" and allowed:
            response: web.StreamResponse = web.Response(status=204)
        else:
            response = await handler(request)
        if allowed and origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            if request.method == "OPTIONS":
                response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
                response.headers["Access-Control-Allow-Headers"] = (
                    "Authorization, Content-Type, x-api-key, anthropic-version, anthropic-beta"
                )
                response.headers["Access-Control-Max-Age"] = "600"
        return response

    # ------------------------------------------------------------------ routes

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/chat/completions``."""
        return await self._answer(request, OPENAI)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/responses``."""
        return await self._answer(request, RESPONSES)

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/messages``."""
        return await self._answer(request, ANTHROPIC)

    async def _count_tokens(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/messages/count_tokens``: the estimate the usage figures use."""
        parsed = anthropic_api.parse_request(await self._read_json(request))
        return web.json_response({"input_tokens": parsed.chat_request.estimated_input_tokens()})

    async def _model_ids(self) -> list[str]:
        """The account's model ids (a failure answered in the API's shape)."""
        try:
            return await self.model.alist_models()
        except Exception as exc:  # noqa: BLE001 - every failure is answered in the API's shape
            raise self._failure(exc) from None

    async def _models(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/models`` in the caller's API's shape (the real ids, not the aliases)."""
        api = _api_of(request)
        data = [_model_object(api, name, name) for name in await self._model_ids()]
        if api is ANTHROPIC:
            first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
            body = {"data": data, "has_more": False, "first_id": first, "last_id": last}
        else:
            body = {"object": "list", "data": data}
        return web.json_response(body)

    async def _model(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/models/{id}`` in the caller's API's shape; an alias names its model."""
        asked = request.match_info["model_id"]
        real = self.answerer.model_name(asked)
        if real not in await self._model_ids():
            raise ApiError(
                404,
                "not_found",
                f"The model {asked!r} does not exist here; GET /v1/models lists the ids (or "
                "start hailuo serve with --model-alias 'PATTERN=MODEL').",
                param="model",
            )
        return web.json_response(_model_object(_api_of(request), asked, real))

    @staticmethod
    def _failure(exc: BaseException) -> ApiError:
        """The API error of an exception, logged without anything secret."""
        error = api_error(exc)
        if error.status >= 500:  # noqa: PLR2004
            logger.warning(
                "answer failed (%s, %d): %s", type(exc).__name__, error.status, error.message
            )
        return error

    @staticmethod
    async def _read_json(request: web.Request) -> Any:
        """The request body as JSON (413 / 400 when too big or not JSON)."""
        try:
            return await request.json()
        except json.JSONDecodeError:
            raise bad_request("The request body is not valid JSON.") from None

    async def _answer(self, request: web.Request, api: _Api) -> web.StreamResponse:
        """Answer one completion request, whole or streamed, within the key's limit."""
        if (request.content_length or 0) > self.config.max_body_bytes:
            raise web.HTTPRequestEntityTooLarge(
                max_size=self.config.max_body_bytes, actual_size=request.content_length or 0
            )
        parsed = api.parse(await self._read_json(request))
        namespace = request[_NAMESPACE_KEY]
        self._limits.enter(namespace)
        try:
            parts = self.answerer.stream(parsed.chat_request, namespace)
            async with aclosing(parts):
                try:
                    first = await anext(parts)
                except Exception as exc:  # noqa: BLE001 - answered in the API's shape
                    raise self._failure(exc) from None
                if not parsed.stream:
                    return await self._whole(api, parsed, first, parts)
                return await self._streamed(request, api, parsed, first, parts)
        finally:
            self._limits.leave(namespace)

    async def _whole(self, api: _Api, parsed: Any, first: AnswerPart, parts: Any) -> web.Response:
        """The whole answer as one JSON body."""
        answer = first
        try:
            while not isinstance(answer, FinishedAnswer):
                answer = await anext(parts)
        except Exception as exc:  # noqa: BLE001 - every failure is answered in the API's shape
            raise self._failure(exc) from None
        return web.json_response(api.body(parsed, answer), dumps=_dumps)

    async def _streamed(
        self, request: web.Request, api: _Api, parsed: Any, first: AnswerPart, parts: Any
    ) -> web.StreamResponse:
        """The answer as server-sent events; a later failure becomes an error event."""
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        renderer = api.renderer(parsed, self.answerer.model_name(parsed.chat_request.model))
        try:
            await response.write(renderer.start() + renderer.part(first))
            async for part in parts:
                await response.write(renderer.part(part))
        except ConnectionResetError:
            logger.info("%s %s: the client left mid-answer", request.method, request.path)
            return response
        except Exception as exc:  # noqa: BLE001 - reported to the client as an error event
            with suppress(ConnectionResetError):
                await response.write(renderer.error(self._failure(exc)))
        with suppress(ConnectionResetError):
            await response.write_eof()
        return response

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> str:
        """Check the settings, then listen; returns the base URL (``http://host:port``).

        Raises:
            HailuoConfigurationError: The settings are unsafe (see :meth:`ServeConfig.check`).
            OSError: The address cannot be bound.
        """
        self.config.check()
        runner = web.AppRunner(
            self.app, access_log=None, shutdown_timeout=self.config.shutdown_timeout
        )
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"
        return self.url

    async def stop(self) -> None:
        """Stop listening, let running answers finish (bounded), then close the model."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


def _model_object(api: _Api, name: str, real: str) -> dict[str, Any]:
    """One model in the API's shape (``name`` asked for, ``real`` the model answering it)."""
    shown = name if name == real else f"{name} (answered by {real})"
    if api is ANTHROPIC:
        return {
            "type": "model",
            "id": name,
            "display_name": shown,
            "created_at": "1970-01-01T00:00:00Z",
        }
    return {"id": name, "object": "model", "created": 0, "owned_by": "minimax"}


def _dumps(value: Any) -> str:
    """JSON with non-ASCII text as is (smaller bodies)."""
    return json.dumps(value, ensure_ascii=False)


async def serve_forever(server: Server, ready: Callable[[str], None] | None = None) -> None:
    """Run ``server`` until SIGINT or SIGTERM, then stop it gracefully.

    Args:
        server: The server.
        ready: Called with the base URL once it listens.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        url = await server.start()
        if ready is not None:
            ready(url)
        await stop.wait()
        logger.info("stopping: letting running answers finish")
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await server.stop()
