"""A fresh virtual environment with ``pip install .`` (no extras), used as a new user would.

This is the licence promise of the package (MIT, nothing copyleft unless ``[browser]`` is
asked for) and the server/container path (``hailuo login --token``) checked for real: pip
builds and installs the package and resolves its dependencies through the machine's normal
configuration (its cache is the run's temporary one). One environment serves the module.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from langchain_hailuo.emulator import Emulator
from langchain_hailuo.emulator.core import default_reply
from tests.integration_tests._subprocess import emulator

__all__ = ["emulator"]  # the fixture (from _subprocess)

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[2]
COPYLEFT = ("AGPL", "AFFERO", "GPL-3", "GPLV3", "GNU GENERAL PUBLIC")

LICENCES_SCRIPT = """
import json
from importlib.metadata import distributions
rows = []
for dist in distributions():
    meta = dist.metadata
    rows.append({
        "name": meta["Name"],
        "license": " ".join(
            filter(None, [meta.get("License-Expression"), (meta.get("License") or "")[:200]])
        ),
        "classifiers": [c for c in meta.get_all("Classifier") or [] if c.startswith("License")],
        "requires": meta.get_all("Requires-Dist") or [],
    })
print(json.dumps(rows))
"""


def _run(
    *args: str, env: dict[str, str], stdin: str = "", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=env["HOME"],  # not the checkout: `python -c` would import it from the cwd
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m venv`` + ``pip install .``: the package and its required dependencies only."""
    root = tmp_path_factory.mktemp("fresh") / "venv"
    # venv's ensurepip and pip (and the tools they run) write to HOME: a temporary one.
    env = {**os.environ, "HOME": str(root.parent)}
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=120, env=env)
    pip = [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    result = subprocess.run(
        [*pip, str(ROOT)], capture_output=True, text=True, timeout=540, check=False, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root


@pytest.fixture
def user_env(tmp_path: Path, venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HAILUO_", "G4F_"))}
    env.pop("PYTHONPATH", None)
    env.update(
        HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        HAILUO_AUTH_FILE=str(tmp_path / "state" / "auth.json"),
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
    )
    return env


def test_no_installed_distribution_is_copyleft_and_nodriver_is_only_an_extra(
    venv: Path, user_env: dict[str, str]
) -> None:
    result = _run(str(venv / "bin" / "python"), "-c", LICENCES_SCRIPT, env=user_env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    names = {row["name"].lower() for row in rows}
    assert "langchain-hailuo" in names
    assert "nodriver" not in names
    for row in rows:
        text = " ".join([row["license"], *row["classifiers"]]).upper()
        assert not any(mark in text for mark in COPYLEFT), row
    (ours,) = [row for row in rows if row["name"].lower() == "langchain-hailuo"]
    assert ours["license"].startswith("MIT")
    nodriver = [req for req in ours["requires"] if req.lower().startswith("nodriver")]
    assert nodriver
    # Only behind extras: `browser`, and `test` (which pulls in `browser`).
    assert all(re.search(r"""extra == ["'](browser|test)["']""", req) for req in nodriver), nodriver


def test_import_demo_token_login_and_chat_work_without_extras(
    venv: Path, user_env: dict[str, str], emulator: Emulator
) -> None:
    python = str(venv / "bin" / "python")
    imported = _run(
        python,
        "-c",
        "import sys, langchain_hailuo; assert 'nodriver' not in sys.modules; "
        "print(langchain_hailuo.__file__)",
        env=user_env,
    )
    assert imported.returncode == 0, imported.stderr
    assert str(venv) in imported.stdout  # the installed copy, not the checkout

    demo = _run(python, "-m", "langchain_hailuo.demo", env=user_env)
    assert demo.returncode == 0, demo.stderr
    assert "emulator" in demo.stdout.lower()

    hailuo = str(venv / "bin" / "hailuo")
    token = emulator.default_account.token
    login = _run(
        hailuo, "login", "--token", "-", "--base-url", emulator.agent_url,
        "--stream-url", emulator.agent_stream_url, env=user_env, stdin=token,
    )  # fmt: skip
    assert login.returncode == 0, login.stderr
    chat = _run(hailuo, "chat", env=user_env, stdin="hello from a fresh venv\n")
    assert chat.returncode == 0, chat.stderr
    assert default_reply("hello from a fresh venv", 1) in chat.stdout
    for text in (login.stdout, login.stderr, chat.stdout, chat.stderr):
        assert token not in text

    # The browser login names the extra and the token login, in one line.
    browser = _run(hailuo, "login", "--headless", "--timeout", "1", env=user_env)
    assert browser.returncode == 1
    lines = [line for line in browser.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, browser.stderr
    assert "langchain-hailuo[browser]" in lines[0]
    assert "--token" in lines[0]
    assert "AGPL" in lines[0]
    status = _run(hailuo, "status", env=user_env)
    assert "nodriver is not installed" in status.stdout
