"""``hailuo serve`` is safe by default: keys, limits, CORS, shutdown, no secret in any output."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from langchain_hailuo.cli import main
from langchain_hailuo.emulator.app import Emulator
from langchain_hailuo.emulator.pytest_plugin import serving as serving_emulator
from tests.integration_tests._chats import mark
from tests.integration_tests._serve import API_KEY, MODEL, openai_sdk, serve_command, serving
from tests.integration_tests._waiting import wait_until

HI: Any = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def slow_emulator() -> Iterator[Emulator]:
    """An emulator whose answers take a while (about 0.05 s per frame)."""
    with serving_emulator(Emulator(chunk_delay=0.05)) as emulator:
        yield emulator


# --------------------------------------------------------------------------- start-up


def test_public_address_without_a_key_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HAILUO_SERVE_API_KEYS", raising=False)
    code = main(["serve", "--host", "0.0.0.0", "--port", "0"])  # noqa: S104 - refused
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("hailuo: error: Refusing to serve on 0.0.0.0 without an API key")


def test_no_login_fails_at_start_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("HAILUO_TOKEN", raising=False)
    code = main(["serve", "--port", "0", "--auth-file", str(tmp_path / "none.json")])
    captured = capsys.readouterr()
    assert code == 1
    (line,) = captured.err.splitlines()
    assert line.startswith("hailuo: error: No Hailuo credentials found")
    assert "hailuo login" in line


def test_loopback_without_a_key_needs_none(emulator: Emulator) -> None:
    with (
        serving(emulator, api_keys=()) as served,
        openai_sdk(served, api_key="anything") as sdk,
    ):
        reply = sdk.chat.completions.create(model=MODEL, messages=HI)
    assert reply.choices[0].message.content is not None


# --------------------------------------------------------------------------- limits


def test_request_size_limit_gets_413(emulator: Emulator) -> None:
    with (
        serving(emulator, max_body_bytes=2000) as served,
        openai_sdk(served) as sdk,
        pytest.raises(openai.APIStatusError) as caught,
    ):
        sdk.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x" * 5000}])
    assert caught.value.status_code == 413
    assert isinstance(caught.value.body, dict)
    assert "2000 bytes" in caught.value.body["message"]


def test_per_key_concurrency_limit_gets_429(emulator: Emulator) -> None:
    emulator.clear_faults()
    emulator.fault("slow_first_byte", delay=1.0)
    with (
        serving(emulator, max_concurrency=1) as served,
        openai_sdk(served) as sdk,
    ):
        start = mark(emulator)
        results: list[object] = []
        first = threading.Thread(
            target=lambda: results.append(sdk.chat.completions.create(model=MODEL, messages=HI))
        )
        first.start()
        wait_until(lambda: mark(emulator) > start, "the first request to reach the emulator")
        with pytest.raises(openai.RateLimitError) as caught:
            sdk.chat.completions.create(model=MODEL, messages=HI)
        first.join(30)
    assert caught.value.response.headers["Retry-After"] == "1"
    assert len(results) == 1  # the first one was answered


# --------------------------------------------------------------------------- CORS


def test_cors_is_off_unless_configured(emulator: Emulator) -> None:
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    with serving(emulator) as served:
        response = httpx.options(f"{served.base_url}/chat/completions", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
        assert response.status_code != 204
        models = httpx.get(
            f"{served.base_url}/models",
            headers={"Origin": "https://app.example", "Authorization": f"Bearer {API_KEY}"},
        )
        assert models.status_code == 200
        assert "access-control-allow-origin" not in models.headers
    with serving(emulator, cors_origins=("https://app.example",)) as served:
        allowed = httpx.options(f"{served.base_url}/chat/completions", headers=preflight)
        assert allowed.status_code == 204
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        other = httpx.options(
            f"{served.base_url}/chat/completions",
            headers={**preflight, "Origin": "https://evil.example"},
        )
        assert "access-control-allow-origin" not in other.headers


# --------------------------------------------------------------------------- shutdown


def test_shutdown_lets_a_running_stream_finish(slow_emulator: Emulator) -> None:
    with (
        serving(slow_emulator, shutdown_timeout=30) as served,
        openai_sdk(served) as sdk,
    ):
        stream = sdk.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "A rather long question for a slow answer"}],
            stream=True,
        )
        chunks = iter(stream)
        first = next(chunks)
        assert first.choices[0].delta.role == "assistant"
        stopped = threading.Event()

        def stop() -> None:
            served.runner.run(served.server.stop())
            stopped.set()

        stopper = threading.Thread(target=stop)
        stopper.start()
        rest = list(chunks)
        stopper.join(30)
    assert stopped.is_set()
    text = "".join(c.choices[0].delta.content or "" for c in rest if c.choices)
    assert text == "You said: A rather long question for a slow answer. This chat has 1 turn(s)."
    assert rest[-1].choices[0].finish_reason == "stop"


def test_shutdown_is_bounded(emulator: Emulator) -> None:
    emulator.clear_faults()
    emulator.fault("stall")
    errors: list[BaseException] = []
    with (
        serving(emulator, shutdown_timeout=0.5) as served,
        openai_sdk(served) as sdk,
    ):

        def ask() -> None:
            try:
                list(sdk.chat.completions.create(model=MODEL, messages=HI, stream=True))
            except openai.APIError as exc:
                errors.append(exc)

        start = mark(emulator)
        asker = threading.Thread(target=ask)
        asker.start()
        wait_until(lambda: mark(emulator) > start, "the stalled request to reach the emulator")
        served.runner.run(served.server.stop())  # returns: the stalled answer did not hold it
        asker.join(30)
    emulator.clear_faults()
    assert not asker.is_alive()
    assert len(errors) == 1  # the stalled answer was cut off, not left hanging


# --------------------------------------------------------------------------- secrets


def test_no_token_or_key_in_responses_or_logs(
    emulator: Emulator,
    debug_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    token = emulator.default_account.token
    emulator.clear_faults()
    bodies: list[str] = []
    with (
        serving(emulator, model={"max_retries": 0}) as served,
        openai_sdk(served) as sdk,
    ):
        bodies.append(sdk.chat.completions.create(model=MODEL, messages=HI).model_dump_json())
        bodies.append(
            "".join(
                c.model_dump_json()
                for c in sdk.chat.completions.create(model=MODEL, messages=HI, stream=True)
            )
        )
        for fault in ("http_401", "http_500", "quota_wall", "stream_error"):
            emulator.fault(fault, times=2)
            with pytest.raises(openai.APIStatusError) as caught:
                sdk.chat.completions.create(model=MODEL, messages=HI)
            bodies.append(str(caught.value.body))
            bodies.append(str(dict(caught.value.response.headers)))
            emulator.clear_faults()
        bodies.append(sdk.models.list().model_dump_json())
    captured = capfd.readouterr()
    everything = "\n".join([*bodies, debug_logs.text, captured.out, captured.err])
    assert "POST /v1/chat/completions 200 key-" in debug_logs.text
    assert token not in everything
    assert API_KEY not in everything
    assert emulator.default_account.tab_device_id not in everything


def test_the_hailuo_serve_command_end_to_end(slow_emulator: Emulator) -> None:
    """The real command in a child process: serves, stops on SIGINT, never shows the token."""
    account = slow_emulator.default_account
    env = {
        **os.environ,
        "HAILUO_TOKEN": account.token,
        "HAILUO_PROTOCOL": "agent",
        "HAILUO_BASE_URL": slow_emulator.agent_url,
        "HAILUO_STREAM_URL": slow_emulator.agent_stream_url,
        "HAILUO_UUID": account.uuid,
        "HAILUO_DEVICE_ID": account.tab_device_id,
        "HAILUO_SERVE_API_KEYS": API_KEY,
        "HAILUO_AUTH_FILE": os.devnull,
    }
    with serve_command(env) as command:
        with openai_sdk(command) as sdk:
            stream = sdk.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "Hello from a child"}],
                stream=True,
            )
            chunks = iter(stream)
            next(chunks)
            command.process.send_signal(signal.SIGINT)
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "You said: Hello from a child. This chat has 1 turn(s)."
        out, err = command.wait()
    assert "POST /v1/chat/completions 200" in err
    for secret in (account.token, API_KEY, account.tab_device_id):
        assert secret not in command.banner + out + err


def test_a_client_leaving_mid_stream_closes_the_answer_upstream(slow_emulator: Emulator) -> None:
    with (
        serving(slow_emulator) as served,
        openai_sdk(served) as sdk,
    ):
        stream = sdk.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "A long question the client will not wait for"}],
            stream=True,
        )
        next(iter(stream))
        stream.close()
        wait_until(lambda: len(slow_emulator.disconnects) == 1, "the emulator to see the client go")
        # The server is still fine, and the account free for the next answer.
        reply = sdk.chat.completions.create(model=MODEL, messages=HI)
    assert reply.choices[0].message.content == "You said: Hi. This chat has 1 turn(s)."
