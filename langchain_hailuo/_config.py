"""Where this package keeps its files, the environment it reads, the browser login's settings."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import SecretStr

from langchain_hailuo._routing import DEFAULT_BASE_URL, PROTOCOL_CHOICES, host_of
from langchain_hailuo.errors import HailuoConfigurationError

__all__ = [
    "APP_DIR_NAME",
    "AUTH_FILE_NAME",
    "ENV_ACCOUNTS_DIR",
    "ENV_AUTH_FILE",
    "ENV_BASE_URL",
    "ENV_DEVICE_ID",
    "ENV_G4F_LOGIN_URL",
    "ENV_LOGIN_URL",
    "ENV_POOL_URL",
    "ENV_TOKEN",
    "ENV_TOKENS",
    "ENV_UUID",
    "PROFILE_DIR_NAME",
    "LoginOptions",
    "account_file",
    "as_account_spec",
    "default_accounts_dir",
    "default_auth_file",
    "default_profile_dir",
    "environ",
    "login_options_from_kwargs",
    "pool_specs_from_env",
    "redact_url",
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
"""``redis://...``: share the account pool's leases and cool-downs with other processes."""
ENV_TOKENS = "HAILUO_TOKENS"
"""Comma-separated tokens, one per pool account."""
ENV_ACCOUNTS_DIR = "HAILUO_ACCOUNTS_DIR"
"""A folder of auth files (``*.json``), one per pool account."""


def environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    """The environment mapping to read (``os.environ`` unless one is injected)."""
    return os.environ if env is None else env


def _home(env: Mapping[str, str]) -> Path:
    """The user's home folder, honouring an injected ``HOME``."""
    home = env.get("HOME")
    return Path(home) if home else Path.home()


def user_config_dir(env: Mapping[str, str] | None = None) -> Path:
    """The per-user configuration folder (not created here)."""
    # ``$XDG_CONFIG_HOME/langchain-hailuo`` when that is an absolute path, else
    # ``%APPDATA%/langchain-hailuo`` on Windows, ``~/Library/Application Support/langchain-hailuo``
    # on macOS and ``~/.config/langchain-hailuo`` elsewhere.
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


def default_accounts_dir(env: Mapping[str, str] | None = None) -> Path:
    """The pool folder: ``HAILUO_ACCOUNTS_DIR``, else ``accounts/`` in the config folder."""
    env = environ(env)
    explicit = env.get(ENV_ACCOUNTS_DIR)
    return Path(explicit).expanduser() if explicit else user_config_dir(env) / "accounts"


def account_file(name: str, env: Mapping[str, str] | None = None) -> Path:
    """The auth file ``<pool folder>/<name>.json`` of the pool account called ``name``.

    Raises:
        HailuoConfigurationError: The name is empty or not letters, digits, ``-``, ``_``
            and ``.`` (not starting with ``.``): it could escape the folder.
    """
    cleaned = name.strip()
    if not cleaned or cleaned[0] == "." or not all(c.isalnum() or c in "-_." for c in cleaned):
        raise HailuoConfigurationError(
            f"Account name {name!r} is not usable as a file name: use letters, digits, "
            "'-', '_' and '.' (not starting with '.')."
        )
    return default_accounts_dir(env) / f"{cleaned}.json"


def as_account_spec(value: Any) -> Any:
    """One ``accounts=`` item as the pool reads it: a path, or a token kept secret.

    A ``str`` naming an existing path, containing a path separator or ending in ``.json``
    is a path; any other is a token. Other values are returned as they are.
    """
    if isinstance(value, Path):
        return value.expanduser()
    if not isinstance(value, str):
        return value
    path = Path(value).expanduser()
    try:
        named = os.sep in value or value.endswith(".json") or path.exists()
    except (OSError, ValueError):
        named = False
    return path if named else SecretStr(value)


def pool_specs_from_env(env: Mapping[str, str] | None = None) -> list[SecretStr | Path] | None:
    """The accounts ``HAILUO_TOKENS``, else ``HAILUO_ACCOUNTS_DIR`` name (``None``: neither)."""
    env = environ(env)
    tokens = [t.strip() for t in env.get(ENV_TOKENS, "").split(",") if t.strip()]
    if tokens:
        return [SecretStr(t) for t in tokens]
    folder = env.get(ENV_ACCOUNTS_DIR, "").strip()
    return [Path(folder).expanduser()] if folder else None


