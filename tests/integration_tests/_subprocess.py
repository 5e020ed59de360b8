"""Running Python in a child process the way a user would: offline, without credentials."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_python(
    args: list[str], tmp_path: Path, *, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python <args>`` from the repository root, with no ``HAILUO_*`` variable set.

    Args:
        args: The interpreter's arguments (``["-X", "dev", "script.py"]``).
        tmp_path: A folder for the (absent) auth file, so no real credential is found.
        timeout: Seconds the child may take.

    Returns:
        The finished process, its output captured as text.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAILUO_")}
    env["HAILUO_AUTH_FILE"] = str(tmp_path / "no-auth.json")  # no credentials: emulator
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
        check=False,
    )
