"""The browser login: drive Chromium through nodriver until the user has logged in.

nodriver is imported inside :func:`run_login` only, so importing this module (or
:mod:`langchain_hailuo.auth`) never loads it. Everything that does not need a browser
(finding the executable, the command-line flags, turning what the page reported into an
:class:`~langchain_hailuo.types.AuthResult`) is a small pure helper tested on its own.

What the login reads, once localStorage ``_token`` is non-empty on the page's origin:

* v4 (``www.hailuo.ai``, ``hailuoai.com``): ``UNIQUE_USER_ID`` (uuid) and
  ``USER_HARD_WARE_INFO`` (device id) from localStorage;
* agent (everything else): ``UNIQUE_USER_ID`` and sessionStorage ``tab_device_id`` (an
  8-digit number; generated like the web app does when absent);
* both: the navigator / screen fingerprint, the timezone offset (seconds east of UTC) and
  every cookie whose domain matches the origin's host.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import random
import shutil
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from langchain_hailuo._compat import TIMEOUT_ERRORS, expired, timeout
from langchain_hailuo._config import LoginOptions, default_profile_dir, redact_url
from langchain_hailuo._routing import protocol_for_host
from langchain_hailuo.errors import (
    HailuoBrowserUnavailableError,
    HailuoLoginError,
    HailuoLoginTimeoutError,
)
from langchain_hailuo.types import AuthResult, Protocol

__all__ = [
    "BASE_BROWSER_FLAGS",
    "BROWSER_EXTRA",
    "PageHook",
    "PageState",
    "auth_from_page_state",
    "browser_flags",
    "cookies_for_host",
    "find_browser",
    "generate_tab_device_id",
    "require_display",
    "require_nodriver",
    "run_login",
    "stream_origin_for",
]

logger = logging.getLogger(__name__)

PageHook = Callable[[Any], Awaitable[None]]
"""``async (tab) -> None``: called with the nodriver ``Tab`` once the login page is open."""

PageState = dict[str, Any]
"""What :data:`COLLECT_JS` reports (JSON-decoded)."""

ENV_BROWSER = "HAILUO_BROWSER"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BASE_BROWSER_FLAGS = (
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
_CLOSE_WAIT = 5.0
_TAB_DEVICE_ID_DIGITS = 8

LOGGED_IN_JS = """(() => {
  try { return !!window.localStorage.getItem('_token'); } catch (e) { return false; }
})()"""
"""True once the page's origin holds a login token (the token itself is not transferred)."""

PAGE_READY_JS = (
    """(() => document.readyState === 'complete' && location.href !== 'about:blank')()"""
)
"""True once the navigated document has finished loading."""

COLLECT_JS = """(() => {
  const ls = (k) => { try { return window.localStorage.getItem(k); } catch (e) { return null; } };
  const ss = (k) => { try { return window.sessionStorage.getItem(k); } catch (e) { return null; } };
  const nav = window.navigator || {};
  const scr = window.screen || {};
  return JSON.stringify({
    token: ls('_token'),
    uuid: ls('UNIQUE_USER_ID'),
    hardware_info: ls('USER_HARD_WARE_INFO'),
    tab_device_id: ss('tab_device_id'),
    origin: window.location.origin,
    user_agent: nav.userAgent ?? null,
    language: nav.language ?? null,
    platform: nav.platform ?? null,
    hardware_concurrency: nav.hardwareConcurrency ?? null,
    device_memory: nav.deviceMemory ?? null,
    screen_width: scr.width ?? null,
    screen_height: scr.height ?? null,
    timezone_offset: -60 * new Date().getTimezoneOffset(),
  });
})()"""
"""Reads everything the login needs in one round trip, as a JSON string."""


# --------------------------------------------------------------------------- pure helpers


BROWSER_EXTRA = "langchain-hailuo[browser]"
"""The optional extra that installs nodriver (AGPL-3.0) for the browser login."""


def _nodriver_missing() -> HailuoBrowserUnavailableError:
    """The error for a browser login without nodriver installed."""
    return HailuoBrowserUnavailableError(
        f"The browser login needs nodriver, which is not installed: "
        f"`pip install '{BROWSER_EXTRA}'` (nodriver is AGPL-3.0; the package itself is MIT). "
        "Without it, log in with a token copied from a browser: "
        "`printf '%s' \"$TOKEN\" | hailuo login --token -`."
    )


def require_nodriver() -> None:
    """Check that nodriver can be imported, without importing it."""
    if importlib.util.find_spec("nodriver") is None:
        raise _nodriver_missing()


