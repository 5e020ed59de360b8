"""Signing of MiniMax Agent requests: ``x-timestamp``, ``x-signature``, ``yy`` and the query.

Every Agent request carries the browser's 22-parameter query (in the captured order, empty
values dropped, encoded as ``URLSearchParams`` does) and three headers computed from one
clock reading ``unix_ms`` (the ``unix`` query value)::

    x-timestamp = unix_ms // 1000                                     (seconds, as text)
    x-signature = md5(x-timestamp + "I*7Cf%WZ#S&%1RlZJ&C2" + body)    (empty body for GET)
    yy          = md5(encodeURIComponent(target) + "_" + body + md5(str(unix_ms)) + "ooui")

where ``yy`` signs ``{}`` as the body of a GET, and ``target`` is the relative
``path?query`` or the absolute URL depending on the ``yy`` target mode (see
:func:`yy_uses_absolute_target`). JSON bodies are compact with non-ASCII left as is
(:func:`dumps_body`), and the same text is both signed and sent.

Everything here is pure: the clock value is an argument.

Example:
    ```python
    url = "https://agent.minimax.io/v1/api/user/info?" + build_query(values)
    headers = sign_request(url, "", 1790000000123, absolute=False).headers()
    ```
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from langchain_hailuo._jsencode import (
    encode_uri_component,
    md5_hex,
    now_ms,
    url_search_params_encode,
)
from langchain_hailuo.types import AuthResult

__all__ = [
    "DEFAULT_YY_TARGET",
    "QUERY_ORDER",
    "SIGNATURE_SALT",
    "YY_SUFFIX",
    "QueryProfile",
    "Signature",
    "YyTarget",
    "build_query",
    "dumps_body",
    "encode_uri_component",
    "identity_query_values",
    "local_timezone_offset",
    "md5_hex",
    "now_ms",
    "sign_request",
    "signing_target",
    "url_search_params_encode",
    "x_signature",
    "x_timestamp",
    "yy_signature",
    "yy_uses_absolute_target",
]

SIGNATURE_SALT = "I*7Cf%WZ#S&%1RlZJ&C2"
"""The static salt of the web bundle's ``x-signature``."""

YY_SUFFIX = "ooui"
"""The literal suffix of the ``yy`` pre-image."""

GET_BODY_FOR_YY = "{}"
"""What ``yy`` signs as the body of a request without one."""

QUERY_ORDER: tuple[str, ...] = (
    "device_platform",
    "biz_id",
    "app_id",
    "version_code",
    "unix",
    "timezone_offset",
    "sys_language",
    "lang",
    "uuid",
    "device_id",
    "os_name",
    "browser_name",
    "device_memory",
    "cpu_core_num",
    "browser_language",
    "browser_platform",
    "user_id",
    "screen_width",
    "screen_height",
    "token",
    "client",
    "region",
)
"""The 22 query parameters in the order the web client sends them (protocol notes §3.4)."""

YyTarget = Literal["relative", "absolute", "split"]
"""What ``yy`` signs: ``path?query`` always, the full URL always, or relative for control
calls and absolute for the stream call (``split``)."""

DEFAULT_YY_TARGET: YyTarget = "split"


def build_query(values: Mapping[str, str | None]) -> str:
    """The query string (without ``?``) in the captured order, empty values dropped.

    Args:
        values: Parameter values by name; names outside :data:`QUERY_ORDER` are ignored,
            ``None`` and ``""`` are left out.

    Returns:
        ``name=value`` pairs joined with ``&``, ``URLSearchParams``-encoded.
    """
    return "&".join(
        f"{name}={url_search_params_encode(value)}"
        for name in QUERY_ORDER
        if (value := values.get(name))
    )


def local_timezone_offset() -> str:
    """This machine's offset as the web app sends it: seconds east of UTC (UTC+8: ``28800``)."""
    offset = time.localtime().tm_gmtoff
    return str(int(offset or 0))


@dataclass(frozen=True, slots=True)
class QueryProfile:
    """The query values that describe the web client rather than the account.

    Fingerprint fields the login did not record fall back to the ``default_*`` values (a
    desktop Chrome on Windows), consistent with the default user agent.

    Attributes:
        device_platform: ``web`` for the web app.
        biz_id: The Agent-era business id.
        app_id: The web app id.
        version_code: The web app's version code.
        lang: ``lang`` and ``sys_language`` (default: the login's, else ``en``).
        client: ``web`` (``desktop`` for the desktop app).
        region: ``en`` (international) or ``cn`` (China).
        timezone_offset: Seconds east of UTC when the login recorded none.
    """

    device_platform: str = "web"
    biz_id: str = "3"
    app_id: str = "3001"
    version_code: str = "22201"
    lang: str | None = None
    client: str = "web"
    region: str = "en"
    timezone_offset: str = "0"
    default_os_name: str = "Windows"
    default_browser_name: str = "Chrome"
    default_device_memory: str = "8"
    default_cpu_core_num: str = "8"
    default_browser_language: str = "en-US"
    default_browser_platform: str = "Win32"
    default_screen_width: str = "1920"
    default_screen_height: str = "1080"


