"""Which protocol a host speaks, and what each protocol's turn takes.

The host/protocol rules (:func:`resolve_protocol`, :func:`protocol_for_host`) live here
only; :mod:`langchain_hailuo.auth` re-exports them for users who import them from there.
This module is a floor: it imports no provider, client or credentials code (the provider of
a protocol is built by :func:`langchain_hailuo._protocols.build_provider`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from langchain_hailuo.errors import HailuoConfigurationError
from langchain_hailuo.types import AuthResult, Protocol

__all__ = [
    "DEFAULT_BASE_URL",
    "PROTOCOL_CHOICES",
    "V4_HOSTS",
    "checked_url",
    "host_of",
    "protocol_for_host",
    "protocol_of_account",
    "recorded_protocol",
    "resolve_protocol",
    "turn_options",
]

DEFAULT_BASE_URL = "https://agent.minimax.io"
"""The live MiniMax Agent web app (``www.hailuo.ai`` redirects there since 2026)."""

V4_HOSTS = frozenset({"www.hailuo.ai", "hailuo.ai", "hailuoai.com", "www.hailuoai.com"})
"""Hosts that speak the old ``/v4/api/chat/msg`` protocol (gpt4free's HailuoAI)."""

PROTOCOL_CHOICES = ("auto", "v4", "agent")
"""The values a ``protocol`` setting takes."""


def host_of(url: str | None) -> str | None:
    """The lower-cased host name of ``url`` (``None`` when it has none)."""
    if not url:
        return None
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    return host.lower() if host else None


def protocol_for_host(host: str | None) -> Protocol:
    """The protocol a host speaks by name alone: ``v4`` for :data:`V4_HOSTS`, else ``agent``."""
    return "v4" if host and host.lower().rstrip(".") in V4_HOSTS else "agent"


def recorded_protocol(auth: AuthResult | None, base_url: str) -> Protocol | None:
    """The protocol a browser login recorded for ``base_url``'s host, if it recorded one."""
    # ``auth.protocol`` when ``auth.api_origin`` has the same host as ``base_url``.
    if auth is None or auth.protocol is None:
        return None
    host = host_of(base_url)
    return auth.protocol if host is not None and host == host_of(auth.api_origin) else None


def resolve_protocol(
    base_url: str, requested: str = "auto", recorded: Protocol | None = None
) -> Protocol:
    """Decide which wire protocol to speak with ``base_url``."""
    # A requested ``"v4"`` or ``"agent"`` wins; ``"auto"`` gives ``"v4"`` for the old Hailuo hosts
    # (:data:`V4_HOSTS`), else the protocol a login recorded, else ``"agent"``.
    choice = requested.strip().lower() if isinstance(requested, str) else requested
    if choice == "v4":
        return "v4"
    if choice == "agent":
        return "agent"
    if choice != "auto":
        raise HailuoConfigurationError(
            f"Unknown protocol {requested!r}: use 'auto', 'agent' or 'v4'."
        )
    host = host_of(base_url)
    if host is None:
        raise HailuoConfigurationError(
            f"base_url {base_url!r} is not an absolute URL; use e.g. {DEFAULT_BASE_URL!r}."
        )
    if host.rstrip(".") in V4_HOSTS:
        return "v4"
    return recorded or "agent"


def protocol_of_account(auth: AuthResult, base_url: str | None, requested: str) -> Protocol:
    """The protocol to speak for an account's turns."""
    origin = base_url or auth.api_origin or DEFAULT_BASE_URL
    return resolve_protocol(origin, requested, recorded=recorded_protocol(auth, origin))


def turn_options(protocol: Protocol, *, reasoning: bool | None) -> dict[str, Any]:
    """The per-turn options of a protocol: MiniMax Agent takes ``reasoning``."""
    if protocol == "v4" or reasoning is None:
        return {}
    return {"reasoning": reasoning}


def checked_url(value: str, name: str, example: str) -> str:
    """An http(s) URL without a trailing slash, or a configuration error naming the setting."""
    # The URL, stripped of spaces and a trailing ``/``.
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise HailuoConfigurationError(
            f"{name} must be an http(s) URL such as {example!r}; got {value!r}."
        )
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise HailuoConfigurationError(
            f"{name} must be an origin without a query or fragment, such as {example!r}; "
            f"got {parts.scheme}://{parts.netloc}{parts.path} followed by "
            f"{'a query' if '?' in url else 'a fragment'}."
        )
    return url
