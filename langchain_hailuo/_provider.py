"""What both providers (``HailuoAI``, ``MiniMaxAgent``) share, protocol-free.

The gpt4free-compatible interface (the one gpt4free's Hailuo provider offers, which this
package started from): class attributes, ``on_auth_async`` / ``create_authed`` usable on the
class (as gpt4free calls them) or on a configured instance, plus the small pieces every
provider needs: LangChain-style HTTP settings, URL checks, and conversations accepted in
any of the forms callers keep them in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import types
import typing
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from typing import Any, ClassVar, Concatenate, Generic, ParamSpec, TypeVar

import typing_extensions

from langchain_hailuo._http import HttpOptions, Timeouts, checked_timeout
from langchain_hailuo._prompt import TurnRequest, check_encodable, request_from_dicts
from langchain_hailuo._routing import checked_url
from langchain_hailuo.auth import on_auth_async
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoConfigurationError,
)
from langchain_hailuo.types import AuthResult, Conversation, Protocol, ProviderEvent, RequestLogin

__all__ = [
    "AuthKeeper",
    "BaseProvider",
    "ReauthSource",
    "as_conversation",
    "call_options",
    "checked_url",
    "http_options_with",
    "hybridmethod",
    "refresh_once",
]

S = TypeVar("S")
P = ParamSpec("P")
R = TypeVar("R")


class ReauthSource(typing.Protocol):
    """What a provider needs from an auth manager: new credentials for rejected ones."""

    async def refresh(self, rejected: AuthResult) -> AuthResult:
        """Return fresh credentials to replace ``rejected`` (or raise ``HailuoAuthError``)."""
        ...


class AuthKeeper(ReauthSource, typing.Protocol):
    """An auth manager that also keeps what a provider learned (identity bootstrap)."""

    async def update(self, auth: AuthResult) -> None:
        """Keep ``auth`` as the current credentials."""
        ...


async def refresh_once(
    rejection: HailuoAuthError,
    rejected: AuthResult,
    manager: ReauthSource | None,
    *,
    allowed: bool,
    log: logging.Logger,
) -> AuthResult:
    """The one re-authentication both providers do when the server refuses the credentials."""
    # Called in the provider's ``except HailuoAuthError`` block. Only a rejection before any output,
    # the first one of the call, with an auth manager configured, is answered with a refresh;
    # anything else raises the rejection. When the refresh itself fails, a 403 bot / login page
    # keeps its own error (its advice is fresh browser cookies, not a new token); other rejections
    # raise the refresh's error (it says where credentials come from).
    if not allowed or manager is None:
        raise rejection
    log.info("the token was rejected before any output; refreshing it once")
    try:
        return await manager.refresh(rejected)
    except HailuoAuthError as failed:
        if rejection.status == 403:  # noqa: PLR2004 - cookies, not the token, refused
            raise rejection from failed
        raise


class hybridmethod(Generic[S, P, R]):  # noqa: N801 - reads like classmethod
    """A method bound to the instance, or, accessed on the class, to its default instance.

    gpt4free calls ``HailuoAI.create_authed(...)`` on the class; a configured
    ``HailuoAI(base_url=...)`` must use its own settings. Accessed on the class, the
    method binds to one lazily created default instance per class.
    """

    def __init__(self, func: Callable[Concatenate[S, P], R]) -> None:
        """Wrap ``func``."""
        self._func = func
        self.__doc__ = func.__doc__
        self.__wrapped__ = func

    def __get__(self, instance: S | None, owner: type[S]) -> Callable[P, R]:
        """Bind to ``instance``, or to ``owner``'s default instance."""
        target = instance if instance is not None else _default_instance(owner)
        return typing.cast("Callable[P, R]", types.MethodType(self._func, target))


_DEFAULT_INSTANCES: dict[type, Any] = {}


def _default_instance(owner: type[S]) -> S:
    """The lazily created default instance of ``owner`` (one per class)."""
    if owner not in _DEFAULT_INSTANCES:
        _DEFAULT_INSTANCES[owner] = owner()
    return typing.cast("S", _DEFAULT_INSTANCES[owner])


def http_options_with(
    base: HttpOptions, values: Mapping[str, Any], *, defaults: Timeouts | None = None
) -> HttpOptions:
    """``base`` with ``timeout`` (total seconds), ``max_retries``, ``proxy``, ``max_line_bytes``."""
    # The updated options (``base`` itself when nothing applies).
    changes: dict[str, Any] = {}
    timeout = checked_timeout(values.get("timeout"))
    if timeout is not None:
        changes["timeouts"] = Timeouts.from_total(timeout, defaults)
    if values.get("max_retries") is not None:
        retries = int(values["max_retries"])
        if retries < 0:
            raise HailuoConfigurationError(f"max_retries must be 0 or more; got {retries}.")
        changes["max_retries"] = retries
    if values.get("proxy"):
        changes["proxy"] = str(values["proxy"])
    if values.get("max_line_bytes") is not None:
        limit = values["max_line_bytes"]
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < _MIN_LINE_BYTES:
            raise HailuoConfigurationError(
                f"max_line_bytes must be a whole number of bytes, at least {_MIN_LINE_BYTES}; "
                f"got {limit!r}."
            )
        changes["max_line_bytes"] = limit
    return dataclasses.replace(base, **changes) if changes else base