def require_display(*, headless: bool, env: Mapping[str, str]) -> None:
    """Refuse a windowed login where no window can open (Linux without X or Wayland)."""
    if headless or not sys.platform.startswith("linux"):
        return
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return
    raise HailuoBrowserUnavailableError(
        "No display here (DISPLAY and WAYLAND_DISPLAY are unset), so no browser window can "
        "open: use `hailuo login --token -` with a token copied from a browser, or "
        "`hailuo login --headless` with a profile that is already logged in."
    )


def find_browser(browser_path: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """Find the Chromium / Chrome executable."""
    env = os.environ if env is None else env
    search_path = env.get("PATH")
    explicit = browser_path or env.get(ENV_BROWSER)
    if explicit:
        found = shutil.which(explicit, path=search_path) or (
            explicit if Path(explicit).is_file() else None
        )
        if found is None:
            raise HailuoLoginError(
                f"Browser {explicit!r} was not found: install Chromium or pass browser_path "
                f"(or {ENV_BROWSER}) pointing at a Chromium/Chrome executable, then run "
                "`hailuo login` again (or set HAILUO_TOKEN instead)."
            )
        return found
    for name in BROWSER_NAMES:
        found = shutil.which(name, path=search_path)
        if found:
            return found
    for candidate in _platform_candidates(env):
        if candidate.is_file():
            return str(candidate)
    raise HailuoLoginError(
        "No Chromium or Chrome found: install Chromium or pass browser_path (or set "
        f"{ENV_BROWSER}) to a Chromium/Chrome executable, then run `hailuo login` again "
        "(or set HAILUO_TOKEN instead)."
    )


def _platform_candidates(env: Mapping[str, str]) -> list[Path]:
    """Well-known install locations outside ``PATH`` (macOS apps, Windows Program Files)."""
    if sys.platform == "darwin":
        return [
            Path("/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"),
            Path("/Applications/Chromium.app/Contents/MacOS/Chromium"),
        ]
    if sys.platform == "win32":
        roots = [env.get(k) for k in ("PROGRAMFILES", "PROGRAMFILES(X86)", "LOCALAPPDATA")]
        return [Path(r) / "Google" / "Chrome" / "Application" / "chrome.exe" for r in roots if r]
    return []


def browser_flags(options: LoginOptions) -> list[str]:
    """Chromium's command-line flags for a login (headless is set through nodriver)."""
    # The fixed flags, ``--proxy-server`` when a proxy is set, then the extra flags.
    flags = list(BASE_BROWSER_FLAGS)
    if options.proxy:
        parts = urlsplit(options.proxy)
        if parts.username or parts.password:
            raise HailuoLoginError(
                f"The browser cannot use a proxy with credentials ({redact_url(options.proxy)}): "
                "run a local forwarding proxy and pass its address instead."
            )
        flags.append(f"--proxy-server={options.proxy}")
    flags.extend(a for a in options.browser_args if a not in flags)
    return flags


def _is_root() -> bool:
    """Whether this process runs as root (Chromium then needs ``--no-sandbox``)."""
    geteuid = getattr(os, "geteuid", None)
    return bool(geteuid is not None and geteuid() == 0)


def generate_tab_device_id(rng: random.Random | None = None) -> str:
    """An 8-digit device id as the Agent web app makes one: ``10_000_000 + random(90_000_000)``."""
    value = 10_000_000 + (rng or random.SystemRandom()).randrange(90_000_000)
    return str(value)


def _clean(value: Any) -> str | None:
    """A page's stored value as text, JSON-encoded ones unwrapped; ``None`` for none / null."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if text.startswith('"') and text.endswith('"') and len(text) >= 2:  # noqa: PLR2004
        with contextlib.suppress(ValueError):
            decoded = json.loads(text)
            if isinstance(decoded, str):
                text = decoded.strip()
    if not text or text in {"null", "undefined", "None"}:
        return None
    return text


def _is_tab_device_id(value: str | None) -> bool:
    """Whether ``value`` looks like the Agent's 8-digit numeric device id."""
    return value is not None and value.isdigit() and len(value) == _TAB_DEVICE_ID_DIGITS


def _os_name(platform: str | None, user_agent: str | None) -> str | None:
    """``Windows`` / ``Mac`` / ``Linux`` (else the platform text) from navigator values."""
    text = f"{platform or ''} {user_agent or ''}"
    for needle, name in (("Win", "Windows"), ("Mac", "Mac"), ("Android", "Android")):
        if needle in text:
            return name
    if "Linux" in text or "X11" in text:
        return "Linux"
    return _clean(platform)


def _lang(language: str | None) -> str | None:
    """The primary language subtag (``en`` from ``en-US``)."""
    return language.split("-", 1)[0].lower() if language else None


def stream_origin_for(api_origin: str) -> str | None:
    """The Agent stream origin next to ``api_origin`` (``agent.X`` -> ``agent-stream.X``)."""
    # ``https://agent-stream.minimax.io`` for that example; ``None`` when the host does not start
    # with ``agent.`` (the agent client then derives its default).
    parts = urlsplit(api_origin)
    host = (parts.hostname or "").lower()
    if not host.startswith("agent."):
        return None
    netloc = "agent-stream." + host.removeprefix("agent.")
    if parts.port:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}"