def identity_query_values(
    auth: AuthResult, unix_ms: int, profile: QueryProfile, *, user_id: str | None = None
) -> dict[str, str | None]:
    """The 22 query values of one request of ``auth``'s account.

    Args:
        auth: Token, device identity and fingerprint of the account.
        unix_ms: The request's clock reading (milliseconds).
        profile: Client-side values and fingerprint defaults.
        user_id: The ``user_id`` to send (default: ``auth.real_user_id``); ``""`` sends none.

    Returns:
        Values by name (``None`` for the ones to leave out), for :func:`build_query`.
    """
    lang = profile.lang or auth.lang or "en"
    return {
        "device_platform": profile.device_platform,
        "biz_id": profile.biz_id,
        "app_id": profile.app_id,
        "version_code": profile.version_code,
        "unix": str(unix_ms),
        "timezone_offset": auth.timezone_offset or profile.timezone_offset,
        "sys_language": lang,
        "lang": lang,
        "uuid": auth.uuid,
        "device_id": auth.device_id,
        "os_name": auth.os_name or profile.default_os_name,
        "browser_name": auth.browser_name or profile.default_browser_name,
        "device_memory": auth.device_memory or profile.default_device_memory,
        "cpu_core_num": auth.cpu_core_num or profile.default_cpu_core_num,
        "browser_language": auth.browser_language or profile.default_browser_language,
        "browser_platform": auth.browser_platform or profile.default_browser_platform,
        "user_id": auth.real_user_id if user_id is None else user_id,
        "screen_width": auth.screen_width or profile.default_screen_width,
        "screen_height": auth.screen_height or profile.default_screen_height,
        "token": auth.token.get_secret_value(),
        "client": profile.client,
        "region": profile.region,
    }


def dumps_body(payload: Any) -> str:
    """The JSON text of a request body, as ``JSON.stringify`` writes it.

    Args:
        payload: A JSON-serialisable value.

    Returns:
        Compact JSON (no spaces after ``,`` and ``:``) with non-ASCII characters unescaped;
        send ``text.encode("utf-8")`` so the bytes match what was signed.
    """
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def x_timestamp(unix_ms: int) -> str:
    """The ``x-timestamp`` header: whole seconds of the request's clock reading.

    Args:
        unix_ms: The ``unix`` query value (milliseconds).

    Returns:
        ``unix_ms // 1000`` as decimal text.
    """
    return str(unix_ms // 1000)


def x_signature(timestamp: str, body: str) -> str:
    """The ``x-signature`` header.

    Args:
        timestamp: The ``x-timestamp`` value.
        body: The exact body text sent (``""`` for a GET).

    Returns:
        ``md5(timestamp + SALT + body)``.
    """
    return md5_hex(f"{timestamp}{SIGNATURE_SALT}{body}")


def yy_signature(target: str, body: str, unix_ms: int) -> str:
    """The ``yy`` header.

    Args:
        target: ``path?query`` or the absolute URL, exactly as sent.
        body: The exact body text sent; ``""`` (a GET) signs ``{}``.
        unix_ms: The ``unix`` query value (milliseconds), the same reading as in ``target``.

    Returns:
        ``md5(encodeURIComponent(target) + "_" + body + md5(str(unix_ms)) + "ooui")``.
    """
    signed_body = body or GET_BODY_FOR_YY
    return md5_hex(
        f"{encode_uri_component(target)}_{signed_body}{md5_hex(str(unix_ms))}{YY_SUFFIX}"
    )


def yy_uses_absolute_target(mode: YyTarget, *, stream: bool) -> bool:
    """Whether ``yy`` signs the absolute URL for a call, under a target mode.

    Args:
        mode: ``relative``, ``absolute`` or ``split`` (absolute for the stream call only).
        stream: Whether the call is the streamed message POST.

    Returns:
        ``True`` to sign the full URL, ``False`` to sign ``path?query``.
    """
    if mode == "split":
        return stream
    return mode == "absolute"


def signing_target(url: str, *, absolute: bool) -> str:
    """The text ``yy`` signs for a URL, taken from the URL string itself (no re-encoding).

    Args:
        url: The absolute URL exactly as it goes on the wire.
        absolute: Sign ``scheme://host[:port]/path?query`` rather than ``/path?query``.

    Returns:
        The target (any fragment dropped).
    """
    parts = urlsplit(url)
    relative = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return f"{parts.scheme}://{parts.netloc}{relative}" if absolute else relative


@dataclass(frozen=True, slots=True)
class Signature:
    """The three signature headers of one request."""

    x_timestamp: str
    x_signature: str
    yy: str

    def headers(self) -> dict[str, str]:
        """The headers as sent: ``x-timestamp``, ``x-signature``, ``yy``."""
        return {"x-timestamp": self.x_timestamp, "x-signature": self.x_signature, "yy": self.yy}


def sign_request(url: str, body: str, unix_ms: int, *, absolute: bool) -> Signature:
    """Sign one request.

    Args:
        url: The absolute URL exactly as sent, whose ``unix`` parameter is ``unix_ms``.
        body: The exact body text sent (``""`` for a GET).
        unix_ms: The clock reading of the request (milliseconds).
        absolute: Whether ``yy`` signs the full URL (see :func:`yy_uses_absolute_target`).

    Returns:
        The signature headers.
    """
    timestamp = x_timestamp(unix_ms)
    return Signature(
        x_timestamp=timestamp,
        x_signature=x_signature(timestamp, body),
        yy=yy_signature(signing_target(url, absolute=absolute), body, unix_ms),
    )
