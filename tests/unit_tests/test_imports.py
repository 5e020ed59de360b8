"""The public surface users import, pinned."""

from __future__ import annotations

import subprocess
import sys

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


def test_seed_names_are_importable() -> None:
    from langchain_hailuo.v4.crypt import generate_yy_header, get_body_to_yy

    assert callable(generate_yy_header)
    assert callable(get_body_to_yy)


def test_package_import_loads_no_browser_driver_and_no_emulator() -> None:
    code = (
        "import sys, langchain_hailuo; "
        "heavy = [m for m in sys.modules if m.split('.')[0] == 'nodriver' "
        "or m.startswith('langchain_hailuo.emulator') or m == 'aiohttp.web']; "
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
