"""What the web clients' JavaScript computes, once for both signing modules.

The emulator keeps its own copies (:mod:`langchain_hailuo.emulator.signing`): a test double
sharing the client's code cannot catch the client's mistakes.
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
    """MD5 of the UTF-8 encoding of ``text`` as 32 lowercase hex digits."""
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def encode_uri_component(text: str) -> str:
    """Percent-encode like JavaScript's ``encodeURIComponent`` (``A-Za-z0-9-_.!~*'()`` stay)."""
    return quote(text, safe=_URI_COMPONENT_SAFE)


def url_search_params_encode(text: str) -> str:
    """Encode a name or value as ``URLSearchParams``: ``A-Za-z0-9*-._`` stay, space is ``+``.

    Every other byte is percent-encoded, ``~`` included (which Python's quoting keeps).
    """
    return quote_plus(text, safe="*").replace("~", "%7E")
