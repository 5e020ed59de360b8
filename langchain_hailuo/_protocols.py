"""Which provider speaks a protocol: the one place above both providers that names them.

``ChatHailuo`` names no protocol: it resolves one (:mod:`langchain_hailuo._routing`) and asks
:func:`build_provider` for its provider.
"""

from __future__ import annotations

from typing import Any

from langchain_hailuo.types import Protocol

__all__ = ["build_provider"]


def build_provider(
    protocol: Protocol,
    *,
    base_url: str | None,
    stream_url: str | None,
    auth_manager: Any,
    settings: dict[str, Any],
) -> Any:
    """The provider of ``protocol`` (``HailuoAI`` for ``v4``, ``MiniMaxAgent`` otherwise)."""
    # The transport (aiohttp) loads on a model's first call: import budget.
    if protocol == "v4":
        from langchain_hailuo.v4.provider import HailuoAI  # noqa: PLC0415

        return HailuoAI(base_url=base_url, auth_manager=auth_manager, **settings)
    from langchain_hailuo.agent.provider import MiniMaxAgent  # noqa: PLC0415

    return MiniMaxAgent(
        base_url=base_url, stream_url=stream_url, auth_manager=auth_manager, **settings
    )
