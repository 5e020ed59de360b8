"""The demo decides between the real service and the emulator by the saved login alone."""

from __future__ import annotations

import json
from pathlib import Path

from langchain_hailuo.demo import has_credentials


def _env(tmp_path: Path) -> dict[str, str]:
    return {"HOME": str(tmp_path / "home"), "XDG_CONFIG_HOME": str(tmp_path / "config")}


def test_no_token_and_no_auth_file_means_no_credentials(tmp_path: Path) -> None:
    assert not has_credentials(_env(tmp_path))


def test_a_token_in_the_environment_counts(tmp_path: Path) -> None:
    assert has_credentials({**_env(tmp_path), "HAILUO_TOKEN": "a-token"})


def test_an_auth_file_with_only_device_pairs_is_not_a_login(tmp_path: Path) -> None:
    # What token-only use leaves behind (#10): the device pairs, no token. The demo must
    # then run on the emulator, not fail against the real service with no login.
    auth_file = tmp_path / "auth.json"
    devices = {"agent:acct-1": {"uuid": "u" * 36, "device_id": "1" * 18}}
    auth_file.write_text(json.dumps({"devices": devices}), encoding="utf-8")
    assert not has_credentials({**_env(tmp_path), "HAILUO_AUTH_FILE": str(auth_file)})


def test_a_saved_login_counts(tmp_path: Path) -> None:
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"token": "a-token", "uuid": "u" * 36}), encoding="utf-8")
    assert has_credentials({**_env(tmp_path), "HAILUO_AUTH_FILE": str(auth_file)})
