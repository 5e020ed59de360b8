"""Shared test setup: the aioresponses compatibility shim and secret-leak helpers."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from langchain_hailuo import _http
from tests import _aioresponses_compat

_aioresponses_compat.install()

pytest_plugins = ["langchain_hailuo.emulator.pytest_plugin"]


@pytest.fixture(scope="session", autouse=True)
def _private_config_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test reads or writes the user's own auth file, device pairs or pool folder.

    The package's config folder (``$XDG_CONFIG_HOME/langchain-hailuo``) is a temporary one
    for the whole run; child processes the tests start inherit it.
    """
    previous = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("xdg-config"))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("XDG_CONFIG_HOME", None)
        else:
            os.environ["XDG_CONFIG_HOME"] = previous


@pytest.fixture(autouse=True)
def _no_remembered_moves() -> Iterator[None]:
    """Each test starts as a fresh process would: no permanent redirect remembered.

    Tests reuse the same made-up origins (and loopback ports come round again), so a move
    one test's server announced must not send another test's requests elsewhere.
    """
    _http._MOVED.clear()
    yield
    _http._MOVED.clear()


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture every log line of the package at DEBUG (for token-leak checks)."""
    with caplog.at_level(logging.DEBUG, logger="langchain_hailuo"):
        yield caplog
