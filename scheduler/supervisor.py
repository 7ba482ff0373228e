"""The active side of a scheduler: leader lock, crash recovery, dispatcher, runner, and a
poll loop that notices changes made by other processes and keeps the dispatcher alive."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from scheduler.clock import DatabaseClock
from scheduler.current import Definitions
from scheduler.dependencies.follow import Followers
from scheduler.dispatcher import Dispatcher
from scheduler.enums import RunTrigger
from scheduler.events import EventBus
from scheduler.exceptions import DatabaseBusyError, LeadershipLostError, StorageError
from scheduler.leader import LeaderLock, leader_lock_for
from scheduler.pickup import PickUp
from scheduler.pools import OWN
from scheduler.recovery import Recovery, graph_adopts
from scheduler.runlog import RunLog
from scheduler.runner import Runner
from scheduler.settings import Settings
from scheduler.storage import Store, Transaction
from scheduler.storage.registry import list_workers
from scheduler.workers.admission import SharedAdmission, followed_by_workers

__all__ = ["Supervisor"]

logger = logging.getLogger(__name__)

_PRUNE_EVERY = 600.0  # seconds between history clean-ups


_MIXED_ROLES = (
    "workers are registered on this database, but this process (role all) runs every run "
    "itself: the workers stay idle, and its runs do not take turns on a thread with theirs. "
    "A standby for a leader of role scheduler needs SCHEDULER_ROLE=scheduler too"
)


class Supervisor(PickUp):
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
        prune: Callable[[Callable[[], bool]], int],
        clock: Callable[[], float] = time.time,
        events: EventBus | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.prune = prune
        self.loop = asyncio.get_running_loop()
        self.run_log = RunLog(store)
        self.events = events if events is not None else EventBus()
        self.runner = Runner(
            settings=settings, run_log=self.run_log, graph=graph, clock=clock, events=self.events
        )
        # Role "scheduler": workers execute the runs; this process only dispatches them.
        self.shared = SharedAdmission(settings) if settings.role == "scheduler" else None
        self.dispatcher = Dispatcher(
            store=store,
            runner=self.runner,
            settings=settings,
            clock=clock,
            events=self.events,
            shared=self.shared,
        )
        self.followers = Followers(store, clock=clock, output_chars=settings.output_max_chars)
        self.followers.attach(self.run_log, self.runner, self.loop, self.events)
        if self.shared is not None:  # what follows a run's end is the workers' to run too
            follow, skipped = self.followers.follow, self.followers.skipped
            self.run_log.follow = followed_by_workers(follow, settings, clock, skipped)
        self.recovery = Recovery(
            store=store,
            settings=settings,
            clock=clock,
            followers=self.followers,
            shared=self.shared,
            events=self.events,
        )
        self.recovery.adopts = functools.partial(graph_adopts, graph)
        self._reaps = not store.is_sqlite and store.engine.dialect.name == "postgresql"
        if self._reaps:  # a PostgreSQL lock can be lost while this process lives
            self.run_log.fence = self.dispatcher.fence = self.recovery.fence = self._fence
        self._last_reap = 0.0
        self.lock: LeaderLock = leader_lock_for(store)
        self.active = False
        self._poll_task: asyncio.Task[None] | None = None
        self._revision = -1
        self._last_prune = 0.0
        self._pruning: asyncio.Task[None] | None = None  # the background prune going on
        self._stopping = threading.Event()  # read by that prune, on its thread
        self._epoch = 0  # the leader epoch this process took when it became active
        self._fenced_out = False  # a write was refused: another epoch was taken since
        self._poll_soon = asyncio.Event()
        self._definitions = Definitions()
        self.background_prune = True  # off on a test clock (scheduler.testing)

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
        if self._epoch:  # starting over: what is left of before is written under its epoch
            with contextlib.suppress(LeadershipLostError):  # (or dropped, if it moved on)
                self.run_log.flush()
        with self.store.transaction() as tx:
            self._epoch = tx.take_epoch()
        self._fenced_out = False
        self.followers.refresh()
        self._warm_followers()
        recovered = self.recovery.recover()
        self.runner.call_failure_callbacks(self.recovery.take_failed())
        if self._reaps:  # workers that died with the last active process, before the
            # dispatcher looks at what is due (their runs counted as going: a catch-up
            # occurrence was recorded skipped, overlap=skip, and reaped a moment later)
            self._last_reap = self.clock()
            self.recovery.reap(self.settings.worker_lease_seconds)
            self.runner.call_failure_callbacks(self.recovery.take_failed())
        self.run_log.start()
        self.dispatcher.start()
        self.active = True
        paused = self._paused({pending.task.id for pending in recovered})
        for pending in recovered:  # (of a task paused while none ran: skipped, as a pause's)
            if pending.task.id in paused and pending.trigger is not RunTrigger.MANUAL:
                self.runner.skip_found(pending)
            else:
                self.runner.submit(pending)
        if self.shared is None:
            self._take_waiting()
        else:
            self._share_waiting()
        logger.info("scheduler active on %s (pid %d)", self.store.display_url, os.getpid())
        if self._reaps and self.settings.role == "all":
            with contextlib.suppress(StorageError):  # (a warning: never a failed start)
                if list_workers(self.store):
                    logger.warning(_MIXED_ROLES)

    def _paused(self, task_ids: set[str]) -> set[str]:
        """Which of ``task_ids`` are paused."""
        if not task_ids:
            return set()
        with self.store.transaction() as tx:
            return {task_id for task_id, row in tx.get_tasks(task_ids).items() if row.paused}

    async def stop(self, grace_seconds: float) -> None:
        """Stop dispatching, let running runs finish for ``grace_seconds``, then cancel them.
        A prune going on stops after the thread whose checkpoints it deletes, and is waited
        for: the graph's checkpointer is closed after this."""
        self._stopping.set()
        if self._poll_task is not None:
            self._poll_task.cancel()
            await asyncio.gather(self._poll_task, return_exceptions=True)
            self._poll_task = None
        if self._pruning is not None:  # (asyncio.wait: a cancelled stop does not cancel it)
            await asyncio.wait({self._pruning})
            self._pruning = None
        if self.active and self._fenced_out:  # another process is active: let go
            self._let_go()
        if self.active:
            self.dispatcher.shutdown()
            await self.runner.stop(grace_seconds)
            try:
                await self.run_log.close()
            except StorageError as exc:
                logger.error("could not write the last run records: %s", exc)
            self.active = False
        self.lock.release()

    # -- polling --------------------------------------------------------------------------

    async def _poll_forever(self) -> None:
        interval = self.settings.poll_interval_seconds
        failing = False
        while True:
            with contextlib.suppress(TimeoutError):  # a refused write asks for a poll at once
                async with asyncio.timeout(interval):  # (not wait_for: see RunLog)
                    await self._poll_soon.wait()
            self._poll_soon.clear()
            try:
                self._poll_once()
            except StorageError as exc:
                busy = isinstance(exc, DatabaseBusyError)  # (a lock held elsewhere: quietly)
                if not failing and not busy:
                    logger.warning("cannot poll the database for changes (will retry): %s", exc)
                failing = failing or not busy
            else:
                if failing:
                    logger.info("polling the database for changes again")
                failing = False

    def _warm_followers(self) -> None:
        if self.followers.upstreams:
            self.loop.run_in_executor(OWN.executor(), self.followers.warm)

    def note_revision(self, revision: int) -> None:
        """A change made here wrote ``revision`` and needs no reload: if it follows the
        one last seen, the poll need not reload for it (else another change came between)."""
        if revision == self._revision + 1:
            self._revision = revision
        self.followers.moved_to(revision)

    def _poll_once(self) -> None:
        clock = self.clock
        if isinstance(clock, DatabaseClock) and clock.due():
            clock.measure()
        if not self.active:
            if self.lock.try_acquire():
                logger.info("the previous active scheduler is gone; taking over")
                self._activate()
            return
        if (self._fenced_out or not self.lock.is_held()) and not self._take_lock_back():
            return
        revision = self.store.revision()
        if revision != self._revision:
            self.followers.refresh()
            self._warm_followers()
            self.dispatcher.forget()
            self._pick_up_changes()
            for run_id in self.store.cancel_requests(None):  # asked by another process
                self.runner.cancel_run(run_id)
            self._revision = revision  # (seen once picked up: an error tries it again)
            self.dispatcher.wakeup()
        elif self._overdue():
            logger.warning("the dispatcher missed its wake-up; waking it")
            self.dispatcher.wakeup()
        if self._reaps and self.clock() - self._last_reap >= self._reap_every:
            self._last_reap = self.clock()
            self.recovery.reap(self.settings.worker_lease_seconds)
            self.runner.call_failure_callbacks(self.recovery.take_failed())
        if self.background_prune and self.clock() - self._last_prune > _PRUNE_EVERY:
            self._last_prune = self.clock()
            if self._pruning is None or self._pruning.done():
                self._pruning = self.loop.create_task(self._prune(), name="scheduler-prune")

    def _fence(self) -> Callable[[Transaction], None]:
        """What the active process's own writes check first, bound to its epoch now: no
        other process has become active since (the epoch is still the last). Between a lost
        lock and the next poll, nothing more is dispatched, started or settled here, and
        nothing is written that the process taking over would not know of."""
        epoch = self._epoch

        def check(tx: Transaction) -> None:
            try:
                tx.check_epoch(epoch)
            except LeadershipLostError:
                if epoch == self._epoch:  # the next poll lets go, even with the lock held
                    self._fenced_out = True
                    with contextlib.suppress(RuntimeError):  # (a closed loop: stopped)
                        self.loop.call_soon_threadsafe(self._poll_soon.set)
                raise

        return check

    def _take_lock_back(self) -> bool:
        """The leader lock was lost (its connection dropped), or a write was refused (another
        epoch was taken): carry on if this process holds or takes the lock back and no other
        was active meanwhile (True). Else the runs here are another process's now: let go of
        them without recording anything (it settles them as a dead process's, and a run must
        not reach the graph twice), and stand by, or start over from the database if the
        lock came back (or stayed) after another process had an epoch."""
        url = self.store.display_url
        if self.lock.try_acquire():
            try:
                same = self.store.leader_epoch() == self._epoch
            except StorageError:
                self.lock.release()  # not held unchecked: the next poll tries it all again
                raise
            if same:
                self._fenced_out = False
                logger.warning("the leader lock on %s was lost and taken back; carrying on", url)
                return True
        abandoned = self._let_go()
        logger.error(
            "lost the leader lock on %s to another process; dispatching stopped and %d run(s) "
            "here were left to it",
            url,
            len(abandoned),
        )
        if self.lock.is_held():  # taken back, after another process: start over
            self._activate()
        return False

    def _let_go(self) -> set[str]:
        """Stop dispatching and let go of every run here, recording nothing more about them
        (another process settles them); returns their ids."""
        self.dispatcher.shutdown()
        abandoned = self.runner.abandon()
        self.run_log.abandon(abandoned)
        self.active = False
        return abandoned

    @property
    def _reap_every(self) -> float:
        return min(self.settings.worker_lease_seconds / 4, 5.0)

    def _overdue(self) -> bool:
        return self.loop.time() - self.dispatcher.last_processed > 65.0

    async def _prune(self) -> None:
        try:
            deleted = await OWN.run(self.prune, self._stopping.is_set)
        except StorageError as exc:
            logger.warning("could not prune run history: %s", exc)
            return
        if deleted:
            logger.info("pruned %d old run record(s)", deleted)