def cookies_for_host(cookies: Iterable[tuple[str, str, str]], host: str) -> dict[str, str]:
    """The cookies a browser holds for ``host`` (its own and its parent domains', any path)."""
    # ``{name: value}``; a host-specific cookie wins over a parent-domain one.
    host = host.lower().rstrip(".")
    picked: dict[str, tuple[int, str]] = {}
    for name, value, domain in cookies:
        bare = domain.lower().lstrip(".").rstrip(".")
        if not bare or not (host == bare or host.endswith("." + bare)):
            continue
        specificity = len(bare)
        if name not in picked or specificity >= picked[name][0]:
            picked[name] = (specificity, value)
    return {name: value for name, (_, value) in picked.items()}


def auth_from_page_state(
    state: PageState,
    cookies: Mapping[str, str],
    *,
    protocol: str = "auto",
    rng: random.Random | None = None,
) -> AuthResult:
    """Turn what the logged-in page reported into an :class:`AuthResult`."""
    token = _clean(state.get("token"))
    if not token:
        raise HailuoLoginError("The page holds no login token (localStorage `_token` is empty).")
    origin = _clean(state.get("origin"))
    host = urlsplit(origin).hostname if origin else None
    recorded: Protocol
    if protocol in {"v4", "agent"}:
        recorded = "v4" if protocol == "v4" else "agent"
    else:
        recorded = protocol_for_host(host)
    hardware = _clean(state.get("hardware_info"))
    if recorded == "v4":
        device_id = hardware
    else:
        tab_device_id = _clean(state.get("tab_device_id"))
        if _is_tab_device_id(tab_device_id):
            device_id = tab_device_id
        elif _is_tab_device_id(hardware):
            device_id = hardware
        else:
            device_id = generate_tab_device_id(rng)
    user_agent = _clean(state.get("user_agent"))
    platform = _clean(state.get("platform"))
    language = _clean(state.get("language"))
    return AuthResult(
        token=SecretStr(token),
        protocol=recorded,
        api_origin=origin,
        stream_origin=stream_origin_for(origin) if origin and recorded == "agent" else None,
        uuid=_clean(state.get("uuid")),
        device_id=device_id,
        user_agent=user_agent,
        cookies=dict(cookies),
        os_name=_os_name(platform, user_agent),
        browser_name="chrome",
        cpu_core_num=_clean(state.get("hardware_concurrency")),
        device_memory=_clean(state.get("device_memory")),
        browser_language=language,
        browser_platform=platform,
        screen_width=_clean(state.get("screen_width")),
        screen_height=_clean(state.get("screen_height")),
        timezone_offset=_clean(state.get("timezone_offset")),
        lang=_lang(language),
    )


# --------------------------------------------------------------------------- nodriver


async def run_login(
    options: LoginOptions,
    *,
    on_page: PageHook | None = None,
    env: Mapping[str, str] | None = None,
) -> AuthResult:
    """Start Chromium, open ``options.base_url``, wait for a login and read the credentials."""
    # The browser is always closed afterwards (also on errors, timeouts and cancellation).
    env = os.environ if env is None else env
    require_nodriver()
    executable = find_browser(options.browser_path, env)
    require_display(headless=options.headless, env=env)
    flags = browser_flags(options)
    profile = options.profile_dir or default_profile_dir(env)
    profile.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        from nodriver.core.browser import Browser  # noqa: PLC0415 - only a login needs it
        from nodriver.core.config import Config  # noqa: PLC0415
    except ImportError as exc:
        raise _nodriver_missing() from exc

    config = Config(
        user_data_dir=str(profile),
        headless=options.headless,
        browser_executable_path=executable,
        browser_args=flags,
        sandbox=not _is_root(),
    )
    browser = Browser(config)
    drains: list[asyncio.Task[None]] = []
    deadline: Any = None  # asyncio.timeout's context (async_timeout's before 3.11)
    try:
        try:
            await browser.start()
        except Exception as exc:
            raise HailuoLoginError(
                f"Chromium ({executable}) did not start ({type(exc).__name__}); check the "
                f"browser, or whether another Chromium is using the profile {profile}."
            ) from exc
        drains = _drain_output(browser)
        logger.info(
            "Browser login: waiting up to %g s at %s.", options.login_timeout, options.base_url
        )
        deadline = timeout(options.login_timeout)
        async with deadline:
            return await _login_flow(browser, options, on_page)
    except TIMEOUT_ERRORS as exc:
        if deadline is not None and expired(deadline):
            raise HailuoLoginTimeoutError(
                f"Nobody completed the login at {options.base_url} within "
                f"{options.login_timeout:g} s; run `hailuo login` and sign in in the "
                "browser window."
            ) from exc
        raise HailuoLoginError(f"The browser login failed: {type(exc).__name__}.") from exc
    finally:
        await _close_browser(browser, drains)


