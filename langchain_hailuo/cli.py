"""The ``hailuo`` command: log in, check the login, diagnose, chat, serve, run the emulator.

Exit codes: 0 success, 1 a failure the message explains (no login, login timed out, no
browser, expired token, bad setting, unknown model, unreachable service, a failed ``doctor``
step), 2 bad usage (unknown command or flag, a port out of range), 130 Ctrl+C, 141 standard
output closed early (``hailuo doctor | head``). Errors are one line on standard error; the
token is never printed.

Every command's exceptions reach :func:`main`, which turns them into a message and an exit
code in one place (:func:`_exit_code`): a command raises a typed error and never prints its
own ``hailuo: error:`` line for a fatal failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import getpass
import os
import re
import shutil
import signal
import stat
import sys
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import ValidationError

from langchain_hailuo._config import ENV_POOL_URL, account_file, redact_url
from langchain_hailuo.auth import (
    DEFAULT_BASE_URL,
    ENV_TOKEN,
    AuthManager,
    AuthStore,
    LoginOptions,
    browser_login,
    default_profile_dir,
    resolve_protocol,
)
from langchain_hailuo.errors import (
    HailuoAuthError,
    HailuoConfigurationError,
    HailuoConnectionError,
    HailuoError,
    HailuoProtocolError,
    HailuoQuotaError,
    HailuoRedirectError,
    HailuoServerError,
    HailuoSessionBusyError,
    HailuoTimeoutError,
    HailuoUploadError,
)

if TYPE_CHECKING:
    from langchain_core.messages import BaseMessage

    from langchain_hailuo.types import AuthResult

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE: what a shell reports for a tool whose reader went away."""

PROTOCOLS = ("auto", "agent", "v4")
ENV_PROTOCOL = "HAILUO_PROTOCOL"

_SETTINGS = {
    "protocol": f"{ENV_PROTOCOL} or --protocol",
    "base_url": "HAILUO_BASE_URL or --base-url",
    "stream_url": "HAILUO_STREAM_URL or --stream-url",
    "model": "--model",
    "auth_file": "HAILUO_AUTH_FILE or --auth-file",
    "uuid": "HAILUO_UUID",
    "device_id": "HAILUO_DEVICE_ID",
    "token": "HAILUO_TOKEN",
    "pool_url": "HAILUO_POOL_URL or --pool-url",
    "accounts": "HAILUO_TOKENS, HAILUO_ACCOUNTS_DIR or --accounts-dir",
}
"""ChatHailuo's fields as the user sets them, for errors that name the variable or flag."""

_MARKUP = re.compile(r"``?([^`]+)``?")


class _PlainHelp(argparse.HelpFormatter):
    """Help without reStructuredText markup (````x```` and ```x``` read as 'x')."""

    def _format_text(self, text: str) -> str:
        """The description and epilog, unmarked."""
        return super()._format_text(_MARKUP.sub(r"'\1'", text))

    def _expand_help(self, action: argparse.Action) -> str:
        """An option's help, unmarked."""
        return _MARKUP.sub(r"'\1'", super()._expand_help(action))


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error and exit code 2 for bad usage."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """An argparse parser with plain-text help."""
        kwargs.setdefault("formatter_class", _PlainHelp)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:
        """Print ``hailuo: error: ...`` and a hint, then exit 2."""
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _port(text: str) -> int:
    """A TCP port from the command line, 0 (a free one) to 65535, else an ``ArgumentTypeError``."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:  # noqa: PLR2004 - the TCP port range
        raise argparse.ArgumentTypeError(f"{port} is not a port (0 to 65535; 0: a free one)")
    return port


def _cannot_listen(host: str, port: int, exc: OSError) -> HailuoConfigurationError:
    """The error (with the hint every listening command gives) for a port that cannot be bound."""
    return HailuoConfigurationError(
        f"Cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port, or 0 "
        "for a free one."
    )


def _format_expiry(auth: AuthResult, *, now: float | None = None) -> str:
    """Human text for the token's expiry ("2026-12-23 10:00 UTC (in 29 days)")."""
    if auth.expires_at is None:
        return "unknown (the token has no exp)"
    when = dt.datetime.fromtimestamp(auth.expires_at, tz=dt.timezone.utc)
    utc = dt.timezone.utc
    current = dt.datetime.now(tz=utc) if now is None else dt.datetime.fromtimestamp(now, utc)
    days = (when - current).total_seconds() / 86400
    rel = f"in {days:.0f} days" if days >= 1 else ("EXPIRED" if days < 0 else "within a day")
    return f"{when:%Y-%m-%d %H:%M} UTC ({rel})"


def _describe_auth(auth: AuthResult) -> list[str]:
    """The non-secret facts about a login, one per line."""
    return [
        f"account:     {auth.account_fingerprint}",
        f"expires:     {_format_expiry(auth)}",
        f"api origin:  {auth.api_origin or DEFAULT_BASE_URL}",
        f"protocol:    {auth.protocol or resolve_protocol(auth.api_origin or DEFAULT_BASE_URL)}",
    ]