@dataclass(frozen=True)
class LoginOptions:
    """Settings of the browser login (:func:`langchain_hailuo.auth.browser_login`).

    Attributes:
        base_url: The page to open; redirects are followed and the final origin recorded.
        browser_path: The Chromium / Chrome executable; else ``HAILUO_BROWSER``, else
            ``chromium``, ``chromium-browser``, ``google-chrome`` on ``PATH``.
        headless: Run without a window (only useful with a profile that is logged in
            already, or when a test drives the page).
        proxy: A proxy for the browser (``http://host:port``, ``socks5://host:port``).
        profile_dir: A persistent Chromium profile, so a login survives runs; defaults to
            :func:`langchain_hailuo._config.default_profile_dir`.
        login_timeout: Seconds to wait for the login to complete.
        browser_args: Extra command-line flags for Chromium.
        protocol: ``"auto"`` records ``v4`` for the old Hailuo hosts and ``agent`` otherwise;
            ``"v4"`` / ``"agent"`` force it (useful for local stand-ins on 127.0.0.1).
        poll_interval: Seconds between two checks for the token.
    """

    base_url: str = DEFAULT_BASE_URL
    browser_path: str | None = None
    headless: bool = False
    proxy: str | None = None
    profile_dir: Path | None = None
    login_timeout: float = 300.0
    browser_args: tuple[str, ...] = field(default=())
    protocol: Literal["auto", "v4", "agent"] = "auto"
    poll_interval: float = 0.5

    def __post_init__(self) -> None:
        """Validate the values."""
        if host_of(self.base_url) is None:
            raise HailuoConfigurationError(
                f"base_url {self.base_url!r} is not an absolute URL; use e.g. {DEFAULT_BASE_URL!r}."
            )
        if not self.login_timeout > 0:
            raise HailuoConfigurationError("login_timeout must be a positive number of seconds.")
        if not self.poll_interval > 0:
            raise HailuoConfigurationError("poll_interval must be a positive number of seconds.")
        if self.protocol not in PROTOCOL_CHOICES:
            raise HailuoConfigurationError(
                f"Unknown protocol {self.protocol!r}: use 'auto', 'agent' or 'v4'."
            )
        if self.profile_dir is not None and not isinstance(self.profile_dir, Path):
            object.__setattr__(self, "profile_dir", Path(self.profile_dir))
        if not isinstance(self.browser_args, tuple):
            object.__setattr__(self, "browser_args", tuple(self.browser_args))

    def __repr__(self) -> str:
        """Show the options; a proxy's credentials are hidden."""
        proxy = redact_url(self.proxy) if self.proxy else None
        return (
            f"LoginOptions(base_url={self.base_url!r}, browser_path={self.browser_path!r}, "
            f"headless={self.headless!r}, proxy={proxy!r}, profile_dir={self.profile_dir!r}, "
            f"login_timeout={self.login_timeout!r}, browser_args={self.browser_args!r}, "
            f"protocol={self.protocol!r})"
        )


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` part replaced by ``***@``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()


_LOGIN_OPTION_KEYS = (
    "base_url",
    "browser_path",
    "headless",
    "profile_dir",
    "login_timeout",
    "browser_args",
    "protocol",
    "poll_interval",
)


def login_options_from_kwargs(
    proxy: str | None = None, *, base: LoginOptions | None = None, **kwargs: Any
) -> LoginOptions:
    """Build :class:`LoginOptions` from a provider's keyword arguments."""
    # Keys that are not login options (``model``, ``timeout``...) are ignored; ``None`` values keep
    # the default. ``login_protocol`` is accepted as an alias of ``protocol``.
    values: dict[str, Any] = {}
    for key in _LOGIN_OPTION_KEYS:
        if kwargs.get(key) is not None:
            values[key] = kwargs[key]
    if "protocol" not in values and kwargs.get("login_protocol") is not None:
        values["protocol"] = kwargs["login_protocol"]
    if values.get("protocol") not in {None, *PROTOCOL_CHOICES}:
        values.pop("protocol")  # a provider's own protocol setting is not ours to judge
    if proxy is not None:
        values["proxy"] = proxy
    if isinstance(values.get("browser_args"), str):
        values["browser_args"] = (values["browser_args"],)
    return replace(base or LoginOptions(), **values)
