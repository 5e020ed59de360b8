"""Credentials: where the token comes from, the 0600 auth file, and the browser login.

Credentials are resolved in this order:

1. explicit arguments (``AuthManager(token=...)``), then the environment: ``HAILUO_TOKEN``
   (with ``HAILUO_UUID``, ``HAILUO_DEVICE_ID`` and ``HAILUO_BASE_URL``);
2. the auth file: ``HAILUO_AUTH_FILE``, else ``auth.json`` in the per-user config folder
   (``$XDG_CONFIG_HOME/langchain-hailuo`` or ``~/.config/langchain-hailuo``; on Windows
   ``%APPDATA%/langchain-hailuo``, on macOS ``~/Library/Application Support/langchain-hailuo``);
   gpt4free's ``auth_HailuoAI.json`` is accepted there as is;
3. a browser login through nodriver, only when ``browser_login=True``.

A token whose JWT ``exp`` has passed is stale: the file is read again (another process may
have logged in meanwhile), then a browser login runs when allowed; otherwise
:class:`~langchain_hailuo.errors.HailuoAuthError` says to run ``hailuo login``.

The token never appears in logs, reprs or error messages. nodriver is imported only when
a browser login actually runs (see :mod:`langchain_hailuo._browser`).

This module stores and renews credentials and knows no protocol client: a provider hands
in its protocol's device registration and token renewal as plain functions
(:data:`RegisterFunc`, :data:`RenewFunc`), and the token login's bootstrap, which needs the
clients, lives in :mod:`langchain_hailuo._login`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import logging
import os
import secrets
import stat
import sys
import threading
import time
import uuid as uuid_module
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr, ValidationError

from langchain_hailuo import _browser
from langchain_hailuo._browser import PageHook
from langchain_hailuo._config import (
    APP_DIR_NAME,
    AUTH_FILE_NAME,
    ENV_AUTH_FILE,
    ENV_BASE_URL,
    ENV_DEVICE_ID,
    ENV_G4F_LOGIN_URL,
    ENV_LOGIN_URL,
    ENV_TOKEN,
    ENV_UUID,
    PROFILE_DIR_NAME,
    LoginOptions,
    default_auth_file,
    default_profile_dir,
    environ,
    login_options_from_kwargs,
    user_config_dir,
)
from langchain_hailuo._routing import (
    DEFAULT_BASE_URL,
    V4_HOSTS,
    protocol_for_host,
    recorded_protocol,
    resolve_protocol,
)
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoError,
    HailuoTokenExpiredError,
)
from langchain_hailuo.types import (
    AuthResult,
    DeviceIdentity,
    Protocol,
    RequestLogin,
    decode_jwt_payload,
)

__all__ = [
    "APP_DIR_NAME",
    "AUTH_FILE_NAME",
    "DEFAULT_BASE_URL",
    "ENV_AUTH_FILE",
    "ENV_BASE_URL",
    "ENV_DEVICE_ID",
    "ENV_TOKEN",
    "ENV_UUID",
    "PROFILE_DIR_NAME",
    "RENEWAL_WINDOW",
    "V4_HOSTS",
    "AuthManager",
    "AuthStore",
    "CredentialSource",
    "DeviceIdentity",
    "LoginOptions",
    "browser_login",
    "default_auth_file",
    "default_profile_dir",
    "generate_device_identity",
    "login_options_from_kwargs",
    "on_auth_async",
    "prepare_credentials",
    "protocol_for_host",
    "recorded_protocol",
    "resolve_protocol",
    "token_text",
    "user_config_dir",
    "with_device",
]

logger = logging.getLogger(__name__)

CredentialSource = Literal["argument", "environment", "file", "browser"]
"""Where the current credentials came from."""

_REPLACE_ATTEMPTS = 5
_CHANGES = itertools.count(1)
_LAST_CHANGE = [0]
"""The number of the last change of any manager's credentials (:meth:`AuthManager.changes`)."""
_DEVICES_KEY = "devices"
_USED_AT = "used_at"
DEVICE_RETENTION = 90 * 24 * 3600.0
"""Seconds a kept device pair may go unused before a write of the auth file drops it."""
_USE_RESOLUTION = 24 * 3600.0
"""A pair's last use is written again only when older than this (reads stay reads)."""
_UNWRITABLE_WARNED: set[Path] = set()
"""Auth files this process already warned it cannot write (one warning each)."""

RENEWAL_WINDOW = 10 * 24 * 3600.0
"""Seconds before ``exp`` from which a stored token is renewed (web tokens live ~40 days)."""


# --------------------------------------------------------------------------- device identity


def generate_device_identity() -> DeviceIdentity:
    """A new random pair as the web app makes one: 8 digits (10000000-99999999), a v4 UUID."""
    return DeviceIdentity(
        device_id=str(10_000_000 + secrets.randbelow(90_000_000)),
        uuid=str(uuid_module.uuid4()),
    )


