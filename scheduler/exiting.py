"""Running a program's event loop to its end without waiting for threads that never return
(:func:`run_to_exit`, then :func:`leave` where the program ends).

LangGraph runs a graph's synchronous nodes on the event loop's default executor. A node
cannot be stopped: when its run times out or is cancelled, the run is recorded and the
thread goes on. ``asyncio.run`` and then Python itself wait for every such thread before
the process ends: for ever, for a hung one. ``main.py``, ``serve``, ``worker`` and the CLI's
``run --wait`` / ``answer --wait`` own their process, so once their work is done (or has
failed: a ``--timeout`` that ran out, Ctrl+C) and the program has said so, they leave
without those threads, saying so.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

__all__ = ["leave", "run_to_exit"]

logger = logging.getLogger("scheduler")


class _CountingExecutor(ThreadPoolExecutor):
    """A default executor that counts the calls that have not returned, and whose shutdown
    does not wait for them (``asyncio.run`` waited there: for ever, for a hung node)."""

    def __init__(self) -> None:
        super().__init__(thread_name_prefix="asyncio")
        self._calls: set[Future[Any]] = set()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        self._calls.add(future)
        future.add_done_callback(self._calls.discard)
        return future

    def going(self) -> int:
        return sum(1 for call in list(self._calls) if not call.done())

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait=wait and not self.going(), cancel_futures=cancel_futures)


# the default executors of the loops run_to_exit ran, whose calls were still going at its end
_left: list[_CountingExecutor] = []


def run_to_exit(work: Callable[[], Awaitable[int]]) -> int:
    """``asyncio.run(work())``: its exit status returned, or its exception raised; but it
    does not wait for synchronous calls still going on the loop's default executor. The
    program, once it has reported the outcome, ends with :func:`leave`."""
    executor = _CountingExecutor()
    try:
        return asyncio.run(_on(executor, work))
    finally:
        if executor.going():
            _left.append(executor)


async def _on(executor: _CountingExecutor, work: Callable[[], Awaitable[int]]) -> int:
    asyncio.get_running_loop().set_default_executor(executor)
    return await work()


def leave(status: int) -> int:
    """``status``; but if synchronous calls that :func:`run_to_exit` left are still going,
    the process exits at once with it (``os._exit``, after a warning and a flush of the logs
    and streams: Python would wait for their threads)."""
    going = sum(executor.going() for executor in _left)
    if going:
        logger.warning(
            "%d synchronous call(s) still going on the event loop's default executor (sync "
            "graph nodes that outlived their runs); exiting without waiting for them",
            going,
        )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status
