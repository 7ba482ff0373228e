"""Changing tasks: the write half of :class:`~scheduler.TaskScheduler`, and its one write
path.

Every change to the task table (``add_task``, ``add_tasks``, ``sync_tasks`` for the tasks
file, the CLI's ``add`` and ``edit``, pause, resume, remove, run now) goes through
:meth:`TaskWrites._changing`: one transaction with a
:class:`~scheduler.changeset.TaskChanges`, the change counter bumped inside it when
something changed (so other processes notice), and the running scheduler told after the
commit (with the ids of removed tasks, whose waiting runs it cancels).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from scheduler.assigned import was_assigned
from scheduler.callbacks import CallbackPolicy
from scheduler.changeset import API_SOURCE, SyncReport, TaskChanges, tried_changes
from scheduler.events import EventBus, RunEvent
from scheduler.exceptions import (
    TaskNotFoundError,
)
from scheduler.models import CALLBACK_FIELDS, TaskDefinition
from scheduler.queries import TaskQueries
from scheduler.records import TaskInfo
from scheduler.rows import (
    decode_or_raise,
    encode,
    first_run_time,
    is_completed,
    run_record,
    task_info,
)
from scheduler.settings import Settings
from scheduler.storage import Store, TaskRow, TaskStats
from scheduler.supervisor import Supervisor

__all__ = ["TaskWrites"]

logger = logging.getLogger(__name__)


class TaskWrites(TaskQueries):
    """The changing half of :class:`~scheduler.TaskScheduler`, on top of its queries."""

    settings: Settings
    _policy: CallbackPolicy
    _store: Store
    _clock: Callable[[], float]
    _supervisor: Supervisor | None
    _events: EventBus

    if TYPE_CHECKING:  # provided by TaskScheduler

        def graph(self) -> Any: ...
        def _notify_changed(
            self,
            *,
            removed: Iterable[str] = (),
            links: bool = True,
            due: float | None = None,
            revision: int | None = None,
            replaced: Mapping[str, TaskDefinition] | None = None,
            paused: Iterable[str] = (),
        ) -> None: ...
        def _on_loop(self, function: Callable[..., Any], *args: Any) -> None: ...

    def add_task(
        self,
        task: TaskDefinition,
        *,
        replace_existing: bool = True,
        source: str | None = API_SOURCE,
    ) -> TaskInfo:
        """Add a task, or replace the one with the same id.

        Replacing keeps the paused state, and keeps the next run time unless the schedule
        changed (occurrences due then that had not run are recorded ``missed``, see
        :meth:`~scheduler.changeset.TaskChanges.record_passed_over`). ``source`` says where
        the task was defined (``list`` shows it: ``api``, ``cli``, ``file:tasks.yaml``);
        None keeps the replaced task's own.

        Raises:
            TaskExistsError: The id exists and ``replace_existing`` is False.
            TaskSourceConflictError: The id is a task of a source that ``sync_tasks``
                keeps (a tasks file's, or any but ``api``, ``cli``, ``http`` and ``agent``
                and those under them) and ``source`` is another; ``None`` changes it.
            CallbackError: A callback is refused by the callback policy, cannot be
                imported or is not callable.
        """
        [(row, replaced)] = self._put([task], replace_existing=replace_existing, source=source)
        if not replaced:  # a new task has no runs yet: no need to read its history back
            return task_info(row, TaskStats())
        self._flush()
        return task_info(row, self._store.task_stats(task.id).get(task.id, TaskStats()))

    def edit_task(self, task_id: str, edit: Callable[[TaskDefinition], TaskDefinition]) -> TaskInfo:
        """Change a task from its definition as it is now, in one transaction, so that no
        change made by another caller in between is lost and a task removed in between
        stays removed: ``edit`` gets the definition and returns the new one (same id; it
        keeps its source). What ``edit`` raises is raised, with nothing written.

        Raises:
            TaskNotFoundError: No such task.
            TaskNotRunnableError: Its stored definition cannot be loaded.
            CallbackError: As for :meth:`add_task`.
        """
        with self._changing() as changes:
            task = self._validated(edit(decode_or_raise(changes.row(task_id))))
            if task.id != task_id:
                raise ValueError(f"id: a task's id cannot change ({task_id!r} to {task.id!r})")
            [(row, _)] = changes.put(self._checked([task]), source=None)
        self._flush()
        return task_info(row, self._store.task_stats(task_id).get(task_id, TaskStats()))

    def _validated(self, task: TaskDefinition) -> TaskDefinition:
        """``task`` validated again, as the CLI's ``edit`` does: ``model_copy(update=...)``,
        the usual edit, checks nothing, and a definition its row cannot load back (an
        interval of 0, a ``start_date`` on a one-time task) was written, never to fire."""
        if not isinstance(task, TaskDefinition):
            raise TypeError(f"edit must return a TaskDefinition, got {type(task).__name__}")
        context = {"timezone": self.settings.timezone}
        fields = task.model_dump(warnings=False)  # (a field set raw, ``after=["a"]``, as is)
        checked = TaskDefinition.model_validate(fields, context=context)
        checked._pending_wall_clock = task._pending_wall_clock  # (``today at 9:00``)
        return checked

    def add_tasks(
        self,
        tasks: Iterable[TaskDefinition],
        *,
        replace_existing: bool = True,
        source: str | None = API_SOURCE,
    ) -> None:
        """Add or replace many tasks in one transaction: all of them, or none."""
        self._put(tasks, replace_existing=replace_existing, source=source)

    def _put(
        self, tasks: Iterable[TaskDefinition], *, replace_existing: bool, source: str | None
    ) -> list[tuple[TaskRow, bool]]:
        checked = self._checked(tasks)
        with self._changing() as changes:
            return changes.put(checked, source=source, replace_existing=replace_existing)

    def sync_tasks(
        self,
        tasks: Iterable[TaskDefinition],
        *,
        source: str,
        removed: Literal["remove", "keep"] = "remove",
    ) -> SyncReport:
        """Make the tasks of ``source`` (e.g. ``file:tasks.yaml``) exactly ``tasks``, in one
        transaction: new ones are added, changed ones updated (keeping their paused state),
        identical ones left alone, and tasks of ``source`` that are not in ``tasks``
        removed (or kept, ``removed="keep"``). What the tasks file does at every start.

        Raises:
            TaskSourceConflictError: An id belongs to a task of another source; nothing
                was changed.
            CallbackError: As for :meth:`add_task`.
        """
        checked = self._checked(tasks)
        with self._changing() as changes:
            return changes.sync(checked, source=source, removed=removed)

    def check_task(
        self,
        task: TaskDefinition,
        *,
        replace_existing: bool = True,
        source: str | None = API_SOURCE,
        import_callbacks: bool = True,
    ) -> None:
        """Check ``task`` as :meth:`add_task` with these arguments does, writing nothing:
        its callbacks against the callback policy, imported (or, with
        ``import_callbacks=False``, found without running any module code), its times in
        its time zone, and what the write itself refuses (an id of another source's task,
        an ``after`` link, an id taken), tried in a transaction rolled back.

        Raises:
            CallbackError: A callback is refused, cannot be found or is not callable.
            pydantic.ValidationError, ScheduleError: A time in a DST gap, ``today at``
                passed.
            TaskSourceConflictError, DependencyError, TaskExistsError: As ``add_task``.
        """
        checked = self._checked([task], import_callbacks=import_callbacks)
        with tried_changes(self._store, settings=self.settings, now=self._clock()) as changes:
            changes.put(checked, source=source, replace_existing=replace_existing)

    def check_callbacks(self, task: TaskDefinition, *, import_callbacks: bool = True) -> None:
        """Check the callbacks of ``task`` against the callback policy, imported (or, with
        ``import_callbacks=False``, found without running any module code).

        Raises:
            CallbackError: A callback is refused, cannot be found or is not callable.
        """
        if not isinstance(task, TaskDefinition):
            raise TypeError(f"expected a TaskDefinition, got {type(task).__name__}")
        for name in CALLBACK_FIELDS:
            path = getattr(task, name)
            if path and import_callbacks:
                self._policy.resolve(path, field=name)
            elif path:
                self._policy.check_statically(path, field=name)

    def _checked(
        self, tasks: Iterable[TaskDefinition], *, import_callbacks: bool = True
    ) -> list[TaskDefinition]:
        """``tasks`` checked, with their time zone filled in from the settings."""
        checked = []
        for task in tasks:
            self.check_callbacks(task, import_callbacks=import_callbacks)
            if was_assigned(task):  # (a field set in place: what it asks of the others)
                task = self._validated(task)
            checked.append(task.with_timezone(self.settings.timezone))
        ids = [task.id for task in checked]
        if len(set(ids)) != len(ids):
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"task ids appear more than once: {', '.join(duplicates)}")
        return checked

    def remove_task(self, task_id: str, *, force: bool = False) -> None:
        """Remove a task. Its history stays; its runs that have not started are cancelled.

        Raises:
            TaskNotFoundError: No such task.
            DependencyError: Other tasks run after it (their ``after`` names it); ``force``
                removes it anyway, and they wait for a task that is gone.
        """
        self.remove_tasks([task_id], force=force)

    def remove_tasks(self, task_ids: Iterable[str], *, force: bool = False) -> None:
        """Remove several tasks at once, all or none (see :meth:`remove_task`); tasks that
        run after one another can go together without ``force``.

        Raises:
            TaskNotFoundError: One of them does not exist (nothing is removed).
            DependencyError: Tasks not among them run after one of them.
        """
        ids = list(dict.fromkeys(task_ids))
        with self._changing() as changes:
            for task_id in ids:
                if changes.tx.get_task(task_id) is None:
                    raise TaskNotFoundError(task_id)
            changes.delete(ids, force=force)

    def pause_task(self, task_id: str) -> TaskInfo:
        """Stop a task from firing until :meth:`resume_task`. Its occurrences due that had
        not run (the scheduler was down) are recorded ``missed``; a one-time task keeps its
        time instead (resuming it runs it, or records it missed). Its runs not started are
        skipped, a one-time task's that fired too (resuming it does not run that
        occurrence again: it has its record). A completed task stays as it is.

        Raises:
            TaskNotFoundError: No such task.
        """
        with self._changing() as changes:
            row = changes.row(task_id)
            # no next run is not done yet while a run is not final: a one-time task that
            # fired, its run queued for a slot or a turn (or going, then retried), is
            # paused as any task is, so that run is skipped wherever it waits
            if not is_completed(row) or changes.tx.has_unfinished_runs(task_id):
                changes.record_passed_over(row, None, keeps=None)
                row.paused = True
                row.next_run_time = None
                changes.update(row)
                changes.paused.append(task_id)
        return self.get_task(task_id)

    def resume_task(self, task_id: str) -> TaskInfo:
        """Let a paused or disabled task fire again, from its next occurrence.

        A paused one-time task whose time passed while paused runs at once if it is still
        inside the catch-up window, and is recorded ``missed`` otherwise.

        Raises:
            TaskNotFoundError: No such task.
            TaskNotRunnableError: Its stored definition cannot be loaded.
        """
        with self._changing() as changes:
            row = changes.row(task_id)
            task = decode_or_raise(row)
            if row.paused or not task.enabled:
                if not task.enabled:
                    task = task.model_copy(update={"enabled": True})
                    row.definition = encode(task)
                row.paused = False
                first = first_run_time(
                    task,
                    anchor=row.anchor,
                    now=changes.now,
                    default_timezone=self.settings.timezone,
                )
                row.next_run_time = changes.unrun(task, first, row.anchor)
                changes.update(row)
        return self.get_task(task_id)

    def _task_row(self, task_id: str) -> TaskRow:
        row = self._store.get_task(task_id)
        if row is None:
            raise TaskNotFoundError(task_id)
        return row

    @contextmanager
    def _changing(self) -> Iterator[TaskChanges]:
        """The one write path for tasks (see :mod:`scheduler.writes`)."""
        with self._store.transaction() as tx:
            # the link checks need it, and first: taken after a row lock it would deadlock
            # with a writer that holds it and waits for that row
            tx.lock_links()
            changes = TaskChanges(tx, settings=self.settings, now=self._clock())
            yield changes
            revision = None
            if changes.changed:
                tx.bump_revision()
                if changes.only_inserts and not changes.links_changed:
                    revision = tx.revision()  # the running scheduler need not reload for it
        if changes.changed:
            self._notify_changed(
                removed=changes.removed,
                links=changes.links_changed,
                due=changes.earliest if changes.only_inserts else None,
                revision=revision,
                replaced=changes.replaced,
                paused=changes.paused,
            )
        for record, task in changes.missed:  # (as the dispatcher's: listeners, webhooks)
            if self._events.wants(task):
                self._on_loop(self._events.emit, RunEvent("finished", run_record(record), task))
