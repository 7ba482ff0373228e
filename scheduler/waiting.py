"""Runs waiting for a human: a graph that called ``interrupt()`` stopped, its run is
``waiting`` (recorded with what it asked), and it goes on when someone answers.

A waiting run still counts as in flight for its task's overlap policy (it is not finished),
but it takes no slot of ``max_concurrent_runs`` (nothing runs). It ends ``timed_out`` when
no answer comes within ``waiting_timeout_seconds`` (the task's, else the setting; none: it
waits for ever, across restarts).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from scheduler.pending import PendingRun
from scheduler.settings import Settings

__all__ = ["WaitingRuns"]

logger = logging.getLogger(__name__)


class WaitingRuns:
    """The waiting runs of one runner, with their waiting timeouts.

    Args:
        settings: For the default ``waiting_timeout_seconds``.
        clock: UNIX time source.
        on_answer: Called with a run (``resume`` and ``thread_id`` set) once it is answered.
        on_expiry: Called with a run whose waiting timeout passed.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        clock: Callable[[], float],
        on_answer: Callable[[PendingRun], None],
        on_expiry: Callable[[PendingRun, float], None],
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._on_answer = on_answer
        self._on_expiry = on_expiry
        self._runs: dict[str, tuple[PendingRun, asyncio.TimerHandle | None]] = {}

    def __len__(self) -> int:
        return len(self._runs)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._runs

    def hold(self, pending: PendingRun, *, thread_id: str, since: float) -> None:
        """Keep ``pending`` until it is answered or its waiting timeout passes."""
        pending.thread_id = thread_id
        timeout = pending.task.waiting_timeout_seconds or self._settings.waiting_timeout_seconds
        handle = None
        if timeout is not None:
            delay = max(0.0, since + timeout - self._clock())
            loop = asyncio.get_running_loop()
            handle = loop.call_later(delay, self._expire, pending.run_id, timeout)
        self._runs[pending.run_id] = (pending, handle)

    def answer(self, run_id: str, value: Any) -> bool:
        """Resume ``run_id`` with ``value``; False if it is not waiting here."""
        entry = self._runs.pop(run_id, None)
        if entry is None:
            return False
        pending, handle = entry
        if handle is not None:
            handle.cancel()
        pending.resume = value
        self._on_answer(pending)
        return True

    def of_task(self, task_id: str) -> list[PendingRun]:
        """Stop holding the waiting runs of ``task_id`` (it was removed) and return them."""
        dropped = []
        for run_id, (pending, handle) in list(self._runs.items()):
            if pending.task.id == task_id:
                if handle is not None:
                    handle.cancel()
                del self._runs[run_id]
                dropped.append(pending)
        return dropped

    def close(self) -> None:
        """Forget every waiting run (the scheduler stops; they stay ``waiting`` in the
        database and are picked up again at the next start)."""
        for _, handle in self._runs.values():
            if handle is not None:
                handle.cancel()
        self._runs.clear()

    def _expire(self, run_id: str, timeout: float) -> None:
        entry = self._runs.pop(run_id, None)
        if entry is not None:
            self._on_expiry(entry[0], timeout)
