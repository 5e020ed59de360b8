"""Issue #11: hostile servers and bad input, one test per item, over real loopback sockets.

Each test points a real ``ChatHailuo`` (its real aiohttp client) at the project's own
misbehaving server (``_hostile_server.py``) or feeds it careless input, and checks what a
user relies on: the token stays home, no message is sent twice, ``timeout`` is the call's
deadline, memory stays bounded, server text never carries a secret out, every failure is a
typed ``HailuoError``, and no socket is left to the garbage collector.

The deadline tests time nothing (a loaded machine must not fail them): the typed error a
call ends with must be its own deadline's, named in the message, not a phase's default.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import json
import logging
import math
import pickle
import re
import subprocess
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from langchain_hailuo import ChatHailuo
from langchain_hailuo._http import RedirectPolicy
from langchain_hailuo.agent.client import AGENT_DOMAINS, AGENT_HOSTS
from langchain_hailuo.errors import (
    HailuoConfigurationError,
    HailuoError,
    HailuoProtocolError,
    HailuoRateLimitError,
    HailuoRedirectError,
    HailuoResponseTooLargeError,
    HailuoServerError,
    HailuoTimeoutError,
    HailuoUnsupportedContentError,
)
from langchain_hailuo.v4.client import V4_DOMAINS, V4_HOSTS
from tests.integration_tests._chats import PROTOCOLS
from tests.integration_tests._hostile_server import (
    SESSION_ID,
    TOKEN,
    Behaviour,
    HostileServer,
    agent_chunk,
    agent_error,
    agent_final,
    answer_frames,
    v4_frames,
)
from tests.integration_tests._subprocess import run_python
from tests.integration_tests._waiting import wait_until

pytestmark = pytest.mark.timeout(600)

DEADLINE = 3.0
"""The calls' ``timeout`` in the deadline tests (the servers there answer never, or late)."""


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[HostileServer, HostileServer]]:
    """The hostile server, and a second one on another host name that must never be reached."""
    with HostileServer() as server, HostileServer() as elsewhere:
        yield server, elsewhere


@pytest.fixture
def server(servers: tuple[HostileServer, HostileServer]) -> HostileServer:
    servers[0].behave(Behaviour())
    servers[1].behave(Behaviour())
    return servers[0]


@pytest.fixture
def elsewhere(servers: tuple[HostileServer, HostileServer]) -> HostileServer:
    return servers[1]


def model_on(server: HostileServer, protocol: str, **overrides: Any) -> ChatHailuo:
    return ChatHailuo(**server.model_kwargs(protocol, **overrides))


async def ask(model: ChatHailuo, prompt: str = "Hello?", **kwargs: Any) -> str:
    try:
        return (await model.ainvoke(prompt, **kwargs)).text
    finally:
        await model.aclose()


def assert_no_token(error: BaseException, logs: pytest.LogCaptureFixture | None = None) -> None:
    for form in (TOKEN, quote(TOKEN)):
        assert form not in str(error)
        assert form not in repr(error)
        assert form not in getattr(error, "server_message", "")
        if logs is not None:
            assert form not in logs.text


# ----------------------------------------------------------------------------- 1. redirects


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_redirect_to_a_foreign_host_is_refused_and_nothing_is_sent_there(
    server: HostileServer, elsewhere: HostileServer, protocol: str
) -> None:
    # "localhost" reaches the second server, but it is another host than the configured one
    foreign = elsewhere.url.replace("127.0.0.1", "localhost") + "/v4/api/chat/msg?token=x"
    server.behave(Behaviour(status=307, headers={"Location": foreign}))
    with pytest.raises(HailuoRedirectError) as caught:
        await ask(model_on(server, protocol))
    assert caught.value.target == foreign.split("?")[0]  # named, without its query
    assert elsewhere.seen == []  # neither the token nor a cookie went there
    assert len(server.chat_posts()) == 1
    assert_no_token(caught.value)


def test_the_redirect_policy_keeps_credentials_on_known_https_origins() -> None:
    agent = RedirectPolicy.for_origins(
        "https://agent.minimax.io", "https://agent-stream.minimax.io", hosts=AGENT_HOSTS,
        domains=AGENT_DOMAINS,
    )  # fmt: skip
    v4 = RedirectPolicy.for_origins("https://www.hailuo.ai", hosts=V4_HOSTS, domains=V4_DOMAINS)
    # the documented chain, and the China site
    assert v4.refusal("https://www.hailuo.ai/x", "https://chat.minimax.io/x") is None
    assert v4.refusal("https://chat.minimax.io/x", "https://agent.minimax.io/x") is None
    assert agent.refusal("https://agent.minimax.io/x", "https://agent.minimaxi.com/x") is None
    # never from https to http, not even on the same host
    assert agent.refusal("https://agent.minimax.io/x", "http://agent.minimax.io/x")
    assert v4.refusal("https://www.hailuo.ai/x", "http://chat.minimax.io/x")
    # never to anyone else
    for target in ("https://minimax.io.evil.example/x", "https://evil.example/x", "ftp://x/y"):
        assert agent.refusal("https://agent.minimax.io/x", target)
        assert v4.refusal("https://www.hailuo.ai/x", target)


