"""``MiniMaxAgent``: the provider interface (as ``HailuoAI``'s) over the MiniMax Agent client.

A new conversation opens a session with the account's agent and sends the whole history
folded into one prompt; a conversation of the same account continues its session with only
the newest user message(s). On top of the client it adds: the model check against the
account's ``/config``, one re-authentication when the token is rejected before any output,
and never a message sent twice: a session that fails in the stream (``sandbox connection
error``, ``rpc timeout``) has taken the message, so the error is raised, saying so.

Example:
    ```python
    from langchain_hailuo import AuthResult, MiniMaxAgent

    auth = AuthResult(token="eyJ...", uuid="...", device_id="12345678")
    async for item in MiniMaxAgent.create_authed(
        "MiniMax-M3", [{"role": "user", "content": "Hello!"}], auth, return_conversation=True
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

from langchain_hailuo._attachments import Attachment
from langchain_hailuo._http import HttpOptions
from langchain_hailuo._prompt import TurnRequest
from langchain_hailuo._provider import (
    AuthKeeper,
    BaseProvider,
    call_options,
    checked_url,
    http_options_with,
    hybridmethod,
    refresh_once,
)
from langchain_hailuo.agent.client import (
    AGENT_HTTP_OPTIONS,
    DEFAULT_BASE_URL,
    AgentClient,
    AgentSettings,
    ModelChoice,
    both,
)
from langchain_hailuo.agent.credits import with_credits_left
from langchain_hailuo.agent.stream import is_transient_session_error
from langchain_hailuo.agent.upload import TurnAttachments, Uploader, UploadStore, is_refused_turn
from langchain_hailuo.auth import prepare_credentials
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoConfigurationError,
    HailuoQuotaError,
    HailuoServerError,
    HailuoUploadError,
)
from langchain_hailuo.types import (
    AuthResult,
    Conversation,
    Protocol,
    ProviderEvent,
)

__all__ = ["MiniMaxAgent", "choose_model"]

logger = logging.getLogger(__name__)


_SETTING_NAMES = frozenset(f.name for f in dataclasses.fields(AgentSettings)) - {
    "base_url",
    "stream_url",
}
_OPTION_NAMES = frozenset({"timeout", "max_retries", "proxy", "max_line_bytes", "deadline"})


def _checked_url(value: str, name: str) -> str:
    """An http(s) origin without a trailing slash, or a configuration error."""
    return checked_url(value, name, DEFAULT_BASE_URL)


def choose_model(requested: str | None, available: Sequence[str] | None, default: str) -> str:
    """The model id to use, checked against the account's models."""
    if not available:
        return requested or default
    if not requested:
        return default if default in available else available[0]
    if requested in available:
        return requested
    raise HailuoConfigurationError(
        f"Model {requested!r} is not available to this MiniMax Agent account; available: "
        f"{', '.join(available)}."
    )


