"""Sync over async: one long-lived private event loop, and a semaphore that works across loops.

LangChain's sync entry points (``invoke``, ``stream``, ``batch``) must work from a plain
script, from worker threads, and from a thread that already runs an event loop (Jupyter,
an async web app calling ``invoke``). ``asyncio.run`` per call fails in the last case and,
elsewhere, leaves aiohttp sessions bound to closed loops ("Event loop is closed",
"attached to a different loop"). So every sync call runs its coroutine on **one** private
loop that lives in a daemon thread for the life of the process:

- :meth:`LoopRunner.run` runs a coroutine there and returns (or raises) its result;
- :meth:`LoopRunner.iterate` pulls an async iterator's items one by one into the calling
  thread: nothing is read ahead (backpressure), an exception reaches the consumer
  unchanged, and the async generator is closed when the consumer stops early;
- objects that own per-loop resources (the providers' aiohttp sessions) register with
  :meth:`LoopRunner.track`; their ``aclose()`` runs on the private loop at interpreter exit.

:class:`CrossLoopSemaphore` limits concurrency across threads *and* loops (the private loop
and any number of user loops), which ``asyncio.Semaphore`` cannot: the service allows one
streamed answer per account at a time, wherever the call comes from.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, Protocol, TypeVar

from langchain_hailuo._compat import TIMEOUT_ERRORS, timeout
from langchain_hailuo.errors import HailuoTimeoutError

__all__ = ["CrossLoopSemaphore", "LoopRunner", "account_gate", "get_runner"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_CLOSE_TIMEOUT = 10.0
"""Seconds the exit handler waits for tracked resources to close."""


class _Closable(Protocol):
    """Anything with an async ``aclose()`` (the providers)."""

    def aclose(self) -> Awaitable[None]:
        """Release the resources bound to the running loop."""
        ...


def _next_on(
    loop: asyncio.AbstractEventLoop, iterator: AsyncIterator[T]
) -> concurrent.futures.Future[T]:
    """The iterator's next item, asked for in a task of ``loop`` (its own frame, not ours)."""
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def start() -> None:
        task = asyncio.ensure_future(anext(iterator))
        task.add_done_callback(lambda step: _settle(step, done))
        done.add_done_callback(
            lambda _: done.cancelled() and loop.call_soon_threadsafe(task.cancel)
        )

    loop.call_soon_threadsafe(start)
    return done


def _cancel_if_cancelled(
    done: concurrent.futures.Future[Any], loop: asyncio.AbstractEventLoop, task: asyncio.Future[Any]
) -> None:
    """Cancel the step when the calling thread gave up on it (an interrupt)."""
    if done.cancelled():
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(task.cancel)


def _settle(step: asyncio.Future[T], done: concurrent.futures.Future[T]) -> None:
    """Copy a finished step's outcome to the future the calling thread waits on."""
    with contextlib.suppress(concurrent.futures.InvalidStateError):
        if step.cancelled():
            done.cancel()
        elif (error := step.exception()) is not None:
            done.set_exception(error)
        else:
            done.set_result(step.result())


