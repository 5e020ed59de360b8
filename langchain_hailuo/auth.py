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
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
import stat
import sys
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import SecretStr, ValidationError

from langchain_hailuo.errors import HailuoAuthError, HailuoConfigurationError
from langchain_hailuo.types import AuthResult, Protocol, RequestLogin

if TYPE_CHECKING:
    from langchain_hailuo._browser import PageHook

__all__ = [
    "DEFAULT_BASE_URL",
    "V4_HOSTS",
    "AuthManager",
    "AuthStore",
    "CredentialSource",
    "LoginOptions",
    "browser_login",
    "default_auth_file",
    "default_profile_dir",
    "login_options_from_kwargs",
    "on_auth_async",
    "protocol_for_host",
    "recorded_protocol",
    "resolve_protocol",
    "user_config_dir",
]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://agent.minimax.io"
"""The live MiniMax Agent web app (``www.hailuo.ai`` redirects there since 2026)."""

V4_HOSTS = frozenset({"www.hailuo.ai", "hailuo.ai", "hailuoai.com", "www.hailuoai.com"})
"""Hosts that speak the seed's ``/v4/api/chat/msg`` protocol."""

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

CredentialSource = Literal["argument", "environment", "file", "browser"]
"""Where the current credentials came from."""

_PROTOCOL_CHOICES = ("auto", "v4", "agent")
_REPLACE_ATTEMPTS = 5


# --------------------------------------------------------------------------- paths


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    """The environment mapping to read (``os.environ`` unless one is injected)."""
    return os.environ if env is None else env


def _home(env: Mapping[str, str]) -> Path:
    """The user's home folder, honouring an injected ``HOME``."""
    home = env.get("HOME")
    return Path(home) if home else Path.home()


def user_config_dir(env: Mapping[str, str] | None = None) -> Path:
    """The per-user configuration folder of this package (not created here).

    Args:
        env: The environment to read (defaults to ``os.environ``).

    Returns:
        ``$XDG_CONFIG_HOME/langchain-hailuo`` when that variable holds an absolute path,
        else ``%APPDATA%/langchain-hailuo`` on Windows,
        ``~/Library/Application Support/langchain-hailuo`` on macOS and
        ``~/.config/langchain-hailuo`` elsewhere.
    """
    env = _env(env)
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
    """The auth file to use: ``HAILUO_AUTH_FILE``, else ``auth.json`` in :func:`user_config_dir`.

    Args:
        env: The environment to read (defaults to ``os.environ``).

    Returns:
        The path (the file may not exist yet).
    """
    env = _env(env)
    explicit = env.get(ENV_AUTH_FILE)
    if explicit:
        return Path(explicit).expanduser()
    return user_config_dir(env) / AUTH_FILE_NAME


def default_profile_dir(env: Mapping[str, str] | None = None) -> Path:
    """The persistent Chromium profile used by the browser login (a login survives runs).

    Args:
        env: The environment to read (defaults to ``os.environ``).

    Returns:
        ``browser-profile`` in :func:`user_config_dir`.
    """
    return user_config_dir(env) / PROFILE_DIR_NAME


# --------------------------------------------------------------------------- protocol


def _host_of(url: str | None) -> str | None:
    """The lower-cased host name of ``url`` (``None`` when it has none)."""
    if not url:
        return None
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    return host.lower() if host else None


def protocol_for_host(host: str | None) -> Protocol:
    """The protocol a host speaks by name alone: ``v4`` for :data:`V4_HOSTS`, else ``agent``.

    Args:
        host: A host name (any case), or ``None``.

    Returns:
        ``"v4"`` or ``"agent"``.
    """
    return "v4" if host and host.lower().rstrip(".") in V4_HOSTS else "agent"


def recorded_protocol(auth: AuthResult | None, base_url: str) -> Protocol | None:
    """The protocol a browser login recorded for ``base_url``'s host, if it recorded one.

    Args:
        auth: The credentials in use (may be ``None``).
        base_url: The origin about to be called.

    Returns:
        ``auth.protocol`` when ``auth.api_origin`` has the same host as ``base_url``.
    """
    if auth is None or auth.protocol is None:
        return None
    host = _host_of(base_url)
    return auth.protocol if host is not None and host == _host_of(auth.api_origin) else None


