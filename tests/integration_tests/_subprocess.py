"""Running Python and the ``hailuo`` command in a child process the way a user would.

Every run is offline and starts without the caller's ``HAILUO_*`` variables, so nothing
reaches the real login. The CLI tests share what is here: the installed script with a
private ``HOME`` and auth file (the ``env`` fixture), one error line to read, the emulator
a run talks to (a fresh one per test, served from this process) or one run as a command.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, AnyStr

import pytest

from langchain_hailuo.emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 120
"""Seconds one run may take on a busy machine (each run imports Python and the package)."""


def run(
    argv: list[str],
    *,
    env: dict[str, str],
    stdin: str = "",
    timeout: float = RUN_TIMEOUT,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in ``cwd`` (the repository root) with ``env``; output captured as text."""
    return subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=env,
        check=False,
    )


def run_python(
    args: list[str], tmp_path: Path, *, timeout: float = RUN_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``python <args>`` from the repository root, with no ``HAILUO_*`` variable set.

    Args:
        args: The interpreter's arguments (``["-X", "dev", "script.py"]``).
        tmp_path: A folder for the (absent) auth file, so no real credential is found.
        timeout: Seconds the child may take.

    Returns:
        The finished process, its output captured as text.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAILUO_")}
    env["HAILUO_AUTH_FILE"] = str(tmp_path / "no-auth.json")  # no credentials: emulator
    return run([sys.executable, *args], env=env, timeout=timeout)


# --------------------------------------------------------------------------- the hailuo command


def hailuo_command() -> list[str]:
    """The installed ``hailuo`` script next to this Python, else ``python -m``."""
    script = shutil.which("hailuo", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "langchain_hailuo.cli"]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A user's environment with a private ``HOME``, config folder and auth file."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HAILUO_", "G4F_"))}
    clean.update(
        HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        HAILUO_AUTH_FILE=str(tmp_path / "state" / "auth.json"),
        PYTHONUNBUFFERED="1",
    )
    return clean


def hailuo(
    *args: str, env: dict[str, str], stdin: str = "", timeout: float = RUN_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """The installed command run with ``args``, ``stdin`` typed in, within ``timeout``."""
    return run([*hailuo_command(), *args], env=env, stdin=stdin, timeout=timeout)


def one_error_line(stderr: str) -> str:
    """The one line a failed run printed on standard error (it names the command)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("hailuo"), lines[0]
    assert "Traceback" not in stderr
    return lines[0]


def agent_env(emulator: Emulator, env: dict[str, str], **extra: str) -> dict[str, str]:
    """``env`` pointed at the emulator's Agent origins (``extra``: more variables)."""
    return {
        **env,
        "HAILUO_BASE_URL": emulator.agent_url,
        "HAILUO_STREAM_URL": emulator.agent_stream_url,
        **extra,
    }


def signed_in_env(
    emulator: Emulator, env: dict[str, str], token: str | None = None
) -> dict[str, str]:
    """:func:`agent_env` with ``HAILUO_TOKEN`` (``token``, else the default account's)."""
    signed_in = emulator.default_account.token if token is None else token
    return agent_env(emulator, env, HAILUO_TOKEN=signed_in)


@pytest.fixture
def emulator(hailuo_emulator: Emulator) -> Emulator:
    """A fresh emulator for each test, served from this process (the runs change it)."""
    return hailuo_emulator


@pytest.fixture
def emulator_process(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """``hailuo emulator`` running as a command, stopped after the test."""
    argv = [*hailuo_command(), "emulator", "--chunk-delay", "0"]
    pipe = subprocess.PIPE
    with subprocess.Popen(argv, stdout=pipe, stderr=pipe, text=True, env=env) as process:
        try:
            yield process
        finally:
            process.terminate()  # nothing happens to one that has already exited
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    """Lines of the process's output up to the one containing ``marker``."""
    assert process.stdout is not None
    stdout = process.stdout
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stdout:
            lines.put(line)
            if marker in line:
                return

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while not seen or marker not in seen[-1]:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {marker!r} in {seen}"
        try:
            seen.append(lines.get(timeout=remaining))
        except queue.Empty:
            pytest.fail(f"no {marker!r} within {timeout} s; got {seen}")
    return seen


def read_to(stream: IO[AnyStr], marker: AnyStr, limit: float = 120) -> AnyStr:
    """Read ``stream`` a character (or byte) at a time until ``marker`` was seen; all read.

    For output without a line end (a prompt); ``limit`` guards a busy machine.
    """
    seen = marker[:0]
    deadline = time.monotonic() + limit
    while marker not in seen:
        assert time.monotonic() < deadline, seen
        piece = stream.read(1)
        assert piece, seen
        seen += piece
    return seen
