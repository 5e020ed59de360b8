"""A client's own retries never post a message twice: the real SDKs with their default retries.

Both official SDKs retry 5xx, 409 and 429 answers twice by default unless the answer says
``x-should-retry: false``. Every failure after the message may have reached the service
says so; only the provably unsent ones (a 429 from the service) are retried. The
emulator counts the chat turns that reached it.
"""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from langchain_hailuo.emulator.app import Emulator
from tests.integration_tests._chats import mark
from tests.integration_tests._serve import (
    MODEL,
    Served,
    anthropic_sdk,
    openai_sdk,
    served_by,
)

HI: Any = [{"role": "user", "content": "A long answer please"}]


served = served_by(model={"max_retries": 0})


@pytest.fixture(autouse=True)
def _no_faults(emulator: Emulator) -> None:
    emulator.clear_faults()


def test_openai_sdk_does_not_resend_a_message_dropped_mid_answer(
    served: Served, emulator: Emulator
) -> None:
    emulator.fault("drop", after=4)
    start = mark(emulator)
    with (
        openai_sdk(served, max_retries=openai.DEFAULT_MAX_RETRIES) as sdk,  # default retries
        pytest.raises(openai.InternalServerError) as caught,
    ):
        sdk.chat.completions.create(model=MODEL, messages=HI)
    assert sdk.max_retries > 0
    assert mark(emulator) - start == 1
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert "dropped mid-answer" in str(caught.value)


def test_openai_sdk_stream_dropped_before_the_first_part_is_not_resent(
    served: Served, emulator: Emulator
) -> None:
    emulator.fault("drop", after=0)
    start = mark(emulator)
    with (
        openai_sdk(served, max_retries=openai.DEFAULT_MAX_RETRIES) as sdk,
        pytest.raises(openai.InternalServerError),
    ):
        for _ in sdk.chat.completions.create(model=MODEL, messages=HI, stream=True):
            pass
    assert mark(emulator) - start == 1


def test_anthropic_sdk_does_not_resend_a_message_dropped_mid_answer(
    served: Served, emulator: Emulator
) -> None:
    start = mark(emulator)
    with anthropic_sdk(served, max_retries=anthropic.DEFAULT_MAX_RETRIES) as sdk:
        assert sdk.max_retries > 0
        emulator.fault("drop", after=4)
        with pytest.raises(anthropic.InternalServerError) as caught:
            sdk.messages.create(model=MODEL, max_tokens=512, messages=HI)
        assert caught.value.response.headers["x-should-retry"] == "false"
        emulator.fault("drop", after=0)
        with (
            pytest.raises(anthropic.InternalServerError),
            sdk.messages.stream(model=MODEL, max_tokens=512, messages=HI) as stream,
        ):
            stream.get_final_message()
    assert mark(emulator) - start == 2  # one turn each, never a resend


def test_a_provably_unsent_429_is_retried_by_the_sdk(served: Served, emulator: Emulator) -> None:
    emulator.fault("http_429", seconds=1)
    start = mark(emulator)
    with openai_sdk(served, max_retries=openai.DEFAULT_MAX_RETRIES) as sdk:
        reply = sdk.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}]
        )
    assert reply.choices[0].message.content
    assert mark(emulator) - start == 2  # refused once (nothing posted), then answered
