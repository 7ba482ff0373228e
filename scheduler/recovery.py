"""Settling runs whose process is gone: runs left by a previous active scheduler (at
start), and runs held by a worker whose lease ran out (the reaper).

A ``running`` run was cut off: it becomes ``interrupted`` and, when the task's
``max_retries`` allows, is retried as a new attempt. On a LangGraph server (a graph that
adopts, :mod:`scheduler.remote_attempts`), one with no retry left is watched again
instead: its server run, still going or done after the process died, is adopted and its
end recorded on the run itself (no new attempt: the graph is not called again); with no
such run there, it is ``interrupted`` then. A ``queued`` one never reached the
graph (a run's start is committed before the graph is called), so it runs now if still
inside its catch-up window, else it is ``missed``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from scheduler.dependencies.follow import Followers
from scheduler.enums import RunStatus, RunTrigger
from scheduler.events import EventBus, RunEvent
from scheduler.exceptions import DefinitionError
from scheduler.models import TaskDefinition
from scheduler.pending import PendingRun, new_run_id, pending_of, retry_delay, upstream_of
from scheduler.records import RunRecord
from scheduler.rows import decode, queued_run, run_record, settled
from scheduler.runlog import Ended
from scheduler.settings import Settings
from scheduler.storage import RunRow, Store, Transaction
from scheduler.storage.workers import reap_workers
from scheduler.workers.admission import SharedAdmission

__all__ = ["Recovery", "graph_adopts", "tasks_of", "tell_end"]

logger = logging.getLogger("scheduler.supervisor")

_FAILURES = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.INTERRUPTED})
_CUT_OFF = (
    "the scheduler process ended while this run was in flight (crash, kill or power loss); "
    "it is not run again"
)


def tasks_of(tx: Transaction, runs: list[RunRow]) -> dict[str, TaskDefinition | str]:
    """The definitions of the tasks of ``runs``, or why each cannot be had."""
    rows = tx.get_tasks({run.task_id for run in runs})
    tasks: dict[str, TaskDefinition | str] = {}
    for run in runs:
        row = rows.get(run.task_id)
        if run.task_id in tasks:
            continue
        if row is None:
            tasks[run.task_id] = "its task was removed"
            continue
        try:
            tasks[run.task_id] = decode(row)
        except DefinitionError as exc:
            tasks[run.task_id] = f"its task cannot be loaded: {exc}"
    return tasks


def tell_end(
    events: EventBus | None,
    run: RunRow,
    change: dict[str, Any],
    task: TaskDefinition | str | None,
) -> None:
    """Tell the listeners (and the task's webhook) of ``run``, settled by ``change``, as any
    run's end is told; with no task when its definition cannot be had (``task`` is why, or
    None: removed, or its stored record cannot be read; no webhook to read either)."""
    definition = task if isinstance(task, TaskDefinition) else None
    if events is not None and events.wants(definition):
        ended = run_record(dataclasses.replace(run, **change))
        events.emit(RunEvent("finished", ended, definition))


class Recovery:
    """Settles the runs of processes that are gone.

    Args:
        store: The database.
        settings: Defaults (retries, catch-up window).
        clock: UNIX time source.
        followers: Queues the runs that follow a run's final outcome.
        shared: Set on a leader whose runs workers execute: what is resumed is queued for
            them instead of returned.
        events: Where the records settled here are told, as any run's end is.
    """

    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        clock: Callable[[], float],
        followers: Followers,
        shared: SharedAdmission | None,
        events: EventBus | None = None,
    ) -> None:
        self.events = events
        # final failures settled here (interrupted with no retry left, or whose retry was
        # missed), kept for the caller to call their tasks' on_failure_callback once committed
        self._failed: list[tuple[TaskDefinition, RunRow]] = []
        # gives the check of the reaper's transaction (the leader's epoch, as it dispatches)
        self.fence: Callable[[], Callable[[Transaction], None]] | None = None
        # whether the graph adopts its runs on a LangGraph server (asked only when needed)
        self.adopts: Callable[[], bool] = lambda: False
        self.store = store
        self.settings = settings
        self.clock = clock
        self.followers = followers
        self.shared = shared

    def recover(self) -> list[PendingRun]:
        """Settle the runs a previous active scheduler process left (never those of
        workers: the reaper settles theirs); return the runs to start here."""
        now = self.clock()
        resumed: list[PendingRun] = []
        changes: list[dict[str, Any]] = []
        ends: list[tuple[RunRow, dict[str, Any]]] = []
        given_up: list[RunRow] = []  # retries missed: the attempts they retry are final
        self._failed.clear()  # (what a rolled-back try kept)
        self.followers.forget_skips()  # a follow of before, rolled back, told nothing
        # asked before the transaction: it may load the graph (which may open the database)
        adopts = self.shared is None and self._left_running() and self.adopts()
        with self.store.transaction() as tx:
            running = [r for r in tx.runs_with_status([RunStatus.RUNNING]) if r.worker is None]
            queued = [r for r in tx.runs_with_status([RunStatus.QUEUED]) if r.worker is None]
            tasks = tasks_of(tx, [*running, *queued])
            # (one asked to cancel is not watched again: it is cancelled, as asked)
            again = [r for r in running if r.cancel_requested is None]
            watched = self._watched_again(again, tasks) if adopts else []
            resumed += watched
            running = [r for r in running if r.id not in {p.run_id for p in watched}]
            retried, ended = self._interrupt(tx, running, tasks, now, _CUT_OFF, resumed, ends)
            for run in queued:
                loaded = tasks[run.task_id]
                if isinstance(loaded, str) or run.problem is not None:
                    reason = f"its record cannot be read: {run.problem}" if run.problem else loaded
                    changes.append(
                        settled(
                            run.id,
                            RunStatus.CANCELLED,
                            now=now,
                            kind="TaskUnavailable",
                            message=str(reason),
                        )
                    )
                    ends.append((run, changes[-1]))
                    # a cancel, followed as any (on: finished); not if its task is gone
                    ended.append(Ended(run.task_id, run.id, RunStatus.CANCELLED, now))
                    continue
                grace = loaded.misfire_grace_seconds
                if grace is None:
                    grace = self.settings.misfire_grace_seconds
                since = max(run.scheduled_for, run.not_before or 0.0)
                if run.trigger == RunTrigger.MANUAL:
                    since = max(since, run.queued_at)
                if now - since > grace:
                    message = (
                        "queued when the scheduler stopped; now outside the catch-up window "
                        f"of {grace:g} s"
                    )
                    changes.append(
                        settled(run.id, RunStatus.MISSED, now=now, kind="Missed", message=message)
                    )
                    ends.append((run, changes[-1]))
                    if run.trigger == RunTrigger.RETRY and run.retry_of is not None:
                        given_up.append(run)
                    continue
                resumed.append(pending_of(run, loaded))
            tx.update_runs(changes)
            ended += self._given_up(tx, given_up, tasks, now)
            resumed += self.followers.follow(tx, ended) if ended else []  # (once: its skips)
            resumed = self._handed_over(tx, resumed)
        self._tell(ends, tasks)
        self.followers.emit_skips()
        if running or queued or watched:
            logger.warning(
                "recovered runs left by the previous process: %d interrupted (%d retried as a "
                "new attempt), %d watched again on the LangGraph server, %d queued run(s) "
                "resumed, %d settled otherwise",
                len(running),
                retried,
                len(watched),
                len(queued) - len(changes),
                len(changes),
            )
        return resumed

    def reap(self, lease: float) -> int:
        """Settle the runs of workers whose heartbeat is older than ``lease`` seconds:
        running ones ``interrupted`` (and retried per policy, by any worker), the ones they
        held but had not started back to any worker. Returns how many workers were gone."""
        now = self.clock()
        check = self.fence() if self.fence is not None else None
        self._failed.clear()
        self.followers.forget_skips()
        with self.store.transaction(check) as tx:
            dead, running, released = reap_workers(tx, lease=lease)
            if not dead:
                return 0
            tasks = tasks_of(tx, running)
            names = ", ".join(dead)
            message = (
                f"worker {names} stopped renewing its lease (killed, crashed or cut off) while "
                "this run was in flight; it is not run again"  # (each by its own lease)
            )
            resumed: list[PendingRun] = []
            ends: list[tuple[RunRow, dict[str, Any]]] = []
            retried, ended = self._interrupt(tx, running, tasks, now, message, resumed, ends)
            resumed += self.followers.follow(tx, ended) if ended else []
            self._handed_over(tx, resumed, force_share=True)
        self._tell(ends, tasks)
        self.followers.emit_skips()
        logger.warning(
            "worker(s) %s stopped renewing their lease: %d run(s) interrupted (%d retried as a "
            "new attempt), %d queued or waiting run(s) released to the other workers",
            names,
            len(running),
            retried,
            released,
        )
        return len(dead)

    def _interrupt(
        self,
        tx: Transaction,
        running: list[RunRow],
        tasks: dict[str, TaskDefinition | str],
        now: float,
        message: str,
        resumed: list[PendingRun],
        ends: list[tuple[RunRow, dict[str, Any]]],
    ) -> tuple[int, list[Ended]]:
        """Record ``running`` interrupted (each added to ``ends`` with its change) and insert
        their retries (added to ``resumed``). Returns how many are retried, and the final
        outcomes, for the caller to follow (once per transaction: a follow tells only its
        own skipped records)."""
        changes: list[dict[str, Any]] = []
        retries: list[RunRow] = []
        ended: list[Ended] = []
        for run in running:
            if run.cancel_requested is not None:  # the user's own end, asked before it died:
                # not retried, no failure (it was interrupted, retried, and its failure
                # callback called)
                changes.append(settled(run.id, RunStatus.CANCELLED, now=now, kind="Cancelled",
                                       message=f"cancelled as asked ({message})"))  # fmt: skip
                ends.append((run, changes[-1]))
                ended.append(Ended(run.task_id, run.id, RunStatus.CANCELLED, now))
                continue
            changes.append(
                settled(run.id, RunStatus.INTERRUPTED, now=now, kind="Interrupted", message=message)
            )
            ends.append((run, changes[-1]))
            retry = self._retry_of(run, tasks.get(run.task_id), now)
            if retry is not None:
                retries.append(retry[0])
                resumed.append(retry[1])
            else:
                ended.append(Ended(run.task_id, run.id, RunStatus.INTERRUPTED, now))
                if isinstance(task := tasks.get(run.task_id), TaskDefinition):
                    self._failed.append((task, dataclasses.replace(run, **changes[-1])))
        tx.update_runs(changes)
        tx.insert_runs(retries)
        return len(retries), ended

    def _watched_again(
        self, running: list[RunRow], tasks: dict[str, TaskDefinition | str]
    ) -> list[PendingRun]:
        """The runs of ``running`` with no retry left, to watch again here when the graph
        adopts runs on a LangGraph server (their own there, still going or done after the
        process died), rather than recorded ``interrupted`` with that run unwatched."""
        kept = [
            pending_of(run, task, thread_id=run.thread_id, reattach=True)
            for run in running
            if isinstance(task := tasks.get(run.task_id), TaskDefinition)
            and run.problem is None
            and run.thread_id is not None
            and run.attempt > (task.max_retries if task.max_retries is not None else
                               self.settings.max_retries)
        ]  # fmt: skip
        return kept

    def _left_running(self) -> bool:
        """A run of this process's (no worker's) is found ``running``."""
        runs = self.store.list_runs(statuses=[RunStatus.RUNNING], limit=None)
        return any(run.worker is None for run in runs)

    def _given_up(
        self,
        tx: Transaction,
        missed: list[RunRow],
        tasks: dict[str, TaskDefinition | str],
        now: float,
    ) -> list[Ended]:
        """Retries ``missed`` (outside their catch-up window) will not run: the attempts
        they retry are the final outcomes, returned to be followed (a fallback on
        ``failed`` learns that its upstream failed)."""
        if not missed:
            return []
        stored = tx.run_statuses([run.retry_of for run in missed if run.retry_of is not None])
        ended = [
            Ended(run.task_id, run.retry_of, RunStatus(stored[run.retry_of]), now)
            for run in missed
            if run.retry_of is not None
            and stored.get(run.retry_of) in RunStatus._value2member_map_
            and RunStatus(stored[run.retry_of]).is_final
        ]
        for end in ended:  # the attempt that failed is the task's last word
            attempt = tx.get_run(end.run_id) if end.status in _FAILURES else None
            if attempt is not None and isinstance(task := tasks.get(end.task_id), TaskDefinition):
                self._failed.append((task, attempt))
        return ended

    def take_failed(self) -> list[tuple[TaskDefinition, RunRecord]]:
        """The final failures settled since the last call (of tasks that can be loaded), for
        their ``on_failure_callback``: a crash must not silence it."""
        failed, self._failed = self._failed, []
        return [(task, run_record(run)) for task, run in failed]

    def _tell(
        self, ends: list[tuple[RunRow, dict[str, Any]]], tasks: dict[str, TaskDefinition | str]
    ) -> None:
        """Once committed: each record settled here goes to the listeners (and webhooks)."""
        for run, change in ends:
            tell_end(self.events, run, change, tasks.get(run.task_id))

    def _handed_over(
        self, tx: Transaction, resumed: list[PendingRun], *, force_share: bool = False
    ) -> list[PendingRun]:
        """With workers, queue ``resumed`` for them and return nothing to start here."""
        shared = self.shared
        if shared is None and force_share:
            shared = SharedAdmission(self.settings)
        if shared is None:
            return resumed
        shared.share(tx, [(p.run_id, p.task) for p in resumed], overlap=False)
        shared.end(tx)
        return []

    def _retry_of(
        self, run: RunRow, task: TaskDefinition | str | None, now: float
    ) -> tuple[RunRow, PendingRun] | None:
        """The retry of an interrupted run, when its task's retry policy allows one."""
        if not isinstance(task, TaskDefinition) or run.problem is not None:
            return None
        max_retries = task.max_retries
        if max_retries is None:
            max_retries = self.settings.max_retries
        if run.attempt > max_retries:
            return None
        delay = retry_delay(
            run.attempt,
            base=task.retry_delay_seconds or self.settings.retry_delay_seconds,
            cap=self.settings.retry_max_delay_seconds,
        )
        pending = PendingRun(
            run_id=new_run_id(),
            task=task,
            scheduled_for=run.scheduled_for,
            attempt=run.attempt + 1,
            trigger=RunTrigger.RETRY,
            not_before=now + delay,
            upstream=upstream_of(run)[0],
            retry_of=run.id,
        )
        row = queued_run(
            pending.run_id,
            task.id,
            scheduled_for=pending.scheduled_for,
            queued_at=now,
            trigger=RunTrigger.RETRY,
            attempt=pending.attempt,
            not_before=pending.not_before,
            upstream=pending.upstream,
            thread_id=task.thread_id,  # (on its thread while queued, as a retry queued live)
            retry_of=run.id,
        )
        return row, pending


def graph_adopts(graph: Callable[[], Any]) -> bool:
    """The graph adopts its runs on a LangGraph server (``aadopt``), so that a run left
    running with no retry left is watched again (one that cannot be loaded: no)."""
    try:
        return callable(getattr(graph(), "aadopt", None))
    except Exception:  # (the runs find out, and record why)
        return False
