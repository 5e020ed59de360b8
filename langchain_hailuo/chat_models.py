"""``ChatHailuo``: MiniMax's consumer web chat (Hailuo AI / MiniMax Agent) for LangChain.

The model knows no wire detail: it picks a provider by protocol (``HailuoAI`` for the
Hailuo v4 web chat, ``MiniMaxAgent`` for MiniMax Agent), maps messages to plain
``{"role", "content"}`` dicts, carries the server-side conversation in the answers'
``response_metadata``, and turns the providers' typed events into message chunks.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import re
import sys
import threading
import time
import warnings
import weakref
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import aclosing
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal, cast
from typing import Protocol as TypingProtocol

import langchain_core
import pydantic
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableLambda,
    RunnableMap,
    RunnablePassthrough,
    ensure_config,
)
from langchain_core.tools import BaseTool
from langchain_core.utils import from_env, secret_from_env
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator
from typing_extensions import Self

from langchain_hailuo import _turns
from langchain_hailuo._answer import Answer
from langchain_hailuo._attachments import DEFAULT_MAX_ATTACHMENT_BYTES
from langchain_hailuo._config import (
    ENV_POOL_URL,
    LoginOptions,
    as_account_spec,
    pool_specs_from_env,
)
from langchain_hailuo._loop import get_runner
from langchain_hailuo._messages import PROVIDER_NAME, conversation_from_value
from langchain_hailuo._prompt import TurnProvider, TurnRequest, check_encodable
from langchain_hailuo._protocols import build_provider
from langchain_hailuo._routing import (
    DEFAULT_BASE_URL,
    checked_url,
    protocol_of_account,
    turn_options,
)
from langchain_hailuo._structured import StructuredMethod
from langchain_hailuo._timeouts import Timeouts, checked_timeout
from langchain_hailuo._tool_turns import STRUCTURED_KWARG, StructuredSpec, TurnTools
from langchain_hailuo._tools import ToolChoice, normalize_tool_choice
from langchain_hailuo._turns import RenderedCall
from langchain_hailuo.auth import AuthManager
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoConfigurationError,
    HailuoError,
    HailuoNoAccountAvailableError,
    HailuoQuotaError,
    HailuoRateLimitError,
    HailuoTimeoutError,
)
from langchain_hailuo.pool import AccountPool, HealthSettings, PoolAccount
from langchain_hailuo.types import AccountSpec, AuthResult, Conversation, Protocol

__all__ = ["ChatHailuo"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "MiniMax-M3"
"""The model asked for when none is given (MiniMax Agent's current default)."""

RUN_METADATA_KEY = "hailuo_conversation"
"""The run-metadata key read as a conversation override (``config={"metadata": {...}}``)."""

_CALL_KWARGS = frozenset(
    {
        "model",
        "conversation",
        "chat_id",
        "reasoning",
        "timeout",
        "max_retries",
        "tools",
        "tool_choice",
    }
)
"""Per-call keyword arguments ``ChatHailuo`` understands (with the structured-output one of
``_tool_turns``); others are ignored."""

_STRUCTURED_METHODS = ("json_schema", "json_mode", "function_calling")

_UNUSED_CONTROLS_WARNED: set[str] = set()
_UNUSED_CONTROLS_GUARD = threading.Lock()
_INIT_GUARD = threading.Lock()


class _Provider(TurnProvider, TypingProtocol):
    """What ``ChatHailuo`` needs of a provider (``HailuoAI``, ``MiniMaxAgent`` or a fake)."""

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
        stacklevel=_callers_stacklevel(),
    )


def _library_folders() -> tuple[str, ...]:
    """The folders of this package, pydantic and LangChain's core (a warning points past them)."""
    return tuple(
        str(Path(module.__file__ or "").resolve().parent) + os.sep
        for module in (sys.modules[__name__.split(".", 1)[0]], pydantic, langchain_core)
    )


def _callers_stacklevel() -> int:
    """``stacklevel`` for a warning raised here: the user's line that built the model."""
    # counted, not assumed: the frames between the user and here depend on pydantic's and
    # LangChain's versions (and on subclasses)
    folders = _library_folders()
    frame = sys._getframe(1)  # the function that calls warnings.warn is stacklevel 1
    level = 1
    while frame.f_back is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(
        folders
    ):
        frame = frame.f_back
        level += 1
    return level


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
    """Add the run metadata's ``hailuo_conversation`` as ``conversation=`` unless one was given."""
    if _override_from(kwargs) is not None:
        return kwargs
    value = (ensure_config(config).get("metadata") or {}).get(RUN_METADATA_KEY)
    return kwargs if value is None else {**kwargs, "conversation": value}


