"""Unit tests of langchain_hailuo.auth: credential sources, the auth file, the manager."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import random
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from langchain_hailuo import _browser, auth
from langchain_hailuo.auth import (
    DEFAULT_BASE_URL,
    DEVICE_RETENTION,
    AuthManager,
    AuthStore,
    DeviceIdentity,
    LoginOptions,
    default_auth_file,
    default_profile_dir,
    login_options_from_kwargs,
    on_auth_async,
    recorded_protocol,
    resolve_protocol,
    user_config_dir,
)
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoConfigurationError,
    HailuoLoginError,
)
from langchain_hailuo.types import AuthResult, RequestLogin

REPO_ROOT = Path(__file__).resolve().parents[2]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def make_jwt(exp: float, user_id: str = "1001", nonce: str = "n") -> str:
    header = _b64({"alg": "HS256", "typ": "JWT"})
    payload = _b64({"user": {"id": user_id}, "exp": int(exp), "nonce": nonce})
    return f"{header}.{payload}.c2VjcmV0LXNpZ25hdHVyZQ"


def fresh(nonce: str = "a", user_id: str = "1001") -> str:
    return make_jwt(time.time() + 3600, user_id=user_id, nonce=nonce)


def expired(nonce: str = "old") -> str:
    return make_jwt(time.time() - 3600, nonce=nonce)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment with no credentials whose config folder lives in tmp_path."""
    return {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "config")}


@pytest.fixture
def auth_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "auth.json"


