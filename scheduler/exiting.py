"""Running a program's event loop to its end without waiting for threads that never return
(:func:`run_to_exit`).

LangGraph runs a graph's synchronous nodes on the event loop's default executor. A node
cannot be stopped: when its run times out or is cancelled, the run is recorded and the
thread goes on. ``asyncio.run`` and then Python itself wait for every such thread before
the process ends: for ever, for a hung one. ``main.py``, ``serve``, ``worker`` and the CLI's
``run --wait`` / ``answer --wait`` own their process, so once their work is done they leave
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

__all__ = ["run_to_exit"]

logger = logging.getLogger("scheduler")


class _CountingExecutor(ThreadPoolExecutor):
    """A default executor that counts the calls that have not returned."""

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


def run_to_exit(work: Callable[[], Awaitable[int]]) -> int:
    """``asyncio.run(work())``, its exit status returned; but if synchronous calls are still
    going on the loop's default executor once ``work`` is done, the process exits at once
    with that status (``os._exit``, after a warning and a flush of the logs and streams)."""
    return asyncio.run(_then_leave(work))


async def _then_leave(work: Callable[[], Awaitable[int]]) -> int:
    executor = _CountingExecutor()
    asyncio.get_running_loop().set_default_executor(executor)
    code = await work()
    going = executor.going()
    if going:
        logger.warning(
            "%d synchronous call(s) still going on the event loop's default executor (sync "
            "graph nodes that outlived their runs); exiting without waiting for them",
            going,
        )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
