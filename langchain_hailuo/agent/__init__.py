"""MiniMax Agent (agent.minimax.io): the live protocol stack.

``signing`` (headers and query), ``stream`` (the turn's SSE -> events), ``client`` (the
HTTP calls) and ``provider`` (:class:`MiniMaxAgent`, the seed-style interface).
"""

from langchain_hailuo.agent.client import AgentClient, AgentSettings, ModelChoice
from langchain_hailuo.agent.provider import MiniMaxAgent
from langchain_hailuo.agent.stream import AgentStreamDecoder

__all__ = ["AgentClient", "AgentSettings", "AgentStreamDecoder", "MiniMaxAgent", "ModelChoice"]
