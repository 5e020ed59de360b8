"""Decoder of the MiniMax Agent turn stream: response bytes in, shared stream events out.

The message POST answers with server-sent events: ``data:{json}`` lines (a space after the
colon or not), blank lines between frames, sometimes ``event:`` lines, sometimes a final
``data:[DONE]``. Each JSON frame has a numeric ``type`` and a payload under a key named
after it (protocol notes §5.3), for example
``{"type": 6, "agent_message_chunk": {"msg_content": "He", "finish": false}}``,
``{"type": 2, "agent_message": {"role": "assistant", "msg_content": "...", "usage": {}}}``
or the heartbeat ``{"type": 10}``.

Frames are dispatched by payload key first and by ``type`` second, so a renumbered event
enum still decodes:

* ``agent_message_chunk`` (type 6): ``msg_content`` is an answer delta, ``thinking_content``
  (or ``reasoning_content``) a reasoning delta; ``finish: true`` ends the turn, and like
  the production web client the decoder uses no text of that finishing chunk (§12.3).
* ``agent_message`` (type 2): the echo of the user's prompt (dropped), the final full
  answer (only the part beyond what was already emitted counts: the text is never doubled),
  its ``usage``, or an error frame (``finish_reason: "error"``) that raises a typed error.
* anything else (heartbeats, plan and tool events): ignored.

The stream's known quirks are handled here: the final **re-send of the whole answer** as
one more chunk adds only its genuinely new suffix; a **billing wall** that arrives as
ordinary answer prose (the whole answer is exactly one of :data:`QUOTA_WALL_TEXTS`) raises
:class:`~langchain_hailuo.errors.HailuoQuotaError` - text that could still become such a
wall is held back until it cannot.

The decoder is pure (no I/O): feed it bytes cut anywhere, then call :meth:`close`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any

from langchain_hailuo._sse import (
    DEFAULT_MAX_LINE_BYTES,
    ErrorAfterEvents,
    LineBuffer,
    as_id,
    line_too_long,
    loads_json,
)
from langchain_hailuo.errors import (
    LOGIN_HINT,
    HailuoAuthError,
    HailuoError,
    HailuoNoPlanError,
    HailuoProtocolError,
    HailuoQuotaError,
    HailuoRiskControlError,
    HailuoServerError,
    HailuoStreamInterruptedError,
)
from langchain_hailuo.types import (
    AgentActivity,
    FinishReason,
    MessageId,
    Reasoning,
    StreamEvent,
    Usage,
)

__all__ = [
    "DEVICE_ID_CODE",
    "NOT_CONFIGURED_CODE",
    "QUOTA_CODES",
    "QUOTA_WALL_TEXTS",
    "REGION_REFUSED_CODE",
    "TRANSIENT_SESSION_MARKERS",
    "AgentNotConfiguredError",
    "AgentStreamDecoder",
    "drift_note",
    "drift_of_call",
    "drift_seen",
    "error_for_code",
    "find_error_code",
    "is_quota_wall",
    "is_transient_session_error",
]

logger = logging.getLogger(__name__)

TYPE_MESSAGE = 2
TYPE_CHUNK = 6
TYPE_HEARTBEAT = 10
KEY_MESSAGE = "agent_message"
KEY_CHUNK = "agent_message_chunk"

QUOTA_CODES = frozenset({"1400010161", "2056"})
"""Server codes meaning the account is out of credits or Token Plan quota."""
AUTH_CODES = frozenset({"1000021", "1022100011"})
"""Server codes meaning the token or session credential is invalid."""
NOT_CONFIGURED_CODE = "1400010501"
"""``Environment Variables not configured``: ``/config`` was never called for the account."""
DEVICE_ID_CODE = "1406011050"
"""The server's generic "internal error"; a non-numeric ``device_id`` is one known trigger."""
NO_PLAN_CODE = "2062"
"""``No active token plan subscription`` (seen on the quota endpoints, §7.2)."""
REGION_REFUSED_CODE = "30700"
"""The account's region is refused; the web app sends the page to ``status_msg`` (§12.4)."""
REGION_PAGE = "https://agent.minimax.io/region-restriction.html"
COOKIE_MISSING_CODE = "1004"
""""cookie is missing, log in again" (§12.4)."""
INVALID_PARAM_CODE = "1406010011"
RISK_CONTROL_WORDS = ("operation too often", "operation too frequent", "操作频繁", "too frequently")
"""Texts of a risk-control refusal (rate limiting by the account or the egress IP)."""

QUOTA_WALL_TEXTS: tuple[str, ...] = (
    "No conversation resources are available. Subscribe to continue.",
    "Request failed",
)
"""Billing walls that arrive as ordinary answer prose with HTTP 200 (whole answer only)."""

TRANSIENT_SESSION_MARKERS: tuple[str, ...] = ("sandbox connection error", "rpc timeout")
"""Server messages of a failed session that a new session usually fixes."""

