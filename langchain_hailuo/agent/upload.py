"""MiniMax Agent attachments: the upload pipeline and the turn's ``attachments`` entries.

Protocol notes §6.1, per file:

1. ``POST {prefix}/uploads/prepare`` on the control origin, signed like every call, with
   ``{"purpose": 1, "file_name", "mime_type", "size_bytes"}``; the answer (at the root or
   under ``data``) holds ``object_key`` and ``upload_instruction {method: POST, url,
   form_fields}``, or a ``base_resp`` error whose ``status_msg`` says why;
2. ``POST <url>`` to the object storage, ``multipart/form-data``: every form field in the
   order given, the file part (``file``) last; no token or signing headers; a bare
   **204** is success;
3. the turn carries ``{"meta": {"attachment_type": "file", "file_name", "mime_type",
   "size_bytes"}, "cloud": {"object_key"}}``.

Images given by an http(s) URL are sent as ``{"type": "image", "url", "name"}`` entries
(§6.2: the service fetches the URL); images given as bytes are uploaded like any file (the
one captured envelope). The same bytes are uploaded once per account and site
(:class:`UploadStore`: the object store tags objects with their uploader); a key the
service later refuses is dropped, so the next try uploads again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import threading
import typing
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from langchain_hailuo._attachments import Attachment
from langchain_hailuo._http import (
    HttpOptions,
    RedirectPolicy,
    origin_of,
    request_following_redirects,
    retry_before_first_byte,
)
from langchain_hailuo.agent.client import AgentClient, AgentSettings
from langchain_hailuo.errors import (
    HailuoConnectionError,
    HailuoError,
    HailuoProtocolError,
    HailuoServerError,
    HailuoUploadError,
)
from langchain_hailuo.types import AuthResult

__all__ = [
    "ATTACHMENT_PURPOSE_MESSAGE",
    "SHARED_UPLOADS",
    "MemoryUploadStore",
    "TurnAttachments",
    "UploadKey",
    "UploadStore",
    "UploadTicket",
    "Uploader",
    "cloud_entry",
    "is_refused_turn",
    "parse_prepare_answer",
    "prepare_payload",
    "storage_error",
    "url_entry",
]

logger = logging.getLogger(__name__)

ATTACHMENT_PURPOSE_MESSAGE: Final = 1
"""``purpose`` of a file attached to a chat turn (``MessageAttachment: 1``)."""
_FILE_FIELD: Final = "file"
_STORAGE_OK: Final = 204
_XML_TAG = re.compile(r"<(Code|Message)>(.*?)</\1>", re.DOTALL)
_MESSAGE_LIMIT: Final = 300
_REFUSED_TURN_STATUSES: Final = frozenset(range(400, 500)) - {401, 403, 408, 409, 429}


# --------------------------------------------------------------------------- wire shapes


def prepare_payload(attachment: Attachment) -> dict[str, Any]:
    """The prepare call's body for one file."""
    return {
        "purpose": ATTACHMENT_PURPOSE_MESSAGE,
        "file_name": attachment.name or "upload.bin",
        "mime_type": attachment.mime_type or "application/octet-stream",
        "size_bytes": attachment.size,
    }


@dataclass(frozen=True, slots=True)
class UploadTicket:
    """What the prepare call hands out: ``object_key``, storage ``url``, ordered ``form_fields``."""

    object_key: str
    url: str
    form_fields: tuple[tuple[str, str], ...]


def parse_prepare_answer(body: Mapping[str, Any], *, origin: str) -> UploadTicket:
    """The ticket of a prepare answer (root or ``data``), or a :class:`HailuoProtocolError`.

    Refused: no ``object_key``, no usable ``upload_instruction``, a method other than POST, or
    a form field named ``file``.
    """
    data = body if body.get("object_key") else body.get("data")
    data = data if isinstance(data, Mapping) else body
    key = data.get("object_key")
    instruction = data.get("upload_instruction")
    if not isinstance(key, str) or not key or not isinstance(instruction, Mapping):
        raise HailuoProtocolError(
            f"{origin} answered the upload prepare call without object_key and "
            "upload_instruction; check api_prefix and upload_prepare_path."
        )
    method = str(instruction.get("method") or "")
    url = instruction.get("url")
    fields = instruction.get("form_fields") or {}
    if method.upper() != "POST" or not isinstance(url, str) or not url:
        raise HailuoProtocolError(
            f"{origin} asked for an upload by {method or '(no method)'} to "
            f"{origin_of(url) if isinstance(url, str) and url else '(no URL)'}; only the "
            "captured POST form upload is supported."
        )
    if not isinstance(fields, Mapping) or _FILE_FIELD in fields:
        raise HailuoProtocolError(
            f"{origin} gave upload form fields this client cannot send (not an object, or "
            f"one named {_FILE_FIELD!r})."
        )
    return UploadTicket(key, url, tuple((str(k), str(v)) for k, v in fields.items()))


