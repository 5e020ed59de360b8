"""LangChain integration for MiniMax's consumer web chat (Hailuo AI / MiniMax Agent)."""

from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoConfigurationError,
    HailuoError,
    HailuoLoginError,
    HailuoLoginTimeoutError,
    HailuoProtocolError,
    HailuoQuotaError,
    HailuoRateLimitError,
    HailuoServerError,
    HailuoSessionBusyError,
    HailuoStreamInterruptedError,
    HailuoTimeoutError,
    HailuoUnsupportedContentError,
)
from langchain_hailuo.types import AuthResult, Conversation, RequestLogin, TitleGeneration

__version__ = "0.1.0"

__all__ = [
    "AuthResult",
    "Conversation",
    "HailuoAuthError",
    "HailuoConfigurationError",
    "HailuoError",
    "HailuoLoginError",
    "HailuoLoginTimeoutError",
    "HailuoProtocolError",
    "HailuoQuotaError",
    "HailuoRateLimitError",
    "HailuoServerError",
    "HailuoSessionBusyError",
    "HailuoStreamInterruptedError",
    "HailuoTimeoutError",
    "HailuoUnsupportedContentError",
    "RequestLogin",
    "TitleGeneration",
    "__version__",
]
