"""What the active process picks up from the database (a mixin of
:class:`~scheduler.supervisor.Supervisor`, which provides the state): the runs found
``waiting`` at start, answers given elsewhere, runs requested elsewhere (``run`` from the
CLI), and waiting runs whose task was edited or removed elsewhere."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from scheduler.current import Definitions
from scheduler.documents import DocumentError, load_json
from scheduler.enums import RunStatus, RunTrigger
from scheduler.events import EventBus
from scheduler.models import TaskDefinition
from scheduler.pending import PendingRun, pending_of
from scheduler.recovery import tasks_of, tell_end
from scheduler.rows import settled
from scheduler.runlog import RunLog
from scheduler.runner import Runner
from scheduler.storage import RunRow, Store, Transaction
from scheduler.waiting_runs import ended_elsewhere
from scheduler.workers.admission import SharedAdmission

__all__ = ["PickUp", "answer_held"]

logger = logging.getLogger("scheduler.supervisor")


class PickUp:
    """Picking up what other processes (or none) left in the database (a mixin; the
    supervisor provides the state)."""

    store: Store
    runner: Runner
    run_log: RunLog
    events: EventBus
    shared: SharedAdmission | None
    clock: Callable[[], float]
    _definitions: Definitions
    _reaps: bool

    if TYPE_CHECKING:  # provided by Supervisor

        def _fence(self) -> Callable[[Transaction], None]: ...

    def _take_waiting(self) -> None:
        """Hold the runs found ``waiting`` (they wait across restarts) and resume those
        answered while no scheduler ran."""
        runs = [
            run
            for run in self.store.list_runs(statuses=[RunStatus.WAITING], limit=None)
            if run.worker is None
        ]
        if not runs:
            return
        with self.store.transaction() as tx:
            tasks = tasks_of(tx, runs)
        for run in runs:
            task = tasks[run.task_id]
            if isinstance(task, str) or run.problem is not None or run.thread_id is None:
                reason = task if isinstance(task, str) else "its record cannot be read"
                self._unavailable(run, reason, task)
                continue
            since = run.waiting_since or run.started_at or run.queued_at
            self.runner.hold_waiting(pending_of(run, task), thread_id=run.thread_id, since=since)
        logger.info("%d run(s) waiting for an answer", len(runs))
        self._take_answers(runs)

    def _share_waiting(self) -> None:
        """Hand the runs a process of role ``all`` left waiting to the workers."""
        with self.store.transaction() as tx:
            runs = [r for r in tx.runs_with_status([RunStatus.WAITING]) if r.worker is None]
            tasks = tasks_of(tx, runs)
            assert self.shared is not None
            self.shared.share(
                tx,
                [(r.id, t) for r in runs if isinstance(t := tasks[r.task_id], TaskDefinition)],
                overlap=False,
            )
            self.shared.end(tx)

    def _take_answers(self, runs: list[RunRow] | None = None) -> None:
        """Resume the waiting runs held here whose answer is recorded (by any process), and
        cancel those another process asked to cancel (also while no process held them)."""
        if runs is None:
            runs = self.store.list_runs(statuses=[RunStatus.WAITING], limit=None)
        for run in runs:
            if run.cancel_requested is not None and run.answer is None:
                self.runner.cancel_run(run.id)  # (False: not held here)
                continue
            answer_held(self.runner, run)

    def _unavailable(self, run: RunRow, reason: str, task: TaskDefinition | str | None) -> None:
        """Cancel ``run``: its task, or its own record, cannot be read; told as any end, and
        followed as any cancel is (``on: finished``), in the flush that writes it."""
        now = self.clock()
        change = settled(
            run.id, RunStatus.CANCELLED, now=now, kind="TaskUnavailable", message=reason
        )
        self.run_log.end(run.task_id, change)
        tell_end(self.events, run, change, task)

    def _pick_up_changes(self) -> None:
        """Start runs requested elsewhere (``run`` from the CLI), resume runs answered
        elsewhere, and drop waiting runs of tasks removed elsewhere (those of tasks edited
        elsewhere take the edit)."""
        if self.shared is None:
            self._take_answers()
        requested = [
            run
            for run in self.store.list_runs(statuses=[RunStatus.QUEUED], limit=None)
            if run.trigger == RunTrigger.MANUAL
            and run.worker is None
            and not self.runner.knows(run.id)
        ]
        waiting = self.runner.task_ids()
        if not requested and not waiting:
            return
        with self.store.transaction(wait=False) as tx:  # (busy: the next poll tries again)
            rows = tx.get_tasks({r.task_id for r in requested} | waiting)
            ended = ended_elsewhere(tx, self.runner.waiting_ids())
        self.runner.let_go_ended(ended)  # (its task removed, even if added again since)
        for task_id in waiting - rows.keys():
            self.runner.forget_task(task_id, "the task was removed")
        tasks = self._definitions.loadable(rows.values())
        self.runner.retask(tasks)
        for task_id in [row.id for row in rows.values() if row.paused]:
            self.runner.pause_task(task_id)  # (paused elsewhere: its runs not started)
        shares: list[tuple[str, TaskDefinition]] = []
        for run in requested:
            task = tasks.get(run.task_id)
            if task is None or run.problem is not None:
                self._unavailable(run, "its task is gone or unloadable", task)
                continue
            if self.shared is not None:
                shares.append((run.id, task))
                continue
            self.runner.submit(
                PendingRun(
                    run_id=run.id,
                    task=task,
                    scheduled_for=run.scheduled_for,
                    trigger=RunTrigger.MANUAL,
                )
            )
        if shares and self.shared is not None:
            check = self._fence() if self._reaps else None
            with self.store.transaction(check) as tx:  # a run now ignores the overlap policy
                self.shared.share(tx, shares, overlap=False)
                self.shared.end(tx)


def answer_held(runner: Runner, run: RunRow) -> None:
    """Resume ``run`` with the answer recorded for it (by any process) if it waits in
    ``runner``; one that does not read as JSON is refused."""
    if run.answer is None or not runner.is_waiting(run.id):
        return
    try:
        value = load_json(run.answer, what="the stored answer")
    except DocumentError as exc:
        runner.refuse_answer(run.id, str(exc))
        return
    runner.answer(run.id, value)
