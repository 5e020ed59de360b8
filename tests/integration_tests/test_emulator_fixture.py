"""The ``hailuo_emulator`` fixture from sync and async tests, and how an Agent turn ends.

A turn ends cleanly on both sides: the client reads past ``finish`` to get the usage, the
emulator treats a client that leaves as the end of the turn (the session is free, the
disconnect is recorded, nothing is logged), also during a stall.
"""

from __future__ import annotations

import logging

import pytest

from langchain_hailuo import ChatHailuo
from langchain_hailuo.emulator import Emulator
from langchain_hailuo.emulator.core import default_reply
from langchain_hailuo.errors import HailuoTimeoutError
from tests.integration_tests._waiting import await_until

pytestmark = pytest.mark.timeout(30)


def test_sync_test_reaches_the_fixture(hailuo_emulator: Emulator) -> None:
    # The fixture answers at once: none of the production pacing (first-byte wait, frame
    # spacing) the emulator can imitate, and no busy-session retry (the web client's 1 s).
    assert hailuo_emulator.agent.first_byte_delay == 0
    assert hailuo_emulator.agent.chunk_delay == hailuo_emulator.v4.chunk_delay == 0
    model = ChatHailuo(**hailuo_emulator.model_kwargs())
    answer = model.invoke("Hello from a sync test")
    assert answer.text == "You said: Hello from a sync test. This chat has 1 turn(s)."
    assert len(hailuo_emulator.requests_to("chat")) == 1
    model.close()


async def test_async_test_reaches_the_fixture(hailuo_emulator: Emulator) -> None:
    model = ChatHailuo(**hailuo_emulator.model_kwargs(protocol="v4"))
    answer = await model.ainvoke("Hello from an async test!")
    assert answer.text == "You said: Hello from an async test! This chat has 1 turn(s)."
    await model.aclose()


def test_shared_fixture_variant(hailuo_emulator_module: Emulator) -> None:
    model = ChatHailuo(**hailuo_emulator_module.model_kwargs())
    assert "1 turn(s)" in model.invoke("Shared?").text
    model.close()


def test_default_reply_has_one_full_stop() -> None:
    assert default_reply("Hi", 1) == "You said: Hi. This chat has 1 turn(s)."
    assert default_reply("Hi.", 2) == "You said: Hi. This chat has 2 turn(s)."
    assert default_reply("Why? ", 1) == "You said: Why? This chat has 1 turn(s)."


@pytest.mark.parametrize("protocol", ["agent", "v4"])
def test_turns_end_cleanly_and_agent_usage_arrives(
    hailuo_emulator: Emulator, protocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    model = ChatHailuo(**hailuo_emulator.model_kwargs(protocol=protocol))
    with caplog.at_level(logging.ERROR):
        first = model.invoke("One")
        second = model.invoke(["One", first, "Two"])
    assert "2 turn(s)" in second.text
    # every turn's body was read to its end: no disconnect, no 409 retry, no server traceback
    assert hailuo_emulator.disconnects == []
    assert len(hailuo_emulator.requests_to("chat")) == 2
    assert not [r for r in caplog.records if r.name.startswith("aiohttp")]
    if protocol == "agent":
        usage = second.usage_metadata
        assert usage is not None
        assert usage["input_tokens"] > 0
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
        assert second.response_metadata["msg_id"]
        assert second.id == f"hailuo-{second.response_metadata['msg_id']}"
    model.close()


@pytest.mark.parametrize("way", ["break", "stall"])
async def test_client_leaving_ends_the_turn(
    hailuo_emulator: Emulator, caplog: pytest.LogCaptureFixture, way: str
) -> None:
    emulator = hailuo_emulator
    emulator.agent.chunk_delay = 0.01
    emulator.script("A long answer. " * 40)
    model = ChatHailuo(**emulator.model_kwargs(), timeout=0.5)
    with caplog.at_level(logging.ERROR):
        if way == "stall":
            emulator.fault("stall", after=4)
            with pytest.raises(HailuoTimeoutError) as caught:
                await model.ainvoke("first")  # the client gives up during the stall
            assert caught.value.partial_text.startswith("A long")
        else:
            async for chunk in model.astream("first"):
                if chunk.text:
                    break  # the client goes away mid-answer
        await await_until(lambda: len(emulator.disconnects) >= 1, "the disconnect")
    (gone,) = emulator.disconnects
    assert gone.endpoint == "chat"
    session_id = gone.path.split("/session/")[1].split("/")[0]
    assert not emulator.agent.sessions[session_id].busy
    emulator.agent.chunk_delay = 0.0
    emulator.clear_faults()
    answer = await model.ainvoke("second", chat_id=session_id)
    assert "second" in answer.text
    # not 409 (which would have been retried): the first turn ended with the disconnect
    assert len(emulator.requests_to("chat")) == 2
    assert not [r for r in caplog.records if r.name.startswith("aiohttp")]
    await model.aclose()
