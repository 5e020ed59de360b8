"""Protocol-neutral value types: auth results, conversations and stream events.

Both protocol stacks (``v4`` for the old Hailuo web chat, ``agent`` for MiniMax Agent)
decode their streams into the same events defined here, and both providers yield the
same objects, so the LangChain layer has one loop for both.

The package keeps a gpt4free-compatible interface: gpt4free's HailuoAI provider
(``create_authed``, ``on_auth_async``, its class attributes), its ``Conversation`` and its
``auth_HailuoAI.json`` work here unchanged; "gpt4free's" below refers to that interface.

Nothing here ever shows the auth token: :class:`AuthResult` keeps it as a
:class:`~pydantic.SecretStr`, and :class:`Conversation` keeps only a short account
fingerprint instead of the token.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from typing_extensions import NotRequired

__all__ = [
    "AccountSpec",
    "Attachment",
    "AttachmentKind",
    "AuthResult",
    "ChatStarted",
    "Conversation",
    "DeviceIdentity",
    "FinishReason",
    "MessageDict",
    "MessageId",
    "Protocol",
    "ProviderEvent",
    "Reasoning",
    "RequestLogin",
    "StreamEvent",
    "TitleGeneration",
    "Usage",
    "account_fingerprint",
    "decode_jwt_payload",
]

Protocol = Literal["v4", "agent"]
"""The two wire protocols: the old Hailuo web chat (gpt4free's) and the live MiniMax Agent."""


AttachmentKind = Literal["image", "file"]
"""What an attachment is sent as."""


@dataclass(frozen=True)
class Attachment:
    """One file or image of a message, ready for a protocol to send.

    Exactly one of ``data`` (the bytes, to upload) and ``url`` (a remote image the service
    fetches itself) is set.

    Attributes:
        kind: ``image`` or ``file``.
        name: The file name shown to the model (``upload.pdf``, ``image.png``).
        mime_type: The MIME type (``application/octet-stream`` when unknown).
        data: The bytes, for an upload.
        url: An http(s) URL of an image, sent by reference.
    """

    kind: AttachmentKind
    name: str
    mime_type: str
    data: bytes | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        """Check that exactly one of ``data`` and ``url`` is set."""
        if (self.data is None) == (self.url is None):
            raise ValueError("an Attachment holds either data or a url, exactly one of them")

    @property
    def size(self) -> int:
        """The byte count (0 for a URL reference)."""
        return len(self.data) if self.data is not None else 0

    @functools.cached_property
    def sha256(self) -> str:
        """The SHA-256 of the bytes, in hex (of the URL for a URL reference)."""
        payload = self.data if self.data is not None else (self.url or "").encode("utf-8")
        return hashlib.sha256(payload).hexdigest()

    def __repr__(self) -> str:
        """Name, type and size; never the bytes."""
        where = f"url={self.url!r}" if self.url else f"size={self.size}"
        return f"Attachment({self.kind}, {self.name!r}, {self.mime_type!r}, {where})"


class MessageDict(TypedDict):
    """An OpenAI/g4f-style message, as the providers take them (``role``: system/user/assistant)."""

    role: str
    content: str
    attachments: NotRequired[list[Attachment]]
    """Files and images sent with the message (the Agent protocol uploads them)."""


@dataclass(frozen=True)
class DeviceIdentity:
    """The device pair sent with every request of one account (``device_id`` and ``uuid``).

    Attributes:
        device_id: A digit string (the Agent's 8-digit ``tab_device_id``, or v4's
            registered ``deviceIDStr``).
        uuid: A v4 UUID (localStorage ``UNIQUE_USER_ID``).
        expires_at: When a registered (v4) pair should be registered again; ``None``
            for generated pairs, which are kept for good.
    """

    device_id: str
    uuid: str
    expires_at: float | None = None

    def is_stale(self, now: float | None = None) -> bool:
        """Whether a registered pair is due for a new registration."""
        return self.expires_at is not None and self.expires_at <= (
            time.time() if now is None else now
        )

    def to_dict(self) -> dict[str, Any]:
        """The auth file's form."""
        data: dict[str, Any] = {"device_id": self.device_id, "uuid": self.uuid}
        if self.expires_at is not None:
            data["expires_at"] = self.expires_at
        return data

    @classmethod
    def from_dict(cls, data: Any) -> DeviceIdentity | None:
        """Read the auth file's form (``None`` when it is not a valid pair)."""
        if not isinstance(data, dict):
            return None
        device_id, uuid = data.get("device_id"), data.get("uuid")
        if not isinstance(device_id, str) or not device_id.isdigit():
            return None
        if not isinstance(uuid, str) or not uuid:
            return None
        expires = data.get("expires_at")
        return cls(device_id, uuid, float(expires) if isinstance(expires, int | float) else None)


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class TitleGeneration:
    """The server named the chat (sent once, on a new chat)."""

    title: str


@dataclass(frozen=True, slots=True)
class ChatStarted:
    """Decoder event: the server assigned (or confirmed) the chat / session id."""

    chat_id: str


@dataclass(frozen=True, slots=True)
class Reasoning:
    """New reasoning ("thinking") text, kept apart from the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class MessageId:
    """The server's id of the answer message (``msgID`` / ``msg_id``)."""

    msg_id: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts, when the service reports them."""

    input_tokens: int
    output_tokens: int
    total_tokens: int


@dataclass(frozen=True, slots=True)
class FinishReason:
    """The answer is complete; ``reason`` is ``"stop"`` unless the server said otherwise."""

    reason: str = "stop"


@dataclass(frozen=True, slots=True)
class AgentActivity:
    """What a MiniMax Agent turn did besides answering (for ``response_metadata``).

    Attributes:
        tool_calls: The agent's own tool calls (§12.3): ``{"id", "name", "input", "status",
            "result"}`` each, in order of first appearance; never answer text.
        unknown: ``(kind, count)`` of frames, fields, event types or error codes the decoder
            does not know (their shape only): drift of the live protocol, never text.
    """

    tool_calls: tuple[dict[str, Any], ...] = ()
    unknown: tuple[tuple[str, int], ...] = ()


StreamEvent = (
    TitleGeneration
    | ChatStarted
    | str
    | Reasoning
    | MessageId
    | Usage
    | FinishReason
    | AgentActivity
)
"""What a stream decoder (``v4.stream`` / ``agent.stream``) produces (``str``: answer text)."""


@dataclass(frozen=True, slots=True)
class RequestLogin:
    """Ask a human to log in at ``login_url`` (yielded first when ``HAILUO_LOGIN_URL`` is set)."""

    label: str
    login_url: str


# --------------------------------------------------------------------------- identity


def decode_jwt_payload(token: str) -> dict[str, Any] | None:
    """Decode a JWT's payload without verifying it (we only read ``exp`` and the user id)."""
    # The payload as a dict, or ``None`` when the text is not a decodable JWT.
    parts = token.split(".")
    if len(parts) != 3:  # noqa: PLR2004 - header.payload.signature
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        data = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        return None
    return data if isinstance(data, dict) else None