def _require_browser(path: str | None) -> None:
    """Check that a browser login can start here (driver, browser), else say what is missing."""
    from langchain_hailuo import _browser  # noqa: PLC0415 - only this command needs it

    _browser.require_nodriver()
    _browser.find_browser(path)


def _browser_status(path: str | None) -> str:
    """Where the browser for ``hailuo login`` is, or why there is none."""
    from langchain_hailuo import _browser  # noqa: PLC0415 - only this command needs it

    try:
        _browser.require_nodriver()
    except HailuoError:
        return f"browser login unavailable: nodriver is not installed ({_browser.BROWSER_EXTRA})"
    try:
        return _browser.find_browser(path)
    except HailuoError as exc:
        return f"not found ({exc.message})"


# --------------------------------------------------------------------------- commands


def _cmd_login(args: argparse.Namespace, out: TextIO) -> int:
    """Log in: with a pasted token (``--token``), else through a browser; save the result."""
    store = AuthStore(args.auth_file)
    if args.add:  # a pool account: its own file (and, for a browser, its own profile)
        store = AuthStore(account_file(args.add))
    if args.token is not None:
        from langchain_hailuo._login import token_login  # noqa: PLC0415 - the clients, on demand

        token = _read_token(args.token)
        print(f"Checking the token with {args.base_url}...", file=out, flush=True)
        auth = asyncio.run(
            token_login(
                token,
                base_url=args.base_url,
                protocol=args.protocol,
                stream_url=args.stream_url,
                auth_file=store.path,
            )
        )
    else:
        _require_browser(args.browser)  # before announcing a browser that cannot start
        options = LoginOptions(
            base_url=args.base_url,
            browser_path=args.browser,
            headless=args.headless,
            login_timeout=args.timeout,
            profile_dir=Path(args.profile_dir) if args.profile_dir else None,
            proxy=args.proxy,
            protocol=args.protocol,
        )
        if args.add and options.profile_dir is None:  # a pool account's own profile
            options = replace(options, profile_dir=store.path.with_suffix(".profile"))
        print(
            f"Opening {'a headless' if args.headless else 'a'} browser at {args.base_url}; "
            f"waiting up to {args.timeout:g} s for you to log in...",
            file=out,
            flush=True,
        )
        auth = asyncio.run(browser_login(options))
        store.save(auth)
    print(f"Logged in. Saved to {store.path} (mode 0600).", file=out)
    for line in _describe_auth(auth):
        print(line, file=out)
    return EXIT_OK


_TOKEN_FROM_PROMPT = ""
"""``--token`` without a value: ask at a no-echo prompt."""


def _read_token(source: str, stdin: TextIO | None = None) -> str:
    """The token from standard input (``-``) or a no-echo prompt; never from the command line."""
    stream = stdin or sys.stdin
    if source == "-":
        return stream.read().strip()
    if source != _TOKEN_FROM_PROMPT:
        raise HailuoConfigurationError(
            "Never pass the token as an argument (other users can read it in `ps`): pipe it "
            "in with `--token -` or type it at the prompt of `--token`."
        )
    token = ""
    if not _is_terminal(stream):  # `docker exec` without -t: read the line given, if any
        token = stream.readline()
    else:
        with contextlib.suppress(EOFError):  # Ctrl+D at the prompt
            token = getpass.getpass("Paste the value of localStorage _token (input is hidden): ")
    if not token.strip():
        raise HailuoConfigurationError(
            "No token was given (no terminal to ask on, or an empty line). Pipe it in: "
            "`printf '%s' \"$TOKEN\" | hailuo login --token -`."
        )
    return token.strip()


def _cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    """Report which credentials are used and where they come from, without secrets."""
    store = AuthStore(args.auth_file)
    if os.environ.get(ENV_TOKEN, "").strip():
        manager = AuthManager(auth_file=store.path, base_url=args.base_url)
        auth = asyncio.run(manager.get())
        print(
            f"source:      the {ENV_TOKEN} environment variable (wins over the auth file)", file=out
        )
    else:
        print(f"source:      auth file {store.path}", file=out)
        loaded = _stored_auth(store, out)
        if loaded is None:
            print(f"browser:     {_browser_status(args.browser)}", file=out)
            return EXIT_FAILURE
        auth = loaded
    for line in _describe_auth(_as_configured(auth, args)):
        print(line, file=out)
    print(f"browser:     {_browser_status(args.browser)}", file=out)
    if auth.is_expired(skew=0):
        fix = (
            f"set {ENV_TOKEN} to a fresh token"
            if os.environ.get(ENV_TOKEN, "").strip()
            else "run `hailuo login`"
        )
        print(f"status:      the token has expired; {fix}", file=out)
        return EXIT_FAILURE
    if args.check:
        return _check_with_server(args, out)
    print("status:      logged in (not checked with the server; add --check)", file=out)
    return EXIT_OK


