"""What the unit tests of both protocols use to read an async stream to its end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

T = TypeVar("T")


async def collect(items: AsyncIterator[T]) -> list[T]:
    """Everything an async iterator yields, in order."""
    return [item async for item in items]


async def collect_reads(reads: AsyncIterator[list[T]]) -> list[T]:
    """Every event of a stream that yields one list per network read, in order."""
    return [item async for items in reads for item in items]
