"""The Hailuo AI web chat protocol (``POST /v4/api/chat/msg``), the one gpt4free speaks.

* :mod:`~langchain_hailuo.v4.crypt`: the ``yy`` signature and the fingerprint query;
* :mod:`~langchain_hailuo.v4.stream`: the answer stream decoder (bytes -> events);
* :mod:`~langchain_hailuo.v4.client`: the signed multipart POST, redirects, retries, timeouts;
* :mod:`~langchain_hailuo.v4.provider`: :class:`HailuoAI`, the gpt4free-compatible interface.

The client and the provider load on first access: they bring the HTTP stack (aiohttp).
"""

from typing import TYPE_CHECKING, Any

from langchain_hailuo.v4.stream import V4StreamDecoder

if TYPE_CHECKING:
    from langchain_hailuo.v4.client import V4Client
    from langchain_hailuo.v4.provider import HailuoAI

__all__ = ["HailuoAI", "V4Client", "V4StreamDecoder"]


def __getattr__(name: str) -> Any:
    """The client and the provider, imported on first access."""
    # The transport (aiohttp) loads on a model's first call: import budget.
    if name == "V4Client":
        from langchain_hailuo.v4.client import V4Client  # noqa: PLC0415

        return V4Client
    if name == "HailuoAI":
        from langchain_hailuo.v4.provider import HailuoAI  # noqa: PLC0415

        return HailuoAI
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
