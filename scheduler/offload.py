"""The thread that runs the async API's blocking calls (:class:`Offloader`).

``asyncio.to_thread`` costs about 0.1 ms a call on two cores, more than a small task write
takes: the executor's futures are chained through locks and callbacks, and the call may wake
any of its threads. A management call (an HTTP request, a tool call) is usually alone, so an
:class:`Offloader` keeps one thread of its own, fed by a plain queue, that hands each result
straight to the caller's event loop (0.02 ms). When that thread is busy, the call goes to the
scheduler's own pool (:data:`scheduler.pools.OWN`, not the loop's default executor, which
a graph's synchronous nodes fill), so a slow call (a list of 100,000 tasks) never holds up
the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from scheduler.pools import OWN

__all__ = ["Offloader", "call_soon_threadsafe"]

T = TypeVar("T")

_Held = list[tuple[Callable[..., Any], tuple[Any, ...]]]
_local = threading.local()  # on a kept thread: (the caller's loop, the calls held for it)


def call_soon_threadsafe(
    loop: asyncio.AbstractEventLoop, function: Callable[..., Any], *args: Any
) -> None:
    """``loop.call_soon_threadsafe(function, *args)``; on an :class:`Offloader`'s kept thread,
    during a call made from ``loop``, the call is held and made on the loop just before the
    result is handed over: one wake-up of the loop for the whole call instead of one for
    each notice (each costs the call the GIL back and forth while it still works)."""
    held = getattr(_local, "held", None)
    if held is not None and held[0] is loop:
        held[1].append((function, args))
    else:
        loop.call_soon_threadsafe(function, *args)


_Call = tuple[asyncio.Future[Any], contextvars.Context, Callable[..., Any], tuple[Any, ...]]


class Offloader:
    """Runs blocking calls off the event loop, on a kept thread when it is free.

    Args:
        name: The thread's name (shown in thread dumps).
        spill: A call that comes while the kept thread is busy goes to the default
            executor; False: it waits for the kept thread (a heartbeat must not queue
            behind the work that fills the executor).
    """

    def __init__(self, name: str = "scheduler-api", *, spill: bool = True) -> None:
        self.name = name
        self._spill = spill
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._busy = False  # a call is on the kept thread (or queued for it)

    async def run(self, function: Callable[..., T], /, *args: Any) -> T:
        """``function(*args)`` on another thread, with the caller's context variables, as
        ``asyncio.to_thread`` does; its exception is raised here."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        with self._lock:  # the call is queued before a close() can queue the thread's end
            kept = not self._busy or not self._spill
            if kept:
                self._busy = True
                if self._thread is None or not self._thread.is_alive():
                    # a queue of its own: the end that close() queued for the thread before
                    # is that thread's, never taken by this one
                    self._queue = queue.SimpleQueue()
                    self._thread = threading.Thread(
                        target=self._work, args=(self._queue,), name=self.name, daemon=True
                    )
                    self._thread.start()
                self._queue.put((future, contextvars.copy_context(), function, args))
        if not kept:
            return await OWN.run(function, *args)
        return await future

    def close(self) -> None:
        """Let the kept thread end once its queue is empty (a later :meth:`run` starts a
        new one)."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)

    def _work(self, calls: queue.SimpleQueue[_Call | None]) -> None:
        while (call := calls.get()) is not None:
            future, context, function, args = call
            loop = future.get_loop()
            result: Any = None
            error: BaseException | None = None
            held: _Held = []
            _local.held = (loop, held)
            try:
                result = context.run(function, *args)
            except BaseException as exc:  # handed to the caller, as an executor does
                error = exc
            finally:
                _local.held = None
            with self._lock:
                self._busy = False
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for it
                loop.call_soon_threadsafe(_settle, future, result, error, held)
            del call, future, context, function, args, result, error, held


def _settle(
    future: asyncio.Future[Any], result: Any, error: BaseException | None, held: _Held
) -> None:
    for function, args in held:  # what the call asked the loop to do, first
        try:
            function(*args)
        except Exception as exc:
            future.get_loop().call_exception_handler(
                {"message": f"error in {function!r}, called from a kept thread", "exception": exc}
            )
    if future.cancelled():  # the caller stopped waiting; the call itself has finished
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
