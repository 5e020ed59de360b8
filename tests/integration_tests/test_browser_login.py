"""The real browser login: Chromium (nodriver) against a tiny login page on 127.0.0.1.

The page is served by the test itself: its form's submit handler stores a JWT-shaped
``_token`` (with ``exp``), ``UNIQUE_USER_ID``, ``USER_HARD_WARE_INFO`` and the Agent's
``tab_device_id``, and sets a cookie. The test fills and submits the form through the
``on_page`` hook of :func:`langchain_hailuo.auth.browser_login`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from langchain_hailuo.auth import AuthStore, LoginOptions, browser_login, on_auth_async
from langchain_hailuo.errors import HailuoLoginTimeoutError
from langchain_hailuo.types import AuthResult, RequestLogin

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


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


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
    runner, url = await _serve(app)
    try:
        yield LoginSite(url=url, token=token)
    finally:
        await runner.cleanup()


@pytest.fixture
async def redirect_site(login_site: LoginSite) -> AsyncIterator[str]:
    """A second loopback origin answering 301 to the login site."""

    async def moved(_request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(login_site.url + "/")

    app = web.Application()
    app.router.add_get("/{tail:.*}", moved)
    runner, url = await _serve(app)
    try:
        yield url
    finally:
        await runner.cleanup()


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


async def test_agent_login_records_tab_device_id(
    login_site: LoginSite, tmp_path: Path, browser_executable: str
) -> None:
    auth = await browser_login(
        _options(login_site.url, tmp_path, browser_executable),
        on_page=FormFiller(),
        env=_env(tmp_path),
    )
    # 127.0.0.1 is not a v4 host: "auto" records the agent protocol.
    assert auth.protocol == "agent"
    assert auth.device_id == TAB_DEVICE_ID
    assert auth.uuid == UUID
    assert auth.stream_origin is None  # not an agent.<domain> host: the client derives it


async def test_login_nobody_completes_times_out(
    login_site: LoginSite, tmp_path: Path, browser_executable: str
) -> None:
    filler = FormFiller(submit=False)
    started = time.monotonic()
    with pytest.raises(HailuoLoginTimeoutError) as info:
        await browser_login(
            _options(login_site.url, tmp_path, browser_executable, login_timeout=3.0),
            on_page=filler,
            env=_env(tmp_path),
        )
    elapsed = time.monotonic() - started
    assert elapsed < 20  # 3 s of waiting plus browser start and close
    assert "hailuo login" in str(info.value)
    assert filler.process is not None
    assert filler.process.returncode is not None  # the browser was closed


async def test_login_records_final_origin_after_redirect(
    login_site: LoginSite, redirect_site: str, tmp_path: Path, browser_executable: str
) -> None:
    auth = await browser_login(
        _options(redirect_site, tmp_path, browser_executable),
        on_page=FormFiller(),
        env=_env(tmp_path),
    )
    assert auth.api_origin == login_site.url
    assert auth.api_origin != redirect_site
    assert auth.token.get_secret_value() == login_site.token


async def test_on_auth_async_announces_login_url_then_logs_in_and_saves(
    login_site: LoginSite, tmp_path: Path, browser_executable: str
) -> None:
    env = {**_env(tmp_path), "HAILUO_LOGIN_URL": "http://127.0.0.1:9/remote-desktop"}
    auth_file = tmp_path / "auth.json"
    items: list[RequestLogin | AuthResult] = [
        item
        async for item in on_auth_async(
            "Hailuo AI",
            base_url=login_site.url,
            browser_path=browser_executable,
            headless=True,
            profile_dir=tmp_path / "profile",
            login_timeout=60,
            protocol="v4",
            on_page=FormFiller(),
            auth_file=auth_file,
            env=env,
        )
    ]
    assert items[0] == RequestLogin(
        label="Hailuo AI", login_url="http://127.0.0.1:9/remote-desktop"
    )
    assert isinstance(items[1], AuthResult)
    assert len(items) == 2
    assert items[1].token.get_secret_value() == login_site.token
    stored = AuthStore(auth_file).load()
    assert stored is not None
    assert stored.token.get_secret_value() == login_site.token
    assert stored.uuid == UUID


async def test_cancelled_or_failing_login_closes_the_browser(
    login_site: LoginSite, tmp_path: Path, browser_executable: str
) -> None:
    opened = asyncio.Event()
    filler = FormFiller(submit=False)

    async def hook(tab: Any) -> None:
        await filler(tab)
        opened.set()

    task = asyncio.create_task(
        browser_login(
            _options(login_site.url, tmp_path, browser_executable), on_page=hook, env=_env(tmp_path)
        )
    )
    await asyncio.wait_for(opened.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert filler.process is not None
    assert filler.process.returncode is not None

    failing = FormFiller(submit=False)

    async def broken_hook(tab: Any) -> None:
        await failing(tab)
        raise RuntimeError("the page changed")

    with pytest.raises(RuntimeError, match="the page changed"):
        await browser_login(
            _options(login_site.url, tmp_path, browser_executable),
            on_page=broken_hook,
            env=_env(tmp_path),
        )
    assert failing.process is not None
    assert failing.process.returncode is not None