def resolve_protocol(
    base_url: str, requested: str = "auto", recorded: Protocol | None = None
) -> Protocol:
    """Decide which wire protocol to speak with ``base_url``.

    Args:
        base_url: The API origin (``https://agent.minimax.io``, ``https://www.hailuo.ai``...).
        requested: ``"v4"`` or ``"agent"`` (these always win) or ``"auto"``.
        recorded: The protocol a browser login recorded for this host, if any
            (see :func:`recorded_protocol`).

    Returns:
        ``"v4"`` for the seed's hosts (:data:`V4_HOSTS`), else the recorded protocol,
        else ``"agent"``.

    Raises:
        HailuoConfigurationError: ``requested`` is not one of the three choices, or
            ``base_url`` is not an absolute URL when it has to be inspected.
    """
    choice = requested.strip().lower() if isinstance(requested, str) else requested
    if choice == "v4":
        return "v4"
    if choice == "agent":
        return "agent"
    if choice != "auto":
        raise HailuoConfigurationError(
            f"Unknown protocol {requested!r}: use 'auto', 'agent' or 'v4'."
        )
    host = _host_of(base_url)
    if host is None:
        raise HailuoConfigurationError(
            f"base_url {base_url!r} is not an absolute URL; use e.g. {DEFAULT_BASE_URL!r}."
        )
    if host.rstrip(".") in V4_HOSTS:
        return "v4"
    return recorded or "agent"


# --------------------------------------------------------------------------- the auth file


