"""Admission for runs that workers execute: what a due occurrence becomes, decided from
the runs in progress in the database (on every worker) instead of one process's memory.

The scheduling leader is the one process that creates scheduled runs, so counting in its
dispatch transaction keeps admission serialized. A run admitted here is written for any
worker to claim (``worker = "*"``) with the most of its task's runs that may be in progress
when it starts (``max_running``: 1 for ``skip`` and ``queue``, ``max_instances`` for
``allow``; none for runs that ignore the overlap policy: run now, retries, recovered runs)
and its priority rank, and the task's ``thread_id`` if it has one; workers enforce
``max_running`` when they claim, and take a thread's runs one at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from scheduler.enums import OverlapPolicy, RunStatus
from scheduler.models import TaskDefinition
from scheduler.pending import Admission, PendingRun
from scheduler.rows import settled
from scheduler.runlog import Ended, Follow
from scheduler.settings import Settings
from scheduler.storage import RunRow, Transaction
from scheduler.storage.workers import ANY_WORKER, in_progress, notify, share_runs

__all__ = ["SharedAdmission", "followed_by_workers"]

_OVERLAP = "another run of the task was still going (overlap policy)"


class SharedAdmission:
    """Admits occurrences against the database's runs in progress; one batch at a time."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._counts: dict[str, tuple[int, int]] = {}
        self._shared = 0

    def begin(
        self, tx: Transaction, task_ids: Collection[str], *, besides: Collection[str] = ()
    ) -> None:
        """Count the runs in progress of ``task_ids`` (in ``tx``, before admitting), not
        the runs ``besides``: those about to be admitted, if written already."""
        self._counts = in_progress(tx, task_ids, besides=besides)
        self._shared = 0

    def admit(self, task: TaskDefinition) -> Admission:
        """What a due occurrence of ``task`` becomes (and count it, unless skipped)."""
        active, unstarted = self._counts.get(task.id, (0, 0))
        policy = task.overlap or self._settings.overlap
        if policy is OverlapPolicy.ALLOW:
            limit = task.max_instances or self._settings.max_instances
            admission = Admission.RUN if active < limit else Admission.SKIP
        elif active == 0:
            admission = Admission.RUN
        elif policy is OverlapPolicy.QUEUE and unstarted == 0:
            admission = Admission.BUFFER
        else:
            admission = Admission.SKIP
        if admission is not Admission.SKIP:
            self._counts[task.id] = (active + 1, unstarted + 1)
        return admission

    def max_running(self, task: TaskDefinition) -> int:
        if (task.overlap or self._settings.overlap) is OverlapPolicy.ALLOW:
            return task.max_instances or self._settings.max_instances
        return 1

    def rank(self, task: TaskDefinition) -> int:
        return (task.priority or self._settings.priority).rank

    def stamp(self, row: RunRow, task: TaskDefinition, *, overlap: bool = True) -> None:
        """Write ``row`` (not inserted yet) for any worker to claim."""
        row.worker = ANY_WORKER
        row.thread_id = row.thread_id or task.thread_id  # a task's thread: one run at a time
        row.max_running = self.max_running(task) if overlap else None
        row.priority_rank = self.rank(task)
        self._shared += 1

    def share(
        self, tx: Transaction, runs: list[tuple[str, TaskDefinition]], *, overlap: bool = True
    ) -> None:
        """Queue existing rows (``(run id, task)``) for any worker to claim."""
        share_runs(
            tx,
            [
                (
                    run_id,
                    self.max_running(task) if overlap else None,
                    self.rank(task),
                    task.thread_id,
                )
                for run_id, task in runs
            ],
        )
        self._shared += len(runs)

    def end(self, tx: Transaction) -> None:
        """Wake the workers at commit if this batch queued anything for them."""
        if self._shared:
            notify(tx)
        self._shared = 0


def followed_by_workers(
    follow: Follow,
    settings: Settings,
    clock: Callable[[], float],
    skipped: Callable[[PendingRun, dict[str, Any]], None] | None = None,
) -> Follow:
    """``follow`` (as a run log calls it, in the transaction that writes the outcomes), with
    the runs it queues handed to any worker instead of returned: admitted against the runs
    in progress on every worker (one the overlap policy skips is recorded ``skipped``, and
    given to ``skipped`` with its change, to be told once committed: ``Followers.skipped``).
    For a worker's run log, and a leader's whose runs workers execute."""

    def hand_out(tx: Transaction, ended: Sequence[Ended]) -> list[PendingRun]:
        queued = follow(tx, ended)
        if not queued:
            return []
        shared = SharedAdmission(settings)  # its own: flushes run beside other writers
        # (follow wrote their rows: not runs in progress against which they are admitted)
        shared.begin(tx, {p.task.id for p in queued}, besides=[p.run_id for p in queued])
        shares: list[tuple[str, TaskDefinition]] = []
        skips: list[dict[str, Any]] = []
        for pending in queued:
            if shared.admit(pending.task) is Admission.SKIP:
                now = clock()
                skips.append(
                    settled(
                        pending.run_id, RunStatus.SKIPPED, now=now, kind="Overlap", message=_OVERLAP
                    )
                )
                if skipped is not None:
                    skipped(pending, skips[-1])
            else:
                shares.append((pending.run_id, pending.task))
        tx.update_runs(skips)
        shared.share(tx, shares)
        shared.end(tx)
        return []

    return hand_out
