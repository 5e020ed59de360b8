"""What the unit tests of both protocols use to read an async stream to its end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")


async def collect(items: AsyncIterator[T]) -> list[T]:
    """Everything an async iterator yields, in order."""
    return [item async for item in items]
