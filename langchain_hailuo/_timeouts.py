"""Timeout settings, checked and split by phase, importable without aiohttp.

``ChatHailuo`` checks its ``timeout`` when built and makes it the call's deadline; the HTTP
layer (:mod:`langchain_hailuo._http`) applies the phases.
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
    """Seconds each phase may take (``None``: no limit).

    ``connect`` opens TCP + TLS, ``first_byte`` waits for the response headers, ``idle`` is the
    longest silence between two chunks, ``total`` the whole answer.
    """

    connect: float | None = 15.0
    first_byte: float | None = 60.0
    idle: float | None = 90.0
    total: float | None = 600.0

    @classmethod
    def from_total(cls, total: float | None, defaults: Timeouts | None = None) -> Timeouts:
        """Timeouts from a LangChain ``timeout`` (``None``: ``defaults``), no phase exceeding it."""
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
    """A setting as positive finite seconds, or ``None``; else a ``HailuoConfigurationError``."""
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
