"""``hailuo login --add NAME`` and ``hailuo pool status`` (issue #13)."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from langchain_hailuo import cli
from langchain_hailuo.auth import AuthStore, LoginOptions
from langchain_hailuo.emulator.app import Emulator
from langchain_hailuo.pool import save_account
from langchain_hailuo.types import AuthResult
from tests.integration_tests._subprocess import env, hailuo, one_error_line
from tests.integration_tests.pool._pool import auths_of, pool_model

__all__ = ["env"]  # a fixture


def test_login_add_saves_a_pool_account_with_its_own_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pool_emulator: Emulator
) -> None:
    monkeypatch.setenv("HAILUO_ACCOUNTS_DIR", str(tmp_path / "pool"))
    auth = auths_of(pool_emulator, ["p1"])[0]
    seen: list[LoginOptions] = []

    async def fake_login(
        options: LoginOptions,
    ) -> AuthResult:  # the browser part is tested elsewhere
        seen.append(options)
        return auth

    monkeypatch.setattr(cli, "browser_login", fake_login)
    out = io.StringIO()
    assert (
        cli.main(["login", "--add", "work-2", "--base-url", pool_emulator.agent_url], out=out) == 0
    )
    path = tmp_path / "pool" / "work-2.json"
    assert f"Saved to {path}" in out.getvalue()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = AuthStore(path).load()
    assert loaded is not None
    assert loaded.account_fingerprint == auth.account_fingerprint
    assert seen[0].profile_dir == tmp_path / "pool" / "work-2.profile"
    assert auth.token.get_secret_value() not in out.getvalue()


def test_login_add_refuses_a_name_that_is_not_a_file_name(env: dict[str, str]) -> None:
    result = hailuo("login", "--add", "../escape", "--browser", "/nonexistent", env=env)
    assert result.returncode == 1
    assert "not usable as a file name" in one_error_line(result.stderr)


def test_pool_status_without_a_pool_says_how_to_add_accounts(env: dict[str, str]) -> None:
    result = hailuo("pool", "status", env=env)
    assert result.returncode == 1
    assert "hailuo login --add NAME" in result.stdout


async def test_pool_status_shows_every_process_s_accounts_from_redis(
    pool_emulator: Emulator,
    redis_url: str,
    tmp_path: Path,
    env: dict[str, str],
) -> None:
    folder = tmp_path / "accounts"
    for name, auth in zip(["p0", "p1"], auths_of(pool_emulator, ["p0", "p1"]), strict=True):
        save_account(name, auth, env={"HAILUO_ACCOUNTS_DIR": str(folder)})
    model = pool_model(pool_emulator, accounts=[folder], pool_url=redis_url)
    walled = pool_emulator.quota_wall("p0")
    for i in range(3):
        await model.ainvoke(f"Hello {i}")
    pool_emulator.lift(walled)
    await model.aclose()

    result = hailuo(
        "pool", "status", "--pool-url", redis_url, "--accounts-dir", str(folder), env=env
    )
    assert result.returncode == 0, result.stderr
    fingerprints = [a.account_fingerprint for a in auths_of(pool_emulator, ["p0", "p1"])]
    lines = {
        line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("acct-")
    }
    assert set(lines) == set(fingerprints)
    assert "quota until" in lines[fingerprints[0]]
    assert "HailuoQuotaError" in lines[fingerprints[0]]
    assert lines[fingerprints[1]].split()[1:3] == ["0", "3"]  # no stream now, three answers
    for auth in auths_of(pool_emulator):
        assert auth.token.get_secret_value() not in result.stdout
    # Without the folder, Redis still lists the accounts some process registered.
    result = hailuo("pool", "status", "--pool-url", redis_url, env=env)
    assert result.returncode == 0, result.stderr
    assert all(f in result.stdout for f in fingerprints)
