"""The emulator's own signature checks, written apart from the clients' signing code.

Nothing is imported from ``langchain_hailuo.v4`` or ``.agent``: every signature is
recomputed from the protocol notes, so a client's signing bug cannot hide behind the same
bug here. v4 (``docs/protocol.md`` v4 §2.2)::

    yy = md5(encodeURIComponent(path_and_query) + "_" + bodyToYy + md5(unix_ms) + "ooui")
    bodyToYy = md5(characterID) + md5(msgContent without CR/LF) + md5(chatID) + md5(form or "")

Agent, the production web client's recipe (§12.1), checked by :func:`agent_browser_problem`::

    x-signature = md5(x_timestamp_seconds + SALT + body)
    yy = md5(encodeURIComponent(target) + "_" + body_yy + md5(unix_ms) + "ooui")

``unix_ms`` is whole seconds x 1000 (``x-timestamp`` the same reading), ``target`` the path
and query with ``op_ticket=undefined`` after ``user_id`` (absolute on the stream host),
``body_yy`` ``{}`` without a body, the body's JSON string literal on agent-API calls and
the raw body on ``/v1/api/*`` / ``/matrix/*`` calls, which carry no ``region``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from urllib.parse import quote

__all__ = [
    "AGENT_SIGNATURE_SALT",
    "YY_SUFFIX",
    "agent_browser_problem",
    "agent_signature",
    "agent_yy",
    "encode_uri_component",
    "md5_hex",
    "v4_body_to_yy",
    "v4_yy",
]

AGENT_SIGNATURE_SALT = "I*7Cf%WZ#S&%1RlZJ&C2"
"""The static salt of the Agent web bundle's ``x-signature``."""

YY_SUFFIX = "ooui"
"""The literal suffix of every ``yy`` pre-image (both protocols)."""

_URI_COMPONENT_SAFE = "-_.!~*'()"
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")


def md5_hex(text: str) -> str:
    """MD5 of the UTF-8 encoding of ``text``, as lowercase hex."""
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def encode_uri_component(text: str) -> str:
    """Percent-encode as JavaScript's ``encodeURIComponent`` (``A-Za-z0-9-_.!~*'()`` stay)."""
    return quote(text, safe=_URI_COMPONENT_SAFE)


def _yy(target: str, middle: str, unix_ms: str) -> str:
    """The ``yy`` template shared by both protocols."""
    return md5_hex(f"{encode_uri_component(target)}_{middle}{md5_hex(unix_ms)}{YY_SUFFIX}")


def v4_body_to_yy(form: Mapping[str, str]) -> str:
    """The ``bodyToYy`` of a v4 chat form: four MD5 digests (``msgContent`` without line breaks)."""
    content = _LINE_BREAKS.sub("", form.get("msgContent", ""))
    return "".join(
        md5_hex(part)
        for part in (
            form.get("characterID", ""),
            content,
            form.get("chatID", ""),
            form.get("form", ""),
        )
    )


def v4_yy(path_and_query: str, form: Mapping[str, str], unix_ms: str) -> str:
    """The ``yy`` a v4 chat request must carry, for its target exactly as received."""
    return _yy(path_and_query, v4_body_to_yy(form), unix_ms)


def agent_yy(target: str, body: str, unix_ms: str) -> str:
    """The ``yy`` of an Agent request (``target`` as sent; an empty ``body`` signs ``{}``)."""
    return _yy(target, body or "{}", unix_ms)


def agent_signature(timestamp: str, body: str) -> str:
    """The ``x-signature`` of an Agent request, over its ``x-timestamp`` and raw body."""
    return md5_hex(f"{timestamp}{AGENT_SIGNATURE_SALT}{body}")


_BROWSER_ORDER = (
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
_SIGNED_AFTER_OP_TICKET = _BROWSER_ORDER[_BROWSER_ORDER.index("op_ticket") + 1 :]


def _is_axios_path(path: str) -> bool:
    """``/v1/api/*`` and ``/matrix/*`` go through the bundle's axios, the rest its fetch."""
    return path.startswith(("/v1/api/", "/matrix/"))


def _order_problem(names: list[str], *, axios: bool) -> str | None:
    """What is wrong with the query's parameter order, or ``None``."""
    if "op_ticket" in names:
        return "op_ticket is on the wire (the browser only signs it)"
    if axios == ("region" in names):
        return "region belongs on agent-API calls only"
    known = [name for name in names if name in _BROWSER_ORDER]
    if known != sorted(known, key=_BROWSER_ORDER.index):
        return "the query is not in the browser's order"
    first_known = next((i for i, name in enumerate(names) if name in _BROWSER_ORDER), len(names))
    if any(name not in _BROWSER_ORDER for name in names[first_known:]):
        return "call parameters must come before device_platform"
    return None


def _browser_signed_query(raw_query: str) -> str:
    """The raw query with ``op_ticket=undefined`` where ``URLSearchParams`` wrote it."""
    pairs = raw_query.split("&") if raw_query else []
    names = [pair.split("=", 1)[0] for pair in pairs]
    at = next((i for i, n in enumerate(names) if n in _SIGNED_AFTER_OP_TICKET), len(pairs))
    return "&".join([*pairs[:at], "op_ticket=undefined", *pairs[at:]])


def agent_browser_problem(  # noqa: PLR0911 - one answer per rule of the recipe
    *,
    path: str,
    raw_query: str,
    body: str,
    headers: Mapping[str, str],
    stream_origin: str | None,
) -> str | None:
    """What differs from the browser's signing recipe (§12.1), rule by rule, or ``None``.

    ``stream_origin`` is the origin of a request to the stream host (its ``yy`` signs the
    absolute URL), ``None`` on the control host.
    """
    timestamp = headers.get("x-timestamp", "")
    if not timestamp.isdigit():
        return "x-timestamp is not whole seconds"
    if headers.get("x-signature") != agent_signature(timestamp, body):
        return "x-signature does not match the body"
    pairs = [pair.split("=", 1) for pair in raw_query.split("&") if pair]
    values = {pair[0]: (pair[1] if len(pair) > 1 else "") for pair in pairs}
    unix = values.get("unix", "")
    if not unix.isdigit() or not unix.endswith("000") or unix[:-3] != timestamp:
        return "unix must be x-timestamp x 1000 (whole seconds)"
    if "%20" in raw_query:
        return "spaces must be encoded as + (URLSearchParams)"
    axios = _is_axios_path(path)
    problem = _order_problem([pair[0] for pair in pairs], axios=axios)
    if problem is not None:
        return problem
    target = f"{stream_origin or ''}{path}?{_browser_signed_query(raw_query)}"
    quoted = body if axios else json.dumps(body, ensure_ascii=False)  # JSON.stringify(text)
    body_yy = quoted if body else "{}"
    if headers.get("yy") != _yy(target, body_yy, unix):
        return "yy does not match the browser's recipe"
    return None
