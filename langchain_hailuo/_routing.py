"""Which provider speaks a protocol, and what each one takes per turn.

``ChatHailuo`` names no protocol: it asks this module for the provider of the protocol
it resolved, and for the turn options that provider understands. The provider classes are
imported on first use, so a model that is never called loads no protocol stack.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from langchain_hailuo.errors import HailuoConfigurationError
from langchain_hailuo.types import Protocol

__all__ = ["build_provider", "checked_url", "turn_options"]


def build_provider(
    protocol: Protocol,
    *,
    base_url: str | None,
    stream_url: str | None,
    auth_manager: Any,
    settings: dict[str, Any],
) -> Any:
    """The provider of ``protocol`` (``HailuoAI`` for ``v4``, ``MiniMaxAgent`` otherwise).

    Args:
        protocol: The protocol.
        base_url: The service origin, if set.
        stream_url: The Agent stream origin, if set (v4 has none).
        auth_manager: Supplies and refreshes the credentials.
        settings: Provider settings (``timeout``, ``max_retries``, ``proxy``, protocol
            fields); each provider ignores what is meant for the other.

    Returns:
        The provider.
    """
    if protocol == "v4":
        from langchain_hailuo.v4.provider import HailuoAI  # noqa: PLC0415 - lazy stack

        return HailuoAI(base_url=base_url, auth_manager=auth_manager, **settings)
    from langchain_hailuo.agent.provider import MiniMaxAgent  # noqa: PLC0415 - lazy stack

    return MiniMaxAgent(
        base_url=base_url, stream_url=stream_url, auth_manager=auth_manager, **settings
    )


def turn_options(
    protocol: Protocol, *, reasoning: bool | None, stream_url: str | None
) -> dict[str, Any]:
    """The per-turn options of a protocol: MiniMax Agent takes ``reasoning`` and ``stream_url``.

    Args:
        protocol: The protocol.
        reasoning: Whether the model should think first (``None``: its default).
        stream_url: The Agent stream origin, if set.

    Returns:
        The keyword arguments for the provider's turn.
    """
    if protocol == "v4":
        return {}
    options: dict[str, Any] = {}
    if reasoning is not None:
        options["reasoning"] = reasoning
    if stream_url:
        options["stream_url"] = stream_url
    return options


def checked_url(value: str, name: str, example: str) -> str:
    """An http(s) URL without a trailing slash, or a configuration error naming the setting.

    Args:
        value: The URL as configured.
        name: The setting's name, for the message (``"base_url"``).
        example: A good value, for the message.

    Returns:
        The URL, stripped of spaces and a trailing ``/``.

    Raises:
        HailuoConfigurationError: Not an absolute http(s) URL, or one with a query or a
            fragment (paths are joined to it).
    """
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
