"""The stopping half of the runner: cancelling runs in flight, letting go of every run
(another process took over), and stopping with a grace period (a mixin of
:class:`~scheduler.runner.Runner`, which provides the state)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

from scheduler.clock import Timer
from scheduler.enums import RunStatus
from scheduler.handover import hand_over
from scheduler.invocation import CANCEL_ASKED
from scheduler.pending import PendingRun
from scheduler.runlog import RunLog
from scheduler.waiting_runs import WaitingRuns

__all__ = ["RunnerStopping"]

logger = logging.getLogger("scheduler.runner")

# the message of a cancellation by stop(): a run it cancels before its start is committed
# is put back (the next start runs it), where one cancelled by cancel_run() is cancelled
STOPPING = "the scheduler is stopping"


class RunnerStopping:
    """Cancelling, letting go and stopping (a mixin; the runner provides the state)."""

    _running: dict[str, asyncio.Task[None]]
    _abandoned: set[asyncio.Task[None]]
    _expiring: set[asyncio.Task[None]]
    _waiting: WaitingRuns
    _delayed: dict[str, tuple[Timer, PendingRun]]
    _heap: list[tuple[int, float, int, PendingRun]]
    _buffered: dict[str, PendingRun]
    _in_progress: Counter[str]
    _known: set[str]
    _started: dict[str, None]
    _accepting: bool
    _idle: asyncio.Event
    _log: RunLog

    if TYPE_CHECKING:  # provided by Runner

        def _pump(self) -> None: ...
        def _check_idle(self) -> None: ...
        def _release(self, task_id: str) -> None: ...
        def cancel_waiting(self, run_id: str) -> bool: ...

    def is_running(self, run_id: str) -> bool:
        """The run is in flight here."""
        return run_id in self._running

    def cancel_run(self, run_id: str) -> bool:
        """Cancel one run in flight, or waiting here for an answer (it records ``cancelled``);
        False if it is neither."""
        task = self._running.get(run_id)
        if task is None:
            return self.cancel_waiting(run_id)
        task.cancel(CANCEL_ASKED)
        return True

    def cancel_running(self) -> None:
        """Cancel every run in flight (each records ``cancelled``; while stopping, one whose
        start is not yet committed is put back instead: :meth:`_put_back`)."""
        for task in self._running.values():
            task.cancel(CANCEL_ASKED if self._accepting else STOPPING)

    def _put_back(self, pending: PendingRun, cancelled: asyncio.CancelledError) -> bool:
        """A run that the stop cancelled while its start was being committed (its graph not
        called) goes back to ``queued``, or to ``waiting`` with its answer if it was being
        resumed: the next start (or another worker) runs it, as the runs not started. False
        for any other cancellation (``cancel_run``, a run let go of): it is recorded."""
        current = asyncio.current_task()
        if STOPPING not in cancelled.args or current in self._abandoned:
            return False
        back: dict[str, Any] = {"status": RunStatus.QUEUED, "started_at": None}
        if pending.resuming:  # (the start's commit took the answer off the record)
            answer = json.dumps(pending.resume)
            back = {
                "status": RunStatus.WAITING,
                "answer": answer,
                "interrupts": pending.asked,
                "started_at": pending.started_at,
            }
        self._log.update(pending.run_id, **back)
        if self._running.get(pending.run_id) is current:
            del self._running[pending.run_id]
        self._known.discard(pending.run_id)
        self._release(pending.task.id)
        self._check_idle()
        run_id, task_id = pending.run_id, pending.task.id
        logger.info("run %s of task %s put back: stopped before it started", run_id, task_id)
        return True

    def _forget_unstarted(self) -> None:
        """Drop the runs not started: waiting, delayed (retries), queued and buffered."""
        self._waiting.close()
        for handle, _ in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        self._heap.clear()
        self._buffered.clear()

    def abandon(self) -> set[str]:
        """Let go of every run here without recording anything more about them: another
        process has taken over the database and settles them as a dead process's runs
        (interrupted, or resumed there). Runs in flight are cancelled; queued, delayed,
        buffered and waiting ones are forgotten. Returns their ids; runs accepted later
        are taken as usual. What a run in flight started elsewhere (a run on a LangGraph
        server) goes on: the retry of the process that took over adopts it
        (:mod:`scheduler.handover`)."""
        ids = set(self._known) | set(self._running) | self._waiting.ids()
        self._forget_unstarted()
        self._in_progress.clear()
        self._known.clear()
        self._started.clear()  # (what is handed back on a start over is queued again)
        for task in self._running.values():
            self._abandoned.add(task)
            task.add_done_callback(self._let_go_ended)
            hand_over(task)
        self._running.clear()  # a start over may take the same runs (in their own tasks)
        self._check_idle()
        return ids

    def _let_go_ended(self, task: asyncio.Task[None]) -> None:
        """A run let go of has ended (however: it records nothing): its slot is free."""
        self._abandoned.discard(task)
        self._pump()
        self._check_idle()

    async def stop(self, grace_seconds: float) -> None:
        """Start nothing more; let running runs finish for ``grace_seconds``, then cancel
        them (recorded ``cancelled``). Runs not started stay ``queued`` in the database and are
        picked up by the next start (waiting ones stay ``waiting``)."""
        self._accepting = False
        self._forget_unstarted()
        if self._abandoned or self._expiring:  # (the abandoned record nothing more)
            await asyncio.wait(self._abandoned | self._expiring, timeout=grace_seconds)
        running = list(self._running.values())
        if running:
            logger.info(
                "waiting up to %.1f s for %d running run(s) to finish", grace_seconds, len(running)
            )
            _, late = await asyncio.wait(running, timeout=grace_seconds)
            for task in late:
                task.cancel(STOPPING)
            if late:
                await asyncio.gather(*late, return_exceptions=True)
        self._idle.set()
