"""Sync over async: one long-lived private event loop.

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

An account's streams are limited across threads and loops by the account pool's
in-process backend (:mod:`langchain_hailuo.pool.backend`), which every call goes through.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import os
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterator
from typing import Any, Protocol, TypeVar

__all__ = ["LoopRunner", "get_runner"]

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
        done.add_done_callback(lambda _: _cancel_if_cancelled(done, loop, task))

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
        """Create the runner (no thread is started until the first call)."""
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
        """Close ``resource`` (held weakly) with ``await resource.aclose()`` on the loop at exit."""
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
        """Run ``coro`` on the private loop: its result, or its exception unchanged.

        An interrupt of the calling thread cancels it; from the loop's own thread it is
        refused (and closed unrun).
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