def storage_error(
    status: int, body: str, ticket: UploadTicket, attachment: Attachment
) -> HailuoUploadError:
    """The error (retryable for 5xx) for an object-storage answer other than 204.

    Only the storage's ``<Code>`` and ``<Message>`` are quoted, with every form field value
    (policy, signature, access key) cut out.
    """
    parts = {match.group(1): match.group(2) for match in _XML_TAG.finditer(body)}
    message = " ".join(f"{parts.get(name, '')}".strip() for name in ("Code", "Message")).strip()
    for _, value in ticket.form_fields:
        if len(value) >= 8:  # noqa: PLR2004 - short values (e.g. "200") are not secrets
            message = message.replace(value, "…")
    message = " ".join(message.split())[:_MESSAGE_LIMIT]
    said = f": {message}" if message else ""
    return HailuoUploadError(
        f"The object storage refused the upload of {attachment.name!r} "
        f"({attachment.size} bytes) with HTTP {status}{said}. The message was not sent.",
        code=status,
        server_message=message,
        status=status,
        retryable=status >= 500,  # noqa: PLR2004
    )


def cloud_entry(attachment: Attachment, object_key: str) -> dict[str, Any]:
    """The turn's entry for an uploaded file (§6.1 step 4)."""
    return {
        "meta": {
            "attachment_type": "file",
            "file_name": attachment.name,
            "mime_type": attachment.mime_type,
            "size_bytes": attachment.size,
        },
        "cloud": {"object_key": object_key},
    }


def url_entry(attachment: Attachment) -> dict[str, Any]:
    """The turn's entry for an image the service fetches by URL (§6.2)."""
    return {"type": "image", "url": attachment.url, "name": attachment.name}


def is_refused_turn(error: HailuoError) -> bool:
    """Whether a turn's error is a plain 4xx refusal of what was sent: with attachments, of them.

    401/403/408/409/429 have their own meaning (credentials, timeouts, a busy session, rate
    limits) (JCK-10 ``rejectsRequest``).
    """
    return type(error) is HailuoServerError and error.status in _REFUSED_TURN_STATUSES


# --------------------------------------------------------------------------- the cache


@dataclass(frozen=True, slots=True)
class UploadKey:
    """What makes an upload reusable: the same account and site, the same bytes and type."""

    account: str
    site: str
    sha256: str
    mime_type: str


class UploadStore(typing.Protocol):
    """Where object keys of finished uploads are kept (a pool may share one store)."""

    def get(self, key: UploadKey) -> str | None:
        """The object key of an earlier upload, if any."""
        ...

    def put(self, key: UploadKey, object_key: str) -> None:
        """Remember a finished upload."""
        ...

    def discard(self, key: UploadKey) -> None:
        """Forget an upload (its object key was refused)."""
        ...


class MemoryUploadStore:
    """An in-process :class:`UploadStore`, least recently used keys dropped first; thread-safe.

    LangChain's sync calls run on other threads' loops.
    """

    def __init__(self, max_entries: int = 4096) -> None:
        """Create an empty store remembering ``max_entries`` uploads."""
        self.max_entries = max_entries
        self._keys: OrderedDict[UploadKey, str] = OrderedDict()
        self._guard = threading.Lock()

    def get(self, key: UploadKey) -> str | None:
        """The object key of an earlier upload, if any."""
        with self._guard:
            value = self._keys.get(key)
            if value is not None:
                self._keys.move_to_end(key)
            return value

    def put(self, key: UploadKey, object_key: str) -> None:
        """Remember a finished upload."""
        with self._guard:
            self._keys[key] = object_key
            self._keys.move_to_end(key)
            while len(self._keys) > self.max_entries:
                self._keys.popitem(last=False)

    def discard(self, key: UploadKey) -> None:
        """Forget an upload."""
        with self._guard:
            self._keys.pop(key, None)

    def __len__(self) -> int:
        """How many uploads are remembered."""
        return len(self._keys)


SHARED_UPLOADS: Final = MemoryUploadStore()
"""The default store: every provider of the process shares it, so an account uploads the
same bytes once however many models use it (keys hold the account and site)."""


class _KeyedLocks:
    """One :class:`asyncio.Lock` per (event loop, key) while in use, dropped afterwards."""

    def __init__(self) -> None:
        """No lock held yet."""
        self._locks: dict[tuple[int, UploadKey], tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: UploadKey) -> AsyncIterator[None]:
        """Hold the lock of ``key`` on the running loop."""
        slot = (id(asyncio.get_running_loop()), key)
        lock, users = self._locks.get(slot, (asyncio.Lock(), 0))
        self._locks[slot] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[slot]
            if users > 1:
                self._locks[slot] = (lock, users - 1)
            else:
                del self._locks[slot]


# --------------------------------------------------------------------------- the uploader


@dataclass(frozen=True, slots=True)
class TurnAttachments:
    """The ``attachments`` ``entries`` of one turn and the upload ``keys`` they rely on.

    ``keys`` are dropped when the turn is refused; ``reused`` are those earlier turns uploaded.
    """

    entries: tuple[dict[str, Any], ...] = ()
    keys: tuple[UploadKey, ...] = ()
    reused: tuple[UploadKey, ...] = ()


