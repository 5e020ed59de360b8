"""The Redis pool's Lua scripts are package data: a wheel built from the checkout ships them."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.timeout(600)
def test_the_wheel_ships_every_lua_script_of_the_pool(tmp_path: Path) -> None:
    scripts = sorted(p.name for p in (ROOT / "langchain_hailuo" / "pool" / "lua").glob("*.lua"))
    assert {"common.lua", "acquire.lua", "release.lua"} <= set(scripts)
    # pip and the build tools it runs write to HOME (a rustup proxy on PATH writes
    # ~/.rustup): a temporary one, so the suite leaves the user's HOME as it was.
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), ROOT],
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = tmp_path.glob("langchain_hailuo-*.whl")
    with zipfile.ZipFile(wheel) as built:
        shipped = sorted(
            Path(name).name
            for name in built.namelist()
            if name.startswith("langchain_hailuo/pool/lua/")
        )
    assert shipped == scripts