# ----------------------------------------------------------------------------- 2. never twice


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_5xx_after_the_message_was_sent_is_not_sent_again(
    server: HostileServer, protocol: str
) -> None:
    server.behave(Behaviour(status=502, body="upstream fell over"))
    with pytest.raises(HailuoServerError) as caught:
        await ask(model_on(server, protocol))
    assert len(server.chat_posts()) == 1
    assert caught.value.may_have_arrived
    assert "may have reached the server" in str(caught.value)
    if protocol == "agent":
        assert caught.value.chat_id == SESSION_ID  # where to look for the message


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_first_byte_timeout_is_not_sent_again(server: HostileServer, protocol: str) -> None:
    server.behave(Behaviour(delay=5.0))
    with pytest.raises(HailuoTimeoutError) as caught:
        await ask(model_on(server, protocol, timeout=0.5))
    assert len(server.chat_posts()) == 1
    assert caught.value.may_have_arrived


# ----------------------------------------------------------------------------- 3. deadline


async def _within_deadline(server: HostileServer, protocol: str) -> BaseException | str:
    model = model_on(server, protocol, timeout=DEADLINE)
    try:
        result: BaseException | str = await ask(model)
    except HailuoError as exc:
        result = exc
    # The call ended on the deadline the caller set, not on a phase's default (120 s for the
    # first byte, 90 s of silence) nor on the server's own pace: the error names it.
    assert f"{DEADLINE:g} s timeout" in str(result) or f"{DEADLINE:g} s (total timeout)" in str(
        result
    ), result
    return result


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_long_retry_after_raises_at_once(server: HostileServer, protocol: str) -> None:
    server.behave(Behaviour(status=429, headers={"Retry-After": "20"}))
    result = await _within_deadline(server, protocol)
    assert isinstance(result, HailuoRateLimitError)
    assert result.retry_after == 20
    assert len(server.chat_posts()) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_first_byte_stall_ends_by_the_deadline(
    server: HostileServer, protocol: str
) -> None:
    server.behave(Behaviour(delay=30.0))
    assert isinstance(await _within_deadline(server, protocol), HailuoTimeoutError)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_stall_mid_answer_ends_by_the_deadline(
    server: HostileServer, protocol: str
) -> None:
    frames = answer_frames(protocol, "Half an answer, then silence.")[:2]
    server.behave(Behaviour(frames=frames, stall=True))
    result = await _within_deadline(server, protocol)
    assert isinstance(result, HailuoTimeoutError)
    assert result.partial_text


async def test_calls_queued_on_one_account_end_by_their_deadline(server: HostileServer) -> None:
    # the service streams one answer per account: 8 calls queue, each within its own timeout
    server.behave(Behaviour(answer_delay=1.0))
    model = model_on(server, "agent", timeout=DEADLINE)

    async def one() -> BaseException | str:
        try:
            return (await model.ainvoke("Queue?")).text
        except HailuoError as exc:
            return exc

    results = await asyncio.gather(*(one() for _ in range(8)))
    await model.aclose()
    assert any(r == "Fine, thanks." for r in results)  # the first ones were answered
    timed_out = [r for r in results if not isinstance(r, str)]
    assert timed_out
    assert all(isinstance(r, HailuoTimeoutError) for r in timed_out), timed_out
    # each ended on its own deadline: the one answering and the ones still queued for the
    # account's stream alike
    for error in timed_out:
        assert f"{DEADLINE:g} s" in str(error) or "call's timeout ran out" in str(error), error


# ----------------------------------------------------------------------------- 4. memory


async def test_a_line_that_never_ends_is_refused_at_the_limit(server: HostileServer) -> None:
    server.behave(Behaviour(frames=[agent_chunk("Hel")], endless=True))
    limit = 1024 * 1024
    model = model_on(server, "agent", provider_settings={"max_line_bytes": limit})
    with pytest.raises(HailuoResponseTooLargeError, match="max_line_bytes"):
        await ask(model)


