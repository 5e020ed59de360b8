"""The scripts one event loop asks of Redis, sent together (automatic pipelining).

Every script asked during one turn of the event loop goes in one round trip, in one
pipeline, sent at the start of the next turn: the busier the process, the more scripts
share each round trip. A batch does not wait for an earlier one's reply: up to ``senders``
batches are in flight at once, each on a connection of its own, so a script waits at most
one turn of its loop (a busy loop's turns are long) and no reply of anyone else's.

Each sender keeps its connection (taken from the client's pool, which connects,
authenticates and selects the database; all of them at once when the loop first uses the
pool), writes its batch as one buffer of ``EVALSHA`` commands and reads the replies with
the connection's own parser (``hiredis`` when installed). redis-py's pipeline object would
cost several times more per round trip: it takes a connection from the pool (with its
bookkeeping) and packs and checks every command on its own, which for a lone script is
most of its time, not the wire.

A caller that is cancelled while its script is queued or in flight does not stop it (it
may already have run in Redis): its reply goes to the ``orphan`` handler given with it,
which finishes or undoes what the script did for nobody (a release still hands the account
over; an acquire's lease is given back).

The ``redis`` package is not imported here: the client and its error classes come in.
A connection that fails (or whose caller is cancelled with replies unread) is closed and
handed back to the pool, never used again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["LuaScript", "Orphan", "RedisErrors", "ScriptPipeline"]

logger = logging.getLogger(__name__)

Orphan = Callable[[Any], None]
"""Takes the reply of a script whose caller stopped waiting for it."""


@dataclass(frozen=True, slots=True)
class LuaScript:
    """A Lua script, called by its SHA1 (``EVALSHA``) and loaded when the server lacks it."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        """Work the SHA1 out once."""
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())  # noqa: S324 - Redis names scripts by SHA1


class RedisErrors(NamedTuple):
    """The Redis client's error classes the pipeline tells apart."""

    reply: type[BaseException]
    """An error reply (``ResponseError``): one call's, the connection goes on."""
    no_script: type[BaseException]
    """A script not loaded in the server (``NoScriptError``, an error reply)."""
    connection: type[BaseException]
    """The connection failed (``ConnectionError``)."""


@dataclass(slots=True)
class _Call:
    """One script call waiting for its reply."""

    script: LuaScript
    keys: Sequence[Any]
    args: Sequence[Any]
    future: asyncio.Future[Any]
    orphan: Orphan | None
    reloaded: bool = False
    """Whether its script was loaded again for it already (after a NOSCRIPT)."""


