"""Where this package keeps its files (decided here only), and the environment it reads."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "APP_DIR_NAME",
    "AUTH_FILE_NAME",
    "ENV_AUTH_FILE",
    "ENV_BASE_URL",
    "ENV_DEVICE_ID",
    "ENV_G4F_LOGIN_URL",
    "ENV_LOGIN_URL",
    "ENV_POOL_URL",
    "ENV_TOKEN",
    "ENV_UUID",
    "PROFILE_DIR_NAME",
    "default_auth_file",
    "default_profile_dir",
    "environ",
    "user_config_dir",
]

APP_DIR_NAME = "langchain-hailuo"
AUTH_FILE_NAME = "auth.json"
PROFILE_DIR_NAME = "browser-profile"

ENV_TOKEN = "HAILUO_TOKEN"  # noqa: S105 - a variable name, not a secret
ENV_UUID = "HAILUO_UUID"
ENV_DEVICE_ID = "HAILUO_DEVICE_ID"
ENV_BASE_URL = "HAILUO_BASE_URL"
ENV_AUTH_FILE = "HAILUO_AUTH_FILE"
ENV_LOGIN_URL = "HAILUO_LOGIN_URL"
ENV_G4F_LOGIN_URL = "G4F_LOGIN_URL"
ENV_POOL_URL = "HAILUO_POOL_URL"
"""``redis://...``: the account pool's shared state (the same name as ``pool.ENV_POOL_URL``)."""


def environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    """The environment mapping to read (``os.environ`` unless one is injected)."""
    return os.environ if env is None else env


def _home(env: Mapping[str, str]) -> Path:
    """The user's home folder, honouring an injected ``HOME``."""
    home = env.get("HOME")
    return Path(home) if home else Path.home()


def user_config_dir(env: Mapping[str, str] | None = None) -> Path:
    """The per-user configuration folder (not created here).

    ``$XDG_CONFIG_HOME/langchain-hailuo`` when that is an absolute path, else
    ``%APPDATA%/langchain-hailuo`` on Windows, ``~/Library/Application Support/langchain-hailuo``
    on macOS and ``~/.config/langchain-hailuo`` elsewhere.
    """
    env = environ(env)
    xdg = env.get("XDG_CONFIG_HOME", "")
    if sys.platform == "win32":
        appdata = env.get("APPDATA")
        base = Path(appdata) if appdata else _home(env) / "AppData" / "Roaming"
    elif xdg and Path(xdg).is_absolute():
        base = Path(xdg)
    elif sys.platform == "darwin":
        base = _home(env) / "Library" / "Application Support"
    else:
        base = _home(env) / ".config"
    return base / APP_DIR_NAME


def default_auth_file(env: Mapping[str, str] | None = None) -> Path:
    """The auth file: ``HAILUO_AUTH_FILE``, else ``auth.json`` in :func:`user_config_dir`."""
    env = environ(env)
    explicit = env.get(ENV_AUTH_FILE)
    if explicit:
        return Path(explicit).expanduser()
    return user_config_dir(env) / AUTH_FILE_NAME


def default_profile_dir(env: Mapping[str, str] | None = None) -> Path:
    """The browser login's persistent Chromium profile (a login survives runs)."""
    return user_config_dir(env) / PROFILE_DIR_NAME