def _as_configured(auth: AuthResult, args: argparse.Namespace) -> AuthResult:
    """``auth`` as the other commands would use it: the configured origin and protocol win."""
    origin = args.base_url or auth.api_origin
    protocol = None if args.protocol == "auto" else args.protocol
    if protocol is None and args.base_url:
        protocol = resolve_protocol(args.base_url)
    update = {"api_origin": origin, "protocol": protocol or auth.protocol}
    return auth.model_copy(update=update)


def _stored_auth(store: AuthStore, out: TextIO) -> AuthResult | None:
    """The auth file's login, with its permissions reported (``None``: none usable)."""
    if not store.path.exists():
        print("status:      not logged in (run `hailuo login` or set HAILUO_TOKEN)", file=out)
        return None
    mode = stat.S_IMODE(store.path.stat().st_mode)
    warn = "" if mode & 0o077 == 0 else "  (WARNING: readable by others; run `hailuo login`)"
    print(f"permissions: {mode:04o}{warn}", file=out)
    auth = store.load()
    if auth is None and store.holds_devices_only():
        print(
            f"status:      not logged in (the file only keeps the device ids of {ENV_TOKEN} "
            f"accounts); run `hailuo login` or set {ENV_TOKEN}",
            file=out,
        )
    elif auth is None:
        print("status:      no usable login in the file; run `hailuo login`", file=out)
    return auth


def _check_with_server(args: argparse.Namespace, out: TextIO) -> int:
    """``status --check``: the doctor's credential and identity steps, no chat."""
    from langchain_hailuo.doctor import DoctorOptions, format_step, run_doctor  # noqa: PLC0415

    options = DoctorOptions(
        base_url=args.base_url,
        stream_url=args.stream_url,
        protocol=args.protocol,
        auth_file=args.auth_file,
        chat=False,
    )
    steps = asyncio.run(run_doctor(options))
    wanted = {"credentials", "token expiry", "identity"}
    for step in steps:
        if step.name in wanted or step.name == "credits":  # credits: shown, not required
            print(format_step(step), file=out)
    ok = all(step.status == "OK" for step in steps if step.name in wanted)
    print(f"status:      {'the server accepts the token' if ok else 'NOT usable'}", file=out)
    return EXIT_OK if ok else EXIT_FAILURE


def _cmd_logout(args: argparse.Namespace, out: TextIO) -> int:
    """Remove what login created: the auth file and its locks (``--all``: the profile too)."""
    store = AuthStore(args.auth_file)
    removed = store.remove_all()
    if args.all:
        profile = Path(args.profile_dir) if args.profile_dir else default_profile_dir()
        if profile.is_dir():
            shutil.rmtree(profile)
            removed.append(profile)
    for path in removed:
        print(f"Removed {path}.", file=out)
    if not removed:
        print(f"Nothing to remove: {store.path} does not exist.", file=out)
    return EXIT_OK


def _cmd_emulator(args: argparse.Namespace, out: TextIO) -> int:
    """Run the local emulator in the foreground."""
    from langchain_hailuo.emulator import load_script, run_forever  # noqa: PLC0415 - on demand

    if args.replay is not None:
        return _replay(args, out)
    try:
        script = load_script(args.script) if args.script else []
    except (OSError, ValueError) as exc:
        shown = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise HailuoConfigurationError(f"Cannot use the script {args.script}: {shown}") from None
    print("Starting the local Hailuo / MiniMax Agent emulator (Ctrl+C to stop)...", file=out)
    try:
        run_forever(
            port=args.port,
            out=out,
            chunk_delay=args.chunk_delay,
            first_byte_delay=args.first_byte_delay,
            script=script,
        )
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        raise _cannot_listen("127.0.0.1", args.port, exc) from None
    return EXIT_OK


def _replay(args: argparse.Namespace, out: TextIO) -> int:
    """``hailuo emulator --replay FILE``: serve a ``doctor --record`` transcript back."""
    from langchain_hailuo.emulator.replay import run_replay  # noqa: PLC0415
    from langchain_hailuo.transcript import load_transcript  # noqa: PLC0415

    try:
        transcript = load_transcript(args.replay)
    except (OSError, ValueError) as exc:
        shown = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise HailuoConfigurationError(
            f"Cannot replay {args.replay}: {shown}. Pass a file written by "
            "`hailuo doctor --record FILE`."
        ) from None
    print(f"Replaying {args.replay} (Ctrl+C to stop)...", file=out)
    run_replay(transcript, port=args.port, out=out)
    return EXIT_OK


