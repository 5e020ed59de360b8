"""A new user's mistakes, each fed to the installed ``hailuo`` script in a subprocess.

Every run has a private ``HOME`` (see ``test_cli.py``). Each mistake must end in one line on
standard error that names what is at fault, a non-zero exit code and no traceback.
"""

from __future__ import annotations

import os
import pty
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from langchain_hailuo import __version__
from langchain_hailuo.emulator import Emulator
from langchain_hailuo.emulator.core import default_reply, make_token
from tests.integration_tests._subprocess import (
    emulator,
    env,
    hailuo,
    hailuo_command,
    one_error_line,
    read_to,
    signed_in_env,
)

__all__ = ["emulator", "env"]  # fixtures (from _subprocess)

pytestmark = pytest.mark.timeout(300)  # several Python processes per test

SUBCOMMANDS = ("login", "status", "logout", "doctor", "chat", "emulator", "serve", "pool")


def _fails_in_one_line(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return one_error_line(result.stderr)


# --------------------------------------------------------------------------- exit codes


def test_chat_with_an_unknown_model_exits_1(emulator: Emulator, env: dict[str, str]) -> None:
    result = hailuo("chat", "--model", "nope", env=signed_in_env(emulator, env), stdin="hi\n")
    line = _fails_in_one_line(result)
    assert "'nope'" in line
    assert "MiniMax-M3" in line  # what is available instead


def test_chat_with_a_token_that_is_not_a_minimax_token_says_so(
    emulator: Emulator, env: dict[str, str]
) -> None:
    result = hailuo("chat", env=signed_in_env(emulator, env, "garbage"), stdin="hi\n")
    line = _fails_in_one_line(result)
    assert "HAILUO_TOKEN" in line
    assert "not a MiniMax token" in line
    assert "expired" not in line


def test_an_expired_hailuo_token_is_told_to_set_a_new_one(
    emulator: Emulator, env: dict[str, str]
) -> None:
    expired = make_token(
        user_id="123456789012345678", device_id="1", name="x", expires_at=time.time() - 3600
    )
    result = hailuo("chat", env=signed_in_env(emulator, env, expired), stdin="hi\n")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "argument" not in result.stderr  # the token is HAILUO_TOKEN's, and called so
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("hailuo: error:")
    assert "set HAILUO_TOKEN" in line
    assert "run `hailuo login`" not in line


def test_chat_with_the_wrong_protocol_exits_1_and_names_the_settings(
    emulator: Emulator, env: dict[str, str]
) -> None:
    result = hailuo("chat", "--protocol", "v4", env=signed_in_env(emulator, env), stdin="hi\n")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hailuo: error:")
    assert "--protocol" in last


def test_chat_with_an_unreachable_service_exits_1(env: dict[str, str]) -> None:
    with socket.socket() as sock:  # a port nothing listens on (bound, never listening)
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        token = make_token(user_id="1" * 18, device_id="1", name="x", expires_at=time.time() + 3600)
        result = hailuo(
            "chat", env={**env, "HAILUO_TOKEN": token, "HAILUO_BASE_URL": url}, stdin="hi\n"
        )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("hailuo: error:")


@pytest.mark.parametrize("command", ["chat", "status", "doctor"])
def test_a_typo_in_hailuo_protocol_names_the_variable(env: dict[str, str], command: str) -> None:
    result = hailuo(command, env={**env, "HAILUO_PROTOCOL": "agnet"}, stdin="hi\n")
    line = _fails_in_one_line(result)
    assert "HAILUO_PROTOCOL" in line
    assert "'agnet'" in line


def test_status_honours_hailuo_protocol_and_takes_the_flags(
    emulator: Emulator, env: dict[str, str]
) -> None:
    token = emulator.default_account.token
    by_env = {**env, "HAILUO_TOKEN": token, "HAILUO_BASE_URL": emulator.url}
    result = hailuo("status", "--check", env={**by_env, "HAILUO_PROTOCOL": "v4"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "protocol:    v4" in result.stdout
    assert "the server accepts the token" in result.stdout
    flags = ("status", "--check", "--protocol", "v4", "--base-url", emulator.url)
    result = hailuo(*flags, env={**env, "HAILUO_TOKEN": token})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the server accepts the token" in result.stdout


# --------------------------------------------------------------------------- input


def test_login_token_without_a_terminal_or_input_is_one_line(env: dict[str, str]) -> None:
    result = hailuo("login", "--token", env=env, stdin="")
    line = _fails_in_one_line(result)
    assert "--token -" in line
    assert not Path(env["HAILUO_AUTH_FILE"]).exists()


def test_a_record_file_in_a_missing_folder_is_refused_before_the_doctor_runs(
    emulator: Emulator, env: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "no-such-folder" / "run.json"
    result = hailuo("doctor", "--record", str(target), env=signed_in_env(emulator, env))
    line = _fails_in_one_line(result)
    assert "--record" in line
    assert "no-such-folder" in line
    assert "OK " not in result.stdout  # no step ran: the run would have been lost
    assert not emulator.requests


@pytest.mark.parametrize("content", [None, "not a transcript"])
def test_replaying_a_missing_or_foreign_file_is_one_line(
    env: dict[str, str], tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "run.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = hailuo("emulator", "--replay", str(path), env=env)
    line = _fails_in_one_line(result)
    assert str(path) in line
    assert "hailuo doctor --record FILE" in line
    assert "Replaying" not in result.stdout  # nothing announced that did not start


@pytest.mark.parametrize("command", ["serve", "emulator"])
def test_a_port_out_of_range_is_bad_usage(env: dict[str, str], command: str) -> None:
    line = _fails_in_one_line(hailuo(command, "--port", "99999", env=env), code=2)
    assert "--port" in line
    assert "65535" in line


def test_serve_on_a_port_in_use_gives_the_emulators_hint(
    emulator: Emulator, env: dict[str, str]
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        serve = hailuo("serve", "--port", port, env=signed_in_env(emulator, env))
        emu = hailuo("emulator", "--port", port, env=env)
    for result in (serve, emu):
        line = _fails_in_one_line(result)
        assert line.endswith("pick another --port, or 0 for a free one."), line


def test_a_closed_pipe_ends_quietly(env: dict[str, str]) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # `hailuo doctor | true`: the reader is gone before the first line
    try:
        process = subprocess.run(
            [*hailuo_command(), "doctor"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert process.returncode == 141  # 128 + SIGPIPE, as a shell reports for any tool
    assert process.stderr == ""


def test_version_and_plain_help(env: dict[str, str]) -> None:
    version = hailuo("--version", env=env)
    assert version.returncode == 0
    assert version.stdout.strip() == f"hailuo {__version__}"
    for args in [(), *((name,) for name in SUBCOMMANDS)]:
        result = hailuo(*args, "--help", env=env)
        assert result.returncode == 0, (args, result.stderr)
        assert "usage: hailuo" in result.stdout
        assert "`" not in result.stdout, (args, result.stdout)


def test_the_browser_login_looks_for_its_browser_before_announcing_it(
    env: dict[str, str],
) -> None:
    result = hailuo("login", "--browser", "/nonexistent", env=env)
    line = _fails_in_one_line(result)
    assert "/nonexistent" in line
    assert "Opening" not in result.stdout


# --------------------------------------------------------------------------- chat


def test_ctrl_c_stops_the_answer_and_keeps_the_chat(
    emulator: Emulator, env: dict[str, str]
) -> None:
    emulator.fault("stall", times=1, after=4)  # the first answer stalls after some text
    typed, terminal = pty.openpty()  # someone types: prompts are shown (on stderr)
    process = subprocess.Popen(
        [*hailuo_command(), "chat"],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=signed_in_env(emulator, env),
    )
    os.close(terminal)
    try:
        assert process.stdout is not None
        assert process.stderr is not None
        read_to(process.stderr, b"you> ")
        os.write(typed, b"first\n")
        first = process.stdout.read(1)  # the answer has begun (then the stream stalls)
        process.send_signal(signal.SIGINT)
        read_to(process.stderr, b"hailuo: answer stopped\n")
        os.write(typed, b"second\n")
        partial = first + process.stdout.readline()  # the stopped answer, its line ended
        assert default_reply("first", 1).startswith(partial[:-1].decode())
        # The stopped turn is not kept: the next message is answered as a first turn.
        assert process.stdout.readline().decode() == default_reply("second", 1) + "\n"
        os.write(typed, b"\x04")  # Ctrl+D at the prompt: the chat ends normally
        assert process.wait(timeout=120) == 0
        assert b"Traceback" not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(typed)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
