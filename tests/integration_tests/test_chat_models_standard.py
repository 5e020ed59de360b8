"""The langchain-tests standard integration suite, against the bundled emulator (both protocols).

The suite's tests are mostly synchronous, so the emulator cannot run on the test's event
loop (a sync test body never lets that loop serve requests). It runs on a loop of its own
in a daemon thread, started once for this module.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_hailuo._loop import LoopRunner
from langchain_hailuo.chat_models import ChatHailuo
from langchain_hailuo.emulator.app import Emulator
from tests._media_flags import AgentMediaFlags
from tests.integration_tests._media import (
    LANGCHAIN_TESTS_IMAGE_URL,
    LANGCHAIN_TESTS_PDF_URL,
    offline_get,
    pdf_bytes,
    png_bytes,
)

_RUNNER = LoopRunner(name="hailuo-emulator")
_EMULATOR: Emulator | None = None


def _emulator() -> Emulator:
    """The module's emulator, started on first use in its own thread."""
    global _EMULATOR  # noqa: PLW0603 - one emulator for the module, started lazily
    if _EMULATOR is None:
        emulator = Emulator()
        _RUNNER.run(emulator.start())
        _EMULATOR = emulator
    return _EMULATOR


@pytest.fixture(scope="module", autouse=True)
def _stop_emulator() -> Iterator[None]:
    global _EMULATOR  # noqa: PLW0603
    yield
    if _EMULATOR is not None:
        _RUNNER.run(_EMULATOR.stop())
        _EMULATOR = None
    _RUNNER.close()


class _EmulatorStandard(ChatModelIntegrationTests):
    """What both emulator suites share: ChatHailuo on the module's emulator, no tool tests."""

    protocol: ClassVar[str]

    @property
    def chat_model_class(self) -> type[ChatHailuo]:
        return ChatHailuo

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return _emulator().model_kwargs(protocol=self.protocol)

    @property
    def has_tool_calling(self) -> bool:
        # ChatHailuo does call tools (by prompting), but the emulator answers with its echo
        # ("You said: ...") unless a reply is scripted, and the standard tool tests script
        # nothing, so they could only fail here. Tool calling and structured output run on
        # the emulator with scripted replies in test_tools_emulator.py, and against the real
        # service in TestChatHailuoLiveStandard below.
        return False

    @property
    def has_structured_output(self) -> bool:
        # Same reason: the echo reply is never the requested JSON.
        return False


class TestChatHailuoAgentStandard(AgentMediaFlags, _EmulatorStandard):
    """MiniMax Agent protocol: text in, text out, token usage from the turn's final message."""

    protocol = "agent"

    @property
    def returns_usage_metadata(self) -> bool:
        # The final agent_message after the finish chunk carries usage; it lands on the last
        # chunk only (with model_name), so summed streams count each token once.
        return True

    @property
    def model_override_value(self) -> str:
        return "MiniMax-M2.7"

    # The media flags (AgentMediaFlags) run langchain-tests' image and PDF tests here: the
    # emulator checks every upload step and answers with each file's size and hash.

    @pytest.fixture(autouse=True)
    def _offline_samples(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Serve langchain-tests' sample image and PDF from memory (no internet here)."""
        files = {
            LANGCHAIN_TESTS_IMAGE_URL: png_bytes(32, 24),
            LANGCHAIN_TESTS_PDF_URL: pdf_bytes(),
        }
        monkeypatch.setattr(httpx, "get", offline_get(files))


class TestChatHailuoV4Standard(_EmulatorStandard):
    """The 2025 Hailuo web chat protocol: text in, text out; no usage counts.

    No image or file input: v4 refuses them (HailuoUnsupportedContentError naming the Agent
    protocol), so the image and PDF tests skip here.
    """

    protocol = "v4"

    @property
    def returns_usage_metadata(self) -> bool:
        # The v4 web chat never reports token counts.
        return False


@pytest.mark.live
@pytest.mark.enable_socket
@pytest.mark.skipif(
    not os.environ.get("HAILUO_TOKEN"),
    reason="live suite: set HAILUO_TOKEN (and HAILUO_BASE_URL / HAILUO_PROTOCOL for v4) to run "
    "the standard tests against the real Hailuo / MiniMax service",
)
class TestChatHailuoLiveStandard(AgentMediaFlags, ChatModelIntegrationTests):
    """The real service, configured from the environment, with everything switched on.

    Runs only with ``HAILUO_TOKEN`` set (``pytest -m live``). A real model follows the tool
    and output-format instructions, so the tool calling and structured output tests run here.
    """

    @property
    def chat_model_class(self) -> type[ChatHailuo]:
        return ChatHailuo

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # Token, base URL, stream URL and protocol come from HAILUO_* variables.
        return {"model": os.environ.get("HAILUO_MODEL", "MiniMax-M3"), "timeout": 300}

    @property
    def returns_usage_metadata(self) -> bool:
        # MiniMax Agent reports usage; the v4 web chat does not.
        return os.environ.get("HAILUO_PROTOCOL", "auto") != "v4"

    @property
    def takes_media(self) -> bool:
        # Images and files go through the Agent's upload pipeline; v4 refuses them.
        return os.environ.get("HAILUO_PROTOCOL", "auto") != "v4"

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        # method="json_mode" is prompted and validated like the other methods.
        return True
