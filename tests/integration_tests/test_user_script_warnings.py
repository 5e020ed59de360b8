"""Warnings a user's own script gets point at the script's line, not at a library's."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(
    ("build", "name"),
    [
        ("ChatHailuo(temperature=0.2)", "temperature"),
        ("ChatHailuo(max_tokens=100)", "max_tokens"),
        ("Mine(temperature=0.2)", "temperature"),  # a subclass defined by the user
        ("ChatHailuo.model_validate({'max_tokens': 5})", "max_tokens"),
    ],
)
def test_an_ignored_control_warns_at_the_users_line(tmp_path: Path, build: str, name: str) -> None:
    script = tmp_path / "user_script.py"
    script.write_text(
        textwrap.dedent(
            f"""\
            from langchain_hailuo import ChatHailuo


            class Mine(ChatHailuo):
                pass


            model = {build}
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAILUO_")}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "config"))
    result = subprocess.run(
        [sys.executable, "-W", "always::UserWarning", str(script)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=100,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{script}:8: UserWarning: ChatHailuo ignores {name}"), first
