"""Warnings a user's own script gets point at the script's line, not at a library's."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tests.integration_tests._subprocess import env, run

__all__ = ["env"]  # the fixture (from _subprocess)

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
def test_an_ignored_control_warns_at_the_users_line(
    tmp_path: Path, env: dict[str, str], build: str, name: str
) -> None:
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
    argv = [sys.executable, "-W", "always::UserWarning", str(script)]
    result = run(argv, env=env, cwd=tmp_path, timeout=100)
    assert result.returncode == 0, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{script}:8: UserWarning: ChatHailuo ignores {name}"), first
