"""Runs let go of before they start (a mixin of :class:`~scheduler.runner.Runner`, which
provides the state): those of a removed task, recorded ``cancelled``.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from scheduler.clock import Timer
from scheduler.enums import RunStatus
from scheduler.events import EventBus, EventKind
from scheduler.invocation import Outcome
from scheduler.pending import PendingRun
from scheduler.rows import settled
from scheduler.runlog import RunLog
from scheduler.waiting import WaitingRuns

__all__ = ["RunnerWithdrawing"]

logger = logging.getLogger("scheduler.runner")


class RunnerWithdrawing:
    """Letting go of runs not started (a mixin; the runner provides the state)."""

    _clock: Callable[[], float]
    _heap: list[tuple[int, float, int, PendingRun]]
    _buffered: dict[str, PendingRun]
    _delayed: dict[str, tuple[Timer, PendingRun]]
    _waiting: WaitingRuns
    _known: set[str]
    _in_progress: Counter[str]
    _log: RunLog
    _events: EventBus

    if TYPE_CHECKING:  # provided by Runner

        def _release(self, task_id: str) -> None: ...
        def _check_idle(self) -> None: ...
        def _emit(
            self,
            kind: EventKind,
            pending: PendingRun,
            outcome: Outcome,
            thread_id: str,
            started: float | None,
            finished: float | None,
        ) -> None: ...

    def forget_task(self, task_id: str, reason: str) -> None:
        """Cancel the runs of ``task_id`` that have not started (it was removed), and those
        waiting for an answer."""
        dropped = self._take(lambda pending: pending.task.id == task_id)
        dropped.extend(self._waiting.of_task(task_id))
        for pending in dropped:
            self._drop(pending, RunStatus.CANCELLED, "TaskRemoved", reason)
        self._check_idle()

    def _take(self, chosen: Callable[[PendingRun], bool]) -> list[PendingRun]:
        """Take the runs not started (queued, buffered, delayed) that are ``chosen``."""
        taken = [p for *_, p in self._heap if chosen(p)]
        if taken:
            self._heap = [e for e in self._heap if not chosen(e[3])]
            heapq.heapify(self._heap)
        for task_id, pending in list(self._buffered.items()):
            if chosen(pending):
                del self._buffered[task_id]
                taken.append(pending)
                self._in_progress[task_id] += 1  # (a buffered run holds none: released below)
        for run_id, (handle, pending) in list(self._delayed.items()):
            if chosen(pending):
                handle.cancel()
                del self._delayed[run_id]
                taken.append(pending)
        return taken

    def _drop(self, pending: PendingRun, status: RunStatus, kind: str, reason: str) -> None:
        """Record ``pending`` ended ``status`` before it started, and let go of it."""
        now, task_id = self._clock(), pending.task.id
        self._known.discard(pending.run_id)
        self._release(task_id)
        self._log.change(settled(pending.run_id, status, now=now, kind=kind, message=reason))
        logger.info("task %s run %s %s: %s", task_id, pending.run_id, status, reason)
        if self._events.wants(pending.task):  # (its listeners and webhook hear of it)
            outcome = Outcome(status, error_type=kind, error_message=reason)
            self._emit("finished", pending, outcome, pending.thread_id or "", None, now)