_QUOTA_WORDS = ("not enough credits", "insufficient credit", "quota exhausted", "quota exceeded")
_CODE_KEYS = ("code", "error_code", "err_code", "errcode", "status_code", "ret_code")
_ID_KEYS = ("msg_id", "msgID", "message_id", "messageId")
_BRACKET_CODE = re.compile(r"\[(\d{3,})\]")
_LABELLED_CODE = re.compile(r"(?:code|status_code)\W{0,4}(\d{3,})", re.IGNORECASE)
_RESEND_MIN_CHARS = 16
_WALL_MAX = max(len(text) for text in QUOTA_WALL_TEXTS)
PROSE_WALL_PREFIX = "Hit a billing wall"
"""How the agent's prose billing wall starts (§7.2: "...Provider returned HTTP 402: ...")."""
_PROSE_WALL_MARKERS = ("http 402", "insufficient account credits")
_PROSE_WALL_MAX = 1000
"""A prose wall is one short message; longer text is an answer that mentions one."""


KNOWN_CODES = frozenset(
    {
        *QUOTA_CODES,
        *AUTH_CODES,
        NOT_CONFIGURED_CODE,
        DEVICE_ID_CODE,
        NO_PLAN_CODE,
        REGION_REFUSED_CODE,
        COOKIE_MISSING_CODE,
        INVALID_PARAM_CODE,
    }
)
"""Error codes the decoder has a typed error or a meaning for (§7.2, §12.4)."""

_FRAME_KEYS = frozenset(
    {
        "type", "session_id", "msg_id", "timestamp", "turn_id", "data", "base_resp", "error",
        "errorCode", "message", "session_status", KEY_CHUNK, KEY_MESSAGE,
    }
)  # fmt: skip
_PAYLOAD_KEYS = frozenset(
    {
        "role", "msg_content", "thinking_content", "reasoning_content", "finish", "finish_reason",
        "tool_calls", "msg_id", "msgID", "message_id", "messageId", "chunk_index", "msg_type",
        "timestamp", "kind", "source", "origin", "session_id", "turn_id", "usage", "error_code",
        "code", "thinking_duration_ms", "query_key", "status", "status_code", "base_resp",
    }
)  # fmt: skip
"""Fields of frames and of chunk / message payloads the decoder knows (§5.3, §12.3)."""
_PLAIN_ROLES = (None, "assistant")
_KNOWN_MSG_TYPES = frozenset({"1", "2", "3"})
_KNOWN_EVENTS = frozenset({"session_status"})
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.\-]")
_DRIFT_WARNED: set[str] = set()
_DRIFT_SEEN: dict[str, int] = {}
_CALL_DRIFT: contextvars.ContextVar[dict[str, int] | None] = contextvars.ContextVar(
    "_CALL_DRIFT", default=None
)


def _shape(name: object) -> str:
    """A field or type name as it may be logged: short, only name characters (no secret)."""
    return _SAFE_NAME.sub("?", str(name))[:40]


def drift_seen() -> dict[str, int]:
    """What this process's decoders did not know so far: kind (shape only) -> count."""
    return dict(_DRIFT_SEEN)


@contextlib.contextmanager
def drift_of_call() -> Iterator[dict[str, int]]:
    """Collect the unknown error codes of HTTP error bodies met while the block runs."""
    # A request refused with such a code and then sent again successfully still shows the code in
    # the answer's ``response_metadata["unknown_frames"]``.
    # Kind -> count, filled while the block runs (this task only).
    counts: dict[str, int] = {}
    token = _CALL_DRIFT.set(counts)
    try:
        yield counts
    finally:
        _CALL_DRIFT.reset(token)


def drift_note(error: HailuoError) -> str:
    """The sentence an error's message gets for the unknown codes in its ``drift``."""
    codes = [kind for kind in error.drift if kind.startswith("error code ")]
    if not codes:
        return ""
    return (
        f" ({', '.join(codes)} unknown to this version of langchain-hailuo: update it, or "
        "report it with `hailuo doctor --record FILE`)"
    )


def _note_drift(kind: str, counts: dict[str, int]) -> None:
    """Count an unknown kind; log it once per kind per process at WARNING (shape only)."""
    counts[kind] = counts.get(kind, 0) + 1
    _DRIFT_SEEN[kind] = _DRIFT_SEEN.get(kind, 0) + 1
    if kind not in _DRIFT_WARNED:
        _DRIFT_WARNED.add(kind)
        logger.warning(
            "MiniMax Agent: unknown %s (never shown as text); the live protocol may have "
            "changed: update langchain-hailuo, or report it with the output of "
            "`hailuo doctor --record FILE`",
            kind,
        )


def _tool_call_of(raw: Any) -> dict[str, Any] | None:
    """The agent's own tool call of a chunk's ``tool_calls[0]`` (§12.3), or ``None``."""
    if not isinstance(raw, Mapping):
        return None
    args = raw.get("tool_call_args")
    try:
        parsed = loads_json(args) if isinstance(args, str) and args else args
    except ValueError:
        parsed = args
    return {
        "id": str(raw.get("tool_call_id") or ""),
        "name": str(raw.get("tool_name") or ""),
        "input": parsed,
        "status": {1: "started", 2: "finished", 3: "failed"}.get(
            _as_int(raw.get("status")), "unknown"
        ),
        "result": raw.get("tool_call_result_data"),
    }