def _cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    """Check the live path step by step; exit 0 only when every step passes."""
    from langchain_hailuo.doctor import DoctorOptions, format_step, run_doctor  # noqa: PLC0415

    if args.record is not None and not args.record.expanduser().parent.is_dir():
        # Checked before the run: a transcript that cannot be written would waste the run.
        raise HailuoConfigurationError(
            f"--record {args.record}: the folder {args.record.expanduser().parent} does not "
            "exist; create it or name a file in an existing folder."
        )
    options = DoctorOptions(
        base_url=args.base_url,
        stream_url=args.stream_url,
        protocol=args.protocol,
        auth_file=args.auth_file,
        chat=not args.no_chat,
        timeout=args.timeout,
        record=args.record,
    )
    print("hailuo doctor: checking each step (no secret is printed)", file=out, flush=True)
    steps = asyncio.run(
        run_doctor(options, report=lambda step: print(format_step(step), file=out, flush=True))
    )
    failed = [step.name for step in steps if step.status == "FAIL"]
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=out)
        return EXIT_FAILURE
    print("All steps passed.", file=out)
    return EXIT_OK


def _cmd_chat(args: argparse.Namespace, out: TextIO) -> int:
    """An interactive terminal chat that streams answers and keeps the conversation."""
    lines = _LineReader(sys.stdin.fileno())
    try:
        return asyncio.run(_chat(args, lines, out))
    except asyncio.CancelledError:  # Ctrl+C at the prompt
        raise KeyboardInterrupt from None


class _LineReader:
    """Lines of a file descriptor read by a daemon thread, so Ctrl+C never waits for Enter.

    ``asyncio.to_thread`` would keep ``asyncio.run`` waiting for the blocked read at exit,
    and a daemon thread blocked inside ``sys.stdin.buffer`` aborts the interpreter at
    exit (it holds the buffer's lock), so the thread reads the raw descriptor with
    ``os.read`` and is simply left behind. Each line is decoded here: undecodable input
    becomes a :class:`UnicodeDecodeError` for that line only.
    """

    def __init__(self, fd: int) -> None:
        """Read from ``fd`` (started on the first :meth:`readline`)."""
        self._fd = fd
        self._queue: asyncio.Queue[bytes] | None = None

    def _pump(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[bytes]) -> None:
        """The thread: hand every line (and ``b""`` at the end) to the loop."""
        pending = b""
        while True:
            try:
                data = os.read(self._fd, 65536)
            except OSError:
                data = b""
            pending += data
            *lines, pending = pending.split(b"\n")
            if not data and pending:
                lines.append(pending)  # a last line without a newline
            for line in [*(part + b"\n" for part in lines), *([b""] if not data else [])]:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody listens
                    loop.call_soon_threadsafe(queue.put_nowait, line)
            if not data:
                return

    def interactive(self) -> bool:
        """Whether someone types the lines (the descriptor is a terminal)."""
        return os.isatty(self._fd)

    async def readline(self) -> str | None:
        """The next UTF-8 line without its newline (``None`` at the end of input)."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            thread = threading.Thread(
                target=self._pump,
                args=(asyncio.get_running_loop(), self._queue),
                name="hailuo-stdin",
                daemon=True,
            )
            thread.start()
        raw = await self._queue.get()
        if not raw:
            return None
        return raw.decode("utf-8").rstrip("\r\n")


def _with_files(text: str, files: list[dict[str, Any]]) -> str | list[str | dict[str, Any]]:
    """A message's content: the text alone, or the text then the attached files' blocks."""
    return [{"type": "text", "text": text}, *files] if files else text


class _Console:
    """The chat's console: whether it prompts, and the answer under way (Ctrl+C stops it)."""

    def __init__(self, *, prompts: bool) -> None:
        """No answer yet; ``prompts``: whether to show the prompts (someone types)."""
        self.task: asyncio.Task[Any] | None = None
        self.stopped = False
        self.wrote = False
        self.prompts = prompts

    def interrupt(self, chat: asyncio.Task[Any] | None) -> None:
        """Ctrl+C: stop the answer under way, else end the chat (it waits at the prompt)."""
        if self.task is not None and not self.task.done():
            self.stopped = True
            self.task.cancel()
        elif chat is not None:
            chat.cancel()