def with_device(auth: AuthResult, identity: DeviceIdentity) -> AuthResult:
    """``auth`` with the missing halves of its device pair filled from ``identity``."""
    # ``auth`` itself when nothing was missing, else an updated copy.
    update = {
        name: value
        for name, value in (("device_id", identity.device_id), ("uuid", identity.uuid))
        if not getattr(auth, name)
    }
    return auth.model_copy(update=update) if update else auth


def _device_key(protocol: Protocol, auth: AuthResult) -> str:
    """Where an account's pair is kept in the auth file (per protocol and account)."""
    return f"{protocol}:{auth.account_fingerprint}"


def _last_use(entry: Any) -> float:
    """When a kept pair was last used (a pair kept before uses were recorded: now)."""
    used = entry.get(_USED_AT) if isinstance(entry, dict) else None
    return float(used) if isinstance(used, int | float) else time.time()


def _recent(devices: dict[str, Any], now: float) -> dict[str, Any]:
    """The pairs used within :data:`DEVICE_RETENTION`, each with its last use recorded."""
    cutoff = now - DEVICE_RETENTION
    return {
        key: {**entry, _USED_AT: _last_use(entry)}
        for key, entry in devices.items()
        if isinstance(entry, dict) and _last_use(entry) >= cutoff
    }


# --------------------------------------------------------------------------- the auth file


def _lock_fd(fd: int) -> bool:
    """Lock ``fd`` for this process (blocking); ``False`` on platforms offering no lock."""
    if sys.platform == "win32":
        import msvcrt  # noqa: PLC0415 - Windows only

        while True:
            try:
                msvcrt.locking(fd, msvcrt.LK_LOCK, 1)
            except OSError:  # LK_LOCK gives up after ~10 s; keep waiting
                continue
            return True
    try:
        import fcntl  # noqa: PLC0415 - absent on some platforms
    except ImportError:  # pragma: no cover - no POSIX locks here
        return False
    fcntl.flock(fd, fcntl.LOCK_EX)
    return True


def _unlock_fd(fd: int) -> None:
    """Release the lock taken by :func:`_lock_fd`."""
    if sys.platform == "win32":
        import msvcrt  # noqa: PLC0415 - Windows only

        with contextlib.suppress(OSError):
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    try:
        import fcntl  # noqa: PLC0415 - absent on some platforms
    except ImportError:  # pragma: no cover
        return
    fcntl.flock(fd, fcntl.LOCK_UN)


