"""Shared test setup: the aioresponses compatibility shim and secret-leak helpers."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests import _aioresponses_compat

_aioresponses_compat.install()

pytest_plugins = ["langchain_hailuo.emulator.pytest_plugin"]


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture every log line of the package at DEBUG (for token-leak checks)."""
    with caplog.at_level(logging.DEBUG, logger="langchain_hailuo"):
        yield caplog
