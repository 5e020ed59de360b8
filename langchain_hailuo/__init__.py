"""LangChain integration for MiniMax's consumer web chat (Hailuo AI / MiniMax Agent).

``ChatHailuo`` is the LangChain chat model; ``HailuoAI`` and ``MiniMaxAgent`` are the two
protocols' providers with gpt4free's interface (``create_authed``, ``on_auth_async``).
Importing the package loads no browser driver (nodriver), no HTTP stack (aiohttp) and no
emulator: the transport loads on a model's (or a provider's) first use, the rest when a
login, ``hailuo serve`` or a test needs them.
"""

from typing import TYPE_CHECKING, Any

from langchain_hailuo._structured import StructuredOutputError
from langchain_hailuo.chat_models import ChatHailuo
from langchain_hailuo.errors import (
    HailuoAttachmentError,
    HailuoAuthError,
    HailuoBrowserUnavailableError,
    HailuoConfigurationError,
    HailuoConnectionError,
    HailuoError,
    HailuoLoginError,
    HailuoLoginTimeoutError,
    HailuoNoAccountAvailableError,
    HailuoNoPlanError,
    HailuoPoolUnavailableError,
    HailuoProtocolError,
    HailuoQuotaError,
    HailuoRateLimitError,
    HailuoRedirectError,
    HailuoResponseTooLargeError,
    HailuoRiskControlError,
    HailuoServerError,
    HailuoSessionBusyError,
    HailuoStallError,
    HailuoStreamInterruptedError,
    HailuoTimeoutError,
    HailuoTokenExpiredError,
    HailuoToolChoiceError,
    HailuoUnsupportedContentError,
    HailuoUploadError,
)
from langchain_hailuo.types import AuthResult, Conversation, RequestLogin, TitleGeneration

if TYPE_CHECKING:
    from langchain_hailuo.agent.provider import MiniMaxAgent
    from langchain_hailuo.v4.provider import HailuoAI

__version__ = "0.1.0"

__all__ = [
    "AuthResult",
    "ChatHailuo",
    "Conversation",
    "HailuoAI",
    "HailuoAttachmentError",
    "HailuoAuthError",
    "HailuoBrowserUnavailableError",
    "HailuoConfigurationError",
    "HailuoConnectionError",
    "HailuoError",
    "HailuoLoginError",
    "HailuoLoginTimeoutError",
    "HailuoNoAccountAvailableError",
    "HailuoNoPlanError",
    "HailuoPoolUnavailableError",
    "HailuoProtocolError",
    "HailuoQuotaError",
    "HailuoRateLimitError",
    "HailuoRedirectError",
    "HailuoResponseTooLargeError",
    "HailuoRiskControlError",
    "HailuoServerError",
    "HailuoSessionBusyError",
    "HailuoStallError",
    "HailuoStreamInterruptedError",
    "HailuoTimeoutError",
    "HailuoTokenExpiredError",
    "HailuoToolChoiceError",
    "HailuoUnsupportedContentError",
    "HailuoUploadError",
    "MiniMaxAgent",
    "RequestLogin",
    "StructuredOutputError",
    "TitleGeneration",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """The providers, imported on first access."""
    # The transport (aiohttp) loads on a model's first call: import budget.
    if name == "HailuoAI":
        from langchain_hailuo.v4.provider import HailuoAI  # noqa: PLC0415

        return HailuoAI
    if name == "MiniMaxAgent":
        from langchain_hailuo.agent.provider import MiniMaxAgent  # noqa: PLC0415

        return MiniMaxAgent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
