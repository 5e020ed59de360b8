"""One error hierarchy for everything that can go wrong talking to Hailuo / MiniMax Agent.

Every error says what happened and what to do, and never holds the token. Text streamed
before a failure is never lost: every error carries ``partial_text`` (and ``chat_id`` once
the server assigned one). ``retryable`` (R) errors may go away on a resend before the
first byte::

    HailuoError
      HailuoConfigurationError, HailuoUnsupportedContentError, HailuoAttachmentError (ValueError)
      HailuoToolChoiceError, HailuoStreamInterruptedError
      HailuoAuthError > HailuoTokenExpiredError, HailuoLoginError
                          > HailuoLoginTimeoutError, HailuoBrowserUnavailableError
      HailuoRateLimitError (R) > HailuoRiskControlError (not R)
      HailuoServerError (R on 5xx) > HailuoQuotaError > HailuoNoPlanError,
          HailuoSessionBusyError (R), HailuoUploadError, HailuoConnectionError (R)
      HailuoProtocolError > HailuoRedirectError, HailuoResponseTooLargeError
      HailuoTimeoutError (R, TimeoutError) > HailuoStallError
      HailuoNoAccountAvailableError (R), HailuoPoolUnavailableError (R)
"""

from __future__ import annotations

import time
from typing import TypedDict

from typing_extensions import Unpack

__all__ = [
    "HailuoAttachmentError",
    "HailuoAuthError",
    "HailuoBrowserUnavailableError",
    "HailuoConfigurationError",
    "HailuoConnectionError",
    "HailuoError",
    "HailuoLoginError",
    "HailuoLoginTimeoutError",
    "HailuoNoAccountAvailableError",
    "HailuoNoPlanError",
    "HailuoPoolUnavailableError",
    "HailuoProtocolError",
    "HailuoQuotaError",
    "HailuoRateLimitError",
    "HailuoRedirectError",
    "HailuoResponseTooLargeError",
    "HailuoRiskControlError",
    "HailuoServerError",
    "HailuoSessionBusyError",
    "HailuoStallError",
    "HailuoStreamInterruptedError",
    "HailuoTimeoutError",
    "HailuoTokenExpiredError",
    "HailuoToolChoiceError",
    "HailuoUnsupportedContentError",
    "HailuoUploadError",
]

LOGIN_HINT = "Run `hailuo login` (or set HAILUO_TOKEN) to sign in again."


class PartialFields(TypedDict, total=False):
    """What every error may carry about the answer that was under way."""

    partial_text: str
    partial_reasoning: str
    chat_id: str | None


class HailuoError(Exception):
    """Base class of every error raised by langchain-hailuo.

    Attributes:
        message: The human-readable explanation (also ``str(error)``).
        partial_text: Answer text received before the failure (may be empty).
        partial_reasoning: Reasoning text received before the failure (may be empty).
        chat_id: The server chat / session id, when one had been assigned.
        drift: What the service sent that this version does not know, kind (its shape only,
            e.g. ``"error code 1234567"``) -> count: an upstream change worth reporting
            (``hailuo doctor`` lists it too).
    """

    retryable: bool = False
    """Whether sending the same request again may succeed (only before the first byte)."""

    may_have_arrived: bool = False
    """A chat message was sent and may have reached the server before this failure.

    It was not sent again (that could post it twice): look in the chat (``chat_id``, when
    known) before sending it once more.
    """

    def __init__(
        self,
        message: str,
        *,
        partial_text: str = "",
        partial_reasoning: str = "",
        chat_id: str | None = None,
    ) -> None:
        """Create the error: ``message`` says what happened and what to do."""
        super().__init__(message)
        self.message = message
        self.partial_text = partial_text
        self.partial_reasoning = partial_reasoning
        self.chat_id = chat_id
        self.drift: dict[str, int] = {}

    def with_partial(
        self,
        *,
        partial_text: str,
        partial_reasoning: str = "",
        chat_id: str | None = None,
    ) -> HailuoError:
        """Attach the text received so far (values already set are kept); returns ``self``."""
        self.partial_text = self.partial_text or partial_text
        self.partial_reasoning = self.partial_reasoning or partial_reasoning
        self.chat_id = self.chat_id or chat_id
        return self

    def __repr__(self) -> str:
        """Show the class and message, and how much partial text travels with it."""
        extra = f", partial_text={len(self.partial_text)} chars" if self.partial_text else ""
        return f"{type(self).__name__}({self.message!r}{extra})"


class HailuoConfigurationError(HailuoError, ValueError):
    """A setting is wrong or missing (bad URL, unknown protocol, unknown model)."""


class HailuoUnsupportedContentError(HailuoError, ValueError):
    """A message holds content the web chat cannot take (an image, audio or file block)."""


class HailuoAttachmentError(HailuoError, ValueError):
    """A file or image cannot be sent (unreadable, malformed, too large); nothing was sent."""


class HailuoToolChoiceError(HailuoError):
    """The model ignored a forced ``tool_choice`` (prompted only) even after a corrective turn.

    ``partial_text`` holds the second answer's prose, ``chat_id`` the chat.
    """