_MEMORY_PROBE = """
import json, sys
from langchain_hailuo import ChatHailuo

def kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))

model = ChatHailuo(**json.loads(sys.argv[1]))
assert model.invoke("Warm up.").text == "Fine, thanks."
before = kib("VmRSS:")
answer = model.invoke("Say a lot of a's.").text
print(json.dumps({"chars": len(answer), "a": answer.count("a"), "growth": kib("VmHWM:") - before}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux)")
def test_200000_one_character_deltas_through_invoke_stay_small(
    server: HostileServer, tmp_path: Path
) -> None:
    # measured in a fresh process: its peak resident size after the warm-up call, minus
    # its size before the answer (a per-delta cost of 2 KB would show as ~400 MB)
    count = 200_000
    frames = [agent_chunk("a")] * count + [agent_chunk("", finish=True), agent_final("a" * count)]
    server.behave(Behaviour(frames=frames, warm_up=True))
    kwargs = server.model_kwargs("agent", timeout=600)
    result = run_python(["-c", _MEMORY_PROBE, json.dumps(kwargs)], tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["chars"] == report["a"] == count  # nothing lost, nothing doubled
    assert report["growth"] < 50 * 1024, f"{report['growth'] / 1024:.0f} MiB for {count} deltas"


# ----------------------------------------------------------------------------- 5. secrets


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_token_echoed_in_an_error_body_is_scrubbed(
    server: HostileServer, protocol: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    body = f'{{"error": "bad token {TOKEN}", "url": "/x?token={quote(TOKEN)}"}}'
    server.behave(Behaviour(status=400, body=body))
    with pytest.raises(HailuoError) as caught:
        await ask(model_on(server, protocol))
    assert "***" in str(caught.value)
    assert_no_token(caught.value, debug_logs)


async def test_a_token_echoed_in_an_error_frame_is_scrubbed(
    server: HostileServer, debug_logs: pytest.LogCaptureFixture
) -> None:
    frames = [agent_chunk("Hi"), agent_error(f"session of {TOKEN} failed")]
    server.behave(Behaviour(frames=frames))
    with pytest.raises(HailuoServerError) as caught:
        await ask(model_on(server, "agent"))
    assert caught.value.partial_text == "Hi"
    assert_no_token(caught.value, debug_logs)


async def test_a_token_echoed_in_a_chat_title_stays_out_of_the_metadata(
    server: HostileServer,
) -> None:
    server.behave(Behaviour(frames=v4_frames("Fine.", title=f"Chat of {TOKEN}")))
    model = model_on(server, "v4")
    message = await model.ainvoke("Hello?")
    await model.aclose()
    assert message.text == "Fine."
    assert TOKEN not in str(message.response_metadata)


# ----------------------------------------------------------------------------- 6. typed errors


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_json_nested_without_end_is_a_protocol_error(
    server: HostileServer, protocol: str
) -> None:
    deep = "[" * 200_000 + "]" * 200_000
    server.behave(Behaviour(frames=[f"data: {deep}\n\n"]))
    with pytest.raises(HailuoProtocolError, match="nested too deeply"):
        await ask(model_on(server, protocol))


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_bare_cr_line_ends_keep_the_answer(server: HostileServer, protocol: str) -> None:
    text = "Carriage returns only, as old Macs did."
    frames = [f.replace("\n", "\r") for f in answer_frames(protocol, text)]
    server.behave(Behaviour(frames=frames))
    assert await ask(model_on(server, protocol)) == text


async def test_a_final_message_on_a_connection_left_open_is_the_whole_answer(
    server: HostileServer,
) -> None:
    text = "The whole answer, and no finish chunk."
    frames = [agent_chunk(text[:10]), agent_chunk(text[10:]), agent_final(text)]
    server.behave(Behaviour(frames=frames, stall=True))
    model = model_on(server, "agent", timeout=DEADLINE)
    message = await model.ainvoke("Hello?")
    await model.aclose()
    assert message.text == text
    assert message.usage_metadata is not None


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_lone_surrogate_is_refused_before_any_request(
    server: HostileServer, protocol: str
) -> None:
    with pytest.raises(HailuoUnsupportedContentError, match="surrogate"):
        await ask(model_on(server, protocol), "broken \ud800 text")
    assert server.chat_posts() == []


@pytest.mark.parametrize("bad", ["abc\ndef-secret", "abc\r\nX-Evil: 1", "tab\tsecret", "nul\x00"])
def test_a_token_with_control_characters_is_refused_at_construction(bad: str) -> None:
    with pytest.raises(HailuoConfigurationError) as caught:
        ChatHailuo(token=bad, base_url="https://agent.minimax.io")
    assert "secret" not in str(caught.value)
    assert bad not in str(caught.value)


@pytest.mark.parametrize("timeout", [0, -1, math.nan, math.inf, -math.inf])
def test_a_timeout_that_cannot_work_is_refused_at_construction(timeout: float) -> None:
    with pytest.raises(HailuoConfigurationError, match="timeout"):
        ChatHailuo(token="t" * 20, timeout=timeout)


async def test_a_call_timeout_that_cannot_work_is_refused_before_any_request(
    server: HostileServer,
) -> None:
    with pytest.raises(HailuoConfigurationError, match="timeout"):
        await ask(model_on(server, "agent"), timeout=math.nan)
    assert server.chat_posts() == []


@pytest.mark.parametrize(
    "url", ["https://agent.minimax.io/?x=1", "https://agent.minimax.io#top", "http://h.io/p?q"]
)
def test_a_base_url_with_a_query_or_fragment_is_refused_at_construction(url: str) -> None:
    with pytest.raises(HailuoConfigurationError, match="query or fragment"):
        ChatHailuo(token="t" * 20, base_url=url)


# ----------------------------------------------------------------------------- 7. sockets


_SLOW_STEP = re.compile(r"^Executing <.*> took \d+\.\d+ seconds$")


def _noise(stderr: str) -> list[str]:
    """Lines on stderr, without dev mode's "slow step" timing notes (the machine's speed)."""
    return [line for line in stderr.splitlines() if not _SLOW_STEP.match(line)]


def _python_dev(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run_python(["-X", "dev", "-c", textwrap.dedent(code)], tmp_path)


def test_a_model_local_to_asyncio_run_main_leaves_nothing_on_stderr(tmp_path: Path) -> None:
    result = _python_dev(
        """
        import asyncio
        from langchain_hailuo import ChatHailuo
        from langchain_hailuo.emulator import Emulator

        async def main() -> None:
            async with Emulator() as emulator:
                model = ChatHailuo(**emulator.model_kwargs(protocol="agent"))
                print((await model.ainvoke("Hello!")).text)
                async for chunk in model.astream("Again!"):
                    print(chunk.text, end="")
                v4 = ChatHailuo(**emulator.model_kwargs(protocol="v4"))
                print((await v4.ainvoke("Hello!")).text)

        asyncio.run(main())
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "You said: Hello!" in result.stdout
    assert _noise(result.stderr) == []


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "langchain_hailuo.demo"],
        ["examples/lcel_chain.py"],
        ["examples/message_history.py"],
        ["examples/langgraph_chatbot.py"],
        ["examples/react_agent.py"],
    ],
)
def test_the_readme_examples_print_nothing_on_stderr_in_dev_mode(
    args: list[str], tmp_path: Path
) -> None:
    result = run_python(["-X", "dev", *args], tmp_path)
    assert result.returncode == 0, result.stderr
    assert _noise(result.stderr) == []


