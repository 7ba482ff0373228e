"""``TaskScheduler``: the public API for adding, changing, running and inspecting tasks."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from datetime import UTC, datetime
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any

from scheduler import gcfreeze
from scheduler.codec import DefinitionError, decode, encode
from scheduler.exceptions import (
    RunNotFoundError,
    SchedulerNotRunningError,
    TaskExistsError,
    TaskNotFoundError,
    TaskNotRunnableError,
)
from scheduler.graphs import default_graph_target, load_graph
from scheduler.models import RunStatus, TaskDefinition
from scheduler.records import (
    RunRecord,
    RunTrigger,
    TaskInfo,
    run_record_from_row,
    task_info_from_row,
)
from scheduler.runner import PendingRun, new_run_id
from scheduler.settings import Settings, sqlite_url
from scheduler.storage import RunRow, Store, TaskRow, TaskStats, Transaction
from scheduler.supervisor import Supervisor
from scheduler.taskrows import build_row, first_run_time, is_completed
from scheduler.triggers import fire_times

__all__ = ["TaskScheduler"]

logger = logging.getLogger(__name__)

API_SOURCE = "api"


class TaskScheduler:
    """Runs a LangGraph graph on cron, interval and one-time schedules.

    Definitions, paused state, next run times and run history live in one database
    (a SQLite file by default), so they survive restarts. Every method that changes or
    reads tasks is safe to call from any thread, also while tasks fire.

    Args:
        persistent: Keep everything in a database file; False keeps it in memory.
        db_path: The SQLite file (when ``persistent`` and no ``database_url``).
        database_url: Any SQLAlchemy URL; wins over ``db_path``.
        graph: The graph to invoke (anything with ``ainvoke``); default: the target in
            ``settings.graph``, loaded at start.
        settings: Settings (default: read from the environment and ``.env``).

    Example:
        >>> async with TaskScheduler(graph=graph) as scheduler:  # doctest: +SKIP
        ...     scheduler.add_task(TaskDefinition(id="hi", interval_seconds=60, prompt="Hi"))
    """

    def __init__(
        self,
        persistent: bool = True,
        db_path: str | PathLike[str] = "scheduler.db",
        *,
        database_url: str | None = None,
        graph: Any = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        self.callback_policy = self.settings.callback_policy()
        url = database_url or (sqlite_url(db_path) if persistent else "sqlite://")
        self.store = Store(url, busy_timeout=self.settings.sqlite_busy_timeout_seconds)
        self._graph_object = graph
        self._graph_lock = threading.Lock()
        self._supervisor: Supervisor | None = None
        self._gc_frozen = False
        self._clock: Callable[[], float] = time.time

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, graph: Any = None) -> TaskScheduler:
        """A scheduler whose database comes from ``settings`` (``SCHEDULER_DATABASE_URL``
        or ``SCHEDULER_DB_PATH``), as ``main.py`` and the CLI use it."""
        settings = settings if settings is not None else Settings()
        return cls(
            db_path=settings.db_path,
            database_url=settings.database_url,
            graph=graph,
            settings=settings,
        )

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start scheduling (call inside a running event loop).

        Loads the graph, settles runs left by a crashed process, and starts firing. If
        another process is already active on the same database, this one stands by and
        takes over when that one stops (see :mod:`scheduler.leader`).
        """
        if self._supervisor is not None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise SchedulerNotRunningError(
                "start() (inside a running event loop, e.g. from an async def)"
            ) from None
        self.store.setup()
        self.graph()  # fail now, not at the first firing
        supervisor = Supervisor(
            store=self.store,
            settings=self.settings,
            graph=self.graph,
            prune=self.prune_history,
            clock=self._clock,
        )
        supervisor.start()
        self._supervisor = supervisor
        if self.settings.gc_freeze:
            gcfreeze.hold()
            self._gc_frozen = True

    async def stop(self, *, grace_seconds: float | None = None) -> None:
        """Stop firing; let running runs finish for ``grace_seconds`` (default
        ``settings.stop_grace_seconds``), then cancel the rest, recorded ``cancelled``.
        Runs that had not started stay queued and run at the next start."""
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is None:
            return
        grace = self.settings.stop_grace_seconds if grace_seconds is None else grace_seconds
        try:
            await supervisor.stop(grace)
        finally:
            if self._gc_frozen:
                self._gc_frozen = False
                gcfreeze.release()
        logger.info("scheduler stopped")

    def close(self) -> None:
        """Close the database connections (after :meth:`stop`; reopened on next use)."""
        if self._supervisor is not None:
            raise RuntimeError("close() after stop(): the scheduler is still running")
        self.store.close()

    async def __aenter__(self) -> TaskScheduler:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        """Started and not stopped (active or standing by)."""
        return self._supervisor is not None

    @property
    def active(self) -> bool:
        """This process is the one firing tasks on its database."""
        return self._supervisor is not None and self._supervisor.active

    def graph(self) -> Any:
        """The graph runs invoke (loaded from ``settings.graph`` on first use)."""
        if self._graph_object is None:
            with self._graph_lock:
                if self._graph_object is None:
                    target = self.settings.graph or default_graph_target(Path.cwd())
                    self._graph_object = load_graph(target)
        return self._graph_object

    def cancel_running_runs(self) -> None:
        """Cancel every run in flight in this process now (recorded ``cancelled``)."""
        supervisor = self._supervisor
        if supervisor is not None:
            self._on_loop(supervisor.runner.cancel_running)

    def prune_history(self) -> int:
        """Delete final run records beyond ``history_max_runs`` per task or older than
        ``history_max_age_days`` (the running scheduler does this every 10 minutes).
        Returns how many were deleted."""
        days = self.settings.history_max_age_days
        older_than = self._clock() - days * 86400 if days else None
        self._flush()
        with self.store.transaction() as tx:
            return tx.prune_runs(
                keep_per_task=self.settings.history_max_runs, older_than=older_than
            )

    async def wait_idle(self) -> None:
        """Wait until no run is queued or running in this process."""
        if self._supervisor is None:
            raise SchedulerNotRunningError("wait_idle()")
        await self._supervisor.runner.wait_idle()

    # -- changing tasks -------------------------------------------------------------------

    def add_task(self, task: TaskDefinition, *, replace_existing: bool = True) -> TaskInfo:
        """Add a task, or replace the one with the same id.

        Replacing keeps the paused state, and keeps the next run time unless the schedule
        changed.

        Raises:
            TaskExistsError: The id exists and ``replace_existing`` is False.
            CallbackError: A callback path cannot be imported or is not callable.
        """
        [(row, replaced)] = self._write([task], replace_existing=replace_existing)
        if not replaced:  # a new task has no runs yet: no need to read its history back
            return task_info_from_row(row, TaskStats())
        self._flush()
        return task_info_from_row(row, self.store.task_stats(task.id).get(task.id, TaskStats()))

    def add_tasks(self, tasks: Iterable[TaskDefinition], *, replace_existing: bool = True) -> None:
        """Add or replace many tasks in one transaction: all of them, or none."""
        self._write(tasks, replace_existing=replace_existing)

    def _write(
        self, tasks: Iterable[TaskDefinition], *, replace_existing: bool
    ) -> list[tuple[TaskRow, bool]]:
        """Prepare and write ``tasks`` from the API in one transaction; see :meth:`put_tasks`."""
        prepared = [self.prepare_task(task) for task in tasks]
        ids = [task.id for task in prepared]
        if len(set(ids)) != len(ids):
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"task ids appear more than once: {', '.join(duplicates)}")
        with self.store.transaction() as tx:
            written = self.put_tasks(
                tx, prepared, source=API_SOURCE, replace_existing=replace_existing
            )
            tx.bump_revision()
        self.notify_changed()
        return written

    def put_tasks(
        self,
        tx: Transaction,
        tasks: Collection[TaskDefinition],
        *,
        source: str | None,
        replace_existing: bool = True,
    ) -> list[tuple[TaskRow, bool]]:
        """Write prepared tasks inside ``tx`` (for the tasks file and the CLI). ``source``
        None keeps each existing task's source (new ones get ``api``).

        Returns each task's written row, in order, and whether it replaced an existing one.
        """
        now = self._clock()
        existing = tx.get_tasks(task.id for task in tasks)
        inserts: list[TaskRow] = []
        updates: list[TaskRow] = []
        written: list[tuple[TaskRow, bool]] = []
        for task in tasks:
            old = existing.get(task.id)
            if old is not None and not replace_existing:
                raise TaskExistsError(task.id)
            origin = source or (old.source if old is not None else API_SOURCE)
            row = build_row(task, old, now=now, source=origin, settings=self.settings)
            (updates if old is not None else inserts).append(row)
            written.append((row, old is not None))
        tx.insert_tasks(inserts)
        tx.update_tasks(updates)
        return written

    def remove_task(self, task_id: str) -> None:
        """Remove a task. Its history stays; its runs that have not started are cancelled.

        Raises:
            TaskNotFoundError: No such task.
        """
        with self.store.transaction() as tx:
            if not tx.delete_tasks([task_id]):
                raise TaskNotFoundError(task_id)
            tx.bump_revision()
        self.notify_changed(removed=[task_id])

    def pause_task(self, task_id: str) -> TaskInfo:
        """Stop a task from firing until :meth:`resume_task`.

        Raises:
            TaskNotFoundError: No such task.
        """
        with self.store.transaction() as tx:
            row = self._row_or_raise(tx, task_id)
            if not is_completed(row):
                row.paused = True
                row.next_run_time = None
                row.updated_at = self._clock()
                tx.update_tasks([row])
                tx.bump_revision()
        self.notify_changed()
        return self.get_task(task_id)

    def resume_task(self, task_id: str) -> TaskInfo:
        """Let a paused or disabled task fire again, from its next occurrence.

        A paused one-time task whose time passed while paused runs at once if it is still
        inside the catch-up window, and is recorded ``missed`` otherwise.

        Raises:
            TaskNotFoundError: No such task.
            TaskNotRunnableError: Its stored definition cannot be loaded.
        """
        with self.store.transaction() as tx:
            row = self._row_or_raise(tx, task_id)
            task = self._decode_or_raise(row)
            if row.paused or not task.enabled:
                if not task.enabled:
                    task = task.model_copy(update={"enabled": True})
                    row.definition = encode(task)
                now = self._clock()
                row.paused = False
                row.next_run_time = first_run_time(
                    task, anchor=row.anchor, now=now, default_timezone=self.settings.timezone
                )
                row.updated_at = now
                tx.update_tasks([row])
                tx.bump_revision()
        self.notify_changed()
        return self.get_task(task_id)

    def run_task_now(self, task_id: str) -> str:
        """Queue a run of the task now, whatever its schedule or paused state; returns the
        run id. The active scheduler starts it (also one in another process)."""
        now = self._clock()
        run_id = new_run_id()
        with self.store.transaction() as tx:
            row = self._row_or_raise(tx, task_id)
            task = self._decode_or_raise(row)
            tx.insert_runs(
                [
                    RunRow(
                        id=run_id,
                        task_id=task_id,
                        scheduled_for=now,
                        queued_at=now,
                        status=RunStatus.QUEUED.value,
                        trigger=RunTrigger.MANUAL.value,
                    )
                ]
            )
            tx.bump_revision()
        supervisor = self._supervisor
        if supervisor is not None and supervisor.active:
            pending = PendingRun(run_id, task, now, trigger=RunTrigger.MANUAL)
            self._on_loop(supervisor.runner.submit, pending)
        logger.info("task %s run %s requested", task_id, run_id)
        return run_id

    # -- reading --------------------------------------------------------------------------

    def get_task(self, task_id: str) -> TaskInfo:
        """One task with its state, next run and latest run.

        Raises:
            TaskNotFoundError: No such task.
        """
        self._flush()
        row = self.store.get_task(task_id)
        if row is None:
            raise TaskNotFoundError(task_id)
        stats = self.store.task_stats(task_id).get(task_id, TaskStats())
        return task_info_from_row(row, stats)

    def list_tasks(self) -> list[TaskInfo]:
        """Every task, by id; rows that cannot be loaded are listed with ``state='error'``."""
        self._flush()
        stats = self.store.task_stats()
        empty = TaskStats()
        return [
            task_info_from_row(row, stats.get(row.id, empty)) for row in self.store.iter_tasks()
        ]

    def next_run_times(self, task_id: str, count: int = 5) -> list[datetime]:
        """The task's next ``count`` fire times as stored and scheduled (none unless active).

        Raises:
            TaskNotFoundError: No such task.
        """
        row = self.store.get_task(task_id)
        if row is None:
            raise TaskNotFoundError(task_id)
        if row.next_run_time is None or row.paused or count <= 0:
            return []
        task = self._decode_or_raise(row)
        if not task.enabled:
            return []
        zone = task.zone(self.settings.timezone)
        first = datetime.fromtimestamp(row.next_run_time, zone)
        trigger = task.build_trigger(
            anchor=datetime.fromtimestamp(row.anchor, UTC), default_timezone=self.settings.timezone
        )
        later = fire_times(trigger, after=first, count=count - 1) if count > 1 else []
        return [first, *(t.astimezone(zone) for t in later)]

    def list_runs(
        self,
        task_id: str | None = None,
        *,
        status: RunStatus | str | Collection[RunStatus | str] | None = None,
        limit: int | None = 50,
    ) -> list[RunRecord]:
        """Run records, newest first, optionally of one task and/or some statuses."""
        statuses: list[str] = []
        if isinstance(status, str):
            statuses = [RunStatus(status).value]
        elif status is not None:
            statuses = [RunStatus(s).value for s in status]
        self._flush()
        rows = self.store.list_runs(task_id=task_id, statuses=statuses, limit=limit)
        return [run_record_from_row(row) for row in rows]

    def get_run(self, run_id: str) -> RunRecord:
        """One run record.

        Raises:
            RunNotFoundError: No such run.
        """
        self._flush()
        row = self.store.get_run(run_id)
        if row is None:
            raise RunNotFoundError(run_id)
        return run_record_from_row(row)

    async def wait_for_run(self, run_id: str, *, timeout: float | None = None) -> RunRecord:
        """Wait until a run reaches a final status, and return it.

        Raises:
            TimeoutError: It did not finish within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while True:
                record = await asyncio.to_thread(self.get_run, run_id)
                if record.status.is_final:
                    return record
                await asyncio.sleep(0.05)

    # -- helpers --------------------------------------------------------------------------

    def prepare_task(
        self, task: TaskDefinition, *, import_callbacks: bool = True
    ) -> TaskDefinition:
        """Check a task's callbacks against the callback policy (and that they import and
        are callable; with ``import_callbacks=False`` they are found without running any
        module code), and fill its time zone from the settings.

        Raises:
            CallbackError: A callback is refused by the policy, cannot be imported or is
                not callable.
        """
        if not isinstance(task, TaskDefinition):
            raise TypeError(f"expected a TaskDefinition, got {type(task).__name__}")
        task = task.with_timezone(self.settings.timezone)
        for field in ("result_callback", "on_failure_callback"):
            path = getattr(task, field)
            if path and import_callbacks:
                self.callback_policy.resolve(path, field=field)
            elif path:
                self.callback_policy.check_statically(path, field=field)
        return task

    @staticmethod
    def _row_or_raise(tx: Transaction, task_id: str) -> TaskRow:
        row = tx.get_task(task_id)
        if row is None:
            raise TaskNotFoundError(task_id)
        return row

    @staticmethod
    def _decode_or_raise(row: TaskRow) -> TaskDefinition:
        try:
            return decode(row)
        except DefinitionError as exc:
            raise TaskNotRunnableError(row.id, str(exc)) from exc

    def notify_changed(self, *, removed: Iterable[str] = ()) -> None:
        """Tell the running scheduler that tasks changed (and which were removed)."""
        supervisor = self._supervisor
        if supervisor is None or not supervisor.active:
            return
        for task_id in removed:
            self._on_loop(supervisor.runner.forget_task, task_id, "the task was removed")
        supervisor.dispatcher.wakeup()

    def _flush(self) -> None:
        supervisor = self._supervisor
        if supervisor is not None:
            supervisor.run_log.flush()

    def _on_loop(self, function: Callable[..., Any], *args: Any) -> None:
        """Call ``function`` on the scheduler's event loop (now, if already on it)."""
        supervisor = self._supervisor
        if supervisor is None:
            return
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is supervisor.loop:
            function(*args)
        else:
            supervisor.loop.call_soon_threadsafe(function, *args)