class FakeLogin:
    """A stand-in for the browser login: counts calls, can be slow, returns fresh tokens."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[LoginOptions] = []
        self.delay = delay
        self.tokens: list[str] = []

    async def __call__(self, options: LoginOptions) -> AuthResult:
        self.calls.append(options)
        await asyncio.sleep(self.delay)
        token = fresh(nonce=f"login-{len(self.calls)}")
        self.tokens.append(token)
        return AuthResult(
            token=SecretStr(token),
            protocol="agent",
            api_origin=options.base_url,
            uuid="u-browser",
            device_id="12345678",
        )


# --------------------------------------------------------------------------- paths


def test_user_config_dir_honours_xdg(tmp_path: Path) -> None:
    if sys.platform == "win32":
        pytest.skip("XDG applies to POSIX")
    path = user_config_dir({"XDG_CONFIG_HOME": str(tmp_path / "x"), "HOME": "/nowhere"})
    assert path == tmp_path / "x" / "langchain-hailuo"


@pytest.mark.skipif(sys.platform in {"win32", "darwin"}, reason="Linux layout")
def test_user_config_dir_falls_back_to_home_config(tmp_path: Path) -> None:
    assert user_config_dir({"HOME": str(tmp_path)}) == tmp_path / ".config" / "langchain-hailuo"
    # A relative XDG_CONFIG_HOME is invalid per the spec and ignored.
    assert user_config_dir({"HOME": str(tmp_path), "XDG_CONFIG_HOME": "rel"}) == (
        tmp_path / ".config" / "langchain-hailuo"
    )


def test_default_auth_file_prefers_env_variable(tmp_path: Path) -> None:
    explicit = tmp_path / "elsewhere.json"
    assert default_auth_file({"HAILUO_AUTH_FILE": str(explicit)}) == explicit
    base = {"XDG_CONFIG_HOME": str(tmp_path), "HOME": str(tmp_path)}
    if sys.platform != "win32":
        assert default_auth_file(base) == tmp_path / "langchain-hailuo" / "auth.json"
        assert default_profile_dir(base) == tmp_path / "langchain-hailuo" / "browser-profile"


# --------------------------------------------------------------------------- protocol


@pytest.mark.parametrize(
    ("base_url", "requested", "recorded", "expected"),
    [
        ("https://www.hailuo.ai", "auto", None, "v4"),
        ("https://hailuo.ai/", "auto", None, "v4"),
        ("https://hailuoai.com", "auto", None, "v4"),
        ("https://www.hailuoai.com/chat", "auto", None, "v4"),
        ("https://WWW.HAILUO.AI", "auto", None, "v4"),
        ("https://www.hailuo.ai", "auto", "agent", "v4"),
        ("https://agent.minimax.io", "auto", None, "agent"),
        ("https://agent.minimaxi.com", "auto", None, "agent"),
        ("https://chat.minimax.io", "auto", None, "agent"),
        ("http://127.0.0.1:8123", "auto", None, "agent"),
        ("http://127.0.0.1:8123", "auto", "v4", "v4"),
        ("http://127.0.0.1:8123", "auto", "agent", "agent"),
        ("https://www.hailuo.ai", "agent", None, "agent"),
        ("https://agent.minimax.io", "v4", None, "v4"),
        ("https://agent.minimax.io", "v4", "agent", "v4"),
        ("https://agent.minimax.io", " Agent ", None, "agent"),
    ],
)
def test_resolve_protocol(base_url: str, requested: str, recorded: Any, expected: str) -> None:
    assert resolve_protocol(base_url, requested, recorded) == expected


@pytest.mark.parametrize("requested", ["", "v5", "openai", "auto-detect"])
def test_resolve_protocol_rejects_unknown_choices(requested: str) -> None:
    with pytest.raises(HailuoConfigurationError, match="'auto', 'agent' or 'v4'"):
        resolve_protocol(DEFAULT_BASE_URL, requested)


def test_resolve_protocol_rejects_relative_url() -> None:
    with pytest.raises(HailuoConfigurationError):
        resolve_protocol("agent.minimax.io", "auto")


def test_default_base_url() -> None:
    assert DEFAULT_BASE_URL == "https://agent.minimax.io"


def test_recorded_protocol_only_for_the_login_host() -> None:
    logged = AuthResult(token=SecretStr(fresh()), protocol="v4", api_origin="http://127.0.0.1:9")
    assert recorded_protocol(logged, "http://127.0.0.1:9/") == "v4"
    assert recorded_protocol(logged, "https://agent.minimax.io") is None
    assert recorded_protocol(None, "http://127.0.0.1:9") is None


# --------------------------------------------------------------------------- AuthStore


def test_store_round_trip_with_private_modes(auth_file: Path) -> None:
    store = AuthStore(auth_file)
    token = fresh()
    store.save(AuthResult(token=SecretStr(token), uuid="u1", device_id="d1", protocol="agent"))
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    if sys.platform != "win32":
        assert stat.S_IMODE(auth_file.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(store.lock_path.stat().st_mode) == 0o600
    loaded = store.load()
    assert loaded is not None
    assert loaded.token.get_secret_value() == token
    assert (loaded.uuid, loaded.device_id, loaded.protocol) == ("u1", "d1", "agent")
    assert [p.name for p in auth_file.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_store_missing_file_is_none_without_warning(
    auth_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="langchain_hailuo.auth"):
        assert AuthStore(auth_file).load() is None
    assert caplog.records == []


def test_store_delete(auth_file: Path) -> None:
    store = AuthStore(auth_file)
    assert store.delete() is False
    store.save(AuthResult(token=SecretStr(fresh())))
    assert store.delete() is True
    assert not auth_file.exists()
    assert store.delete() is False


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[1, 2, 3]", "JSON object"),
        (b'{"uuid": "no token here"}', "bad fields: token"),
    ],
)
def test_store_corrupt_file_is_absent_with_warning(
    auth_file: Path, caplog: pytest.LogCaptureFixture, content: bytes, why: str
) -> None:
    auth_file.parent.mkdir(parents=True)
    auth_file.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="langchain_hailuo.auth"):
        assert AuthStore(auth_file).load() is None
    assert any(why in r.getMessage() for r in caplog.records), caplog.text
    assert all(r.name == "langchain_hailuo.auth" for r in caplog.records)


def test_store_invalid_record_warning_does_not_echo_the_token(
    auth_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = fresh(nonce="do-not-log")
    auth_file.parent.mkdir(parents=True)
    auth_file.write_text(json.dumps({"token": token, "protocol": "v9"}))
    with caplog.at_level(logging.DEBUG, logger="langchain_hailuo"):
        assert AuthStore(auth_file).load() is None
    assert "protocol" in caplog.text
    assert token not in caplog.text


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_store_unreadable_file_is_absent_with_warning(
    auth_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    auth_file.mkdir(parents=True)  # a directory where the file should be: read fails
    with caplog.at_level(logging.WARNING, logger="langchain_hailuo.auth"):
        assert AuthStore(auth_file).load() is None
    assert "Cannot read" in caplog.text


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_store_warns_about_a_world_readable_file(
    auth_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    auth_file.parent.mkdir(parents=True)
    auth_file.write_text(json.dumps({"token": fresh()}))
    auth_file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="langchain_hailuo.auth"):
        assert AuthStore(auth_file).load() is not None
    assert "chmod 600" in caplog.text


def test_store_accepts_gpt4free_file(auth_file: Path) -> None:
    token = fresh(nonce="g4f")
    g4f = {
        "impersonate": "chrome",
        "cookies": {"sensorsdata2015jssdkcross": "x", "_token": token},
        "headers": {
            "accept": "*/*",
            "user-agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/136.0.0.0 Safari/537.36",
            "referer": "https://www.hailuo.ai/",
        },
        "proxy": None,
        "token": token,
        "path_and_query": (
            "/v4/api/chat/msg?device_platform=web&app_id=3001&version_code=22201"
            "&uuid=8c7bc3c7-8d05-4a5a-9d11-0c1e5c5e2f6e&device_id=null&os_name=Linux"
            "&browser_name=chrome&cpu_core_num=8&browser_language=en-US"
            "&browser_platform=Linux+x86_64&screen_width=1920&screen_height=1080&unix=1"
        ),
        "timestamp": 1736000000000,
    }
    auth_file.parent.mkdir(parents=True)
    auth_file.write_text(json.dumps(g4f))
    loaded = AuthStore(auth_file).load()
    assert loaded is not None
    assert loaded.token.get_secret_value() == token
    assert loaded.uuid == "8c7bc3c7-8d05-4a5a-9d11-0c1e5c5e2f6e"
    assert loaded.device_id is None  # "null" in the query is never taken as a value
    assert loaded.user_agent is not None
    assert loaded.user_agent.startswith("Mozilla/5.0")
    assert loaded.cpu_core_num == "8"
    assert loaded.cookies["sensorsdata2015jssdkcross"] == "x"


def test_store_keeps_old_file_when_replace_fails(
    auth_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = AuthStore(auth_file)
    old = fresh(nonce="old")
    store.save(AuthResult(token=SecretStr(old)))
    before = auth_file.read_bytes()

    def boom(*_args: Any, **_kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        store.save(AuthResult(token=SecretStr(fresh(nonce="new"))))
    monkeypatch.undo()
    assert auth_file.read_bytes() == before
    assert sorted(p.name for p in auth_file.parent.iterdir()) == ["auth.json", "auth.json.lock"]
    loaded = store.load()
    assert loaded is not None
    assert loaded.token.get_secret_value() == old


def test_store_keeps_old_file_when_writing_fails_midway(
    auth_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = AuthStore(auth_file)
    old = fresh(nonce="old")
    store.save(AuthResult(token=SecretStr(old)))
    before = auth_file.read_bytes()
    real_dump = json.dump

    def half_dump(obj: Any, fh: Any, **kwargs: Any) -> None:
        fh.write('{"token": "')  # a truncated document reaches the temp file...
        raise RuntimeError("killed mid-write")  # ...then the writer dies

    monkeypatch.setattr(auth.json, "dump", half_dump)
    with pytest.raises(RuntimeError, match="mid-write"):
        store.save(AuthResult(token=SecretStr(fresh(nonce="new"))))
    monkeypatch.setattr(auth.json, "dump", real_dump)
    assert auth_file.read_bytes() == before
    assert sorted(p.name for p in auth_file.parent.iterdir()) == ["auth.json", "auth.json.lock"]


WRITER = textwrap.dedent(
    """
    import sys, time
    from pydantic import SecretStr
    from langchain_hailuo.auth import AuthStore
    from langchain_hailuo.types import AuthResult

    path, name, rounds, token = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    store = AuthStore(path)
    for i in range(rounds):
        store.save(AuthResult(token=SecretStr(token), uuid=f"{name}-{i}",
                              cookies={"pad": name * 2000}))
    """
)


def _spawn_writer(path: Path, name: str, rounds: int, token: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), name, str(rounds), token],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stderr=subprocess.PIPE,
    )


def test_concurrent_processes_never_corrupt_the_file(auth_file: Path) -> None:
    rounds = 150
    writers = [
        _spawn_writer(auth_file, name, rounds, fresh(nonce=name)) for name in ("a", "b", "c")
    ]
    reads = 0
    while any(w.poll() is None for w in writers):
        if auth_file.exists():
            data = json.loads(auth_file.read_text())  # must parse on every read
            assert data["uuid"].split("-")[0] in {"a", "b", "c"}
            reads += 1
    for writer in writers:
        _, err = writer.communicate()
        assert writer.returncode == 0, err.decode()
    final = AuthStore(auth_file).load()
    assert final is not None
    assert final.uuid in {f"{n}-{rounds - 1}" for n in "abc"}
    assert reads > 0
    assert sorted(p.name for p in auth_file.parent.iterdir()) == ["auth.json", "auth.json.lock"]


# --------------------------------------------------------------------------- resolution


async def test_explicit_token_wins_over_env_and_file(env: dict[str, str], auth_file: Path) -> None:
    AuthStore(auth_file).save(AuthResult(token=SecretStr(fresh(nonce="file"))))
    explicit, from_env = fresh(nonce="explicit"), fresh(nonce="env")
    env |= {"HAILUO_TOKEN": from_env, "HAILUO_UUID": "env-uuid", "HAILUO_DEVICE_ID": "env-dev"}
    manager = AuthManager(token=explicit, uuid="arg-uuid", auth_file=auth_file, env=env)
    got = await manager.get()
    assert got.token.get_secret_value() == explicit
    assert got.uuid == "arg-uuid"
    assert got.device_id == "env-dev"  # the env fills what the arguments left out
    assert manager.source == "argument"


async def test_env_token_wins_over_file(env: dict[str, str], auth_file: Path) -> None:
    AuthStore(auth_file).save(AuthResult(token=SecretStr(fresh(nonce="file"))))
    from_env = fresh(nonce="env")
    env |= {
        "HAILUO_TOKEN": from_env,
        "HAILUO_UUID": "env-uuid",
        "HAILUO_DEVICE_ID": "87654321",
        "HAILUO_BASE_URL": "https://agent.minimaxi.com",
    }
    manager = AuthManager(auth_file=auth_file, env=env)
    got = await manager.get()
    assert got.token.get_secret_value() == from_env
    assert (got.uuid, got.device_id) == ("env-uuid", "87654321")
    assert got.api_origin == "https://agent.minimaxi.com"
    assert manager.source == "environment"
    assert manager.base_url == "https://agent.minimaxi.com"
    assert manager.login_options.base_url == "https://agent.minimaxi.com"


async def test_file_is_used_without_explicit_or_env(env: dict[str, str]) -> None:
    token = fresh(nonce="file")
    AuthStore(default_auth_file(env)).save(AuthResult(token=SecretStr(token), uuid="f"))
    manager = AuthManager(env=env)
    got = await manager.get()
    assert got.token.get_secret_value() == token
    assert manager.source == "file"
    assert await manager.get() is got  # cached


async def test_auth_file_env_variable(env: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "custom.json"
    AuthStore(path).save(AuthResult(token=SecretStr(fresh())))
    manager = AuthManager(env={**env, "HAILUO_AUTH_FILE": str(path)})
    await manager.get()
    assert manager.store.path == path


async def test_missing_credentials_say_how_to_log_in(env: dict[str, str]) -> None:
    manager = AuthManager(env=env)
    with pytest.raises(HailuoAuthError) as info:
        await manager.get()
    message = str(info.value)
    assert "hailuo login" in message
    assert "HAILUO_TOKEN" in message
    assert str(default_auth_file(env)) in message


async def test_blank_env_token_counts_as_missing(env: dict[str, str]) -> None:
    with pytest.raises(HailuoAuthError):
        await AuthManager(env={**env, "HAILUO_TOKEN": "  "}).get()


async def test_browser_login_runs_only_when_allowed(env: dict[str, str], auth_file: Path) -> None:
    login = FakeLogin()
    manager = AuthManager(auth_file=auth_file, env=env, browser_login=True, login_func=login)
    got = await manager.get()
    assert len(login.calls) == 1
    assert login.calls[0].base_url == DEFAULT_BASE_URL
    assert manager.source == "browser"
    stored = AuthStore(auth_file).load()
    assert stored is not None
    assert stored.token.get_secret_value() == got.token.get_secret_value()


async def test_expired_file_token_without_browser_says_expired(
    env: dict[str, str], auth_file: Path
) -> None:
    AuthStore(auth_file).save(AuthResult(token=SecretStr(expired())))
    with pytest.raises(HailuoAuthError) as info:
        await AuthManager(auth_file=auth_file, env=env).get()
    assert "expired" in str(info.value)
    assert "hailuo login" in str(info.value)


async def test_expired_file_token_with_browser_logs_in(
    env: dict[str, str], auth_file: Path
) -> None:
    AuthStore(auth_file).save(AuthResult(token=SecretStr(expired())))
    login = FakeLogin()
    manager = AuthManager(auth_file=auth_file, env=env, browser_login=True, login_func=login)
    got = await manager.get()
    assert got.token.get_secret_value() == login.tokens[0]
    assert not got.is_expired()


async def test_cached_file_token_that_expires_is_resolved_again(
    env: dict[str, str], auth_file: Path
) -> None:
    store = AuthStore(auth_file)
    store.save(AuthResult(token=SecretStr(fresh(nonce="one"))))
    manager = AuthManager(auth_file=auth_file, env=env)
    first = await manager.get()
    # The cached token expires; meanwhile another process saved a new one.
    first_expired = first.model_copy(update={"expires_at": time.time() - 10})
    manager._set(first_expired, "file")
    newer = fresh(nonce="two")
    store.save(AuthResult(token=SecretStr(newer)))
    assert (await manager.get()).token.get_secret_value() == newer


async def test_explicit_expired_token_is_used_with_a_warning(
    env: dict[str, str], debug_logs: pytest.LogCaptureFixture
) -> None:
    token = expired(nonce="explicit")
    got = await AuthManager(token=token, env=env).get()
    assert got.token.get_secret_value() == token
    assert "expired" in debug_logs.text
    assert token not in debug_logs.text


# --------------------------------------------------------------------------- refresh / update


async def test_refresh_picks_up_a_file_written_by_another_process(
    env: dict[str, str], auth_file: Path
) -> None:
    rejected_token = fresh(nonce="rejected")
    AuthStore(auth_file).save(AuthResult(token=SecretStr(rejected_token)))
    manager = AuthManager(auth_file=auth_file, env=env)
    rejected = await manager.get()
    newer = fresh(nonce="other-process")
    writer = _spawn_writer(auth_file, "p", 1, newer)
    _, err = writer.communicate()
    assert writer.returncode == 0, err.decode()
    got = await manager.refresh(rejected)
    assert got.token.get_secret_value() == newer
    assert manager.source == "file"


async def test_refresh_without_alternatives_raises_rejected(
    env: dict[str, str], auth_file: Path
) -> None:
    AuthStore(auth_file).save(AuthResult(token=SecretStr(fresh())))
    manager = AuthManager(auth_file=auth_file, env=env)
    rejected = await manager.get()
    with pytest.raises(HailuoAuthError) as info:
        await manager.refresh(rejected)
    assert "rejected" in str(info.value)
    assert "hailuo login" in str(info.value)


async def test_refresh_of_expired_token_says_expired(env: dict[str, str]) -> None:
    manager = AuthManager(token=expired(), env=env)
    rejected = await manager.get()
    with pytest.raises(HailuoAuthError, match="expired"):
        await manager.refresh(rejected)


async def test_refresh_logs_in_when_allowed(env: dict[str, str], auth_file: Path) -> None:
    login = FakeLogin()
    manager = AuthManager(token=fresh(), env=env, auth_file=auth_file, browser_login=True,
                          login_func=login)  # fmt: skip
    rejected = await manager.get()
    got = await manager.refresh(rejected)
    assert got.token.get_secret_value() == login.tokens[0]
    assert manager.source == "browser"
    stored = AuthStore(auth_file).load()
    assert stored is not None
    assert stored.token.get_secret_value() == login.tokens[0]


async def test_concurrent_refreshes_cause_one_login(env: dict[str, str], auth_file: Path) -> None:
    login = FakeLogin(delay=0.05)
    manager = AuthManager(token=fresh(), env=env, auth_file=auth_file, browser_login=True,
                          login_func=login)  # fmt: skip
    rejected = await manager.get()
    results = await asyncio.gather(*(manager.refresh(rejected) for _ in range(5)))
    assert len(login.calls) == 1
    assert {r.token.get_secret_value() for r in results} == {login.tokens[0]}


async def test_concurrent_gets_cause_one_login(env: dict[str, str], auth_file: Path) -> None:
    login = FakeLogin(delay=0.05)
    manager = AuthManager(env=env, auth_file=auth_file, browser_login=True, login_func=login)
    results = await asyncio.gather(*(manager.get() for _ in range(5)))
    assert len(login.calls) == 1
    assert len({id(r) for r in results}) == 1


async def test_refresh_with_a_stale_copy_returns_the_current_token(
    env: dict[str, str], auth_file: Path
) -> None:
    login = FakeLogin()
    manager = AuthManager(token=fresh(), env=env, auth_file=auth_file, browser_login=True,
                          login_func=login)  # fmt: skip
    old = await manager.get()
    first = await manager.refresh(old)
    second = await manager.refresh(old)  # a second request that had the old token too
    assert first is second
    assert len(login.calls) == 1


def test_manager_works_from_several_event_loops(env: dict[str, str], auth_file: Path) -> None:
    AuthStore(auth_file).save(AuthResult(token=SecretStr(fresh())))
    manager = AuthManager(auth_file=auth_file, env=env)
    first = asyncio.run(manager.get())
    manager._set(first.model_copy(update={"expires_at": time.time() - 1}), "file")
    AuthStore(auth_file).save(AuthResult(token=SecretStr(fresh(nonce="again"))))
    second = asyncio.run(manager.get())  # a new loop: a new lock, no "bound to a different loop"
    assert second.token.get_secret_value() != first.token.get_secret_value()
    with pytest.raises(HailuoAuthError):
        asyncio.run(manager.refresh(second))


async def test_update_saves_file_backed_credentials(env: dict[str, str], auth_file: Path) -> None:
    AuthStore(auth_file).save(AuthResult(token=SecretStr(fresh())))
    manager = AuthManager(auth_file=auth_file, env=env)
    got = await manager.get()
    enriched = got.model_copy(update={"real_user_id": "123456789012345678", "agent_id": "7"})
    await manager.update(enriched)
    assert manager.current is enriched
    stored = AuthStore(auth_file).load()
    assert stored is not None
    assert (stored.real_user_id, stored.agent_id) == ("123456789012345678", "7")


async def test_update_never_writes_explicit_tokens(env: dict[str, str], auth_file: Path) -> None:
    manager = AuthManager(token=fresh(), env=env, auth_file=auth_file)
    got = await manager.get()
    await manager.update(got.model_copy(update={"real_user_id": "1"}))
    assert manager.current is not None
    assert manager.current.real_user_id == "1"
    assert not auth_file.exists()


# --------------------------------------------------------------------------- no secrets


async def test_token_never_in_logs_reprs_or_errors(
    env: dict[str, str], auth_file: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    token = fresh(nonce="top-secret")
    AuthStore(auth_file).save(AuthResult(token=SecretStr(token)))
    manager = AuthManager(auth_file=auth_file, env=env)
    assert token not in repr(manager)
    got = await manager.get()
    texts = [repr(manager), manager.describe(), repr(manager.store), repr(got), str(got)]
    with pytest.raises(HailuoAuthError) as info:
        await manager.refresh(got)
    texts += [str(info.value), repr(info.value)]
    explicit = AuthManager(token=token, env=env)
    texts += [repr(explicit), explicit.describe()]
    await explicit.get()
    texts.append(explicit.describe())
    for text in texts:
        assert token not in text
    assert token not in debug_logs.text
    assert "auth file" in manager.describe()
    assert "acct-" in manager.describe()


def test_describe_before_resolution(env: dict[str, str], auth_file: Path) -> None:
    manager = AuthManager(auth_file=auth_file, env=env, browser_login=True)
    text = manager.describe()
    assert "not resolved yet" in text
    assert "missing" in text
    assert "browser login" in text
    env_manager = AuthManager(env={**env, "HAILUO_TOKEN": fresh()})
    assert "HAILUO_TOKEN" in env_manager.describe()


# --------------------------------------------------------------------------- on_auth_async


class RecordingLogin:
    def __init__(self) -> None:
        self.options: list[LoginOptions] = []
        self.token = fresh(nonce="on-auth")

    async def __call__(
        self,
        options: LoginOptions | None = None,
        *,
        on_page: Any = None,
        env: Mapping[str, str] | None = None,
    ) -> AuthResult:
        assert options is not None
        self.options.append(options)
        return AuthResult(token=SecretStr(self.token), api_origin=options.base_url)


async def _collect(**kwargs: Any) -> list[RequestLogin | AuthResult]:
    return [item async for item in on_auth_async("Hailuo AI", **kwargs)]


async def test_on_auth_async_yields_request_login_first(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = RecordingLogin()
    monkeypatch.setattr(auth, "browser_login", fake)
    items = await _collect(env={**env, "HAILUO_LOGIN_URL": "https://desk.example/"})
    assert items[0] == RequestLogin(label="Hailuo AI", login_url="https://desk.example/")
    assert isinstance(items[1], AuthResult)
    items = await _collect(env={**env, "G4F_LOGIN_URL": "https://g4f.example/"})
    assert items[0] == RequestLogin(label="Hailuo AI", login_url="https://g4f.example/")
    items = await _collect(env=env)
    assert len(items) == 1
    assert isinstance(items[0], AuthResult)


async def test_on_auth_async_builds_options_from_kwargs(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = RecordingLogin()
    monkeypatch.setattr(auth, "browser_login", fake)
    await _collect(
        proxy="http://127.0.0.1:3128",
        env=env,
        base_url="https://www.hailuo.ai",
        browser_path="/opt/chromium",
        headless=True,
        profile_dir=str(tmp_path / "p"),
        login_timeout=12,
        model="MiniMax",  # not a login option: ignored
        timeout=30,
    )
    options = fake.options[0]
    assert options.base_url == "https://www.hailuo.ai"
    assert options.browser_path == "/opt/chromium"
    assert options.headless is True
    assert options.proxy == "http://127.0.0.1:3128"
    assert options.profile_dir == tmp_path / "p"
    assert options.login_timeout == 12


async def test_on_auth_async_save_rule(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = RecordingLogin()
    monkeypatch.setattr(auth, "browser_login", fake)
    default = default_auth_file(env)
    await _collect(env=env)
    assert not default.exists()  # no auth_file, no save: nothing written
    explicit = tmp_path / "given.json"
    await _collect(env=env, auth_file=explicit)
    assert AuthStore(explicit).load() is not None  # auth_file given: saved there
    other = tmp_path / "not-saved.json"
    await _collect(env=env, auth_file=other, save=False)
    assert not other.exists()  # save=False wins
    await _collect(env=env, save=True)
    stored = AuthStore(default).load()  # save=True: the default file
    assert stored is not None
    assert stored.token.get_secret_value() == fake.token


def test_login_options_from_kwargs_defaults_and_validation() -> None:
    options = login_options_from_kwargs(None, headless=None, protocol="auto", browser_args="--x")
    assert options == LoginOptions(browser_args=("--x",))
    assert login_options_from_kwargs(protocol="openai").protocol == "auto"
    assert login_options_from_kwargs(login_protocol="v4").protocol == "v4"
    assert LoginOptions().login_timeout == 300.0
    with pytest.raises(HailuoConfigurationError):
        LoginOptions(login_timeout=0)
    with pytest.raises(HailuoConfigurationError):
        LoginOptions(base_url="not a url")
    assert "secret" not in repr(LoginOptions(proxy="http://user:secret@127.0.0.1:1"))


# --------------------------------------------------------------------------- imports


def test_importing_auth_does_not_import_nodriver() -> None:
    code = (
        "import sys, langchain_hailuo.auth, langchain_hailuo._browser\n"
        "loaded = sorted(m for m in sys.modules if m == 'nodriver' or m.startswith('nodriver.'))\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == ""


# --------------------------------------------------------------------------- browser helpers


def test_find_browser_prefers_option_then_env(tmp_path: Path) -> None:
    exe = tmp_path / "my-chrome"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert _browser.find_browser(str(exe), {"PATH": ""}) == str(exe)
    assert _browser.find_browser(None, {"PATH": "", "HAILUO_BROWSER": str(exe)}) == str(exe)
    named = tmp_path / "bin"
    named.mkdir()
    (named / "chromium").write_text("#!/bin/sh\n")
    (named / "chromium").chmod(0o755)
    assert _browser.find_browser(None, {"PATH": str(named)}) == str(named / "chromium")


@pytest.mark.skipif(sys.platform in {"win32", "darwin"}, reason="no well-known app paths")
def test_find_browser_without_a_browser_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(HailuoLoginError, match="install Chromium or pass browser_path"):
        _browser.find_browser(None, {"PATH": str(tmp_path)})
    with pytest.raises(HailuoLoginError, match="browser_path"):
        _browser.find_browser(str(tmp_path / "nope"), {"PATH": str(tmp_path)})


async def test_browser_login_without_browser_fails_before_nodriver(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path)}
    with pytest.raises(HailuoLoginError):
        await auth.browser_login(LoginOptions(profile_dir=tmp_path / "p"), env=env)


def test_browser_flags() -> None:
    flags = _browser.browser_flags(LoginOptions(proxy="socks5://127.0.0.1:1080"))
    for flag in (
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--proxy-server=socks5://127.0.0.1:1080",
    ):
        assert flag in flags
    extra = _browser.browser_flags(LoginOptions(browser_args=("--lang=de", "--disable-gpu")))
    assert extra.count("--disable-gpu") == 1
    assert extra[-1] == "--lang=de"
    with pytest.raises(HailuoLoginError) as info:
        _browser.browser_flags(LoginOptions(proxy="http://bob:hunter2@127.0.0.1:8080"))
    assert "hunter2" not in str(info.value)


def test_generate_tab_device_id() -> None:
    rng = random.Random(7)
    ids = {_browser.generate_tab_device_id(rng) for _ in range(200)}
    assert all(len(i) == 8 and i.isdigit() and 10_000_000 <= int(i) < 100_000_000 for i in ids)


def _state(**overrides: Any) -> dict[str, Any]:
    state: dict[str, Any] = {
        "token": fresh(nonce="page"),
        "uuid": "uuid-1",
        "hardware_info": "hw-1",
        "tab_device_id": None,
        "origin": "https://agent.minimax.io",
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/140",
        "language": "en-US",
        "platform": "Linux x86_64",
        "hardware_concurrency": 8,
        "device_memory": 8,
        "screen_width": 1920,
        "screen_height": 1080,
        "timezone_offset": 28800,
    }
    state.update(overrides)
    return state


def test_auth_from_page_state_agent() -> None:
    result = _browser.auth_from_page_state(
        _state(tab_device_id="31711366"), {"cf": "1"}, rng=random.Random(1)
    )
    assert result.protocol == "agent"
    assert result.api_origin == "https://agent.minimax.io"
    assert result.stream_origin == "https://agent-stream.minimax.io"
    assert result.device_id == "31711366"
    assert result.uuid == "uuid-1"
    assert (result.os_name, result.browser_name, result.lang) == ("Linux", "chrome", "en")
    assert (result.cpu_core_num, result.device_memory) == ("8", "8")
    assert (result.screen_width, result.screen_height) == ("1920", "1080")
    assert result.timezone_offset == "28800"
    assert result.cookies == {"cf": "1"}


def test_auth_from_page_state_agent_generates_a_missing_device_id() -> None:
    result = _browser.auth_from_page_state(
        _state(tab_device_id="null", hardware_info="not-numeric"), {}, rng=random.Random(3)
    )
    assert result.device_id is not None
    assert len(result.device_id) == 8
    assert result.device_id.isdigit()


def test_auth_from_page_state_v4_and_null_values() -> None:
    result = _browser.auth_from_page_state(
        _state(
            origin="https://www.hailuo.ai",
            uuid="null",
            hardware_info='"hw-quoted"',
            device_memory=None,
            language="undefined",
        ),
        {},
    )
    assert result.protocol == "v4"
    assert result.stream_origin is None
    assert result.uuid is None
    assert result.device_id == "hw-quoted"
    assert result.device_memory is None
    assert result.browser_language is None
    assert "null" not in json.dumps(result.model_dump(mode="json", exclude_none=True))


def test_auth_from_page_state_without_token_fails() -> None:
    with pytest.raises(HailuoLoginError):
        _browser.auth_from_page_state(_state(token=None), {})


def test_cookies_for_host() -> None:
    cookies = [
        ("cf_clearance", "parent", ".minimax.io"),
        ("cf_clearance", "own", "agent.minimax.io"),
        ("_token", "t", ".minimax.io"),
        ("other", "x", "example.com"),
        ("deep", "y", "api.agent.minimax.io"),
    ]
    assert _browser.cookies_for_host(cookies, "agent.minimax.io") == {
        "cf_clearance": "own",
        "_token": "t",
    }


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("https://agent.minimax.io", "https://agent-stream.minimax.io"),
        ("https://agent.minimaxi.com", "https://agent-stream.minimaxi.com"),
        ("http://agent.localhost:8080", "http://agent-stream.localhost:8080"),
        ("http://127.0.0.1:8080", None),
        ("https://chat.minimax.io", None),
    ],
)
def test_stream_origin_for(origin: str, expected: str | None) -> None:
    assert _browser.stream_origin_for(origin) == expected


def test_device_pairs_unused_for_90_days_are_dropped_on_the_next_write(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    now = time.time()
    old = {"device_id": "12345678", "uuid": "u-old", "used_at": now - DEVICE_RETENTION - 60}
    recent = {"device_id": "23456789", "uuid": "u-recent", "used_at": now - 86400 * 30}
    legacy = {"device_id": "34567890", "uuid": "u-legacy"}  # kept before uses were recorded
    path.write_text(json.dumps({"devices": {"a:old": old, "a:recent": recent, "a:legacy": legacy}}))
    store = AuthStore(path)
    store.remember_device("a:new", DeviceIdentity("45678901", "u-new"))
    devices = json.loads(path.read_text())["devices"]
    assert sorted(devices) == ["a:legacy", "a:new", "a:recent"]
    assert devices["a:legacy"]["used_at"] >= now  # its 90 days start now
    assert devices["a:recent"]["used_at"] == recent["used_at"]
    assert store.holds_devices_only()


def test_reading_a_pair_unused_for_a_day_records_its_use(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    stamp = time.time() - 2 * 86400
    entry = {"device_id": "12345678", "uuid": "u-1", "used_at": stamp}
    path.write_text(json.dumps({"devices": {"a:one": entry}}))
    assert AuthStore(path).device("a:one") == DeviceIdentity("12345678", "u-1")
    assert json.loads(path.read_text())["devices"]["a:one"]["used_at"] > stamp
