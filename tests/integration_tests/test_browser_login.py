"""The real browser login: headless Chromium (nodriver) against login pages on 127.0.0.1.

Two kinds of page:

* a tiny page served by the test itself, whose submit handler stores a JWT-shaped
  ``_token``, ``UNIQUE_USER_ID``, ``USER_HARD_WARE_INFO`` and ``tab_device_id`` and sets a
  cookie from the typed name (the fingerprint details are checked there);
* the emulator's own login pages (v4 at ``emulator.url``, Agent at ``emulator.agent_url``),
  end to end: log in through ``HailuoAI.on_auth_async`` / ``browser_login``, chat with the
  result, save it, reuse it without a browser.

The tests fill and submit the forms in the browser through the ``on_page`` hook.
"""

from __future__ import annotations

import asyncio
import base64
import json
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from langchain_hailuo.agent import MiniMaxAgent
from langchain_hailuo.auth import AuthManager, LoginOptions, browser_login
from langchain_hailuo.emulator import Emulator
from langchain_hailuo.emulator.core import default_reply
from langchain_hailuo.errors import HailuoLoginTimeoutError
from langchain_hailuo.types import AuthResult, RequestLogin
from langchain_hailuo.v4 import HailuoAI
from tests.integration_tests._loopback import loopback

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

UUID = "0b6f1c5e-8a0e-4d5b-9d59-2f3a1b7c9e11"
HARDWARE_ID = "HW-1234-abcd"
TAB_DEVICE_ID = "31711366"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def make_jwt(exp: float) -> str:
    return ".".join(
        [
            _b64({"alg": "HS256", "typ": "JWT"}),
            _b64({"user": {"id": "424242", "isAnonymous": False}, "exp": int(exp)}),
            "c2lnbmF0dXJl",
        ]
    )


LOGIN_PAGE = """<!doctype html>
<html><head><title>Log in</title></head>
<body>
<form id="login">
  <input id="user" name="user" autocomplete="off">
  <button id="submit" type="submit">Log in</button>
</form>
<p id="status">logged out</p>
<script>
document.getElementById('login').addEventListener('submit', (event) => {
  event.preventDefault();
  localStorage.setItem('UNIQUE_USER_ID', '%(uuid)s');
  localStorage.setItem('USER_HARD_WARE_INFO', '%(hardware)s');
  sessionStorage.setItem('tab_device_id', '%(tab_device_id)s');
  document.cookie = 'session_hint=' + encodeURIComponent(
    document.getElementById('user').value) + '; path=/';
  localStorage.setItem('_token', '%(token)s');
  document.getElementById('status').textContent = 'logged in';
});
</script>
</body></html>
"""


@dataclass
class LoginSite:
    url: str
    token: str


@pytest.fixture
async def login_site() -> AsyncIterator[LoginSite]:
    token = make_jwt(time.time() + 3600)

    async def page(_request: web.Request) -> web.Response:
        html = LOGIN_PAGE % {
            "uuid": UUID,
            "hardware": HARDWARE_ID,
            "tab_device_id": TAB_DEVICE_ID,
            "token": token,
        }
        return web.Response(text=html, content_type="text/html")

    async def favicon(_request: web.Request) -> web.Response:
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/favicon.ico", favicon)
    async with loopback(app) as url:
        yield LoginSite(url=url, token=token)


class FormFiller:
    """The ``on_page`` hook: fill and submit the form like a user, note what the page saw."""

    def __init__(self, *, submit: bool = True) -> None:
        self.submit = submit
        self.user_agent: str | None = None
        self.process: Any = None

    async def __call__(self, tab: Any) -> None:
        self.process = getattr(tab.browser, "_process", None)
        field = await tab.select("#user", timeout=15)
        await field.send_keys("alice")
        self.user_agent = await tab.evaluate("navigator.userAgent")
        if self.submit:
            button = await tab.select("#submit", timeout=15)
            await button.click()


