"""The threads the scheduler's own blocking calls run on, apart from the graph's.

LangGraph runs a graph's synchronous nodes on the event loop's default executor, which
``asyncio.to_thread`` also uses: ``min(32, cpus + 4)`` threads, six on two cores. A node
that never returns keeps its thread after its run timed out (a thread cannot be stopped).
When the scheduler's own calls went through that executor too, six hung nodes held up every
checkpoint write, run-log flush and wait behind them: runs that timed out after 0.5 s were
recorded 40 s later, and no other run could finish. So the scheduler's calls run on pools of
their own (:data:`OWN`: the run log, the database reads and writes of the API and the
workers; :data:`GRAPH`: the checkpointer and store the scheduler gives a graph, so that a
checkpoint database that stops answering does not stop the run log either).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["GRAPH", "OWN", "ThreadPool"]

T = TypeVar("T")
P = ParamSpec("P")


class ThreadPool:
    """A thread pool made on first use, for ``await pool.run(function, *args)``.

    Args:
        name: The threads' name prefix (shown in thread dumps).
        size: At most this many threads (made as calls need them).
    """

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.size, thread_name_prefix=self.name)
            return self._executor

    async def run(self, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``function(*args, **kwargs)`` on one of the pool's threads, with the caller's
        context variables (as ``asyncio.to_thread`` does); its exception is raised here."""
        call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.executor(), call)

    def _forget(self) -> None:
        """In a forked child: the parent's threads are not there (a new pool on first use)."""
        self._lock = threading.Lock()
        self._executor = None


OWN = ThreadPool("scheduler-io", 16)
GRAPH = ThreadPool("scheduler-graph-io", 16)


def _forget_all() -> None:
    OWN._forget()
    GRAPH._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_all)