async def _close_iterator(iterator: AsyncIterator[Any]) -> None:
    """Close an async generator once it is no longer running (e.g. after a cancellation)."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is None:
        return
    for _ in range(1000):  # a cancelled step may still be unwinding its ``finally`` blocks
        if not getattr(iterator, "ag_running", False):
            break
        await asyncio.sleep(0.001)
    with contextlib.suppress(RuntimeError):
        await aclose()


class LoopRunner:
    """A private event loop in a daemon thread, started on first use.

    Example:
        ```python
        runner = get_runner()
        runner.run(asyncio.sleep(0, "done"))  # 'done'
        for item in runner.iterate(agen()):  # items arrive one at a time
            ...
        ```
    """

    def __init__(self, name: str = "langchain-hailuo-loop") -> None:
        """Create the runner (no thread is started until the first call).

        Args:
            name: The daemon thread's name.
        """
        self._name = name
        self._guard = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._tracked: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()

    # ------------------------------------------------------------------ lifecycle

    def loop(self) -> asyncio.AbstractEventLoop:
        """The private loop, started now if needed (also after ``close()`` or a fork)."""
        with self._guard:
            loop = self._loop
            if loop is not None and self._pid == os.getpid() and not loop.is_closed():
                return loop
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(
                target=self._serve, args=(loop, ready), name=self._name, daemon=True
            )
            thread.start()
            ready.wait()
            self._loop, self._thread, self._pid = loop, thread, os.getpid()
            return loop

    @staticmethod
    def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        """The daemon thread's body: run the loop until stopped, then close it."""
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            with contextlib.suppress(RuntimeError):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def in_runner_thread(self) -> bool:
        """Whether the calling thread is the private loop's own thread."""
        thread = self._thread
        return thread is not None and thread.ident == threading.get_ident()

    def track(self, resource: _Closable) -> None:
        """Close ``resource`` (``await resource.aclose()``) on the private loop at exit.

        Args:
            resource: An object owning per-loop resources; held weakly (it need not be
                hashable).
        """
        self._tracked[id(resource)] = resource

    def close(self) -> None:
        """Close the tracked resources on the private loop, then stop the loop and its thread.

        Safe to call more than once; a later sync call starts a fresh loop.
        """
        with self._guard:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or loop.is_closed() or self._pid != os.getpid():
            return
        resources = list(self._tracked.values())

        async def close_all() -> None:
            pending = asyncio.all_tasks() - {asyncio.current_task()}
            if pending:  # e.g. closings submitted by finalizers: let them finish
                await asyncio.wait(pending, timeout=_CLOSE_TIMEOUT / 2)
            for resource in resources:
                try:
                    await resource.aclose()
                except Exception as exc:  # noqa: BLE001 - closing is best effort at exit
                    logger.debug("closing %r failed: %s", type(resource).__name__, exc)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close_all(), loop).result(_CLOSE_TIMEOUT)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join(_CLOSE_TIMEOUT)

    # ------------------------------------------------------------------ running

    def submit(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Start ``coro`` on the private loop without waiting (if the loop is running).

        Used by finalizers, which may run in any thread (the loop's own included). When
        the loop is not running, the coroutine is closed unstarted.

        Args:
            coro: The coroutine (its errors are logged at debug level).
        """
        loop = self._loop
        if loop is None or loop.is_closed() or self._pid != os.getpid():
            coro.close()
            return

        async def guarded() -> None:
            try:
                await coro
            except Exception as exc:  # noqa: BLE001 - fire and forget
                logger.debug("background task failed: %s", exc)

        try:
            asyncio.run_coroutine_threadsafe(guarded(), loop)
        except RuntimeError:  # the loop closed just now
            coro.close()

    def _check_reentry(self) -> None:
        """Refuse a blocking call from the private loop's own thread (it would deadlock)."""
        if self.in_runner_thread():
            raise RuntimeError(
                "A sync ChatHailuo method was called from inside its own event loop; "
                "use the async methods (ainvoke, astream) there."
            )

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the private loop and wait for its result.

        Args:
            coro: The coroutine to run.

        Returns:
            The coroutine's result; its exception is raised unchanged. If the calling
            thread is interrupted (``KeyboardInterrupt``), the coroutine is cancelled.
            Refused from the loop's own thread, the coroutine is closed unrun.
        """
        try:
            self._check_reentry()
        except RuntimeError:
            coro.close()
            raise
        future = asyncio.run_coroutine_threadsafe(coro, self.loop())
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        """Pull the items of an async iterator running on the private loop, one at a time.

        Nothing is read ahead: the next item is requested only when the consumer asks for
        it. An exception raised by the iterator is raised in the consumer. When the
        consumer stops early (``break``, an exception, ``close()``), the async generator is
        closed on the private loop so its ``finally`` blocks (closing the HTTP response,
        releasing the account slot) run before this generator returns.

        Args:
            iterator: An async iterator (usually an async generator) not yet started.

        Yields:
            Its items, in order.
        """
        self._check_reentry()
        loop = self.loop()
        try:
            while True:
                future = _next_on(loop, iterator)
                try:
                    item = future.result()
                except StopAsyncIteration:
                    return
                except BaseException:
                    future.cancel()
                    raise
                yield item
        finally:
            if not loop.is_closed():
                with contextlib.suppress(Exception):
                    asyncio.run_coroutine_threadsafe(_close_iterator(iterator), loop).result(
                        _CLOSE_TIMEOUT
                    )


_RUNNER = LoopRunner()


def get_runner() -> LoopRunner:
    """The process-wide runner used by every sync ChatHailuo call."""
    return _RUNNER


atexit.register(_RUNNER.close)


# --------------------------------------------------------------------------- semaphore


def _grant(future: asyncio.Future[None]) -> None:
    """Wake a waiter (runs on the waiter's loop)."""
    if not future.done():
        future.set_result(None)


class CrossLoopSemaphore:
    """A FIFO semaphore usable from any event loop in any thread.

    ``asyncio.Semaphore`` is bound to one loop; this one keeps its count under a
    ``threading.Lock`` and wakes each waiter on the waiter's own loop. A waiter that is
    cancelled after being granted the slot passes it on, so no slot is ever lost; a waiter
    whose loop has closed is skipped.

    Example:
        ```python
        gate = CrossLoopSemaphore(1)
        async with gate:
            ...  # at most one holder, across all loops and threads
        ```
    """

    def __init__(self, value: int = 1) -> None:
        """Create the semaphore.

        Args:
            value: How many holders at once (1 or more).

        Raises:
            ValueError: ``value`` is below 1.
        """
        if value < 1:
            raise ValueError(f"CrossLoopSemaphore needs a value of 1 or more; got {value}.")
        self._value = value
        self._lock = threading.Lock()
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self._watchers: list[Callable[[], None]] = []

    @property
    def available(self) -> int:
        """Free slots right now."""
        with self._lock:
            return self._value

    @contextlib.asynccontextmanager
    async def slot(self, *, deadline: float | None, what: str) -> AsyncIterator[None]:
        """Hold a slot for the ``async with`` block, waiting for one until ``deadline``.

        Args:
            deadline: ``time.monotonic()`` by which a slot must be had (``None``: no limit).
            what: What waits, for the message (``"an answer of this account"``).

        Yields:
            Nothing; the slot is held until the block exits.

        Raises:
            HailuoTimeoutError: No slot came free before the deadline.
        """
        wait = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        try:
            async with timeout(wait):
                await self.acquire()
        except TIMEOUT_ERRORS:
            raise HailuoTimeoutError(
                f"The call's timeout ran out while {what} waited for this account's other "
                "calls to finish (the service streams one answer per account at a time); "
                "raise timeout= or send fewer calls at once."
            ) from None
        try:
            yield
        finally:
            self.release()

    def try_acquire(self) -> bool:
        """Take a free slot now, if there is one and nobody waits for it (never blocks)."""
        with self._lock:
            if self._value > 0 and not self._waiters:
                self._value -= 1
                return True
            return False

    def watch(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from any thread) whenever a slot is given back with no waiter.

        The account pool waits for accounts in its own queue: this is how it learns that a
        single-account model sharing the account's slots has finished an answer.
        """
        with self._lock:
            self._watchers.append(callback)

    async def acquire(self) -> None:
        """Take a slot, waiting in FIFO order when none is free."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._value > 0 and not self._waiters:
                self._value -= 1
                return
            future: asyncio.Future[None] = loop.create_future()
            waiter = (loop, future)
            self._waiters.append(waiter)
        try:
            await future
        except asyncio.CancelledError:
            with self._lock:
                try:
                    self._waiters.remove(waiter)
                    granted = False
                except ValueError:
                    granted = True
            if granted:
                self.release()
            raise

    def release(self) -> None:
        """Give the slot back: to the oldest live waiter, else to the pool."""
        with self._lock:
            while self._waiters:
                loop, future = self._waiters.popleft()
                if loop.is_closed():
                    continue
                try:
                    loop.call_soon_threadsafe(_grant, future)
                except RuntimeError:  # the loop closed just now
                    continue
                return
            self._value += 1
            watchers = list(self._watchers)
        for callback in watchers:
            callback()

    async def __aenter__(self) -> None:
        """Acquire."""
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Release."""
        self.release()


_GATES: dict[tuple[str, int], CrossLoopSemaphore] = {}
_GATES_GUARD = threading.Lock()


def account_gate(account: str, limit: int) -> CrossLoopSemaphore:
    """The process-wide semaphore of one account (shared by every model using it).

    Args:
        account: The account fingerprint.
        limit: Streams allowed at once for this account.

    Returns:
        The same semaphore for the same ``(account, limit)``.
    """
    key = (account, limit)
    with _GATES_GUARD:
        gate = _GATES.get(key)
        if gate is None:
            gate = _GATES[key] = CrossLoopSemaphore(limit)
        return gate
