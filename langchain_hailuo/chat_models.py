"""``ChatHailuo``: MiniMax's consumer web chat (Hailuo AI / MiniMax Agent) for LangChain.

The model knows no wire detail: it picks a provider by protocol (``HailuoAI`` for the
seed's v4 web chat, ``MiniMaxAgent`` for MiniMax Agent), maps messages to plain
``{"role", "content"}`` dicts, carries the server-side conversation in the answers'
``response_metadata``, and turns the providers' typed events into message chunks.
"""

from __future__ import annotations

import logging
import threading
import uuid as uuid_lib
import warnings
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any, Literal, Self, cast
from typing import Protocol as TypingProtocol

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import (
    BaseChatModel,
    LangSmithParams,
    generate_from_stream,
)
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.utils import from_env, secret_from_env
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from langchain_hailuo._loop import account_gate, get_runner
from langchain_hailuo._messages import (
    PROVIDER_NAME,
    StopSequenceFilter,
    TurnPlan,
    conversation_from_value,
    plan_turn,
    to_message_dicts,
)
from langchain_hailuo.auth import (
    DEFAULT_BASE_URL,
    AuthManager,
    LoginOptions,
    recorded_protocol,
    resolve_protocol,
)
from langchain_hailuo.types import (
    AuthResult,
    Conversation,
    FinishReason,
    MessageDict,
    MessageId,
    Protocol,
    ProviderEvent,
    Reasoning,
    TitleGeneration,
    Usage,
)

__all__ = ["ChatHailuo"]

logger = logging.getLogger("langchain_hailuo.chat_models")

DEFAULT_MODEL = "MiniMax-M3"
"""The model asked for when none is given (MiniMax Agent's current default)."""

RUN_METADATA_KEY = "hailuo_conversation"
"""The run-metadata key read as a conversation override (``config={"metadata": {...}}``)."""

_CALL_KWARGS = frozenset(
    {"model", "conversation", "chat_id", "reasoning", "timeout", "max_retries"}
)
"""Per-call keyword arguments ``ChatHailuo`` understands; others are ignored."""

_UNUSED_CONTROLS_WARNED: set[str] = set()
_UNUSED_CONTROLS_GUARD = threading.Lock()
_INIT_GUARD = threading.Lock()


class _Provider(TypingProtocol):
    """What ``ChatHailuo`` needs of a provider (``HailuoAI``, ``MiniMaxAgent`` or a fake)."""

    def create_authed(
        self,
        model: str,
        messages: list[MessageDict],
        auth_result: AuthResult,
        return_conversation: bool = False,  # noqa: FBT001, FBT002 - the seed's signature
        conversation: Conversation | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ProviderEvent]:
        """Send the messages and stream the answer's events."""
        ...

    async def aclose(self) -> None:
        """Close the HTTP sessions of the running loop."""
        ...


class ProviderFactory(TypingProtocol):
    """Builds the provider of a protocol (tests inject a fake through ``_provider_factory``)."""

    def __call__(self, protocol: Protocol, auth_manager: AuthManager) -> _Provider:
        """Build the provider."""
        ...


# --------------------------------------------------------------------------- pure helpers


def _warn_unused_control(name: str) -> None:
    """Warn once per process that a sampling control has no effect on the web chat."""
    with _UNUSED_CONTROLS_GUARD:
        if name in _UNUSED_CONTROLS_WARNED:
            return
        _UNUSED_CONTROLS_WARNED.add(name)
    warnings.warn(
        f"ChatHailuo ignores {name}: the Hailuo / MiniMax web chat has no such control. "
        "The value is accepted so code written for other chat models runs unchanged.",
        UserWarning,
        stacklevel=4,
    )


def _redact_proxy(proxy: str | None) -> str | None:
    """A proxy URL without its ``user:password@`` part."""
    if not proxy or "@" not in proxy:
        return proxy
    scheme, _, rest = proxy.rpartition("://")
    host = rest.rsplit("@", 1)[1]
    return f"{scheme}://***@{host}" if scheme else f"***@{host}"


def _override_from(kwargs: Mapping[str, Any]) -> Any:
    """The conversation override of a call: ``conversation=`` wins over ``chat_id=``."""
    value = kwargs.get("conversation")
    return value if value is not None else kwargs.get("chat_id")