class Uploader:
    """Uploads a turn's files through an :class:`AgentClient`, once per account and bytes."""

    def __init__(self, client: AgentClient, store: UploadStore | None = None) -> None:
        """Upload through ``client``'s signing and session, remembering uploads in ``store``."""
        self.client = client
        self.store: UploadStore = SHARED_UPLOADS if store is None else store
        self._locks = _KeyedLocks()

    async def prepare_turn(
        self,
        auth: AuthResult,
        attachments: Iterable[Attachment],
        *,
        settings: AgentSettings,
        options: HttpOptions,
    ) -> TurnAttachments:
        """Upload what is not uploaded yet, in order, and build the turn's entries.

        Uploads are tied to ``auth``'s account. The first failure raises and nothing further is
        sent, the turn included.

        Raises:
            HailuoUploadError: Prepare or the object storage refused a file.
            HailuoError: Other typed failures of the prepare call.
        """
        entries: list[dict[str, Any]] = []
        keys: list[UploadKey] = []
        reused: list[UploadKey] = []
        for attachment in attachments:
            if attachment.data is None:
                entries.append(url_entry(attachment))
                continue
            key = UploadKey(
                auth.account_fingerprint,
                settings.control_origin,
                attachment.sha256,
                attachment.mime_type,
            )
            object_key, known = await self._object_key(auth, attachment, key, settings, options)
            entries.append(cloud_entry(attachment, object_key))
            keys.append(key)
            if known:
                reused.append(key)
        return TurnAttachments(tuple(entries), tuple(keys), tuple(reused))

    def forget(self, keys: Sequence[UploadKey]) -> None:
        """Drop uploads the service refused, so the next turn uploads them again."""
        for key in keys:
            self.store.discard(key)

    async def _object_key(
        self,
        auth: AuthResult,
        attachment: Attachment,
        key: UploadKey,
        settings: AgentSettings,
        options: HttpOptions,
    ) -> tuple[str, bool]:
        """A file's object key (remembered, or uploaded once for concurrent turns); if reused."""
        async with self._locks.hold(key):
            known = self.store.get(key)
            if known:
                logger.debug("reusing the upload of %r (%s)", attachment.name, known)
                return known, True
            ticket = await self._prepare(auth, attachment, settings, options)
            await self._store_object(ticket, attachment, options)
            self.store.put(key, ticket.object_key)
            logger.debug("uploaded %r (%d bytes)", attachment.name, attachment.size)
            return ticket.object_key, False

    async def _prepare(
        self,
        auth: AuthResult,
        attachment: Attachment,
        settings: AgentSettings,
        options: HttpOptions,
    ) -> UploadTicket:
        """The signed prepare call; a refusal becomes :class:`HailuoUploadError`."""
        try:
            body = await self.client.request_json(
                auth,
                "POST",
                settings.prefixed(settings.upload_prepare_path),
                what="upload prepare request",
                payload=prepare_payload(attachment),
                settings=settings,
                options=options,
            )
        except HailuoServerError as exc:
            if type(exc) is not HailuoServerError:
                raise
            said = exc.server_message or exc.message
            raise HailuoUploadError(
                f"The service refused to take {attachment.name!r} ({attachment.size} bytes, "
                f"{attachment.mime_type}): {said}. The message was not sent.",
                code=exc.code,
                server_message=exc.server_message,
                status=exc.status,
                retryable=exc.retryable,
            ) from None
        return parse_prepare_answer(body, origin=settings.control_origin)

    async def _store_object(
        self, ticket: UploadTicket, attachment: Attachment, options: HttpOptions
    ) -> None:
        """POST the form (fields in order, the file last) to the storage; 204 or raise.

        Sending may take long (up to 100 MB), so the answer's wait is bounded by the total
        timeout, not the first-byte one.
        """
        data = attachment.data or b""
        timeouts = options.timeouts
        options = dataclasses.replace(
            options,
            timeouts=dataclasses.replace(
                timeouts, first_byte=timeouts.total or timeouts.first_byte
            ),
        )

        def build(_url: str) -> dict[str, Any]:
            form = aiohttp.FormData(quote_fields=False)
            for name, value in ticket.form_fields:
                form.add_field(name, value)
            form.add_field(
                _FILE_FIELD, data, filename=attachment.name, content_type=attachment.mime_type
            )
            return {"data": form}

        async def attempt() -> None:
            try:
                resp = await request_following_redirects(
                    self.client.http_session(),
                    "POST",
                    ticket.url,
                    build=build,
                    options=options,
                    policy=RedirectPolicy.for_origins(origin_of(ticket.url)),
                    what="object storage upload",
                    encoded=True,
                )
            except HailuoConnectionError as exc:  # its message never quotes the URL
                raise HailuoUploadError(
                    f"The upload of {attachment.name!r} failed: {exc.message}",
                    retryable=exc.retryable,
                ) from None
            try:
                if resp.status != _STORAGE_OK:
                    text = (await resp.content.read(16 * 1024)).decode("utf-8", "replace")
                    raise storage_error(resp.status, text, ticket, attachment)
            finally:
                resp.release()

        await retry_before_first_byte(
            attempt, options=options, what="object storage upload", sleep=asyncio.sleep
        )
