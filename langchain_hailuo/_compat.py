"""What Python 3.11 added that this package uses, for Python 3.10 too.

``asyncio.timeout`` comes from ``async-timeout`` on 3.10 (aiohttp already depends on it
there), and on 3.10 ``asyncio.TimeoutError`` is not the built-in ``TimeoutError``, so
code that catches a timeout catches :data:`TIMEOUT_ERRORS`.
"""

from __future__ import annotations

import asyncio
import sys

__all__ = ["TIMEOUT_ERRORS", "expired", "timeout"]

if sys.version_info >= (3, 11):
    from asyncio import timeout
else:  # pragma: no cover - Python 3.10
    from async_timeout import timeout

TIMEOUT_ERRORS: tuple[type[BaseException], ...] = (TimeoutError, asyncio.TimeoutError)
"""A timeout, whichever module raised it (one class since Python 3.11)."""


def expired(deadline: object) -> bool:
    """Whether a :func:`timeout` context ran out (a method on 3.11+, a property before)."""
    value = getattr(deadline, "expired", False)
    return bool(value() if callable(value) else value)
