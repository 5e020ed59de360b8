"""The ``hailuo`` command as a new user meets it: token login, status, logout, chat, emulator.

The installed console script runs in a subprocess with a private ``HOME`` and auth file
(see ``test_cli.py``); the emulator is served from this process on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from langchain_hailuo.auth import AuthStore
from langchain_hailuo.emulator import Emulator
from langchain_hailuo.emulator.core import default_reply, make_token
from langchain_hailuo.types import AuthResult
from tests.integration_tests._subprocess import (
    emulator,
    emulator_process,
    env,
    hailuo,
    hailuo_command,
    one_error_line,
    read_to,
    read_until,
    signed_in_env,
)

__all__ = ["emulator", "emulator_process", "env"]  # fixtures (from _subprocess)

pytestmark = pytest.mark.timeout(300)  # several Python processes per test


def _agent_args(emulator: Emulator) -> list[str]:
    return ["--base-url", emulator.agent_url, "--stream-url", emulator.agent_stream_url]


def _answers(stdout: str) -> list[str]:
    """The answers of a chat whose standard output is not a terminal: one per line."""
    return stdout.splitlines()


# --------------------------------------------------------------------------- login --token


def test_token_login_from_stdin_bootstraps_saves_and_then_chat_works(
    emulator: Emulator, env: dict[str, str]
) -> None:
    account = emulator.default_account
    login = hailuo("login", "--token", "-", *_agent_args(emulator), env=env, stdin=account.token)
    assert login.returncode == 0, login.stderr
    assert "Logged in." in login.stdout
    path = Path(env["HAILUO_AUTH_FILE"])
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    saved = AuthStore(path).load()
    assert saved is not None
    assert saved.protocol == "agent"
    assert saved.api_origin == emulator.agent_url
    assert saved.real_user_id == account.real_user_id  # learnt over HTTP
    assert saved.agent_id == account.agent_id
    assert saved.models == account.models
    assert saved.device_id is not None
    assert re.fullmatch(r"\d{8}", saved.device_id)
    assert saved.uuid
    for part in account.token.split("."):
        assert part not in login.stdout + login.stderr

    # A new process chats with the saved login only (no HAILUO_* but the auth file).
    chat = hailuo("chat", env=env, stdin="hello\n\nsecond\n")
    assert chat.returncode == 0, chat.stderr
    assert _answers(chat.stdout) == [default_reply("hello", 1), default_reply("second", 2)]
    sent = {(r.query["device_id"], r.query["uuid"]) for r in emulator.requests_to("chat")}
    assert sent == {(saved.device_id, saved.uuid)}


def test_token_login_on_v4_registers_a_device(emulator: Emulator, env: dict[str, str]) -> None:
    account = emulator.default_account
    result = hailuo(
        "login", "--token", "-", "--base-url", emulator.url, "--protocol", "v4",
        env=env, stdin=account.token + "\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    saved = AuthStore(Path(env["HAILUO_AUTH_FILE"])).load()
    assert saved is not None
    assert (saved.protocol, saved.device_id) == ("v4", account.device_id)
    assert saved.uuid == emulator.registered_devices[-1]


def test_the_token_is_never_taken_from_the_command_line(env: dict[str, str]) -> None:
    result = hailuo("login", "--token", "eyJhbGciOi.secret.value", env=env)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "--token -" in line
    assert "eyJhbGciOi.secret.value" not in line
    assert not Path(env["HAILUO_AUTH_FILE"]).exists()


@pytest.mark.parametrize("case", ["expired", "unknown"])
def test_a_bad_token_login_is_one_line_and_saves_nothing(
    emulator: Emulator, env: dict[str, str], case: str
) -> None:
    expires = time.time() - 60 if case == "expired" else time.time() + 86400
    token = make_token(user_id="7" * 18, device_id="1", name="x", expires_at=expires)
    result = hailuo("login", "--token", "-", *_agent_args(emulator), env=env, stdin=token)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert ("expired" if case == "expired" else "401") in line
    assert token not in result.stdout + result.stderr
    assert AuthStore(Path(env["HAILUO_AUTH_FILE"])).load() is None


def test_a_windowed_login_without_a_display_says_so_in_one_line(
    env: dict[str, str], browser_executable: str
) -> None:
    headless_env = {k: v for k, v in env.items() if k not in {"DISPLAY", "WAYLAND_DISPLAY"}}
    result = hailuo("login", "--browser", browser_executable, "--timeout", "1", env=headless_env)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "display" in line
    assert "--token" in line
    assert "--headless" in line


# --------------------------------------------------------------------------- status / logout


def test_status_honours_hailuo_token_and_check_asks_the_server(
    emulator: Emulator, env: dict[str, str]
) -> None:
    token = emulator.default_account.token
    env = {**env, "HAILUO_TOKEN": token, "HAILUO_BASE_URL": emulator.agent_url}
    result = hailuo("status", env=env)
    assert result.returncode == 0, result.stderr
    assert "the HAILUO_TOKEN environment variable" in result.stdout
    assert "expires:" in result.stdout
    assert "not checked with the server" in result.stdout
    checked = hailuo("status", "--check", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "the server accepts the token" in checked.stdout
    assert "plan Free, 1000.00 credits left" in checked.stdout
    emulator.rotate_token()
    refused = hailuo("status", "--check", env=env)
    assert refused.returncode == 1
    assert "NOT usable" in refused.stdout
    for text in (result.stdout, checked.stdout, refused.stdout + refused.stderr):
        assert token not in text


def test_logout_removes_the_file_and_its_locks_and_all_the_profile(
    emulator: Emulator, env: dict[str, str], tmp_path: Path
) -> None:
    account = emulator.default_account
    assert hailuo("login", "--token", "-", *_agent_args(emulator), env=env, stdin=account.token)
    path = Path(env["HAILUO_AUTH_FILE"])
    assert path.exists()
    assert path.with_name(path.name + ".lock").exists()
    profile = tmp_path / "profile"
    (profile / "Default").mkdir(parents=True)
    result = hailuo("logout", "--all", "--profile-dir", str(profile), env=env)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in path.parent.iterdir()) == []
    assert not profile.exists()
    assert str(path) in result.stdout


# --------------------------------------------------------------------------- chat


def test_chat_goes_on_after_an_error_and_reports_bad_input_in_one_line(
    emulator: Emulator, env: dict[str, str]
) -> None:
    emulator.fault("quota_wall", times=1)
    env = signed_in_env(emulator, env)
    process = subprocess.run(
        [*hailuo_command(), "chat"],
        input=b"first\n\xff\xfe broken\n\nsecond\n",
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    stdout, stderr = process.stdout.decode(), process.stderr.decode()
    assert process.returncode == 0, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("hailuo: error")]
    assert len(errors) == 2, stderr
    assert "credits" in errors[0]
    assert "not valid UTF-8" in errors[1]
    assert "Traceback" not in stderr
    assert _answers(stdout)[-1] == default_reply("second", 1)


def test_ctrl_c_ends_the_chat_at_once(env: dict[str, str]) -> None:
    typed, terminal = pty.openpty()  # someone types: the prompts are shown (on stderr)
    process = subprocess.Popen(
        [*hailuo_command(), "chat", "--emulator"],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    os.close(terminal)
    try:
        assert process.stderr is not None  # a pipe: the prompts go to standard error
        read_to(process.stderr, "you> ")
        process.send_signal(signal.SIGINT)
        # Generous: only a chat stuck on its blocked stdin read would take this long.
        assert process.wait(timeout=60) == 130
        assert process.stderr is not None
        rest = process.stderr.read()
        assert "Traceback" not in rest
        assert rest.strip().splitlines()[-1] == "hailuo: interrupted"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(typed)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


# --------------------------------------------------------------------------- emulator


def test_emulator_prints_export_lines_that_work_when_pasted(
    emulator_process: subprocess.Popen[str], env: dict[str, str]
) -> None:
    lines = read_until(emulator_process, "export HAILUO_TOKEN", timeout=120)
    lines += read_until(emulator_process, "export HAILUO_TOKEN", timeout=120)
    exports = [line.strip() for line in lines if line.startswith("export ")]
    blocks: list[dict[str, str]] = [{}]
    for line in exports:
        name, value = line.removeprefix("export ").split("=", 1)
        blocks[-1][name] = shlex.split(value)[0]
        if name == "HAILUO_TOKEN":
            blocks.append({})
    agent, v4 = blocks[0], blocks[1]
    assert agent["HAILUO_PROTOCOL"] == "agent"
    assert v4["HAILUO_PROTOCOL"] == "v4"
    for values in (agent, v4):
        result = hailuo("chat", env={**env, **values}, stdin="pasted\n")
        assert result.returncode == 0, result.stderr
        assert _answers(result.stdout) == [default_reply("pasted", 1)]


def test_emulator_on_a_port_in_use_is_one_line(env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = hailuo("emulator", "--port", str(port), env=env)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert f"127.0.0.1:{port}" in line
    assert "--port" in line


def test_device_pair_of_an_old_login_file_is_made_once_and_kept(
    emulator: Emulator, env: dict[str, str]
) -> None:
    # A login saved by an older version: no device pair at all.
    auth = AuthResult(
        token=emulator.default_account.token,
        protocol="agent",
        api_origin=emulator.agent_url,
        stream_origin=emulator.agent_stream_url,
    )
    path = Path(env["HAILUO_AUTH_FILE"])
    AuthStore(path).save(auth)
    for text in ("one", "two"):
        result = hailuo("chat", env=env, stdin=f"{text}\n")
        assert result.returncode == 0, result.stderr
    pairs = {(r.query["device_id"], r.query["uuid"]) for r in emulator.requests}
    assert len(pairs) == 1
    stored = json.loads(path.read_text())
    assert (stored["device_id"], stored["uuid"]) == next(iter(pairs))
    assert path.stat().st_mode & 0o077 == 0


def test_an_unwritable_auth_file_is_an_error_line_not_a_traceback(
    emulator: Emulator, env: dict[str, str], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env = {**env, "HAILUO_AUTH_FILE": str(blocker / "auth.json")}
    account = emulator.default_account
    result = hailuo("login", "--token", "-", *_agent_args(emulator), env=env, stdin=account.token)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hailuo: error: ")
    assert str(blocker) in last
    assert account.token not in result.stderr
