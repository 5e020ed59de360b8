"""A user's script in its own process: a permanent move of the service is asked about once."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from langchain_hailuo.emulator.pytest_plugin import serving
from tests.integration_tests._subprocess import env, run

__all__ = ["env"]  # the fixture (from _subprocess)

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("status", [301, 308])
def test_a_users_two_models_ask_the_moved_origin_once(
    tmp_path: Path, env: dict[str, str], status: int
) -> None:
    script = tmp_path / "user_script.py"
    script.write_text(
        textwrap.dedent(
            """\
            import os

            from langchain_hailuo import ChatHailuo

            for _ in range(2):  # two models, each with its own connections
                model = ChatHailuo(base_url=os.environ["MOVED_URL"], protocol="agent")
                print(model.invoke("hi").content)
            """
        )
    )
    with serving() as emulator:
        emulator.redirect_status = status
        user = {
            **env,
            "HAILUO_TOKEN": emulator.default_account.token,
            "HAILUO_STREAM_URL": emulator.agent_stream_url,
            "MOVED_URL": emulator.agent_redirect_url,
        }
        result = run([sys.executable, str(script)], env=user, cwd=tmp_path, timeout=100)
        moved = [r for r in emulator.requests if r.endpoint == "redirect"]
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    assert len(moved) == 1, [(r.method, r.path) for r in moved]
