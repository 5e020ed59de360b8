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
    """No test reads or writes the user's own auth file, device pairs, pool folder or caches.

    The package's config folder (``$XDG_CONFIG_HOME/langchain-hailuo``) and the cache folder
    other programs the tests start write to (Chromium's dconf, pip's cache) are temporary
    ones for the whole run; child processes the tests start inherit them.
    """
    private = {
        "XDG_CONFIG_HOME": str(tmp_path_factory.mktemp("xdg-config")),
        "XDG_CACHE_HOME": str(tmp_path_factory.mktemp("xdg-cache")),
    }
    previous = {name: os.environ.get(name) for name in private}
    os.environ.update(private)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
