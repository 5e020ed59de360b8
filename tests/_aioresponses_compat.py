"""Compatibility shim: aioresponses 0.7.9 on aiohttp 3.14.

aiohttp 3.14 (a security release, GHSA-jg22-mg44-37j8) made ``ClientResponse``'s
``stream_writer`` argument required; aioresponses 0.7.9, the newest release, does not pass
it (``ClientResponse.__init__() missing ... 'stream_writer'``). The fix is aioresponses
PR #288, not yet released. Rather than pin aiohttp below 3.14 for everyone, the tests hand
aioresponses a response class that supplies a stand-in writer. Delete this module once an
aioresponses release includes that fix.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import aioresponses.core
from aiohttp import ClientResponse

_NEEDS_WRITER = "stream_writer" in inspect.signature(ClientResponse.__init__).parameters


class CompatClientResponse(ClientResponse):
    """A ClientResponse that tolerates aioresponses' missing ``stream_writer``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if _NEEDS_WRITER:
            kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(*args, **kwargs)


def install() -> None:
    """Make aioresponses build ``CompatClientResponse`` when a mock names no class."""
    aioresponses.core.ClientResponse = CompatClientResponse  # type: ignore[misc]