def _catch_ctrl_c(console: _Console) -> None:
    """Route Ctrl+C to ``console`` (POSIX only; elsewhere Ctrl+C ends the chat)."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop.add_signal_handler(signal.SIGINT, console.interrupt, asyncio.current_task())


def _fatal(exc: HailuoError, *, answered: bool) -> bool:
    """Whether a turn's error ends the chat.

    Credentials and settings always do; an unreachable service does until it has answered
    once (later, a dropped connection is one turn's failure).
    """
    if isinstance(exc, HailuoAuthError | HailuoConfigurationError):
        return True
    if answered or isinstance(exc, HailuoQuotaError | HailuoSessionBusyError):
        return False
    # Nothing answered yet: a service that cannot be reached, or that does not speak the
    # protocol (a 4xx, an answer not understood), will not answer the next turn either.
    unreachable = HailuoConnectionError | HailuoTimeoutError | HailuoRedirectError
    misconfigured = HailuoProtocolError | HailuoUploadError
    client_error = isinstance(exc, HailuoServerError) and 400 <= (exc.status or 0) < 500  # noqa: PLR2004
    return isinstance(exc, unreachable | misconfigured) or client_error


async def _chat(args: argparse.Namespace, lines: _LineReader, out: TextIO) -> int:
    """Run the chat loop, against a private emulator when asked.

    Answers go to ``out``; what is not an answer goes there too on a terminal, else to
    standard error, so ``hailuo chat > answers.txt`` holds the answers only. Prompts are
    shown only when someone types (standard input is a terminal).
    """
    from langchain_core.messages import HumanMessage  # noqa: PLC0415
    from langchain_core.messages.utils import message_chunk_to_message  # noqa: PLC0415

    from langchain_hailuo._attachments import path_block  # noqa: PLC0415
    from langchain_hailuo.chat_models import ChatHailuo  # noqa: PLC0415

    ui = out if _is_terminal(out) else sys.stderr
    console = _Console(prompts=lines.interactive())
    attach = [path_block(path) for path in args.attach or ()]  # read (and checked) first
    async with contextlib.AsyncExitStack() as stack:
        kwargs = _model_target(args)
        if args.emulator:
            from langchain_hailuo.emulator import Emulator  # noqa: PLC0415

            emulator = await stack.enter_async_context(Emulator())
            protocol = "v4" if args.protocol == "v4" else "agent"
            kwargs.update(emulator.model_kwargs(protocol=protocol))
            print(f"(chatting with the local emulator, {protocol} protocol)", file=ui)
        model = ChatHailuo(**kwargs)
        stack.push_async_callback(model.aclose)
        await _credentials_ready(model)  # none: say so before the first prompt
        history: list[BaseMessage] = []
        answered = False
        _catch_ctrl_c(console)
        if console.prompts:
            print(
                "Type a message and press Enter; Ctrl+C stops an answer, Ctrl+D (or Ctrl+C at "
                "the prompt) ends the chat.",
                file=ui,
            )
        while True:
            if console.prompts:
                print("you> ", end="", file=ui, flush=True)
            try:
                line = await lines.readline()
            except UnicodeDecodeError:
                print("hailuo: error: that line is not valid UTF-8; type it again", file=sys.stderr)
                continue
            if line is None:
                if console.prompts:
                    print(file=ui)
                return EXIT_OK
            if not line.strip():
                continue
            history.append(HumanMessage(_with_files(line, attach)))
            answer = await _answer(model, history, out, ui, console, answered=answered)
            if answer is None:
                history.pop()  # not answered: the next message starts again (files included)
            else:
                answered = True
                attach = []
                history.append(message_chunk_to_message(answer))
    return EXIT_OK  # pragma: no cover - the loop returns


async def _credentials_ready(model: Any) -> None:
    """Resolve the model's credentials now (a pool's accounts, else its login), or raise."""
    pool = model.pool
    if pool is not None:
        await pool.accounts()
    else:
        await model._get_auth_manager().get()


def _is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (a closed or fake stream is not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


async def _answer(
    model: Any,
    history: list[BaseMessage],
    out: TextIO,
    ui: TextIO,
    console: _Console,
    *,
    answered: bool,
) -> Any:
    """Stream one answer (``None``: not answered, said in a line); raise what ends the chat."""
    if console.prompts:
        print("hailuo> ", end="", file=ui, flush=True)
    console.task = asyncio.ensure_future(_stream(model, history, out, console))
    try:
        answer = await console.task
    except asyncio.CancelledError:
        if not console.stopped:
            raise  # the chat itself was cancelled
        _end_lines(out, ui, console)
        print("hailuo: answer stopped", file=sys.stderr, flush=True)
        return None
    except HailuoError as exc:
        _end_lines(out, ui, console)
        if _fatal(exc, answered=answered):
            if isinstance(exc, HailuoAuthError | HailuoConfigurationError):
                raise
            raise HailuoConfigurationError(
                f"{_message(exc)} Nothing has answered yet: check the service's address "
                "(--base-url, HAILUO_BASE_URL) and protocol (--protocol, HAILUO_PROTOCOL)."
            ) from None
        print(f"hailuo: error: {_message(exc)}", file=sys.stderr, flush=True)
        return None
    finally:
        console.task, console.stopped = None, False
    if console.prompts and ui is not out:
        print(file=ui, flush=True)  # the next prompt on a line of its own
    return answer


def _end_lines(out: TextIO, ui: TextIO, console: _Console) -> None:
    """End the lines an unfinished answer left open (standard output gets no blank line)."""
    if console.wrote:
        print(file=out, flush=True)
    if console.prompts and (ui is not out or not console.wrote):
        print(file=ui, flush=True)


async def _stream(model: Any, history: list[BaseMessage], out: TextIO, console: _Console) -> Any:
    """Write one answer's text to ``out`` as it streams; return the whole answer."""
    answer = None
    console.wrote = False
    async for chunk in model.astream(history):
        if chunk.text:
            print(chunk.text, end="", file=out, flush=True)
            console.wrote = True
        answer = chunk if answer is None else answer + chunk
    print(file=out, flush=True)
    return answer


