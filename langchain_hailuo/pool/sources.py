"""A pool's accounts from tokens, ``AuthResult`` s, auth files and folders of them.

Each has its own ``AuthManager``: a rejected token is re-read from its own file, never another's.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from langchain_hailuo._config import (
    ENV_AUTH_FILE,
    ENV_DEVICE_ID,
    ENV_TOKEN,
    ENV_UUID,
    account_file,
    as_account_spec,
    default_auth_file,
    environ,
)
from langchain_hailuo.auth import AuthManager, AuthStore
from langchain_hailuo.errors import HailuoAuthError, HailuoConfigurationError
from langchain_hailuo.pool.backend import Candidate
from langchain_hailuo.types import AccountSpec, AuthResult

__all__ = [
    "AccountSpec",
    "PoolAccount",
    "PoolSource",
    "load_accounts",
    "save_account",
]

logger = logging.getLogger(__name__)

PoolSource = AccountSpec | AuthManager
"""What a pool is built from: account specs, or an ``AuthManager`` (a model's own login,
shared with other processes through ``pool_url``)."""

# Variables that describe one account: a pool account never borrows them.
_PER_ACCOUNT_ENV = frozenset({ENV_TOKEN, ENV_UUID, ENV_DEVICE_ID, ENV_AUTH_FILE})


def _token_hash(auth: AuthResult | None) -> str | None:
    """A short one-way hash of the token: tells a new login from the rejected one."""
    if auth is None:
        return None
    return hashlib.sha256(auth.token.get_secret_value().encode("utf-8")).hexdigest()[:16]


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

    async def auth(self) -> AuthResult:
        """The account's current credentials (cached by its manager)."""
        return await self.manager.get()

    def candidate(self) -> Candidate:
        """The account as the backends see it: its name and its token's hash."""
        return Candidate(self.name, _token_hash(self.manager.current))

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
        return _token_hash(fresh) != _token_hash(current)


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
    value = as_account_spec(spec)
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
    pool_env = {k: v for k, v in environ(env).items() if k not in _PER_ACCOUNT_ENV}
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