def _with_run_conversation(config: RunnableConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Add the run metadata's ``hailuo_conversation`` as ``conversation=`` unless one was given.

    Args:
        config: The call's config (the ambient one is merged in by ``ensure_config``).
        kwargs: The call's keyword arguments.

    Returns:
        ``kwargs``, with ``conversation`` added when the metadata holds one.
    """
    if _override_from(kwargs) is not None:
        return kwargs
    value = (ensure_config(config).get("metadata") or {}).get(RUN_METADATA_KEY)
    return kwargs if value is None else {**kwargs, "conversation": value}


def _close_providers_later(providers: dict[str, _Provider]) -> None:
    """Finalizer of a ChatHailuo: close its providers' sessions on the private loop.

    Without it, dropping a model that made sync calls leaves an open aiohttp session on the
    private loop ("Unclosed client session"). Sessions on user loops are the caller's to
    close (``await model.aclose()``) and are retired by the providers once their loop closes.
    """
    runner = get_runner()
    for provider in list(providers.values()):
        runner.submit(provider.aclose())


def _usage_metadata(usage: Usage) -> UsageMetadata:
    """LangChain usage metadata from the provider's counts."""
    return UsageMetadata(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
    )


class AnswerBuilder:
    """Turns one answer's provider events into message chunks.

    Text and reasoning deltas become chunks as they come (reasoning in
    ``additional_kwargs["reasoning_content"]``, never in ``content``); everything else
    (chat id, message id, title, usage, finish reason) is collected and put on the last
    chunk only, because string metadata is concatenated when chunks are added.

    Args:
        model: The model asked for (``response_metadata["model_name"]``).
        protocol: The protocol used.
        account: The account fingerprint.
        history_hash: The hash of the prompt this answer answers.
        stop: Stop strings applied to the answer text.
    """

    def __init__(
        self,
        *,
        model: str,
        protocol: Protocol,
        account: str,
        history_hash: str,
        stop: Sequence[str] | None = None,
    ) -> None:
        """Create the builder (see the class docstring)."""
        self.model = model
        self.protocol: Protocol = protocol
        self.account = account
        self.history_hash = history_hash
        self.stop_filter = StopSequenceFilter(stop)
        self.conversation: Conversation | None = None
        self.msg_id: str | None = None
        self.title: str | None = None
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self._fallback_id = f"hailuo-{uuid_lib.uuid4().hex}"

    @property
    def stopped(self) -> bool:
        """Whether a stop string cut the answer (the stream should be closed)."""
        return self.stop_filter.stopped

    @property
    def message_id(self) -> str | None:
        """The LangChain message id: ``hailuo-<msg id>`` once the server sent one."""
        return f"hailuo-{self.msg_id}" if self.msg_id else None

    def _chunk(self, content: str = "", **fields: Any) -> ChatGenerationChunk:
        """A chunk carrying only ``model_provider`` (equal values merge without concatenating)."""
        message = AIMessageChunk(
            content=content,
            id=self.message_id,
            response_metadata={"model_provider": PROVIDER_NAME},
            **fields,
        )
        return ChatGenerationChunk(message=message)

    def on_event(self, event: ProviderEvent) -> ChatGenerationChunk | None:
        """Take one provider event.

        Args:
            event: The event.

        Returns:
            A chunk to emit, or ``None``.
        """
        if isinstance(event, str):
            text = self.stop_filter.feed(event)
            return self._chunk(text) if text else None
        if isinstance(event, Reasoning):
            if not event.text:
                return None
            return self._chunk(additional_kwargs={"reasoning_content": event.text})
        if isinstance(event, Conversation):
            self.conversation = event
        elif isinstance(event, MessageId):
            self.msg_id = event.msg_id
        elif isinstance(event, TitleGeneration):
            self.title = event.title
        elif isinstance(event, Usage):
            self.usage = event
        elif isinstance(event, FinishReason):
            self.finish_reason = event.reason
        return None

    def response_metadata(self) -> dict[str, Any]:
        """Everything the answer's ``response_metadata`` holds (no ``None`` values)."""
        conversation = self.conversation
        meta: dict[str, Any] = {
            "model_provider": PROVIDER_NAME,
            "model_name": self.model,
            "protocol": self.protocol,
            "chat_id": conversation.chatID if conversation else None,
            "character_id": conversation.characterID if conversation else None,
            "msg_id": self.msg_id,
            "title": self.title,
            "account": self.account,
            "history_hash": self.history_hash,
            "finish_reason": "stop" if self.stopped else (self.finish_reason or "stop"),
        }
        return {key: value for key, value in meta.items() if value is not None}

    def last_chunk(self) -> ChatGenerationChunk:
        """The final chunk: held-back text, all metadata, usage, ``chunk_position="last"``."""
        message = AIMessageChunk(
            content=self.stop_filter.flush(),
            id=self.message_id or self._fallback_id,
            response_metadata=self.response_metadata(),
            usage_metadata=_usage_metadata(self.usage) if self.usage else None,
            chunk_position="last",
        )
        return ChatGenerationChunk(message=message)


# --------------------------------------------------------------------------- the model


class ChatHailuo(BaseChatModel):
    r"""MiniMax's consumer web chat, Hailuo AI / MiniMax Agent, as a LangChain chat model.

    It speaks two wire protocols: MiniMax Agent (``agent.minimax.io``, the live one) and
    the Hailuo AI web chat of 2025 (``www.hailuo.ai``, "v4"). It uses your web account
    (a login token), not an API key, and the service keeps each conversation server-side.

    Setup:
        Install the package and log in once with a browser (the token is saved to a
        private auth file), or export a token you already have:

        ```bash
        pip install -U langchain-hailuo
        hailuo login                      # opens a browser; saves the token (0600 file)
        # or
        export HAILUO_TOKEN="eyJhbGciOi..."   # the site's localStorage `_token`
        ```

    Key init args — completion params:
        model: str
            The model to ask for (default ``"MiniMax-M3"``). On MiniMax Agent it is
            checked against the models your account may use; on v4 it is informational.
        reasoning: bool | None
            Ask MiniMax Agent to think before answering (``None``: the model's default).
        stop: list[str] | None
            Stop strings, applied on the client (alias ``stop_sequences``).
        temperature, max_tokens:
            Accepted for compatibility, **ignored**: the web chat has no such controls.

    Key init args — client params:
        token: SecretStr | None
            The login token (alias ``api_key``; env ``HAILUO_TOKEN``). Optional: the auth
            file written by ``hailuo login`` is used when absent.
        protocol: "auto" | "agent" | "v4"
            Which wire protocol (env ``HAILUO_PROTOCOL``; default ``"auto"``).
        base_url: str | None
            The service origin (env ``HAILUO_BASE_URL``; default
            ``https://agent.minimax.io``).
        timeout: float | None
            Seconds one answer may take in total (default 300).
        max_retries: int
            Retries of a failed request before the first byte of the answer (default 2).
        max_concurrency: int
            Answers streamed at once per account (default 1; more calls queue).

    See the fields below for the full list (``stream_url``, ``uuid``, ``device_id``,
    ``auth_file``, ``proxy``, ``browser_login``, ``login_timeout``, ``headless``,
    ``browser_path``, ``use_previous_chat_id``, ``streaming``, ``provider_settings``).

    Instantiate:
        ```python
        from langchain_hailuo import ChatHailuo

        model = ChatHailuo()  # token from HAILUO_TOKEN or the auth file
        model = ChatHailuo(model="MiniMax-M3", reasoning=True, timeout=120)
        model = ChatHailuo(protocol="v4", base_url="https://www.hailuo.ai")
        ```

        Building the model does no I/O and needs no credential: a missing one fails at the
        first call with a :class:`HailuoAuthError` that says to run ``hailuo login`` (or
        set ``HAILUO_TOKEN``).

    Invoke:
        ```python
        messages = [
            ("system", "You are a terse assistant."),
            ("human", "Name three prime numbers."),
        ]
        model.invoke(messages)
        ```

        ```python
        AIMessage(
            content="2, 3 and 5.",
            response_metadata={
                "model_provider": "hailuo",
                "model_name": "MiniMax-M3",
                "protocol": "agent",
                "chat_id": "375610225541377",
                "character_id": 1,
                "msg_id": "375610229112833",
                "title": "Three primes",
                "account": "acct-3f2a9c01b7de",
                "history_hash": "5be0c1d2a3f49e87",
                "finish_reason": "stop",
            },
            id="hailuo-375610229112833",
        )
        ```

    Stream:
        ```python
        for chunk in model.stream(messages):
            print(chunk.text, end="", flush=True)
        ```

        ```text
        2, 3 and 5.
        ```

        One chunk per delta. The last chunk has ``chunk_position="last"`` and carries all
        the response metadata (each key on that chunk only), so the sum of the chunks is
        the same message ``invoke`` returns:

        ```python
        full = None
        for chunk in model.stream(messages):
            full = chunk if full is None else full + chunk
        full.response_metadata["chat_id"]  # '375610225541377'
        ```

        With ``reasoning=True`` the model's thinking streams apart from the answer, in
        ``additional_kwargs["reasoning_content"]`` (and as a ``reasoning`` block in
        ``content_blocks``); it is never mixed into ``content``.

    Async:
        ```python
        await model.ainvoke(messages)
        async for chunk in model.astream(messages):
            print(chunk.text, end="")
        await model.abatch([messages, other_messages])
        ```

        The sync methods run the same async code on one private event loop in a daemon
        thread, so they work from scripts, worker threads, Jupyter and async apps alike.
        Call ``await model.aclose()`` in long-lived async apps when done.

    Managing conversation state:
        The service keeps each conversation (a chat id on v4, a session id on MiniMax
        Agent). ``ChatHailuo`` itself keeps no state: the conversation travels in the
        answers' ``response_metadata``. On each call:

        1. A per-call ``conversation=`` (a :class:`Conversation`, its dict, or a chat id
           string) or ``chat_id=`` wins; ``model.bind(chat_id=...)`` pins a thread. So does
           ``config={"metadata": {"hailuo_conversation": ...}}``.
        2. Else the newest ``ChatHailuo`` answer in the history made by the same account
           over the same protocol decides: its chat continues and only the user messages
           after it are sent.
        3. Else a new chat starts with the whole history folded into one prompt.

        Each answer stores a short hash of the history it answered
        (``history_hash``). If the history before that answer was edited (trimmed,
        summarised, a different system prompt), the server's copy no longer matches what
        you see, so a new chat starts from the whole history instead. So does a history
        whose newest answer is followed by something other than user messages. Another
        account's chat is never continued. ``use_previous_chat_id=False`` starts a new chat
        on every call.

        ```python
        first = model.invoke("My name is Ada.")
        history = ["My name is Ada.", first, "What is my name?"]
        model.invoke(history)  # continues first's chat; sends only "What is my name?"

        model.invoke("And now?", chat_id=first.response_metadata["chat_id"])
        model.invoke(
            "And now?",
            config={"metadata": {"hailuo_conversation": first.response_metadata["chat_id"]}},
        )
        ```

        This works unchanged with ``RunnableWithMessageHistory`` and LangGraph
        checkpointers, since both keep ``response_metadata``. Histories rebuilt from plain
        strings or tuples lose it, and then every call starts a new chat.

    Response metadata:
        ``model_provider`` (``"hailuo"``), ``model_name``, ``protocol``, ``chat_id``,
        ``character_id`` (v4 character or Agent agent id), ``msg_id``, ``title`` (new chats,
        when the server names them), ``account`` (a short fingerprint, never the token),
        ``history_hash`` and ``finish_reason``. ``AIMessage.id`` is ``"hailuo-<msg_id>"``
        (unique per answer; a random id when the server sent none), never the chat id.
        ``usage_metadata`` is set only when the service reports token counts.

    Errors:
        Every failure is a typed :class:`HailuoError`, raised as is: ``HailuoAuthError``
        (no, expired or rejected token; says to run ``hailuo login``),
        ``HailuoRateLimitError``, ``HailuoQuotaError``, ``HailuoSessionBusyError``,
        ``HailuoTimeoutError``, ``HailuoStreamInterruptedError`` (carries
        ``partial_text`` and ``chat_id``), ``HailuoUnsupportedContentError`` (an image,
        audio or file block; a tool result), ``HailuoConfigurationError``. An empty
        message list raises ``ValueError``. No error, log line, trace or metadata ever
        holds the token.

        ```python
        from langchain_hailuo import HailuoStreamInterruptedError

        try:
            model.invoke("Tell me a long story.")
        except HailuoStreamInterruptedError as err:
            print(err.partial_text[:40], err.chat_id)
        ```
    """

    model_config = ConfigDict(populate_by_name=True)

    model: str = Field(default=DEFAULT_MODEL, alias="model_name")
    """The model to ask for (alias ``model_name``; default ``"MiniMax-M3"``).

    On MiniMax Agent it is checked against the models the account may use (a
    :class:`HailuoConfigurationError` names them otherwise). On v4 the site serves its
    current model whatever is asked; the value is only reported back. A per-call
    ``model=`` overrides it.
    """

    protocol: Literal["auto", "agent", "v4"] = Field(
        default_factory=from_env("HAILUO_PROTOCOL", default="auto"), validate_default=True
    )
    """The wire protocol: ``"agent"`` (MiniMax Agent), ``"v4"`` (the 2025 Hailuo web chat) or
    ``"auto"`` (env ``HAILUO_PROTOCOL``, else ``"auto"``).

    ``"auto"`` means ``v4`` for ``www.hailuo.ai`` / ``hailuoai.com``, the protocol a browser
    login recorded for the host, and ``agent`` otherwise.
    """

    reasoning: bool | None = None
    """MiniMax Agent only: ask the model to think first (``None``: the model's default).

    Reasoning text streams in ``additional_kwargs["reasoning_content"]``, apart from the
    answer. A per-call ``reasoning=`` overrides it. v4 has no such switch.
    """

    token: SecretStr | None = Field(
        default_factory=secret_from_env("HAILUO_TOKEN", default=None), alias="api_key"
    )
    """The login token (the site's localStorage ``_token``; alias ``api_key``).

    Defaults to env ``HAILUO_TOKEN``; when absent too, the auth file written by
    ``hailuo login`` is used. Never shown in reprs, traces, metadata, logs or errors.
    """

    base_url: str | None = Field(default_factory=from_env("HAILUO_BASE_URL", default=None))
    """The service origin (env ``HAILUO_BASE_URL``).

    ``None`` means the origin recorded by the browser login, else ``https://agent.minimax.io``
    (``https://agent.minimaxi.com`` in mainland China; ``https://www.hailuo.ai`` for v4).
    """

    stream_url: str | None = Field(default_factory=from_env("HAILUO_STREAM_URL", default=None))
    """MiniMax Agent only: the origin that streams answers (env ``HAILUO_STREAM_URL``).

    ``None`` derives it from ``base_url`` (``agent-stream.<domain>``).
    """

    uuid: str | None = Field(default_factory=from_env("HAILUO_UUID", default=None))
    """The browser instance id sent with an explicit token (env ``HAILUO_UUID``)."""

    device_id: str | None = Field(default_factory=from_env("HAILUO_DEVICE_ID", default=None))
    """The device id sent with an explicit token (env ``HAILUO_DEVICE_ID``)."""

    auth_file: str | Path | None = None
    """The auth file (``None``: env ``HAILUO_AUTH_FILE``, else the per-user config folder)."""

    proxy: str | None = Field(default=None, repr=False, exclude=True)
    """An HTTP(S) proxy for every request and for the browser login (hidden from reprs and
    dumps: it may hold credentials)."""

    timeout: float | None = 300.0
    """Seconds one answer may take in total, first byte to last (default 300).

    Connecting, waiting for the first byte and silences inside the stream have their own
    shorter limits. ``None`` uses the providers' defaults (10 minutes in total).
    """

    max_retries: int = Field(default=2, ge=0)
    """Extra attempts after a retryable failure (connection error, 429, 5xx), only before
    the first byte of an answer: once text has arrived nothing is ever sent twice.
    """

    max_concurrency: int = Field(default=1, ge=1)
    """Answers streamed at once per account (default 1: the service allows one stream per
    account). Further calls, from any thread or event loop, wait their turn.
    """

    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    """Stop strings (alias ``stop_sequences``). The service has no stop parameter, so they
    are applied here: the answer is cut before the first one, even when it is split across
    deltas, the response is closed and ``finish_reason`` is ``"stop"``. The server's chat
    keeps the full answer it wrote.
    """

    streaming: bool = False
    """Whether ``invoke`` streams internally (so callbacks receive each token)."""

    temperature: float | None = None
    """Accepted for compatibility, **ignored**: the web chat has no temperature control.

    Setting it emits a one-time ``UserWarning``; the value shows in the invocation params
    of traces as given, but not as ``ls_temperature`` (it was not applied).
    """

    max_tokens: int | None = None
    """Accepted for compatibility, **ignored**: the web chat has no length limit control.

    Setting it emits a one-time ``UserWarning``; not reported as ``ls_max_tokens``.
    """

    provider_settings: dict[str, Any] = Field(default_factory=dict)
    """Protocol-specific settings passed on to the provider as they are.

    MiniMax Agent: any :class:`~langchain_hailuo.agent.client.AgentSettings` field, e.g.
    ``{"session_delay": 0.0}`` (the pause after opening a session, 1 s by default, which a
    local emulator does not need), ``api_prefix``, ``agent_role``, ``yy_target``,
    ``region``. v4: ``lang``, ``version_code``, ``biz_id``, ``app_id``. Keys meant for the
    other protocol are ignored. ``Emulator.model_kwargs()`` fills it for offline tests.
    """

    use_previous_chat_id: bool = True
    """Continue the server-side chat of the newest matching answer in the history
    (default). ``False`` starts a new chat on every call unless ``conversation=`` /
    ``chat_id=`` is given.
    """

    browser_login: bool = False
    """Open a browser to log in when no usable credential exists (needs Chromium)."""

    login_timeout: float = Field(default=300.0, gt=0)
    """Seconds the browser login waits for you to finish logging in."""

    headless: bool = False
    """Run the login browser without a window (only useful with a logged-in profile)."""

    browser_path: str | None = None
    """The Chromium / Chrome executable for the login (else ``HAILUO_BROWSER`` or ``PATH``)."""

    _provider_factory: ProviderFactory | None = PrivateAttr(default=None)
    _auth_manager: AuthManager | None = PrivateAttr(default=None)
    _providers: dict[str, _Provider] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _warn_ignored_controls(self) -> Self:
        """Say once that ``temperature`` / ``max_tokens`` have no effect."""
        for name in ("temperature", "max_tokens"):
            if getattr(self, name) is not None:
                _warn_unused_control(name)
        return self

    # ------------------------------------------------------------------ identity

    @property
    def lc_secrets(self) -> dict[str, str]:
        """The token is a secret read from ``HAILUO_TOKEN``."""
        return {"token": "HAILUO_TOKEN"}

    @classmethod
    def is_lc_serializable(cls) -> bool:
        """Not serializable: ``load`` only revives classes listed in langchain-core."""
        return False

    @property
    def _llm_type(self) -> str:
        """The model type for tracing."""
        return "chat-hailuo"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        """The settings that identify this model (no token, no proxy credentials)."""
        return {
            "model": self.model,
            "protocol": self.protocol,
            "base_url": self.base_url,
            "stream_url": self.stream_url,
            "reasoning": self.reasoning,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "max_concurrency": self.max_concurrency,
            "stop": self.stop,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "proxy": _redact_proxy(self.proxy),
            "use_previous_chat_id": self.use_previous_chat_id,
        }

    def _get_invocation_params(
        self, stop: list[str] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Invocation params for tracing; a conversation shows as its token-free dict."""
        params = super()._get_invocation_params(stop=stop, **kwargs)
        if isinstance(params.get("conversation"), Conversation):
            params["conversation"] = params["conversation"].get_dict()
        return params

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        """LangSmith params: provider ``hailuo`` and the per-call model.

        ``ls_temperature`` and ``ls_max_tokens`` are left out: they are not applied.
        """
        params = LangSmithParams(
            ls_provider=PROVIDER_NAME,
            ls_model_name=str(kwargs.get("model") or self.model),
            ls_model_type="chat",
        )
        if stops := stop or self.stop:
            params["ls_stop"] = list(stops)
        return params

    # ------------------------------------------------------------------ config metadata

    def invoke(
        self,
        input: LanguageModelInput,  # noqa: A002 - LangChain's signature
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """Answer ``input`` (see the class docstring); reads ``hailuo_conversation`` metadata."""
        kwargs = _with_run_conversation(config, kwargs)
        return super().invoke(input, config, stop=stop, **kwargs)

    async def ainvoke(
        self,
        input: LanguageModelInput,  # noqa: A002 - LangChain's signature
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        """Answer ``input`` asynchronously; reads ``hailuo_conversation`` metadata."""
        kwargs = _with_run_conversation(config, kwargs)
        return await super().ainvoke(input, config, stop=stop, **kwargs)

    def stream(
        self,
        input: LanguageModelInput,  # noqa: A002 - LangChain's signature
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        """Stream the answer to ``input``; reads ``hailuo_conversation`` metadata."""
        kwargs = _with_run_conversation(config, kwargs)
        return super().stream(input, config, stop=stop, **kwargs)

    def astream(
        self,
        input: LanguageModelInput,  # noqa: A002 - LangChain's signature
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        """Stream the answer to ``input`` asynchronously; reads ``hailuo_conversation``."""
        kwargs = _with_run_conversation(config, kwargs)
        return super().astream(input, config, stop=stop, **kwargs)

    # ------------------------------------------------------------------ LangChain hooks

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """Stream one answer: one chunk per delta, then the last chunk with the metadata."""
        override = self._run_override(run_manager, kwargs)
        async with aclosing(self._achunks(messages, stop, override, kwargs)) as chunks:
            async for chunk in chunks:
                if run_manager:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """Answer in one piece (the stream, collected)."""
        override = self._run_override(run_manager, kwargs)
        return await self._acollect(messages, stop, override, kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """Stream one answer from sync code (the async path, on the private loop)."""
        override = self._run_override(run_manager, kwargs)
        for chunk in get_runner().iterate(self._achunks(messages, stop, override, kwargs)):
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        """Answer in one piece from sync code (the async path, on the private loop)."""
        override = self._run_override(run_manager, kwargs)
        return get_runner().run(self._acollect(messages, stop, override, kwargs))

    # ------------------------------------------------------------------ lifecycle

    async def aclose(self) -> None:
        """Close the HTTP sessions the providers opened on the running event loop.

        Sessions of the private loop used by the sync methods are closed by :meth:`close`
        or at interpreter exit.
        """
        for provider in list(self._providers.values()):
            await provider.aclose()

    def close(self) -> None:
        """Close the HTTP sessions the sync methods opened (on the private loop)."""
        if self._providers:
            get_runner().run(self.aclose())

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _run_override(
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        kwargs: Mapping[str, Any],
    ) -> Any:
        """The call's conversation override: kwargs first, then the run's metadata."""
        value = _override_from(kwargs)
        if value is None and run_manager is not None:
            value = (run_manager.metadata or {}).get(RUN_METADATA_KEY)
            if value is None:
                value = (run_manager.inheritable_metadata or {}).get(RUN_METADATA_KEY)
        return value

    def _get_auth_manager(self) -> AuthManager:
        """The model's auth manager, created on first use (no I/O)."""
        with _INIT_GUARD:
            if self._auth_manager is None:
                login = LoginOptions(
                    base_url=self.base_url or DEFAULT_BASE_URL,
                    browser_path=self.browser_path,
                    headless=self.headless,
                    proxy=self.proxy,
                    login_timeout=self.login_timeout,
                )
                self._auth_manager = AuthManager(
                    token=self.token,
                    uuid=self.uuid,
                    device_id=self.device_id,
                    base_url=self.base_url,
                    auth_file=self.auth_file,
                    login=login,
                    browser_login=self.browser_login,
                )
            return self._auth_manager

    def _build_provider(self, protocol: Protocol, auth_manager: AuthManager) -> _Provider:
        """The real provider of ``protocol`` (imported on first use)."""
        settings: dict[str, Any] = {
            **self.provider_settings,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "proxy": self.proxy,
        }
        if protocol == "v4":
            from langchain_hailuo.v4.provider import HailuoAI  # noqa: PLC0415 - lazy stack

            return cast(
                "_Provider", HailuoAI(base_url=self.base_url, auth_manager=auth_manager, **settings)
            )
        from langchain_hailuo.agent.provider import MiniMaxAgent  # noqa: PLC0415 - lazy stack

        return cast(
            "_Provider",
            MiniMaxAgent(
                base_url=self.base_url,
                auth_manager=auth_manager,
                stream_url=self.stream_url,
                **settings,
            ),
        )

    def _get_provider(self, protocol: Protocol) -> _Provider:
        """The model's provider of ``protocol``, created on first use."""
        auth_manager = self._get_auth_manager()
        with _INIT_GUARD:
            provider = self._providers.get(protocol)
            if provider is None:
                factory = self._provider_factory or self._build_provider
                if not self._providers:
                    weakref.finalize(self, _close_providers_later, self._providers)
                provider = self._providers[protocol] = factory(protocol, auth_manager)
                get_runner().track(provider)
            return provider

    def _resolve_protocol(self, auth: AuthResult) -> Protocol:
        """The protocol to speak: the field, or ``auto`` resolved from the origin / login."""
        base_url = self.base_url or auth.api_origin or DEFAULT_BASE_URL
        return resolve_protocol(base_url, self.protocol, recorded=recorded_protocol(auth, base_url))

    def _call_kwargs(self, protocol: Protocol, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for ``create_authed`` (beyond the messages and conversation)."""
        unknown = sorted(set(kwargs) - _CALL_KWARGS)
        if unknown:
            logger.debug("ChatHailuo ignores call arguments %s", unknown)
        call: dict[str, Any] = {}
        for key in ("timeout", "max_retries"):
            if kwargs.get(key) is not None:
                call[key] = kwargs[key]
        if protocol == "agent":
            reasoning = kwargs.get("reasoning", self.reasoning)
            if reasoning is not None:
                call["reasoning"] = reasoning
            if self.stream_url:
                call["stream_url"] = self.stream_url
        return call

    async def _achunks(
        self,
        messages: Sequence[BaseMessage],
        stop: list[str] | None,
        override: Any,
        kwargs: Mapping[str, Any],
    ) -> AsyncGenerator[ChatGenerationChunk, None]:
        """The one answer loop behind all four LangChain hooks."""
        dicts = to_message_dicts(messages)
        auth_manager = self._get_auth_manager()
        auth = await auth_manager.get()
        protocol = self._resolve_protocol(auth)
        account = auth.account_fingerprint
        plan: TurnPlan = plan_turn(
            messages,
            dicts,
            account=account,
            protocol=protocol,
            override=conversation_from_value(override, protocol),
            use_history=self.use_previous_chat_id,
        )
        model = str(kwargs.get("model") or self.model)
        logger.debug(
            "ChatHailuo call: protocol=%s account=%s plan=%s chat=%s",
            protocol,
            account,
            plan.reason,
            plan.conversation.chatID if plan.conversation else None,
        )
        builder = AnswerBuilder(
            model=model,
            protocol=protocol,
            account=account,
            history_hash=plan.history_hash,
            stop=stop if stop is not None else self.stop,
        )
        provider = self._get_provider(protocol)
        async with account_gate(account, self.max_concurrency):
            events = provider.create_authed(
                model,
                plan.messages,
                auth,
                return_conversation=True,
                conversation=plan.conversation,
                full_history=plan.full_history,
                **self._call_kwargs(protocol, kwargs),
            )
            async with aclosing(cast("Any", events)) as stream:
                async for event in stream:
                    chunk = builder.on_event(event)
                    if chunk is not None:
                        yield chunk
                    if builder.stopped:
                        break
        if builder.conversation is None and plan.conversation is not None:
            builder.conversation = plan.conversation
        yield builder.last_chunk()

    async def _acollect(
        self,
        messages: Sequence[BaseMessage],
        stop: list[str] | None,
        override: Any,
        kwargs: Mapping[str, Any],
    ) -> ChatResult:
        """The whole answer as a :class:`ChatResult` (chunks summed)."""
        chunks = [chunk async for chunk in self._achunks(messages, stop, override, kwargs)]
        return generate_from_stream(iter(chunks))