class MiniMaxAgent(BaseProvider):
    """MiniMax Agent (agent.minimax.io), with the same interface as ``HailuoAI``.

    Args (constructor, all optional):
        base_url: The control origin (default: the login's Agent origin, else
            ``https://agent.minimax.io``; ``https://agent.minimaxi.com`` for China accounts).
        stream_url: The stream origin (default: the login's, else ``agent-stream.<domain>``
            of ``base_url``; required for IP / localhost base URLs).
        options: HTTP options (timeouts, retries, proxy, redirects); default
            :data:`~langchain_hailuo.agent.client.AGENT_HTTP_OPTIONS`, the web client's
            limits (requests 120 s, a silent stream 90 s). A ``timeout`` caps their phases.
        auth_manager: Supplies fresh credentials when the token is rejected and keeps the
            bootstrap's results (``refresh`` / ``update``).
        client: A ready :class:`~langchain_hailuo.agent.client.AgentClient` (tests).
        upload_store: Where uploads are remembered, so the same bytes go up once per
            account (default: one in-memory store shared by the process; a pool of
            processes may pass a shared one).
        **settings: ``timeout``, ``max_retries``, ``proxy`` (over ``options``) and any
            :class:`~langchain_hailuo.agent.client.AgentSettings` field: ``api_prefix``,
            ``user_info_path``, ``config_path``, ``agents_path``, ``session_path``,
            ``message_path``, ``upload_prepare_path``, ``agent_role``, ``provider_id``,
            ``region``, ``lang``, ``user_agent``. Other keys are ignored.
    """

    label: ClassVar[str] = "MiniMax Agent"
    url: ClassVar[str] = DEFAULT_BASE_URL
    working: ClassVar[bool] = True
    needs_auth: ClassVar[bool] = True
    use_nodriver: ClassVar[bool] = True
    supports_stream: ClassVar[bool] = True
    default_model: ClassVar[str] = "MiniMax-M3"
    models: ClassVar[list[str]] = ["MiniMax-M3", "MiniMax-M2.7"]
    protocol: ClassVar[Protocol] = "agent"
    _client: AgentClient

    def __init__(
        self,
        *,
        base_url: str | None = None,
        stream_url: str | None = None,
        options: HttpOptions | None = None,
        auth_manager: AuthKeeper | None = None,
        client: AgentClient | None = None,
        upload_store: UploadStore | None = None,
        **settings: Any,
    ) -> None:
        """Create a configured provider (see the class docstring for the arguments)."""
        self.base_url = _checked_url(base_url, "base_url") if base_url else None
        self.stream_url = _checked_url(stream_url, "stream_url") if stream_url else None
        base = options or AGENT_HTTP_OPTIONS
        self._phases = base.timeouts  # what a `timeout` caps: the given ones, else the web client's
        self.options = http_options_with(base, settings, defaults=self._phases)
        self.auth_manager = auth_manager
        chosen = {k: v for k, v in settings.items() if k in _SETTING_NAMES and v is not None}
        self.settings = AgentSettings(**chosen)
        self._client = client or AgentClient(self.settings, options=self.options)
        self._uploader = Uploader(self._client, upload_store)
        ignored = sorted(set(settings) - _SETTING_NAMES - _OPTION_NAMES)
        if ignored:
            logger.debug("MiniMaxAgent ignores settings meant for other protocols: %s", ignored)

    def __repr__(self) -> str:
        """Show the configuration (there is no secret in it)."""
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, stream_url={self.stream_url!r}, "
            f"api_prefix={self.settings.api_prefix!r})"
        )

    # ------------------------------------------------------------------ gpt4free-compatible

    @hybridmethod
    def create_authed(
        self,
        model: str,
        messages: Sequence[Mapping[str, Any]],
        auth_result: AuthResult,
        return_conversation: bool = False,  # noqa: FBT001, FBT002 - gpt4free's signature
        conversation: Conversation | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[ProviderEvent, None]:
        """Send the messages and stream the answer, as gpt4free's ``create_authed``.

        Args:
            model: The model id (checked against the account's ``/config``; empty: default).
            messages: ``{"role", "content"}`` dicts; a dict's ``attachments`` (files and
                images, see :mod:`langchain_hailuo._attachments`) are uploaded and sent with
                the turn that carries the message.
            auth_result: The account to send as.
            return_conversation: Yield a :class:`Conversation` for the session.
            conversation: A conversation to continue (an Agent session of the same account).
            **kwargs: ``reasoning`` (``True`` / ``False`` / ``None`` = the model's default),
                ``base_url``, ``stream_url``, ``timeout`` (total seconds), ``max_retries``,
                ``proxy``, ``full_history`` (the whole history, for a new session) and
                ``auth_manager`` (overrides the constructor's).

        Yields:
            ``Conversation`` (when asked, once the session is known), ``MessageId``,
            ``Reasoning`` and ``str`` deltas, ``Usage`` (when reported), then
            ``FinishReason``.

        Raises:
            HailuoAuthError: The token was rejected (again, after one refresh).
            HailuoConfigurationError: Unknown model, bad device id, nothing to send.
            HailuoUploadError: A file upload, or the turn that refers to it, was refused
                (nothing was answered).
            HailuoQuotaError: Out of credits (also when the answer is a billing wall).
            HailuoStreamInterruptedError: The answer broke off (``partial_text`` attached).
            HailuoServerError: Also when the session failed in the stream before any answer
                (``sandbox connection error``): the message may have been received, so it
                is not sent again.
            HailuoError: Other typed failures, with the partial text when any arrived.
        """
        return self._create_authed(
            model, messages, auth_result, return_conversation, conversation, kwargs
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
            model: The model id (checked against the account's ``/config``; empty: default).
            request: The turn: its session (``None``: a new one), its text and files.
            auth_result: The account to send as.
            return_conversation: Yield a :class:`Conversation` for the session.
            **kwargs: ``reasoning``, ``base_url``, ``stream_url``, ``timeout``,
                ``max_retries``, ``proxy``, ``auth_manager``.

        Yields:
            The events of :meth:`create_authed`, one list per network read.

        Raises:
            As :meth:`create_authed`.
        """
        manager: AuthKeeper | None = kwargs.get("auth_manager") or self.auth_manager
        options = call_options(self.options, kwargs, defaults=self._phases)
        auth = auth_result
        refreshed = False
        while True:
            output = False
            try:
                auth, session_id, sent, settings = await self._prepare(
                    auth, model, request, kwargs, options, manager
                )
                if return_conversation:
                    yield [self._conversation(auth, session_id)]
                turn = self._turn(auth, session_id, sent, settings, options)
                try:
                    async with contextlib.aclosing(turn):
                        async for events in turn:
                            output = True
                            yield events
                except HailuoServerError as exc:  # the turn only: nothing is sent before it
                    if output or not is_transient_session_error(exc):
                        raise
                    raise _taken_turn_failed(exc) from exc
            except HailuoQuotaError as wall:
                raise with_credits_left(wall, auth.account_fingerprint) from None
            except HailuoAuthError as rejection:
                allowed = not (output or refreshed)
                auth = await refresh_once(rejection, auth, manager, allowed=allowed, log=logger)
                refreshed = True
            else:
                return

    def settings_for(self, auth: AuthResult, kwargs: Mapping[str, Any]) -> AgentSettings:
        """The settings of one call: call arguments > constructor > the login's origins.

        Args:
            auth: The account (its recorded Agent origins are used when nothing is set).
            kwargs: The call's keyword arguments (``base_url``, ``stream_url``).

        Returns:
            The settings.
        """
        recorded = auth.protocol in {None, "agent"}
        base_url = (
            (kwargs.get("base_url") and _checked_url(kwargs["base_url"], "base_url"))
            or self.base_url
            or (recorded and auth.api_origin and _checked_url(auth.api_origin, "api_origin"))
            or self.url
        )
        stream_url = (
            (kwargs.get("stream_url") and _checked_url(kwargs["stream_url"], "stream_url"))
            or self.stream_url
            or (
                recorded
                and auth.stream_origin
                and auth.api_origin
                and auth.api_origin.rstrip("/") == base_url
                and _checked_url(auth.stream_origin, "stream_origin")
            )
            or None
        )
        return dataclasses.replace(self.settings, base_url=base_url, stream_url=stream_url)

    async def _bootstrapped(
        self,
        auth: AuthResult,
        settings: AgentSettings,
        options: HttpOptions,
        manager: AuthKeeper | None,
        *,
        refresh_models: bool = False,
    ) -> AuthResult:
        """The account with its identity learnt; new results handed to the auth manager."""
        updated = await self._client.bootstrap(
            auth, settings=settings, options=options, refresh_models=refresh_models
        )
        if updated is not auth and manager is not None:
            await manager.update(updated)
        return updated

    async def account_models(self, auth: AuthResult) -> list[str]:
        """The model ids the account's ``/config`` lists (learnt once, kept with the login).

        The same preparation and bootstrap a first turn makes (device pair, identity,
        models, agent), so a token-only login lists its own models too.

        Args:
            auth: The account.
        """
        manager = self.auth_manager
        settings = self.settings_for(auth, {})
        renew = functools.partial(self._client.renew_token, settings=settings, options=self.options)
        auth = await prepare_credentials(auth, "agent", manager, renew=renew)
        learnt = await self._bootstrapped(auth, settings, self.options, manager)
        return list(learnt.models or self.models)

    async def _model_for(
        self,
        model: str | None,
        auth: AuthResult,
        settings: AgentSettings,
        options: HttpOptions,
        manager: AuthKeeper | None,
    ) -> tuple[str, AuthResult]:
        """The checked model id; an unknown one re-reads ``/config`` once before failing."""
        try:
            return choose_model(model, auth.models, self.default_model), auth
        except HailuoConfigurationError:
            auth = await self._bootstrapped(auth, settings, options, manager, refresh_models=True)
            return choose_model(model, auth.models, self.default_model), auth

    async def _prepare(  # noqa: PLR0917 - the call's parts, passed on once
        self,
        auth: AuthResult,
        model: str | None,
        request: TurnRequest,
        kwargs: Mapping[str, Any],
        options: HttpOptions,
        manager: AuthKeeper | None,
    ) -> tuple[AuthResult, str, _Sent, AgentSettings]:
        """Everything before the message: bootstrap, model, uploads, the session."""
        settings = self.settings_for(auth, kwargs)
        renew = functools.partial(self._client.renew_token, settings=settings, options=options)
        auth = await prepare_credentials(auth, "agent", manager, renew=renew)
        auth = await self._bootstrapped(auth, settings, options, manager)
        model_id, auth = await self._model_for(model, auth, settings, options, manager)
        choice = ModelChoice(model_id, kwargs.get("reasoning"))
        request = request.for_account(auth.account_fingerprint, self.protocol)
        prompt, attachments = request.text, request.attachments
        _require_text(prompt, attachments)
        files = await self._uploader.prepare_turn(
            auth, attachments, settings=settings, options=options
        )
        if request.conversation is not None:
            session_id = request.conversation.chatID
            await self._client.ensure_configured(auth, settings=settings, options=options)
        else:
            session_id = await self._new_session(auth, choice, settings, options)
        return auth, session_id, _Sent(prompt, choice, attachments, files), settings

    async def _new_session(
        self, auth: AuthResult, choice: ModelChoice, settings: AgentSettings, options: HttpOptions
    ) -> str:
        """A new session, with the account's first ``/config`` read side by side (§12.2)."""
        # no pause follows: the browser posts the message 70-90 ms after the session exists
        session_id, _ = await both(
            self._client.create_session(auth, choice, settings=settings, options=options),
            self._client.ensure_configured(auth, settings=settings, options=options),
        )
        return session_id

    async def _turn(
        self,
        auth: AuthResult,
        session_id: str,
        sent: _Sent,
        settings: AgentSettings,
        options: HttpOptions,
    ) -> AsyncGenerator[list[ProviderEvent], None]:
        """One turn on a session: the client's event lists, as they were read."""
        # A turn refused (4xx, before any output) for its uploads was never answered: reused
        # uploads are forgotten, uploaded again and the turn sent once more; fresh ones raise.
        for attempt in range(2):
            try:
                async with (
                    self._client.send_message(
                        auth,
                        session_id,
                        sent.prompt,
                        sent.choice,
                        settings=settings,
                        options=options,
                        attachments=sent.files.entries,
                    ) as turn,
                    contextlib.aclosing(turn.events()) as events,
                ):
                    async for group in events:
                        yield cast("list[ProviderEvent]", group)  # no ChatStarted on Agent
            except HailuoServerError as exc:
                if not sent.files.keys or not is_refused_turn(exc):
                    raise
                self._uploader.forget(sent.files.keys)
                if attempt or not sent.files.reused:
                    raise _refused_turn(exc, sent, session_id) from exc
                logger.info(
                    "the service refused %d earlier upload(s) (%s); uploading them again",
                    len(sent.files.reused),
                    exc.server_message or exc.status,
                )
            else:
                return
            files = await self._uploader.prepare_turn(
                auth, sent.attachments, settings=settings, options=options
            )
            sent = dataclasses.replace(sent, files=files)

    def _conversation(self, auth: AuthResult, session_id: str) -> Conversation:
        """The conversation handle (the token is reduced to a fingerprint)."""
        return Conversation(auth.token, session_id, auth.agent_id or "", protocol="agent")


@dataclasses.dataclass(frozen=True)
class _Sent:
    """What one turn sends: the prompt, the model object, the attachments and their entries."""

    prompt: str
    choice: ModelChoice
    attachments: tuple[Attachment, ...]
    files: TurnAttachments


def _refused_turn(exc: HailuoServerError, sent: _Sent, session_id: str) -> HailuoUploadError:
    """The error for a turn the service refused because of its uploaded files."""
    said = exc.server_message or exc.message
    return HailuoUploadError(
        f"The service refused the message with its {len(sent.files.entries)} attachment(s) "
        f"(HTTP {exc.status}: {said}); it was not answered. Send it again: the files will "
        "be uploaded anew.",
        code=exc.code,
        server_message=exc.server_message,
        status=exc.status,
        chat_id=session_id,
    )


def _taken_turn_failed(exc: HailuoServerError) -> HailuoServerError:
    """The error for a session that failed after the service took the message (§12.2)."""
    said = exc.server_message or exc.message
    return HailuoServerError(
        f"The agent's session failed before any answer ({said}), after the service had "
        "taken the message: it may have been received, so it was not sent again (that "
        "could post it twice). Send it again yourself, in a new conversation if it fails "
        "once more.",
        code=exc.code,
        server_message=exc.server_message,
        status=exc.status,
        retryable=False,
        partial_text=exc.partial_text,
        partial_reasoning=exc.partial_reasoning,
        chat_id=exc.chat_id,
    )


def _require_text(prompt: str, attachments: Sequence[Attachment]) -> None:
    """Refuse to send an empty turn (a turn of files alone is not empty)."""
    if not prompt.strip() and not attachments:
        raise HailuoConfigurationError(
            "Nothing to send: the messages hold no user text (end with a user message)."
        )
