"""The lease of a worker process: heartbeats that renew it, the fence of its writes, and
stopping at once when it lapsed (a mixin of :class:`~scheduler.workers.worker.Worker`).

A worker that cannot renew its lease for half of it, or finds itself declared dead, stops
and records nothing more about its runs: the scheduler's reaper settles them as a dead
worker's (``interrupted``, retried elsewhere). Each transaction that writes its run records
first checks that it is still registered, so one frozen past its lease (SIGSTOP, a long
pause) writes nothing over what the reaper decided before its next heartbeat tells it; and
it calls a run's result or failure callback only while its lease holds
(:meth:`WorkerLease._lease_holds`): thawed, it called them for runs the reaper had recorded
``interrupted`` and handed on (two results of one occurrence).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from scheduler.exceptions import LeadershipLostError, StorageError
from scheduler.storage import Transaction
from scheduler.storage.registry import is_registered, worker_heartbeat

if TYPE_CHECKING:
    from collections.abc import Callable

    from scheduler.clock import DatabaseClock
    from scheduler.offload import Offloader
    from scheduler.runlog import RunLog
    from scheduler.runner import Runner
    from scheduler.settings import Settings
    from scheduler.storage import Store

__all__ = ["WorkerLease"]

logger = logging.getLogger("scheduler.worker")
_DEAD = "was declared dead by the scheduler (its lease ran out)"


class WorkerLease:
    """The lease half of a worker (the worker provides the state)."""

    id: str
    store: Store
    settings: Settings
    loop: asyncio.AbstractEventLoop
    clock: DatabaseClock
    run_log: RunLog
    runner: Runner
    failed: str | None
    _stopping: bool
    _heartbeat: Offloader
    _renewed_at: float  # (time.monotonic() when the last renewal that came in was asked)

    if TYPE_CHECKING:  # provided by Worker

        def _timed(self, call: Callable[[], float | None]) -> float | None: ...
        async def stop(self, grace_seconds: float) -> None: ...

    async def _beat_forever(self) -> None:
        lease = self.settings.worker_lease_seconds
        while True:
            await asyncio.sleep(lease / 6)
            try:
                renewed = await self._renew()
            except (StorageError, TimeoutError) as exc:
                reason = str(exc) or f"{type(exc).__name__}: no answer within {lease / 3:g} s"
                if time.monotonic() - self._renewed_at > lease / 2:
                    self._fail(f"could not renew its lease for {lease / 2:g} s ({reason})")
                    return
                logger.warning(
                    "worker %s: could not renew its lease (will retry): %s", self.id, reason
                )
                continue
            if renewed is None:  # its runs are settled already: nothing more about them
                self._fail(_DEAD)
                return

    async def _renew(self) -> float | None:
        """Renew the lease on the heartbeat's thread, within a third of it: the database's
        time, or None when this worker was declared dead. A renewal counts from when it was
        asked (its answer may reach the loop much later: a freeze)."""
        asked = time.monotonic()
        async with asyncio.timeout(self.settings.worker_lease_seconds / 3):
            renewed = await self._heartbeat.run(self._timed, self._renew_lease)
        if renewed is not None:
            self._renewed_at = asked
        return renewed

    async def _lease_holds(self) -> None:
        """Awaited before a run's result or failure callback (``Runner.before_callback``).
        A lease renewed within a third of it holds (renewals come every sixth); an older
        one (the worker was frozen, or its heartbeats are late) is renewed first, so that
        a worker the reaper declared dead meanwhile calls nothing for runs it handed on:
        then this run is let go of (``CancelledError``) as the worker stops. While the
        renewal fails, the heartbeat decides (it stops the worker at half the lease)."""
        lease = self.settings.worker_lease_seconds
        while time.monotonic() - self._renewed_at > lease / 3:
            if self.failed is not None:  # stopped by itself meanwhile: the run is let go of
                raise asyncio.CancelledError
            try:
                renewed = await self._renew()
            except (StorageError, TimeoutError):
                await asyncio.sleep(lease / 12)
                continue
            if renewed is None:
                if self.failed is None:
                    self._fail(_DEAD)
                raise asyncio.CancelledError

    def _check_registered(self, tx: Transaction) -> None:
        """What each write of this worker's run records checks first (its fence): the worker
        is still registered. Declared dead (frozen or cut off past its lease), its runs are
        the scheduler's: interrupted, retried elsewhere. A run's outcome written after that
        inserted its retry a second time, and a start was recorded over the reaper's."""
        if not is_registered(tx, self.id):
            with contextlib.suppress(RuntimeError):  # (a closed loop: stopped)
                self.loop.call_soon_threadsafe(self._declared_dead)
            raise LeadershipLostError(f"worker {self.id} was declared dead; writes nothing more")

    def _declared_dead(self) -> None:
        if self.failed is None and not self._stopping:
            self._fail(_DEAD)

    def _renew_lease(self) -> float | None:
        return worker_heartbeat(self.store, self.id)

    def _fail(self, why: str) -> None:
        """Stop at once, recording nothing more about the runs here: the scheduler settles
        them as a dead worker's once the lease has lapsed (``interrupted``, retried per the
        task's ``max_retries`` by another worker; those held but not started go back to
        the queue). Recorded ``cancelled`` here, they would never be retried."""
        self.failed = (
            f"worker {self.id} {why}; stopping (its runs are cancelled here, and the "
            "scheduler retries them elsewhere)"
        )
        logger.error("%s", self.failed)
        self.run_log.abandon(self.runner.abandon())
        if not self._stopping:
            self.loop.create_task(self.stop(0.0), name="worker-stop")
