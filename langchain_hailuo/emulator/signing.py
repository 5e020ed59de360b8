"""The emulator's own signature checks, written apart from the clients' signing code.

Nothing here is imported from ``langchain_hailuo.v4`` or ``langchain_hailuo.agent``: the
emulator recomputes every signature from the protocol notes, so a signing bug in a client
cannot be hidden by the same bug on the server side.

v4 (``docs/protocol.md``, v4 §2.2)::

    yy = md5(encodeURIComponent(path_and_query) + "_" + bodyToYy + md5(unix_ms) + "ooui")
    bodyToYy = md5(characterID) + md5(msgContent without CR/LF) + md5(chatID) + md5(form or "")

Agent (``docs/protocol.md``, protocol notes §3.2-3.3)::

    x-signature = md5(x_timestamp_seconds + SALT + body)
    yy = md5(encodeURIComponent(target) + "_" + (body or "{}") + md5(unix_ms) + "ooui")
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from urllib.parse import quote

__all__ = [
    "AGENT_SIGNATURE_SALT",
    "YY_SUFFIX",
    "agent_signature",
    "agent_yy",
    "encode_uri_component",
    "md5_hex",
    "v4_body_to_yy",
    "v4_yy",
]

AGENT_SIGNATURE_SALT = "I*7Cf%WZ#S&%1RlZJ&C2"
"""The static salt of the Agent web bundle's ``x-signature``."""

YY_SUFFIX = "ooui"
"""The literal suffix of every ``yy`` pre-image (both protocols)."""

_URI_COMPONENT_SAFE = "-_.!~*'()"
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")


def md5_hex(text: str) -> str:
    """MD5 of the UTF-8 encoding of ``text``, as lowercase hex.

    Args:
        text: Any text.

    Returns:
        32 lowercase hex digits.
    """
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def encode_uri_component(text: str) -> str:
    """Percent-encode ``text`` exactly as JavaScript's ``encodeURIComponent`` does.

    Args:
        text: The text to encode (a path with its query, or an absolute URL).

    Returns:
        The encoded text: only ``A-Z a-z 0-9 - _ . ! ~ * ' ( )`` stay as they are.
    """
    return quote(text, safe=_URI_COMPONENT_SAFE)


def _yy(target: str, middle: str, unix_ms: str) -> str:
    """The ``yy`` template shared by both protocols."""
    return md5_hex(f"{encode_uri_component(target)}_{middle}{md5_hex(unix_ms)}{YY_SUFFIX}")


def v4_body_to_yy(form: Mapping[str, str]) -> str:
    """The 128-hex-digit ``bodyToYy`` of a v4 chat form.

    Args:
        form: The multipart fields as received (``characterID``, ``msgContent``, ``chatID``,
            optionally ``form``).

    Returns:
        Four MD5 digests concatenated; line breaks are removed from ``msgContent`` first.
    """
    content = _LINE_BREAKS.sub("", form.get("msgContent", ""))
    return "".join(
        md5_hex(part)
        for part in (
            form.get("characterID", ""),
            content,
            form.get("chatID", ""),
            form.get("form", ""),
        )
    )


def v4_yy(path_and_query: str, form: Mapping[str, str], unix_ms: str) -> str:
    """The ``yy`` header a v4 chat request must carry.

    Args:
        path_and_query: The request target exactly as received (path, ``?``, raw query).
        form: The multipart fields as received.
        unix_ms: The ``unix`` query value (milliseconds, as text).

    Returns:
        The expected ``yy`` (32 hex digits).
    """
    return _yy(path_and_query, v4_body_to_yy(form), unix_ms)


def agent_yy(target: str, body: str, unix_ms: str) -> str:
    """The ``yy`` header of an Agent request.

    Args:
        target: Relative ``path?query`` or the absolute URL, exactly as sent.
        body: The raw JSON body text; empty for a GET (``{}`` is then signed).
        unix_ms: The ``unix`` query value (milliseconds, as text).

    Returns:
        The expected ``yy`` (32 hex digits).
    """
    return _yy(target, body or "{}", unix_ms)


def agent_signature(timestamp: str, body: str) -> str:
    """The ``x-signature`` header of an Agent request.

    Args:
        timestamp: The ``x-timestamp`` header (whole seconds, as text).
        body: The raw body text (empty for a GET).

    Returns:
        The expected ``x-signature`` (32 hex digits).
    """
    return md5_hex(f"{timestamp}{AGENT_SIGNATURE_SALT}{body}")
