"""Credits in sight (§7.3): ``hailuo pool status`` and ``pool.status()`` show each account's."""

from __future__ import annotations

from pathlib import Path

import pytest

from langchain_hailuo import ChatHailuo
from langchain_hailuo.agent.client import AgentClient, AgentSettings
from langchain_hailuo.agent.credits import read_credits
from langchain_hailuo.emulator.app import Emulator
from langchain_hailuo.errors import HailuoQuotaError
from langchain_hailuo.pool import save_account
from tests.integration_tests._subprocess import env, hailuo
from tests.integration_tests.pool._pool import auths_of, pool_model

__all__ = ["env"]

CREDITS = {"p0": 12.5, "p1": 800.0, "p2": 0.0}


def test_pool_status_over_three_accounts_shows_each_ones_plan_and_credits(
    pool_emulator: Emulator, tmp_path: Path, env: dict[str, str]
) -> None:
    folder = tmp_path / "accounts"
    for name, auth in zip(CREDITS, auths_of(pool_emulator, list(CREDITS)), strict=True):
        pool_emulator.accounts[name].credits = CREDITS[name]
        pool_emulator.accounts[name].plan = "Plus" if name == "p1" else "Free"
        located = auth.model_copy(
            update={"protocol": "agent", "api_origin": pool_emulator.agent_url}
        )
        save_account(name, located, env={"HAILUO_ACCOUNTS_DIR": str(folder)})
    result = hailuo("pool", "status", "--accounts-dir", str(folder), env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {
        line.split()[1]: line for line in result.stdout.splitlines() if line.startswith("credits ")
    }
    names = dict(zip(CREDITS, auths_of(pool_emulator, list(CREDITS)), strict=True))
    assert "plan Free, 12.50 credits left (grants: 12.50)" in lines[names["p0"].account_fingerprint]
    assert "plan Plus, 800.00 credits left" in lines[names["p1"].account_fingerprint]
    assert "plan Free, 0.00 credits left (grants: 0.00)" in lines[names["p2"].account_fingerprint]
    for auth in auths_of(pool_emulator):
        assert auth.token.get_secret_value() not in result.stdout


async def test_pool_status_and_the_quota_error_carry_the_last_reading(
    pool_emulator: Emulator,
) -> None:
    pool_emulator.accounts["p0"].credits = 3.0
    auth = auths_of(pool_emulator, ["p0"])[0]
    settings = AgentSettings(
        base_url=pool_emulator.agent_url, stream_url=pool_emulator.agent_stream_url
    )
    client = AgentClient(settings)
    try:
        booted = await client.bootstrap(auth)
        first = await read_credits(client, booted, settings=settings)
        again = await read_credits(client, booted, settings=settings)
    finally:
        await client.aclose()
    assert again is first  # read at most once a minute
    assert len(pool_emulator.requests_to("membership")) == 1
    model = pool_model(pool_emulator, accounts=[auth])
    statuses = {s.account: s for s in await model.pool.astatus()}  # type: ignore[union-attr]
    assert "plan Free, 3.00 credits left" in str(statuses[auth.account_fingerprint].credits)
    await model.aclose()

    pool_emulator.quota_wall("p0")
    single = ChatHailuo(**pool_emulator.model_kwargs(account="p0"), max_retries=0)
    with pytest.raises(HailuoQuotaError, match=r"3\.00 credits left when last read"):
        await single.ainvoke("hi")