# --------------------------------------------------------------------------- serve


def _add_serve_parser(sub: Any) -> None:
    """The ``hailuo serve`` subcommand's flags."""
    serve = sub.add_parser(
        "serve", help="serve OpenAI- and Anthropic-compatible endpoints over your login"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=_port, default=8000, help="port (default 8000; 0: a free one)"
    )
    serve.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="a key clients must send (repeatable; also HAILUO_SERVE_API_KEYS, comma-separated);"
        " required unless bound to loopback",
    )
    serve.add_argument(
        "--max-concurrency", type=int, default=16, help="requests at once per API key (16)"
    )
    serve.add_argument(
        "--max-body-bytes", type=int, default=4 * 2**20, help="largest request body (4 MiB)"
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="an origin browsers may call from (repeatable; '*': any); default: CORS off",
    )
    serve.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        help="seconds running answers get to finish on Ctrl+C / SIGTERM (30)",
    )
    serve.add_argument("--model", default=None, help="the default model id")
    serve.add_argument(
        "--model-alias",
        action="append",
        default=[],
        metavar="PATTERN=MODEL",
        help="answer requests for models matching PATTERN with MODEL, e.g. 'claude-*=MiniMax-M3' "
        "(repeatable; also HAILUO_SERVE_MODEL_ALIASES, comma-separated)",
    )
    _add_protocol_options(serve, base_url_default=None)
    serve.add_argument(
        "--account-concurrency",
        type=int,
        default=1,
        help="answers streamed at once by each account (default 1, as the service allows)",
    )
    accounts = serve.add_mutually_exclusive_group()
    accounts.add_argument(
        "--auth-file", default=None, help="the auth file written by `hailuo login`"
    )
    accounts.add_argument(
        "--accounts-dir",
        default=None,
        metavar="DIR",
        help="serve over every account in DIR (`hailuo login --add NAME` saves there; also "
        "HAILUO_ACCOUNTS_DIR, or HAILUO_TOKENS=tok1,tok2)",
    )
    serve.add_argument(
        "--pool-url",
        default=None,
        metavar="URL",
        help="redis://... shared by every replica: account leases, cool-downs and "
        "conversations (also HAILUO_POOL_URL; needs langchain-hailuo[redis])",
    )


async def _serving_over(model: Any) -> str:
    """What the server answers with, for its start-up line (no secret: the URL is redacted)."""
    pool = model.pool
    if pool is None:
        return "one account"
    count = len(await pool.accounts())
    accounts = f"{count} account{'s' if count != 1 else ''}"
    if not model.pool_url:
        return f"{accounts} (a pool in this process)"
    return f"{accounts} (a pool shared through {redact_url(model.pool_url)})"


