"""Pytest fixtures for the emulator.

Enable them in a ``conftest.py``::

    pytest_plugins = ["langchain_hailuo.emulator.pytest_plugin"]

With pytest-socket's ``--disable-socket``, also allow loopback for the tests that use it,
e.g. ``@pytest.mark.allow_hosts(["127.0.0.1"])``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from langchain_hailuo.emulator.app import Emulator

__all__ = ["hailuo_emulator"]


@pytest_asyncio.fixture
async def hailuo_emulator() -> AsyncIterator[Emulator]:
    """A started :class:`Emulator` on free loopback ports, stopped after the test."""
    async with Emulator() as emulator:
        yield emulator
