"""The langchain-tests standard unit suite for ChatHailuo."""

from __future__ import annotations

from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_hailuo.chat_models import ChatHailuo


class TestChatHailuoStandard(ChatModelUnitTests):
    """Standard unit tests (no network; ``test_serdes`` skips: not serializable)."""

    @property
    def chat_model_class(self) -> type[ChatHailuo]:
        return ChatHailuo

    @property
    def chat_model_params(self) -> dict:
        return {"model": "MiniMax-M3", "api_key": "test-token"}

    # Images and PDFs are taken on the MiniMax Agent protocol (the default); see the
    # integration suite, where the image and PDF tests run against the emulator.

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def supports_pdf_inputs(self) -> bool:
        return True

    @property
    def supports_image_tool_message(self) -> bool:
        return True

    @property
    def supports_pdf_tool_message(self) -> bool:
        return True

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