def _options(url: str, tmp_path: Path, browser: str, **overrides: Any) -> LoginOptions:
    values: dict[str, Any] = {
        "base_url": url,
        "browser_path": browser,
        "headless": True,
        "profile_dir": tmp_path / "profile",
        "login_timeout": 60.0,
        "poll_interval": 0.1,
    }
    values.update(overrides)
    return LoginOptions(**values)


def _env(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}


async def test_login_reads_token_identity_and_fingerprint(
    login_site: LoginSite, tmp_path: Path, browser_executable: str
) -> None:
    filler = FormFiller()
    auth = await browser_login(
        _options(login_site.url, tmp_path, browser_executable, protocol="v4"),
        on_page=filler,
        env=_env(tmp_path),
    )
    assert auth.token.get_secret_value() == login_site.token
    assert auth.expires_at is not None
    assert not auth.is_expired()
    assert auth.protocol == "v4"
    assert auth.api_origin == login_site.url
    assert auth.uuid == UUID
    assert auth.device_id == HARDWARE_ID
    assert filler.user_agent
    assert auth.user_agent == filler.user_agent
    assert auth.cookies.get("session_hint") == "alice"
    assert auth.screen_width
    assert auth.screen_height
    assert auth.cpu_core_num
    assert auth.timezone_offset is not None
    assert auth.browser_language
    assert "null" not in auth.model_dump(mode="json").values()
    assert login_site.token not in repr(auth)
    # The browser is closed once the login returns.
    assert filler.process is not None
    assert filler.process.returncode is not None


# --------------------------------------------------------------------------- the emulator's pages


class EmulatorFormFiller:
    """The ``on_page`` hook for the emulator's login page: type a user name, press Log in."""

    def __init__(self, *, username: str = "", submit: bool = True) -> None:
        self.username = username
        self.submit = submit
        self.user_agent: str | None = None
        self.process: Any = None
        self.url: str | None = None

    async def __call__(self, tab: Any) -> None:
        self.process = getattr(tab.browser, "_process", None)
        self.url = await tab.evaluate("location.href")
        field = await tab.select("#username", timeout=15)
        if self.username:
            await field.send_keys(self.username)
        self.user_agent = await tab.evaluate("navigator.userAgent")
        if self.submit:
            button = await tab.select("#login", timeout=15)
            await button.click()


def _closed(filler: EmulatorFormFiller) -> bool:
    return filler.process is not None and filler.process.returncode is not None


async def _no_browser(_options: LoginOptions) -> AuthResult:
    pytest.fail("a browser login ran although the saved login was usable")


async def _chat_v4(emulator: Emulator, auth: AuthResult, text: str) -> str:
    async with HailuoAI(base_url=emulator.url, max_retries=0, timeout=10) as provider:
        parts = [
            item
            async for item in provider.create_authed(
                "MiniMax", [{"role": "user", "content": text}], auth
            )
            if isinstance(item, str)
        ]
    return "".join(parts)


