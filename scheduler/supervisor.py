"""The active side of a scheduler: leader lock, crash recovery, dispatcher, runner, and a
poll loop that notices changes made by other processes and keeps the dispatcher alive."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from scheduler.codec import DefinitionError, decode
from scheduler.dispatcher import Dispatcher
from scheduler.exceptions import StorageError
from scheduler.leader import LeaderLock, leader_lock_for
from scheduler.models import RunStatus
from scheduler.records import RunTrigger
from scheduler.runlog import RunLog
from scheduler.runner import PendingRun, Runner
from scheduler.settings import Settings
from scheduler.storage import Store

__all__ = ["Supervisor"]

logger = logging.getLogger(__name__)

_PRUNE_EVERY = 600.0  # seconds between history clean-ups


class Supervisor:
    """Owns the runtime parts of one started :class:`~scheduler.TaskScheduler`.

    Args:
        store: The database.
        settings: Scheduler settings.
        graph: Returns the graph to invoke.
        clock: UNIX time source.
    """

    def __init__(
        self,
        *,
        store: Store,
        settings: Settings,
        graph: Callable[[], Any],
        prune: Callable[[], int],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.prune = prune
        self.loop = asyncio.get_running_loop()
        self.run_log = RunLog(store)
        self.runner = Runner(settings=settings, run_log=self.run_log, graph=graph, clock=clock)
        self.dispatcher = Dispatcher(
            store=store, runner=self.runner, settings=settings, clock=clock
        )
        self.lock: LeaderLock = leader_lock_for(store)
        self.active = False
        self._poll_task: asyncio.Task[None] | None = None
        self._revision = -1
        self._last_prune = 0.0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Become the active scheduler, or stand by if another process is active."""
        self._revision = self.store.revision()
        if self.lock.try_acquire():
            self._activate()
        else:
            logger.warning(
                "another scheduler (%s) is active on %s; this process stands by and takes "
                "over when it stops. Changes made here reach the active one.",
                self.lock.holder(),
                self.store.display_url,
            )
        self._poll_task = self.loop.create_task(self._poll_forever(), name="scheduler-poll")

    def _activate(self) -> None:
        recovered = self._recover()
        self.run_log.start()
        self.dispatcher.start()
        self.active = True
        for pending in recovered:
            self.runner.submit(pending)
        logger.info("scheduler active on %s (pid %d)", self.store.display_url, os.getpid())

    async def stop(self, grace_seconds: float) -> None:
        """Stop dispatching, let running runs finish for ``grace_seconds``, then cancel them."""
        if self._poll_task is not None:
            self._poll_task.cancel()
            await asyncio.gather(self._poll_task, return_exceptions=True)
            self._poll_task = None
        if self.active:
            self.dispatcher.shutdown()
            await self.runner.stop(grace_seconds)
            try:
                await self.run_log.close()
            except StorageError as exc:
                logger.error("could not write the last run records: %s", exc)
            self.active = False
        self.lock.release()

    # -- recovery -------------------------------------------------------------------------

    def _recover(self) -> list[PendingRun]:
        """Settle runs left by a previous process: ``running`` ones were cut off
        (``interrupted``); ``queued`` ones run now if still inside their catch-up window,
        else they are ``missed``."""
        now = self.clock()
        resumed: list[PendingRun] = []
        settled: list[dict[str, Any]] = []
        with self.store.transaction() as tx:
            for run in tx.runs_with_status([RunStatus.RUNNING.value]):
                settled.append(
                    {
                        "id": run.id,
                        "status": RunStatus.INTERRUPTED.value,
                        "finished_at": now,
                        "error_type": "Interrupted",
                        "error_message": "the scheduler process ended while this run was in flight "
                        "(crash, kill or power loss)",
                    }
                )
            queued = tx.runs_with_status([RunStatus.QUEUED.value])
            rows = tx.get_tasks({run.task_id for run in queued})
            for run in queued:
                row = rows.get(run.task_id)
                reason = None
                if row is None:
                    reason = "its task was removed"
                else:
                    try:
                        task = decode(row)
                    except DefinitionError as exc:
                        reason = f"its task cannot be loaded: {exc}"
                if reason is not None:
                    settled.append(
                        {
                            "id": run.id,
                            "status": RunStatus.CANCELLED.value,
                            "finished_at": now,
                            "error_type": "TaskUnavailable",
                            "error_message": reason,
                        }
                    )
                    continue
                grace = task.misfire_grace_seconds
                if grace is None:
                    grace = self.settings.misfire_grace_seconds
                since = max(run.scheduled_for, run.not_before or 0.0)
                if run.trigger == RunTrigger.MANUAL.value:
                    since = max(since, run.queued_at)
                if now - since > grace:
                    settled.append(
                        {
                            "id": run.id,
                            "status": RunStatus.MISSED.value,
                            "finished_at": now,
                            "error_type": "Missed",
                            "error_message": "queued when the scheduler stopped; now outside the "
                            f"catch-up window of {grace:g} s",
                        }
                    )
                    continue
                resumed.append(
                    PendingRun(
                        run_id=run.id,
                        task=task,
                        scheduled_for=run.scheduled_for,
                        attempt=run.attempt,
                        trigger=RunTrigger(run.trigger),
                        not_before=run.not_before,
                        occurrences=run.occurrences,
                    )
                )
            tx.update_runs(settled)
        interrupted = sum(1 for s in settled if s["status"] == RunStatus.INTERRUPTED.value)
        if settled or resumed:
            logger.warning(
                "recovered runs left by the previous process: %d interrupted, %d queued run(s) "
                "resumed, %d settled otherwise",
                interrupted,
                len(resumed),
                len(settled) - interrupted,
            )
        return resumed

    # -- polling --------------------------------------------------------------------------

    async def _poll_forever(self) -> None:
        interval = self.settings.poll_interval_seconds
        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                self._poll_once()
            except StorageError as exc:
                if not failing:
                    logger.warning("cannot poll the database for changes (will retry): %s", exc)
                failing = True
            else:
                if failing:
                    logger.info("polling the database for changes again")
                failing = False

    def _poll_once(self) -> None:
        if not self.active:
            if self.lock.try_acquire():
                logger.info("the previous active scheduler is gone; taking over")
                self._activate()
            return
        if not self.lock.is_held():
            logger.error("lost the leader lock on %s; dispatching stops", self.store.display_url)
            self.dispatcher.shutdown()
            self.active = False
            return
        revision = self.store.revision()
        if revision != self._revision:
            self._revision = revision
            self.dispatcher.forget()
            self._pick_up_changes()
            self.dispatcher.wakeup()
        elif self._overdue():
            logger.warning("the dispatcher missed its wake-up; waking it")
            self.dispatcher.wakeup()
        if self.clock() - self._last_prune > _PRUNE_EVERY:
            self._last_prune = self.clock()
            self.loop.create_task(self._prune())

    def _overdue(self) -> bool:
        return self.loop.time() - self.dispatcher.last_processed > 65.0

    def _pick_up_changes(self) -> None:
        """Start runs requested elsewhere (``run`` from the CLI) and drop waiting runs of
        tasks removed elsewhere."""
        requested = [
            run
            for run in self.store.list_runs(statuses=[RunStatus.QUEUED.value], limit=None)
            if run.trigger == RunTrigger.MANUAL.value and not self.runner.knows(run.id)
        ]
        waiting = self.runner.task_ids()
        if not requested and not waiting:
            return
        with self.store.transaction() as tx:
            rows = tx.get_tasks({r.task_id for r in requested} | waiting)
        for task_id in waiting - rows.keys():
            self.runner.forget_task(task_id, "the task was removed")
        for run in requested:
            row = rows.get(run.task_id)
            try:
                task = decode(row) if row is not None else None
            except DefinitionError:
                task = None
            if task is None:
                self.run_log.update(
                    run.id,
                    status=RunStatus.CANCELLED.value,
                    finished_at=self.clock(),
                    error_type="TaskUnavailable",
                    error_message="its task is gone or unloadable",
                )
                continue
            self.runner.submit(
                PendingRun(
                    run_id=run.id,
                    task=task,
                    scheduled_for=run.scheduled_for,
                    trigger=RunTrigger.MANUAL,
                )
            )

    async def _prune(self) -> None:
        try:
            deleted = await asyncio.to_thread(self.prune)
        except StorageError as exc:
            logger.warning("could not prune run history: %s", exc)
            return
        if deleted:
            logger.info("pruned %d old run record(s)", deleted)
