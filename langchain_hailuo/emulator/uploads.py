"""The MiniMax Agent upload pipeline (protocol notes §6.1): prepare, object storage, turn check.

- ``POST {prefix}/uploads/prepare`` on the control origin: signed and identified like
  every Agent call; the JSON body must hold ``purpose`` 1, ``file_name``, ``mime_type`` and
  ``size_bytes``. The answer holds ``object_key`` and ``upload_instruction {method: POST,
  url, form_fields}``, whose ``policy`` (base64 JSON) pins the exact size and MIME type
  and whose ``Signature`` is an HMAC over it, as an OSS PostObject policy does. A file over
  ``max_bytes`` is refused with ``base_resp`` ``{1402, "file too large"}``.
- ``POST /<bucket>`` on the storage origin (``Emulator.storage_url``): ``multipart/form-data``
  whose text fields are exactly the prepared ones, in order, and whose last part is
  ``file`` with the policy's size and content type; a good upload is answered with a bare
  204. Failures answer with an OSS-style XML error (``Code``, ``Message``, and, on a
  signature failure, ``SignatureProvided`` / ``StringToSign`` as OSS does).
- A turn's ``attachments``: every ``cloud.object_key`` must be an object this account
  stored (else 400, "attachment not found"); ``{"type": "image", "url"}`` entries need an
  http(s) URL (the service fetches it; the emulator does not). The unscripted answer names
  each attachment with its byte count and the first 12 hex digits of its SHA-256, as the
  storage received it.

Faults: ``upload_refused`` (the prepare call answers ``base_resp`` with ``status_msg``,
param ``message``), ``storage_403`` (the storage answers 403 ``AccessDenied``, param
``message``) and ``attachment_refused`` (a turn with uploaded files is answered 400
"attachment not found", as for an object the service no longer has).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final
from xml.sax.saxutils import escape

from aiohttp import web

from langchain_hailuo.emulator.core import BASE_RESP_OK, EmulatorState, Fault, error_response

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "PREPARE_REFUSED_CODE",
    "AgentUploads",
    "StoredObject",
]

DEFAULT_MAX_UPLOAD_BYTES: Final = 100 * 1024 * 1024
PREPARE_REFUSED_CODE: Final = 1402
"""``base_resp.status_code`` of a refused prepare (a stub value, as in JCK's tests)."""
BUCKET_PATH: Final = "/hailuo-agent-uploads"
_PURPOSE_MESSAGE: Final = 1
_POLICY_SECONDS: Final = 600
_HASH_PREFIX: Final = 12

Checker = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class StoredObject:
    """An object the storage accepted, with its uploader and the bytes' size and SHA-256."""

    object_key: str
    account: str
    file_name: str
    mime_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class _Ticket:
    """A prepared upload waiting for its storage POST."""

    account: str
    file_name: str
    mime_type: str
    size: int
    fields: tuple[tuple[str, str], ...]
    expires: float


def _oss_error(status: int, code: str, message: str, **extra: str) -> web.Response:
    """An OSS-style XML error document."""
    parts = [f"<Code>{escape(code)}</Code>", f"<Message>{escape(message)}</Message>"]
    parts += [f"<{name}>{escape(value)}</{name}>" for name, value in extra.items()]
    parts.append(f"<RequestId>{uuid.uuid4().hex.upper()}</RequestId>")
    body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error>' + "".join(parts) + "</Error>"
    return web.Response(status=status, text=body, content_type="application/xml")


def _prepare_problem(body: Any, max_bytes: int) -> str | None:
    """What is wrong with a prepare body, or ``None``."""
    if not isinstance(body, dict):
        return "a JSON object body is required"
    if body.get("purpose") != _PURPOSE_MESSAGE or isinstance(body.get("purpose"), bool):
        return "purpose must be 1 (MessageAttachment)"
    for name in ("file_name", "mime_type"):
        if not isinstance(body.get(name), str) or not body[name]:
            return f"{name} is required"
    size = body.get("size_bytes")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return "size_bytes must be a non-negative integer"
    if size > max_bytes:
        return "file too large"
    return None


class AgentUploads:
    """The prepare route, the object storage and the turn's attachment checks."""

    def __init__(
        self,
        state: EmulatorState,
        *,
        check: Checker,
        prefix: str,
        max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    ) -> None:
        """Serve uploads up to ``max_bytes``, checking callers with the Agent routes' ``check``."""
        self.state = state
        self._check = check
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.storage_url = ""
        self.objects: dict[str, StoredObject] = {}
        self.stored: list[StoredObject] = []
        self._tickets: dict[str, _Ticket] = {}
        self._secret = secrets.token_bytes(32)

    # ------------------------------------------------------------------ wiring

    def add_prepare_to(self, app: web.Application) -> None:
        """Register the prepare route (control origin)."""
        app.router.add_post(f"{self.prefix}/uploads/prepare", self.prepare)

    def add_storage_to(self, app: web.Application) -> None:
        """Register the object storage's POST route (storage origin)."""
        app.router.add_post(BUCKET_PATH, self.store)

    def expire(self) -> None:
        """Forget every stored object (as a lifecycle rule would); turns naming them fail."""
        self.objects.clear()

    # ------------------------------------------------------------------ prepare

    def _sign(self, policy: str) -> str:
        """The storage form's signature of ``policy`` (HMAC-SHA1, base64)."""
        digest = hmac.new(self._secret, policy.encode("ascii"), hashlib.sha1).digest()
        return base64.b64encode(digest).decode("ascii")

    async def prepare(self, request: web.Request) -> web.StreamResponse:
        """``POST {prefix}/uploads/prepare``: a policy and form fields for one file."""
        caller = await self._check(request, "upload_prepare")
        if isinstance(caller, web.StreamResponse):
            return caller
        fault: Fault | None = caller.fault
        if fault is not None and fault.kind == "upload_refused":
            message = str(fault.params.get("message", "file type not supported"))
            return web.json_response(
                {"base_resp": {"status_code": PREPARE_REFUSED_CODE, "status_msg": message}}
            )
        problem = _prepare_problem(caller.body, self.max_bytes)
        if problem is not None:
            code = PREPARE_REFUSED_CODE if problem == "file too large" else 1406010011
            return web.json_response({"base_resp": {"status_code": code, "status_msg": problem}})
        body = caller.body
        object_key = str(uuid.uuid4())
        expires = time.time() + _POLICY_SECONDS
        conditions = [
            {"key": object_key},
            ["content-length-range", body["size_bytes"], body["size_bytes"]],
            ["eq", "$content-type", body["mime_type"]],
        ]
        policy_doc = {
            "expiration": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(expires)),
            "conditions": conditions,
        }
        policy = base64.b64encode(json.dumps(policy_doc).encode("utf-8")).decode("ascii")
        fields = (
            ("OSSAccessKeyId", "LTAI" + secrets.token_hex(8)),
            ("key", object_key),
            ("policy", policy),
            ("Signature", self._sign(policy)),
        )
        self._tickets[object_key] = _Ticket(
            caller.account.name,
            body["file_name"],
            body["mime_type"],
            body["size_bytes"],
            fields,
            expires,
        )
        instruction = {
            "method": "POST",
            "url": self.storage_url + BUCKET_PATH,
            "form_fields": dict(fields),
        }
        return web.json_response(
            {
                "object_key": object_key,
                "upload_instruction": instruction,
                "base_resp": dict(BASE_RESP_OK),
            }
        )

    # ------------------------------------------------------------------ storage

    async def store(self, request: web.Request) -> web.StreamResponse:
        """``POST /<bucket>``: the form upload; 204 when it matches its policy."""
        record = self.state.record_of(request)
        record.protocol, record.endpoint = "agent", "storage"
        fault = self.state.take_fault(request, account=None, endpoint="storage", protocol="agent")
        if fault is not None and fault.kind == "storage_403":
            message = str(fault.params.get("message", "You have no right to access this object."))
            return _oss_error(403, "AccessDenied", message)
        if not request.content_type.startswith("multipart/form-data"):
            return _oss_error(400, "InvalidArgument", "multipart/form-data is required")
        reader = await request.multipart()
        fields: list[tuple[str, str]] = []
        data: bytearray | None = None
        file_type = ""
        while (part := await reader.next()) is not None:
            if data is not None:
                return _oss_error(400, "InvalidArgument", "The file must be the last form field.")
            name = getattr(part, "name", None) or ""
            if name == "file" and getattr(part, "filename", None):
                file_type = part.headers.get("Content-Type", "")
                data = bytearray()
                while chunk := await part.read_chunk():  # type: ignore[union-attr]
                    data.extend(chunk)
            else:
                fields.append((name, await part.text()))  # type: ignore[union-attr]
        record.body = {name: value for name, value in fields if name == "key"}
        if data is None:
            return _oss_error(400, "InvalidArgument", "The form holds no file part.")
        return self._accept(dict(fields).get("key", ""), fields, bytes(data), file_type)

    def _accept(  # noqa: PLR0911 - one answer per policy check, in OSS's order
        self, key: str, fields: list[tuple[str, str]], data: bytes, file_type: str
    ) -> web.Response:
        """Check a complete upload against its ticket; store it (204) or refuse it."""
        ticket = self._tickets.get(key)
        if ticket is None:
            return _oss_error(403, "AccessDenied", "The key was not prepared.")
        sent = dict(fields)
        if [name for name, _ in fields] != [name for name, _ in ticket.fields]:
            return _oss_error(
                400, "InvalidArgument", "The form fields differ from the prepared ones."
            )
        if sent.get("Signature") != self._sign(sent.get("policy", "")):
            return _oss_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
                StringToSign=sent.get("policy", ""),
                SignatureProvided=sent.get("Signature", ""),
            )
        if tuple(fields) != ticket.fields:
            return _oss_error(403, "AccessDenied", "Invalid according to Policy: fields changed.")
        if time.time() > ticket.expires:
            return _oss_error(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
        if len(data) != ticket.size:
            return _oss_error(
                400,
                "EntityTooLarge" if len(data) > ticket.size else "EntityTooSmall",
                "Invalid according to Policy: Policy Condition failed: content-length-range",
            )
        if file_type.split(";", maxsplit=1)[0].strip() != ticket.mime_type:
            return _oss_error(
                403,
                "AccessDenied",
                'Invalid according to Policy: Policy Condition failed: ["eq", "$content-type"]',
            )
        stored = StoredObject(
            key,
            ticket.account,
            ticket.file_name,
            ticket.mime_type,
            len(data),
            hashlib.sha256(data).hexdigest(),
        )
        del self._tickets[key]
        self.objects[key] = stored
        self.stored.append(stored)
        return web.Response(status=204)

    # ------------------------------------------------------------------ the turn

    def refusal(
        self, account: str, body: dict[str, Any], fault: Fault | None = None
    ) -> web.Response | None:
        """The 400 for a turn with an unusable attachment (or a fault), or ``None``."""
        entries = body.get("attachments")
        if entries is None:
            return None
        if not isinstance(entries, list):
            return error_response("bad_request", "agent", message="attachments must be a list")
        refuse = fault is not None and fault.kind == "attachment_refused"
        for entry in entries:
            problem = self._entry_problem(account, entry)
            if problem is None and refuse and isinstance(entry.get("cloud"), dict):
                problem = f"attachment not found: {entry['cloud'].get('object_key')}"
            if problem is not None:
                return error_response("bad_request", "agent", message=problem)
        return None

    def _entry_problem(self, account: str, entry: Any) -> str | None:
        """What is wrong with one ``attachments`` entry, or ``None``."""
        if not isinstance(entry, dict):
            return "attachment entries must be objects"
        if entry.get("type") == "image":
            url = entry.get("url")
            ok = isinstance(url, str) and url.startswith(("http://", "https://"))
            return None if ok else "invalid image url"
        cloud, meta = entry.get("cloud"), entry.get("meta")
        if not isinstance(cloud, dict) or not isinstance(meta, dict):
            return "attachment entries need meta and cloud"
        stored = self.objects.get(str(cloud.get("object_key")))
        if stored is None or stored.account != account:
            return f"attachment not found: {cloud.get('object_key')}"
        if meta.get("attachment_type") != "file" or meta.get("size_bytes") != stored.size:
            return "attachment meta does not match the stored object"
        return None

    def describe(self, body: dict[str, Any]) -> str:
        """What the unscripted answer says about a turn's attachments (``""``: none).

        Returns:
            ``Attachments: name (N bytes, sha256 0123456789ab); image <url> (by URL).``
        """
        entries = body.get("attachments")
        if not isinstance(entries, list) or not entries:
            return ""
        described: list[str] = []
        for entry in entries:
            if entry.get("type") == "image":
                described.append(f"image {entry.get('url')} (by URL)")
                continue
            stored = self.objects.get(str(entry["cloud"]["object_key"]))
            if stored is None:  # expired while the turn was being answered
                described.append(f"{entry['meta'].get('file_name')} (expired)")
                continue
            described.append(
                f"{stored.file_name} ({stored.size} bytes, sha256 {stored.sha256[:_HASH_PREFIX]})"
            )
        return "Attachments: " + "; ".join(described) + "."
