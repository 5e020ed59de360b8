"""The ``hailuo`` command as a user runs it: the installed console script, in a subprocess.

Every run gets a private ``HOME`` and ``HAILUO_AUTH_FILE`` in a temporary folder and no
``HAILUO_*`` variables from the outside, so nothing touches the real login.
"""

from __future__ import annotations

import re
import stat
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from langchain_hailuo.auth import AuthStore
from langchain_hailuo.emulator.core import default_reply, make_token
from langchain_hailuo.types import AuthResult
from tests.integration_tests._subprocess import (
    emulator_process,
    env,
    hailuo,
    one_error_line,
    read_until,
)

__all__ = ["emulator_process", "env"]  # fixtures (from _subprocess, as in every CLI test)

pytestmark = pytest.mark.timeout(60)

# --------------------------------------------------------------------------- chat


@pytest.mark.parametrize("protocol", [None, "v4"])
def test_chat_with_the_emulator_streams_answers_and_keeps_context(
    env: dict[str, str], protocol: str | None
) -> None:
    args = ["chat", "--emulator", *(["--protocol", protocol] if protocol else [])]
    result = hailuo(*args, env=env, stdin="My name is Ada\nWhat is my name\n")
    assert result.returncode == 0, result.stderr
    # Standard output is a file here: it holds the answers only; the rest went to stderr.
    assert f"emulator, {'v4' if protocol == 'v4' else 'agent'} protocol)" in result.stderr
    assert result.stdout.splitlines() == [
        default_reply("My name is Ada", 1),
        default_reply("What is my name", 2),  # the same server chat: two turns
    ]
    assert "you> " not in result.stderr  # nobody types: no prompts
    assert "error" not in result.stderr


def test_chat_without_a_login_fails_with_one_line(env: dict[str, str]) -> None:
    result = hailuo("chat", "--protocol", "v4", env=env, stdin="hello\n")
    assert result.returncode == 1
    assert "you> " not in result.stdout + result.stderr  # said before the first prompt
    line = one_error_line(result.stderr)
    assert "hailuo login" in line
    assert "HAILUO_TOKEN" in line


# --------------------------------------------------------------------------- status / logout


def test_status_without_an_auth_file_says_how_to_log_in(env: dict[str, str]) -> None:
    result = hailuo("status", env=env)
    assert result.returncode == 1
    assert env["HAILUO_AUTH_FILE"] in result.stdout
    assert "not logged in (run `hailuo login` or set HAILUO_TOKEN)" in result.stdout


def test_status_shows_fingerprint_and_expiry_never_the_token_then_logout_removes_it(
    env: dict[str, str],
) -> None:
    expires = time.time() + 10 * 86400
    token = make_token(user_id="1" * 18, device_id="2" * 18, name="ada", expires_at=expires)
    auth = AuthResult(token=token, protocol="v4", api_origin="https://www.hailuo.ai", uuid="u-1")
    path = Path(env["HAILUO_AUTH_FILE"])
    AuthStore(path).save(auth)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    result = hailuo("status", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert auth.account_fingerprint in out
    assert time.strftime("%Y-%m-%d", time.gmtime(expires)) in out
    assert "in 10 days" in out or "in 9 days" in out
    assert re.search(r"permissions:\s+0600\b", out)
    assert "WARNING" not in out
    assert "status:      logged in" in out
    for part in token.split("."):
        assert part not in out
        assert part not in result.stderr

    # A file others can read is flagged.
    path.chmod(0o644)
    assert "WARNING" in hailuo("status", env=env).stdout
    path.chmod(0o600)

    gone = hailuo("logout", env=env)
    assert gone.returncode == 0
    assert not path.exists()
    assert str(path) in gone.stdout
    again = hailuo("logout", env=env)
    assert again.returncode == 0
    assert "Nothing to remove" in again.stdout
    assert hailuo("status", env=env).returncode == 1


def test_status_of_an_expired_login_fails(env: dict[str, str]) -> None:
    token = make_token(user_id="1" * 18, device_id="2", name="ada", expires_at=time.time() - 60)
    AuthStore(Path(env["HAILUO_AUTH_FILE"])).save(AuthResult(token=token))
    result = hailuo("status", env=env)
    assert result.returncode == 1
    assert "EXPIRED" in result.stdout
    assert "run `hailuo login`" in result.stdout


# --------------------------------------------------------------------------- usage and login errors


@pytest.mark.parametrize(
    "args", [("chat", "--bogus"), ("status", "--nope"), ("frobnicate",), ()], ids=str
)
def test_bad_usage_exits_2_with_one_line(env: dict[str, str], args: tuple[str, ...]) -> None:
    result = hailuo(*args, env=env)
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "error:" in line
    assert "--help" in line


def test_login_with_a_missing_browser_exits_1_with_one_line(env: dict[str, str]) -> None:
    result = hailuo("login", "--browser", "/nonexistent", "--timeout", "1", env=env)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "/nonexistent" in line
    assert "Chromium" in line
    assert not Path(env["HAILUO_AUTH_FILE"]).exists()


# --------------------------------------------------------------------------- emulator


def test_emulator_command_prints_its_urls_and_serves_them(
    emulator_process: subprocess.Popen[str],
) -> None:
    lines = read_until(emulator_process, "redirect -> agent", timeout=20)
    text = "".join(lines)
    pattern = r"^(v4 chat \+ login page|agent control \+ login):\s+(\S+)"
    urls = dict(re.findall(pattern, text, re.MULTILINE))
    assert set(urls) == {"v4 chat + login page", "agent control + login"}
    for url in urls.values():
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/", timeout=5) as page:  # noqa: S310 - loopback
            assert page.status == 200
            assert 'id="login-form"' in page.read().decode()
    emulator_process.terminate()
    assert emulator_process.wait(timeout=10) is not None
