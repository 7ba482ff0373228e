"""A worker process: executes queued runs on PostgreSQL and schedules nothing.

It registers in ``scheduler_workers`` and renews its lease with a heartbeat every
``worker_lease_seconds / 6``; it claims runs queued for workers (``FOR UPDATE SKIP LOCKED``,
see :mod:`scheduler.storage.workers`) when the leader's ``NOTIFY`` wakes it, when one of its
runs ends, and every ``poll_interval_seconds``, up to ``max_concurrent_runs`` in flight, and
runs them with the same :class:`~scheduler.runner.Runner` as a single process (timeouts,
retries, callbacks, human in the loop). Its retries (once due), the runs that follow a
final outcome (workflows) and its answered runs (:mod:`scheduler.workers.answered`) are
queued for any worker, and claimed on their thread's turn (:mod:`scheduler.storage.workers`).

Leases: a worker that cannot renew its lease for half of it stops (its runs are cancelled)
and exits, before the leader's reaper declares it dead and hands its runs on; one that finds
itself declared dead stops the same way. So a run is never in flight on two workers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from scheduler.clock import DatabaseClock
from scheduler.current import Definitions
from scheduler.dependencies.follow import Followers
from scheduler.enums import RunStatus, RunTrigger
from scheduler.events import EventBus
from scheduler.exceptions import DefinitionError, SettingError, StorageError
from scheduler.models import TaskDefinition
from scheduler.offload import Offloader
from scheduler.pending import pending_of
from scheduler.pickup import answer_held
from scheduler.pools import OWN
from scheduler.recovery import tasks_of, tell_end
from scheduler.rows import settled
from scheduler.runlog import RunLog
from scheduler.runner import Runner
from scheduler.settings import Settings
from scheduler.storage import RunRow, Store, TaskRow
from scheduler.storage.listen import Listener
from scheduler.storage.registry import register_worker, unregister_worker
from scheduler.storage.workers import ANY_WORKER, adopt_waiting, claim_runs, freed_at
from scheduler.triggers import ON_TIME_SECONDS
from scheduler.waiting_runs import ended_elsewhere
from scheduler.withdraw import PAUSED, retry_withdrawn
from scheduler.workers.admission import followed_by_workers
from scheduler.workers.answered import AnsweredRuns
from scheduler.workers.lease import WorkerLease

if TYPE_CHECKING:
    from scheduler.webhooks import Deliverer

__all__ = ["Worker", "require_postgres"]

logger = logging.getLogger("scheduler.worker")


def require_postgres(store: Store, role: str) -> None:
    """Roles other than ``all`` share work through PostgreSQL.

    Raises:
        SettingError: The database is not PostgreSQL (a bad setting: exit status 2).
    """
    if store.engine.dialect.name != "postgresql":
        why = (
            f"{role} needs PostgreSQL (workers claim runs with FOR UPDATE SKIP LOCKED and are "
            f"woken by LISTEN/NOTIFY), but the database is {store.display_url}. On SQLite one "
            "process schedules and runs everything: use SCHEDULER_ROLE=all (the default), or "
            "set SCHEDULER_DATABASE_URL to a PostgreSQL URL"
        )
        raise SettingError([("SCHEDULER_ROLE", why)])


class Worker(WorkerLease):
    """Claims and executes queued runs until :meth:`stop`.

    Args:
        store: The PostgreSQL database.
        settings: Run defaults, ``max_concurrent_runs`` (per worker) and the lease.
        graph: Returns the graph to invoke.
        clock: UNIX time source.
    """

    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        graph: Callable[[], Any],
        clock: Callable[[], float] = time.time,
        events: EventBus | None = None,
    ) -> None:
        require_postgres(store, "worker")
        self.store = store
        self.settings = settings
        # the database's time, as this machine's clock plus the offset the heartbeats
        # measure: catch-up windows and retry delays are judged in it, as the lease is
        # (machines' clocks may differ: a worker 60 s ahead found every run past its window)
        self._machine_clock = clock
        self.clock = DatabaseClock(store.database_time, clock)  # read by the heartbeats
        self.id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.loop = asyncio.get_running_loop()
        self.run_log = RunLog(store, owner=self.id)
        # the runs' events, and their webhooks, delivered from here as a single process does
        self.events = events if events is not None else EventBus()
        self._webhooks: Deliverer | None = None  # the deliverer made here (closed at stop)
        if self.events.webhooks is None:
            from scheduler.webhooks import Deliverer  # (here: httpcore only where runs are made)

            self.events.webhooks = self._webhooks = Deliverer(store, settings, self.clock)
        self.runner = Runner(
            settings=settings, run_log=self.run_log, graph=graph, clock=self.clock,
            events=self.events,
        )  # fmt: skip
        self.runner.on_slot_free = self.wake
        self.runner.retries_to = ANY_WORKER  # (claimed once due, by whichever worker is free)
        self.runner.before_callback = self._lease_holds
        self._answered = AnsweredRuns(
            store=store, worker_id=self.id, runner=self.runner, settings=settings,
            clock=self.clock, retry_soon=self._look_again,
        )  # fmt: skip
        self.followers = Followers(store, clock=self.clock, output_chars=settings.output_max_chars)
        self.followers.attach(self.run_log, self.runner, self.loop, self.events)
        # what follows goes to any worker, not only here (delivered here: the skipped
        # records of paused followers, to the listeners)
        self.run_log.follow = followed_by_workers(
            self.followers.follow, settings, self.clock, self.followers.skipped
        )
        self.run_log.fence = lambda: self._check_registered
        self._wakeup = asyncio.Event()
        self._listener = Listener(store, self._wake_threadsafe)
        self._tasks: list[asyncio.Task[None]] = []
        # the lease is renewed on a thread of its own: sync graph nodes fill the loop's
        # default executor and flushes and claims the scheduler's pool, and a renewal
        # queued behind them would let the lease lapse while every run is fine
        self._heartbeat = Offloader("scheduler-heartbeat", spill=False)
        self._revision = -1
        self._definitions = Definitions()
        self.failed: str | None = None  # why the worker stopped by itself
        self._stopping = False
        self.done = asyncio.Event()

    def _timed(self, call: Callable[[], float | None]) -> float | None:
        """``call()`` (it returns the database's time, or None); the offset measured."""
        before = self._machine_clock()
        database_now = call()
        if database_now is not None:
            self.clock.take(before, database_now, self._machine_clock())
        return database_now

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.store.setup()
        host, pid = socket.gethostname(), os.getpid()
        lease = self.settings.worker_lease_seconds
        self._timed(lambda: register_worker(self.store, self.id, host=host, pid=pid, lease=lease))
        self._renewed_at = time.monotonic()  # (registering is the first renewal)
        self.followers.refresh()
        self.run_log.start()
        self._listener.start()
        for name, work in (("claim", self._claim_forever), ("heartbeat", self._beat_forever)):
            self._tasks.append(self.loop.create_task(work(), name=f"worker-{name}"))
        logger.info(
            "worker %s running on %s (up to %d runs at once, lease %g s)",
            self.id,
            self.store.display_url,
            self.settings.max_concurrent_runs,
            self.settings.worker_lease_seconds,
        )

    async def stop(self, grace_seconds: float) -> None:
        """Claim nothing more, let running runs finish for ``grace_seconds`` (then cancel
        them), and hand the runs held here but not started back to the other workers. The
        lease is renewed until the runs have ended: a lapse meanwhile would have the
        scheduler retry them elsewhere while they still run here."""
        if self._stopping:
            await self.done.wait()
            return
        self._stopping = True
        claim = [t for t in self._tasks if t.get_name() == "worker-claim"]
        for task in claim:
            task.cancel()
        await asyncio.gather(*claim, return_exceptions=True)
        await OWN.run(self._listener.stop)
        await self.runner.stop(grace_seconds)
        await self._answered.settle()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.events.drain(grace_seconds)  # the webhooks of the runs that ended
        if self._webhooks is not None:
            self.events.webhooks = None
            await self._webhooks.close()
        self._heartbeat.close()
        try:
            await self.run_log.close()
            if self.failed is None:
                released = await OWN.run(unregister_worker, self.store, self.id)
                if released:
                    logger.info("handed %d run(s) back to the other workers", released)
        except StorageError as exc:
            logger.error("could not write the last run records: %s", exc)
        self.done.set()

    def wake(self) -> None:
        """Claim soon (on the event loop)."""
        self._wakeup.set()

    def _look_again(self) -> None:
        """Look at the answers and cancel requests again at the next wake-up."""
        self._revision = -1
        self.wake()

    def _wake_threadsafe(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop has closed
            self.loop.call_soon_threadsafe(self._wakeup.set)

    # -- claiming -------------------------------------------------------------------------

    async def _claim_forever(self) -> None:
        interval = self.settings.poll_interval_seconds
        failing = False
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):  # (not wait_for: see RunLog)
                    await self._wakeup.wait()
            self._wakeup.clear()
            try:
                await self._look_around()
                full = await self._claim()
            except StorageError as exc:
                if not failing:
                    logger.warning("cannot claim runs (will retry): %s", exc)
                failing = True
                await asyncio.sleep(min(1.0, interval * 2))
                continue
            if failing:
                logger.info("claiming runs again")
            failing = False
            if full:
                self._wakeup.set()  # there may be more

    async def _claim(self) -> bool:
        free = self.runner.free_slots
        if free <= 0:
            return False
        default_rank = self.settings.priority.rank
        now = self.clock()
        rows, task_rows = await OWN.run(
            claim_runs, self.store, self.id, now=now, limit=free, default_rank=default_rank
        )
        claimed: list[tuple[RunRow, TaskDefinition]] = []
        for run in rows:
            task = self._definition(task_rows.get(run.task_id))
            if isinstance(task, str) or run.problem is not None:
                reason = task if isinstance(task, str) else f"its record: {run.problem}"
                self._settle(run, RunStatus.CANCELLED, "TaskUnavailable", reason, task)
                continue
            if run.answer is not None:  # answered while it waited (at any worker)
                resumed = self._answered.resumed(run, task)
                if isinstance(resumed, str):  # it fails as in one process (callback, fallback)
                    failed = pending_of(run, task, thread_id=run.thread_id)
                    self.runner.refuse_claimed(failed, resumed)
                else:
                    self.runner.submit(resumed)
                continue
            claimed.append((run, task))
        # a run that looks late may only have waited for its task's limit: ask when that
        # let it go (one read, for the few that look late; none on the usual claim)
        waited = [r for r, t in claimed if r.max_running is not None and self._late(r, t, now)]
        freed = await OWN.run(freed_at, self.store, waited) if waited else {}
        for run, task in claimed:
            if self._late(run, task, now, freed.get(run.id, 0.0)):
                self._miss(run, task)
                continue
            # queued in the database before a pause or an edit of its task: skipped, as a
            # process holding it would have (scheduler.withdraw), but a run asked for by hand
            pending = pending_of(run, task)
            paused = task_rows[run.task_id].paused or not task.enabled
            withdrawn = retry_withdrawn(task, pending, self.settings.max_retries)
            if paused and pending.trigger is not RunTrigger.MANUAL:
                self.runner.skip_found(pending, "Paused", PAUSED)
            elif withdrawn is not None:
                self.runner.skip_found(pending, "RetryWithdrawn", withdrawn)
            else:
                self.runner.submit(pending)
        return len(rows) >= free

    def _definition(self, row: TaskRow | None) -> TaskDefinition | str:
        """The task of a claimed run (decoded once per version of its row)."""
        if row is None:
            return "its task was removed"
        try:
            return self._definitions.of(row)
        except DefinitionError as exc:
            return f"its task cannot be loaded: {exc}"

    def _grace(self, task: TaskDefinition) -> float:
        grace = task.misfire_grace_seconds
        return self.settings.misfire_grace_seconds if grace is None else grace

    def _late(self, run: RunRow, task: TaskDefinition, now: float, freed: float = 0.0) -> bool:
        """A scheduled run that waited past its catch-up window (no worker was free),
        counted from when it could start: due, and let go by its task's limit (``freed``:
        a run of ``overlap: queue`` waits for the one before it, as in one process)."""
        if run.trigger != RunTrigger.SCHEDULE:
            return False
        waited = now - max(run.scheduled_for, run.not_before or 0.0, freed)
        return waited > max(self._grace(task), ON_TIME_SECONDS)

    def _miss(self, run: RunRow, task: TaskDefinition) -> None:
        message = f"no worker took it within the catch-up window of {self._grace(task):g} s"
        self._settle(run, RunStatus.MISSED, "Missed", message, task)
        self.run_log.kick()

    def _settle(
        self,
        run: RunRow,
        status: RunStatus,
        kind: str,
        message: str,
        task: TaskDefinition | str | None,
    ) -> None:
        """Settle ``run``, which did not run here, and tell it as any run's end; a cancel
        is followed as any (``on: finished``) in the flush that writes it (``missed`` is
        not an end: nothing follows it)."""
        change = settled(run.id, status, now=self.clock(), kind=kind, message=message)
        if status is RunStatus.MISSED:
            self.run_log.change(change)
        else:
            self.run_log.end(run.task_id, change)
        tell_end(self.events, run, change, task)

    async def _look_around(self) -> None:
        """Adopt waiting runs no live worker holds; after a change elsewhere: which tasks
        are upstreams, which waiting runs held here were answered, which tasks were removed."""
        adopted = await OWN.run(adopt_waiting, self.store, self.id, limit=100)
        if adopted:
            await self._hold(adopted)
        revision = await OWN.run(self.store.revision)
        if revision == self._revision:
            return
        self._revision = revision
        for run_id in await OWN.run(self.store.cancel_requests, self.id):
            self.runner.cancel_run(run_id)  # asked by another process (the HTTP API, ...)
        await OWN.run(self.followers.refresh)
        waiting = await OWN.run(self.store.list_runs, statuses=[RunStatus.WAITING], limit=None)
        for run in waiting:
            if run.worker == self.id:
                answer_held(self.runner, run)
        held = self.runner.task_ids()
        if held:  # runs waiting here (to retry, say): their tasks as they are now
            tasks, present, ended = await OWN.run(self._present, held, self.runner.waiting_ids())
            self.runner.let_go_ended(ended)  # (its task removed, even if added again since)
            for task_id in held - present.keys():
                self.runner.forget_task(task_id, "the task was removed")
            self.runner.retask(tasks)
            for task_id in [task_id for task_id, paused in present.items() if paused]:
                self.runner.pause_task(task_id)

    def _present(
        self, task_ids: set[str], waiting: set[str]
    ) -> tuple[dict[str, TaskDefinition], dict[str, bool], list[RunRow]]:
        """The definitions of ``task_ids``, whether each is paused (by id: those present),
        and the rows of the runs of ``waiting`` that ended elsewhere."""
        with self.store.transaction() as tx:
            rows = tx.get_tasks(task_ids)
            ended = ended_elsewhere(tx, waiting)
        paused = {task_id: row.paused for task_id, row in rows.items()}
        return self._definitions.loadable(rows.values()), paused, ended

    async def _hold(self, runs: list[RunRow]) -> None:
        def load() -> dict[str, TaskDefinition | str]:
            with self.store.transaction() as tx:
                return tasks_of(tx, runs)

        tasks = await OWN.run(load)
        for run in runs:
            task = tasks[run.task_id]
            if isinstance(task, str) or run.problem is not None or run.thread_id is None:
                reason = (
                    task
                    if isinstance(task, str)
                    else f"its record: {run.problem}"
                    if run.problem is not None
                    else "its record names no thread to resume it on"
                )
                self._settle(run, RunStatus.CANCELLED, "TaskUnavailable", reason, task)
                continue
            since = run.waiting_since or run.started_at or run.queued_at
            self.runner.hold_waiting(pending_of(run, task), thread_id=run.thread_id, since=since)
        self._revision = -1  # answers may already be there
