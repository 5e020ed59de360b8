"""Pytest fixtures for the emulator.

Enable them in a ``conftest.py``::

    pytest_plugins = ["langchain_hailuo.emulator.pytest_plugin"]

Each fixture serves the emulator from an event loop of its own, in a daemon thread, so
both kinds of test reach it: a sync test calling ``model.invoke(...)`` (which never lets a
test loop run) and an async test calling ``await model.ainvoke(...)``. The emulator is
stopped, and its thread ended, when the fixture's scope ends.

- ``hailuo_emulator``: a fresh emulator for each test;
- ``hailuo_emulator_module`` / ``hailuo_emulator_session``: one emulator shared by every
  test of a module / of the run (faster to start; queued faults and scripts, recorded
  requests and chats are shared too, so call ``clear_faults()`` or compare against a
  count taken at the start of the test).

Setting scripts and faults, and reading ``requests``, from the test's thread is safe
between calls. With pytest-socket's ``--disable-socket``, also allow loopback for the
tests that use it, e.g. ``@pytest.mark.allow_hosts(["127.0.0.1"])``.
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