async def test_hailuo_on_auth_async_logs_in_on_the_emulator_chats_saves_and_reuses(
    hailuo_emulator: Emulator, tmp_path: Path, browser_executable: str
) -> None:
    account = hailuo_emulator.default_account
    env = {**_env(tmp_path), "HAILUO_LOGIN_URL": "http://127.0.0.1:9/remote-desktop"}
    auth_file = tmp_path / "state" / "auth.json"
    filler = EmulatorFormFiller()
    provider = HailuoAI(base_url=hailuo_emulator.url)
    items: list[RequestLogin | AuthResult] = [
        item
        async for item in provider.on_auth_async(
            browser_path=browser_executable,
            headless=True,
            profile_dir=tmp_path / "profile",
            login_timeout=60,
            poll_interval=0.1,
            protocol="v4",
            on_page=filler,
            auth_file=auth_file,
            env=env,
        )
    ]
    # HAILUO_LOGIN_URL is announced first, then the login's result.
    assert items[0] == RequestLogin(
        label="Hailuo AI", login_url="http://127.0.0.1:9/remote-desktop"
    )
    assert len(items) == 2
    auth = items[1]
    assert isinstance(auth, AuthResult)
    assert filler.url == hailuo_emulator.url + "/"  # the provider's own base_url was opened
    assert auth.token.get_secret_value() == account.token
    assert auth.uuid == account.uuid
    assert auth.device_id == account.device_id
    assert auth.protocol == "v4"
    assert auth.api_origin == hailuo_emulator.url
    assert filler.user_agent
    assert auth.user_agent == filler.user_agent
    assert account.token not in repr(auth)
    assert _closed(filler)
    logins = hailuo_emulator.requests_to("login")
    assert [(r.method, r.account) for r in logins] == [("POST", "default")]

    # The result chats with the emulator (the browser's user agent goes along).
    assert await _chat_v4(hailuo_emulator, auth, "hello from Chromium") == default_reply(
        "hello from Chromium", 1
    )
    sent = hailuo_emulator.requests_to("chat")[-1]
    assert sent.headers["user-agent"] == filler.user_agent
    assert sent.query["uuid"] == account.uuid
    assert sent.query["device_id"] == account.device_id

    # Saved 0600, and the next run reuses it without a browser.
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    assert account.token not in _stored_without_token(auth_file)
    manager = AuthManager(auth_file=auth_file, env={}, browser_login=True, login_func=_no_browser)
    reused = await manager.get()
    assert manager.source == "file"
    assert reused.token.get_secret_value() == account.token
    assert reused.device_id == account.device_id
    assert reused.user_agent == filler.user_agent
    assert await _chat_v4(hailuo_emulator, reused, "again") == default_reply("again", 1)


def _stored_without_token(auth_file: Path) -> str:
    """The auth file's text minus its ``token`` field (the token must be stored only there)."""
    data = json.loads(auth_file.read_text())
    assert data.pop("token")
    return json.dumps(data)


async def test_agent_page_login_on_the_emulator_then_chat(
    hailuo_emulator: Emulator, tmp_path: Path, browser_executable: str
) -> None:
    account = hailuo_emulator.default_account
    filler = EmulatorFormFiller(username="default")
    auth = await browser_login(
        _options(hailuo_emulator.agent_url, tmp_path, browser_executable),
        on_page=filler,
        env=_env(tmp_path),
    )
    # 127.0.0.1 is not a v4 host: "auto" records the agent protocol.
    assert auth.protocol == "agent"
    assert auth.api_origin == hailuo_emulator.agent_url
    assert auth.token.get_secret_value() == account.token
    assert auth.uuid == account.uuid
    assert auth.device_id == account.tab_device_id
    assert auth.user_agent == filler.user_agent
    assert {"__cf_bm", "_cfuvid"} <= set(auth.cookies)
    assert _closed(filler)

    async with MiniMaxAgent(
        base_url=hailuo_emulator.agent_url,
        stream_url=hailuo_emulator.agent_stream_url,
        max_retries=0,
        timeout=10,
    ) as agent:
        text = "".join(
            [
                item
                async for item in agent.create_authed(
                    "MiniMax-M3", [{"role": "user", "content": "hi agent"}], auth
                )
                if isinstance(item, str)
            ]
        )
    assert text == default_reply("hi agent", 1)
    message = hailuo_emulator.requests_to("chat")[-1]
    assert message.account == "default"
    assert "_cfuvid" in message.headers.get("cookie", "")


async def test_login_nobody_completes_times_out(
    hailuo_emulator: Emulator, tmp_path: Path, browser_executable: str
) -> None:
    filler = EmulatorFormFiller(submit=False)
    with pytest.raises(HailuoLoginTimeoutError) as info:
        await browser_login(
            _options(hailuo_emulator.url, tmp_path, browser_executable, login_timeout=3.0),
            on_page=filler,
            env=_env(tmp_path),
        )
    # the login page was shown and left open for the 3 s the caller allowed, then given up
    assert filler.url is not None
    assert filler.url.startswith(hailuo_emulator.url)
    assert filler.user_agent
    assert "within 3 s" in str(info.value)
    assert "hailuo login" in str(info.value)
    assert _closed(filler)
    assert hailuo_emulator.requests_to("login") == []


