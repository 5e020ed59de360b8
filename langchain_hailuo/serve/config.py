"""The settings of ``hailuo serve`` and the start-up safety check.

The defaults are the safe ones: loopback only, no CORS, 16 requests at once per API key,
4 MiB request bodies, 30 s for running answers to finish at shutdown. Binding to anything
but a loopback address without an API key is refused.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from pydantic import SecretStr

from langchain_hailuo.errors import HailuoConfigurationError

__all__ = ["ServeConfig", "key_id", "parse_aliases"]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def key_id(key: str) -> str:
    """A short, non-reversible name for an API key (its namespace and log name)."""
    return "key-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def parse_aliases(specs: list[str]) -> tuple[tuple[str, str], ...]:
    """``PATTERN=MODEL`` specs (``claude-*=MiniMax-M3``) as ``(pattern, model)`` pairs."""
    aliases = []
    for spec in specs:
        pattern, _, model = (side.strip() for side in spec.partition("="))
        if not pattern or not model:
            raise HailuoConfigurationError(
                f"Model alias {spec!r} is not PATTERN=MODEL; write e.g. "
                "--model-alias 'claude-*=MiniMax-M3'."
            )
        aliases.append((pattern, model))
    return tuple(aliases)


def _is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or name."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServeConfig:
    """How ``hailuo serve`` listens and what it allows.

    Attributes:
        host: The address to bind; ``port``: the port (0: a free one).
        api_keys: Keys clients must send (``Authorization: Bearer`` or ``x-api-key``);
            none is asked for when empty, which only a loopback address allows.
        max_concurrency: Requests answered at once per API key; more get 429.
        max_body_bytes: The largest request body taken; larger ones get 413.
        cors_origins: Origins browsers may call from (``*``: any); empty: CORS off.
        shutdown_timeout: Seconds running answers get to finish when the server stops.
        store_entries: Conversations remembered (least recently used dropped first).
        store_ttl: Seconds a conversation is remembered after its last turn.
        model_aliases: ``(pattern, model)`` pairs: a model name matching a shell-style
            pattern (``claude-*``) is answered by that model, for clients with built-in
            names; ``GET /v1/models`` lists the real ids.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    api_keys: tuple[SecretStr, ...] = ()
    max_concurrency: int = 16
    max_body_bytes: int = 4 * 2**20
    cors_origins: tuple[str, ...] = ()
    shutdown_timeout: float = 30.0
    store_entries: int = 10_000
    store_ttl: float = 24 * 3600.0
    model_aliases: tuple[tuple[str, str], ...] = ()

    def check(self) -> None:
        """Refuse unsafe or impossible settings with a message that says what to do."""
        if not self.api_keys and not _is_loopback(self.host):
            raise HailuoConfigurationError(
                f"Refusing to serve on {self.host} without an API key: anyone who can reach "
                "it would use your Hailuo account. Pass --api-key KEY (or set "
                "HAILUO_SERVE_API_KEYS), or bind 127.0.0.1."
            )
        if any(not key.get_secret_value().strip() for key in self.api_keys):
            raise HailuoConfigurationError("An API key is empty; give a non-empty --api-key.")
        if self.max_concurrency < 1 or self.max_body_bytes < 1 or self.shutdown_timeout < 0:
            raise HailuoConfigurationError(
                "--max-concurrency and --max-body-bytes must be at least 1, and "
                "--shutdown-timeout not negative."
            )
