"""The dispatcher: APScheduler's ``AsyncIOScheduler`` turning due tasks into run records.

APScheduler's own ``_process_jobs`` commits once per due job, drops runs that start later than
a 1-second grace, and stops for good if the job store raises while it works (see
``PITFALLS.md``). This subclass keeps APScheduler's timer and wake-up machinery and replaces
that one method: it claims due tasks in batches, and in **one transaction** moves each task's
next run time and inserts a record for every due occurrence (``queued``, ``skipped`` or
``missed``), so an occurrence is never consumed without a record. The runs then go to the
:class:`~scheduler.runner.Runner`. A database error is logged, retried with backoff, and its
recovery logged; the timer is always re-armed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING, STATE_STOPPED, BaseScheduler
from apscheduler.triggers.base import BaseTrigger

from scheduler.enums import RunStatus
from scheduler.events import EventBus, RunEvent
from scheduler.exceptions import DatabaseBusyError, StorageError
from scheduler.logs import run_fields
from scheduler.missed import missed_record
from scheduler.models import TaskDefinition
from scheduler.offload import call_soon_threadsafe
from scheduler.pending import Admission, PendingRun, new_run_id
from scheduler.rows import decode, queued_run, run_record, skipped_run
from scheduler.runner import Runner
from scheduler.settings import Settings
from scheduler.storage import MAX_TIMESTAMP, RunRow, Store, TaskRow, Transaction
from scheduler.triggers import ON_TIME_SECONDS, Backlog, backlog
from scheduler.workers.admission import SharedAdmission

__all__ = ["Dispatcher"]

logger = logging.getLogger(__name__)

_BATCH = 2000  # due tasks claimed per transaction; the loop runs other work in between
_CACHE_LIMIT = 50_000
_CLAIM_BUDGET = 0.5  # seconds of back-to-back batches before the loop runs other work
_MAX_WAIT = 60.0  # wake at least this often even with nothing due (watchdog)
_BUSY_RETRY = 0.1  # at most this long between claims while the write lock is held elsewhere


class Dispatcher(AsyncIOScheduler):  # type: ignore[misc]
    """Claims due tasks and hands their runs to the runner.

    Args:
        store: The task and run tables.
        runner: Where accepted runs go.
        settings: Defaults (time zone, catch-up window).
        clock: UNIX time source.
    """

    _timeout: asyncio.TimerHandle | None = None

    def __init__(
        self,
        *,
        store: Store,
        runner: Runner,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        events: EventBus | None = None,
        shared: SharedAdmission | None = None,
    ) -> None:
        super().__init__(timezone=UTC)
        self._shared = shared  # workers run what is admitted (else the runner here)
        self._events = events if events is not None else EventBus()
        self._store = store
        self._runner = runner
        self._settings = settings
        self._clock = clock
        self._cache: dict[str, tuple[tuple[float, float, int], TaskDefinition, BaseTrigger]] = {}
        self.broken: dict[str, str] = {}  # task id -> why its row cannot be loaded
        self._reported: set[tuple[str, float]] = set()
        self._failures = 0
        self._busy_since: float | None = None  # since when the write lock is held elsewhere
        self._busy_tries = 0
        self._wakeup_pending = False
        self._timer_due = 0.0  # when the timer looks at the database (scheduler clock)
        self.last_processed = 0.0  # loop time of the last pass (watchdog)
        # gives the check of each dispatch's transaction (the active scheduler's epoch)
        self.fence: Callable[[], Callable[[Transaction], None]] | None = None

    # -- APScheduler hooks ------------------------------------------------------------------

    def wakeup(self) -> None:
        """Process due tasks soon. Safe from any thread; repeated calls coalesce."""
        loop = self._eventloop
        if loop is None or loop.is_closed() or self._wakeup_pending:
            return
        self._wakeup_pending = True
        call_soon_threadsafe(loop, self._wakeup_now)

    def wakeup_by(self, due: float) -> None:
        """Only tasks first due at ``due`` were added (committed): process due tasks now
        unless the timer looks at the database no later than that anyway. Safe from any
        thread. The check runs on the loop, so a pass running meanwhile either saw the
        commit or set the timer that is compared."""
        loop = self._eventloop
        if loop is None or loop.is_closed() or self._wakeup_pending:
            return
        call_soon_threadsafe(loop, self._wakeup_before, due)

    def _wakeup_before(self, due: float) -> None:
        if self._wakeup_pending or (self._timeout is not None and due >= self._timer_due):
            return
        self._wakeup_now()

    def _wakeup_now(self) -> None:
        self._wakeup_pending = False
        if self.state != STATE_RUNNING:
            return
        self._stop_timer()
        wait: float | None = 1.0
        try:
            wait = self._process_jobs()
        except Exception:
            logger.exception("unexpected error while dispatching due tasks; retrying in 1 s")
        finally:
            self.last_processed = asyncio.get_running_loop().time()
            self._start_timer(_MAX_WAIT if wait is None else min(wait, _MAX_WAIT))

    def _start_timer(self, wait_seconds: float | None) -> None:
        self._stop_timer()
        if wait_seconds is not None and self._eventloop is not None:
            self._timeout = self._eventloop.call_later(wait_seconds, self._timer_fired)
            self._timer_due = self._clock() + wait_seconds

    def _timer_fired(self) -> None:
        self._timeout = None
        self._wakeup_now()

    def shutdown(self, wait: bool = True) -> None:
        """Stop dispatching now (synchronously, unlike ``AsyncIOScheduler.shutdown``)."""
        if self.state == STATE_STOPPED:
            return
        BaseScheduler.shutdown(self, wait=False)
        self._stop_timer()
        self._eventloop = None

    def _process_jobs(self) -> float | None:
        try:
            began = time.monotonic()
            full = self._dispatch()
            while full and time.monotonic() - began < _CLAIM_BUDGET:
                full = self._dispatch()  # a backlog: claim (record) it before running much
            next_time = self._store.next_run_time(exclude=self.broken.keys())
        except StorageError as exc:
            return self._failed(exc)
        self._busy_since = None
        if self._failures:
            logger.warning(
                "database answers again after %d failed attempt(s); dispatching resumed",
                self._failures,
            )
            self._failures = 0
        if full:
            return 0.0
        if next_time is None:
            return None
        return max(0.0, next_time - self._clock())

    def _failed(self, exc: StorageError) -> float:
        """The wait before the next attempt. A write lock held elsewhere is tried again
        soon (the claim does not wait for it on the event loop); held past the busy
        timeout, as any other database error, it is logged once and tried again."""
        if isinstance(exc, DatabaseBusyError):
            now = time.monotonic()
            if self._busy_since is None:
                self._busy_since, self._busy_tries = now, 0
            self._busy_tries += 1
            delay = min(_BUSY_RETRY, 0.002 * self._busy_tries)  # (a write here: ms)
            if now - self._busy_since < self._settings.sqlite_busy_timeout_seconds:
                return delay
            exc = StorageError(f"database {self._store.display_url}: {exc}")
        else:
            delay = min(2.0, 0.25 * 2.0 ** (self._failures + 1))
        self._failures += 1
        if self._failures == 1:
            logger.error(
                "database error while dispatching due tasks: %s; retrying until it answers",
                exc,
            )
        else:
            logger.debug("dispatch attempt %d failed: %s", self._failures, exc)
        return delay

    # -- dispatch -------------------------------------------------------------------------

    def forget(self) -> None:
        """Drop cached definitions and load errors (after a change made elsewhere)."""
        self._cache.clear()
        self.broken.clear()

    def _dispatch(self, *, wait: bool = False) -> bool:
        now = self._clock()
        now_dt = datetime.fromtimestamp(now, UTC)
        accepted: list[tuple[PendingRun, Admission]] = []
        check = self.fence() if self.fence is not None else None
        with self._store.transaction(check, wait=wait) as tx:  # (on the loop: not waiting)
            rows = tx.due_tasks(now, limit=_BATCH, exclude=self.broken.keys())
            shared = self._shared
            if shared is not None:
                shared.begin(tx, [row.id for row in rows])
            next_times: list[tuple[str, float | None]] = []
            records: list[RunRow] = []
            finals: list[tuple[RunRow, TaskDefinition]] = []  # skipped / missed: final now
            for row in rows:
                loaded = self._load(row)
                if loaded is None:
                    continue
                task, trigger = loaded
                try:
                    found, grace = self._backlog(task, trigger, row, now, now_dt)
                except Exception as exc:  # one unusable row must not hold up the others
                    self._mark_broken(row, f"its next run time cannot be computed: {exc!r}")
                    continue
                next_time = found.next_time.timestamp() if found.next_time else None
                if next_time is not None and next_time > MAX_TIMESTAMP:
                    next_time = None  # past the supported years: the schedule has ended
                next_times.append((row.id, next_time))
                if found.missed:
                    records.append(self._missed_record(task, found, grace, now))
                    finals.append((records[-1], task))
                if found.due and found.last_due is not None:
                    pending = PendingRun(
                        run_id=new_run_id(),
                        task=task,
                        scheduled_for=found.last_due.timestamp(),
                        occurrences=found.due,
                    )
                    if shared is not None:
                        admission = shared.admit(task)
                    else:
                        admission = self._runner.admit(task)
                    records.append(self._due_record(pending, admission, now))
                    accepted.append((pending, admission))
                    if admission is Admission.SKIP:
                        finals.append((records[-1], task))
                    elif shared is not None:
                        shared.stamp(records[-1], task)
            tx.set_next_run_times(next_times)
            tx.insert_runs(records)
            if shared is not None:
                shared.end(tx)
                accepted.clear()
        for pending, admission in accepted:
            self._runner.accept(pending, admission)
        if self._events:
            for record, task in finals:
                self._events.emit(RunEvent("finished", run_record(record), task))
        return len(rows) >= _BATCH

    def _backlog(
        self, task: TaskDefinition, trigger: BaseTrigger, row: TaskRow, now: float, now_dt: datetime
    ) -> tuple[Backlog, float]:
        grace = task.misfire_grace_seconds
        if grace is None:
            grace = self._settings.misfire_grace_seconds
        stored = row.next_run_time
        first = datetime.fromtimestamp(now if stored is None else stored, UTC)  # (0: 1970)
        cutoff = now_dt - timedelta(seconds=max(grace, ON_TIME_SECONDS))
        return backlog(trigger, first=first, now=now_dt, cutoff=cutoff), grace

    def _mark_broken(self, row: TaskRow, reason: str) -> None:
        """Leave ``row`` as it is, out of dispatching until it changes; say so once."""
        self.broken[row.id] = reason
        if (row.id, row.updated_at) not in self._reported:
            self._reported.add((row.id, row.updated_at))
            logger.error(
                "task %s cannot be loaded; its row is kept as it is and it will not fire "
                "until fixed: %s",
                row.id,
                reason,
            )

    def _load(self, row: TaskRow) -> tuple[TaskDefinition, BaseTrigger] | None:
        cached = self._cache.get(row.id)
        # by what it is built from, not by updated_at alone: two writes in one instant of
        # the clock (a test clock, a coarse one) have one updated_at
        key = (row.updated_at, row.anchor, hash(row.definition))
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        try:
            task = decode(row)
            trigger = task.build_trigger(
                anchor=datetime.fromtimestamp(row.anchor, UTC),
                default_timezone=self._settings.timezone,
            )
        except Exception as exc:
            self._mark_broken(row, str(exc))
            return None
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[row.id] = (key, task, trigger)
        return task, trigger

    def _due_record(self, pending: PendingRun, admission: Admission, now: float) -> RunRow:
        task = pending.task
        if pending.occurrences > 1:
            logger.info(
                "task %s: %d occurrences came due while dispatching was held up (downtime or "
                "a stall); coalesced into run %s",
                task.id,
                pending.occurrences,
                pending.run_id,
            )
        if admission is not Admission.SKIP:
            return queued_run(
                pending.run_id,
                task.id,
                scheduled_for=pending.scheduled_for,
                queued_at=now,
                occurrences=pending.occurrences,
                thread_id=task.thread_id,  # (on its thread while queued: that thread is busy)
            )
        policy = task.overlap or self._settings.overlap
        logger.info(
            "task %s occurrence at %s skipped: previous run still going (overlap=%s)",
            task.id,
            _iso(pending.scheduled_for),
            policy,
            extra=run_fields(task_id=task.id, run_id=pending.run_id, status=RunStatus.SKIPPED),
        )
        return skipped_run(
            pending.run_id,
            task.id,
            scheduled_for=pending.scheduled_for,
            now=now,
            occurrences=pending.occurrences,
            policy=policy,
        )

    def _missed_record(
        self, task: TaskDefinition, found: Backlog, grace: float, now: float
    ) -> RunRow:
        why = f"fell outside the catch-up window of {grace:g} s (misfire_grace_seconds)"
        zone = task.zone(self._settings.timezone)
        return missed_record(task, found, zone=zone, now=now, why=why)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()