class HailuoAuthError(HailuoError):
    """The credentials are missing, expired or rejected (``status``: the HTTP status, if any)."""

    def __init__(
        self, message: str, *, status: int | None = None, **kwargs: Unpack[PartialFields]
    ) -> None:
        """Create the error, appending the login hint unless ``message`` names its own fix."""
        if "hailuo login" not in message and "HAILUO_TOKEN" not in message:
            message = f"{message} {LOGIN_HINT}"  # a message about HAILUO_TOKEN says its own fix
        super().__init__(message, **kwargs)
        self.status = status


class HailuoLoginError(HailuoAuthError):
    """The browser login could not run or did not finish (no browser, crash, bad page)."""


class HailuoLoginTimeoutError(HailuoLoginError):
    """Nobody completed the browser login within ``login_timeout`` seconds."""


class HailuoRateLimitError(HailuoError):
    """The service asked us to slow down (HTTP 429; ``retry_after``: seconds to wait, if said)."""

    retryable = True

    def __init__(
        self, message: str, *, retry_after: float | None = None, **kwargs: Unpack[PartialFields]
    ) -> None:
        """Create the error with the server's ``retry_after`` seconds."""
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class HailuoServerError(HailuoError):
    """The service answered with an error: an HTTP 5xx, or an error code inside the stream.

    ``code`` is the server's code (``statusInfo.code``, ``base_resp.status_code``, an error
    frame's) or the HTTP status, ``server_message`` its own text, ``status`` the HTTP status.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | str | None = None,
        server_message: str = "",
        status: int | None = None,
        retryable: bool | None = None,
        **kwargs: Unpack[PartialFields],
    ) -> None:
        """Create the error; ``retryable`` overrides the class default."""
        super().__init__(message, **kwargs)
        self.code = code
        self.server_message = server_message
        self.status = status
        if retryable is not None:
            self.retryable = retryable


class HailuoQuotaError(HailuoServerError):
    """The account is out of credits or quota; retrying will not help until it is topped up."""


class HailuoSessionBusyError(HailuoServerError):
    """The conversation is still answering another message (one stream per account/session)."""

    retryable = True


class HailuoUploadError(HailuoServerError):
    """The service refused a file upload, or a turn referring to one; send the message again.

    ``server_message`` is the prepare call's ``status_msg`` or the object storage's message.
    """


class HailuoProtocolError(HailuoError):
    """The service sent what this client does not understand; the message names what to fix."""


class HailuoTimeoutError(HailuoError, TimeoutError):
    """A connect, first-byte, idle-stream or total timeout ran out."""

    retryable = True


class HailuoStallError(HailuoTimeoutError):
    """The stream sent only heartbeats too long (the web client gives up after 60 s); not resent."""


class HailuoStreamInterruptedError(HailuoError):
    """The stream ended early; ``partial_text`` holds what came (never resent: no double post)."""


class HailuoNoAccountAvailableError(HailuoError):
    """No account of the pool could take the call within its timeout (the message says why).

    ``next_free_at`` is when the earliest cool-down ends (epoch seconds) and ``retry_after`` the
    seconds until then; both ``None`` when unknown (busy accounts free when an answer ends).
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        next_free_at: float | None = None,
        now: float | None = None,
        **kwargs: Unpack[PartialFields],
    ) -> None:
        """Create the error; ``now`` (default ``time.time()``) sets ``retry_after``."""
        super().__init__(message, **kwargs)
        self.next_free_at = next_free_at
        self.retry_after = (
            None
            if next_free_at is None
            else max(0.0, next_free_at - (time.time() if now is None else now))
        )


class HailuoPoolUnavailableError(HailuoError):
    """The pool's Redis could not be reached; nothing was sent. Start Redis or fix ``pool_url``."""

    retryable = True


class HailuoTokenExpiredError(HailuoAuthError):
    """The token has expired or was revoked: only a new login helps (``hailuo login``)."""


class HailuoBrowserUnavailableError(HailuoLoginError):
    """The browser login cannot run here (no ``[browser]`` extra or no display).

    ``hailuo login --token`` (the ``_token`` of a logged-in browser) needs no browser here.
    """


class HailuoNoPlanError(HailuoQuotaError):
    """The account has no active Token Plan subscription (server code ``2062``)."""


class HailuoRiskControlError(HailuoRateLimitError):
    """Risk control refused the request ("operation too often"): wait, do not retry in a loop.

    If it persists, the egress IP may be flagged: try another network.
    """

    retryable = False


class HailuoConnectionError(HailuoServerError):
    """The service could not be reached, or the connection broke before an answer came.

    ``request_sent`` ``False``: it failed before any of the request was written. The message
    never holds the URL (its query may hold the token).
    """

    retryable = True

    def __init__(
        self, message: str, *, request_sent: bool, **kwargs: Unpack[PartialFields]
    ) -> None:
        """Create the error; ``request_sent``: the request may have been written."""
        super().__init__(message, **kwargs)
        self.request_sent = request_sent


class HailuoRedirectError(HailuoProtocolError):
    """A redirect pointed where credentials must not go (``target``, no query); nothing went there.

    Only the configured origins and MiniMax's hosts get them, never over http after https.
    """

    def __init__(self, message: str, *, target: str, **kwargs: Unpack[PartialFields]) -> None:
        """Create the error for a redirect to ``target`` (its query left out)."""
        super().__init__(message, **kwargs)
        self.target = target


class HailuoResponseTooLargeError(HailuoProtocolError):
    """A line, frame or body passed ``max_line_bytes`` (a memory bound in ``provider_settings``)."""
