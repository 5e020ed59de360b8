"""A pool's accounts from tokens, ``AuthResult`` s, auth files and folders of them.

Each has its own ``AuthManager``: a rejected token is re-read from its own file, never another's.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from langchain_hailuo.auth import (
    ENV_AUTH_FILE,
    ENV_DEVICE_ID,
    ENV_TOKEN,
    ENV_UUID,
    AuthManager,
    AuthStore,
    default_auth_file,
    user_config_dir,
)
from langchain_hailuo.errors import HailuoAuthError, HailuoConfigurationError
from langchain_hailuo.pool.backend import Candidate
from langchain_hailuo.types import AuthResult

__all__ = [
    "ENV_ACCOUNTS_DIR",
    "ENV_POOL_URL",
    "ENV_TOKENS",
    "AccountSpec",
    "PoolAccount",
    "PoolSource",
    "account_file",
    "as_spec",
    "default_accounts_dir",
    "load_accounts",
    "pool_specs_from_env",
    "save_account",
    "token_hash",
]

logger = logging.getLogger(__name__)

ENV_TOKENS = "HAILUO_TOKENS"
"""Comma-separated tokens, one per account."""
ENV_ACCOUNTS_DIR = "HAILUO_ACCOUNTS_DIR"
"""A folder of auth files (``*.json``), one per account."""
ENV_POOL_URL = "HAILUO_POOL_URL"
"""``redis://...``: share leases and cool-downs with other processes and hosts."""

AccountSpec = SecretStr | AuthResult | Path | str
"""One account: a token, an ``AuthResult``, an auth file or a folder of auth files (a
``str`` is read by :func:`as_spec`)."""

PoolSource = AccountSpec | AuthManager
"""What a pool is built from: account specs, or an ``AuthManager`` (a model's own login,
shared with other processes through ``pool_url``)."""

# Variables that describe one account: a pool account never borrows them.
_PER_ACCOUNT_ENV = frozenset({ENV_TOKEN, ENV_UUID, ENV_DEVICE_ID, ENV_AUTH_FILE})


def default_accounts_dir(env: Mapping[str, str] | None = None) -> Path:
    """The pool folder: ``HAILUO_ACCOUNTS_DIR``, else ``accounts/`` in the config folder."""
    env = os.environ if env is None else env
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


def token_hash(auth: AuthResult) -> str:
    """A short one-way hash of the token: tells a new login from the rejected one."""
    return hashlib.sha256(auth.token.get_secret_value().encode("utf-8")).hexdigest()[:16]


def pool_specs_from_env(env: Mapping[str, str] | None = None) -> list[AccountSpec] | None:
    """The accounts ``HAILUO_TOKENS``, else ``HAILUO_ACCOUNTS_DIR`` name (``None``: neither)."""
    env = os.environ if env is None else env
    tokens = [t.strip() for t in env.get(ENV_TOKENS, "").split(",") if t.strip()]
    if tokens:
        return [SecretStr(t) for t in tokens]
    folder = env.get(ENV_ACCOUNTS_DIR, "").strip()
    return [Path(folder).expanduser()] if folder else None


@dataclass
class PoolAccount:
    """One account of a pool: its name (the fingerprint) and its own auth manager.

    Attributes:
        name: The account fingerprint (``acct-...``), as in ``response_metadata["account"]``.
        manager: Resolves and renews this account's credentials.
        origin: Where it came from, without any secret (``"token #2"``, a file path).
        path: The auth file, for file-backed accounts.
    """

    name: str
    manager: AuthManager
    origin: str
    path: Path | None = None
    _mtime: float | None = field(default=None, repr=False)
    _candidate: tuple[AuthResult | None, Candidate] | None = field(default=None, repr=False)

    async def auth(self) -> AuthResult:
        """The account's current credentials (cached by its manager)."""
        return await self.manager.get()

    def token_hash(self) -> str | None:
        """The current token's hash (``None`` before the first :meth:`auth`)."""
        return self.candidate().token

    def candidate(self) -> Candidate:
        """The account as the backends see it: its name and its token's hash (cached)."""
        current = self.manager.current
        cached = self._candidate
        if cached is None or cached[0] is not current:  # hashed once per login, not per call
            hashed = None if current is None else token_hash(current)
            cached = self._candidate = (current, Candidate(self.name, hashed))
        return cached[1]

    async def relogged(self) -> bool:
        """Whether the auth file holds a newer login (``login --add``, another process)."""
        if self.path is None:
            return False
        try:
            mtime = (await asyncio.to_thread(self.path.stat)).st_mtime
        except OSError:
            return False
        if mtime == self._mtime:
            return False
        self._mtime = mtime
        current = self.manager.current
        if current is None:
            return True
        try:
            fresh = await self.manager.refresh(current)
        except HailuoAuthError:
            return False
        return token_hash(fresh) != token_hash(current)


