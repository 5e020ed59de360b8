"""The README's "Many accounts" worker-pool example, run as written against the emulator."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

from langchain_hailuo.emulator.app import Emulator
from langchain_hailuo.pool import save_account
from tests.integration_tests.pool._pool import auths_of, fingerprints

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "pool_workers.py"
THREADS = 24


def _code(text: str) -> str:
    """The example's code from its first import on (what the README shows)."""
    return text[text.index("import asyncio") :].strip()


def test_the_readme_shows_the_example_as_it_is() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Many accounts") :]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert _code(EXAMPLE.read_text(encoding="utf-8")) in [b.strip() for b in blocks]


def test_the_worker_pool_example_keeps_threads_on_their_account_one_stream_each(
    pool_emulator: Emulator, redis_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "accounts"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAILUO_")}
    env |= {
        "HAILUO_ACCOUNTS_DIR": str(folder),
        "HAILUO_POOL_URL": redis_url,
        "HAILUO_PROTOCOL": "v4",
        "HAILUO_BASE_URL": pool_emulator.url,
        "HAILUO_AUTH_FILE": str(tmp_path / "no-auth.json"),
    }
    for name, auth in zip(pool_emulator.accounts, auths_of(pool_emulator), strict=True):
        save_account(name, auth, env)
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), str(THREADS)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert sorted(line.split(":")[0] for line in lines) == sorted(
        f"user-{i}" for i in range(THREADS)
    )
    names = fingerprints(pool_emulator)
    used = set()
    for line in lines:
        answers, chats = line.split(": ", 1)[1].split(" answers, chat(s) ")
        assert answers == "2", line
        where = ast.literal_eval(chats)
        assert len(where) == 1, line  # both turns on one account and one server chat
        used.add(names[where[0][0]])
    assert len(used) > 1  # the threads were spread over the accounts
    assert max(pool_emulator.account_peaks.values()) == 1, pool_emulator.account_peaks
    assert len(pool_emulator.requests_to("chat")) == 2 * THREADS
