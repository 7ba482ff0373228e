"""Reading tasks and runs: the query half of :class:`~scheduler.TaskScheduler`.

Every read flushes the runs buffered in this process first, so what it returns is current.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from scheduler import gcfreeze
from scheduler.enums import RunStatus
from scheduler.exceptions import RunNotFoundError, TaskNotFoundError
from scheduler.pools import OWN
from scheduler.records import Notice, RunRecord, TaskInfo
from scheduler.rows import decode_or_raise, run_record, task_info
from scheduler.settings import Settings
from scheduler.storage import Store, TaskStats
from scheduler.triggers import fire_times

if TYPE_CHECKING:
    from scheduler.supervisor import Supervisor

__all__ = ["TaskQueries"]


class TaskQueries:
    """Queries over one store; mixed into :class:`~scheduler.TaskScheduler`."""

    settings: Settings
    _store: Store
    _clock: Callable[[], float]
    _supervisor: Supervisor | None

    def _flush(self) -> None:
        """Write the runs buffered in this process (the scheduler overrides this)."""

    def _ending_here(self, run_id: str) -> bool:
        """A run that waited in this process is being ended or resumed here (its record
        still says ``waiting``)."""
        supervisor = self._supervisor
        return supervisor is not None and supervisor.runner.is_ending(run_id)

    def get_task(self, task_id: str) -> TaskInfo:
        """One task with its state, next run and latest run.

        Raises:
            TaskNotFoundError: No such task.
        """
        self._flush()
        row = self._store.get_task(task_id)
        if row is None:
            raise TaskNotFoundError(task_id)
        stats = self._store.task_stats(task_id).get(task_id, TaskStats())
        return task_info(row, stats)

    def list_tasks(self, *, source: str | None = None) -> list[TaskInfo]:
        """Every task, by id; rows that cannot be loaded are listed with ``state='error'``.

        Args:
            source: Only the tasks of this source and of the sources under it: ``agent``
                lists every task an agent's tool made, ``agent:thread:t-1`` those made from
                thread ``t-1``; ``cli``, ``api``, ``file:tasks.yaml``.
        """
        self._flush()
        empty = TaskStats()
        with gcfreeze.paused():
            if source is None:
                stats = self._store.task_stats()
                return [
                    task_info(row, stats.get(row.id, empty), keep=False)
                    for row in self._store.iter_tasks(page=5000)
                ]
            rows = list(self._store.iter_tasks(source=source))
            ids = [row.id for row in rows]
            stats = self._store.task_stats(ids if len(ids) <= 500 else None) if ids else {}
            return [task_info(row, stats.get(row.id, empty), keep=False) for row in rows]

    def dependencies(self) -> list[tuple[str, str]]:
        """Every ``after`` link, as (task, upstream) pairs: ``task`` runs after ``upstream``,
        sorted."""
        return sorted(self._store.links())

    def now(self) -> datetime:
        """The scheduler's time (its clock: the wall clock, or a test clock), in UTC."""
        return datetime.fromtimestamp(self._clock(), UTC)

    def next_run_times(self, task_id: str, count: int = 5) -> list[datetime]:
        """The task's next ``count`` fire times as stored and scheduled (none unless active).

        Raises:
            TaskNotFoundError: No such task.
        """
        row = self._store.get_task(task_id)
        if row is None:
            raise TaskNotFoundError(task_id)
        if row.next_run_time is None or row.paused or count <= 0:
            return []
        task = decode_or_raise(row)
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
        offset: int = 0,
    ) -> list[RunRecord]:
        """Run records, newest first, optionally of one task and/or some statuses; the
        first ``offset`` skipped.

        Raises:
            ValueError: A negative ``limit`` or ``offset``.
        """
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError(f"limit and offset must be 0 or more (got {limit}, {offset})")
        statuses: list[str] = []
        if isinstance(status, str):
            statuses = [RunStatus(status).value]
        elif status is not None:
            statuses = [RunStatus(s).value for s in status]
        self._flush()
        rows = self._store.list_runs(task_id=task_id, statuses=statuses, limit=limit, offset=offset)
        return [run_record(row) for row in rows]

    def get_run(self, run_id: str) -> RunRecord:
        """One run record.

        Raises:
            RunNotFoundError: No such run.
        """
        self._flush()
        row = self._store.get_run(run_id)
        if row is None:
            raise RunNotFoundError(run_id)
        return run_record(row)

    def count_tasks(self) -> int:
        """How many tasks are stored (in every state, unloadable rows included)."""
        return self._store.count_tasks()

    def count_runs(self) -> dict[RunStatus, int]:
        """How many run records are kept, per status."""
        self._flush()
        counts: dict[RunStatus, int] = {}
        for status, count in self._store.count_runs().items():
            key = RunStatus(status) if status in RunStatus._value2member_map_ else RunStatus.UNKNOWN
            counts[key] = counts.get(key, 0) + count
        return counts

    def notices(self) -> list[Notice]:
        """What ``list`` and ``show`` report beside the tasks: sources whose last change could
        not be applied (a tasks file with problems), with what is wrong."""
        return [
            Notice(source=key, message=message, since=datetime.fromtimestamp(since, UTC))
            for key, message, since in self._store.notices()
        ]

    def note_problem(self, source: str, message: str | None) -> None:
        """Record a problem with ``source`` (e.g. ``file:tasks.yaml`` could not be applied)
        for :meth:`notices`; None clears it (it was applied)."""
        self._store.set_notice(source, message, now=self._clock())

    async def wait_for_run(self, run_id: str, *, timeout: float | None = None) -> RunRecord:
        """Wait until a run reaches a final status, or waits for an answer (``waiting``,
        not yet answered), and return it.

        Raises:
            TimeoutError: It did not get there within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while True:
                # (asked before the read: once the end is written, this process forgets the
                # run, and a record read before then would pass for one still waiting)
                ending = self._ending_here(run_id)  # a cancel_run just made, on the loop
                record = await OWN.run(self.get_run, run_id)
                if record.status.is_final or (
                    record.status is RunStatus.WAITING and not record.answered and not ending
                ):
                    return record
                await asyncio.sleep(0.05)