def as_spec(value: Any) -> Any:
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


async def _load_file(path: Path, base_url: str | None, env: Mapping[str, str]) -> PoolAccount:
    """The account stored in ``path``."""
    manager = AuthManager(auth_file=path, base_url=base_url, env=env)
    try:
        auth = await manager.get()
    except HailuoAuthError as exc:
        raise HailuoAuthError(f"Pool account file {path}: {exc.message}") from None
    mtime = (await asyncio.to_thread(path.stat)).st_mtime
    return PoolAccount(auth.account_fingerprint, manager, str(path), path, mtime)


async def _expand(
    spec: PoolSource, index: int, base_url: str | None, env: Mapping[str, str], devices: Path
) -> list[PoolAccount]:
    """The accounts one spec stands for (a token's device pair is kept in ``devices``)."""
    value = as_spec(spec)
    if isinstance(value, Path) and value.is_dir():
        accounts = []
        for path in sorted(p for p in value.glob("*.json") if p.is_file()):
            try:
                accounts.append(await _load_file(path, base_url, env))
            except HailuoAuthError as exc:
                logger.warning("Skipped: %s", exc.message)
        if not accounts:
            raise HailuoAuthError(
                f"The pool folder {value} holds no usable auth file. Add accounts with "
                "`hailuo login --add NAME`."
            )
        return accounts
    if isinstance(value, Path):
        if not value.exists():
            raise HailuoConfigurationError(
                f"Pool account #{index}: no such file or folder {value}."
            )
        return [await _load_file(value, base_url, env)]
    if isinstance(value, AuthManager):
        manager, origin = value, value.describe()
    elif isinstance(value, AuthResult):
        manager = AuthManager(token=value.token, base_url=base_url, auth_file=devices, env=env)
        await manager.update(value)  # keeps the whole result; never written to disk
        origin = f"AuthResult #{index}"
    elif not value.get_secret_value().strip():
        raise HailuoConfigurationError(f"Pool account #{index} is an empty token.")
    else:
        manager = AuthManager(token=value, base_url=base_url, auth_file=devices, env=env)
        origin = f"token #{index}"
    return [PoolAccount((await manager.get()).account_fingerprint, manager, origin)]


async def load_accounts(
    specs: Sequence[PoolSource],
    *,
    base_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> list[PoolAccount]:
    """Resolve tokens, ``AuthResult`` s, auth files and pool folders into accounts, in order.

    Files are read here, once; the same account (fingerprint) named twice is kept once.
    ``base_url`` is the API origin every account talks to (else its login's). Of ``env``
    (default: ``os.environ``), per-account variables such as ``HAILUO_TOKEN`` are never
    applied to pool accounts.

    Raises:
        HailuoConfigurationError: An empty list, an empty token or a missing path.
        HailuoAuthError: An auth file named directly is unusable, or a folder holds none.
    """
    if not specs:
        raise HailuoConfigurationError("accounts= is empty: give at least one account.")
    source = os.environ if env is None else env
    pool_env = {k: v for k, v in source.items() if k not in _PER_ACCOUNT_ENV}
    devices = default_auth_file(env)  # HAILUO_AUTH_FILE, else the default: where the user said
    accounts: dict[str, PoolAccount] = {}
    for index, spec in enumerate(specs, start=1):
        for account in await _expand(spec, index, base_url, pool_env, devices):
            kept = accounts.setdefault(account.name, account)
            if kept is not account:
                logger.warning(
                    "Pool account %s repeats %s; used once.", account.origin, kept.origin
                )
    return list(accounts.values())


def save_account(name: str, auth: AuthResult, env: Mapping[str, str] | None = None) -> Path:
    """Save a login as the pool account ``name`` (atomically, mode 0600); the file written."""
    path = account_file(name, env)
    AuthStore(path).save(auth)
    return path
