"""Field-ready credentials against the emulator: a token alone works, renewal, typed errors.

Chats run in separate Python processes where the point is what several processes share
(the device pair, a renewal): each gets only environment variables, as a user's would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from langchain_hailuo import ChatHailuo, HailuoQuotaError
from langchain_hailuo.auth import AuthStore
from langchain_hailuo.emulator import Emulator, EmulatorAccount
from langchain_hailuo.emulator.core import default_reply
from langchain_hailuo.emulator.pytest_plugin import serving
from langchain_hailuo.errors import HailuoServerError, HailuoTokenExpiredError
from langchain_hailuo.types import AuthResult
from tests.integration_tests._subprocess import emulator

__all__ = ["emulator"]  # the fixture (from _subprocess)

pytestmark = pytest.mark.timeout(300)  # Python processes on a shared, busy machine

CHAT_SCRIPT = """
import sys
from langchain_hailuo import ChatHailuo
print(ChatHailuo(max_retries=0, timeout=30).invoke(sys.argv[1]).content)
"""


def _clean_env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HAILUO_", "G4F_"))}
    env.update(
        HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        HAILUO_AUTH_FILE=str(tmp_path / "state" / "auth.json"),
        **values,
    )
    return env


def agent_env(emulator: Emulator, tmp_path: Path, token: str | None = None) -> dict[str, str]:
    """Only a token and where the site is: what a new user following the README sets."""
    return _clean_env(
        tmp_path,
        HAILUO_TOKEN=token or emulator.default_account.token,
        HAILUO_BASE_URL=emulator.agent_url,
        HAILUO_STREAM_URL=emulator.agent_stream_url,
    )


def chat_in_process(env: dict[str, str], text: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHAT_SCRIPT, text],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err
    return out.strip()


# --------------------------------------------------------------------------- device identity


def test_token_only_chats_on_agent_and_processes_share_one_device_pair(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = agent_env(emulator, tmp_path)
    first, second = chat_in_process(env, "first"), chat_in_process(env, "second")  # at once
    assert finish(first) == default_reply("first", 1)
    assert finish(second) == default_reply("second", 1)

    pairs = {(r.query.get("device_id"), r.query.get("uuid")) for r in emulator.requests}
    assert len(pairs) == 1, pairs  # every call of both processes: the same pair
    ((device_id, sent_uuid),) = pairs
    assert device_id is not None
    assert re.fullmatch(r"[1-9]\d{7}", device_id)
    assert uuid.UUID(str(sent_uuid)).version == 4
    # It is kept with the credentials (0600), and no login was written for HAILUO_TOKEN.
    path = Path(env["HAILUO_AUTH_FILE"])
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    stored = json.loads(path.read_text())
    assert list(stored) == ["devices"]
    assert emulator.default_account.token not in path.read_text()
    assert AuthStore(path).load() is None


def test_explicit_device_values_win_over_the_kept_pair(emulator: Emulator, tmp_path: Path) -> None:
    env = agent_env(emulator, tmp_path, token=None)
    env.update(HAILUO_DEVICE_ID="12345678", HAILUO_UUID="6cafb2f8-5868-4755-a50b-c54f9a7edc4a")
    assert finish(chat_in_process(env, "hi")) == default_reply("hi", 1)
    assert {(r.query["device_id"], r.query["uuid"]) for r in emulator.requests} == {
        ("12345678", "6cafb2f8-5868-4755-a50b-c54f9a7edc4a")
    }
    assert not Path(env["HAILUO_AUTH_FILE"]).exists()  # nothing had to be made up


def test_v4_token_only_registers_a_device_once_and_every_process_reuses_it(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = _clean_env(
        tmp_path,
        HAILUO_TOKEN=emulator.default_account.token,
        HAILUO_BASE_URL=emulator.url,
        HAILUO_PROTOCOL="v4",
    )
    assert finish(chat_in_process(env, "one")) == default_reply("one", 1)
    assert finish(chat_in_process(env, "two")) == default_reply("two", 1)
    assert len(emulator.registered_devices) == 1
    chats = emulator.requests_to("chat")
    assert len(chats) == 2
    assert {(r.query["device_id"], r.query["uuid"]) for r in chats} == {
        (emulator.default_account.device_id, emulator.registered_devices[0])
    }


async def test_v4_falls_back_to_a_generated_device_when_registration_fails(
    emulator: Emulator, tmp_path: Path
) -> None:
    emulator.fault("http_500", times=-1, on="device_register")
    model = ChatHailuo(
        protocol="v4",
        token=emulator.default_account.token,
        base_url=emulator.url,
        auth_file=str(tmp_path / "auth.json"),
        max_retries=0,
    )
    try:
        answer = await model.ainvoke("hello")
    finally:
        await model.aclose()
    assert answer.content == default_reply("hello", 1)
    sent = emulator.requests_to("chat")[-1].query
    assert re.fullmatch(r"\d{8}", sent["device_id"])


# --------------------------------------------------------------------------- renewal


def test_a_token_due_for_renewal_is_renewed_once_across_two_processes(tmp_path: Path) -> None:
    account = EmulatorAccount(expires_at=time.time() + 2 * 86400)  # inside the window
    with serving(Emulator(accounts=[account])) as emulator:
        old = account.token
        env = _clean_env(tmp_path, HAILUO_BASE_URL=emulator.agent_url)
        auth = AuthResult(
            token=old,
            protocol="agent",
            api_origin=emulator.agent_url,
            stream_origin=emulator.agent_stream_url,
        )
        path = Path(env["HAILUO_AUTH_FILE"])
        AuthStore(path).save(auth)

        first, second = chat_in_process(env, "a"), chat_in_process(env, "b")
        assert finish(first) == default_reply("a", 1)
        assert finish(second) == default_reply("b", 1)

        assert emulator.renewals == 1
        saved = AuthStore(path).load()
        assert saved is not None
        assert saved.token.get_secret_value() == account.token != old
        assert saved.expires_at is not None
        assert saved.expires_at > time.time() + 39 * 86400
        assert saved.device_id
        assert saved.real_user_id == account.real_user_id
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        # The turns went out with the renewed token only.
        assert all(r.account == account.name for r in emulator.requests_to("chat"))


async def test_an_expired_saved_token_is_a_typed_error_that_says_to_log_in(
    tmp_path: Path,
) -> None:
    account = EmulatorAccount(expires_at=time.time() - 3600)
    path = tmp_path / "auth.json"
    AuthStore(path).save(AuthResult(token=account.token, protocol="agent"))
    model = ChatHailuo(auth_file=str(path), base_url="http://127.0.0.1:9", max_retries=0)
    with pytest.raises(HailuoTokenExpiredError) as caught:
        await model.ainvoke("hi")
    assert "hailuo login" in caught.value.message
    assert account.token not in str(caught.value)


async def test_a_revoked_token_is_a_typed_error_that_says_to_log_in(
    emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "auth.json"
    kwargs = emulator.model_kwargs()
    old = kwargs.pop("token")
    AuthStore(path).save(
        AuthResult(
            token=old, protocol="agent", api_origin=emulator.agent_url,
            stream_origin=emulator.agent_stream_url,
        )
    )  # fmt: skip
    emulator.rotate_token()  # a logout elsewhere
    model = ChatHailuo(
        auth_file=str(path),
        base_url=emulator.agent_url,
        stream_url=emulator.agent_stream_url,
        max_retries=0,
    )
    try:
        with pytest.raises(HailuoTokenExpiredError) as caught:
            await model.ainvoke("hi")
    finally:
        await model.aclose()
    assert "revoked" in caught.value.message
    assert "hailuo login" in caught.value.message
    assert old not in str(caught.value)


# --------------------------------------------------------------------------- §7.2 errors


async def test_the_402_prose_billing_wall_is_a_quota_error(emulator: Emulator) -> None:
    wall = (
        "Hit a billing wall — your H3 generation got rejected at submit. Provider returned "
        "HTTP 402: insufficient account credits for MiniMax-H3 video generation"
    )
    emulator.fault("quota_wall", text=wall)
    model = ChatHailuo(**emulator.model_kwargs(), max_retries=0)
    chunks: list[str] = []

    async def consume() -> None:
        async for chunk in model.astream("make a video"):
            chunks.append(chunk.text)  # noqa: PERF401 - kept when the error comes

    try:
        with pytest.raises(HailuoQuotaError):
            await consume()
    finally:
        await model.aclose()
    assert "".join(chunks) == ""  # the wall never passes for an answer


async def test_the_generic_internal_error_names_what_was_sent_and_both_causes(
    emulator: Emulator,
) -> None:
    emulator.fault("internal_error", times=1, on="config")
    kwargs = emulator.model_kwargs()
    model = ChatHailuo(**kwargs, max_retries=0)
    try:
        with pytest.raises(HailuoServerError) as caught:
            await model.ainvoke("hi")
    finally:
        await model.aclose()
    message = caught.value.message
    assert caught.value.code == "1406011050"
    assert f"device_id sent was {kwargs['device_id']}" in message
    assert "not all digits" in message
    assert "refusing this particular request" in message
    assert "HAILUO_DEVICE_ID to an 8-digit" not in message  # no inventing ids by hand