class AgentNotConfiguredError(HailuoServerError):
    """The account's agent environment is not initialised yet (error 1400010501)."""

    # The client answers it by calling ``/config`` and sending the request once more.


def _code_text(value: Any) -> str | None:
    """A non-zero error code as text, or ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    return text if text and text not in {"0", "0.0"} else None


def find_error_code(payload: Any, message: str = "", *, depth: int = 4) -> str | None:
    """The server error code in a frame or JSON body, or in its message text."""
    # The code as text, or ``None`` when none is found.
    if isinstance(payload, Mapping):
        for key in _CODE_KEYS:
            code = _code_text(payload.get(key))
            if code and code.lstrip("-").isdigit():
                return code
        for nested in ("base_resp", "statusInfo", "error") if depth > 0 else ():
            code = (
                find_error_code(payload.get(nested), depth=depth - 1) if nested in payload else None
            )
            if code:
                return code
    match = _BRACKET_CODE.search(message) or _LABELLED_CODE.search(message)
    return match.group(1) if match else None


def is_quota_wall(text: str) -> bool:
    """Whether a whole answer is exactly one of the billing walls."""
    # ``True`` when it equals a wall text (surrounding whitespace ignored).
    stripped = text.strip()
    if stripped in QUOTA_WALL_TEXTS:
        return True
    return (
        len(stripped) <= _PROSE_WALL_MAX
        and stripped.startswith(PROSE_WALL_PREFIX)
        and any(marker in stripped.lower() for marker in _PROSE_WALL_MARKERS)
    )


def _could_become_wall(text: str) -> bool:
    """Whether more text could still turn ``text`` into a billing wall."""
    stripped = text.lstrip()
    if len(stripped) <= _PROSE_WALL_MAX and (
        stripped.startswith(PROSE_WALL_PREFIX) or PROSE_WALL_PREFIX.startswith(stripped)
    ):
        return True
    return len(stripped) <= _WALL_MAX and any(w.startswith(stripped) for w in QUOTA_WALL_TEXTS)


def is_transient_session_error(error: BaseException) -> bool:
    """Whether an error is a session failure that a fresh session usually fixes."""
    # ``True`` for ``sandbox connection error`` / ``rpc timeout`` server errors.
    if not isinstance(error, HailuoServerError) or isinstance(error, HailuoQuotaError):
        return False
    text = f"{error.server_message} {error.message}".lower()
    return any(marker in text for marker in TRANSIENT_SESSION_MARKERS)


def error_for_code(
    code: str | None,
    server_message: str,
    *,
    what: str,
    status: int | None = None,
    device_id: str | None = None,
) -> HailuoError:
    """The typed error for a server error code and message (HTTP body or stream frame)."""
    # A code this version does not know is drift, wherever it came from: it is logged once per
    # process at WARNING (its shape only), counted for ``hailuo doctor`` and on the error's
    # ``drift``, and the message says so.
    # :class:`HailuoServerError` for 1406011050 (a generic internal error),
    # :class:`AgentNotConfiguredError`, :class:`HailuoNoPlanError` (2062),
    # :class:`HailuoQuotaError`, :class:`HailuoAuthError`, :class:`HailuoRiskControlError`
    # ("operation too often"), :class:`HailuoProtocolError` (invalid signature) or
    # :class:`HailuoServerError`.
    error = _typed_error(code, server_message, what=what, status=status, device_id=device_id)
    if code is not None and code not in KNOWN_CODES and code != str(status):
        kind = f"error code {_shape(code)}"  # (an HTTP status repeated in the body is none)
        _note_drift(kind, error.drift)
        call = _CALL_DRIFT.get()
        if call is not None:
            call[kind] = call.get(kind, 0) + 1
        error.message += drift_note(error)
        error.args = (error.message,)
    return error


def _typed_error(  # noqa: PLR0911 - one typed error per documented code
    code: str | None,
    server_message: str,
    *,
    what: str,
    status: int | None,
    device_id: str | None,
) -> HailuoError:
    """The typed error of :func:`error_for_code` (its drift not noted yet)."""
    said = f": {server_message}" if server_message else ""
    lowered = server_message.lower()
    label = f"error {code}" if code else "an error"
    if code == DEVICE_ID_CODE:
        return HailuoServerError(
            _internal_error_text(what, device_id),
            code=code,
            server_message=server_message,
            status=status,
            retryable=False,
        )
    if code == NO_PLAN_CODE or "no active token plan" in lowered:
        return HailuoNoPlanError(
            f"The account has no active Token Plan subscription ({label}{said}). Subscribe "
            "or use an account with a plan; credits alone may not cover this call.",
            code=code,
            server_message=server_message,
            status=status,
        )
    if any(word in lowered for word in RISK_CONTROL_WORDS):
        return HailuoRiskControlError(
            f"The service's risk control refused the {what} ({label}{said}). Wait several "
            "minutes before trying again and do not retry in a loop; if it persists, this "
            "network's IP may be flagged: try another network."
        )
    if code == REGION_REFUSED_CODE:
        page = server_message if server_message.startswith("https://") else REGION_PAGE
        return HailuoAuthError(
            f"The service refuses this account's region (error {code}); the web app sends "
            f"the browser to {page}. Use the site of the account's region (China accounts: "
            "https://agent.minimaxi.com) from a network in a served region.",
            status=status,
        )
    if code == COOKIE_MISSING_CODE:
        return HailuoAuthError(
            f"The {what} was refused: the service says the login cookie is missing (error "
            f"{code}). {LOGIN_HINT}",
            status=status,
        )
    if code == NOT_CONFIGURED_CODE:
        return AgentNotConfiguredError(
            f"The {what} failed with error {code} (agent environment not configured){said}",
            code=code,
            server_message=server_message,
            status=status,
            retryable=False,
        )
    if code in QUOTA_CODES or any(word in lowered for word in _QUOTA_WORDS):
        return HailuoQuotaError(
            f"The account is out of credits or quota ({label}{said}). Wait for the daily "
            "credits or top up the plan; retrying now will not help.",
            code=code,
            server_message=server_message,
            status=status,
        )
    if code in AUTH_CODES:
        return HailuoAuthError(
            f"The {what} was refused: the token is no longer valid ({label}{said}). {LOGIN_HINT}",
            status=status,
        )
    if "invalid signature" in lowered:
        return HailuoProtocolError(
            f"The {what} was rejected for an invalid signature{said}. The service may have "
            "changed how requests are signed: update langchain-hailuo, and run `hailuo doctor "
            "--record FILE` to capture what it answers."
        )
    return HailuoServerError(
        f"The {what} failed with {label}{said}",
        code=code or status,
        server_message=server_message,
        status=status,
    )


def _internal_error_text(what: str, device_id: str | None) -> str:
    """The advice for error 1406011050, naming the ``device_id`` that was sent."""
    if device_id is None:
        sent = "no device_id was sent"
    elif device_id.isdigit():
        sent = f"the device_id sent was {device_id} (numeric)"
    else:
        sent = "the device_id sent was not numeric"
    return (
        f"The {what} was refused with error {DEVICE_ID_CODE}, the server's generic "
        f"'internal error'; {sent}. Two causes are known: a device_id that is not all digits "
        "(the Agent site needs the numeric tab_device_id; unset HAILUO_DEVICE_ID to use a "
        "generated one), or the server refusing this particular request (a resource it "
        "will not serve). Retrying the same request will not help."
    )


def _as_text(value: Any) -> str:
    """A string field's value, ``""`` for anything else."""
    return value if isinstance(value, str) else ""