@functools.lru_cache(maxsize=256)
def account_fingerprint(token: str) -> str:
    """A short, stable, non-reversible name for the account behind a token."""
    # The JWT's user id is used when present, so a renewed token of the same account keeps the same
    # fingerprint (and its conversations); otherwise the token itself is hashed. Worked out once per
    # token (every call names its account several times).
    payload = decode_jwt_payload(token) or {}
    user = payload.get("user")
    user_id = user.get("id") if isinstance(user, dict) else None
    basis = f"user:{user_id}" if user_id else f"token:{token}"
    return "acct-" + hashlib.sha256(basis.encode("utf-8")).hexdigest()[:12]


class Conversation:
    """A server-side conversation: gpt4free's ``Conversation(token, chatID, characterID=1)``.

    Unlike the original, the token is **not kept**: it is turned into a short account
    fingerprint at construction, so a conversation can be printed, logged, serialised and
    stored in message metadata safely. ``chatID`` is the v4 chat id or the Agent session id;
    ``characterID`` is the v4 character or the Agent's numeric agent id.

    Example:
        ```python
        conv = Conversation(auth.token, "242830597915504644")
        conv.get_dict()
        # {'chatID': '242830597915504644', 'characterID': 1,
        #  'account': 'acct-…', 'protocol': 'v4'}
        ```
    """

    __slots__ = ("account", "characterID", "chatID", "protocol")

    def __init__(
        self,
        token: str | SecretStr | None = None,
        chatID: str | int = "0",  # noqa: N803 - gpt4free's name
        characterID: str | int = 1,  # noqa: N803 - gpt4free's name
        *,
        account: str | None = None,
        protocol: Protocol = "v4",
    ) -> None:
        """Create a conversation handle.

        Args:
            token: The account's token; only its fingerprint is kept.
            chatID: The server chat id (v4) or session id (agent).
            characterID: The v4 character id, or the Agent's agent id.
            account: An account fingerprint, when rebuilding from a dict (wins over token).
            protocol: Which protocol this conversation lives on.
        """
        raw = token.get_secret_value() if isinstance(token, SecretStr) else token
        self.account: str | None = account or (account_fingerprint(raw) if raw else None)
        self.chatID = str(chatID)
        self.characterID = characterID
        self.protocol: Protocol = protocol

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Conversation:
        """Rebuild a conversation from :meth:`get_dict` output (or g4f's dict form).

        Args:
            data: A dict with ``chatID`` and optionally ``characterID``, ``account``,
                ``protocol``; a ``token`` key (g4f's form) is reduced to its fingerprint.

        Returns:
            The conversation.
        """
        return cls(
            data.get("token"),
            data.get("chatID", data.get("chat_id", "0")),
            data.get("characterID", data.get("character_id", 1)),
            account=data.get("account"),
            protocol=data.get("protocol", "v4"),
        )

    def get_dict(self) -> dict[str, Any]:
        """The JSON-safe form (no token), as g4f's ``JsonConversation.get_dict``."""
        return {
            "chatID": self.chatID,
            "characterID": self.characterID,
            "account": self.account,
            "protocol": self.protocol,
        }

    def belongs_to(self, auth: AuthResult) -> bool:
        """Whether this conversation was created by the account of ``auth``.

        Args:
            auth: The credentials about to be used.

        Returns:
            ``True`` when the fingerprints match (a conversation with no recorded account
            is assumed to belong to whoever continues it).
        """
        return self.account is None or self.account == auth.account_fingerprint

    def __eq__(self, other: object) -> bool:
        """Conversations are equal when all their (token-free) fields are."""
        return isinstance(other, Conversation) and self.get_dict() == other.get_dict()

    def __hash__(self) -> int:
        """Hash on the chat id and account."""
        return hash((self.chatID, self.account, self.protocol))

    def __repr__(self) -> str:
        """Show the conversation without any secret."""
        return (
            f"Conversation(chatID={self.chatID!r}, characterID={self.characterID!r}, "
            f"account={self.account!r}, protocol={self.protocol!r})"
        )