def _release_fd(fd: int, *, locked: bool) -> None:
    """Unlock (when :func:`_lock_fd` locked it) and close a lock file's descriptor."""
    try:
        if locked:
            _unlock_fd(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Flush a directory entry change to disk (best effort, POSIX only)."""
    flags = getattr(os, "O_DIRECTORY", None)
    if flags is None:
        return
    try:
        fd = os.open(path, os.O_RDONLY | flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AuthStore:
    """The auth file: a JSON object holding one :class:`~langchain_hailuo.types.AuthResult`.

    * Written atomically: a temporary file in the same folder (created ``0600``), fsync,
      then ``os.replace``; a reader sees the old file or the new one, never half of one.
    * Writers take an exclusive ``flock`` on a sibling ``<name>.lock`` file, so concurrent
      processes never interleave (platforms without ``fcntl`` use ``msvcrt`` or go
      without a lock; the atomic replace still keeps the file whole).
    * The folder is created ``0700``.
    * A corrupt, unreadable or invalid file counts as absent: :meth:`load` logs a warning
      (logger ``langchain_hailuo.auth``) and returns ``None``.
    * gpt4free's ``auth_HailuoAI.json`` (``token``, ``path_and_query``, ``headers``,
      ``cookies``...) loads as is.

    Attributes:
        path: The auth file.
    """

    def __init__(
        self, path: Path | str | None = None, *, env: Mapping[str, str] | None = None
    ) -> None:
        """Create a store."""
        self.path: Path = Path(path).expanduser() if path is not None else default_auth_file(env)

    @property
    def lock_path(self) -> Path:
        """The sibling file writers lock (``auth.json.lock``)."""
        return self.path.with_name(self.path.name + ".lock")

    def __repr__(self) -> str:
        """Show the path only."""
        return f"AuthStore(path={str(self.path)!r})"

    def exists(self) -> bool:
        """Whether the auth file is present (its content is not checked)."""
        return self.path.is_file()

    def load(self) -> AuthResult | None:
        """Read the stored credentials."""
        # The credentials, or ``None`` when the file is missing, unreadable, not JSON or not a valid
        # auth record (the last three are logged as warnings).
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning(
                "Cannot read the auth file %s (%s); ignoring it.", self.path, type(exc).__name__
            )
            return None
        data = self._login_fields(raw)
        if data is None:
            return None
        try:
            auth = AuthResult.model_validate(data)
        except ValidationError as exc:
            # Only field names: the error's text would echo the values, the token among them.
            fields = sorted(
                {".".join(str(p) for p in err["loc"]) or "<root>" for err in exc.errors()}
            )
            logger.warning(
                "The auth file %s is not a valid auth record (bad fields: %s); ignoring it.",
                self.path,
                ", ".join(fields),
            )
            return None
        self._warn_if_readable_by_others()
        return auth

    def _login_fields(self, raw: bytes) -> dict[str, Any] | None:
        """The login record's fields of the file's bytes (``None``: no usable record)."""
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            logger.warning("The auth file %s is not valid JSON; ignoring it.", self.path)
            return None
        if not isinstance(data, dict):
            logger.warning("The auth file %s does not hold a JSON object; ignoring it.", self.path)
            return None
        data.pop(_DEVICES_KEY, None)
        # A file holding only the device pairs of HAILUO_TOKEN accounts has no login.
        return data or None

    def holds_devices_only(self) -> bool:
        """Whether the file holds no login, only device pairs kept for ``HAILUO_TOKEN`` use."""
        data = self._read_object()
        return bool(data) and set(data) == {_DEVICES_KEY}

    def save(self, auth: AuthResult) -> None:
        """Write ``auth`` atomically (0600, under the inter-process lock)."""
        data = auth.to_store_dict()
        self._ensure_dir()
        with self._locked():
            devices = _recent(self._read_devices(), time.time())
            if devices:
                data[_DEVICES_KEY] = devices
            self._write_atomic(data)
        logger.debug("Saved credentials (%s) to %s.", auth.account_fingerprint, self.path)

    def device(self, key: str) -> DeviceIdentity | None:
        """The device pair kept under ``key`` (``"agent:acct-..."``), if any."""
        # The pair, or ``None``.
        entry = self._read_devices().get(key)
        found = DeviceIdentity.from_dict(entry)
        if found is not None and _last_use(entry) < time.time() - _USE_RESOLUTION:
            with contextlib.suppress(OSError):  # only the pruning clock; the pair still works
                self.remember_device(key, found, replace_stale=False)
        return found

    def remember_device(
        self, key: str, identity: DeviceIdentity, *, replace_stale: bool = True
    ) -> DeviceIdentity:
        """Keep ``identity`` under ``key`` unless another process kept a pair first."""
        # Under the inter-process lock: a usable pair already there wins (so every process of an
        # account ends up with the same pair); otherwise ``identity`` is written atomically, next to
        # whatever login the file holds. The pair is marked used now, and pairs unused for
        # :data:`DEVICE_RETENTION` seconds are dropped.
        # The pair now stored (``identity`` or the one found).
        self._ensure_dir()
        now = time.time()
        with self._locked():
            data = self._read_object()
            devices = data.get(_DEVICES_KEY)
            devices = _recent(dict(devices) if isinstance(devices, dict) else {}, now)
            found = DeviceIdentity.from_dict(devices.get(key))
            kept = identity if found is None or (replace_stale and found.is_stale()) else found
            devices[key] = {**kept.to_dict(), _USED_AT: now}
            data[_DEVICES_KEY] = devices
            self._write_atomic(data)
        return kept

    def _read_object(self) -> dict[str, Any]:
        """The file's JSON object as is (``{}`` when missing or unreadable)."""
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError, UnicodeDecodeError):
            return {}
        return data if isinstance(data, dict) else {}

    def _read_devices(self) -> dict[str, Any]:
        """The file's device pairs by key (``{}`` when none)."""
        devices = self._read_object().get(_DEVICES_KEY)
        return dict(devices) if isinstance(devices, dict) else {}

    @contextlib.asynccontextmanager
    async def renewal_lock(self) -> AsyncIterator[None]:
        """Hold the inter-process renewal lock (``<name>.renew.lock``) across awaits."""
        # One process renews a token while the others wait and then read its result. It is a
        # different file from the write lock, so saving while holding it is fine.
        self._ensure_dir()
        fd = os.open(self.renew_lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        locked = False
        try:
            locked = await asyncio.to_thread(_lock_fd, fd)
            yield
        finally:
            _release_fd(fd, locked=locked)

    @property
    def renew_lock_path(self) -> Path:
        """The sibling file the renewal lock is taken on (``auth.json.renew.lock``)."""
        return self.path.with_name(self.path.name + ".renew.lock")

    def remove_all(self) -> list[Path]:
        """Remove the auth file and its lock files (``hailuo logout``)."""
        locks = [path for path in (self.lock_path, self.renew_lock_path) if path.exists()]
        removed = [self.path] if self.delete() else []
        for path in (self.lock_path, self.renew_lock_path):  # delete() takes the lock too
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return removed + locks

    def delete(self) -> bool:
        """Remove the auth file."""
        # ``True`` when a file was removed, ``False`` when there was none.
        if not self.path.parent.is_dir():
            return False
        with self._locked():
            try:
                self.path.unlink()
            except FileNotFoundError:
                return False
        logger.debug("Deleted the auth file %s.", self.path)
        return True

    # ------------------------------------------------------------------ helpers

    def _ensure_dir(self) -> None:
        """Create the folder (``0700``) when missing."""
        parent = self.path.parent
        if not parent.is_dir():
            parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the exclusive inter-process lock on :attr:`lock_path`."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        locked = False
        try:
            locked = _lock_fd(fd)
            yield
        finally:
            _release_fd(fd, locked=locked)

    def _write_atomic(self, data: dict[str, Any]) -> None:
        """Write ``data`` to a 0600 temp file, fsync it, and move it over :attr:`path`."""
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
        fd = os.open(tmp, flags, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=2, sort_keys=True)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            self._replace(tmp)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync_dir(self.path.parent)

    def _replace(self, tmp: Path) -> None:
        """``os.replace`` with a few retries (Windows refuses while a reader has it open)."""
        for attempt in range(_REPLACE_ATTEMPTS):
            try:
                os.replace(tmp, self.path)  # noqa: PTH105 - one call on 3.10 too (pathlib binds its own)
            except PermissionError:
                if sys.platform != "win32" or attempt == _REPLACE_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
            else:
                return

    def _warn_if_readable_by_others(self) -> None:
        """Warn when a POSIX auth file is readable by group or others."""
        if sys.platform == "win32":
            return
        try:
            mode = self.path.stat().st_mode
        except OSError:
            return
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            logger.warning(
                "The auth file %s is accessible by other users; run `chmod 600 %s`.",
                self.path,
                self.path,
            )


# --------------------------------------------------------------------------- browser login


async def browser_login(
    options: LoginOptions | None = None,
    *,
    on_page: PageHook | None = None,
    env: Mapping[str, str] | None = None,
) -> AuthResult:
    """Open Chromium (nodriver), wait for the user to log in, and read the credentials."""
    # nodriver is imported when the login runs (by :func:`langchain_hailuo._browser.run_login`),
    # never when this module is imported.
    # The credentials, with ``api_origin`` the final origin after redirects and ``protocol`` the
    # protocol that origin speaks.
    return await _browser.run_login(options or LoginOptions(), on_page=on_page, env=env)


def _login_url(env: Mapping[str, str]) -> str | None:
    """The remote-login URL to announce (``HAILUO_LOGIN_URL``, else ``G4F_LOGIN_URL``)."""
    return env.get(ENV_LOGIN_URL) or env.get(ENV_G4F_LOGIN_URL) or None


async def on_auth_async(
    label: str, proxy: str | None = None, **kwargs: Any
) -> AsyncIterator[RequestLogin | AuthResult]:
    """gpt4free's login generator: announce a remote login URL, log in, yield the result."""
    # 1. When ``HAILUO_LOGIN_URL`` (or gpt4free's ``G4F_LOGIN_URL``) is set, yield
    #    ``RequestLogin(label, url)`` first.
    # 2. Run :func:`browser_login` with options from ``kwargs`` (see
    #    :func:`login_options_from_kwargs`) and yield the :class:`AuthResult`.
    # Saving rule: the result is written to an auth file when ``save`` is true; ``save`` defaults to
    # whether ``auth_file`` was passed. The file is ``auth_file`` when given, else
    # :func:`default_auth_file`. So ``auth_file=path`` saves there, ``save=True`` saves to the
    # default file, and ``save=False`` never writes.
    env = environ(kwargs.get("env"))
    url = _login_url(env)
    if url:
        yield RequestLogin(label=label, login_url=url)
    options = login_options_from_kwargs(proxy, **kwargs)
    auth = await browser_login(options, on_page=kwargs.get("on_page"), env=env)
    auth_file = kwargs.get("auth_file")
    save = kwargs.get("save")
    if save is None:
        save = auth_file is not None
    if save:
        store = AuthStore(auth_file, env=env)
        await asyncio.to_thread(store.save, auth)
    yield auth


# --------------------------------------------------------------------------- manager

RegisterFunc = Callable[[AuthResult], Awaitable[DeviceIdentity]]
"""``async (auth) -> DeviceIdentity``: ask the server for a device pair (v4)."""
RenewFunc = Callable[[AuthResult], Awaitable[str]]
"""``async (auth) -> token``: the protocol's token renewal call."""

_PROCESS_DEVICES: dict[str, DeviceIdentity] = {}
"""Pairs of accounts used without an :class:`AuthManager` (kept for the process only)."""


async def prepare_credentials(
    auth: AuthResult,
    protocol: Protocol,
    manager: object | None,
    *,
    register: RegisterFunc | None = None,
    renew: RenewFunc | None = None,
) -> AuthResult:
    """What a provider does with credentials before its first call: device pair, renewal."""
    # With an :class:`AuthManager`, the pair is kept in the auth file and a stored token due for
    # renewal is renewed (:meth:`AuthManager.device_for`, :meth:`AuthManager.renew_if_due`). Without
    # one (gpt4free's ``create_authed(auth_result=...)``), a missing pair is registered or generated
    # once per account for this process.
    if isinstance(manager, AuthManager):
        auth = await manager.device_for(auth, protocol, register=register)
        return await manager.renew_if_due(auth, renew) if renew is not None else auth
    if auth.device_id and auth.uuid:
        return auth
    key = _device_key(protocol, auth)
    identity = _PROCESS_DEVICES.get(key)
    if identity is None or identity.is_stale():
        identity = _PROCESS_DEVICES[key] = await _registered_or_generated(auth, register)
    return with_device(auth, identity)


async def _registered_or_generated(
    auth: AuthResult, register: RegisterFunc | None, fallback: DeviceIdentity | None = None
) -> DeviceIdentity:
    """A pair from ``register`` when it works, else ``fallback``, else a generated one."""
    if register is not None:
        try:
            return await register(auth)
        except HailuoAuthError:
            raise  # the token itself is refused: a made-up device would not help
        except HailuoError as exc:
            logger.warning(
                "Device registration failed (%s); using %s device id instead.",
                exc.message,
                "the previous" if fallback else "a generated",
            )
    return fallback or generate_device_identity()


LoginFunc = Callable[[LoginOptions], Awaitable[AuthResult]]
"""What :class:`AuthManager` calls to log in (``browser_login`` unless injected)."""


def token_text(token: str | SecretStr | None) -> str | None:
    """The raw token text of ``token`` (``None`` / blank -> ``None``)."""
    raw = token.get_secret_value() if isinstance(token, SecretStr) else token
    raw = raw.strip() if raw else raw
    return raw or None


def _renewal_due(auth: AuthResult, window: float) -> bool:
    """Whether an unexpired token expires within ``window`` seconds."""
    return (
        auth.expires_at is not None and not auth.is_expired(skew=0) and auth.is_expired(skew=window)
    )


def _keep_learnt(auth: AuthResult, learnt: AuthResult) -> AuthResult:
    """``auth`` with what ``learnt`` knows and it lacks (device pair, bootstrap results)."""
    names = ("device_id", "uuid", "real_user_id", "agent_id", "models")
    update = {n: getattr(learnt, n) for n in names if not getattr(auth, n) and getattr(learnt, n)}
    return auth.model_copy(update=update) if update else auth


def _same_token(a: AuthResult, b: AuthResult) -> bool:
    """Whether two results carry the same token (constant-time compare)."""
    return hmac.compare_digest(
        a.token.get_secret_value().encode("utf-8"), b.token.get_secret_value().encode("utf-8")
    )


class AuthManager:
    """Resolves, caches, renews and stores the credentials for one provider (or several).

    ``get()`` resolves explicit arguments / ``HAILUO_TOKEN`` -> the auth file -> a browser
    login (when ``browser_login=True``) and caches the result. ``refresh(rejected)`` is
    called by a provider once its token was rejected: it re-reads the auth file (another
    process may have logged in), then logs in again when allowed, else raises
    :class:`HailuoAuthError`. ``update(auth)`` keeps what a provider learned afterwards
    (``real_user_id``, ``agent_id``, ``models``) and saves it when the credentials are file-
    or browser-backed.

    Concurrency: within one event loop an ``asyncio.Lock`` makes concurrent ``get()`` /
    ``refresh()`` calls share one resolution, so two rejected requests cause one login.
    ``asyncio.Lock`` is bound to the loop that first uses it, and the manager may be used
    from several loops (LangChain's sync paths run a private loop), so one lock is created
    lazily **per loop** (a weak map guarded by a ``threading.Lock``). Across loops the
    "token differs from the rejected one" check and the file re-read keep loops from
    discarding each other's fresh token, though two loops refreshing at the same instant
    may each run a login. The cached result is replaced with a single assignment.

    Example:
        ```python
        manager = AuthManager(browser_login=True)
        auth = await manager.get()
        print(manager.describe())  # where the credentials come from, without the token
        ```
    """

    def __init__(
        self,
        *,
        token: str | SecretStr | None = None,
        uuid: str | None = None,
        device_id: str | None = None,
        base_url: str | None = None,
        auth_file: Path | str | None = None,
        login: LoginOptions | None = None,
        browser_login: bool = False,
        env: Mapping[str, str] | None = None,
        login_func: LoginFunc | None = None,
    ) -> None:
        """Create a manager (no I/O happens here).

        Args:
            token: An explicit token (wins over everything).
            uuid: The browser instance id to send with an explicit/env token
                (else ``HAILUO_UUID``).
            device_id: The device id to send with an explicit/env token
                (else ``HAILUO_DEVICE_ID``).
            base_url: The API origin (else ``HAILUO_BASE_URL``); also the login page
                when ``login`` does not name one.
            auth_file: The auth file (else ``HAILUO_AUTH_FILE`` or the per-user default).
            login: Browser login settings.
            browser_login: Whether a browser login may run when no usable credential exists.
            env: The environment to read (defaults to ``os.environ``; tests inject one).
            login_func: What runs the login (defaults to :func:`browser_login`; tests
                inject a fake).
        """
        self._env: Mapping[str, str] = environ(env)
        self._token = token_text(token)
        self._uuid = uuid or None
        self._device_id = device_id or None
        self._base_url = base_url or self._env.get(ENV_BASE_URL) or None
        self.store = AuthStore(auth_file, env=self._env)
        options = login or LoginOptions(base_url=self._base_url or DEFAULT_BASE_URL)
        if login is None and self._base_url is not None:
            options = replace(options, base_url=self._base_url)
        self.login_options = options
        self.browser_login_enabled = browser_login
        self._login_func = login_func
        self._current: AuthResult | None = None
        self._source: CredentialSource | None = None
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._locks_guard = threading.Lock()
        self._devices: dict[str, DeviceIdentity] = {}

    # ------------------------------------------------------------------ public

    @property
    def source(self) -> CredentialSource | None:
        """Where the current credentials came from (``None`` before the first ``get()``)."""
        return self._source

    @property
    def current(self) -> AuthResult | None:
        """The cached credentials, without any I/O (``None`` before the first ``get()``)."""
        return self._current

    @property
    def base_url(self) -> str | None:
        """The configured API origin (argument or ``HAILUO_BASE_URL``), if any."""
        return self._base_url

    async def get(self) -> AuthResult:
        """The credentials to use: cached, else explicit/env -> auth file -> browser login.

        Returns:
            The credentials.

        Raises:
            HailuoAuthError: None are available (the message says to run ``hailuo login``
                or set ``HAILUO_TOKEN``), or the saved token expired and no browser
                login is allowed.
            HailuoLoginError: The browser login failed.
        """
        cached = self._usable_cached()
        if cached is not None:
            return cached
        async with self._loop_lock():
            cached = self._usable_cached()
            if cached is not None:
                return cached
            auth, source = await self._resolve()
            self._set(auth, source)
            return auth

    async def refresh(self, rejected: AuthResult) -> AuthResult:
        """New credentials after the server rejected ``rejected``.

        If another task already replaced the rejected token, that result is returned.
        Else the auth file is read again (another process may have logged in); a token
        there that differs from the rejected one (and has not expired) is used. Else a
        browser login runs when allowed.

        Args:
            rejected: The credentials the server refused.

        Returns:
            Fresh credentials.

        Raises:
            HailuoAuthError: Nothing better is available; the message says to run
                ``hailuo login``.
            HailuoLoginError: The browser login failed.
        """
        async with self._loop_lock():
            current = self._current
            if (
                current is not None
                and not _same_token(current, rejected)
                and not current.is_expired()
            ):
                return current
            # A token given as an argument or in HAILUO_TOKEN wins over the file, and a pool's
            # token accounts share the file only for their device ids: only a stored login
            # is replaced by what another process saved.
            stored = self._source in {"file", "browser", None}
            loaded = await asyncio.to_thread(self.store.load) if stored else None
            if loaded is not None and not _same_token(loaded, rejected) and not loaded.is_expired():
                logger.info("Using the credentials another process saved to %s.", self.store.path)
                self._set(loaded, "file")
                return loaded
            if self.browser_login_enabled:
                auth = await self._login()
                self._set(auth, "browser")
                return auth
            message = self._rejected_message(rejected)
            if decode_jwt_payload(rejected.token.get_secret_value()) is None:
                raise HailuoAuthError(message) from None  # not a token at all: not "expired"
            raise HailuoTokenExpiredError(message) from None

    async def update(self, auth: AuthResult) -> None:
        """Keep ``auth`` (e.g. with bootstrap results added) as the current credentials.

        It is saved to the auth file when the credentials came from the file or a browser
        login; explicit and ``HAILUO_TOKEN`` tokens are never written to disk.

        Args:
            auth: The credentials to keep.
        """
        source = self._source or "argument"
        self._set(auth, source)
        if source in {"file", "browser"}:
            await self._save_or_warn(auth, "Learnt more about the account")

    async def device_for(
        self,
        auth: AuthResult,
        protocol: Protocol,
        *,
        register: RegisterFunc | None = None,
    ) -> AuthResult:
        """``auth`` with a complete device pair, the same one in every process.

        Values ``auth`` already holds (explicit arguments, ``HAILUO_DEVICE_ID`` /
        ``HAILUO_UUID``, a browser login) win. Missing ones come from the pair kept in the
        auth file for this account and protocol; when there is none (or a registered one
        is due again), ``register`` is asked (v4's device registration) and, when it fails
        or there is none, a pair is generated. The pair is written to the auth file
        atomically; the first process to write wins and the others adopt its pair.

        Args:
            auth: The credentials about to be used.
            protocol: The protocol they are used with (pairs are kept per protocol).
            register: Optional ``async (auth) -> DeviceIdentity`` asking the server.

        Returns:
            ``auth`` itself when it was complete, else an updated copy (also cached as
            the current credentials when it is them).
        """
        if auth.device_id and auth.uuid:
            return auth
        key = _device_key(protocol, auth)
        identity = self._devices.get(key)
        if identity is None or identity.is_stale():
            identity = await self._stored_or_new_device(key, auth, register)
            self._devices[key] = identity
        updated = with_device(auth, identity)
        current = self._current
        if current is not None and _same_token(current, auth) and self._source is not None:
            self._set(with_device(current, identity), self._source)
        return updated

    async def _stored_or_new_device(
        self,
        key: str,
        auth: AuthResult,
        register: RegisterFunc | None,
    ) -> DeviceIdentity:
        """The pair kept in the auth file, else a registered or generated one, kept there."""
        stored = await asyncio.to_thread(self.store.device, key)
        if stored is not None and not stored.is_stale():
            return stored
        memory = _PROCESS_DEVICES.get(f"{self.store.path}|{key}")
        if memory is not None and not memory.is_stale():
            return memory  # the file cannot be written: this process keeps the pair itself
        candidate = await _registered_or_generated(auth, register, stored)
        try:
            return await asyncio.to_thread(self.store.remember_device, key, candidate)
        except OSError as exc:
            _PROCESS_DEVICES[f"{self.store.path}|{key}"] = candidate
            if self.store.path not in _UNWRITABLE_WARNED:
                _UNWRITABLE_WARNED.add(self.store.path)
                logger.warning(
                    "Cannot write %s (%s): device ids are kept in memory for this process "
                    "only (set HAILUO_AUTH_FILE to a writable file to keep them).",
                    self.store.path,
                    type(exc).__name__,
                )
            return candidate

    async def renew_if_due(
        self,
        auth: AuthResult,
        renew: RenewFunc,
        *,
        window: float = RENEWAL_WINDOW,
    ) -> AuthResult:
        """Renew a stored token that expires within ``window`` seconds, once for all processes.

        Only tokens from the auth file or a browser login are renewed (a new token for
        ``HAILUO_TOKEN`` could not be kept). Under the inter-process renewal lock the file
        is read again: a token another process renewed meanwhile is adopted; otherwise
        ``renew`` is called and its token saved atomically. A failed renewal is logged and
        the current token (still valid) is kept.

        Args:
            auth: The credentials about to be used.
            renew: ``async (auth) -> new token`` (the protocol's renewal call).
            window: Seconds before expiry from which to renew.

        Returns:
            The credentials to use (renewed or not).
        """
        if not _renewal_due(auth, window) or self._source not in {"file", "browser"}:
            return auth
        async with self._loop_lock(), self.store.renewal_lock():
            loaded = await asyncio.to_thread(self.store.load)
            if (
                loaded is not None
                and loaded.account_fingerprint == auth.account_fingerprint
                and not _renewal_due(loaded, window)
            ):
                adopted = _keep_learnt(loaded, auth)
                self._set(adopted, "file")
                return adopted
            try:
                token = await renew(auth)
            except HailuoError as exc:
                logger.warning("Could not renew the token (%s); using it as is.", exc.message)
                return auth
            fields = {**auth.to_store_dict(), "token": token}
            fields.pop("expires_at", None)
            renewed = AuthResult.model_validate(fields)
            await self._save_or_warn(renewed, "Renewed the token")
            self._set(renewed, self._source or "file")
            logger.info("Renewed the token (%s).", renewed.account_fingerprint)
            return renewed

    def describe(self) -> str:
        """Say where the credentials come from, without any secret.

        Returns:
            One line such as ``"auth file /home/me/.config/langchain-hailuo/auth.json
            (account acct-1a2b3c4d5e6f, agent at https://agent.minimax.io)"``.
        """
        source = self._source
        if source is None:
            return self._describe_unresolved()
        where = {
            "argument": "a token passed as an argument",
            "environment": f"the {ENV_TOKEN} environment variable",
            "file": f"auth file {self.store.path}",
            "browser": f"a browser login (saved to {self.store.path})",
        }[source]
        details = self._describe_auth(self._current)
        return f"{where} ({details})" if details else where

    def __repr__(self) -> str:
        """Show where credentials come from (never the token)."""
        return f"AuthManager({self.describe()})"

    # ------------------------------------------------------------------ internals

    def _describe_unresolved(self) -> str:
        """Describe the sources that would be tried (no I/O beyond a file check)."""
        if self._token:
            return "a token passed as an argument (not used yet)"
        if token_text(self._env.get(ENV_TOKEN)):
            return f"the {ENV_TOKEN} environment variable (not used yet)"
        parts = [f"auth file {self.store.path}"]
        if not self.store.exists():
            parts[0] += " (missing)"
        if self.browser_login_enabled:
            parts.append(f"then a browser login at {self.login_options.base_url}")
        return "not resolved yet: " + ", ".join(parts)

    def _rejected_message(self, rejected: AuthResult) -> str:
        """What to do about a refused token, for where it came from (one sentence each)."""
        name = rejected.account_fingerprint
        if decode_jwt_payload(rejected.token.get_secret_value()) is None:
            what = {"environment": ENV_TOKEN, "argument": "the token argument"}.get(
                self._source or "", f"the auth file {self.store.path}"
            )
            return (
                f"The server refused the token from {what}: it is not a MiniMax token (the "
                "value of localStorage `_token`, a long text starting with `eyJ`). Copy it "
                "again from a browser where you are logged in."
            )
        state = "has expired" if rejected.is_expired() else "was rejected (expired or revoked)"
        if self._source == "environment":
            return (
                f"The token in {ENV_TOKEN} ({name}) {state}; set {ENV_TOKEN} to a fresh "
                "`_token` from a browser where you are logged in (it wins over `hailuo login`)."
            )
        if self._source == "argument":
            return f"The token passed as an argument ({name}) {state}; pass a fresh one."
        return f"The token ({name}) {state}; run `hailuo login` to sign in again."

    @staticmethod
    def _describe_auth(auth: AuthResult | None) -> str:
        """The non-secret facts of ``auth``: account, protocol, origin, expiry."""
        if auth is None:
            return ""
        parts = [f"account {auth.account_fingerprint}"]
        if auth.protocol or auth.api_origin:
            parts.append(" at ".join(p for p in (auth.protocol, auth.api_origin) if p))
        if auth.expires_at is not None:
            state = "expired" if auth.is_expired(skew=0) else "expires"
            stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(auth.expires_at))
            parts.append(f"{state} {stamp}")
        return ", ".join(parts)

    def _loop_lock(self) -> asyncio.Lock:
        """The ``asyncio.Lock`` of the running loop (created on first use)."""
        loop = asyncio.get_running_loop()
        with self._locks_guard:
            lock = self._locks.get(loop)
            if lock is None:
                lock = asyncio.Lock()
                self._locks[loop] = lock
            return lock

    def _usable_cached(self) -> AuthResult | None:
        """The cached result unless a stored (file/browser) token has expired."""
        current = self._current
        if current is None:
            return None
        if self._source in {"file", "browser"} and current.is_expired():
            return None
        return current

    def _set(self, auth: AuthResult, source: CredentialSource) -> None:
        """Replace the cached result (one assignment each, so readers never see a mix)."""
        self._current = auth
        self._source = source
        _LAST_CHANGE[0] = next(_CHANGES)  # each change a new number (thread-safe)

    @staticmethod
    def changes() -> int:
        """A number that changes whenever any manager of this process changes credentials.

        Whatever is worked out of many managers' :attr:`current` (an account pool's list of
        its accounts' token hashes) stays valid while this count stays the same.
        """
        return _LAST_CHANGE[0]

    def _explicit(self) -> tuple[AuthResult, CredentialSource] | None:
        """Credentials from arguments or ``HAILUO_TOKEN``, if any."""
        source: CredentialSource
        env_token = token_text(self._env.get(ENV_TOKEN))
        if self._token:
            # ChatHailuo reads HAILUO_TOKEN itself: the same text is the variable's token.
            token = self._token
            source = "environment" if env_token == token else "argument"
        else:
            if not env_token:
                return None
            token, source = env_token, "environment"
        auth = AuthResult(
            token=SecretStr(token),
            uuid=self._uuid or self._env.get(ENV_UUID) or None,
            device_id=self._device_id or self._env.get(ENV_DEVICE_ID) or None,
            api_origin=self._base_url,
        )
        if auth.is_expired(skew=0):
            # The server's refusal says what to do (for HAILUO_TOKEN: set a new one).
            logger.warning(
                "The token %s (%s) has expired according to its JWT; the server will probably "
                "reject it.",
                f"in {ENV_TOKEN}" if source == "environment" else "passed as an argument",
                auth.account_fingerprint,
            )
        return auth, source

    async def _resolve(self) -> tuple[AuthResult, CredentialSource]:
        """Run the resolution order once."""
        explicit = self._explicit()
        if explicit is not None:
            return explicit
        loaded = await asyncio.to_thread(self.store.load)
        stale = False
        if loaded is not None:
            if not loaded.is_expired():
                return loaded, "file"
            stale = True
            logger.info("The token saved in %s has expired.", self.store.path)
        if self.browser_login_enabled:
            return await self._login(), "browser"
        if stale:
            raise HailuoTokenExpiredError(
                f"The token saved in {self.store.path} has expired; run `hailuo login` "
                f"to sign in again (or set {ENV_TOKEN})."
            )
        raise HailuoAuthError(
            "No Hailuo credentials found: no token argument, no "
            f"{ENV_TOKEN} environment variable and no auth file at {self.store.path}. "
            f"Run `hailuo login` to sign in with a browser, or set {ENV_TOKEN}."
        )

    async def _login(self) -> AuthResult:
        """Run the browser login and save its result."""
        if self._login_func is not None:
            auth = await self._login_func(self.login_options)
        else:
            auth = await browser_login(self.login_options, env=self._env)
        await self._save_or_warn(auth, "Logged in")
        return auth

    async def _save_or_warn(self, auth: AuthResult, done: str) -> None:
        """Save ``auth``; a failure is logged (the credentials still work for this process)."""
        try:
            await asyncio.to_thread(self.store.save, auth)
        except OSError as exc:
            logger.warning(
                "%s, but could not save the credentials to %s (%s).",
                done,
                self.store.path,
                type(exc).__name__,
            )