def _as_int(value: Any) -> int:
    """A token count as an int (0 when missing or unreadable)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def _usage_of(payload: Mapping[str, Any]) -> Usage | None:
    """The ``usage`` object of a message, when it has one."""
    usage = payload.get("usage")
    if not isinstance(usage, Mapping):
        return None
    inp, out = _as_int(usage.get("input_tokens")), _as_int(usage.get("output_tokens"))
    return Usage(inp, out, _as_int(usage.get("total_tokens")) or inp + out)


def _is_prose(payload: Mapping[str, Any]) -> bool:
    """Whether a payload's text is answer prose (not a plan event or a tool marker)."""
    msg_type = payload.get("msg_type")
    return msg_type is None or str(msg_type) == "1"


def _frame_payload(frame: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any]]:
    """Which kind of frame this is (``chunk``, ``message`` or ``None``) and its payload."""
    # payload keys win over the ``type`` number; the payload may also sit under ``data``
    chunk = frame.get(KEY_CHUNK)
    if isinstance(chunk, dict):  # the common frame
        return "chunk", chunk
    holders = [frame]
    if isinstance(frame.get("data"), Mapping):
        holders.append(frame["data"])
    for holder in holders:
        for key, kind in ((KEY_CHUNK, "chunk"), (KEY_MESSAGE, "message")):
            if isinstance(holder.get(key), Mapping):
                return kind, holder[key]
    kind_by_type = {TYPE_CHUNK: "chunk", TYPE_MESSAGE: "message"}.get(_as_int(frame.get("type")))
    data = frame.get("data")
    return kind_by_type, data if isinstance(data, Mapping) else frame


class _Text:
    """Text accepted so far, appended in pieces at a small constant cost per piece."""

    # ``str +=`` would copy the whole text per delta (quadratic): the pieces are joined
    # only when the whole text is needed, then kept joined.

    __slots__ = ("_length", "_parts")

    _COMPACT_AT = 512
    """Pieces kept before they are joined (bounds the per-piece memory)."""

    def __init__(self) -> None:
        """Start empty."""
        self._parts: list[str] = []
        self._length = 0

    def __len__(self) -> int:
        """Characters held."""
        return self._length

    def append(self, piece: str) -> None:
        """Add ``piece`` at the end."""
        self._parts.append(piece)
        self._length += len(piece)
        if len(self._parts) > self._COMPACT_AT:
            self._parts = ["".join(self._parts)]

    @property
    def value(self) -> str:
        """The whole text."""
        if len(self._parts) > 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def since(self, offset: int) -> str:
        """The text from character ``offset`` on (read from the last pieces only)."""
        need = self._length - offset
        out: list[str] = []
        for part in reversed(self._parts):
            if need <= 0:
                break
            out.append(part if len(part) <= need else part[len(part) - need :])
            need -= len(part)
        return "".join(reversed(out))


