"""The emulator scripted from outside a test: ``hailuo emulator --script FILE``, its control
route, marker-bound replies, and ``langchain_hailuo.emulator`` without pytest."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from langchain_hailuo.chat_models import ChatHailuo
from langchain_hailuo.emulator import ScriptedReply
from langchain_hailuo.emulator.app import Emulator
from langchain_hailuo.errors import HailuoStreamInterruptedError
from tests.integration_tests._chats import model_for

CLI = [sys.executable, "-m", "langchain_hailuo.cli"]


def said(model: ChatHailuo, prompt: str) -> str:
    """The model's answer text to ``prompt``."""
    return str(model.invoke(prompt).content)


def test_a_marker_bound_reply_waits_for_its_message(emulator: Emulator) -> None:
    emulator.script(ScriptedReply("The bound answer.", marker="TASK-41"), "The next answer.")
    model = model_for(emulator, "agent")
    assert said(model, "Write a title for this chat") == "The next answer."
    assert said(model, "Generate a title").startswith("You said:")  # nothing left
    assert said(model, "Now TASK-41, please") == "The bound answer."


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    """``hailuo emulator --script FILE`` running, and the values its banner printed."""
    script = tmp_path / "script.jsonl"
    script.write_text(
        "# replies for the demo\n"
        + json.dumps({"reply": "Scripted hello.", "marker": "HELLO-1"})
        + "\n\n"
        + json.dumps(
            {
                "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}],
                "text": "Let me check.",
                "marker": "WEATHER-1",
            }
        )
        + "\n",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [*CLI, "emulator", "--port", "0", "--chunk-delay", "0", "--script", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner: dict[str, str] = {}
        for line in process.stdout:
            name, sep, value = line.partition(":")
            if sep and value.strip():
                banner[name.strip()] = value.strip()
            if line.startswith("realUserID"):
                break
        yield process, banner
    finally:
        process.terminate()
        process.communicate(timeout=30)


def _model(banner: dict[str, str]) -> ChatHailuo:
    return ChatHailuo(
        protocol="agent",
        token=banner["token (made up)"],
        base_url=banner["agent control + login"],
        stream_url=banner["agent stream"],
        uuid=banner["uuid"],
        device_id=banner["tab_device_id (agent)"],
    )


def test_the_emulator_command_plays_a_script_and_takes_more_at_run_time(
    scripted: tuple[subprocess.Popen[str], dict[str, str]],
) -> None:
    _, banner = scripted
    control = re.sub(r"^POST/DELETE (\S+).*$", r"\1", banner["script control"])
    model = _model(banner)
    assert said(model, "A side request").startswith("You said:")  # not bound to it
    assert said(model, "HELLO-1: hi") == "Scripted hello."
    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    called = model.bind_tools([weather]).invoke("WEATHER-1: how is Oslo?")
    assert [(c["name"], c["args"]) for c in called.tool_calls] == [
        ("get_weather", {"city": "Oslo"})
    ]

    queued = httpx.post(
        control,
        json=[{"reply": "Queued at run time.", "marker": "LATE-1"}, {"fault": "drop", "after": 2}],
    )
    assert queued.json() == {"queued": 2}
    with pytest.raises(HailuoStreamInterruptedError):
        model.invoke("dropped on the way")
    assert said(model, "LATE-1 now") == "Queued at run time."
    bad = httpx.post(control, json={"fault": "no_such_fault"})
    assert bad.status_code == 400
    assert "unknown fault kind" in bad.json()["error"]
    httpx.post(control, json={"reply": "never played", "marker": "GONE"})
    assert httpx.delete(control).json() == {"cleared": True}
    assert said(model, "GONE?").startswith("You said:")


def test_a_bad_script_line_is_one_error_line_naming_it(tmp_path: Path) -> None:
    script = tmp_path / "bad.jsonl"
    script.write_text('{"reply": "fine"}\n{not json}\n', encoding="utf-8")
    done = subprocess.run(
        [*CLI, "emulator", "--port", "0", "--script", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"hailuo: error: Cannot use the script {script}: ")
    assert "line 2" in line


def test_the_emulator_package_and_serving_need_no_pytest() -> None:
    code = (
        "import sys, importlib.abc\n"
        "class NoPytest(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in {'pytest', '_pytest'}:\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, NoPytest())\n"
        "from langchain_hailuo.emulator import serving, ScriptedReply\n"
        "from langchain_hailuo.chat_models import ChatHailuo\n"
        "with serving() as emulator:\n"
        "    emulator.script(ScriptedReply('no pytest here', marker='M'))\n"
        "    print(ChatHailuo(**emulator.model_kwargs()).invoke('M').content)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "no pytest here"