class ScriptPipeline:
    """Sends one event loop's script calls to Redis, batching those asked meanwhile."""

    def __init__(
        self,
        client: Any,
        errors: RedisErrors,
        count: Callable[[], None],
        *,
        senders: int,
    ) -> None:
        """Create the pipeline of a loop (call on that loop).

        Args:
            client: The loop's ``redis.asyncio.Redis`` (its pool gives the connections).
            errors: The client's error classes.
            count: Called once per round trip (the backend counts them).
            senders: Batches in flight at most (each holds a connection meanwhile).
        """
        self._client = client
        self._errors = errors
        self._count = count
        self._senders = senders
        self._loop = asyncio.get_running_loop()
        self._pending: list[_Call] = []
        self._running: set[asyncio.Task[None]] = set()
        self._idle: list[Any] = []
        """Connections of senders that finished (the next sender takes one)."""
        self._starting = False
        """Whether a sender is on its way that will take what is pending."""

    def call(
        self,
        script: LuaScript,
        keys: Sequence[Any],
        args: Sequence[Any],
        *,
        orphan: Orphan | None = None,
    ) -> asyncio.Future[Any]:
        """Queue one script call; the future gets its reply (or the error that stopped it).

        Args:
            script: The script.
            keys: Its keys.
            args: Its arguments.
            orphan: What to do with the reply if nobody waits for it any more.

        Returns:
            The reply's future (cancelling it does not unsend the call).
        """
        future = self._loop.create_future()
        self._pending.append(_Call(script, keys, args, future, orphan))
        if not self._starting and len(self._running) < self._senders:
            self._starting = True
            sender = self._loop.create_task(self._send_pending())
            self._running.add(sender)
            sender.add_done_callback(self._running.discard)
        return future

    async def open(self) -> None:
        """Connect every sender's connection now, side by side (else each on first use).

        Raises:
            Exception: The client's error for a connection that failed (the others are
                kept, and handed back by :meth:`aclose`).
        """
        pool = self._client.connection_pool
        wanted = self._senders - len(self._idle)
        opened = await asyncio.gather(
            *(pool.get_connection() for _ in range(wanted)), return_exceptions=True
        )
        self._idle += [c for c in opened if not isinstance(c, BaseException)]
        for outcome in opened:
            if isinstance(outcome, BaseException):
                raise outcome

    async def aclose(self) -> None:
        """Wait for the calls already asked (their replies still reach their callers).

        The senders' connections then go back to the client's pool.
        """
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        idle, self._idle = self._idle, []
        for connection in idle:
            await self._client.connection_pool.release(connection)

    async def _send_pending(self) -> None:
        """Send what is pending now; then more, as long as no other sender is coming for it."""
        self._starting = False
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await self._send_batch(batch)
                if self._starting:  # another sender takes what came meanwhile
                    return
        except BaseException:  # cancelled (the loop is going away): nobody is left waiting
            for call in self._pending:
                call.future.cancel()
            self._pending = []
            raise

    async def _send_batch(self, batch: list[_Call]) -> None:
        """One batch: send it, settle its calls (loading lost scripts and going again)."""
        try:
            replies = await self._send(batch)
        except asyncio.CancelledError:
            for call in batch:
                call.future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every call of the batch
            for call in batch:
                _settle(call, exc)
            return
        again = []
        for call, reply in zip(batch, replies, strict=True):
            if isinstance(reply, self._errors.no_script) and not call.reloaded:
                call.reloaded = True
                again.append(call)
            else:
                _settle(call, reply)
        if again:  # Redis lost its scripts (a restart, SCRIPT FLUSH): load, go again
            again = await self._load(again)
            if again:
                await self._send_batch(again)

    async def _send(self, batch: list[_Call]) -> list[Any]:
        """One round trip: the calls' replies, in order (a call's error reply as its reply).

        A connection kept from an earlier batch that turns out closed before any reply
        came (the server dropped it while idle, just before this batch went out) is
        replaced once, and the batch sent on the new one.
        """
        self._count()
        pool = self._client.connection_pool
        payload = b"".join(_command(c.script.sha, c.keys, c.args) for c in batch)
        replies: list[Any] = []
        reused = bool(self._idle)
        if reused:
            connection = self._idle.pop()
            await pool.ensure_connection(connection)  # the server may have closed it since
        else:
            connection = await pool.get_connection()
        try:
            try:
                await self._exchange(connection, payload, len(batch), replies)
            except self._errors.connection:
                if not reused or replies:
                    raise
                await _drop(pool, connection)
                connection = None
                connection = await pool.get_connection()
                await self._exchange(connection, payload, len(batch), replies)
        except BaseException:  # replies may be left unread: the connection is done with
            if connection is not None:
                await _drop(pool, connection)
            raise
        self._idle.append(connection)
        return replies

    async def _exchange(self, connection: Any, payload: bytes, count: int, out: list[Any]) -> None:
        """Write ``payload`` (``count`` commands) and read their replies into ``out``."""
        await connection.send_packed_command(payload, check_health=False)
        for _ in range(count):
            try:
                out.append(await connection.read_response())
            except self._errors.reply as exc:  # this call's error: the next replies follow
                out.append(exc)

    async def _load(self, calls: list[_Call]) -> list[_Call]:
        """Load the calls' scripts into the server: the calls to send again (none on error)."""
        try:
            for source in {c.script.source for c in calls}:
                self._count()
                await self._client.script_load(source)
        except Exception as exc:  # noqa: BLE001 - handed to the calls that needed it
            for call in calls:
                _settle(call, exc)
            return []
        return calls


async def _drop(pool: Any, connection: Any) -> None:
    """Close a connection and hand it back to ``pool`` (which connects it anew if reused)."""
    try:
        await connection.disconnect()
    finally:
        await pool.release(connection)


def _command(sha: str, keys: Sequence[Any], args: Sequence[Any]) -> bytes:
    """``EVALSHA sha len(keys) *keys *args`` in the Redis protocol (RESP).

    Arguments are ``str`` (sent as UTF-8), ``bytes`` or ``int``.
    """
    parts = [b"EVALSHA", sha.encode(), b"%d" % len(keys)]
    parts += [p if isinstance(p, bytes) else str(p).encode() for p in (*keys, *args)]
    head = b"*%d\r\n" % len(parts)
    return head + b"".join(b"$%d\r\n%b\r\n" % (len(part), part) for part in parts)


def _settle(call: _Call, reply: Any) -> None:
    """Give a call its reply (an exception fails it).

    A call whose caller stopped waiting hands a reply to its ``orphan`` handler.
    """
    future = call.future
    if isinstance(reply, BaseException):
        if not future.done():
            future.set_exception(reply)
        return
    if future.done():  # cancelled while queued or in flight: the script ran for nobody
        if call.orphan is not None:
            try:
                call.orphan(reply)
            except Exception:
                logger.warning("Could not undo an abandoned pool script", exc_info=True)
        return
    future.set_result(reply)
