"""One place that decides the HTTP status of every failure ``hailuo serve`` reports.

:func:`api_error` maps typed errors (and the server's own refusals) to an :class:`ApiError`:
a status, a neutral kind and a message, which each API module renders in its own shape.
Messages never hold a token: the typed errors are written without one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from langchain_hailuo._http import provably_unsent
from langchain_hailuo._structured import StructuredOutputError
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoConfigurationError,
    HailuoError,
    HailuoNoAccountAvailableError,
    HailuoPoolUnavailableError,
    HailuoQuotaError,
    HailuoRateLimitError,
    HailuoSessionBusyError,
    HailuoTimeoutError,
    HailuoToolChoiceError,
    HailuoUnsupportedContentError,
)

__all__ = ["ApiError", "ErrorKind", "api_error", "bad_request", "request_messages"]

ErrorKind = Literal[
    "invalid_request",
    "authentication",
    "not_found",
    "too_large",
    "rate_limit",
    "quota",
    "busy",
    "upstream",
    "timeout",
    "overloaded",
]


@dataclass(frozen=True)
class ApiError(Exception):
    """A failure to report to an API client.

    Attributes:
        status: The HTTP status.
        kind: What went wrong, in terms both APIs have a type for.
        message: What happened and what to do.
        retry_after: Seconds the client should wait (sent as ``Retry-After``).
        retry: Whether the client may send the request again (``False`` adds
            ``x-should-retry: false``, which both official SDKs honour).
        param: The request field at fault, when one is.
    """

    status: int
    kind: ErrorKind
    message: str
    retry_after: float | None = None
    retry: bool = False
    param: str | None = None

    def __str__(self) -> str:
        """The message."""
        return self.message

    def headers(self) -> dict[str, str]:
        """The headers that go with the error response."""
        headers: dict[str, str] = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        if not self.retry:
            headers["x-should-retry"] = "false"
        return headers


def bad_request(message: str, param: str | None = None) -> ApiError:
    """A 400 for a request this server cannot take."""
    return ApiError(400, "invalid_request", message, param=param)


def request_messages(body: Any) -> list[Any]:
    """The ``messages`` of a request body (both APIs): a non-empty list, or a 400."""
    if not isinstance(body, Mapping):
        raise bad_request("The request body must be a JSON object.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty list.", "messages")
    return messages


def _unsent(error: HailuoError) -> bool:
    """Whether the message provably did not reach the service (and no answer came back)."""
    answered = error.may_have_arrived or error.partial_text or error.partial_reasoning
    return provably_unsent(error) and not answered


def api_error(error: BaseException) -> ApiError:  # noqa: C901, PLR0911 - one return per kind
    """The API error for an exception raised while answering.

    Only failures that provably did not send the message (the service's 429 or busy 409, a
    connection that failed before writing, no pool account or Redis) invite a retry, so a
    client's own retries never post a message twice. Unknown exceptions become a 502 without
    their text (it may come from deep inside a library); the caller logs them.
    """
    if isinstance(error, ApiError):
        return error
    if isinstance(error, HailuoNoAccountAvailableError):
        # Every pool account is busy or resting: the server is overloaded, not the caller.
        return ApiError(
            503, "overloaded", error.message, retry_after=error.retry_after or 1.0, retry=True
        )
    if isinstance(error, HailuoPoolUnavailableError):
        # The pool's Redis is down: this server cannot pick an account, nothing was sent.
        return ApiError(503, "overloaded", error.message, retry_after=1.0, retry=True)
    if isinstance(error, HailuoRateLimitError):
        return ApiError(
            429,
            "rate_limit",
            error.message,
            retry_after=error.retry_after or 1.0,
            retry=_unsent(error),
        )
    if isinstance(error, HailuoQuotaError):
        return ApiError(429, "quota", error.message)
    if isinstance(error, HailuoSessionBusyError):
        return ApiError(409, "busy", error.message, retry_after=1.0, retry=_unsent(error))
    if isinstance(error, HailuoAuthError):
        # The server's own Hailuo login was refused: not the caller's API key (that is a 401).
        return ApiError(
            502,
            "upstream",
            "The Hailuo / MiniMax login of this server was rejected; the operator must run "
            "`hailuo login` (or set HAILUO_TOKEN) and restart `hailuo serve`, or, for a pool "
            "account, `hailuo login --add NAME` (picked up without a restart).",
        )
    if isinstance(error, HailuoTimeoutError):
        return ApiError(504, "timeout", error.message)
    if isinstance(error, HailuoConfigurationError | HailuoUnsupportedContentError):
        return bad_request(error.message)
    if isinstance(error, HailuoToolChoiceError | StructuredOutputError):
        text = error.message if isinstance(error, HailuoError) else str(error).splitlines()[0]
        return ApiError(502, "upstream", f"The model did not answer as asked: {text}")
    if isinstance(error, HailuoError):
        # A connection that failed before writing provably sent nothing; any other failure
        # may have come after the message reached the service.
        return ApiError(502, "upstream", error.message, retry=_unsent(error))
    if isinstance(error, ValueError):
        return bad_request(str(error))
    return ApiError(502, "upstream", "The server failed to answer; see its log.")
