"""The langchain-tests standard integration suite, against the bundled emulator (both protocols).

The suite's tests are mostly synchronous, so the emulator cannot run on the test's event
loop (a sync test body never lets that loop serve requests). It runs on a loop of its own
in a daemon thread, started once for this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_hailuo._loop import LoopRunner
from langchain_hailuo.chat_models import ChatHailuo
from langchain_hailuo.emulator.app import Emulator

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


class TestChatHailuoAgentStandard(ChatModelIntegrationTests):
    """MiniMax Agent protocol: text in, text out, token usage from the turn's final message."""

    @property
    def chat_model_class(self) -> type[ChatHailuo]:
        return ChatHailuo

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return _emulator().model_kwargs(protocol="agent")

    @property
    def returns_usage_metadata(self) -> bool:
        # The final agent_message after the finish chunk carries usage; it lands on the last
        # chunk only (with model_name), so summed streams count each token once.
        return True

    @property
    def model_override_value(self) -> str:
        return "MiniMax-M2.7"


class TestChatHailuoV4Standard(ChatModelIntegrationTests):
    """The 2025 Hailuo web chat protocol: text in, text out; no tools, no usage counts."""

    @property
    def chat_model_class(self) -> type[ChatHailuo]:
        return ChatHailuo

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return _emulator().model_kwargs(protocol="v4")

    @property
    def returns_usage_metadata(self) -> bool:
        # The v4 web chat never reports token counts.
        return False