def _main_tab(browser: Any) -> Any:
    """The first page target of a freshly started browser."""
    for target in browser.targets:
        if getattr(target.target, "type_", None) == "page":
            return target
    raise HailuoLoginError("Chromium opened no page to log in with.")


async def _login_flow(browser: Any, options: LoginOptions, on_page: PageHook | None) -> AuthResult:
    """Open the page, run the hook, wait for the token and read everything."""
    from nodriver import cdp  # noqa: PLC0415 - only a login needs it

    tab = _main_tab(browser)
    _frame, _loader, error_text, *_ = await tab.send(cdp.page.navigate(options.base_url))
    if error_text:
        raise HailuoLoginError(f"Chromium could not open {options.base_url}: {error_text}.")
    # Wait for the (possibly redirected) document before handing the page to the hook.
    while not await _evaluate(tab, PAGE_READY_JS):  # noqa: ASYNC110
        await asyncio.sleep(options.poll_interval)
    if on_page is not None:
        await on_page(tab)
    # Polling is the only way to watch another process's localStorage.
    while not await _evaluate(tab, LOGGED_IN_JS):  # noqa: ASYNC110
        await asyncio.sleep(options.poll_interval)
    raw = await _evaluate(tab, COLLECT_JS)
    state: PageState = json.loads(raw) if isinstance(raw, str) else {}
    origin = _clean(state.get("origin"))
    host = urlsplit(origin).hostname if origin else None
    cookies: dict[str, str] = {}
    if host:
        all_cookies = await tab.send(cdp.storage.get_cookies())
        cookies = cookies_for_host(((c.name, c.value, c.domain) for c in all_cookies), host)
    auth = auth_from_page_state(state, cookies, protocol=options.protocol)
    logger.info(
        "Browser login done: %s at %s (%s).",
        auth.protocol,
        auth.api_origin,
        auth.account_fingerprint,
    )
    return auth


async def _evaluate(tab: Any, expression: str) -> Any:
    """Evaluate ``expression`` in the page; ``None`` while the page is between documents."""
    from nodriver import cdp  # noqa: PLC0415 - only a login needs it
    from nodriver.core.connection import ProtocolException  # noqa: PLC0415

    try:
        remote, exception = await tab.send(
            cdp.runtime.evaluate(expression=expression, return_by_value=True)
        )
    except ProtocolException:  # e.g. "Execution context was destroyed" mid-navigation
        return None
    if exception is not None or remote is None:
        return None
    return remote.value


def _drain_output(browser: Any) -> list[asyncio.Task[None]]:
    """Keep reading Chromium's stdout/stderr so a chatty browser never blocks on a full pipe."""
    process = getattr(browser, "_process", None)
    streams = [getattr(process, name, None) for name in ("stdout", "stderr")]
    return [asyncio.create_task(_drain(s)) for s in streams if s is not None]


async def _drain(stream: asyncio.StreamReader) -> None:
    """Read ``stream`` to its end, discarding it."""
    with contextlib.suppress(Exception):
        while await stream.read(65536):
            pass


async def _close_browser(browser: Any, drains: list[asyncio.Task[None]]) -> None:
    """Close Chromium gracefully (so the profile is flushed), then make sure it is gone."""
    from nodriver import cdp  # noqa: PLC0415 - only a login needs it
    from nodriver.core import util  # noqa: PLC0415

    process = getattr(browser, "_process", None)
    if process is not None and process.returncode is None and browser.websocket_url:
        with contextlib.suppress(Exception):
            async with timeout(2):
                await browser.send(cdp.browser.close())
    for connection in [*list(getattr(browser, "targets", [])), browser]:
        with contextlib.suppress(Exception):
            async with timeout(2):
                await connection.aclose()
    if process is not None:
        await _stop_process(process)
    for task in drains:
        task.cancel()
    for task in drains:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    util.get_registered_instances().discard(browser)


async def _stop_process(process: asyncio.subprocess.Process) -> None:
    """Wait for ``process`` to exit; terminate, then kill it if it does not."""
    for signal_it in (None, process.terminate, process.kill):
        if process.returncode is not None:
            return
        if signal_it is not None:
            with contextlib.suppress(ProcessLookupError):
                signal_it()
        with contextlib.suppress(*TIMEOUT_ERRORS):
            await asyncio.wait_for(process.wait(), _CLOSE_WAIT)
