"""Files and images in messages: LangChain content blocks -> protocol-neutral attachments.

A message's content may hold, besides text, image and file blocks in the forms LangChain
knows: its standard blocks (``{"type": "image" | "file", "base64" | "url", "mime_type"}``,
the older ``source_type`` / ``data`` spelling of them, ``{"type": "text-plain"}``) and
OpenAI's (``{"type": "image_url", "image_url": {"url": ...}}`` with an http(s) or ``data:``
URL, ``{"type": "file", "file": {"file_data", "filename"}}``). A ``file://`` URL names a
local file (LangChain's blocks have no path field; the CLI's ``--attach PATH`` uses the
same reader). Nothing here does network I/O or knows a wire detail: an
:class:`~langchain_hailuo.types.Attachment` carries the bytes (or a remote image URL), a
name, a MIME type, the size and the SHA-256, and each protocol decides how to send it.

Every check happens here, before anything is sent: an unreadable path, a malformed block,
a block kind the web chat cannot take and a file over the size limit raise typed errors.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from langchain_core.messages import BaseMessage, HumanMessage, ToolMessage

from langchain_hailuo.errors import HailuoAttachmentError, HailuoUnsupportedContentError
from langchain_hailuo.types import Attachment, AttachmentKind, MessageDict

__all__ = [
    "DEFAULT_MAX_ATTACHMENT_BYTES",
    "Attachment",
    "attachments_of",
    "carry_attachments",
    "detach_media",
    "is_media_block",
    "path_block",
    "read_path",
    "split_content",
    "with_attachments",
]

DEFAULT_MAX_ATTACHMENT_BYTES = 100 * 1024 * 1024
"""The web client's own limit for one message attachment (protocol notes §6.1)."""

_OCTET_STREAM = "application/octet-stream"
_DEFAULT_NAMES = {"image": "image", "file": "upload"}
_MEDIA_BLOCKS = frozenset({"image", "file", "image_url", "text-plain"})
_UNSUPPORTED_HINTS = {
    "audio": "audio is not accepted by the web chat",
    "input_audio": "audio is not accepted by the web chat",
    "video": "video is not accepted by the web chat",
}


def _extension_for(mime_type: str) -> str:
    """A file extension for a MIME type (``.png``), or ``""``."""
    return mimetypes.guess_extension(mime_type, strict=False) or ""


def _guess_mime(name: str) -> str:
    """The MIME type a file name suggests, or ``application/octet-stream``."""
    return mimetypes.guess_type(name, strict=False)[0] or _OCTET_STREAM


def _default_name(kind: AttachmentKind, mime_type: str) -> str:
    """A name for an attachment that came without one (``image.png``, ``upload.pdf``)."""
    return _DEFAULT_NAMES[kind] + _extension_for(mime_type)


def _too_large(name: str, size: int, max_bytes: int) -> HailuoAttachmentError:
    """The error for a file over the size limit."""
    return HailuoAttachmentError(
        f"{name!r} is {size} bytes, over the attachment limit of {max_bytes} bytes. Send a "
        "smaller file, or raise max_attachment_bytes."
    )


def _checked(attachment: Attachment, max_bytes: int) -> Attachment:
    """``attachment`` when it is within the size limit."""
    if attachment.size > max_bytes:
        raise _too_large(attachment.name, attachment.size, max_bytes)
    return attachment


def _decode_base64(text: str, what: str) -> bytes:
    """Strict base64 (whitespace allowed; URL-safe alphabet accepted)."""
    cleaned = "".join(text.split())
    try:
        if "-" in cleaned or "_" in cleaned:
            return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise HailuoAttachmentError(
            f"The {what} holds data that is not valid base64 ({exc}); pass the file's bytes "
            "base64-encoded."
        ) from None


def _parse_data_url(url: str, what: str) -> tuple[str, bytes]:
    """``(mime_type, bytes)`` of a ``data:`` URL (base64 or percent-encoded)."""
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise HailuoAttachmentError(f"The {what} holds a data: URL without a ',' before its data.")
    params = header.split(";")
    mime_type = params[0].strip() or "text/plain"
    if "base64" in (p.strip().lower() for p in params[1:]):
        return mime_type, _decode_base64(payload, what)
    return mime_type, unquote(payload).encode("utf-8")


def read_path(
    path: str | Path,
    *,
    kind: AttachmentKind | None = None,
    mime_type: str | None = None,
    name: str | None = None,
    max_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES,
) -> Attachment:
    """Read a local file into an attachment (size checked before the bytes are read)."""
    file = Path(path).expanduser()
    try:
        size = file.stat().st_size
        if not file.is_file():
            raise IsADirectoryError(f"{file} is not a regular file")
        if size > max_bytes:
            raise _too_large(file.name, size, max_bytes)
        data = file.read_bytes()
    except OSError as exc:
        raise HailuoAttachmentError(
            f"Cannot read the attachment {str(file)!r}: {exc.strerror or exc}. Check the path "
            "and its permissions."
        ) from None
    chosen_name = name or file.name
    chosen_mime = mime_type or _guess_mime(chosen_name)
    chosen_kind: AttachmentKind = kind or ("image" if chosen_mime.startswith("image/") else "file")
    return _checked(Attachment(chosen_kind, chosen_name, chosen_mime, data=data), max_bytes)


