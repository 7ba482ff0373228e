"""The changes of one write transaction on the task table (:class:`TaskChanges`), and the
report of a sync (:class:`SyncReport`). Opened only by :meth:`TaskWrites._changing
<scheduler.writes.TaskWrites._changing>`, the one write path."""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from scheduler.dependencies.graph import check_links, check_removal
from scheduler.enums import RunStatus, TaskType
from scheduler.exceptions import (
    DefinitionError,
    TaskExistsError,
    TaskNotFoundError,
    TaskSourceConflictError,
)
from scheduler.missed import due_occurrences, missed_record
from scheduler.models import TaskDefinition
from scheduler.rows import decode, run_time_after, settled, task_row_for
from scheduler.settings import Settings
from scheduler.storage import RunRow, Store, TaskRow, Transaction

__all__ = ["API_SOURCE", "SyncReport", "TaskChanges", "tried_changes"]

API_SOURCE = "api"


@dataclass
class SyncReport:
    """What :meth:`TaskScheduler.sync_tasks <scheduler.TaskScheduler.sync_tasks>` changed
    (task ids in each list)."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> str:
        """``2 added, 1 unchanged`` ..."""
        parts = [
            f"{len(getattr(self, name))} {name}"
            for name in ("added", "updated", "unchanged", "removed", "kept")
            if getattr(self, name)
        ]
        return ", ".join(parts) or "no tasks"


class TaskChanges:
    """The changes of one write transaction (see the module docstring).

    Args:
        tx: The transaction.
        settings: Defaults for new rows (time zone, catch-up window).
        now: The time of the change (UNIX seconds).
    """

    def __init__(self, tx: Transaction, *, settings: Settings, now: float) -> None:
        self.tx = tx
        self.settings = settings
        self.now = now
        self.changed = False
        self.links_changed = False  # some task's after links were written or removed
        self.removed: list[str] = []
        self.replaced: dict[str, TaskDefinition] = {}  # runs of these not started take them
        self.paused: list[str] = []  # runs of these not started are skipped (but manual ones)
        self.only_inserts = True  # nothing but new tasks: the dispatcher need not look now
        self.earliest = float("inf")  # the earliest next run among the new tasks
        self.missed: list[tuple[RunRow, TaskDefinition]] = []  # records to tell, once committed

    def row(self, task_id: str) -> TaskRow:
        """The task's row, locked for the transaction.

        Raises:
            TaskNotFoundError: No such task.
        """
        row = self.tx.get_task(task_id)
        if row is None:
            raise TaskNotFoundError(task_id)
        return row

    def unrun(self, task: TaskDefinition, next_run: float | None, anchor: float) -> float | None:
        """``next_run``, unless that (past or present) occurrence of ``task`` already has its
        run or its missed record: then the next one after it (none for a one-time task).
        Resumed, enabled again or edited at an instant it fired at (a test clock stops on
        fire times), or a one-time task's zone edited for the same instant, an occurrence
        must not run again."""
        if next_run is None or next_run > self.now or not self.tx.has_run_for(task.id, next_run):
            return next_run
        if task.task_type is TaskType.ONE_TIME:
            return None
        return run_time_after(
            task, anchor=anchor, after=next_run, default_timezone=self.settings.timezone
        )

    def record_passed_over(
        self,
        old: TaskRow,
        task: TaskDefinition | None,
        *,
        keeps: float | None,
        removing: bool = False,
    ) -> None:
        """Record ``missed``, in one record, the occurrences of ``old`` that were due (from its
        next run time up to now) and had not run (the scheduler was down, or had not come to
        them yet), when the change does not keep that next run time (``keeps``: the one it
        writes): they would go without a trace. ``task``: the new definition (None: paused,
        or removed when ``removing``). A one-time task paused or disabled keeps its time:
        resuming runs it or records it."""
        due = old.next_run_time
        if due is None or due > self.now or keeps == due:
            return  # nothing due, or it stays due: it runs (or the dispatcher records it)
        try:
            previous = decode(old)
        except DefinitionError:
            return  # the dispatcher never took its occurrences either; the row is reported
        if (
            previous.task_type is TaskType.ONE_TIME
            and not removing
            and (task is None or _same_time(previous, task))
        ):
            return
        default = self.settings.timezone
        found = due_occurrences(previous, old, now=self.now, default_timezone=default)
        if not found.missed:
            return
        change = (
            "removed"
            if removing
            else "paused"
            if task is None
            else "disabled"
            if not task.enabled
            else "rescheduled"
        )
        why = f"were due and had not run when the task was {change}"
        zone = previous.zone(default)
        record = missed_record(previous, found, zone=zone, now=self.now, why=why)
        self.tx.insert_runs([record])
        self.missed.append((record, task or previous))
        self.changed = True

    def put(
        self,
        tasks: Collection[TaskDefinition],
        *,
        source: str | None,
        replace_existing: bool = True,
        removing: Collection[str] = (),
    ) -> list[tuple[TaskRow, bool]]:
        """Write checked tasks; ``source`` None keeps each existing task's source (new ones
        get ``api``). Returns each task's row, in order, and whether it replaced one.
        ``removing``: tasks the same change removes (no task may run after them).

        Raises:
            TaskExistsError: A task exists and ``replace_existing`` is False.
            DependencyError: An ``after`` names no task, or the links make a cycle.
        """
        links = check_links(self.tx, tasks, removing=removing)
        existing = self.tx.get_tasks(task.id for task in tasks)
        inserts: list[TaskRow] = []
        updates: list[TaskRow] = []
        written: list[tuple[TaskRow, bool]] = []
        for task in tasks:
            old = existing.get(task.id)
            if old is not None and not replace_existing:
                raise TaskExistsError(task.id, old.source)
            if (
                old is not None
                and source
                and source != old.source
                and _synced(old.source)
                and not (_is_file(old.source) and _is_file(source))
            ):  # its source owns it: taken over, its sync would fail every time after
                raise TaskSourceConflictError(source, {task.id: old.source})
            origin = source or (old.source if old is not None else API_SOURCE)
            row = task_row_for(task, old, now=self.now, source=origin, settings=self.settings)
            if old is not None:  # an occurrence that ran: a change does not repeat it
                row.next_run_time = self.unrun(task, row.next_run_time, row.anchor)
                self.record_passed_over(old, task, keeps=row.next_run_time)
            (updates if old is not None else inserts).append(row)
            if old is not None:
                self.replaced[task.id] = task
            written.append((row, old is not None))
            if row.next_run_time is not None:
                self.earliest = min(self.earliest, row.next_run_time)
        self.only_inserts = self.only_inserts and not updates
        self.tx.insert_tasks(inserts)
        self.tx.update_tasks(updates)
        # the link tables are touched only when links come or may go (an old version had some)
        if links or any('"after"' in old.definition for old in existing.values()):
            self.tx.set_links([task.id for task in tasks], links)
            self._drop_stale_waits([task for task in tasks if task.id in existing])
            self.links_changed = True
        self.changed = self.changed or bool(written)
        return written

    def _drop_stale_waits(self, replaced: Iterable[TaskDefinition]) -> None:
        """Forget the outcomes recorded toward each replaced task that its ``after`` no
        longer counts (``on: succeeded`` became ``on: failed``; ``mode: any``, or a single
        upstream, keeps none: a run on it starts each round): they were recorded under the
        old condition."""
        for task in replaced:
            if task.after is None:
                continue  # set_links dropped them all
            keeps_none = task.after.mode == "any" or len(task.after.tasks) == 1
            for upstream, (_, status, _) in self.tx.waits_of(task.id).items():
                if keeps_none or not task.after.fires_on(RunStatus(status)):
                    self.tx.clear_waits(task.id, upstream)

    def sync(
        self,
        tasks: Sequence[TaskDefinition],
        *,
        source: str,
        removed: Literal["remove", "keep"] = "remove",
    ) -> SyncReport:
        """Make the tasks of ``source`` exactly ``tasks``: add new ones, update changed ones
        (keeping their paused state), leave identical ones alone, and remove (or keep) the
        ones of ``source`` that are not in ``tasks``.

        Tasks of another file may be taken over (a renamed tasks file); tasks of any other
        source may not.

        Raises:
            TaskSourceConflictError: Some ids belong to tasks of another source (the API,
                the CLI); nothing was changed.
        """
        existing = self.tx.get_tasks(task.id for task in tasks)
        conflicts = {
            task_id: row.source
            for task_id, row in existing.items()
            if row.source != source and not (_is_file(row.source) and _is_file(source))
        }
        if conflicts:
            raise TaskSourceConflictError(source, conflicts)
        report = SyncReport()
        to_write: list[TaskDefinition] = []
        for task in tasks:
            row = existing.get(task.id)
            if row is None:
                report.added.append(task.id)
                to_write.append(task)
                continue
            try:  # (a task of another file taken over is written: its source changes)
                same = decode(row) == task and row.source == source
            except DefinitionError:
                same = False
            (report.unchanged if same else report.updated).append(task.id)
            if not same:
                to_write.append(task)
        wanted = {task.id for task in tasks}
        gone = sorted(row.id for row in self.tx.tasks_from_source(source) if row.id not in wanted)
        self.put(to_write, source=source, removing=gone if removed == "remove" else ())
        if removed == "remove":
            self.delete(gone)
            report.removed.extend(gone)
        else:
            report.kept.extend(gone)
        return report

    def delete(self, task_ids: Collection[str], *, force: bool = False) -> int:
        """Delete tasks (their history stays); returns how many existed.

        Raises:
            DependencyError: Other tasks run after one of them (unless ``force``).
        """
        if not force:
            check_removal(self.tx, task_ids)
        for row in self.tx.get_tasks(task_ids).values():  # their due occurrences, recorded
            self.record_passed_over(row, None, keeps=None, removing=True)
        for downstream, upstream in self.tx.links_from(task_ids):  # (forced: they wait on)
            self.tx.clear_waits(downstream, upstream)  # a task re-added under the id starts anew
        self.tx.delete_links_of(task_ids)
        self.links_changed = True
        # their runs waiting for an answer or to start end here, in this transaction: an
        # answer recorded after it is refused (not accepted, then lost when the run is
        # cancelled), and a task added again under the id does not run the old one
        gone = set(task_ids)
        open_runs = self.tx.runs_with_status(["waiting", "queued"])
        waiting = [r.id for r in open_runs if r.task_id in gone]
        self.tx.update_runs(
            [settled(i, RunStatus.CANCELLED, now=self.now, kind="TaskRemoved",
                     message="the task was removed") for i in waiting]
        )  # fmt: skip
        deleted = self.tx.delete_tasks(task_ids)
        if deleted:
            self.changed = True
            self.only_inserts = False
            self.removed.extend(task_ids)
        return deleted

    def update(self, row: TaskRow) -> None:
        """Write a changed row (paused state, next run time, definition)."""
        row.updated_at = self.now
        self.tx.update_tasks([row])
        self.changed = True
        self.only_inserts = False

    def add_runs(self, runs: Sequence[RunRow]) -> None:
        """Insert run records that the active scheduler must pick up (a manual run)."""
        self.tx.insert_runs(runs)
        self.changed = True
        self.only_inserts = False


class _RolledBack(Exception):
    """Ends the transaction of :func:`tried_changes`."""


@contextlib.contextmanager
def tried_changes(store: Store, *, settings: Settings, now: float) -> Iterator[TaskChanges]:
    """Changes tried in a transaction that is then rolled back: what the write would
    refuse (a link, a source, an id taken) is raised, and nothing is written."""
    with contextlib.suppress(_RolledBack), store.transaction() as tx:
        tx.lock_links()  # (first, as every write of tasks takes it)
        yield TaskChanges(tx, settings=settings, now=now)
        raise _RolledBack


def _is_file(source: str) -> bool:
    return source.startswith("file:")


#: The sources whose tasks are added one by one (``add_task``'s, the CLI's, the HTTP API's
#: and crons', agents'), and the ones under them: any other is a source ``sync_tasks`` keeps
#: (a tasks file's, ``sync_tasks(..., source="my-config")``), whose tasks only it changes.
ADDED_SOURCES = (API_SOURCE, "cli", "http", "agent", "unknown")  # (unknown: a row's unreadable)


def _synced(source: str) -> bool:
    """Tasks of ``source`` are made by ``sync_tasks`` (see :data:`ADDED_SOURCES`)."""
    return not any(source == added or source.startswith(f"{added}:") for added in ADDED_SOURCES)


def _same_time(previous: TaskDefinition, task: TaskDefinition) -> bool:
    """``task`` is one-time at ``previous``'s (one-time) instant."""
    before, after = previous.run_at, task.run_at
    same = before is not None and after is not None and before.timestamp() == after.timestamp()
    return task.task_type is TaskType.ONE_TIME and same
