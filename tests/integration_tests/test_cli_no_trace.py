"""Files a user did not ask for: device ids go where ``HAILUO_AUTH_FILE`` says, or nowhere.

The installed ``hailuo`` script runs in a subprocess with a private ``HOME`` (see
``test_cli.py``) against an emulator served from this process on 127.0.0.1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langchain_hailuo.emulator import Emulator
from langchain_hailuo.emulator.core import default_reply
from tests.integration_tests._subprocess import (
    agent_env,
    emulator,
    env,
    hailuo,
    signed_in_env,
)

__all__ = ["emulator", "env"]  # fixtures (from _subprocess)

pytestmark = pytest.mark.timeout(300)  # several Python processes per test


def _device_keys(path: Path) -> list[str]:
    return sorted(json.loads(path.read_text())["devices"])


def test_a_pool_of_tokens_keeps_its_device_ids_in_hailuo_auth_file(
    emulator: Emulator, env: dict[str, str], tmp_path: Path
) -> None:
    pool = agent_env(emulator, env, HAILUO_TOKENS=emulator.default_account.token)
    result = hailuo("chat", env=pool, stdin="hi\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [default_reply("hi", 1)]
    auth_file = Path(env["HAILUO_AUTH_FILE"])
    assert len(_device_keys(auth_file)) == 1
    assert not (tmp_path / "config").exists()  # nothing in the default config folder


def test_an_unwritable_config_folder_works_with_one_warning(
    emulator: Emulator, env: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # the config folder cannot be made (even by root)
    settings = signed_in_env(emulator, env)
    del settings["HAILUO_AUTH_FILE"]
    settings["XDG_CONFIG_HOME"] = str(blocker)
    result = hailuo("chat", env=settings, stdin="one\ntwo\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [default_reply("one", 1), default_reply("two", 2)]
    warnings = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1, result.stderr
    assert "kept in memory" in warnings[0]
    sent = {(r.query["device_id"], r.query["uuid"]) for r in emulator.requests_to("chat")}
    assert len(sent) == 1  # one pair for the whole process


def test_a_hailuo_token_users_device_pair_is_kept_without_a_login_file_status_rejects(
    emulator: Emulator, env: dict[str, str]
) -> None:
    token = emulator.default_account.token
    first = hailuo("chat", env=signed_in_env(emulator, env, token), stdin="hi\n")
    assert first.returncode == 0, first.stderr
    auth_file = Path(env["HAILUO_AUTH_FILE"])
    [key] = _device_keys(auth_file)
    second = hailuo("chat", env=signed_in_env(emulator, env, token), stdin="again\n")
    assert second.returncode == 0, second.stderr
    pairs = {(r.query["device_id"], r.query["uuid"]) for r in emulator.requests_to("chat")}
    assert len(pairs) == 1  # the same pair in both processes

    status = hailuo("status", env=env)  # no HAILUO_TOKEN: nobody is logged in, and it says so
    assert status.returncode == 1
    assert "not logged in" in status.stdout
    assert "no usable login" not in status.stdout
    login = hailuo(
        "login",
        "--token",
        "-",
        "--base-url",
        emulator.agent_url,
        "--stream-url",
        emulator.agent_stream_url,
        env=env,
        stdin=token,
    )
    assert login.returncode == 0, login.stderr
    assert _device_keys(auth_file) == [key]  # the login keeps the pair
    assert hailuo("status", env=env).returncode == 0


def test_a_device_pair_unused_for_90_days_is_pruned_by_the_next_chat(
    emulator: Emulator, env: dict[str, str]
) -> None:
    auth_file = Path(env["HAILUO_AUTH_FILE"])
    auth_file.parent.mkdir(parents=True)
    stale = {"device_id": "12345678", "uuid": "u-stale", "used_at": 1.0}  # 1970: long unused
    auth_file.write_text(json.dumps({"devices": {"agent:gone-account": stale}}))
    auth_file.chmod(0o600)
    token_env = signed_in_env(emulator, env)
    result = hailuo("chat", env=token_env, stdin="hi\n")
    assert result.returncode == 0, result.stderr
    keys = _device_keys(auth_file)
    assert "agent:gone-account" not in keys
    assert len(keys) == 1  # this token's own pair, kept for its next run
