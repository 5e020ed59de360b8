"""``HailuoAI``: the gpt4free-compatible provider interface over the v4 client.

It keeps gpt4free's class attributes and its two entry points, ``on_auth_async`` and
``create_authed`` (usable on the class, as in gpt4free, or on a configured instance), and
adds: a fresh signature per request, typed errors with the partial
text, one re-authentication when the token is rejected before any output, no replay after
output, and conversations that never hold the token.

Example:
    ```python
    from langchain_hailuo import AuthResult, HailuoAI

    auth = AuthResult(token="eyJ...", uuid="...", device_id="...")
    async for item in HailuoAI.create_authed(
        "MiniMax", [{"role": "user", "content": "Hello!"}], auth, return_conversation=True
    ):
        print(item)
    ```
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, ClassVar, cast

from langchain_hailuo._attachments import attachments_of
from langchain_hailuo._http import HttpOptions
from langchain_hailuo._prompt import TurnRequest, request_from_dicts
from langchain_hailuo._provider import (
    BaseProvider,
    ReauthSource,
    call_options,
    checked_url,
    http_options_with,
    hybridmethod,
    refresh_once,
)
from langchain_hailuo.auth import prepare_credentials
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoConfigurationError,
    HailuoUnsupportedContentError,
)
from langchain_hailuo.types import (
    AuthResult,
    ChatStarted,
    Conversation,
    FinishReason,
    MessageDict,
    Protocol,
    ProviderEvent,
)
from langchain_hailuo.v4.client import QueryOptions, V4Answer, V4Client, build_form

__all__ = ["HailuoAI", "ReauthSource", "RequestPlan", "form_for", "plan_request"]

logger = logging.getLogger(__name__)


DEFAULT_URL = "https://www.hailuo.ai"
_QUERY_SETTINGS = ("lang", "version_code", "biz_id", "app_id")
_OPTION_SETTINGS = ("timeout", "max_retries", "proxy", "max_line_bytes", "deadline")


@dataclasses.dataclass(frozen=True, slots=True)
class RequestPlan:
    """What one call sends: the form, and whether it continues a server chat.

    Attributes:
        form: The multipart fields.
        continued: ``True`` when an existing chat (``form["chatID"]``) is continued.
    """

    form: dict[str, str]
    continued: bool

    @property
    def chat_id(self) -> str:
        """The chat id sent (``"0"`` for a new chat)."""
        return self.form["chatID"]

    @property
    def character_id(self) -> str:
        """The character id sent."""
        return self.form["characterID"]


def plan_request(
    messages: Sequence[MessageDict],
    auth: AuthResult,
    conversation: Conversation | None = None,
    full_history: Sequence[MessageDict] | None = None,
) -> RequestPlan:
    """What a ``create_authed`` call sends: its request (:func:`request_from_dicts`), as a form."""
    # A v4 conversation of the same account continues with only the trailing user message(s) of
    # ``messages``. Anything else (no conversation, another account's, another protocol's, or one
    # without a chat id) starts a new chat from ``full_history`` (or ``messages``) folded into one
    # prompt.
    request = request_from_dicts(
        messages, auth.account_fingerprint, "v4", conversation, full_history
    )
    return form_for(request)


def form_for(request: TurnRequest) -> RequestPlan:
    """The multipart form of a turn: its text, and its chat when it continues one."""
    conversation = request.conversation
    if conversation is not None:
        form = build_form(
            msg_content=request.text,
            character_id=conversation.characterID,
            chat_id=conversation.chatID,
        )
    else:
        form = build_form(msg_content=request.text)
    if not request.text.strip():
        raise HailuoConfigurationError(
            "Nothing to send: the messages hold no text"
            + (" after the last answer (end with a user message)." if conversation else ".")
        )
    return RequestPlan(form=form, continued=conversation is not None)


def refuse_attachments(request: TurnRequest) -> None:
    """Refuse files and images before anything is sent: v4 has no upload this client can do."""
    # The v4 notes describe an upload (``/v1/api/files/request_policy``, a PUT to the object storage
    # with STS credentials, ``policy_callback``, the ``form`` field) from one source, without how
    # the storage PUT is signed, so it cannot be built end to end.
    if attachments_of([*request.messages, *request.full_history]):
        raise HailuoUnsupportedContentError(
            "The Hailuo v4 web chat (protocol='v4') cannot take files or images in this "
            "client. Use the MiniMax Agent protocol (protocol='agent', "
            "base_url='https://agent.minimax.io'), which uploads them, or remove them."
        )


def _normalise_base_url(value: str) -> str:
    """An http(s) origin without a trailing slash, or a configuration error."""
    return checked_url(value, "base_url", DEFAULT_URL)


class HailuoAI(BaseProvider):
    """The Hailuo AI web chat (``POST /v4/api/chat/msg``), with the gpt4free-compatible interface.

    Args (constructor, all optional):
        base_url: The origin to talk to (wins over the login's recorded origin).
        options: HTTP options (timeouts, retries, proxy, redirects).
        auth_manager: Supplies fresh credentials when the token is rejected
            (:class:`langchain_hailuo.auth.AuthManager` or anything with ``refresh``).
        client: A ready :class:`~langchain_hailuo.v4.client.V4Client` (tests).
        **settings: ``timeout``, ``max_retries``, ``proxy`` (applied over ``options``) and
            the fingerprint's ``lang``, ``version_code``, ``biz_id``, ``app_id``. Other
            keys (meant for the other protocol) are ignored.
    """

    label: ClassVar[str] = "Hailuo AI"
    url: ClassVar[str] = DEFAULT_URL
    working: ClassVar[bool] = True
    needs_auth: ClassVar[bool] = True
    use_nodriver: ClassVar[bool] = True
    supports_stream: ClassVar[bool] = True
    default_model: ClassVar[str] = "MiniMax"
    models: ClassVar[list[str]] = ["MiniMax"]
    protocol: ClassVar[Protocol] = "v4"
    _client: V4Client

    def __init__(
        self,
        *,
        base_url: str | None = None,
        options: HttpOptions | None = None,
        auth_manager: ReauthSource | None = None,
        client: V4Client | None = None,
        **settings: Any,
    ) -> None:
        """Create a configured provider (see the class docstring for the arguments)."""
        self.base_url = _normalise_base_url(base_url) if base_url else None
        self.options = http_options_with(options or HttpOptions(), settings)
        self.auth_manager = auth_manager
        query = QueryOptions(**{k: str(settings[k]) for k in _QUERY_SETTINGS if settings.get(k)})
        self._client = client or V4Client(options=self.options, query=query)
        self.last_origin: str | None = None
        """The origin that answered the last request (differs from the asked one after a move)."""
        ignored = sorted(set(settings) - set(_QUERY_SETTINGS) - set(_OPTION_SETTINGS))
        if ignored:
            logger.debug("HailuoAI ignores settings meant for other protocols: %s", ignored)

    def __repr__(self) -> str:
        """Show the configuration (there is no secret in it)."""
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    # ------------------------------------------------------------------ gpt4free-compatible

    @hybridmethod
    def create_authed(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        auth_result: AuthResult,
        return_conversation: bool = False,  # noqa: FBT001, FBT002 - gpt4free's signature
        conversation: Conversation | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[ProviderEvent, None]:
        """Send the messages and stream the answer, as gpt4free's ``create_authed``.

        Args:
            model: Ignored: the web chat serves the site's current model.
            messages: ``{"role", "content"}`` dicts.
            auth_result: The account to send as.
            return_conversation: Yield a :class:`Conversation` for the chat.
            conversation: A conversation to continue (its account must match); its
                :meth:`~langchain_hailuo.types.Conversation.get_dict` form is accepted too.
            **kwargs: ``base_url``, ``timeout`` (total seconds), ``max_retries``, ``proxy``,
                ``full_history`` (the whole history, used when a new chat must start) and
                ``auth_manager`` (overrides the constructor's).

        Yields:
            ``TitleGeneration`` (new chats), ``Conversation`` (when asked, once the chat id
            is known), ``MessageId``, ``str`` answer deltas, then ``FinishReason``.

        Raises:
            HailuoAuthError: The token was rejected (again, after one refresh).
            HailuoUnsupportedContentError: A message carries files or images (before
                anything is sent).
            HailuoStreamInterruptedError: The answer broke off (``partial_text`` attached).
            HailuoError: Other typed failures, with the partial text when any arrived.
        """
        del model
        return self._create_authed(
            "", messages, auth_result, return_conversation, conversation, kwargs
        )

    async def stream_turn(
        self,
        model: str,
        request: TurnRequest,
        auth_result: AuthResult,
        return_conversation: bool = False,  # noqa: FBT001, FBT002 - as create_authed
        **kwargs: Any,
    ) -> AsyncGenerator[list[ProviderEvent], None]:
        """Execute a planned turn and stream the answer (what ``create_authed`` does).

        Args:
            model: Ignored: the web chat serves the site's current model.
            request: The turn: its chat (``None``: a new one) and its text.
            auth_result: The account to send as.
            return_conversation: Yield a :class:`Conversation` for the chat.
            **kwargs: ``base_url``, ``timeout``, ``max_retries``, ``proxy``, ``auth_manager``.

        Yields:
            The events of :meth:`create_authed`, one list per network read.

        Raises:
            As :meth:`create_authed`.
        """
        del model
        refuse_attachments(request)
        manager: ReauthSource | None = kwargs.get("auth_manager") or self.auth_manager
        options = call_options(self.options, kwargs)
        auth = auth_result
        refreshed = False
        while True:
            base = self._base_url_for(auth, kwargs.get("base_url"))
            register = functools.partial(
                self._client.register_device, base_url=base, options=options
            )
            started = False
            try:
                auth = await prepare_credentials(auth, "v4", manager, register=register)
                plan = form_for(request.for_account(auth.account_fingerprint, self.protocol))
                stream = self._stream(auth, plan, base, options, return_conversation)
                async with contextlib.aclosing(stream):  # closed at once when our consumer stops
                    async for item in stream:
                        started = True
                        yield item
            except HailuoAuthError as rejection:
                allowed = not (started or refreshed)
                auth = await refresh_once(rejection, auth, manager, allowed=allowed, log=logger)
                refreshed = True
            else:
                return

    def _base_url_for(self, auth: AuthResult, override: str | None) -> str:
        """``base_url`` argument > constructor > the login's v4 origin > :attr:`url`."""
        if override:
            return _normalise_base_url(override)
        if self.base_url:
            return self.base_url
        if auth.api_origin and auth.protocol in {None, "v4"}:
            return _normalise_base_url(auth.api_origin)
        return self.url

    async def _stream(
        self,
        auth: AuthResult,
        plan: RequestPlan,
        base_url: str,
        options: HttpOptions,
        return_conversation: bool,  # noqa: FBT001
    ) -> AsyncGenerator[list[ProviderEvent], None]:
        """One request: the client's event lists, with the chat as a :class:`Conversation`."""
        async with (
            self._client.chat(auth, plan.form, base_url=base_url, options=options) as answer,
            contextlib.aclosing(answer.events()) as reads,
        ):
            self._record_origin(answer)
            decoder = answer.decoder
            known: str | None = None  # the chat id whose ChatStarted was handled
            async for events in reads:
                if decoder.chat_id == known and not decoder.finished:
                    yield cast("list[ProviderEvent]", events)  # no ChatStarted in them
                    continue
                known = decoder.chat_id
                out: list[ProviderEvent] = []
                for event in events:
                    if isinstance(event, ChatStarted):
                        if return_conversation:
                            out.append(self._conversation(auth, event.chat_id, plan))
                        continue
                    if isinstance(event, FinishReason) and (  # no chat id came: the plan's
                        return_conversation and plan.continued and decoder.chat_id is None
                    ):
                        out.append(self._conversation(auth, plan.chat_id, plan))
                    out.append(event)
                yield out

    def _conversation(self, auth: AuthResult, chat_id: str, plan: RequestPlan) -> Conversation:
        """The conversation handle (the token is reduced to a fingerprint)."""
        character: str | int = plan.character_id
        if isinstance(character, str) and character.isdigit():
            character = int(character)
        return Conversation(auth.token, chat_id, character, protocol="v4")

    def _record_origin(self, answer: V4Answer) -> None:
        """Remember where the answer came from; a move is logged once per new origin."""
        if answer.redirected and answer.origin != self.last_origin:
            logger.warning(
                "%s moved to %s; set base_url=%r to skip the redirect",
                answer.requested_origin,
                answer.origin,
                answer.origin,
            )
        self.last_origin = answer.origin