def _new_suffix(accumulated: _Text, piece: str, *, snapshot: bool) -> str:
    """The part of ``piece`` that is new, given the text already accepted."""
    size = len(accumulated)
    if not size:
        return piece
    if (
        len(piece) >= size
        and (snapshot or size >= _RESEND_MIN_CHARS)
        and piece.startswith(accumulated.value)
    ):
        return piece[size:]  # the whole text re-sent: keep only the new tail
    if snapshot:
        if len(piece) > size or not accumulated.value.startswith(piece):
            logger.debug("a full message disagreed with the streamed text; kept the streamed text")
        return ""
    return piece


class AgentStreamDecoder(ErrorAfterEvents):
    """Turns the bytes of one Agent turn into stream events.

    Attributes:
        finished: The turn ended (``FinishReason`` was emitted).
        reasoning: Reasoning text emitted so far.
        chat_id: The session id (given by the caller).
        msg_id: The answer's message id, once seen.
        usage: Token counts, once reported.
        frames: Frames other than heartbeats decoded so far (the stream made progress).
        growth: How often the answer grew (new text or reasoning, a new or changed agent
            tool call): the "generating" watchdog's measure of progress.
    """

    def __init__(
        self,
        prompt: str = "",
        *,
        chat_id: str | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        """Create a decoder for one turn."""
        self._prompt = prompt.strip()
        self._limit = max_line_bytes
        self._lines = LineBuffer(max_line_bytes)
        self._data: list[str] = []
        self._data_size = 0
        self._answer = _Text()
        self._reasoning = _Text()
        self._emitted = 0
        self._wall_ruled_out = False
        self._final_reason: str | None = None
        self.finished = False
        self.final_message = False
        self.chat_id = chat_id
        self.msg_id: str | None = None
        self.usage: Usage | None = None
        self._id_emitted = False
        self._usage_emitted = False
        self._held: str | None = None
        self.heartbeats = 0
        self.heartbeats_since_data = 0
        self.frames = 0
        self.growth = 0
        self.unknown: dict[str, int] = {}
        self.tool_calls: dict[str, dict[str, Any]] = {}
        self._activity_sent = AgentActivity()

    @property
    def text(self) -> str:
        """Answer text emitted so far (text held back as a possible billing wall excluded)."""
        return self._answer.value[: self._emitted]

    @property
    def received_text(self) -> str:
        """All answer text received, including any held back."""
        return self._answer.value

    @property
    def reasoning(self) -> str:
        """Reasoning text emitted so far."""
        return self._reasoning.value

    # ------------------------------------------------------------------ bytes and lines

    def feed(self, data: bytes) -> list[StreamEvent]:
        """Decode a chunk of the body."""
        # The events they completed (nothing once the turn has finished).
        self.raise_pending()
        events: list[StreamEvent] = []
        try:
            for line in self._lines.feed(data):
                if self.finished:
                    self._trailer_line(line)
                else:
                    self._line(line, events)
        except HailuoError as exc:
            self._hold_error(exc, events)  # hand out what came before the error first
        return events

    def trailer(self) -> list[StreamEvent]:
        """Metadata that arrived after the turn finished, not yet emitted."""
        # The service ends a turn with a ``finish: true`` chunk and then sends a type-2
        # ``agent_message`` holding the whole answer, its id and the token ``usage``. The decoder
        # emits ``FinishReason`` at the chunk; what the final message adds is collected (never any
        # text) and handed out here.
        # ``MessageId`` and ``Usage`` when they became known after ``FinishReason``.
        events: list[StreamEvent] = []
        self._emit_id(events)
        if self.usage is not None and not self._usage_emitted:
            self._usage_emitted = True
            events.append(self.usage)
        self._emit_activity(events)
        return events

    def activity(self) -> AgentActivity:
        """The agent's tool calls and the unknown kinds seen so far."""
        return AgentActivity(
            tool_calls=tuple(dict(call) for call in self.tool_calls.values()),
            unknown=tuple(sorted(self.unknown.items())),
        )

    def _emit_activity(self, events: list[StreamEvent]) -> None:
        """Emit :class:`AgentActivity` when it holds something not emitted yet."""
        activity = self.activity()
        if activity != self._activity_sent:
            self._activity_sent = activity
            events.append(activity)

    def _trailer_line(self, raw: bytes) -> None:
        """A line after the turn finished: only the final message's id and usage count."""
        line = raw.decode("utf-8", "replace")
        if not line.startswith("data:"):
            return
        frame = self._parse(line[5:].strip(), warn=False)
        if frame is None or isinstance(frame.get("type"), str):
            return
        kind, payload = _frame_payload(frame)
        if kind != "message" or str(payload.get("role", "")).lower() == "user":
            return
        if payload.get("finish_reason") == "error":
            logger.debug("ignored an error frame after the turn finished")
            return
        self.final_message = True
        self._take_id(payload, frame)
        usage = _usage_of(payload)
        if usage is not None:
            self.usage = usage

    def close(self) -> list[StreamEvent]:
        """Signal the end of the body."""
        # The last events (``FinishReason`` when a final message ended the turn).
        self.raise_pending()
        events: list[StreamEvent] = []
        rest = self._lines.flush()
        if rest is not None and not self.finished:
            self._line(rest, events)
        if not self.finished:
            self._flush_data(events)
        if not self.finished and self._final_reason is not None:
            self._finish(self._final_reason, events)
        if not self.finished:
            raise HailuoStreamInterruptedError(
                "The answer stream ended before the turn finished; the message was not sent "
                "again (that would post it twice). partial_text holds what arrived.",
                partial_text=self._answer.value,
                partial_reasoning=self.reasoning,
                chat_id=self.chat_id,
            )
        return events

    def _line(self, raw: bytes, events: list[StreamEvent]) -> None:
        """Handle one line of the body (the common one, a whole frame, in one step)."""
        if not raw:
            self._flush_data(events)
        elif (
            self._data
            or not raw.startswith(b"data:")
            or (frame := self._parse(raw[5:], warn=False)) is None
        ):
            self._text_line(raw.decode("utf-8", "replace"), events)
        else:
            self._frame(frame, events)

    def _text_line(self, line: str, events: list[StreamEvent]) -> None:
        """Handle any line: comments, other fields, ``[DONE]``, frames over several lines."""
        if not line.strip():
            self._flush_data(events)
            return
        if line.startswith(":"):
            if not self._data:
                self._heartbeat()  # a comment line keeps the stream alive (§12.3)
            return
        if not line.startswith("data:"):
            return  # event:, id:, retry:
        value = line[5:].removeprefix(" ").strip()
        if value == "[DONE]":
            self._data.clear()
            self._finish(self._final_reason or "stop", events)
            return
        if self._data:
            self._add_data(value)
            return
        frame = self._parse(value, warn=False)
        if frame is None:
            self._add_data(value)  # maybe a frame split over several data lines
        else:
            self._frame(frame, events)

    def _add_data(self, value: str) -> None:
        """Keep one line of a frame spread over several ``data:`` lines (within the limit)."""
        self._data_size += len(value) + 1
        if self._data_size > self._limit:
            raise line_too_long(self._limit)
        self._data.append(value)

    def _flush_data(self, events: list[StreamEvent]) -> None:
        """Decode a frame whose JSON spanned several ``data:`` lines."""
        if not self._data:
            return
        value = "\n".join(self._data)
        self._data.clear()
        self._data_size = 0
        frame = self._parse(value, warn=True)
        if frame is not None:
            self._frame(frame, events)

    @staticmethod
    def _parse(value: str | bytes, *, warn: bool) -> dict[str, Any] | None:
        """A JSON object, or ``None`` (with a warning when ``warn``) when it is not one."""
        try:
            frame = loads_json(value if isinstance(value, str) else value.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError too: the line is read again, leniently
            frame = None
        if isinstance(frame, dict):
            return frame
        if warn:  # its length only: server text may echo secrets
            logger.warning("skipped a malformed stream frame (%d characters)", len(value))
        return None

    # ------------------------------------------------------------------ frames

    def _frame(self, frame: Mapping[str, Any], events: list[StreamEvent]) -> None:
        """Dispatch one decoded frame."""
        if self.finished or self._plain_delta(frame, events):
            return
        frame_type = frame.get("type")
        if isinstance(frame_type, str):
            self._string_frame(frame_type, frame, events)
            return
        kind, payload = _frame_payload(frame)
        if kind is None and _as_int(frame_type) == TYPE_HEARTBEAT:
            self._heartbeat()
            return
        self._data_frame()
        self._check_fields(frame, _FRAME_KEYS, "frame")
        if kind == "chunk":
            self._check_fields(payload, _PAYLOAD_KEYS, KEY_CHUNK)
            self._chunk(payload, events, frame)
        elif kind == "message":
            self._check_fields(payload, _PAYLOAD_KEYS, KEY_MESSAGE)
            self._message(payload, events, frame)
        else:
            self._maybe_error(frame)

    def _plain_delta(self, frame: Mapping[str, Any], events: list[StreamEvent]) -> bool:
        """Take a chunk that only adds answer text, in one step (the bulk of a stream)."""
        # Only when nothing else could apply: the id is out, no billing wall or re-send is
        # pending, every field is known, and the text is shorter than the answer so far (so
        # it cannot be the whole answer re-sent); anything else takes the full dispatch.
        payload = frame.get(KEY_CHUNK)
        if not isinstance(payload, dict):
            return False
        content = payload.get("msg_content")
        if not (
            isinstance(content, str)
            and 0 < len(content) < self._emitted == len(self._answer)
            and self._id_emitted
            and self._wall_ruled_out
            and self._held is None
            and not isinstance(frame.get("type"), str)
            and frame.keys() <= _FRAME_KEYS
            and payload.keys() <= _PAYLOAD_KEYS
            and payload.get("role") in _PLAIN_ROLES
            and _is_prose(payload)
        ) or (
            payload.get("finish")
            or payload.get("finish_reason")
            or payload.get("tool_calls")
            or payload.get("thinking_content")
            or payload.get("reasoning_content")
        ):
            return False
        self._data_frame()
        self.growth += 1
        self._answer.append(content)
        self._emitted = len(self._answer)
        events.append(content)
        return True

    def _heartbeat(self) -> None:
        """Count a heartbeat (a frame or a comment line): alive, but no progress."""
        self.heartbeats += 1
        self.heartbeats_since_data += 1

    def _data_frame(self) -> None:
        """Count a frame that is not a heartbeat: the turn made progress."""
        self.frames += 1
        self.heartbeats_since_data = 0

    def _check_fields(self, holder: Mapping[str, Any], known: frozenset[str], where: str) -> None:
        """Count the fields of a frame or payload the decoder does not know (names only)."""
        if not isinstance(holder, dict) or holder.keys() <= known:
            return
        for key in holder:
            if key not in known:
                _note_drift(f"{where} field {_shape(key)!r}", self.unknown)

    def _string_frame(
        self, frame_type: str, frame: Mapping[str, Any], events: list[StreamEvent]
    ) -> None:
        """A frame whose ``type`` is a string (§12.3): heartbeat, error or a named event."""
        if frame_type == "heartbeat":
            self._heartbeat()
            return
        self._data_frame()
        if frame_type == "error":
            message = _as_text(frame.get("error")) or _as_text(frame.get("message"))
            code = _code_text(frame.get("errorCode")) or find_error_code(frame, message)
            raise self._attach(error_for_code(code, message, what="answer stream"))
        if frame_type == "session_status":
            status = frame.get("session_status")
            state = _as_text(status.get("type")) if isinstance(status, Mapping) else ""
            if state.lower() == "finished":
                self._finish(self._final_reason or "stop", events)
            elif state.lower() == "error":
                code = _code_text(status.get("error_code")) if isinstance(status, Mapping) else None
                raise self._attach(
                    error_for_code(code, "session status: Error", what="answer stream")
                )
            return
        if frame_type not in _KNOWN_EVENTS:
            _note_drift(f"event type {_shape(frame_type)!r}", self.unknown)

    def _maybe_error(self, frame: Mapping[str, Any]) -> None:
        """Raise for an unknown frame that is an error envelope; ignore other unknown frames."""
        error = frame.get("error")
        message = _as_text(error.get("message")) if isinstance(error, Mapping) else _as_text(error)
        code = find_error_code(frame, message)
        base = frame.get("base_resp")
        if isinstance(base, Mapping):
            message = message or _as_text(base.get("status_msg"))
        if message or code:
            raise self._attach(error_for_code(code, message, what="answer stream"))
        _note_drift(f"frame type {_shape(frame.get('type'))}", self.unknown)

    def _chunk(
        self, payload: Mapping[str, Any], events: list[StreamEvent], frame: Mapping[str, Any]
    ) -> None:
        """An ``agent_message_chunk``: deltas, and the end of the turn on ``finish``."""
        if str(payload.get("role", "assistant")).lower() == "user":
            return
        if payload.get("finish_reason") == "error":
            self._raise_error_frame(payload)
        self._take_id(payload, frame)
        self._note_msg_type(payload)
        held, self._held = self._held, None
        if payload.get("finish") is True:
            # The browser finishes the message here and uses none of this chunk's text
            # (§12.3); a short repeat held back was the tail re-send.
            self._finish(_as_text(payload.get("finish_reason")) or "stop", events)
            return
        self._take_tool_call(payload)
        content = _as_text(payload.get("msg_content"))
        if held is not None:
            self._add({"msg_content": held}, events, snapshot=False)
        if _is_prose(payload):
            if self._is_short_repeat(payload, content):
                self._held = content  # the re-send, if the finish chunk comes next
            else:
                self._add(payload, events, snapshot=False)

    def _note_msg_type(self, payload: Mapping[str, Any]) -> None:
        """Count a ``msg_type`` outside 1 (content), 2 (tool call), 3 (system event)."""
        msg_type = payload.get("msg_type")
        if msg_type is not None and str(msg_type) not in _KNOWN_MSG_TYPES:
            _note_drift(f"msg_type {_shape(msg_type)}", self.unknown)

    def _take_tool_call(self, payload: Mapping[str, Any]) -> None:
        """Keep the agent's own tool call of a chunk (never answer text), by its id."""
        calls = payload.get("tool_calls")
        if not isinstance(calls, list) or not calls:
            return
        call = _tool_call_of(calls[0])
        if call is None:
            return
        key = call["id"] or str(len(self.tool_calls))
        merged = {**self.tool_calls.get(key, {}), **call}
        if merged != self.tool_calls.get(key):
            self.growth += 1  # the agent's work moved on
        self.tool_calls[key] = merged

    def _is_short_repeat(self, payload: Mapping[str, Any], content: str) -> bool:
        """Whether a chunk repeats the whole (short) answer so far: a re-send or real text."""
        # The service re-sends the whole answer as the chunk before ``finish``. A short repeat
        # ("ha" after "ha") may be real text, so it waits: a ``finish`` next means re-send.
        return (
            0 < len(self._answer) == len(content) < _RESEND_MIN_CHARS
            and content == self._answer.value
            and not _as_text(payload.get("thinking_content"))
            and not _as_text(payload.get("reasoning_content"))
        )

    def _message(
        self, payload: Mapping[str, Any], events: list[StreamEvent], frame: Mapping[str, Any]
    ) -> None:
        """An ``agent_message``: the prompt's echo, the full answer, usage, or an error."""
        # A final message ends the turn: a server that never sends ``finish`` and keeps the
        # connection open still gives the whole answer at once.
        role = str(payload.get("role", "")).lower()
        content = _as_text(payload.get("msg_content"))
        if role == "user" or (
            not role and not len(self._answer) and self._prompt and content.strip() == self._prompt
        ):
            return  # the echo of our own prompt
        if payload.get("finish_reason") == "error":
            self._raise_error_frame(payload)
        self._take_id(payload, frame)
        self._note_msg_type(payload)
        usage = _usage_of(payload)
        if usage is not None:
            self.usage = usage
        if _is_prose(payload):
            self._add(payload, events, snapshot=True)
            reason = _as_text(payload.get("finish_reason"))
            if reason:
                self._final_reason = reason
                self.final_message = True
                self._finish(reason, events)

    def _take_id(self, payload: Mapping[str, Any], frame: Mapping[str, Any]) -> None:
        """Remember the answer's message id (emitted once, with the first text)."""
        if self.msg_id is not None:
            return
        for holder in (payload, frame):
            for key in _ID_KEYS:
                value = holder.get(key)
                if value is not None and (msg_id := as_id(value)):
                    self.msg_id = msg_id
                    return

    def _add(
        self, payload: Mapping[str, Any], events: list[StreamEvent], *, snapshot: bool
    ) -> None:
        """Accept a payload's reasoning and answer text (only what is new)."""
        thinking = _as_text(payload.get("thinking_content")) or _as_text(
            payload.get("reasoning_content")
        )
        content = _as_text(payload.get("msg_content"))
        new_reasoning = _new_suffix(self._reasoning, thinking, snapshot=snapshot)
        new_text = _new_suffix(self._answer, content, snapshot=snapshot)
        if new_reasoning or new_text:
            self.growth += 1
        if new_reasoning:
            self._reasoning.append(new_reasoning)
            self._emit_id(events)
            events.append(Reasoning(new_reasoning))
        if new_text:
            self._answer.append(new_text)
            self._release(events, final=False)

    def _emit_id(self, events: list[StreamEvent]) -> None:
        """Emit the message id once, before the first text or reasoning that follows it."""
        if self.msg_id is not None and not self._id_emitted:
            self._id_emitted = True
            events.append(MessageId(self.msg_id))

    def _release(self, events: list[StreamEvent], *, final: bool) -> None:
        """Emit accepted text, holding back what could still become a billing wall."""
        if not final and not self._wall_ruled_out:
            if _could_become_wall(self._answer.value):
                return
            self._wall_ruled_out = True  # more text cannot make it a wall again
        if self._emitted < len(self._answer):
            self._emit_id(events)
            events.append(self._answer.since(self._emitted))
            self._emitted = len(self._answer)

    def _finish(self, reason: str, events: list[StreamEvent]) -> None:
        """End the turn: check for a billing wall, emit held text, usage and the reason."""
        if self.finished:
            return
        answer = "" if self._wall_ruled_out else self._answer.value
        if is_quota_wall(answer):
            raise self._attach(
                HailuoQuotaError(
                    "The service answered with a billing wall instead of an answer: "
                    f"{answer.strip()!r}. The account has no conversation credits left; "
                    "wait for the daily credits or subscribe.",
                    server_message=answer.strip(),
                    code="quota_wall",
                )
            )
        self._release(events, final=True)
        self._emit_id(events)
        if self.usage is not None:
            self._usage_emitted = True
            events.append(self.usage)
        self._emit_activity(events)
        self.finished = True
        events.append(FinishReason(reason))

    def _raise_error_frame(self, payload: Mapping[str, Any]) -> None:
        """Raise the typed error of a ``finish_reason: "error"`` frame."""
        message = _as_text(payload.get("msg_content")).strip()
        code = find_error_code(payload, message)
        if not message and not code:
            raise self._attach(
                HailuoServerError(
                    "The agent ended the turn with an error and no explanation (often the "
                    "credits are used up, or a transient failure); try again later.",
                    code="error",
                )
            )
        raise self._attach(error_for_code(code, message, what="answer"))

    def _attach(self, error: HailuoError) -> HailuoError:
        """Attach the text received so far to an error; count the drift it carries."""
        for kind, count in error.drift.items():
            self.unknown[kind] = self.unknown.get(kind, 0) + count
        return error.with_partial(
            partial_text=self._answer.value, partial_reasoning=self.reasoning, chat_id=self.chat_id
        )
