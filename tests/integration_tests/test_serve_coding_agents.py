"""The real coding agents through ``hailuo serve`` over the emulator: Claude Code and Codex,
each with a plain prompt and a tool round trip that continues the same server chat.

``.ci/run`` installs both (``npm install`` of ``@anthropic-ai/claude-code`` and
``@openai/codex`` into the checkout's ``.npm-clis``); without node, npm or the programs the
tests skip, except in CI (``CI=true``), where they fail. Both are pointed at the loopback
server only, with telemetry, error reporting and update checks off, and a private home.
Scripted replies are bound to a marker in the prompt, so any side request an agent makes
(a title, a warm-up) cannot take them.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from langchain_hailuo.emulator import ScriptedReply
from langchain_hailuo.emulator.app import Emulator
from tests.integration_tests._chats import mark, sent
from tests.integration_tests._serve import API_KEY, MODEL, Served, call_block, served_by

pytestmark = pytest.mark.timeout(300)

CLIS = Path(__file__).resolve().parents[2] / ".npm-clis" / "node_modules" / ".bin"
"""Where ``.ci/run`` installs the agents (``npm install --prefix .npm-clis``)."""


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def agent_program(name: str) -> str:
    """The installed program ``name`` (skips, or in CI fails, when node or it is missing)."""
    found = CLIS / name if (CLIS / name).exists() else shutil.which(name)
    missing = [what for what in ("node", "npm") if shutil.which(what) is None]
    if found is None:
        missing.append(f"{name} (run `npm install --prefix .npm-clis` as .ci/run does)")
    if missing:
        reason = f"the real {name} cannot run here: missing {', '.join(missing)}"
        if _in_ci():
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    return str(found)


served = served_by(model_aliases=(("claude-*", MODEL), ("gpt-*", MODEL)))


def _offline_env(home: Path, **extra: str) -> dict[str, str]:
    """A minimal environment: a private home, nothing but loopback to talk to."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "NO_PROXY": "127.0.0.1,localhost",
        **extra,
    }


def _run(command: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run an agent to its end; its standard output (it must exit 0)."""
    done = subprocess.run(
        command,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout


# --------------------------------------------------------------------------- Claude Code


def claude(served: Served, tmp_path: Path, prompt: str, *flags: str) -> str:
    """``claude -p PROMPT FLAGS`` against the server (Anthropic base URL, key, model)."""
    env = _offline_env(
        tmp_path / "home",
        ANTHROPIC_BASE_URL=served.origin,
        ANTHROPIC_API_KEY=API_KEY,
        ANTHROPIC_MODEL=MODEL,
        ANTHROPIC_SMALL_FAST_MODEL=MODEL,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        DISABLE_AUTOUPDATER="1",
        DISABLE_TELEMETRY="1",
        DISABLE_ERROR_REPORTING="1",
    )
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return _run([agent_program("claude"), "-p", prompt, *flags], env, work)


def test_claude_code_answers_a_plain_prompt(
    served: Served, emulator: Emulator, tmp_path: Path
) -> None:
    emulator.script(ScriptedReply("Hello from MiniMax, via Claude Code.", marker="MARK-CC-PLAIN"))
    out = claude(served, tmp_path, "MARK-CC-PLAIN: say hello")
    assert "Hello from MiniMax, via Claude Code." in out


def test_claude_code_bash_round_trip_lands_in_the_same_chat(
    served: Served, emulator: Emulator, tmp_path: Path
) -> None:
    command = {"command": "echo bash-said-42", "description": "Print a word"}
    emulator.script(
        ScriptedReply("Running it.\n" + call_block("Bash", command), marker="MARK-CC-BASH"),
        ScriptedReply("The command printed bash-said-42.", marker="bash-said-42"),
    )
    start = mark(emulator)
    out = claude(
        served, tmp_path, "MARK-CC-BASH: run the echo command", "--allowedTools", "Bash(echo:*)"
    )
    assert "The command printed bash-said-42." in out
    posts = sent(emulator, "agent", start)
    (asked,) = [p for p in posts if "MARK-CC-BASH" in p.text]
    (result,) = [p for p in posts if "bash-said-42" in p.text]
    assert result.chat_id == asked.chat_id  # the tool result continued the same server chat
    assert "MARK-CC-BASH" not in result.text  # ...with only the new message
    assert 'name="Bash">\nbash-said-42\n</tool_result>' in result.text  # the real Bash ran


# --------------------------------------------------------------------------- Codex


def codex(served: Served, tmp_path: Path, prompt: str) -> str:
    """``codex exec PROMPT`` with a ``config.toml`` provider on ``/v1/responses``."""
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'model = "{MODEL}"\n'
        'model_provider = "hailuo"\n'
        "check_for_update_on_startup = false\n\n"
        "[model_providers.hailuo]\n"
        'name = "hailuo serve"\n'
        f'base_url = "{served.base_url}"\n'
        'env_key = "HAILUO_SERVE_KEY"\n'
        'wire_api = "responses"\n'
        "request_max_retries = 0\n"
        "stream_max_retries = 0\n\n"
        "[analytics]\nenabled = false\n",
        encoding="utf-8",
    )
    env = _offline_env(tmp_path / "home", CODEX_HOME=str(home), HAILUO_SERVE_KEY=API_KEY)
    command = [agent_program("codex"), "exec", "--skip-git-repo-check", prompt]
    return _run(command, env, tmp_path)


def test_codex_exec_answers_through_the_responses_api(
    served: Served, emulator: Emulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.script(ScriptedReply("Codex got this through /v1/responses.", marker="MARK-CODEX"))
    with caplog.at_level(logging.INFO, logger="langchain_hailuo.serve.app"):
        out = codex(served, tmp_path, "MARK-CODEX: say hello")
    assert "Codex got this through /v1/responses." in out
    assert any("POST /v1/responses 200" in r.getMessage() for r in caplog.records)


def test_codex_exec_runs_a_command_and_continues_the_same_chat(
    served: Served, emulator: Emulator, tmp_path: Path
) -> None:
    emulator.script(
        ScriptedReply(
            call_block("exec_command", {"cmd": "echo codex-said-42"}), marker="MARK-CODEX-RUN"
        ),
        ScriptedReply("The command printed codex-said-42.", marker="codex-said-42"),
    )
    start = mark(emulator)
    out = codex(served, tmp_path, "MARK-CODEX-RUN: run the echo command")
    assert "The command printed codex-said-42." in out
    posts = sent(emulator, "agent", start)
    (asked,) = [p for p in posts if "MARK-CODEX-RUN" in p.text]
    (result,) = [p for p in posts if "codex-said-42" in p.text and p is not asked]
    assert result.chat_id == asked.chat_id  # store: false, continued by the resent history
    assert "MARK-CODEX-RUN" not in result.text  # ...with only the new message
    assert 'name="exec_command">' in result.text
    assert "Output:\ncodex-said-42" in result.text  # the command really ran
