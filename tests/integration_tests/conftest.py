"""Integration tests talk to loopback servers only (the emulator, test stubs, Chromium)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Let integration tests open sockets to loopback addresses, and nowhere else."""
    for item in items:
        if "integration_tests" in str(item.path) and not item.get_closest_marker("live"):
            item.add_marker(pytest.mark.allow_hosts(["127.0.0.1", "::1"]))
