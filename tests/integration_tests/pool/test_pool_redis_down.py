"""A pool whose Redis cannot be reached: a typed error that names no password, nothing sent."""

from __future__ import annotations

import socket

import openai
import pytest

from langchain_hailuo.emulator.app import Emulator
from langchain_hailuo.errors import HailuoPoolUnavailableError
from langchain_hailuo.serve.store import MemoryStore
from tests.integration_tests._chats import mark
from tests.integration_tests._serve import API_KEY, MODEL, serving
from tests.integration_tests.pool._pool import pool_model
from tests.integration_tests.pool.conftest import private_redis_server

PASSWORD = "hunter2-of-the-pool"


def dead_redis_url() -> str:
    """A Redis URL (with a password) on a loopback port nothing listens on."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    return f"redis://:{PASSWORD}@127.0.0.1:{port}/0"


async def test_a_pool_whose_redis_is_down_raises_the_typed_error(
    pool_emulator: Emulator,
) -> None:
    chat = pool_model(pool_emulator, pool_url=dead_redis_url())
    start = mark(pool_emulator)
    with pytest.raises(HailuoPoolUnavailableError) as caught:
        await chat.ainvoke("Hello?")
    assert "Start Redis or fix pool_url" in caught.value.message
    assert PASSWORD not in str(caught.value)
    assert caught.value.retryable
    assert mark(pool_emulator) == start  # no account was asked


def test_serve_over_a_pool_whose_redis_is_down_answers_503(pool_emulator: Emulator) -> None:
    chat = pool_model(pool_emulator, pool_url=dead_redis_url())
    start = mark(pool_emulator)
    with (
        serving(pool_emulator, chat=chat, store=MemoryStore()) as served,
        openai.OpenAI(base_url=served.base_url, api_key=API_KEY, max_retries=0) as client,
        pytest.raises(openai.InternalServerError) as caught,
    ):
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "a"}])
    assert caught.value.status_code == 503
    assert caught.value.response.headers["Retry-After"] == "1"
    assert "pool's Redis" in str(caught.value.body)
    assert PASSWORD not in str(caught.value.body)
    assert mark(pool_emulator) == start


async def test_a_pool_whose_redis_goes_away_raises_the_typed_error(
    pool_emulator: Emulator,
) -> None:
    with private_redis_server() as (url, process):
        chat = pool_model(pool_emulator, pool_url=url)
        assert (await chat.ainvoke("Hello")).text.startswith("You said: Hello")
        process.terminate()
        process.wait(timeout=10)
        start = mark(pool_emulator)
        with pytest.raises(HailuoPoolUnavailableError) as caught:
            await chat.ainvoke("Still there?")
        assert "Start Redis or fix pool_url" in caught.value.message
        assert mark(pool_emulator) == start  # no account was asked
        await chat.aclose()