async def test_login_records_final_origin_after_redirect(
    hailuo_emulator: Emulator, tmp_path: Path, browser_executable: str
) -> None:
    filler = EmulatorFormFiller()
    auth = await browser_login(
        _options(hailuo_emulator.redirect_url, tmp_path, browser_executable, protocol="v4"),
        on_page=filler,
        env=_env(tmp_path),
    )
    assert filler.url == hailuo_emulator.url + "/"
    assert auth.api_origin == hailuo_emulator.url
    assert auth.api_origin != hailuo_emulator.redirect_url
    assert auth.token.get_secret_value() == hailuo_emulator.default_account.token
    assert [r.endpoint for r in hailuo_emulator.requests if r.origin == "redirect"][:1] == [
        "redirect"
    ]
    # The recorded origin is where the chat goes: no redirect on the way.
    before = len(hailuo_emulator.requests)
    async with HailuoAI(max_retries=0, timeout=10) as provider:
        text = "".join(
            [
                item
                async for item in provider.create_authed(
                    "MiniMax", [{"role": "user", "content": "moved?"}], auth
                )
                if isinstance(item, str)
            ]
        )
    assert text == default_reply("moved?", 1)
    assert [r.origin for r in hailuo_emulator.requests[before:]] == ["v4"]


async def test_cancelled_or_failing_login_closes_the_browser(
    hailuo_emulator: Emulator, tmp_path: Path, browser_executable: str
) -> None:
    opened = asyncio.Event()
    filler = EmulatorFormFiller(submit=False)

    async def hook(tab: Any) -> None:
        await filler(tab)
        opened.set()

    task = asyncio.create_task(
        browser_login(
            _options(hailuo_emulator.url, tmp_path, browser_executable),
            on_page=hook,
            env=_env(tmp_path),
        )
    )
    await asyncio.wait_for(opened.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _closed(filler)

    failing = EmulatorFormFiller(submit=False)

    async def broken_hook(tab: Any) -> None:
        await failing(tab)
        raise RuntimeError("the page changed")

    with pytest.raises(RuntimeError, match="the page changed"):
        await browser_login(
            _options(hailuo_emulator.url, tmp_path, browser_executable),
            on_page=broken_hook,
            env=_env(tmp_path),
        )
    assert _closed(failing)


@pytest.mark.parametrize("provider_class", [HailuoAI, MiniMaxAgent], ids=["v4", "agent"])
async def test_a_providers_own_login_records_its_protocol_and_chats_on_that_origin(
    hailuo_emulator: Emulator,
    tmp_path: Path,
    browser_executable: str,
    provider_class: type[HailuoAI | MiniMaxAgent],
) -> None:
    # Called on the class, as gpt4free does; no protocol is named anywhere.
    is_v4 = provider_class is HailuoAI
    origin = hailuo_emulator.url if is_v4 else hailuo_emulator.agent_url
    items = [
        item
        async for item in provider_class.on_auth_async(
            base_url=origin,
            headless=True,
            browser_path=browser_executable,
            profile_dir=tmp_path / "profile",
            login_timeout=60,
            poll_interval=0.1,
            on_page=EmulatorFormFiller(),
            env=_env(tmp_path),
        )
    ]
    auth = items[-1]
    assert isinstance(auth, AuthResult)
    assert auth.protocol == provider_class.protocol
    assert auth.api_origin == origin
    extra: dict[str, Any] = {} if is_v4 else {"stream_url": hailuo_emulator.agent_stream_url}
    before = len(hailuo_emulator.requests_to("chat"))
    parts = [
        item
        async for item in provider_class.create_authed(
            provider_class.default_model,
            [{"role": "user", "content": "hello origin"}],
            auth_result=auth,
            **extra,
        )
        if isinstance(item, str)
    ]
    assert "".join(parts) == default_reply("hello origin", 1)
    (sent,) = hailuo_emulator.requests_to("chat")[before:]
    assert sent.protocol == provider_class.protocol
    await provider_class.aclose()