_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_MERGE_EVERY = 256
"""Chunks ``invoke`` holds before folding them into one (bounds memory per delta)."""


def _check_settings(model: ChatHailuo) -> None:
    """Refuse settings that cannot work, when the model is built (before any request)."""
    checked_timeout(model.timeout)
    for name in ("base_url", "stream_url"):
        value = getattr(model, name)
        if value:
            checked_url(value, name, DEFAULT_BASE_URL)
    if model.token is not None and _CONTROL_CHARS.search(model.token.get_secret_value()):
        raise HailuoConfigurationError(
            "The token holds a control character (a line break, tab or NUL), which cannot "
            "be sent in a header; copy it again without surrounding whitespace, or run "
            "`hailuo login`."
        )


def _call_deadline(seconds: float | None) -> float:
    """The ``time.monotonic()`` by which a call with a (checked) timeout must end."""
    return time.monotonic() + (seconds if seconds is not None else Timeouts().total or 600.0)


def _fold(chunks: list[ChatGenerationChunk]) -> ChatGenerationChunk:
    """The chunks summed into one (in order)."""
    return chunks[0] + chunks[1:]


def _close_providers_later(providers: dict[str, _Provider]) -> None:
    """Finalizer of a ChatHailuo: close its providers' sessions on the private loop."""
    # without it, a dropped model that made sync calls leaves an unclosed aiohttp session
    runner = get_runner()
    for provider in list(providers.values()):
        runner.submit(provider.aclose())


@dataclasses.dataclass(slots=True)
class _Seat:
    """A pool account as one call uses it: its login, its protocol and the call's plan on it."""

    account: PoolAccount
    auth: AuthResult
    protocol: Protocol
    plan: TurnRequest | None = None  # made once, by ``ChatHailuo._plan``


@dataclasses.dataclass(frozen=True, slots=True)
class _Options:
    """A call's options, read and checked once when the call starts."""

    model: str
    stop: list[str] | None
    timeout: float | None  # the call's own timeout (None: the model's)
    max_retries: int | None
    reasoning: bool | None
    deadline: float  # the time.monotonic() by which the call ends (queueing included)

    def turn_kwargs(self, protocol: Protocol) -> dict[str, Any]:
        """The provider's keyword arguments for one turn (beyond the request)."""
        given = {"timeout": self.timeout, "max_retries": self.max_retries}
        call = {key: value for key, value in given.items() if value is not None}
        # the stream origin is not here: the provider was given it once, when it was built
        return {
            **call,
            **turn_options(protocol, reasoning=self.reasoning),
            "deadline": self.deadline,
        }


@dataclasses.dataclass
class _Turn:
    """One call as the answer loop needs it (its messages mapped, its options read, once)."""

    call: RenderedCall
    override: Any
    tools: TurnTools
    options: _Options
    answer: Answer | None = None
    seats: dict[str, _Seat] = dataclasses.field(default_factory=dict)  # account name -> seat


_FAILOVER_ERRORS = (HailuoQuotaError, HailuoRateLimitError, HailuoAuthError)
"""Account failures after which a new chat moves to the next account (before its first byte)."""

_BUSY_ACCOUNT = (
    "The call's timeout ran out while the call waited for this account's other calls to "
    "finish (the service streams one answer per account at a time); raise timeout= or send "
    "fewer calls at once."
)
"""The error of a single-account call whose wait for the account outlasted its timeout."""


