"""The langchain-tests standard unit suite for ChatHailuo."""

from __future__ import annotations

import pytest
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_hailuo.chat_models import ChatHailuo
from tests._media_flags import AgentMediaFlags


class TestChatHailuoStandard(AgentMediaFlags, ChatModelUnitTests):
    """Standard unit tests (no network; ``test_serdes`` skips: not serializable)."""

    # The suite's standard parameters include temperature and max_tokens, which the model
    # accepts and says it ignores (asserted in test_chat_models); not this suite's subject.
    pytestmark = pytest.mark.filterwarnings("ignore:ChatHailuo ignores:UserWarning")

    @property
    def chat_model_class(self) -> type[ChatHailuo]:
        return ChatHailuo

    @property
    def chat_model_params(self) -> dict:
        return {"model": "MiniMax-M3", "api_key": "test-token"}

    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        return (
            {
                "HAILUO_TOKEN": "env-token",
                "HAILUO_BASE_URL": "https://agent.minimaxi.com",
                "HAILUO_STREAM_URL": "https://agent-stream.minimaxi.com",
                "HAILUO_PROTOCOL": "agent",
            },
            {},
            {
                "token": "env-token",
                "base_url": "https://agent.minimaxi.com",
                "stream_url": "https://agent-stream.minimaxi.com",
                "protocol": "agent",
            },
        )
