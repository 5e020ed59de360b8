"""The README's main command and the examples run offline, against the bundled emulator."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.integration_tests._subprocess import run_python


def _run(args: list[str], tmp_path: Path) -> str:
    result = run_python(args, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    return result.stdout


def test_demo_streams_two_turns_in_one_server_chat(tmp_path: Path) -> None:
    out = _run(["-m", "langchain_hailuo.demo"], tmp_path)
    assert "using the bundled local emulator" in out
    assert "This chat has 1 turn(s)" in out
    assert "This chat has 2 turn(s)" in out
    chat_ids = [
        line.split("chat_id=")[1].split()[0] for line in out.splitlines() if "chat_id=" in line
    ]
    assert len(chat_ids) == 2
    assert chat_ids[0] == chat_ids[1] != "None"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("examples/lcel_chain.py", "This chat has 1 turn(s)"),
        ("examples/message_history.py", "This chat has 2 turn(s)"),
        ("examples/langgraph_chatbot.py", "This chat has 2 turn(s)"),
        ("examples/react_agent.py", "[one server chat: True"),
    ],
)
def test_example_runs_offline(script: str, expected: str, tmp_path: Path) -> None:
    out = _run([script], tmp_path)
    assert expected in out


@pytest.mark.skipif(
    shutil.which("redis-server") is None and os.environ.get("CI") != "true",
    reason="redis-server is not installed (apt-get install redis-server)",
)
def test_pool_workers_fall_back_to_the_emulator_and_a_private_redis(tmp_path: Path) -> None:
    out = _run(["examples/pool_workers.py", "8"], tmp_path)
    assert "using the local emulator" in out
    assert "using a private redis-server" in out
    threads = [line for line in out.splitlines() if line.startswith("user-")]
    assert len(threads) == 8
    for line in threads:  # both turns of a thread in one server chat of one account
        assert ": 2 answers, chat(s) [(" in line
        assert "), (" not in line