_MIN_LINE_BYTES = 1024


def call_options(
    base: HttpOptions, kwargs: Mapping[str, Any], *, defaults: Timeouts | None = None
) -> HttpOptions:
    """The options of one call: ``base`` with the call's settings and its deadline."""
    # Options whose every wait ends by the call's deadline.
    return http_options_with(base, kwargs, defaults=defaults).with_deadline(kwargs.get("deadline"))


def as_conversation(conversation: Any) -> Conversation | None:
    """A :class:`Conversation` from itself, its dict form, or an object with its attributes."""
    # gpt4free's GUI and API rebuild conversations as generic objects or dicts; all of them are
    # accepted (a ``token`` attribute is reduced to its fingerprint).
    # The conversation, or ``None``.
    if conversation is None or isinstance(conversation, Conversation):
        return conversation
    if isinstance(conversation, Mapping):
        return Conversation.from_dict(dict(conversation))
    names = ("token", "chatID", "characterID", "account", "protocol")
    return Conversation.from_dict(
        {n: getattr(conversation, n) for n in names if getattr(conversation, n, None) is not None}
    )


class _Closable(typing.Protocol):
    """A client with sessions to close."""

    async def aclose(self) -> None:
        """Close the client's sessions."""
        ...


class BaseProvider:
    """The gpt4free-compatible provider surface shared by ``HailuoAI`` and ``MiniMaxAgent``.

    Subclasses set the class attributes, build ``_client`` and ``base_url`` in
    ``__init__``, and implement ``create_authed`` (decorated with :class:`hybridmethod`).
    """

    label: ClassVar[str]
    url: ClassVar[str]
    working: ClassVar[bool] = True
    needs_auth: ClassVar[bool] = True
    use_nodriver: ClassVar[bool] = True
    supports_stream: ClassVar[bool] = True
    default_model: ClassVar[str]
    models: ClassVar[list[str]]
    protocol: ClassVar[Protocol]

    base_url: str | None
    _client: _Closable

    async def account_models(self, auth: AuthResult) -> list[str]:
        """The model ids the account offers (here: the provider's known ids)."""
        del auth  # the protocol has no per-account list
        return list(self.models)

    async def __aenter__(self) -> typing_extensions.Self:
        """Use the provider as an async context manager (closes its sessions on exit)."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the provider's sessions."""
        await self.aclose()

    def stream_turn(
        self,
        model: str,
        request: TurnRequest,
        auth_result: AuthResult,
        return_conversation: bool = False,  # noqa: FBT001, FBT002 - as create_authed
        **kwargs: Any,
    ) -> AsyncGenerator[list[ProviderEvent], None]:
        """Execute a planned turn; its events, one list per network read (per provider)."""
        raise NotImplementedError

    async def _create_authed(  # noqa: PLR0917 - create_authed's arguments, passed on
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        auth_result: AuthResult,
        return_conversation: bool,  # noqa: FBT001 - create_authed's argument
        conversation: Any,
        kwargs: Mapping[str, Any],
    ) -> AsyncGenerator[ProviderEvent, None]:
        """``create_authed``: its arguments made a :class:`TurnRequest`, then run."""
        # request_from_dicts is the one rule for continuing a chat; this entry checks the
        # text itself (ChatHailuo checks its calls at the top)
        check_encodable([*messages, *(kwargs.get("full_history") or ())])
        request = request_from_dicts(
            messages,
            auth_result.account_fingerprint,
            self.protocol,
            as_conversation(conversation),
            kwargs.get("full_history"),
        )
        turn = self.stream_turn(model, request, auth_result, return_conversation, **kwargs)
        async with contextlib.aclosing(turn):
            async for events in turn:
                for item in events:  # the gpt4free-compatible interface yields them one by one
                    yield item

    @hybridmethod
    async def on_auth_async(
        self, proxy: str | None = None, **kwargs: Any
    ) -> AsyncIterator[RequestLogin | AuthResult]:
        """Log in through :mod:`langchain_hailuo.auth`, as gpt4free's ``on_auth_async``.

        Args:
            proxy: A proxy for the browser.
            **kwargs: Login options passed on (``base_url`` defaults to this provider's,
                else :attr:`url`; the recorded protocol to :attr:`protocol`, so the
                result's ``create_authed`` talks to the origin it logged in on; see
                :func:`langchain_hailuo.auth.on_auth_async`).

        Yields:
            :class:`RequestLogin` when a login URL is configured, then the :class:`AuthResult`.
        """
        kwargs.setdefault("base_url", self.base_url or self.url)
        kwargs.setdefault("login_protocol", self.protocol)  # its own login speaks its protocol
        async for item in on_auth_async(self.label, proxy, **kwargs):
            yield item

    @property
    def client(self) -> Any:
        """The HTTP client (one serves many accounts: a pool's providers share one)."""
        return self._client

    @hybridmethod
    async def aclose(self) -> None:
        """Close the HTTP sessions this provider opened."""
        await self._client.aclose()
