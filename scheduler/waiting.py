"""Runs waiting for a human: a graph that called ``interrupt()`` stopped, its run is
``waiting`` (recorded with what it asked), and it goes on when someone answers.

A waiting run still counts as in flight for its task's overlap policy (it is not finished),
but it takes no slot of ``max_concurrent_runs`` (nothing runs). It ends ``timed_out`` when
no answer comes within ``waiting_timeout_seconds`` (the task's, else the setting; none: it
waits for ever, across restarts).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any

from scheduler.callbacks import CallbackPolicy
from scheduler.documents import DocumentError, load_json
from scheduler.enums import RunStatus
from scheduler.events import EventBus, EventKind, RunEvent
from scheduler.exceptions import LeadershipLostError, StorageError
from scheduler.invocation import Outcome
from scheduler.logs import run_fields
from scheduler.outcomes import call_run_callback, call_task_callback, preview
from scheduler.pending import PendingRun
from scheduler.pools import OWN
from scheduler.rows import finished_run, run_record, settled
from scheduler.runlog import RunLog
from scheduler.settings import Settings
from scheduler.storage import RunRow
from scheduler.waiting_runs import WaitingRuns

__all__ = ["RunnerWaiting"]

logger = logging.getLogger("scheduler.runner")

_CANCELLED = "cancelled while waiting for an answer"


class RunnerWaiting:
    """The waiting half of :class:`~scheduler.runner.Runner`: runs stopped at
    ``interrupt()``, answered, or timed out (a mixin; the runner provides the state)."""

    _settings: Settings
    _policy: CallbackPolicy
    _log: RunLog
    _clock: Callable[[], float]
    _waiting: WaitingRuns
    _events: EventBus
    _known: set[str]
    _started: dict[str, None]
    _in_progress: Counter[str]
    _expiring: set[asyncio.Task[None]]
    hand_off: Callable[[PendingRun], None] | None

    if TYPE_CHECKING:  # provided by Runner

        def _queue(self, pending: PendingRun) -> None: ...
        def _release(self, task_id: str) -> None: ...
        def _pump(self) -> None: ...
        def _check_idle(self) -> None: ...

    async def _start_waiting(
        self, pending: PendingRun, outcome: Outcome, thread_id: str, now: float
    ) -> None:
        """The graph stopped at ``interrupt()``: record ``waiting`` and hold the run (it
        still counts as in flight for its task) until it is answered or times out."""
        # Committed before anyone hears of it: an answer may come at once.
        await self._log.commit(
            pending.run_id,
            status=RunStatus.WAITING,
            thread_id=thread_id,  # (an adopted run's: the answer goes there)
            waiting_since=now,
            interrupts=outcome.interrupts,
            output=outcome.output,
        )
        if pending.run_id not in self._known:  # let go of meanwhile (Runner.abandon)
            return
        self._waiting.hold(pending, thread_id=thread_id, since=now, asked=outcome.interrupts)
        if self._events.wants(pending.task):
            self._emit("waiting", pending, outcome, thread_id, pending.started_at, now)
        logger.info(
            "task %s run %s waiting for an answer (thread %s): %s; answer with: python -m "
            "scheduler answer %s JSON",
            pending.task.id,
            pending.run_id,
            thread_id,
            preview(outcome.interrupts),
            pending.run_id,
            extra=run_fields(
                task_id=pending.task.id,
                run_id=pending.run_id,
                status=RunStatus.WAITING,
                attempt=pending.attempt,
                thread_id=thread_id,
            ),
        )
        await call_run_callback(
            pending,
            outcome,
            "on_waiting_callback",
            thread_id,
            pending.started_at,
            now,
            policy=self._policy,
            settings=self._settings,
        )
        self._pump()
        self._check_idle()

    def hold_waiting(self, pending: PendingRun, *, thread_id: str, since: float) -> None:
        """Take a run found ``waiting`` at start (it waited while no scheduler ran)."""
        if pending.run_id in self._known:
            return
        self._known.add(pending.run_id)
        self._in_progress[pending.task.id] += 1
        self._waiting.hold(pending, thread_id=thread_id, since=since)

    def answer(self, run_id: str, value: Any) -> bool:
        """Resume a waiting run with ``value`` (its record already holds the answer);
        False if it is not waiting here."""
        return self._waiting.answer(run_id, value)

    def waiting_ids(self) -> set[str]:
        """The runs waiting here."""
        return self._waiting.ids()

    def let_go_ended(self, stored: Iterable[RunRow]) -> None:
        """Let go of the runs waiting here that another process ended (``stored``: their
        rows, read by :func:`ended_elsewhere`), as it recorded them: a removal of their
        task ended them, even if the task was added again under its id since."""
        for row in stored:
            pending = self._waiting.take(row.id)
            if pending is not None:
                self._ended_elsewhere(pending, row)

    def is_waiting(self, run_id: str) -> bool:
        return bool(run_id in self._waiting)

    def is_ending(self, run_id: str) -> bool:
        """Known here and not held waiting: for a run whose record still says ``waiting``,
        one being ended (a cancel, its waiting timeout) or resumed."""
        return run_id in self._known and run_id not in self._waiting

    def _resume(self, pending: PendingRun) -> None:
        pending.resuming = True
        if self.hand_off is None:
            self._queue(pending)  # its task is still in progress: no admission again
            return
        self._known.discard(pending.run_id)
        self._started.pop(pending.run_id, None)  # (this worker may claim it again)
        self._release(pending.task.id)
        self._check_idle()
        self.hand_off(pending)

    def _expire_waiting(self, pending: PendingRun, timeout: float) -> None:
        message = f"no answer within {timeout:g} s (waiting_timeout_seconds)"
        self._ending(self._settle(pending, RunStatus.TIMED_OUT, "WaitingTimeout", message))

    def _ending(self, ending: Coroutine[Any, Any, None]) -> None:
        """Run a waiting run's ``ending`` as a task kept in ``_expiring`` (a stop waits
        for it) until it is done."""
        task = asyncio.get_running_loop().create_task(ending)
        self._expiring.add(task)
        task.add_done_callback(self._expiring.discard)

    def cancel_waiting(self, run_id: str) -> bool:
        """End a run waiting here ``cancelled``, as its waiting timeout would end it (an
        answer given elsewhere first wins); False if it is not waiting here."""
        pending = self._waiting.take(run_id)
        if pending is None:
            return False
        self._ending(self._settle(pending, RunStatus.CANCELLED, "Cancelled", _CANCELLED))
        return True

    async def _settle(
        self, pending: PendingRun, status: RunStatus, kind: str, message: str
    ) -> None:
        now = self._clock()
        change = settled(pending.run_id, status, now=now, kind=kind, message=message)
        # an answer given elsewhere in time wins, even if this process has not seen it; the
        # timeout is written with what follows it (a fallback), so a crash loses neither
        try:
            stored = await OWN.run(self._log.settle_unanswered, pending.task.id, dict(change))
            written = stored is None
        except LeadershipLostError:
            return  # another process is active now: the run is its own
        except StorageError:
            stored, written = None, False  # written by the run log's flush when it is back
        if pending.run_id not in self._known:  # let go of meanwhile (Runner.abandon)
            return
        if stored is not None and stored.status != RunStatus.WAITING:
            self._ended_elsewhere(pending, stored)
            return
        if stored is not None and stored.answer is not None:
            try:
                pending.resume = load_json(stored.answer, what="the stored answer")
            except DocumentError as exc:  # no answer it can go on with: it times out
                logger.warning("run %s: %s", pending.run_id, exc)
            else:
                self._resume(pending)
                return
        if not written:
            self._log.end(pending.task.id, change)
        await self._end(pending, status, kind, message, now)

    def refuse_answer(self, run_id: str, reason: str) -> bool:
        """End a run waiting here ``failed`` (``BadAnswer``): its recorded answer cannot
        be read, so it cannot go on. Its end is recorded, followed (a fallback on
        ``failed`` runs), told and called back as any failed run's; False if it is not
        waiting here."""
        pending = self._waiting.take(run_id)
        if pending is None:
            return False
        self._refuse(pending, reason)
        return True

    def refuse_claimed(self, pending: PendingRun, reason: str) -> None:
        """End ``pending`` as :meth:`refuse_answer` does: an answered run a worker claimed
        to resume (queued for any worker once answered), whose answer cannot be read."""
        self._known.add(pending.run_id)
        self._in_progress[pending.task.id] += 1  # (released by its end)
        self._refuse(pending, reason)

    def _refuse(self, pending: PendingRun, reason: str) -> None:
        now = self._clock()
        change = settled(
            pending.run_id, RunStatus.FAILED, now=now, kind="BadAnswer", message=reason
        )
        self._log.end(pending.task.id, change)
        self._ending(self._end(pending, RunStatus.FAILED, "BadAnswer", reason, now))

    async def _end(
        self, pending: PendingRun, status: RunStatus, kind: str, message: str, now: float
    ) -> None:
        """Let go of a waiting run whose end (``status``, ``kind``) is recorded: its
        listeners hear of it, then its failure callback is called (not for a cancel)."""
        cancelled = status is RunStatus.CANCELLED  # (cancel_run: the user's, not a failure)
        (logger.info if cancelled else logger.warning)(
            "task %s run %s ended %s while waiting: %s",
            pending.task.id,
            pending.run_id,
            status,
            message,
            extra=run_fields(
                task_id=pending.task.id, run_id=pending.run_id, status=status, error_type=kind
            ),
        )
        self._known.discard(pending.run_id)
        self._release(pending.task.id)
        wanted = self._events.wants(pending.task)
        record = None
        if wanted or (not cancelled and pending.task.on_failure_callback):
            record = await self._log.stored(pending.run_id)  # as stored, as a run that ran ends
            if record is None or record.status is not status:  # (unreadable: what is known)
                outcome = Outcome(status, error_type=kind, error_message=message)
                record = finished_run(
                    pending,
                    outcome,
                    thread_id=pending.thread_id or "",
                    started=pending.started_at,
                    finished=now,
                )
        if wanted and record is not None:
            self._events.emit(RunEvent("finished", record, pending.task))
        self._check_idle()
        if cancelled or record is None:  # as for a running run cancelled: no failure callback
            return
        # in this task, as a failed run's is in its run's: what waits for the timeouts being
        # written (a test clock's advance, a stop's grace) waits for the callback too
        await call_task_callback(
            pending.task,
            record,
            "on_failure_callback",
            policy=self._policy,
            settings=self._settings,
        )

    def _ended_elsewhere(self, pending: PendingRun, stored: RunRow) -> None:
        """Its waiting timeout came after another process ended it (removed its task):
        let go of it as that process recorded it (its listeners get that record), with no
        timeout and no failure callback."""
        logger.info(
            "task %s run %s ended elsewhere while waiting (%s): %s",
            pending.task.id,
            pending.run_id,
            stored.status,
            stored.error_message,
        )
        self._known.discard(pending.run_id)
        self._release(pending.task.id)
        if self._events.wants(pending.task):
            self._events.emit(RunEvent("finished", run_record(stored), pending.task))
        self._check_idle()

    def _emit(
        self,
        kind: EventKind,
        pending: PendingRun,
        outcome: Outcome,
        thread_id: str,
        started: float | None,
        finished: float | None,
    ) -> None:
        record = finished_run(
            pending, outcome, thread_id=thread_id, started=started, finished=finished
        )
        resumed = kind == "started" and pending.resuming
        self._events.emit(RunEvent(kind, record, pending.task, resumed=resumed))
