"""The pool's parts without a network: account sources, health, the in-process backend, waiting."""

from __future__ import annotations

import asyncio
import stat
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from langchain_hailuo.chat_models import ChatHailuo
from langchain_hailuo.emulator.core import make_token
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoConfigurationError,
    HailuoNoAccountAvailableError,
    HailuoQuotaError,
    HailuoRateLimitError,
    HailuoServerError,
)
from langchain_hailuo.pool import (
    AccountPool,
    HealthSettings,
    InProcessBackend,
    account_file,
    load_accounts,
    pool_specs_from_env,
    save_account,
)
from langchain_hailuo.pool.backend import Candidate
from langchain_hailuo.pool.health import Cooldown, cooldown_for
from langchain_hailuo.types import AuthResult


def _token(user: str) -> str:
    return make_token(user_id=user, device_id="1" * 18, name=user, expires_at=time.time() + 3600)


# --------------------------------------------------------------------------- sources


def test_env_names_a_pool_by_tokens_or_by_folder(tmp_path: Path) -> None:
    specs = pool_specs_from_env({"HAILUO_TOKENS": f" {_token('1')} ,, {_token('2')} "})
    assert specs is not None
    assert [type(s) for s in specs] == [SecretStr, SecretStr]
    assert pool_specs_from_env({"HAILUO_ACCOUNTS_DIR": str(tmp_path)}) == [tmp_path]
    assert pool_specs_from_env({}) is None


async def test_accounts_load_from_tokens_results_files_and_folders(tmp_path: Path) -> None:
    env = {"HAILUO_ACCOUNTS_DIR": str(tmp_path / "pool"), "HAILUO_UUID": "not-for-pools"}
    save_account("a", AuthResult(token=SecretStr(_token("a"))), env)
    save_account("b", AuthResult(token=SecretStr(_token("b"))), env)
    (tmp_path / "pool" / "broken.json").write_text("{not json")
    single = tmp_path / "c.json"
    save_account("c", AuthResult(token=SecretStr(_token("c"))), env)
    (tmp_path / "pool" / "c.json").rename(single)
    accounts = await load_accounts(
        [
            SecretStr(_token("t")),
            AuthResult(token=SecretStr(_token("r")), uuid="u-r"),
            single,
            tmp_path / "pool",
            SecretStr(_token("a")),  # the same account as a.json: kept once
        ],
        env=env,
    )
    names = [a.name for a in accounts]
    assert len(names) == len(set(names)) == 5
    origins = [a.origin for a in accounts]
    assert origins[0] == "token #1"
    assert origins[1] == "AuthResult #2"
    assert origins[2] == str(single)
    assert origins[3].endswith("a.json")
    assert origins[4].endswith("b.json")
    first = await accounts[0].auth()
    assert first.uuid is None  # HAILUO_UUID belongs to the one-account setup, not to pools
    assert (await accounts[1].auth()).uuid == "u-r"


