"""Signing of MiniMax Agent requests, exactly as the production web bundle does (§12.1).

One recipe, the browser's (``mavis-chat prod-web`` bundle, reproducing 61 of 61 captured
``x-signature`` values)::

    unix_ms     = whole seconds x 1000 (``Date.parse(new Date().toString())``)
    x-timestamp = unix_ms // 1000
    query       = caller params (``limit``, ``agent_id``…), then the fixed order of
                  :data:`QUERY_ORDER`; ``region`` only on fetch-wrapper (agent API) calls
    signed      = the query with ``op_ticket=undefined`` right after ``user_id``
    wire        = the query without it (and without empty values)
    target      = path + "?" + signed                        (control host)
                = stream origin + path + "?" + signed        (the ``agent-stream`` host)
    body_yy     = "{}"                       (GET, or a POST without a body)
                = JSON.stringify(bodyText)   (a POST through the fetch wrapper: the agent API)
                = bodyText                   (a POST through axios: ``/v1/api/*``, ``/matrix/*``)
    x-signature = md5(x-timestamp + "I*7Cf%WZ#S&%1RlZJ&C2" + bodyText)
    yy          = md5(encodeURIComponent(target) + "_" + body_yy + md5(str(unix_ms)) + "ooui")

JSON bodies are compact with non-ASCII left as is (:func:`dumps_body`); the same text is
signed and sent (as UTF-8). Values are ``URLSearchParams``-encoded (a space is ``+``). All
pure: the clock value is an argument, e.g.
``sign_request(url, "", 1790000000000, stream=False).headers()``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from langchain_hailuo._jsencode import (
    encode_uri_component,
    md5_hex,
    now_ms,
    url_search_params_encode,
)
from langchain_hailuo.types import AuthResult

__all__ = [
    "OP_TICKET",
    "QUERY_ORDER",
    "SIGNATURE_SALT",
    "YY_SUFFIX",
    "QueryProfile",
    "Signature",
    "browser_unix_ms",
    "build_query",
    "dumps_body",
    "encode_uri_component",
    "identity_query_values",
    "local_timezone_offset",
    "md5_hex",
    "now_ms",
    "sign_request",
    "signed_query",
    "signing_target",
    "url_search_params_encode",
    "uses_fetch_wrapper",
    "x_signature",
    "x_timestamp",
    "yy_body",
    "yy_signature",
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
    "op_ticket",
    "screen_width",
    "screen_height",
    "token",
    "client",
    "region",
)
"""The bundle's query parameters in order (§12.1): 22 on the wire, and ``op_ticket``, which
the browser leaves undefined, so it appears only in the signed text."""

OP_TICKET = "op_ticket"
"""The parameter the browser never has a value for: ``op_ticket=undefined`` is signed."""

_AFTER_OP_TICKET = QUERY_ORDER[QUERY_ORDER.index(OP_TICKET) + 1 :]
_AXIOS_PREFIXES = ("/v1/api/", "/matrix/")


def build_query(values: Mapping[str, str | None], params: Sequence[tuple[str, str]] = ()) -> str:
    """The wire query (no ``?``): the call's ``params``, then ``values`` in :data:`QUERY_ORDER`.

    Names outside the order, ``None`` and ``""`` are left out, and ``op_ticket`` is never sent.
    """
    pairs = [*params, *((name, values.get(name)) for name in QUERY_ORDER if name != OP_TICKET)]
    return "&".join(
        f"{url_search_params_encode(name)}={url_search_params_encode(value)}"
        for name, value in pairs
        if value
    )


def signed_query(wire_query: str) -> str:
    """The wire query as the browser signs it, with ``op_ticket=undefined`` after ``user_id``.

    Derived from the wire text, so a redirect hop is signed over what it really sends.
    """
    pairs = wire_query.split("&") if wire_query else []
    names = [pair.partition("=")[0] for pair in pairs]
    at = next((i for i, name in enumerate(names) if name in _AFTER_OP_TICKET), len(pairs))
    return "&".join([*pairs[:at], f"{OP_TICKET}=undefined", *pairs[at:]])


def uses_fetch_wrapper(path: str) -> bool:
    """Whether ``path`` uses the fetch wrapper (agent API), not axios (``/v1/api``, ``/matrix``)."""
    return not path.startswith(_AXIOS_PREFIXES)


def browser_unix_ms(now: int) -> int:
    """The browser's ``unix`` for a clock reading in milliseconds: rounded down to the second."""
    return now // 1000 * 1000


