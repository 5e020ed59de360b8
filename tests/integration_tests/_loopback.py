"""A test's own small aiohttp server on a free loopback port, stopped when the test ends."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web


@contextlib.asynccontextmanager
async def loopback(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 while the block runs; yields ``http://127.0.0.1:port``.

    On exit, requests still running get 0.1 s before they are cancelled: a test's server
    that holds a stream open (a stall, a gate) must not hold the test up.
    """
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
