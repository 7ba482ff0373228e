"""Runs let go of because another process owns them now (a leader that lost the lead on
PostgreSQL, a worker whose lease ran out): their tasks are cancelled, but what the run
started outside this process is left going for the new owner.

A run on a LangGraph server is the case: the process taking over settles the attempt as
a dead process's and its retry adopts the server's run (:mod:`scheduler.remote_attempts`).
Cancelled here, that run would end half-way, under the retry that waits for it or before
the retry looks (which then starts the graph again). :func:`hand_over` marks the task and
cancels it; :func:`handed_over` tells the code that cancelled (a graph's ``ainvoke``)
whether it is being let go of, rather than stopped.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

__all__ = ["hand_over", "handed_over"]

_HANDED_OVER: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()


def hand_over(task: asyncio.Task[Any]) -> None:
    """Cancel ``task``, a run another process owns now: what it started elsewhere goes on."""
    _HANDED_OVER.add(task)
    task.cancel()


def handed_over() -> bool:
    """The running task is a run let go of (:func:`hand_over`), not one stopped."""
    task = asyncio.current_task()
    return task is not None and task in _HANDED_OVER
