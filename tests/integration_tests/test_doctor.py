"""``hailuo doctor`` against the emulator: healthy, then each failure names its step.

The installed console script runs in a subprocess with only environment variables (or an
auth file holding cookies); every output is searched for the token and the cookie values.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from langchain_hailuo.auth import AuthStore
from langchain_hailuo.doctor import challenge_page
from langchain_hailuo.emulator import Emulator, EmulatorAccount
from langchain_hailuo.emulator.core import make_token
from langchain_hailuo.emulator.pytest_plugin import serving
from langchain_hailuo.types import AuthResult
from tests.integration_tests._subprocess import (
    emulator,
    env,
    hailuo,
    signed_in_env,
)

__all__ = ["emulator", "env"]  # fixtures (from _subprocess)

pytestmark = pytest.mark.timeout(300)  # several Python processes per test


COOKIE_VALUE = "cf-clearance-SECRET-4f2a9c"

STEPS = (
    "credentials",
    "token expiry",
    "control origin",
    "stream origin",
    "redirects",
    "cloudflare",
    "identity",
    "config",
    "credits",
    "chat",
    "protocol drift",
)


def _statuses(stdout: str) -> dict[str, str]:
    pattern = r"^(OK|FAIL|SKIP)\s+(.+?)\s+\d+\.\d\d s "
    found = {name: status for status, name in re.findall(pattern, stdout, re.MULTILINE)}
    assert tuple(found) == STEPS, stdout
    return found


def _assert_no_secret(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    text = result.stdout + result.stderr
    assert "Traceback" not in text
    for secret in secrets:
        for part in secret.split("."):  # no JWT part either
            assert part not in text, part


def _failed(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 1, result.stdout + result.stderr
    statuses = _statuses(result.stdout)
    failed = [name for name, status in statuses.items() if status == "FAIL"]
    assert f"FAILED: {', '.join(failed)}" in result.stdout
    return failed


def test_a_healthy_agent_login_passes_every_step(emulator: Emulator, env: dict[str, str]) -> None:
    token = emulator.default_account.token
    auth = AuthResult(
        token=token,
        protocol="agent",
        api_origin=emulator.agent_url,
        stream_origin=emulator.agent_stream_url,
        cookies={"cf_clearance": COOKIE_VALUE},
    )
    AuthStore(Path(env["HAILUO_AUTH_FILE"])).save(auth)
    result = hailuo("doctor", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(_statuses(result.stdout).values()) == {"OK"}
    assert "All steps passed." in result.stdout
    assert "plain HTTP, no TLS" in result.stdout
    assert "models: MiniMax-M3, MiniMax-M2.7" in result.stdout
    assert "no unknown frame, field, event or error code" in result.stdout
    assert "plan Free, 1000.00 credits left (grants: 1000.00)" in result.stdout
    assert len(emulator.requests_to("chat")) == 1
    _assert_no_secret(result, token, COOKIE_VALUE)


def test_drift_in_the_stream_is_listed_by_shape(emulator: Emulator, env: dict[str, str]) -> None:
    token = emulator.default_account.token
    emulator.fault("frames", frames=[{"type": 77, "odd": "SECRET-VALUE-9"}])
    result = hailuo("doctor", env=signed_in_env(emulator, env, token))
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if "protocol drift" in x)
    assert "frame type 77 x1" in line
    assert "frame field 'odd' x1" in line
    _assert_no_secret(result, token, "SECRET-VALUE-9")


def test_an_unknown_code_in_an_http_error_body_is_listed(
    emulator: Emulator, env: dict[str, str]
) -> None:
    token = emulator.default_account.token
    emulator.fault("http_500", code=4242423)
    result = hailuo("doctor", env=signed_in_env(emulator, env, token))
    assert result.returncode != 0  # the chat step failed
    line = next(x for x in result.stdout.splitlines() if "protocol drift" in x)
    assert "error code 4242423 x1" in line
    _assert_no_secret(result, token)


def test_a_healthy_v4_token_passes_and_no_chat_skips_the_turn(
    emulator: Emulator, env: dict[str, str]
) -> None:
    token = emulator.default_account.token
    values = {**env, "HAILUO_TOKEN": token, "HAILUO_BASE_URL": emulator.url}
    result = hailuo("doctor", "--protocol", "v4", env=values)
    assert result.returncode == 0, result.stdout + result.stderr
    statuses = _statuses(result.stdout)
    assert statuses["identity"] == "OK"  # a device registration
    assert statuses["chat"] == "OK"
    assert (statuses["stream origin"], statuses["config"]) == ("SKIP", "SKIP")
    quiet = hailuo("doctor", "--protocol", "v4", "--no-chat", env=values)
    assert quiet.returncode == 0
    assert _statuses(quiet.stdout)["chat"] == "SKIP"
    assert "--no-chat" in quiet.stdout
    assert len(emulator.requests_to("chat")) == 1
    _assert_no_secret(result, token)
    _assert_no_secret(quiet, token)


def test_a_bad_token_fails_at_identity(emulator: Emulator, env: dict[str, str]) -> None:
    token = make_token(user_id="5" * 18, device_id="1", name="x", expires_at=time.time() + 9999)
    result = hailuo("doctor", env=signed_in_env(emulator, env, token))
    assert _failed(result) == ["identity"]
    statuses = _statuses(result.stdout)
    assert (statuses["config"], statuses["chat"]) == ("SKIP", "SKIP")
    assert "HTTP 401" in result.stdout
    _assert_no_secret(result, token)


def test_an_expired_token_fails_at_token_expiry(env: dict[str, str]) -> None:
    account = EmulatorAccount(expires_at=time.time() - 3600)
    with serving(Emulator(accounts=[account])) as emulator:
        result = hailuo("doctor", env=signed_in_env(emulator, env, account.token))
    failed = _failed(result)
    assert failed[0] == "token expiry"
    assert "hailuo login" in result.stdout
    _assert_no_secret(result, account.token)


def test_the_stream_origin_down_fails_its_step(emulator: Emulator, env: dict[str, str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    token = emulator.default_account.token
    result = hailuo(
        "doctor", "--stream-url", f"http://127.0.0.1:{closed}",
        env=signed_in_env(emulator, env, token),
    )  # fmt: skip
    assert _failed(result) == ["stream origin"]
    assert f"127.0.0.1:{closed}" in result.stdout
    assert _statuses(result.stdout)["chat"] == "SKIP"
    _assert_no_secret(result, token)


def test_a_cloudflare_challenge_fails_its_step(emulator: Emulator, env: dict[str, str]) -> None:
    emulator.fault("http_403_bot", times=-1, on="user_info")
    token = emulator.default_account.token
    result = hailuo("doctor", "--no-chat", env=signed_in_env(emulator, env, token))
    failed = _failed(result)
    assert failed[0] == "cloudflare"
    assert "Cloudflare challenge" in result.stdout
    _assert_no_secret(result, token)


def test_a_quota_wall_fails_the_chat_step(emulator: Emulator, env: dict[str, str]) -> None:
    emulator.fault("quota_wall", times=-1)
    token = emulator.default_account.token
    result = hailuo("doctor", env=signed_in_env(emulator, env, token))
    assert _failed(result) == ["chat"]
    assert "HailuoQuotaError" in result.stdout
    _assert_no_secret(result, token)


def test_no_credentials_fail_the_first_step_and_say_how_to_log_in(env: dict[str, str]) -> None:
    result = hailuo("doctor", "--base-url", "http://127.0.0.1:9", "--no-chat", env=env)
    failed = _failed(result)
    assert failed[0] == "credentials"
    assert _statuses(result.stdout)["token expiry"] == "SKIP"
    assert "hailuo login" in result.stdout


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (403, {"cf-mitigated": "challenge"}, b"", True),
        (503, {}, b"<title>Just a moment...</title>", True),
        (403, {}, b'{"statusInfo":{"code":1}}', False),
        (200, {"cf-mitigated": "challenge"}, b"Just a moment", False),
    ],
)
def test_challenge_page_detection(
    status: int, headers: dict[str, str], body: bytes, *, expected: bool
) -> None:
    assert challenge_page(status, headers, body) is expected