def _json_schema_of(schema: Mapping[str, Any] | type | None) -> dict[str, Any] | None:
    """The JSON schema of a ``with_structured_output`` schema (``None`` stays ``None``)."""
    # a JSON schema without the ``title`` LangChain's converter wants is used as it is
    if schema is None:
        return None
    try:
        return convert_to_json_schema(dict(schema) if isinstance(schema, Mapping) else schema)
    except ValueError:
        if isinstance(schema, Mapping):
            return dict(schema)
        raise


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
        accounts: list | str | Path | None
            Several accounts (tokens, ``AuthResult`` s, auth files, or a folder of them;
            env ``HAILUO_TOKENS`` / ``HAILUO_ACCOUNTS_DIR``): see "Many accounts".
        pool_url: str | None
            ``redis://...`` (env ``HAILUO_POOL_URL``): share the accounts' leases with
            other processes and hosts.

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

    Tool calling:
        The web chat has no native tool calling, so ``bind_tools`` works by prompting.
        The tools (LangChain tools, functions, Pydantic classes, JSON schemas) are described
        in an instruction block at the start of a chat, and again only when the bound tools
        or ``tool_choice`` change; the model answers with ``<tool_call>`` blocks, which are
        parsed into ``tool_calls`` (ids generated, arguments checked against each tool's
        schema). Call syntax never reaches ``content``.

        ```python
        from langchain_core.messages import HumanMessage, ToolMessage
        from langchain_core.tools import tool


        @tool
        def get_weather(city: str) -> str:
            "Get the current weather in a city."
            return "Sunny, 21 °C"


        llm = model.bind_tools([get_weather])
        question = HumanMessage("What is the weather in Paris?")
        ai = llm.invoke([question])
        ai.content, ai.tool_calls, ai.response_metadata["finish_reason"]
        ```

        ```python
        (
            "I will check.",
            [
                {
                    "name": "get_weather",
                    "args": {"city": "Paris"},
                    "id": "call_e0ffcf63af154cc9979cae4ba6e28e2e",
                    "type": "tool_call",
                }
            ],
            "tool_calls",
        )
        ```

        Tool results continue the same server chat; only the results are sent, as
        labelled blocks keyed by tool call id (string or list content, ``status="error"``
        marked):

        ```python
        result = ToolMessage(
            get_weather.invoke(ai.tool_calls[0]["args"]), tool_call_id=ai.tool_calls[0]["id"]
        )
        llm.invoke([question, ai, result]).content  # 'It is sunny and 21 °C in Paris.'
        ```

        ```text
        Results of your tool calls:

        <tool_result id="call_e0ffcf63af154cc9979cae4ba6e28e2e" name="get_weather">
        Sunny, 21 °C
        </tool_result>

        Use these results to continue. If you need more tools, reply with <tool_call> blocks
        again; otherwise give your final answer.
        ```

        ``tool_choice``: ``"auto"`` (default), ``"any"`` / ``"required"``, a tool name, or
        ``"none"``. The choice is stated in the instructions and checked after the answer:
        a forced choice the model did not follow gets one corrective turn in the same chat,
        then :class:`~langchain_hailuo.HailuoToolChoiceError`. Answers under a forced
        choice are held back until checked, so they stream in one piece.

        Streaming: prose before a call streams as ``content`` (markers split across deltas
        included: only a possible marker prefix is held back); each call arrives whole as
        one ``tool_call_chunks`` entry; ``finish_reason`` is ``"tool_calls"``:

        ```python
        for chunk in llm.stream("Weather in Paris?"):
            print(repr(chunk.content), chunk.tool_call_chunks)
        ```

        ```text
        'I will c' []
        'heck.\n' []
        '' [{'name': 'get_weather', 'args': '{"city": "Paris"}', 'id': 'call_6db4...', ...}]
        '' []
        ```

        A call that cannot be used (broken JSON, unknown tool, arguments that do not match
        the schema) goes to ``invalid_tool_calls`` (with the reason in ``error``) on
        ``invoke``'s message. Streams leave it out: LangChain rebuilds
        ``invalid_tool_calls`` from the chunks and would lose the reason, and an agent must
        not run it. Works with LangGraph's ``create_react_agent`` (see
        ``examples/react_agent.py``).

    Structured output:
        ``with_structured_output(schema, method="json_schema" | "json_mode" |
        "function_calling", include_raw=False, strict=None)`` takes a Pydantic class, a
        TypedDict or a JSON schema. The model is asked for JSON (or, with
        ``function_calling``, for one call to a tool made from the schema); the reply is
        validated against the schema (and by Pydantic), and a reply that does not fit gets
        one repair turn in the same chat that quotes the problems. If the repaired reply
        does not fit either, a :class:`~langchain_hailuo.StructuredOutputError` (an
        ``OutputParserException``) is raised, or reported as ``parsing_error`` with
        ``include_raw=True``. ``strict`` is accepted; validation always applies.

        ```python
        from pydantic import BaseModel, Field


        class Person(BaseModel):
            "A person."

            name: str = Field(description="The person's name")
            age: int = Field(description="Age in years")


        model.with_structured_output(Person).invoke("Who wrote the first program?")
        ```

        ```python
        Person(name="Ada Lovelace", age=36)
        ```

        With ``include_raw=True`` (here after a first reply with ``"age": "thirty-six"``,
        answered by the repair turn ``- $.age: expected integer, got string
        "thirty-six"``):

        ```python
        {
            "raw": AIMessage(content='{"name": "Ada Lovelace", "age": 36}', ...),
            "parsed": Person(name="Ada Lovelace", age=36),
            "parsing_error": None,
        }
        ```

    Image input:
        MiniMax Agent protocol only; bytes are uploaded (once per account), http(s) image
        URLs are passed for the service to fetch. Files (``{"type": "file", ...}``, PDFs,
        text, anything up to ``max_attachment_bytes``) work the same way.

        ```python
        from langchain_core.messages import HumanMessage

        message = HumanMessage(
            content=[
                {"type": "text", "text": "Describe the weather in this image"},
                {"type": "image", "base64": image_data, "mime_type": "image/jpeg"},
            ]
        )
        model.invoke([message]).text
        ```

        ```python
        "The image shows a clear blue sky over a beach; it looks sunny and calm."
        ```

    Response metadata:
        ``model_provider`` (``"hailuo"``), ``model_name``, ``protocol``, ``chat_id``,
        ``character_id`` (v4 character or Agent agent id), ``msg_id``, ``title`` (new chats,
        when the server names them), ``account`` (a short fingerprint, never the token),
        ``history_hash``, ``tools_hash`` (with tools or structured output: a short hash of
        the instructions in effect, so they are re-sent only when they change) and
        ``finish_reason`` (``"tool_calls"`` when the answer called tools).
        ``AIMessage.id`` is ``"hailuo-<msg_id>"`` (unique per answer; a random id when the
        server sent none), never the chat id.
        ``usage_metadata`` is set only when the service reports token counts.

    Errors:
        Every failure is a typed :class:`HailuoError`, raised as is: ``HailuoAuthError``
        (no, expired or rejected token; says to run ``hailuo login``),
        ``HailuoRateLimitError``, ``HailuoQuotaError``, ``HailuoSessionBusyError``,
        ``HailuoTimeoutError``, ``HailuoStreamInterruptedError`` (carries
        ``partial_text`` and ``chat_id``), ``HailuoUnsupportedContentError`` (audio,
        video, a provider file id; on v4 any image or file), ``HailuoAttachmentError`` (an
        unreadable or too large file), ``HailuoUploadError`` (the service refused an
        upload), ``HailuoConfigurationError``, ``HailuoToolChoiceError`` (a forced
        ``tool_choice`` ignored twice). An empty message list raises
        ``ValueError``. No error, log line, trace or metadata ever holds the token.

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
    """The call's deadline in seconds (default 300): waiting for the account's other calls,
    retries and ``Retry-After`` waits, and the whole answer all fit inside it.

    Connecting, waiting for the first byte and silences inside the stream have their own
    shorter limits. ``None`` uses the providers' defaults (10 minutes in total). Zero,
    negative, NaN or infinite values are refused when the model is built.
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
    ``api_prefix``, ``agent_role``, ``region``. v4: ``lang``, ``version_code``, ``biz_id``,
    ``app_id``. Keys meant for the other protocol are ignored. ``Emulator.model_kwargs()``
    fills it for offline tests.
    """

    max_attachment_bytes: int = Field(default=DEFAULT_MAX_ATTACHMENT_BYTES, ge=0)
    """The largest file or image one message may carry (default 100 MB, the web client's
    own limit), checked before anything is uploaded. Files and images (LangChain ``image``
    / ``file`` blocks, OpenAI ``image_url``) are sent on the MiniMax Agent protocol only;
    ``provider_settings={"upload_store": ...}`` shares the record of uploads (an
    ``agent.upload.UploadStore``) beyond the process.
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

    accounts: list[AccountSpec] | None = Field(default=None, repr=False, exclude=True)
    """Several accounts to spread calls over (a pool; ``None``: one account, as set above).

    Tokens, :class:`~langchain_hailuo.types.AuthResult` s, auth files, or a folder of auth
    files (a single path may be given alone). Defaults to env ``HAILUO_TOKENS``
    (comma-separated) or ``HAILUO_ACCOUNTS_DIR`` when no ``token`` / ``HAILUO_TOKEN`` is
    set. A continued conversation stays on the account that owns its chat; a new chat
    goes to the least-loaded healthy account; each account streams at most
    ``max_concurrency`` answers at once. Hidden from reprs and dumps.
    """

    pool_url: str | None = Field(
        default_factory=from_env(ENV_POOL_URL, default=None), repr=False, exclude=True
    )
    """``redis://host:port/db`` (env ``HAILUO_POOL_URL``): keep the pool's leases and
    cool-downs in Redis, shared by every process and host using the same URL (needs the
    ``langchain-hailuo[redis]`` extra). With one account, it keeps processes that share
    it from streaming on it at once. Hidden from reprs and dumps (it may hold a password).
    """

    lease_ttl: float = Field(default=30.0, gt=0)
    """With ``pool_url``: seconds a lease outlives its last renewal (renewed every third of
    it while an answer streams), so a worker that dies frees its account within it."""

    quota_cooldown: float = Field(default=3600.0, ge=0)
    """With a pool: seconds an account rests after a quota wall (the service does not say
    when credits return; it is tried again after this long)."""

    _provider_factory: ProviderFactory | None = PrivateAttr(default=None)
    _auth_manager: AuthManager | None = PrivateAttr(default=None)
    _providers: dict[str, _Provider] = PrivateAttr(default_factory=dict)
    _clients: dict[Protocol, Any] = PrivateAttr(default_factory=dict)
    _pool: AccountPool | None = PrivateAttr(default=None)
    _pool_checked: bool = PrivateAttr(default=False)
    _own_pool: AccountPool | None = PrivateAttr(default=None)

    @field_validator("accounts", mode="before")
    @classmethod
    def _accounts_as_list(cls, value: Any) -> Any:
        """A single path stands for a pool folder; plain-string tokens become secrets."""
        if value is None:
            return None
        if isinstance(value, str | Path):
            value = [Path(value)]
        return [as_account_spec(item) for item in value]

    def __init__(self, **kwargs: Any) -> None:
        """Create the model (see the class docstring for the settings).

        Raises:
            HailuoConfigurationError: A setting that cannot work: a timeout that is zero,
                negative, NaN or infinite; a ``base_url`` / ``stream_url`` with a query or
                fragment; a token holding a control character.
        """
        super().__init__(**kwargs)
        _check_settings(self)

    def __getstate__(self) -> dict[Any, Any]:
        """The model's state without its runtime parts (sessions, locks, the auth cache).

        A copy or an unpickled model rebuilds them on first use, so a model that has
        answered can still be deep-copied and pickled (LangChain and LangGraph do both).
        """
        state = super().__getstate__()
        private = dict(state.get("__pydantic_private__") or {})
        private.update(_auth_manager=None, _providers={}, _clients={}, _own_pool=None)
        return {**state, "__pydantic_private__": private}

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        """A deep copy without the runtime parts (see :meth:`__getstate__`)."""
        clone = type(self).__new__(type(self))
        clone.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        return clone

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
        """LangSmith params: provider ``hailuo``, the per-call model (no ignored controls)."""
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

    # ------------------------------------------------------------------ tools

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: ToolChoice = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools: they are described to the model, and its calls are read back.

        The web chat has no native tool calling, so the tools are rendered into an
        instruction block sent at the start of a chat (and again only when the bound tools
        or the choice change), and the answer is parsed into ``tool_calls`` (see "Tool
        calling" in the class docstring).

        Args:
            tools: LangChain tools, functions, Pydantic classes, TypedDicts, JSON schemas or
                OpenAI tool dicts (anything ``convert_to_openai_tool`` takes).
            tool_choice: ``None`` / ``"auto"`` (call when useful), ``"any"`` /
                ``"required"`` / ``True`` (at least one call), a tool name (that tool),
                ``"none"`` / ``False`` (no call), or the OpenAI / Anthropic dict forms. A
                forced choice the model does not follow gets one corrective turn in the same
                chat, then :class:`~langchain_hailuo.errors.HailuoToolChoiceError`.
            **kwargs: More call arguments to bind.

        Returns:
            The model with ``tools`` and the normalised ``tool_choice`` bound.

        Raises:
            ValueError: ``tool_choice`` names no bound tool, or forces a call without tools.
        """
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        names = [str(tool["function"]["name"]) for tool in formatted]
        choice = normalize_tool_choice(tool_choice, names)
        if not formatted and choice not in {"auto", "none"}:
            raise ValueError(f"tool_choice={choice!r} forces a tool call, but no tools are bound.")
        return self.bind(tools=formatted, tool_choice=choice, **kwargs)

    def with_structured_output(
        self,
        schema: Mapping[str, Any] | type | None = None,
        *,
        method: StructuredMethod = "json_schema",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """A runnable that answers in the schema's structure, checked and repaired once.

        The model is asked for the structure in words (see "Structured output" in the class
        docstring); the reply is validated against the schema, and a reply that does not
        fit gets one repair turn in the same chat. The parser raises a
        :class:`~langchain_hailuo.StructuredOutputError` (an ``OutputParserException``) if
        the repaired reply does not fit either.

        Args:
            schema: A Pydantic class (the result is an instance), a TypedDict or a JSON
                schema (the result is a dict). Optional for ``json_mode`` only.
            method: ``"json_schema"`` (default: reply with JSON matching the schema),
                ``"json_mode"`` (reply with a JSON object; the schema, when given, is shown
                and checked), or ``"function_calling"`` (call a tool made from the schema).
            include_raw: Return ``{"raw": AIMessage, "parsed": ..., "parsing_error": ...}``
                instead of raising on a reply that does not fit.
            strict: Accepted for compatibility; the reply is always validated.
            **kwargs: Not supported (raises).

        Returns:
            The runnable.

        Raises:
            ValueError: Unknown method or arguments, or no schema where one is needed.
        """
        if kwargs:
            raise ValueError(f"Received unsupported arguments {sorted(kwargs)}.")
        if method not in _STRUCTURED_METHODS:
            raise ValueError(
                f"Unknown method {method!r}; use one of {', '.join(_STRUCTURED_METHODS)}."
            )
        if schema is None and method != "json_mode":
            raise ValueError(f"with_structured_output(method={method!r}) needs a schema.")
        spec = StructuredSpec(method, _json_schema_of(schema), schema)
        llm = self.bind(
            ls_structured_output_format={
                "kwargs": {"method": method, "strict": strict},
                "schema": schema,
            },
            **{STRUCTURED_KWARG: spec},
        )
        parser = RunnableLambda(spec.parse_message, name="HailuoStructuredOutputParser")
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        failed = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([failed], exception_key="parsing_error")

    # ------------------------------------------------------------------ LangChain hooks

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """Stream one answer: one chunk per delta, then the last chunk with the metadata."""
        turn = self._turn(messages, stop, self._run_override(run_manager, kwargs), kwargs)
        async with aclosing(self._achunks(turn)) as chunks:
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
        turn = self._turn(messages, stop, self._run_override(run_manager, kwargs), kwargs)
        for chunk in get_runner().iterate(self._achunks(turn)):
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

    async def alist_models(self) -> list[str]:
        """The model ids the account offers (its login's list, else the provider's known ids).

        With an account pool: every id any of its accounts offers, in order.

        Returns:
            The ids, as ``hailuo serve`` lists them on ``GET /v1/models``.

        Raises:
            HailuoAuthError: No credentials.
        """
        offered: list[str] = []
        for account in await self._lease_pool().accounts():
            auth = await account.auth()
            offered.extend(auth.models or await self._account_models(auth, account))
        return list(dict.fromkeys(offered)) or [self.model]

    async def _account_models(self, auth: AuthResult, account: PoolAccount) -> list[str]:
        """The ids an account's provider learns from the service (else the ids it knows)."""
        provider = self._get_provider(self._resolve_protocol(auth), account)
        known = [str(name) for name in getattr(provider, "models", None) or [self.model]]
        ask = getattr(provider, "account_models", None)
        if ask is None:  # a test's fake provider
            return known
        try:
            return list(await ask(auth))
        except HailuoAuthError:
            raise
        except HailuoError as exc:
            logger.warning(
                "Could not read the account's model list (%s); listing the known ids.",
                type(exc).__name__,
            )
            return known

    # ------------------------------------------------------------------ lifecycle

    async def aclose(self) -> None:
        """Close the HTTP sessions the providers opened on the running event loop.

        Sessions of the private loop used by the sync methods are closed by :meth:`close`
        or at interpreter exit.
        """
        for provider in list(self._providers.values()):
            await provider.aclose()
        for pool in (self._pool, self._own_pool):
            if pool is not None:
                await pool.aclose()

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

    @property
    def pool(self) -> AccountPool | None:
        """The account pool (``accounts=`` / ``pool_url=``), or ``None`` for one account.

        ``model.pool.status()`` lists each account's streams in flight, cool-down, last
        error and answers served.
        """
        return self._get_pool()

    def _get_pool(self) -> AccountPool | None:
        """The pool, created on first use (no I/O), or ``None`` when there is one account."""
        with _INIT_GUARD:
            if self._pool_checked:
                return self._pool
        specs: list[Any] | None = list(self.accounts) if self.accounts is not None else None
        if specs is None and self.token is None:
            specs = pool_specs_from_env()
        if specs is None and self.pool_url:
            specs = [self._get_auth_manager()]  # one account, shared through Redis
        with _INIT_GUARD:
            if not self._pool_checked:
                if specs is not None:
                    self._pool = AccountPool(
                        specs,
                        pool_url=self.pool_url,
                        max_concurrency=self.max_concurrency,
                        lease_ttl=self.lease_ttl,
                        health=HealthSettings(quota_cooldown=self.quota_cooldown),
                        base_url=self.base_url,
                    )
                self._pool_checked = True
            return self._pool

    def _lease_pool(self) -> AccountPool:
        """The pool every call leases from: :attr:`pool`, else the model's own pool of one."""
        pool = self._get_pool()
        if pool is not None:
            return pool
        manager = self._get_auth_manager()
        with _INIT_GUARD:
            if self._own_pool is None:  # no cool-down: the next call tries the account again
                self._own_pool = AccountPool(
                    [manager],
                    max_concurrency=self.max_concurrency,
                    base_url=self.base_url,
                    records=False,
                )
            return self._own_pool

    async def _seat(self, turn: _Turn, account: PoolAccount) -> _Seat:
        """The account as this call uses it; decided again only if its login was renewed."""
        # Read again after a wait for the lease: another call may have renewed the token.
        auth = await account.auth()
        seat = turn.seats.get(account.name)
        if seat is None or seat.auth is not auth:
            seat = turn.seats[account.name] = _Seat(account, auth, self._resolve_protocol(auth))
        return seat

    async def _pool_owner(self, pool: AccountPool, turn: _Turn) -> str | None:
        """The pool account whose chat this call continues (``None``: a new chat)."""
        # An explicit conversation names its account, else the history's newest pool answer
        # does; the owner's plan decides (an edited history starts a new chat, anywhere).
        accounts = await pool.accounts()
        names = pool.names
        first = await self._seat(turn, accounts[0])
        given = conversation_from_value(turn.override, first.protocol)
        answers = turn.call.answers
        if given is None:
            owner = answers.owner(names)
        elif given.account is not None:
            owner = given.account if given.account in names else None
        else:
            owner = answers.owner(names, given.chatID) or (
                accounts[0].name if len(accounts) == 1 else None
            )
            if owner is None:
                raise HailuoConfigurationError(
                    f"Chat {given.chatID} was given by its id alone, and with several accounts "
                    "its account is unknown. Pass the answer's response_metadata (or a "
                    "Conversation with its account) instead."
                )
        account = pool.account(owner) if owner is not None else None
        if account is None:
            return None
        if self._plan(turn, await self._seat(turn, account)).conversation is None:
            return None
        return account.name

    def _build_provider(self, protocol: Protocol, auth_manager: AuthManager) -> _Provider:
        """The real provider of ``protocol`` (imported on first use)."""
        settings: dict[str, Any] = {
            **self.provider_settings,
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "proxy": self.proxy,
        }
        shared = self._clients.get(protocol)
        if shared is not None:
            settings["client"] = shared
        provider = build_provider(
            protocol,
            base_url=self.base_url,
            stream_url=self.stream_url,
            auth_manager=auth_manager,
            settings=settings,
        )
        self._clients.setdefault(protocol, provider.client)
        return cast("_Provider", provider)

    def _get_provider(self, protocol: Protocol, account: PoolAccount) -> _Provider:
        """The provider of ``protocol`` for one account of the pool."""
        key = f"{protocol}:{account.name}"
        with _INIT_GUARD:
            provider = self._providers.get(key)
            if provider is None:
                factory = self._provider_factory or self._build_provider
                if not self._providers:
                    weakref.finalize(self, _close_providers_later, self._providers)
                provider = self._providers[key] = factory(protocol, account.manager)
                get_runner().track(provider)
            return provider

    def _resolve_protocol(self, auth: AuthResult) -> Protocol:
        """The protocol to speak: the field, or ``auto`` resolved from the origin / login."""
        return protocol_of_account(auth, self.base_url, self.protocol)

    def _plan(self, turn: _Turn, seat: _Seat) -> TurnRequest:
        """The call's plan on one account (:func:`~langchain_hailuo._turns.plan`), made once."""
        if seat.plan is not None:
            return seat.plan
        request = seat.plan = _turns.plan(
            turn.call,
            tools=turn.tools,
            account=seat.auth.account_fingerprint,
            protocol=seat.protocol,
            override=turn.override,
            use_history=self.use_previous_chat_id,
        )
        logger.debug(
            "ChatHailuo call: protocol=%s account=%s plan=%s chat=%s tools=%d",
            seat.protocol,
            seat.auth.account_fingerprint,
            request.reason,
            request.conversation.chatID if request.conversation else None,
            len(turn.tools.tools),
        )
        return request

    def _turn(
        self,
        messages: Sequence[BaseMessage],
        stop: list[str] | None,
        override: Any,
        kwargs: Mapping[str, Any],
    ) -> _Turn:
        """Map the call's messages once (the planner's first half)."""
        call = _turns.render_call(messages, max_attachment_bytes=self.max_attachment_bytes)
        check_encodable(call.dicts)  # a lone surrogate: a typed error before any request
        unknown = sorted(set(kwargs) - _CALL_KWARGS - {STRUCTURED_KWARG})
        if unknown:
            logger.debug("ChatHailuo ignores call arguments %s", unknown)
        timeout = checked_timeout(kwargs.get("timeout"))  # the model's own was checked at init
        options = _Options(
            model=str(kwargs.get("model") or self.model),
            stop=stop if stop is not None else self.stop,
            timeout=timeout,
            max_retries=kwargs.get("max_retries"),
            reasoning=kwargs.get("reasoning", self.reasoning),
            deadline=_call_deadline(self.timeout if timeout is None else timeout),
        )
        return _Turn(call, override, TurnTools.from_kwargs(kwargs), options)

    async def _achunks(self, turn: _Turn) -> AsyncGenerator[ChatGenerationChunk, None]:
        """The one answer loop: a lease on a pool account (a single account is a pool of one)."""
        pool = self._lease_pool()
        owner = await self._pool_owner(pool, turn)
        tried: list[str] = []
        last: HailuoError | None = None
        while True:
            name: str | None = None
            answer: Answer | None = None
            within = max(0.0, turn.options.deadline - time.monotonic())
            try:
                async with pool.lease(owner, within=within, exclude=tried) as lease:
                    name = lease.account.name
                    seat = await self._seat(turn, lease.account)
                    answer = turn.answer = self._answer_on(seat, turn)
                    async with aclosing(answer.stream()) as chunks:
                        async for chunk in chunks:
                            yield chunk
            except HailuoNoAccountAvailableError as exc:
                if pool is self._own_pool:  # one account: its wait for the account timed out
                    raise HailuoTimeoutError(_BUSY_ACCOUNT) from None
                if last is not None:
                    raise exc from last
                raise
            except _FAILOVER_ERRORS as exc:
                # a new chat moves to the next account before its first byte (a model's own
                # account has none: its failure is the call's)
                started = answer is not None and answer.started
                if pool is self._own_pool or owner is not None or name is None or started:
                    raise
                tried.append(name)
                last = exc
                if len(pool.names) > len(tried):  # a pool of one has no next account to name
                    logger.warning(
                        "A new chat failed on pool account %s before its first byte (%s); "
                        "trying the next account.",
                        name,
                        type(exc).__name__,
                    )
                continue
            return

    def _answer_on(self, seat: _Seat, turn: _Turn) -> Answer:
        """The answer of a call on one leased account (nothing is sent before it is streamed)."""
        return Answer(
            self._get_provider(seat.protocol, seat.account),
            self._plan(turn, seat),
            auth=seat.auth,
            model=turn.options.model,
            protocol=seat.protocol,
            tools=turn.tools,
            stop=turn.options.stop,
            call_kwargs=turn.options.turn_kwargs(seat.protocol),
        )

    async def _acollect(
        self,
        messages: Sequence[BaseMessage],
        stop: list[str] | None,
        override: Any,
        kwargs: Mapping[str, Any],
    ) -> ChatResult:
        """The whole answer as a :class:`ChatResult` (see :meth:`Answer.result_of`)."""
        turn = self._turn(messages, stop, override, kwargs)
        chunks: list[ChatGenerationChunk] = []
        async for chunk in self._achunks(turn):
            chunks.append(chunk)
            if len(chunks) > _MERGE_EVERY:  # one chunk per delta would cost ~2 KB each
                chunks = [_fold(chunks)]
        if turn.answer is None:  # pragma: no cover - a finished stream always made one
            raise RuntimeError("no answer was streamed")
        return turn.answer.result_of(chunks)