def local_timezone_offset() -> str:
    """This machine's offset as the web app sends it: seconds east of UTC (UTC+8: ``28800``)."""
    offset = time.localtime().tm_gmtoff
    return str(int(offset or 0))


@dataclass(frozen=True, slots=True)
class QueryProfile:
    """The query values that describe the web client rather than the account.

    Fingerprint fields the login did not record fall back to the ``default_*`` values (a
    desktop Chrome on Windows), consistent with the default user agent. ``lang`` is also
    ``sys_language``; ``region`` is ``en`` (international) or ``cn`` (China);
    ``timezone_offset`` (seconds east of UTC) applies when the login recorded none.
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
    auth: AuthResult,
    unix_ms: int,
    profile: QueryProfile,
    *,
    user_id: str | None = None,
    fetch_wrapper: bool = True,
) -> dict[str, str | None]:
    """The query values of one request of ``auth``'s account (``None``: left out).

    ``user_id`` defaults to ``auth.real_user_id`` (``""`` sends none); only ``fetch_wrapper``
    calls carry ``region``.
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
        "region": profile.region if fetch_wrapper else None,
    }


def dumps_body(payload: Any) -> str:
    """A body's JSON as ``JSON.stringify`` writes it: compact, non-ASCII unescaped."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def x_timestamp(unix_ms: int) -> str:
    """The ``x-timestamp`` header: whole seconds of ``unix_ms``."""
    return str(unix_ms // 1000)


def x_signature(timestamp: str, body: str) -> str:
    """The ``x-signature`` header: ``md5(timestamp + SALT + body)``, ``body`` exactly as sent."""
    return md5_hex(f"{timestamp}{SIGNATURE_SALT}{body}")


def yy_body(body: str, *, fetch_wrapper: bool) -> str:
    """What ``yy`` signs as the body: ``{}``, its JSON literal (fetch wrapper) or itself."""
    if not body:
        return GET_BODY_FOR_YY
    # json.dumps of a str escapes exactly what JSON.stringify does (", \\, control chars)
    return json.dumps(body, ensure_ascii=False) if fetch_wrapper else body


def yy_signature(target: str, body_yy: str, unix_ms: int) -> str:
    """The ``yy`` header over ``target``, :func:`yy_body`'s ``body_yy`` and the same ``unix_ms``."""
    return md5_hex(f"{encode_uri_component(target)}_{body_yy}{md5_hex(str(unix_ms))}{YY_SUFFIX}")


def signing_target(url: str, *, absolute: bool) -> str:
    """The text ``yy`` signs for a wire URL: its signed query after the path (or whole URL)."""
    parts = urlsplit(url)
    relative = f"{parts.path or '/'}?{signed_query(parts.query)}"
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


def sign_request(url: str, body: str, unix_ms: int, *, stream: bool) -> Signature:
    """The signature headers of one request, as the browser signs it.

    ``url`` is exactly as sent, its ``unix`` parameter ``unix_ms``; ``body`` is the exact text
    (``""`` for a GET); ``stream`` requests go to the ``agent-stream`` host, whose absolute URL
    ``yy`` signs.
    """
    timestamp = x_timestamp(unix_ms)
    fetch_wrapper = uses_fetch_wrapper(urlsplit(url).path)
    return Signature(
        x_timestamp=timestamp,
        x_signature=x_signature(timestamp, body),
        yy=yy_signature(
            signing_target(url, absolute=stream),
            yy_body(body, fetch_wrapper=fetch_wrapper),
            unix_ms,
        ),
    )