def _local_path(url: str) -> Path:
    """The local path of a ``file://`` URL (only the local host)."""
    parts = urlsplit(url)
    if parts.netloc not in {"", "localhost"}:
        raise HailuoAttachmentError(
            f"The file URL {url!r} names another host; only local files can be attached."
        )
    return Path(url2pathname(parts.path))


def _block_name(block: Mapping[str, Any]) -> str | None:
    """The file name a block carries (``filename``, ``name``, ``extras`` / ``metadata``)."""
    for holder in (block, block.get("extras"), block.get("metadata"), block.get("file")):
        if isinstance(holder, Mapping):
            for key in ("filename", "name", "title"):
                value = holder.get(key)
                if isinstance(value, str) and value.strip() and value != "LC_AUTOGENERATED":
                    return value.strip()
    return None


def _from_url(
    url: str, kind: AttachmentKind, mime: str | None, name: str | None, max_bytes: int
) -> Attachment:
    """An attachment from a block's URL: ``data:``, ``file://`` or http(s)."""
    what = f"{kind} block"
    scheme = urlsplit(url).scheme.lower()
    if scheme == "data":
        data_mime, data = _parse_data_url(url, what)
        chosen = mime or data_mime
        return _checked(
            Attachment(kind, name or _default_name(kind, chosen), chosen, data=data), max_bytes
        )
    if scheme == "file":
        return read_path(
            _local_path(url), kind=kind, mime_type=mime, name=name, max_bytes=max_bytes
        )
    if scheme in {"http", "https"}:
        if kind != "image":
            raise HailuoUnsupportedContentError(
                "A file block holds a URL; the web chat takes files only as uploaded bytes. "
                "Pass the file as base64 (or a file:// URL of a local copy)."
            )
        guessed = _guess_mime(urlsplit(url).path)
        chosen = mime or (guessed if guessed.startswith("image/") else "image/*")
        tail = Path(urlsplit(url).path).name
        return Attachment(kind, name or tail or "image", chosen, url=url)
    raise HailuoAttachmentError(
        f"The {what} holds a URL with the scheme {scheme or '(none)'!r}; use http(s), data: "
        "or file:// URLs."
    )


def _standard(block: Mapping[str, Any], max_bytes: int) -> Attachment:
    """An ``image`` / ``file`` / ``text-plain`` block (LangChain v1 or the older v0 form)."""
    block_type = str(block.get("type"))
    kind: AttachmentKind = "image" if block_type == "image" else "file"
    name = _block_name(block)
    mime = block.get("mime_type") or block.get("mimeType")
    mime = str(mime) if mime else None
    source = block.get("source_type")
    if block_type == "text-plain" and isinstance(block.get("text"), str):
        data = str(block["text"]).encode("utf-8")
        chosen = mime or "text/plain"
        return _checked(
            Attachment("file", name or _default_name("file", chosen), chosen, data=data),
            max_bytes,
        )
    encoded = block.get("base64")
    if encoded is None and source == "base64":
        encoded = block.get("data")
    if isinstance(encoded, str):
        data = _decode_base64(encoded, f"{block_type} block")
        chosen = mime or (_guess_mime(name) if name else _OCTET_STREAM)
        return _checked(
            Attachment(kind, name or _default_name(kind, chosen), chosen, data=data), max_bytes
        )
    url = block.get("url")
    if url is None and source == "url":
        url = block.get("data")
    if isinstance(url, str) and url:
        return _from_url(url, kind, mime, name, max_bytes)
    if block.get("file_id") or source == "id":
        raise HailuoUnsupportedContentError(
            f"A {block_type} block refers to a provider file id; the web chat cannot read "
            "another provider's files. Pass the bytes (base64) instead."
        )
    raise HailuoAttachmentError(
        f"A {block_type} block holds no data: give it 'base64' (with 'mime_type') or 'url'."
    )


def _openai(block: Mapping[str, Any], max_bytes: int) -> Attachment:
    """OpenAI's ``image_url`` block and ``file`` block (``file.file_data``)."""
    if block.get("type") == "image_url":
        value = block.get("image_url")
        url = value.get("url") if isinstance(value, Mapping) else value
        if not isinstance(url, str) or not url:
            raise HailuoAttachmentError("An image_url block holds no URL.")
        return _from_url(url, "image", None, _block_name(block), max_bytes)
    inner = block["file"]
    name = _block_name(inner) if isinstance(inner, Mapping) else None
    file_data = inner.get("file_data") if isinstance(inner, Mapping) else None
    if isinstance(file_data, str) and file_data:
        if file_data.startswith("data:"):
            return _from_url(file_data, "file", None, name, max_bytes)
        data = _decode_base64(file_data, "file block")
        chosen = _guess_mime(name) if name else _OCTET_STREAM
        return _checked(
            Attachment("file", name or _default_name("file", chosen), chosen, data=data),
            max_bytes,
        )
    raise HailuoUnsupportedContentError(
        "A file block refers to an OpenAI file id; the web chat cannot read OpenAI's files. "
        "Pass the bytes (file_data) instead."
    )


