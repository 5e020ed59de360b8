"""MiniMax Agent (agent.minimax.io): the live protocol stack.

``signing`` (headers and query), ``stream`` (the turn's SSE -> events), ``client`` (the
HTTP calls) and ``provider`` (:class:`MiniMaxAgent`, the gpt4free-compatible interface).
Each loads on first access: the client and the provider bring the HTTP stack (aiohttp), and
``langchain_hailuo.agent.credits`` (the pool's credit readout) is imported without them.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_hailuo.agent.client import AgentClient, AgentSettings, ModelChoice
    from langchain_hailuo.agent.provider import MiniMaxAgent
    from langchain_hailuo.agent.stream import AgentStreamDecoder

__all__ = ["AgentClient", "AgentSettings", "AgentStreamDecoder", "MiniMaxAgent", "ModelChoice"]


def __getattr__(name: str) -> Any:
    """The stack's names, imported on first access."""
    # The transport (aiohttp) loads on a model's first call: import budget.
    if name in ("AgentClient", "AgentSettings", "ModelChoice"):
        from langchain_hailuo.agent import client  # noqa: PLC0415

        return getattr(client, name)
    if name == "MiniMaxAgent":
        from langchain_hailuo.agent.provider import MiniMaxAgent  # noqa: PLC0415

        return MiniMaxAgent
    if name == "AgentStreamDecoder":
        from langchain_hailuo.agent.stream import AgentStreamDecoder  # noqa: PLC0415

        return AgentStreamDecoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
