"""Images and files in requests -> the content blocks ``ChatHailuo``'s attachment path reads.

OpenAI's ``image_url`` and ``file`` parts and Anthropic's ``image`` and ``document`` blocks
become LangChain blocks for :mod:`langchain_hailuo._attachments`. Pure translation. Only
``data:`` and http(s) URLs are taken: a client may not name a file on the server
(``file://``); audio, a provider's file id or a file by URL is a 400 naming the part.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from langchain_hailuo.serve.status import bad_request

__all__ = ["MEDIA_BLOCKS", "MEDIA_PARTS", "anthropic_media", "openai_media"]

_IMAGE_SCHEMES = frozenset({"data", "http", "https"})
MEDIA_PARTS = frozenset({"image_url", "file"})
"""OpenAI content part types that carry media."""
MEDIA_BLOCKS = frozenset({"image", "document"})
"""Anthropic content block types that carry media."""


def _checked_url(url: Any, where: str, *, schemes: frozenset[str]) -> str:
    """``url`` when it is a non-empty string with an allowed scheme, else a 400."""
    if not isinstance(url, str) or not url:
        raise bad_request(f"{where} holds no URL.", where)
    scheme = urlsplit(url).scheme.lower()
    if scheme not in schemes:
        allowed = " or ".join(sorted(f"{s}:" for s in schemes))
        raise bad_request(
            f"{where} holds a {scheme or 'relative'!r} URL; hailuo serve takes {allowed} URLs "
            "(send files inline as base64).",
            where,
        )
    return url


def openai_media(part: Mapping[str, Any], where: str) -> dict[str, Any]:
    """An OpenAI ``image_url`` or ``file`` part as a block ``ChatHailuo`` reads (else a 400)."""
    if part.get("type") == "image_url":
        value = part.get("image_url")
        url = value.get("url") if isinstance(value, Mapping) else value
        checked = _checked_url(url, where, schemes=_IMAGE_SCHEMES)
        return {"type": "image_url", "image_url": {"url": checked}}
    inner = part.get("file")
    data = inner.get("file_data") if isinstance(inner, Mapping) else None
    if not isinstance(data, str) or not data:
        raise bad_request(
            f"{where} is a file part without file_data; hailuo serve cannot read OpenAI file "
            "ids: send the file inline (file_data, base64 or a data: URL).",
            where,
        )
    file: dict[str, Any] = {"file_data": data}  # base64 or a data: URL (checked when read)
    name = inner.get("filename") if isinstance(inner, Mapping) else None
    if isinstance(name, str) and name:
        file["filename"] = name
    return {"type": "file", "file": file}


def anthropic_media(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    """An Anthropic ``image`` or ``document`` block as a LangChain ``image``/``file`` block.

    A 400 for an unknown source, a file id, a document by URL or no data.
    """
    kind = "image" if block.get("type") == "image" else "file"
    source = block.get("source")
    source_type = source.get("type") if isinstance(source, Mapping) else None
    out: dict[str, Any] = {"type": kind}
    title = block.get("title")
    if isinstance(title, str) and title:
        out["filename"] = title
    if not isinstance(source, Mapping):
        raise bad_request(f"{where} needs a source.", where)
    if source_type == "base64" and isinstance(source.get("data"), str):
        out["base64"] = source["data"]
        if source.get("media_type"):
            out["mime_type"] = str(source["media_type"])
        return out
    if source_type == "text" and kind == "file" and isinstance(source.get("data"), str):
        plain = {"type": "text-plain", "text": source["data"], "mime_type": "text/plain"}
        return {**plain, **({"filename": out["filename"]} if "filename" in out else {})}
    if source_type == "url" and kind == "image":
        out["url"] = _checked_url(source.get("url"), f"{where}.source", schemes=_IMAGE_SCHEMES)
        return out
    raise bad_request(
        f"{where} has a {source_type!r} source; hailuo serve takes images as base64 or an "
        "http(s) URL, and documents as base64 or text (not file ids or URLs).",
        where,
    )