def _cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    """Serve the OpenAI- and Anthropic-compatible API until Ctrl+C / SIGTERM."""
    import logging  # noqa: PLC0415

    from pydantic import SecretStr  # noqa: PLC0415

    from langchain_hailuo.chat_models import ChatHailuo  # noqa: PLC0415
    from langchain_hailuo.serve import ServeConfig, Server, serve_forever  # noqa: PLC0415
    from langchain_hailuo.serve.config import parse_aliases  # noqa: PLC0415

    env_aliases = os.environ.get("HAILUO_SERVE_MODEL_ALIASES", "")
    aliases = [*args.model_alias, *(a for a in env_aliases.split(",") if a.strip())]
    env_keys = os.environ.get("HAILUO_SERVE_API_KEYS", "")
    keys = [*args.api_key, *(k.strip() for k in env_keys.split(",") if k.strip())]
    config = ServeConfig(
        host=args.host,
        port=args.port,
        api_keys=tuple(SecretStr(key) for key in keys),
        max_concurrency=args.max_concurrency,
        max_body_bytes=args.max_body_bytes,
        cors_origins=tuple(args.cors_origin),
        shutdown_timeout=args.shutdown_timeout,
        model_aliases=parse_aliases(aliases),
    )
    config.check()
    kwargs = _model_target(args)
    kwargs.update(max_concurrency=args.account_concurrency, auth_file=args.auth_file)
    if args.accounts_dir:
        kwargs["accounts"] = Path(args.accounts_dir).expanduser()
    if args.pool_url:
        kwargs["pool_url"] = args.pool_url
    model = ChatHailuo(**kwargs)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    def ready(url: str, over: str) -> None:
        print(
            f"Serving on {url}/v1 (OpenAI: /v1/chat/completions and /v1/responses, "
            f"Anthropic: /v1/messages, models: /v1/models) over {over}; "
            f"{'API key required' if keys else 'no API key'}. "
            "Ctrl+C stops.",
            file=out,
            flush=True,
        )

    async def run() -> None:
        await model.alist_models()  # fails now, not on the first request, without a login
        over = await _serving_over(model)
        await serve_forever(Server(model, config), lambda url: ready(url, over))

    try:
        asyncio.run(run())
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        raise _cannot_listen(args.host, args.port, exc) from None
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def _parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = _Parser(prog="hailuo", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"hailuo {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add_auth_file(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--auth-file",
            default=None,
            help="the auth file (default: HAILUO_AUTH_FILE or the per-user config file)",
        )

    _add_login_parser(sub, add_auth_file)

    status = sub.add_parser("status", help="show which credentials are used (never the token)")
    status.add_argument("--browser", default=None, help="the Chromium/Chrome executable")
    status.add_argument("--check", action="store_true", help="also ask the server")
    _add_protocol_options(status, base_url_default=os.environ.get("HAILUO_BASE_URL") or None)
    add_auth_file(status)

    logout = sub.add_parser("logout", help="remove the saved login and its lock files")
    logout.add_argument("--all", action="store_true", help="also the browser profile")
    logout.add_argument("--profile-dir", default=None, help="the browser profile folder")
    add_auth_file(logout)

    _add_doctor_parser(sub, add_auth_file)

    chat = sub.add_parser("chat", help="chat in the terminal, streaming the answers")
    chat.add_argument("--emulator", action="store_true", help="talk to a private local emulator")
    chat.add_argument("--model", default=None, help="the model id (Agent protocol)")
    _add_protocol_options(chat, base_url_default=None)
    chat.add_argument(
        "--attach",
        action="append",
        metavar="PATH",
        help="a file or image to send with the first message (repeatable; Agent protocol)",
    )

    emulator = sub.add_parser("emulator", help="run the local emulator in the foreground")
    emulator.add_argument("--port", type=_port, default=0, help="port of the v4 origin (0: free)")
    emulator.add_argument(
        "--chunk-delay", type=float, default=0.02, help="seconds between streamed frames"
    )
    emulator.add_argument(
        "--first-byte-delay",
        type=float,
        default=0.0,
        help="seconds before an Agent answer starts (production: about 0.4)",
    )
    emulator.add_argument(
        "--replay",
        type=Path,
        metavar="FILE",
        help="serve a transcript written by `hailuo doctor --record FILE` instead",
    )
    emulator.add_argument(
        "--script",
        metavar="FILE",
        default=None,
        help="JSON lines of replies, tool calls and faults to queue (see "
        "langchain_hailuo.emulator.control); more can be POSTed to /_emulator/script",
    )
    _add_serve_parser(sub)
    _add_pool_parser(sub)
    return parser


def _add_pool_parser(sub: Any) -> None:
    """Add ``hailuo pool status``."""
    pool = sub.add_parser("pool", help="the account pool (many accounts)")
    actions = pool.add_subparsers(dest="pool_command", required=True)
    status = actions.add_parser("status", help="each account's streams, rest and last error")
    status.add_argument(
        "--pool-url",
        default=os.environ.get(ENV_POOL_URL),
        help="the pool's Redis (default: HAILUO_POOL_URL; without it, this process only)",
    )
    status.add_argument(
        "--accounts-dir",
        help="a folder of auth files (default: HAILUO_TOKENS, HAILUO_ACCOUNTS_DIR or the "
        "per-user accounts folder)",
    )


def _cmd_pool(args: argparse.Namespace, out: TextIO) -> int:
    """``hailuo pool status``: the pool's accounts, what they are doing, why any rests."""
    from langchain_hailuo.pool_status import pool_status  # noqa: PLC0415

    return pool_status(args.accounts_dir, args.pool_url, out)


def _add_protocol_options(p: argparse.ArgumentParser, *, base_url_default: str | None) -> None:
    """``--base-url``, ``--stream-url`` and ``--protocol``, as every networked command has."""
    p.add_argument(
        "--base-url",
        default=base_url_default,
        help=f"the site (default: HAILUO_BASE_URL, else {DEFAULT_BASE_URL})",
    )
    p.add_argument(
        "--stream-url",
        default=os.environ.get("HAILUO_STREAM_URL") or None,
        help="the Agent stream origin (default: derived from the base URL)",
    )
    p.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default=None,
        help=f"the wire protocol (default: {ENV_PROTOCOL}, else auto: by host)",
    )


def _model_target(args: argparse.Namespace) -> dict[str, Any]:
    """ChatHailuo's ``protocol``, ``model``, ``base_url`` and ``stream_url`` from the flags."""
    kwargs: dict[str, Any] = {"protocol": args.protocol}
    for name in ("model", "base_url", "stream_url"):
        if getattr(args, name):
            kwargs[name] = getattr(args, name)
    return kwargs


