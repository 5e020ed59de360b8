"""Pytest fixtures for the emulator.

Enable them with ``pytest_plugins = ["langchain_hailuo.emulator.pytest_plugin"]``.

Each serves the emulator from its own loop in a daemon thread (see :func:`serving`), so
sync tests (``model.invoke``) and async ones both reach it; it stops when its scope ends.
``hailuo_emulator`` is fresh per test; ``hailuo_emulator_module`` / ``_session`` are shared
by a module / the run, with their faults, scripts, requests and chats (call
``clear_faults()`` or count from the test's start). Scripts, faults and ``requests`` are
safe to use from the test's thread between calls. Under ``--disable-socket`` allow
loopback: ``@pytest.mark.allow_hosts(["127.0.0.1"])``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_hailuo.emulator.app import Emulator
from langchain_hailuo.emulator.threaded import serving

__all__ = ["hailuo_emulator", "hailuo_emulator_module", "hailuo_emulator_session", "serving"]


@pytest.fixture
def hailuo_emulator() -> Iterator[Emulator]:
    """A started :class:`Emulator` on free loopback ports, stopped after the test."""
    with serving() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def hailuo_emulator_module() -> Iterator[Emulator]:
    """One started :class:`Emulator` shared by the tests of a module."""
    with serving(name="hailuo-emulator-module") as emulator:
        yield emulator


@pytest.fixture(scope="session")
def hailuo_emulator_session() -> Iterator[Emulator]:
    """One started :class:`Emulator` shared by every test of the run."""
    with serving(name="hailuo-emulator-session") as emulator:
        yield emulator
