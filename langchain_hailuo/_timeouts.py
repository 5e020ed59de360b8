"""Timeout settings, checked and split by phase (no HTTP stack needed to read them).

``ChatHailuo`` checks its ``timeout`` when it is built and turns it into the call's deadline;
the HTTP layer (:mod:`langchain_hailuo._http`) applies the phases. Keeping them here lets
``import langchain_hailuo`` and a model's construction run without loading aiohttp.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_hailuo.errors import HailuoConfigurationError

if TYPE_CHECKING:
    import aiohttp

__all__ = ["Timeouts", "checked_timeout"]


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long each phase of a request may take, in seconds (``None``: no limit).

    Attributes:
        connect: Opening the connection (TCP + TLS).
        first_byte: From sending the request to the response headers.
        idle: Longest silence between two chunks of a streamed answer.
        total: The whole answer, first byte to last.
    """

    connect: float | None = 15.0
    first_byte: float | None = 60.0
    idle: float | None = 90.0
    total: float | None = 600.0

    @classmethod
    def from_total(cls, total: float | None, defaults: Timeouts | None = None) -> Timeouts:
        """Build timeouts from a single LangChain-style ``timeout`` (the total budget).

        Args:
            total: Seconds for the whole answer, or ``None`` for the defaults.
            defaults: The protocol's phase timeouts (default: these class defaults).

        Returns:
            Timeouts whose phases are the defaults', never exceeding ``total``.
        """
        base = defaults or cls()
        if total is None:
            return base
        return cls(
            connect=min(base.connect or total, total),
            first_byte=min(base.first_byte or total, total),
            idle=min(base.idle or total, total),
            total=total,
        )

    def client_timeout(self) -> aiohttp.ClientTimeout:
        """The aiohttp timeout for connecting and waiting for headers (the body is timed by us)."""
        import aiohttp  # noqa: PLC0415 - the HTTP stack loads with the first request

        return aiohttp.ClientTimeout(
            total=None, connect=self.connect, sock_connect=self.connect, sock_read=None
        )


def checked_timeout(value: object, name: str = "timeout") -> float | None:
    """A timeout setting as positive finite seconds, or ``None`` (no limit given).

    Args:
        value: The setting as given.
        name: The setting's name, for the message.

    Returns:
        The seconds, or ``None``.

    Raises:
        HailuoConfigurationError: Zero, negative, NaN, infinite or not a number.
    """
    if value is None:
        return None
    try:
        seconds = float(typing.cast("Any", value))
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds <= 0:
        raise HailuoConfigurationError(
            f"{name} must be a positive, finite number of seconds (or None for the "
            f"defaults); got {value!r}."
        )
    return seconds