ProviderEvent = (
    TitleGeneration
    | Conversation
    | str
    | Reasoning
    | MessageId
    | Usage
    | FinishReason
    | AgentActivity
)
"""What the providers' ``create_authed`` yield (``str`` is an answer delta)."""


# Fingerprint fields read from gpt4free's ``path_and_query`` (v4 browser query).
_G4F_QUERY_FIELDS = {
    "uuid": "uuid",
    "device_id": "device_id",
    "os_name": "os_name",
    "browser_name": "browser_name",
    "cpu_core_num": "cpu_core_num",
    "browser_language": "browser_language",
    "browser_platform": "browser_platform",
    "screen_width": "screen_width",
    "screen_height": "screen_height",
    "device_memory": "device_memory",
    "lang": "lang",
}


class AuthResult(BaseModel):
    """Everything a login produced: the token, the device identity and the browser fingerprint.

    The token is a :class:`~pydantic.SecretStr`: it shows as ``**********`` in ``repr``,
    ``str`` and ``model_dump_json``. Cookies may hold the token too, so they are hidden
    from ``repr`` as well. Only :meth:`to_store_dict` (used by the 0600 auth file) reveals it.

    Also accepts gpt4free's form (``token``, ``path_and_query``,
    ``timestamp``, ``headers``, ``cookies`` as in ``auth_HailuoAI.json``): the device and
    fingerprint fields are read from that query; every request still gets a fresh query.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True, validate_assignment=True)

    token: SecretStr
    """The login JWT (localStorage ``_token``)."""
    protocol: Protocol | None = None
    """The protocol the API origin speaks, as recorded by the login (``None``: unknown)."""
    api_origin: str | None = None
    """Where the login landed (after redirects): the API origin for control calls."""
    stream_origin: str | None = None
    """Agent protocol only: the origin that streams answers (``agent-stream.<domain>``)."""
    uuid: str | None = None
    """Browser instance id (localStorage ``UNIQUE_USER_ID``)."""
    device_id: str | None = None
    """Device id: ``USER_HARD_WARE_INFO`` (v4) or the 8-digit ``tab_device_id`` (agent)."""
    user_agent: str | None = None
    """The browser's user agent."""
    cookies: dict[str, str] = Field(default_factory=dict, repr=False)
    """Cookies of the API origin (Cloudflare's included). Hidden from repr: may hold the token."""
    os_name: str | None = None
    browser_name: str | None = None
    cpu_core_num: str | None = None
    device_memory: str | None = None
    browser_language: str | None = None
    browser_platform: str | None = None
    screen_width: str | None = None
    screen_height: str | None = None
    timezone_offset: str | None = None
    """Seconds east of UTC (Agent query parameter)."""
    lang: str | None = None
    expires_at: float | None = None
    """Token expiry (seconds since the epoch), from the JWT ``exp`` when present."""
    real_user_id: str | None = None
    """Agent protocol: ``realUserID`` from ``/v1/api/user/info`` (a string: it can exceed 2^53)."""
    agent_id: str | None = None
    """Agent protocol: the numeric id of the account's ``mavis`` agent."""
    models: list[str] | None = None
    """Agent protocol: the model ids the account may use (from ``/config``)."""

    @model_validator(mode="before")
    @classmethod
    def _accept_g4f_form(cls, data: Any) -> Any:
        """Map gpt4free's ``path_and_query`` / ``headers`` form onto our fields."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        pq = data.pop("path_and_query", None)
        data.pop("timestamp", None)  # gpt4free's frozen unix: never reused
        if isinstance(pq, str) and "?" in pq:
            for key, value in parse_qsl(urlsplit(pq).query, keep_blank_values=False):
                field = _G4F_QUERY_FIELDS.get(key)
                if field and value and value not in {"null", "undefined"}:
                    data.setdefault(field, value)
        headers = data.pop("headers", None)
        if isinstance(headers, dict):
            lowered = {str(k).lower(): v for k, v in headers.items()}
            if lowered.get("user-agent"):
                data.setdefault("user_agent", lowered["user-agent"])
        for key in ("cpu_core_num", "device_memory", "screen_width", "screen_height"):
            if isinstance(data.get(key), int | float):
                data[key] = str(data[key])
        if isinstance(data.get("timezone_offset"), int | float):
            data["timezone_offset"] = str(int(data["timezone_offset"]))
        return data

    @model_validator(mode="after")
    def _fill_expiry(self) -> AuthResult:
        """Read ``exp`` from the JWT when no expiry was given."""
        if self.expires_at is None:
            payload = decode_jwt_payload(self.token.get_secret_value()) or {}
            exp = payload.get("exp")
            if isinstance(exp, int | float):
                object.__setattr__(self, "expires_at", float(exp))
        return self

    @property
    def account_fingerprint(self) -> str:
        """A short non-secret name for this account (see :func:`account_fingerprint`)."""
        return account_fingerprint(self.token.get_secret_value())

    def is_expired(self, *, skew: float = 60.0, now: float | None = None) -> bool:
        """Whether the token's ``exp`` has passed (tokens with no ``exp`` never expire here).

        Args:
            skew: Seconds of margin: a token expiring within them counts as expired.
            now: The current time (for tests); defaults to ``time.time()``.

        Returns:
            ``True`` when the token should be renewed before use.
        """
        if self.expires_at is None:
            return False
        return self.expires_at - skew <= (time.time() if now is None else now)

    def to_store_dict(self) -> dict[str, Any]:
        """The auth file's JSON form. **Reveals the token**: only the 0600 auth store calls it."""
        data = self.model_dump(mode="json", exclude_none=True)
        data["token"] = self.token.get_secret_value()
        return data


AccountSpec = SecretStr | AuthResult | Path | str
"""One account of ``ChatHailuo(accounts=...)``: a token, an ``AuthResult``, an auth file or a
folder of auth files (a ``str`` is read by ``_config.as_account_spec``)."""