def _add_login_parser(sub: Any, add_auth_file: Any) -> None:
    """``hailuo login``: a browser login, or ``--token`` for servers and containers."""
    login = sub.add_parser(
        "login", help="log in (a browser, or --token with a token copied from one)"
    )
    _add_protocol_options(
        login, base_url_default=os.environ.get("HAILUO_BASE_URL") or DEFAULT_BASE_URL
    )
    login.add_argument(
        "--token",
        nargs="?",
        const=_TOKEN_FROM_PROMPT,
        default=None,
        metavar="-",
        help="log in with a token instead of a browser: `--token -` reads it from standard "
        "input, `--token` alone asks for it without echo (never pass it as an argument)",
    )
    login.add_argument("--headless", action="store_true", help="run the browser without a window")
    login.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait for the login (default 300)"
    )
    login.add_argument("--browser", default=None, help="the Chromium/Chrome executable")
    login.add_argument("--profile-dir", default=None, help="a persistent browser profile folder")
    login.add_argument("--proxy", default=None, help="a proxy for the browser")
    login.add_argument(
        "--add",
        metavar="NAME",
        default=None,
        help="save as pool account NAME (HAILUO_ACCOUNTS_DIR or the per-user accounts folder)",
    )
    add_auth_file(login)


def _add_doctor_parser(sub: Any, add_auth_file: Any) -> None:
    """``hailuo doctor``: check the live path step by step."""
    doctor = sub.add_parser("doctor", help="check each step of the live path; paste the output")
    _add_protocol_options(doctor, base_url_default=os.environ.get("HAILUO_BASE_URL") or None)
    doctor.add_argument(
        "--no-chat", action="store_true", help="skip the chat turn (it spends credits)"
    )
    doctor.add_argument(
        "--timeout", type=float, default=20.0, help="seconds each step may take (default 20)"
    )
    doctor.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="write a transcript of the run, secrets replaced (replay: hailuo emulator --replay)",
    )
    add_auth_file(doctor)


_COMMANDS = {
    "login": _cmd_login,
    "status": _cmd_status,
    "logout": _cmd_logout,
    "chat": _cmd_chat,
    "emulator": _cmd_emulator,
    "serve": _cmd_serve,
    "pool": _cmd_pool,
    "doctor": _cmd_doctor,
}


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the ``hailuo`` command.

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).
        out: Where normal output goes (default: standard output).

    Returns:
        The exit code.
    """
    args = _parser().parse_args(argv)  # bad usage, --help and --version exit here
    try:
        _settle(args)
        return _COMMANDS[args.command](args, out or sys.stdout)
    except (HailuoError, ValidationError, OSError, KeyboardInterrupt) as exc:
        return _exit_code(exc)


def _exit_code(exc: BaseException) -> int:
    """Say what went wrong in one line on standard error; the exit code that goes with it."""
    if isinstance(exc, BrokenPipeError):  # the reader went away (`hailuo doctor | head`)
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    if isinstance(exc, KeyboardInterrupt):
        print("hailuo: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if isinstance(exc, HailuoError):
        text = _message(exc)
    elif isinstance(exc, ValidationError):
        text = _invalid_settings(exc)
    else:  # an OSError: an unwritable auth file or folder, a full disk...
        assert isinstance(exc, OSError)  # noqa: S101 - main() catches no other kind
        where = f" ({exc.filename})" if exc.filename else ""
        text = f"{exc.strerror or type(exc).__name__}{where}"
    print(f"hailuo: error: {text}", file=sys.stderr)
    return EXIT_FAILURE


def _message(exc: HailuoError) -> str:
    """An error's message, one line."""
    return " ".join(exc.message.split())


def _invalid_settings(exc: ValidationError) -> str:
    """A model setting pydantic refused, named as the user set it (never its value)."""
    parts = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        parts.append(f"{_SETTINGS.get(field, field or 'a setting')}: {error['msg']}")
    return "invalid setting: " + "; ".join(parts)


def _silence_stdout() -> None:
    """Point standard output at the null device, so exit's flush cannot fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _settle(args: argparse.Namespace) -> None:
    """Fill what the environment decides (``--protocol`` from ``HAILUO_PROTOCOL``), checked."""
    if "protocol" in args and args.protocol is None:
        value = os.environ.get(ENV_PROTOCOL, "").strip() or "auto"
        if value not in PROTOCOLS:
            raise HailuoConfigurationError(
                f"{ENV_PROTOCOL} is {value!r}; set it to one of {', '.join(PROTOCOLS)} "
                "(or unset it, or pass --protocol)."
            )
        args.protocol = value


def _version() -> str:
    """The installed package's version."""
    from langchain_hailuo import __version__  # noqa: PLC0415 - the one version source

    return __version__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
