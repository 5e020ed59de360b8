"""The v4 request signature (``yy``) and the browser-fingerprint query string.

Every v4 chat request carries a query that imitates the browser's ``URLSearchParams``
(fifteen parameters in a fixed order, the last ``unix``, the time in milliseconds) and a
``yy`` header: an MD5 over the percent-encoded path-and-query, the form fields and the same
``unix``. All pure: the time is an input. :func:`get_body_to_yy` and
:func:`generate_yy_header` keep the names of gpt4free's HailuoAI provider::

    body = get_body_to_yy({"characterID": "1", "msgContent": "hello world", "chatID": "0"})
    path = "/v4/api/chat/msg?device_platform=web&biz_id=2&app_id=3001"
    generate_yy_header(path, body, 1700000000000)  # '6893d64988ecf45b1de1808b91ae855b'
"""

from __future__ import annotations

from collections.abc import Mapping

from langchain_hailuo._jsencode import (
    encode_uri_component,
    md5_hex,
    now_ms,
    url_search_params_encode,
)
from langchain_hailuo.types import AuthResult

__all__ = [
    "API_PATH",
    "DEFAULT_USER_AGENT",
    "YY_SALT",
    "browser_name_from_user_agent",
    "build_fingerprint_query",
    "encode_uri_component",
    "generate_yy_header",
    "get_body_to_yy",
    "hash_function",
    "now_ms",
    "os_name_from_user_agent",
    "platform_from_user_agent",
    "url_search_params",
]

API_PATH = "/v4/api/chat/msg"
"""The chat endpoint's path."""

YY_SALT = "ooui"
"""The literal suffix hashed into every ``yy``."""

DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/136.0.0.0 Safari/537.36"
)
"""Sent (and fingerprinted) when the login recorded no user agent."""

# Form fields hashed into bodyToYy, in order; a missing field hashes as "" (JS undefined).
_YY_FIELDS = ("characterID", "msgContent", "chatID", "form")

# Defaults for fingerprint values the login did not capture (a plain desktop browser).
_DEFAULT_CPU_CORES = "8"
_DEFAULT_LANGUAGE = "en-US"
_DEFAULT_SCREEN_WIDTH = "1920"
_DEFAULT_SCREEN_HEIGHT = "1080"


hash_function = md5_hex
"""MD5 of the UTF-8 text, as lowercase hex (gpt4free's name for it)."""


def _without_line_breaks(text: str) -> str:
    """``text`` with every CR and LF removed (how ``msgContent`` is hashed)."""
    return text.replace("\r", "").replace("\n", "")


def get_body_to_yy(form: Mapping[str, str | int]) -> str:
    """The form part of the signature (``bodyToYy``): four MD5 hashes, 128 hex digits.

    The hashes are of ``characterID``, ``msgContent`` with every CR and LF removed (the body
    still sends the line breaks), ``chatID`` and ``form`` (the file-attachment field, hashed
    as ``""`` when absent).
    """
    parts = []
    for name in _YY_FIELDS:
        value = str(form.get(name, ""))
        if name == "msgContent":
            value = _without_line_breaks(value)
        parts.append(hash_function(value))
    return "".join(parts)


def generate_yy_header(path_and_query: str, body_to_yy: str, timestamp: int | str) -> str:
    """The ``yy`` header: 32 hex digits.

    ``MD5(encodeURIComponent(path_and_query) + "_" + body_to_yy + MD5(timestamp) + "ooui")``,
    with ``path_and_query`` exactly as sent and ``timestamp`` the ``unix`` query value (ms).
    """
    encoded_path = encode_uri_component(path_and_query)
    time_hash = hash_function(str(timestamp))
    return hash_function(f"{encoded_path}_{body_to_yy}{time_hash}{YY_SALT}")


def url_search_params(pairs: list[tuple[str, str]]) -> str:
    """Serialise pairs as ``URLSearchParams.toString()`` (space is ``+``, ``~`` encoded)."""
    encode = url_search_params_encode
    return "&".join(f"{encode(name)}={encode(value)}" for name, value in pairs)


def browser_name_from_user_agent(user_agent: str) -> str:
    """The browser family as the login page's script names it (``chrome``, ... ``unknown``)."""
    ua = user_agent.lower()
    if "edg" in ua:
        return "edge"
    if "chrome" in ua:
        return "chrome"
    if "firefox" in ua:
        return "firefox"
    if "safari" in ua:
        return "safari"
    return "unknown"


# (user-agent marker, os_name as navigator.userAgentData.platform, navigator.platform)
_PLATFORMS = (
    ("android", "Android", "Linux armv8l"),
    ("iphone", "iOS", "iPhone"),
    ("ipad", "iOS", "iPad"),
    ("windows", "Windows", "Win32"),
    ("mac os x", "macOS", "MacIntel"),
    ("macintosh", "macOS", "MacIntel"),
    ("cros", "Chrome OS", "Linux x86_64"),
    ("linux", "Linux", "Linux x86_64"),
)


def _platform_entry(user_agent: str) -> tuple[str, str, str] | None:
    """The first platform row whose marker occurs in the user agent."""
    ua = user_agent.lower()
    return next((row for row in _PLATFORMS if row[0] in ua), None)


def os_name_from_user_agent(user_agent: str) -> str:
    """``navigator.userAgentData.platform`` as a browser with this user agent reports it."""
    row = _platform_entry(user_agent)
    return row[1] if row else "Unknown"


def platform_from_user_agent(user_agent: str) -> str:
    """``navigator.platform`` as a browser with this user agent reports it (``Win32``, ...)."""
    row = _platform_entry(user_agent)
    return row[2] if row else "unknown"


def build_fingerprint_query(
    auth: AuthResult,
    unix_ms: int | None = None,
    *,
    lang: str | None = None,
    version_code: str = "22201",
    biz_id: str = "2",
    app_id: str = "3001",
) -> str:
    """The browser-fingerprint query of one chat request (no ``?``), in the browser's order.

    Values the login did not capture follow the user agent (a desktop browser: 8 cores,
    ``en-US``, 1920x1080), except the device keys: ``uuid`` and ``device_id`` identify the
    browser, so when unknown they are **left out**, never invented nor sent as ``null`` (what
    the web page's script wrote for a missing localStorage key). ``unix_ms`` defaults to a
    fresh ``Date.now()``: every request needs its own; ``lang`` to ``auth.lang``, else ``en``.
    """
    user_agent = auth.user_agent or DEFAULT_USER_AGENT
    pairs: list[tuple[str, str | None]] = [
        ("device_platform", "web"),
        ("biz_id", biz_id),
        ("app_id", app_id),
        ("version_code", version_code),
        ("lang", lang or auth.lang or "en"),
        ("uuid", auth.uuid),
        ("device_id", auth.device_id),
        ("os_name", auth.os_name or os_name_from_user_agent(user_agent)),
        ("browser_name", auth.browser_name or browser_name_from_user_agent(user_agent)),
        ("cpu_core_num", auth.cpu_core_num or _DEFAULT_CPU_CORES),
        ("browser_language", auth.browser_language or _DEFAULT_LANGUAGE),
        ("browser_platform", auth.browser_platform or platform_from_user_agent(user_agent)),
        ("screen_width", auth.screen_width or _DEFAULT_SCREEN_WIDTH),
        ("screen_height", auth.screen_height or _DEFAULT_SCREEN_HEIGHT),
        ("unix", str(now_ms() if unix_ms is None else unix_ms)),
    ]
    return url_search_params([(name, value) for name, value in pairs if value])
