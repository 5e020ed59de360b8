"""The public surface users import, pinned."""

from __future__ import annotations

import subprocess
import sys

import pytest

import langchain_hailuo

EXPECTED_ALL = [
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


def test_all_is_pinned() -> None:
    assert sorted(langchain_hailuo.__all__) == sorted(EXPECTED_ALL)
    for name in EXPECTED_ALL:
        assert hasattr(langchain_hailuo, name), name


def test_the_gpt4free_signature_helpers_are_importable() -> None:
    from langchain_hailuo.v4.crypt import generate_yy_header, get_body_to_yy

    assert callable(generate_yy_header)
    assert callable(get_body_to_yy)


@pytest.mark.parametrize("module", ["langchain_hailuo", "langchain_hailuo.cli"])
def test_import_loads_no_browser_driver_no_http_stack_and_no_emulator(module: str) -> None:
    # The import budget: the transport (aiohttp) loads on a model's first call, and each
    # `hailuo` subcommand loads what it runs (`hailuo --help` needs none of it).
    code = (
        f"import sys, {module}; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('nodriver', 'aiohttp') "
        "or m.startswith('langchain_hailuo.emulator')]; "
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""


def test_the_providers_and_clients_load_on_first_access() -> None:
    from langchain_hailuo.agent import AgentClient, MiniMaxAgent
    from langchain_hailuo.agent.client import AgentClient as ClientModuleAgentClient
    from langchain_hailuo.agent.provider import MiniMaxAgent as ProviderModuleMiniMaxAgent
    from langchain_hailuo.v4 import HailuoAI, V4Client
    from langchain_hailuo.v4.client import V4Client as ClientModuleV4Client
    from langchain_hailuo.v4.provider import HailuoAI as ProviderModuleHailuoAI

    assert langchain_hailuo.MiniMaxAgent is MiniMaxAgent is ProviderModuleMiniMaxAgent
    assert langchain_hailuo.HailuoAI is HailuoAI is ProviderModuleHailuoAI
    assert AgentClient is ClientModuleAgentClient
    assert V4Client is ClientModuleV4Client
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = langchain_hailuo.Nope