def _open_fds() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc (Linux)")
def test_file_descriptors_stay_flat_across_asyncio_run_calls(server: HostileServer) -> None:
    shared = model_on(server, "agent")  # outlives every loop, as a module-level model does

    async def main() -> None:
        local = model_on(server, "agent")  # dies with main(), as in the README's scripts
        assert (await local.ainvoke("Hello?")).text == "Fine, thanks."
        assert (await shared.ainvoke("Hello?")).text == "Fine, thanks."

    asyncio.run(main())  # imports and caches first
    gc.collect()
    gc.disable()
    try:
        before = _open_fds()
        for _ in range(30):
            asyncio.run(main())
        # The server's thread closes its side of each connection once it sees the client
        # go, on its own time: wait for that. Sockets the client kept never settle.
        wait_until(lambda: _open_fds() - before <= 2, "the file descriptors to settle")
    finally:
        gc.enable()


def test_a_model_used_on_two_event_loops_leaves_no_socket_to_the_collector(
    server: HostileServer,
) -> None:
    # The cause of the flaky "unclosed transport" in the fault-injection suite: a session
    # whose loop had closed was only marked closed, its keep-alive socket was left to the
    # garbage collector. Each loop's session now closes when that loop shuts down.
    models = [model_on(server, "agent")]

    async def ask_once() -> str:
        return (await models[0].ainvoke("Hello?")).text

    for _ in range(2):  # like two tests with their own loops (pytest-asyncio's Runner)
        assert asyncio.run(ask_once()) == "Fine, thanks."
    models.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            gc.collect()
    assert not [str(w.message) for w in caught if "nclosed" in str(w.message)]


def test_a_used_model_deep_copies_and_pickles(server: HostileServer) -> None:
    model = model_on(server, "agent")
    assert model.invoke("Hello?").text == "Fine, thanks."
    copied = copy.deepcopy(model)
    revived = pickle.loads(pickle.dumps(model))  # noqa: S301 - our own bytes
    for clone in (copied, revived):
        assert clone.token is not None
        assert clone.token.get_secret_value() == TOKEN
        assert clone.invoke("Again?").text == "Fine, thanks."
        clone.close()
    assert model.invoke("Still there?").text == "Fine, thanks."
    model.close()


@pytest.fixture(autouse=True)
def _quiet_aiohttp_server_logs() -> Iterator[None]:
    """The hostile server's own disconnect noise is not what these tests check."""
    logger = logging.getLogger("aiohttp.server")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)
