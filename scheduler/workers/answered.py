"""Answered runs with workers: a run that waited at ``interrupt()`` in one worker and was
answered goes back to the queue for any worker, instead of resuming where it waited.

Runs of one thread take turns across workers, and a waiting run holds no turn (in one
process too, other runs of its thread go on meanwhile). Resumed where it waited, an answered
run started at once, beside a run of its thread that another worker was running: both read
one checkpoint, and the later write dropped the other's turn. Queued for any worker, it is
claimed as every run is: only while none of its thread's runs is claimed or running. Its
answer, interrupts and thread stay on its row; the worker that claims it resumes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from scheduler.documents import DocumentError, load_json
from scheduler.exceptions import StorageError
from scheduler.models import TaskDefinition
from scheduler.pending import PendingRun, pending_of
from scheduler.pools import OWN
from scheduler.runner import Runner
from scheduler.settings import Settings
from scheduler.storage import RunRow, Store
from scheduler.storage.workers import share_answered

__all__ = ["AnsweredRuns"]

logger = logging.getLogger("scheduler.worker")


class AnsweredRuns:
    """Hands the answered runs of one worker's runner on (:meth:`hand_off`, the runner's
    ``hand_off``) and resumes the answered runs that worker claims (:meth:`resumed`).

    Args:
        store: The PostgreSQL database.
        worker_id: The worker's id (the ``worker`` of the runs it holds).
        runner: The worker's runner, which holds its waiting runs.
        settings: The default priority.
        clock: The database's time.
        retry_soon: Called when a hand-off could not be written: look again soon.
    """

    def __init__(
        self,
        *,
        store: Store,
        worker_id: str,
        runner: Runner,
        settings: Settings,
        clock: Callable[[], float],
        retry_soon: Callable[[], None],
    ) -> None:
        self._store = store
        self._worker_id = worker_id
        self._runner = runner
        self._settings = settings
        self._clock = clock
        self._retry_soon = retry_soon
        self._writing: set[asyncio.Task[None]] = set()
        runner.hand_off = self.hand_off

    def hand_off(self, pending: PendingRun) -> None:
        """``pending`` was answered and let go of by the runner: queue it for any worker."""
        task = asyncio.get_running_loop().create_task(
            self._share(pending), name=f"hand-off:{pending.run_id}"
        )
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    async def _share(self, pending: PendingRun) -> None:
        rank = (pending.task.priority or self._settings.priority).rank
        try:
            shared = await OWN.run(
                share_answered, self._store, self._worker_id, pending.run_id, rank=rank
            )
        except StorageError as exc:
            # held again: the next look at the answers hands it on (it stays answered)
            logger.warning(
                "run %s: could not queue it to resume (will retry): %s", pending.run_id, exc
            )
            assert pending.thread_id is not None  # (a waiting run has its thread)
            self._runner.hold_waiting(pending, thread_id=pending.thread_id, since=self._clock())
            self._retry_soon()
            return
        if shared:
            logger.info("run %s answered: queued to resume on its thread's turn", pending.run_id)

    async def settle(self) -> None:
        """Wait for the hand-offs being written."""
        while self._writing:
            await asyncio.gather(*self._writing, return_exceptions=True)

    @staticmethod
    def resumed(run: RunRow, task: TaskDefinition) -> PendingRun | str:
        """The run to resume of a claimed answered run (``run.answer`` set), or why it
        cannot go on."""
        if run.thread_id is None or run.answer is None:
            return "its record has no thread or answer to resume with"
        try:
            value = load_json(run.answer, what="the stored answer")
        except DocumentError as exc:
            return str(exc)
        return pending_of(run, task, resume=value, resuming=True, thread_id=run.thread_id)
