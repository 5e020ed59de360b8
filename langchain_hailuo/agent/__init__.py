"""MiniMax Agent (agent.minimax.io): the live protocol stack.

``signing`` (headers and query), ``stream`` (the turn's SSE -> events), ``client`` (the
HTTP calls) and ``provider`` (:class:`MiniMaxAgent`, the gpt4free-compatible interface).
The client and the provider load on first access: they bring the HTTP stack (aiohttp).
"""

from typing import TYPE_CHECKING, Any

from langchain_hailuo.agent.stream import AgentStreamDecoder

if TYPE_CHECKING:
    from langchain_hailuo.agent.client import AgentClient, AgentSettings, ModelChoice
    from langchain_hailuo.agent.provider import MiniMaxAgent

__all__ = ["AgentClient", "AgentSettings", "AgentStreamDecoder", "MiniMaxAgent", "ModelChoice"]


def __getattr__(name: str) -> Any:
    """The client's and the provider's names, imported on first access."""
    # The transport (aiohttp) loads on a model's first call: import budget.
    if name in ("AgentClient", "AgentSettings", "ModelChoice"):
        from langchain_hailuo.agent import client  # noqa: PLC0415

        return getattr(client, name)
    if name == "MiniMaxAgent":
        from langchain_hailuo.agent.provider import MiniMaxAgent  # noqa: PLC0415

        return MiniMaxAgent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