def _lock_fd(fd: int) -> bool:
    """Take an exclusive inter-process lock on ``fd`` (blocking).

    Returns:
        ``True`` when a lock is held, ``False`` on platforms offering none.
    """
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
        """Create a store.

        Args:
            path: The auth file; defaults to :func:`default_auth_file`.
            env: The environment used for the default path (defaults to ``os.environ``).
        """
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
        """Read the stored credentials.

        Returns:
            The credentials, or ``None`` when the file is missing, unreadable, not JSON or
            not a valid auth record (the last three are logged as warnings).
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning(
                "Cannot read the auth file %s (%s); ignoring it.", self.path, type(exc).__name__
            )
            return None
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            logger.warning("The auth file %s is not valid JSON; ignoring it.", self.path)
            return None
        if not isinstance(data, dict):
            logger.warning("The auth file %s does not hold a JSON object; ignoring it.", self.path)
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

    def save(self, auth: AuthResult) -> None:
        """Write ``auth`` atomically (0600, under the inter-process lock).

        Args:
            auth: The credentials to store.

        Raises:
            OSError: The folder or file could not be written (the old file is kept).
        """
        data = auth.to_store_dict()
        self._ensure_dir()
        with self._locked():
            self._write_atomic(data)
        logger.debug("Saved credentials (%s) to %s.", auth.account_fingerprint, self.path)

    def delete(self) -> bool:
        """Remove the auth file.

        Returns:
            ``True`` when a file was removed, ``False`` when there was none.
        """
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
        try:
            locked = _lock_fd(fd)
            try:
                yield
            finally:
                if locked:
                    _unlock_fd(fd)
        finally:
            os.close(fd)

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
                tmp.replace(self.path)
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


@dataclass(frozen=True)
class LoginOptions:
    """Settings of the browser login (:func:`browser_login`).

    Attributes:
        base_url: The page to open; redirects are followed and the final origin recorded.
        browser_path: The Chromium / Chrome executable; else ``HAILUO_BROWSER``, else
            ``chromium``, ``chromium-browser``, ``google-chrome`` on ``PATH``.
        headless: Run without a window (only useful with a profile that is logged in
            already, or when a test drives the page).
        proxy: A proxy for the browser (``http://host:port``, ``socks5://host:port``).
        profile_dir: A persistent Chromium profile, so a login survives runs; defaults to
            :func:`default_profile_dir`.
        login_timeout: Seconds to wait for the login to complete.
        browser_args: Extra command-line flags for Chromium.
        protocol: ``"auto"`` records ``v4`` for the seed's hosts and ``agent`` otherwise;
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
        """Validate the values.

        Raises:
            HailuoConfigurationError: A value is out of range.
        """
        if _host_of(self.base_url) is None:
            raise HailuoConfigurationError(
                f"base_url {self.base_url!r} is not an absolute URL; use e.g. {DEFAULT_BASE_URL!r}."
            )
        if not self.login_timeout > 0:
            raise HailuoConfigurationError("login_timeout must be a positive number of seconds.")
        if not self.poll_interval > 0:
            raise HailuoConfigurationError("poll_interval must be a positive number of seconds.")
        if self.protocol not in _PROTOCOL_CHOICES:
            raise HailuoConfigurationError(
                f"Unknown protocol {self.protocol!r}: use 'auto', 'agent' or 'v4'."
            )
        if self.profile_dir is not None and not isinstance(self.profile_dir, Path):
            object.__setattr__(self, "profile_dir", Path(self.profile_dir))
        if not isinstance(self.browser_args, tuple):
            object.__setattr__(self, "browser_args", tuple(self.browser_args))

    def __repr__(self) -> str:
        """Show the options; a proxy's credentials are hidden."""
        proxy = _redact_url(self.proxy) if self.proxy else None
        return (
            f"LoginOptions(base_url={self.base_url!r}, browser_path={self.browser_path!r}, "
            f"headless={self.headless!r}, proxy={proxy!r}, profile_dir={self.profile_dir!r}, "
            f"login_timeout={self.login_timeout!r}, browser_args={self.browser_args!r}, "
            f"protocol={self.protocol!r})"
        )


def _redact_url(url: str) -> str:
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
    """Build :class:`LoginOptions` from a provider's keyword arguments.

    Keys that are not login options (``model``, ``timeout``...) are ignored; ``None`` values
    keep the default. ``login_protocol`` is accepted as an alias of ``protocol``.

    Args:
        proxy: The proxy, as the seed's ``on_auth_async(proxy=...)`` takes it.
        base: Options to start from (defaults to ``LoginOptions()``).
        **kwargs: ``base_url``, ``browser_path``, ``headless``, ``profile_dir``,
            ``login_timeout``, ``browser_args``, ``protocol``, ``poll_interval``.

    Returns:
        The options.
    """
    values: dict[str, Any] = {}
    for key in _LOGIN_OPTION_KEYS:
        if kwargs.get(key) is not None:
            values[key] = kwargs[key]
    if "protocol" not in values and kwargs.get("login_protocol") is not None:
        values["protocol"] = kwargs["login_protocol"]
    if values.get("protocol") not in {None, *_PROTOCOL_CHOICES}:
        values.pop("protocol")  # a provider's own protocol setting is not ours to judge
    if proxy is not None:
        values["proxy"] = proxy
    if isinstance(values.get("browser_args"), str):
        values["browser_args"] = (values["browser_args"],)
    return replace(base or LoginOptions(), **values)


async def browser_login(
    options: LoginOptions | None = None,
    *,
    on_page: PageHook | None = None,
    env: Mapping[str, str] | None = None,
) -> AuthResult:
    """Open Chromium (nodriver), wait for the user to log in, and read the credentials.

    nodriver is imported here, never when this module is imported.

    Args:
        options: The login settings (defaults to ``LoginOptions()``).
        on_page: Optional ``async (tab) -> None`` called once the page is open, before
            waiting for the token (tests use it to fill the login form).
        env: The environment to read ``HAILUO_BROWSER`` and config paths from.

    Returns:
        The credentials, with ``api_origin`` the final origin after redirects and
        ``protocol`` the protocol that origin speaks.

    Raises:
        HailuoLoginError: No browser was found, it did not start, or the page failed.
        HailuoLoginTimeoutError: Nobody logged in within ``login_timeout`` seconds.
    """
    from langchain_hailuo import _browser  # noqa: PLC0415 - keeps nodriver off the import path

    return await _browser.run_login(options or LoginOptions(), on_page=on_page, env=env)


def _login_url(env: Mapping[str, str]) -> str | None:
    """The remote-login URL to announce (``HAILUO_LOGIN_URL``, else ``G4F_LOGIN_URL``)."""
    return env.get(ENV_LOGIN_URL) or env.get(ENV_G4F_LOGIN_URL) or None


async def on_auth_async(
    label: str, proxy: str | None = None, **kwargs: Any
) -> AsyncIterator[RequestLogin | AuthResult]:
    """The seed's login generator: announce a remote login URL, log in, yield the result.

    1. When ``HAILUO_LOGIN_URL`` (or gpt4free's ``G4F_LOGIN_URL``) is set, yield
       ``RequestLogin(label, url)`` first.
    2. Run :func:`browser_login` with options from ``kwargs`` (see
       :func:`login_options_from_kwargs`) and yield the :class:`AuthResult`.

    Saving rule: the result is written to an auth file when ``save`` is true; ``save``
    defaults to whether ``auth_file`` was passed. The file is ``auth_file`` when given,
    else :func:`default_auth_file`. So ``auth_file=path`` saves there, ``save=True`` saves
    to the default file, and ``save=False`` never writes.

    Args:
        label: The provider's label (``"Hailuo AI"``, ``"MiniMax Agent"``).
        proxy: A proxy for the browser.
        **kwargs: Login options, plus ``auth_file``, ``save``, ``env``, ``on_page``.

    Yields:
        ``RequestLogin`` (optional, first), then the ``AuthResult``.
    """
    env = _env(kwargs.get("env"))
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

LoginFunc = Callable[[LoginOptions], Awaitable[AuthResult]]
"""What :class:`AuthManager` calls to log in (``browser_login`` unless injected)."""


def _secret(token: str | SecretStr | None) -> str | None:
    """The raw token text of ``token`` (``None`` / blank -> ``None``)."""
    raw = token.get_secret_value() if isinstance(token, SecretStr) else token
    raw = raw.strip() if raw else raw
    return raw or None


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
        self._env: Mapping[str, str] = _env(env)
        self._token = _secret(token)
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
            loaded = await asyncio.to_thread(self.store.load)
            if loaded is not None and not _same_token(loaded, rejected) and not loaded.is_expired():
                logger.info("Using the credentials another process saved to %s.", self.store.path)
                self._set(loaded, "file")
                return loaded
            if self.browser_login_enabled:
                auth = await self._login()
                self._set(auth, "browser")
                return auth
            if rejected.is_expired():
                raise HailuoAuthError(
                    f"The token ({rejected.account_fingerprint}) has expired; "
                    "run `hailuo login` to sign in again."
                )
            raise HailuoAuthError(
                f"The token ({rejected.account_fingerprint}) was rejected by the server; "
                "run `hailuo login` to sign in again (or set HAILUO_TOKEN)."
            )

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
            try:
                await asyncio.to_thread(self.store.save, auth)
            except OSError as exc:
                logger.warning(
                    "Could not save credentials to %s (%s).", self.store.path, type(exc).__name__
                )

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
        if _secret(self._env.get(ENV_TOKEN)):
            return f"the {ENV_TOKEN} environment variable (not used yet)"
        parts = [f"auth file {self.store.path}"]
        if not self.store.exists():
            parts[0] += " (missing)"
        if self.browser_login_enabled:
            parts.append(f"then a browser login at {self.login_options.base_url}")
        return "not resolved yet: " + ", ".join(parts)

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

    def _explicit(self) -> tuple[AuthResult, CredentialSource] | None:
        """Credentials from arguments or ``HAILUO_TOKEN``, if any."""
        source: CredentialSource
        if self._token:
            token, source = self._token, "argument"
        else:
            env_token = _secret(self._env.get(ENV_TOKEN))
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
            logger.warning(
                "The token from %s (%s) has expired according to its JWT; the server will "
                "probably reject it.",
                "the arguments" if source == "argument" else ENV_TOKEN,
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
            raise HailuoAuthError(
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
        try:
            await asyncio.to_thread(self.store.save, auth)
        except OSError as exc:
            logger.warning(
                "Logged in, but could not save the credentials to %s (%s).",
                self.store.path,
                type(exc).__name__,
            )
        return auth
