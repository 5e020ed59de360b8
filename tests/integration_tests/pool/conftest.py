"""A real ``redis-server`` for the pool tests, and worker processes that share it.

``HAILUO_TEST_REDIS_URL`` (set by ``.ci/run``, which starts Debian's ``redis-server`` on a
loopback port) is used when set; otherwise one ``redis-server`` is started here on a free
loopback port for the session and stopped after. Without a ``redis-server`` binary the
Redis tests skip, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langchain_hailuo.emulator.app import Emulator
from langchain_hailuo.emulator.pytest_plugin import serving
from tests.integration_tests.pool._pool import auths_of, dumps, pool_accounts, pool_kwargs

ENV_URL = "HAILUO_TEST_REDIS_URL"
ROOT = Path(__file__).resolve().parents[3]
_START_TIMEOUT = 20.0


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _redis_binary() -> str:
    """The ``redis-server`` binary (else the test skips, or fails in CI)."""
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "no redis-server binary (apt-get install redis-server) for the pool's Redis tests"
        if _in_ci():
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    return binary


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """The URL of a Redis server only these tests use (flushed by ``redis_url``)."""
    given = os.environ.get(ENV_URL)
    if given:
        yield given
        return
    with private_redis_server() as (url, _):
        yield url


@contextlib.contextmanager
def private_redis_server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A ``redis-server`` of its own on a free loopback port: its URL and process."""
    binary = _redis_binary()
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + _START_TIMEOUT
        while not _ping(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start on 127.0.0.1:{port}", pytrace=False)
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _flush(url: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The test Redis, emptied for this test."""
    asyncio.run(_flush(redis_server))
    return redis_server


@pytest.fixture
def pool_emulator() -> Iterator[Emulator]:
    """An emulator with six accounts, served from its own thread, for one test."""
    with serving(Emulator(accounts=pool_accounts()), name="hailuo-pool-emulator") as emulator:
        yield emulator


class Worker:
    """A worker process (``_worker.py``) with a pooled model on the shared Redis."""

    def __init__(self, emu: Emulator, url: str, **settings: Any) -> None:
        self.url = url
        setup = {
            **pool_kwargs(emu),
            "pool_url": url,
            "accounts": [a.to_store_dict() for a in auths_of(emu)],
            **settings,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration_tests.pool._worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )
        self.send_line(dumps(setup))

    def send_line(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def ask(self, command: dict[str, Any]) -> Any:
        """Send a command and read its reply (blocking)."""
        self.send(command)
        return self.reply()

    def send(self, command: dict[str, Any]) -> None:
        """Send a command without waiting (read its answer with :meth:`reply`)."""
        self.send_line(dumps(command))

    def reply(self) -> Any:
        """The next reply (blocking)."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the worker exited (code {self.process.poll()})"
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send_line(dumps({"op": "exit"}))
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def workers(pool_emulator: Emulator, redis_url: str) -> Iterator[list[Worker]]:
    """Two worker processes sharing the test Redis and the six emulator accounts."""
    started = [Worker(pool_emulator, redis_url, lease_ttl=5.0) for _ in range(2)]
    try:
        yield started
    finally:
        for worker in started:
            worker.close()


def ask_all(workers: list[Worker], commands: list[dict[str, Any]]) -> list[Any]:
    """Send each worker its command, so they run at the same time; then read the replies."""
    for worker, command in zip(workers, commands, strict=True):
        worker.send(command)
    return [worker.reply() for worker in workers]
