"""Device pairs kept in the auth file, renewal bookkeeping, token input and §7.2 errors."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from langchain_hailuo import cli
from langchain_hailuo.agent.client import parse_renewed_token
from langchain_hailuo.agent.stream import AgentStreamDecoder, error_for_code, is_quota_wall
from langchain_hailuo.auth import (
    AuthManager,
    AuthStore,
    DeviceIdentity,
    generate_device_identity,
    prepare_credentials,
)
from langchain_hailuo.errors import (
    HailuoConfigurationError,
    HailuoNoPlanError,
    HailuoQuotaError,
    HailuoRateLimitError,
    HailuoRiskControlError,
    HailuoServerError,
    HailuoTokenExpiredError,
)
from langchain_hailuo.types import AuthResult
from tests.unit_tests.agent.conftest import chunk, sse

DAY = 86400.0


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def jwt(exp: float, user_id: str = "1001", nonce: str = "n") -> str:
    header = _b64({"alg": "HS256", "typ": "JWT"})
    return f"{header}.{_b64({'user': {'id': user_id}, 'exp': int(exp), 'n': nonce})}.c2ln"


# --------------------------------------------------------------------------- device pairs


def test_a_generated_pair_has_the_web_apps_shape() -> None:
    pairs = {generate_device_identity() for _ in range(50)}
    assert len(pairs) == 50
    for pair in pairs:
        assert re.fullmatch(r"[1-9]\d{7}", pair.device_id)
        assert uuid.UUID(pair.uuid).version == 4
        assert pair.expires_at is None
        assert not pair.is_stale()


def test_the_first_pair_kept_wins_and_a_stale_one_is_replaced(tmp_path: Path) -> None:
    store = AuthStore(tmp_path / "auth.json")
    first, second = DeviceIdentity("11111111", "u-1"), DeviceIdentity("22222222", "u-2")
    assert store.remember_device("agent:acct-1", first) == first
    assert store.remember_device("agent:acct-1", second) == first
    assert store.device("agent:acct-1") == first
    assert store.device("agent:acct-2") is None
    stale = DeviceIdentity("33333333", "u-3", expires_at=time.time() - 1)
    assert store.remember_device("v4:acct-1", stale) == stale
    assert store.remember_device("v4:acct-1", second) == second
    assert oct(store.path.stat().st_mode & 0o777) == "0o600"


def test_device_pairs_survive_saving_a_login_and_a_pairs_only_file_is_no_login(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = AuthStore(tmp_path / "auth.json")
    pair = DeviceIdentity("12345678", "u-1")
    store.remember_device("agent:acct-1", pair)
    assert store.load() is None
    assert "not a valid" not in caplog.text  # not a corrupt file: just no login yet
    store.save(AuthResult(token=jwt(time.time() + DAY)))
    assert store.load() is not None
    assert store.device("agent:acct-1") == pair
    assert store.remove_all() == [store.path, store.lock_path]
    assert not store.path.exists()


async def test_values_already_known_win_and_missing_halves_are_filled(tmp_path: Path) -> None:
    manager = AuthManager(auth_file=tmp_path / "auth.json", env={})
    complete = AuthResult(token=jwt(time.time() + DAY), device_id="87654321", uuid="given")
    assert await manager.device_for(complete, "agent") is complete
    assert not (tmp_path / "auth.json").exists()
    half = AuthResult(token=jwt(time.time() + DAY), device_id="87654321")
    filled = await manager.device_for(half, "agent")
    assert filled.device_id == "87654321"
    assert filled.uuid
    again = await AuthManager(auth_file=tmp_path / "auth.json", env={}).device_for(
        AuthResult(token=jwt(time.time() + DAY)), "agent"
    )
    assert again.uuid == filled.uuid  # another manager (process) reads the same pair


async def test_a_pair_is_kept_per_account_and_protocol(tmp_path: Path) -> None:
    manager = AuthManager(auth_file=tmp_path / "auth.json", env={})
    ada = AuthResult(token=jwt(time.time() + DAY, user_id="ada"))
    bob = AuthResult(token=jwt(time.time() + DAY, user_id="bob"))
    pairs = [
        await manager.device_for(ada, "agent"),
        await manager.device_for(bob, "agent"),
        await manager.device_for(ada, "v4"),
    ]
    assert len({(p.device_id, p.uuid) for p in pairs}) == 3


async def test_registration_is_used_and_its_failure_falls_back(tmp_path: Path) -> None:
    calls: list[str] = []

    async def register(_auth: AuthResult) -> DeviceIdentity:
        calls.append("register")
        return DeviceIdentity("555555555555555555", "reg-uuid", expires_at=time.time() + 3600)

    async def broken(_auth: AuthResult) -> DeviceIdentity:
        raise HailuoServerError("down")

    token = jwt(time.time() + DAY)
    manager = AuthManager(auth_file=tmp_path / "a.json", env={})
    got = await manager.device_for(AuthResult(token=token), "v4", register=register)
    assert (got.device_id, got.uuid) == ("555555555555555555", "reg-uuid")
    await manager.device_for(AuthResult(token=token), "v4", register=register)
    assert calls == ["register"]  # cached until it is due again
    fallback = await AuthManager(auth_file=tmp_path / "b.json", env={}).device_for(
        AuthResult(token=token), "v4", register=broken
    )
    assert fallback.device_id is not None
    assert re.fullmatch(r"\d{8}", fallback.device_id)


async def test_without_a_manager_one_pair_per_account_for_the_process() -> None:
    auth = AuthResult(token=jwt(time.time() + DAY, user_id="process-only"))
    first = await prepare_credentials(auth, "agent", None)
    second = await prepare_credentials(auth, "agent", None)
    assert (first.device_id, first.uuid) == (second.device_id, second.uuid)
    assert first.device_id


# --------------------------------------------------------------------------- renewal


async def test_renewal_happens_only_inside_the_window_for_stored_tokens(tmp_path: Path) -> None:
    renewed = jwt(time.time() + 40 * DAY, nonce="new")
    calls: list[str] = []

    async def renew(_auth: AuthResult) -> str:
        calls.append("renew")
        return renewed

    path = tmp_path / "auth.json"
    AuthStore(path).save(AuthResult(token=jwt(time.time() + 30 * DAY), real_user_id="9"))
    manager = AuthManager(auth_file=path, env={})
    far = await manager.get()
    assert await manager.renew_if_due(far, renew) is far
    assert calls == []

    AuthStore(path).save(AuthResult(token=jwt(time.time() + 2 * DAY), real_user_id="9"))
    manager = AuthManager(auth_file=path, env={})
    due = await manager.get()
    result = await manager.renew_if_due(due, renew)
    assert result.token.get_secret_value() == renewed
    assert result.real_user_id == "9"
    assert result.expires_at is not None
    assert result.expires_at > time.time() + 39 * DAY
    stored = AuthStore(path).load()
    assert stored is not None
    assert stored.token.get_secret_value() == renewed
    assert (await manager.get()).token.get_secret_value() == renewed

    env_manager = AuthManager(token=jwt(time.time() + DAY), env={}, auth_file=tmp_path / "x")
    env_auth = await env_manager.get()
    assert await env_manager.renew_if_due(env_auth, renew) is env_auth  # cannot be kept
    assert calls == ["renew"]


async def test_a_failed_renewal_keeps_the_valid_token(tmp_path: Path) -> None:
    async def renew(_auth: AuthResult) -> str:
        raise HailuoServerError("renewal down")

    path = tmp_path / "auth.json"
    AuthStore(path).save(AuthResult(token=jwt(time.time() + DAY)))
    manager = AuthManager(auth_file=path, env={})
    auth = await manager.get()
    assert await manager.renew_if_due(auth, renew) is auth


async def test_concurrent_renewals_in_one_process_call_the_server_once(tmp_path: Path) -> None:
    renewed = jwt(time.time() + 40 * DAY, nonce="new")
    calls: list[str] = []

    async def renew(_auth: AuthResult) -> str:
        calls.append("renew")
        await asyncio.sleep(0.05)
        return renewed

    path = tmp_path / "auth.json"
    AuthStore(path).save(AuthResult(token=jwt(time.time() + DAY)))
    managers = [AuthManager(auth_file=path, env={}) for _ in range(3)]
    auths = [await m.get() for m in managers]
    results = await asyncio.gather(
        *(m.renew_if_due(a, renew) for m, a in zip(managers, auths, strict=True))
    )
    assert calls == ["renew"]
    assert {r.token.get_secret_value() for r in results} == {renewed}


async def test_an_expired_stored_token_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    AuthStore(path).save(AuthResult(token=jwt(time.time() - 10)))
    with pytest.raises(HailuoTokenExpiredError) as caught:
        await AuthManager(auth_file=path, env={}).get()
    assert "hailuo login" in caught.value.message


def test_the_renewed_token_is_read_from_data_or_the_top() -> None:
    assert parse_renewed_token({"data": {"token": "a.b.c"}}) == "a.b.c"
    assert parse_renewed_token({"token": " x.y.z "}) == "x.y.z"
    assert parse_renewed_token({"data": {}, "statusInfo": {"code": 0}}) is None


# --------------------------------------------------------------------------- §7.2 errors


def test_internal_error_1406011050_names_the_device_id_and_both_causes() -> None:
    for sent, says in (("12345678", "12345678 (numeric)"), ("ab-1", "not numeric"), (None, "no")):
        error = error_for_code("1406011050", "internal error", what="x", device_id=sent)
        assert type(error) is HailuoServerError
        assert says in error.message
        assert "not all digits" in error.message
        assert "refusing this particular request" in error.message
        assert not error.retryable


def test_no_active_plan_and_risk_control_are_typed() -> None:
    plan = error_for_code("2062", "No active token plan subscription", what="x")
    assert isinstance(plan, HailuoNoPlanError)
    assert isinstance(plan, HailuoQuotaError)
    worded = error_for_code(None, "No active token plan subscription (2062)", what="x")
    assert isinstance(worded, HailuoNoPlanError)
    risk = error_for_code("1000050", "operation too often, please try again later", what="x")
    assert isinstance(risk, HailuoRiskControlError)
    assert isinstance(risk, HailuoRateLimitError)
    assert not risk.retryable
    assert "do not retry in a loop" in risk.message


def test_the_402_prose_wall_is_recognised_whole_and_never_streamed() -> None:
    wall = (
        "Hit a billing wall — your H3 generation got rejected at submit. Provider returned "
        "HTTP 402: insufficient account credits for MiniMax-H3 video generation"
    )
    assert is_quota_wall(wall)
    assert not is_quota_wall("Hit a billing wall? No: here is your poem.")
    assert not is_quota_wall("An answer that quotes: " + wall)
    decoder = AgentStreamDecoder()
    for piece in (wall[:10], wall[10:40], wall[40:]):
        assert decoder.feed(sse(chunk(piece))) == []  # held back: it could be the wall
    with pytest.raises(HailuoQuotaError) as caught:
        decoder.feed(sse(chunk(finish=True)))
    assert caught.value.server_message == wall
    # The same frames with an ordinary answer stream as usual.
    normal = AgentStreamDecoder()
    normal.feed(sse(chunk("Hit a billing wall? No: a poem.")))
    normal.feed(sse(chunk(finish=True)))
    assert normal.text == "Hit a billing wall? No: a poem."


# --------------------------------------------------------------------------- token input


def test_the_token_comes_from_stdin_or_a_prompt_never_argv(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert cli._read_token("-", io.StringIO("  tok.en.value \n")) == "tok.en.value"
    monkeypatch.setattr(cli.getpass, "getpass", lambda _prompt: " typed ")
    monkeypatch.setattr(cli, "_is_terminal", lambda _stream: True)
    assert cli._read_token(cli._TOKEN_FROM_PROMPT, io.StringIO()) == "typed"
    monkeypatch.setattr(cli, "_is_terminal", lambda _stream: False)  # `docker exec` without -t
    assert cli._read_token(cli._TOKEN_FROM_PROMPT, io.StringIO(" piped \n")) == "piped"
    with pytest.raises(HailuoConfigurationError, match="--token -"):
        cli._read_token(cli._TOKEN_FROM_PROMPT, io.StringIO(""))
    with pytest.raises(HailuoConfigurationError) as caught:
        cli._read_token("a.b.c")
    assert "a.b.c" not in caught.value.message


def test_secret_str_tokens_are_accepted_by_the_token_login_helpers() -> None:
    auth = AuthResult(token=SecretStr(jwt(time.time() + DAY)))
    assert "**" in repr(auth.token)
