"""What the web clients' JavaScript computes, in Python: both signing modules use these.

``Date.now()``, an MD5 hex digest, ``encodeURIComponent`` and ``URLSearchParams`` encoding
are the same in the v4 web client (:mod:`langchain_hailuo.v4.crypt`) and the MiniMax Agent
one (:mod:`langchain_hailuo.agent.signing`), so they live here once. The emulator keeps its
own copies on purpose (:mod:`langchain_hailuo.emulator.signing`): a test double that shares
the client's code cannot catch the client's mistakes.
"""

from __future__ import annotations

import hashlib
import time
from urllib.parse import quote, quote_plus

__all__ = ["encode_uri_component", "md5_hex", "now_ms", "url_search_params_encode"]


_URI_COMPONENT_SAFE = "-_.!~*'()"
"""What JavaScript's ``encodeURIComponent`` leaves unescaped (besides letters and digits)."""


def now_ms() -> int:
    """The current time in milliseconds since the epoch (JavaScript's ``Date.now()``)."""
    return time.time_ns() // 1_000_000


def md5_hex(text: str) -> str:
    """MD5 of the UTF-8 encoding of ``text`` as 32 lowercase hex digits.

    Args:
        text: Any text.

    Returns:
        The hex digest.
    """
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def encode_uri_component(text: str) -> str:
    """Percent-encode like JavaScript's ``encodeURIComponent``.

    Args:
        text: The text to encode (as UTF-8).

    Returns:
        The text with everything but ``A-Z a-z 0-9 - _ . ! ~ * ' ( )`` percent-encoded.
    """
    return quote(text, safe=_URI_COMPONENT_SAFE)


def url_search_params_encode(text: str) -> str:
    """Encode one name or value as ``URLSearchParams.toString()`` does.

    The ``application/x-www-form-urlencoded`` serializer keeps ``A-Z a-z 0-9 * - . _``,
    turns a space into ``+`` and percent-encodes every other byte (``~`` included, which
    Python's quoting would keep).

    Args:
        text: The text to encode.

    Returns:
        The encoded text.
    """
    return quote_plus(text, safe="*").replace("~", "%7E")