async def test_bad_account_specs_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(HailuoConfigurationError, match="empty"):
        await load_accounts([])
    with pytest.raises(HailuoConfigurationError, match="no such file"):
        await load_accounts([tmp_path / "missing.json"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(HailuoAuthError, match="hailuo login --add NAME"):
        await load_accounts([tmp_path / "empty"])
    for bad in ["", "../x", ".hidden", "a/b", "a b"]:
        with pytest.raises(HailuoConfigurationError, match="file name"):
            account_file(bad, {"HAILUO_ACCOUNTS_DIR": str(tmp_path)})


def test_saved_pool_accounts_are_private(tmp_path: Path) -> None:
    path = save_account(
        "w1", AuthResult(token=SecretStr(_token("w"))), {"HAILUO_ACCOUNTS_DIR": str(tmp_path)}
    )
    assert path == tmp_path / "w1.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_model_accounts_keep_tokens_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    token = _token("secret-user")
    monkeypatch.delenv("HAILUO_TOKEN", raising=False)
    model = ChatHailuo(accounts=[token, "/srv/accounts/a.json"])
    assert model.accounts is not None
    assert isinstance(model.accounts[0], SecretStr)
    assert model.accounts[1] == Path("/srv/accounts/a.json")
    assert token not in repr(model)
    assert token not in str(model.model_dump())
    assert model.pool is not None


def test_an_explicit_token_wins_over_a_pool_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HAILUO_TOKENS", f"{_token('1')},{_token('2')}")
    monkeypatch.delenv("HAILUO_POOL_URL", raising=False)
    assert ChatHailuo(token=_token("3")).pool is None
    monkeypatch.delenv("HAILUO_TOKEN", raising=False)
    assert ChatHailuo().pool is not None


# --------------------------------------------------------------------------- health


def test_failures_map_to_rests() -> None:
    settings = HealthSettings(quota_cooldown=100, rate_limit_cooldown=7)
    quota = cooldown_for(HailuoQuotaError("out"), settings, "h")
    assert quota is not None
    assert (quota.kind, quota.seconds) == ("quota", 100)
    limited = cooldown_for(HailuoRateLimitError("slow", retry_after=3), settings, "h")
    assert limited is not None
    assert (limited.kind, limited.seconds) == ("rate_limit", 3)
    unsaid = cooldown_for(HailuoRateLimitError("slow"), settings, "h")
    assert unsaid is not None
    assert unsaid.seconds == 7
    rejected = cooldown_for(HailuoAuthError("no"), settings, "h")
    assert rejected is not None
    assert (rejected.kind, rejected.seconds, rejected.token) == ("auth", None, "h")
    assert cooldown_for(HailuoServerError("500"), settings, "h") is None
    assert rejected.blocks("h", time.time())
    assert not rejected.blocks("another login", time.time())
    assert Cooldown("quota", 1, "", until=10.0).blocks("h", 5.0)
    assert not Cooldown("quota", 1, "", until=10.0).blocks("h", 11.0)


# --------------------------------------------------------------------------- the in-process backend


async def test_the_least_loaded_free_account_is_leased_up_to_the_limit() -> None:
    backend = InProcessBackend()
    a, b = Candidate("a", "ta"), Candidate("b", "tb")
    first = await backend.try_acquire([a, b], limit=2, ttl=30)
    second = await backend.try_acquire([a, b], limit=2, ttl=30)
    assert (first.account, second.account) == ("a", "b")
    third = await backend.try_acquire([a, b], limit=2, ttl=30)
    fourth = await backend.try_acquire([a, b], limit=2, ttl=30)
    assert (third.account, fourth.account) == ("a", "b")
    full = await backend.try_acquire([a, b], limit=2, ttl=30)
    assert full.account is None
    assert full.busy
    assert first.lease_id is not None
    await backend.release(
        "a",
        first.lease_id,
        served=False,
        error="E",
        cooldown=Cooldown("auth", None, "rejected", token="ta"),
    )
    again = await backend.try_acquire([a], limit=2, ttl=30)
    assert again.account is None
    assert set(again.cooling) == {"a"}
    relogged = await backend.try_acquire([Candidate("a", "new login")], limit=2, ttl=30)
    assert relogged.account == "a"  # a new token ends the rest
    (status,) = await backend.status(["a"])
    assert status.cooling is None
    assert status.last_error == "E"


async def test_a_waiting_call_is_woken_by_a_release_not_by_a_timer() -> None:
    pool = AccountPool([SecretStr(_token("w"))])
    (account,) = await pool.accounts()
    async with pool.lease(None, within=None) as held:
        assert held.account is account
        waiter = asyncio.create_task(_take(pool))
        while not len(pool.backend.waiters):
            await asyncio.sleep(0)
        await asyncio.sleep(0.05)
        assert not waiter.done()  # it waits (no deadline, no timer) for the release
    assert await asyncio.wait_for(waiter, 5) == account.name


async def _take(pool: AccountPool) -> str:
    async with pool.lease(None, within=None) as lease:
        return lease.account.name


async def test_no_account_error_says_why_and_when(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = AccountPool(
        [SecretStr(_token("x")), SecretStr(_token("y"))], health=HealthSettings(quota_cooldown=120)
    )
    x, y = await pool.accounts()
    for account in (x, y):
        with pytest.raises(HailuoQuotaError):
            async with pool.lease(account.name, within=1):
                raise HailuoQuotaError("Out of credits.")
    started = time.monotonic()
    with pytest.raises(HailuoNoAccountAvailableError) as caught:
        async with pool.lease(None, within=60):
            pass
    assert time.monotonic() - started < 30  # it does not wait out a timeout it cannot meet
    error = caught.value
    assert error.retry_after is not None
    assert 100 < error.retry_after <= 120
    assert "quota until" in error.message
    assert "The next one frees up at" in error.message
    with pytest.raises(HailuoQuotaError, match="owns this chat"):
        async with pool.lease(x.name, within=60):
            pass


async def test_a_waiter_cancelled_as_it_is_woken_passes_the_account_on() -> None:
    """The release wakes the oldest waiter; cancelled before it runs, the next one gets it."""
    pool = AccountPool([SecretStr(_token("woken-then-cancelled"))])  # no other test's state
    (account,) = await pool.accounts()
    done = asyncio.Event()
    woken: list[asyncio.Task[str]] = []

    async def holder() -> None:
        async with pool.lease(None, within=None):
            await done.wait()
        woken[0].cancel()  # the release just woke it; it has not run yet

    held = asyncio.create_task(holder())
    await asyncio.sleep(0)
    woken.append(asyncio.create_task(_take(pool)))
    await asyncio.sleep(0)
    last = asyncio.create_task(_take(pool))
    await asyncio.sleep(0)
    done.set()
    await held
    with pytest.raises(asyncio.CancelledError):
        await woken[0]
    assert await asyncio.wait_for(last, 10) == account.name
