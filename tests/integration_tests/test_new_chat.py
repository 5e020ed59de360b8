"""A new chat as the browser starts one (§12.2): no pause, ``/config`` once, side by side."""

from __future__ import annotations

import pytest

from langchain_hailuo import AuthResult, MiniMaxAgent
from langchain_hailuo.agent.client import AgentClient, AgentSettings
from langchain_hailuo.emulator import Emulator

pytestmark = pytest.mark.timeout(30)


async def _answer(agent: MiniMaxAgent, auth: AuthResult, text: str) -> str:
    parts = [
        item
        async for item in agent.create_authed(
            "MiniMax-M3", [{"role": "user", "content": text}], auth
        )
    ]
    return "".join(p for p in parts if isinstance(p, str))


async def test_a_saved_login_reads_config_once_before_its_first_message_and_never_sleeps(
    hailuo_emulator: Emulator,
) -> None:
    account = hailuo_emulator.default_account
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    base, stream = hailuo_emulator.agent_url, hailuo_emulator.agent_stream_url
    client = AgentClient(AgentSettings(base_url=base, stream_url=stream), sleep=sleep)
    agent = MiniMaxAgent(client=client, base_url=base, stream_url=stream)
    # everything the bootstrap learns is already saved with the login: only /config is due
    auth = AuthResult(
        token=account.token,
        uuid=account.uuid,
        device_id=account.tab_device_id,
        real_user_id=account.real_user_id,
        agent_id=account.agent_id,
        models=["MiniMax-M3"],
    )
    try:
        assert (await _answer(agent, auth, "one")).startswith("You said: one.")
        assert (await _answer(agent, auth, "two")).startswith("You said: two.")
    finally:
        await client.aclose()
    endpoints = [r.endpoint for r in hailuo_emulator.requests]
    assert endpoints.count("config") == 1
    assert endpoints.index("config") < endpoints.index("chat")
    assert endpoints.count("session") == 2
    assert "not_configured" not in str(hailuo_emulator.requests)
    assert slept == []  # no fixed pause after creating a session, and nothing retried