def _attachment_of(block: Mapping[str, Any], max_bytes: int) -> Attachment:
    """The attachment of one non-text block, or a typed error."""
    block_type = str(block.get("type") or "untyped")
    if block_type == "image_url" or (block_type == "file" and "file" in block):
        return _openai(block, max_bytes)
    if block_type in _MEDIA_BLOCKS:
        return _standard(block, max_bytes)
    reason = _UNSUPPORTED_HINTS.get(block_type, "only text, images and files are accepted")
    raise HailuoUnsupportedContentError(
        f"A message holds a {block_type!r} content block: {reason}. Remove it, or describe "
        "it in words."
    )


def is_media_block(block: Any) -> bool:
    """Whether a content block is an image or file this module reads."""
    # ``True`` for the image / file / text-plain / image_url block forms.
    return isinstance(block, Mapping) and block.get("type") in _MEDIA_BLOCKS


def split_content(
    content: str | Sequence[Any], *, max_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
) -> tuple[list[Any], list[Attachment]]:
    """Separate a message's media blocks from the rest."""
    # The content without its media blocks (for the text mapping), and the attachments in the order
    # they appear.
    if isinstance(content, str):
        return [content], []
    rest: list[Any] = []
    found: list[Attachment] = []
    for block in content:
        if isinstance(block, Mapping) and (
            block.get("type") in _MEDIA_BLOCKS or block.get("type") in _UNSUPPORTED_HINTS
        ):
            found.append(_attachment_of(block, max_bytes))
        else:
            rest.append(block)
    return rest, found


def attachments_of(messages: Iterable[Mapping[str, Any]]) -> list[Attachment]:
    """The attachments carried by provider message dicts (their ``attachments`` key)."""
    found: list[Attachment] = []
    for message in messages:
        found.extend(message.get("attachments") or ())
    return found


def detach_media(
    messages: Sequence[BaseMessage], *, max_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
) -> tuple[list[BaseMessage], list[list[Attachment]]]:
    """Take the images and files out of user messages and tool results."""
    # The returned messages hold what is left (text, and anything the text mapping judges); the
    # attachments stand index for index beside them, for :func:`with_attachments`. Other messages
    # (system, AI) are returned as they are: their non-text blocks are the text mapping's to judge.
    stripped: list[BaseMessage] = []
    media: list[list[Attachment]] = []
    for message in messages:
        found: list[Attachment] = []
        if isinstance(message, HumanMessage | ToolMessage) and not isinstance(message.content, str):
            rest, found = split_content(message.content, max_bytes=max_bytes)
            if found:
                message = message.model_copy(update={"content": rest})  # noqa: PLW2901
        stripped.append(message)
        media.append(found)
    return stripped, media


def with_attachments(
    dicts: Sequence[MessageDict], media: Sequence[Sequence[Attachment]]
) -> list[MessageDict]:
    """The provider dicts with each message's attachments under ``attachments``."""
    # The dicts (new ones where attachments were added).
    return [
        {**item, "attachments": list(files)} if files else item
        for item, files in zip(dicts, media, strict=True)
    ]


def carry_attachments(
    folded: Sequence[MessageDict], sources: Sequence[MessageDict]
) -> list[MessageDict]:
    """Keep the attachments of ``sources`` when they were folded into ``folded``."""
    # Folding (tool results grouped into one message, a continued turn made one text) builds new
    # dicts; the attachments of the messages folded in go onto the last user message of the result
    # (one turn sends all of them together), in their original order.
    # ``folded`` with every attachment of ``sources`` on it.
    files = attachments_of(sources)
    if not files or attachments_of(folded) == files:
        return list(folded)
    plain: list[MessageDict] = [
        {"role": item["role"], "content": item["content"]} for item in folded
    ]
    users = [index for index, item in enumerate(plain) if item["role"] == "user"]
    target = users[-1] if users else len(plain) - 1
    plain[target] = {**plain[target], "attachments": files}
    return plain


def path_block(
    path: str | Path, *, max_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
) -> dict[str, Any]:
    """A LangChain content block holding a local file's bytes (``hailuo chat --attach``)."""
    # The file is read now, so later turns re-send the same bytes even if the file changes.
    # ``{"type": "image" | "file", "base64", "mime_type", "filename"}``.
    attachment = read_path(path, max_bytes=max_bytes)
    return {
        "type": attachment.kind,
        "base64": base64.b64encode(attachment.data or b"").decode("ascii"),
        "mime_type": attachment.mime_type,
        "filename": attachment.name,
    }
