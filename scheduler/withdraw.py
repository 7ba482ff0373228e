"""Runs let go of before they start (a mixin of :class:`~scheduler.runner.Runner`, which
provides the state): those of a removed task (``cancelled``), of a task paused or disabled
meanwhile (``skipped``: a paused task starts no new run; one asked for by hand still runs,
as ``run`` runs a paused task), and retries that the task's edited ``max_retries`` no longer
allows (``skipped``: an edit applies to what comes after it). A retry let go of leaves the
attempt it retried as the task's final outcome: what runs after the task learns of it, and
its failure callback is called, as when a retry is missed after downtime.
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any

from scheduler.clock import Timer
from scheduler.enums import RunStatus, RunTrigger
from scheduler.events import EventBus, EventKind
from scheduler.exceptions import StorageError
from scheduler.invocation import Outcome
from scheduler.models import TaskDefinition
from scheduler.pending import PendingRun
from scheduler.pools import OWN
from scheduler.records import RunRecord
from scheduler.rows import run_record, settled
from scheduler.runlog import RunLog
from scheduler.settings import Settings
from scheduler.waiting_runs import WaitingRuns

__all__ = ["RunnerWithdrawing"]

logger = logging.getLogger("scheduler.runner")

_FAILURES = (RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.INTERRUPTED)


PAUSED = "the task was paused (or disabled) before this run started"  # (why it is skipped)


def retry_withdrawn(task: TaskDefinition, run: PendingRun, default_most: int) -> str | None:
    """Why ``run``, a retry, is not to run: ``task`` (as edited) allows fewer retries;
    None for a run that is no retry, or one still allowed."""
    most = task.max_retries if task.max_retries is not None else default_most
    if run.trigger is not RunTrigger.RETRY or run.attempt <= most + 1:
        return None
    if task.max_retries is None:  # (another process, with other settings, made the retry)
        return (
            f"this process's SCHEDULER_MAX_RETRIES ({most}; the task sets no max_retries) "
            f"allows no attempt {run.attempt}"
        )
    return f"the task was edited: max_retries {most} allows no attempt {run.attempt}"


class RunnerWithdrawing:
    """Letting go of runs not started (a mixin; the runner provides the state)."""

    _settings: Settings
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
        def _ending(self, ending: Coroutine[Any, Any, None]) -> None: ...
        def call_failure_callbacks(
            self, failed: list[tuple[TaskDefinition, RunRecord]]
        ) -> None: ...
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

    def pause_task(self, task_id: str) -> None:
        """Skip the runs of ``task_id`` not started (it was paused or disabled), but those
        asked for by hand."""
        for pending in self._take(
            lambda p: p.task.id == task_id and p.trigger is not RunTrigger.MANUAL
        ):
            self._drop(pending, RunStatus.SKIPPED, "Paused", PAUSED)
        self._check_idle()

    def skip_found(
        self, pending: PendingRun, kind: str = "Paused", reason: str = "the task is paused"
    ) -> None:
        """Skip ``pending``, found queued (at start, or claimed by a worker), as
        :meth:`pause_task` does: its task was paused meanwhile (or, with ``kind``
        ``RetryWithdrawn``, edited to allow no more retries)."""
        self._known.add(pending.run_id)
        self._in_progress[pending.task.id] += 1  # (released by the drop)
        self._drop(pending, RunStatus.SKIPPED, kind, reason)
        self._check_idle()

    def _withdraw(self, tasks: Mapping[str, TaskDefinition]) -> None:
        """After an edit (``tasks``): skip the runs of the tasks now disabled, and the
        retries that their task's ``max_retries`` no longer allows."""
        for task in tasks.values():
            if not task.enabled:
                self.pause_task(task.id)

        reasons: dict[str, str] = {}

        def unallowed(pending: PendingRun) -> bool:
            task = tasks.get(pending.task.id)
            most = self._settings.max_retries
            reason = None if task is None else retry_withdrawn(task, pending, most)
            if reason is not None:
                reasons[pending.run_id] = reason
            return reason is not None

        for pending in self._take(unallowed):
            self._drop(pending, RunStatus.SKIPPED, "RetryWithdrawn", reasons[pending.run_id])
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
        change = settled(pending.run_id, status, now=now, kind=kind, message=reason)
        retried = pending.retry_of  # (a removed task's attempts count for nothing)
        if status is RunStatus.SKIPPED and retried is not None:
            self._ending(self._give_up(pending, change, retried))
        else:
            self._log.change(change)
        logger.info("task %s run %s %s: %s", task_id, pending.run_id, status, reason)
        if self._events.wants(pending.task):  # (its listeners and webhook hear of it)
            outcome = Outcome(status, error_type=kind, error_message=reason)
            self._emit("finished", pending, outcome, pending.thread_id or "", None, now)

    async def _give_up(self, pending: PendingRun, change: dict[str, Any], retried: str) -> None:
        """The retry ``pending`` will not run: the attempt it retried is final."""
        try:
            attempt = await OWN.run(self._log.give_up, pending.task.id, dict(change), retried)
        except StorageError as exc:  # (the next start settles the retry left queued)
            logger.warning("task %s run %s: %s", pending.task.id, pending.run_id, exc)
            return
        if attempt is not None and RunStatus(attempt.status) in _FAILURES:
            self.call_failure_callbacks([(pending.task, run_record(attempt))])
