"""Integration tests talk to loopback servers only (the emulator, test stubs, Chromium)."""

from __future__ import annotations

import os

import pytest

from langchain_hailuo._browser import find_browser
from langchain_hailuo.emulator.app import Emulator
from langchain_hailuo.errors import HailuoLoginError


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Let integration tests open sockets to loopback addresses, and nowhere else."""
    for item in items:
        if "integration_tests" in str(item.path) and not item.get_closest_marker("live"):
            item.add_marker(pytest.mark.allow_hosts(["127.0.0.1", "::1"]))
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.usefixtures("browser_executable"))


def _in_ci() -> bool:
    """Whether we run in CI (``CI=true``), where a missing browser is a failure."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture
def browser_executable() -> str:
    """The Chromium/Chrome to drive (``HAILUO_BROWSER``, else found on ``PATH``).

    Tests marked ``@pytest.mark.browser`` get this automatically. Without a browser they
    skip with the reason, except in CI (``CI=true``), where they fail: a CI job that
    silently skips every browser test would prove nothing.
    """
    try:
        return find_browser()
    except HailuoLoginError as exc:
        reason = f"no Chromium for browser tests: {exc.message}"
        if _in_ci():
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="module")
def emulator(hailuo_emulator_module: Emulator) -> Emulator:
    """One emulator for the module, served from its own thread (sync calls reach it)."""
    return hailuo_emulator_module
