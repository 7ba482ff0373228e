"""Runs asked for by hand: the run-now and answer half of :class:`~scheduler.TaskScheduler`,
on top of its task writes. A run queued now (``run_task_now``) or an answer to a waiting
run (``resume_run``) is recorded through the one write path and handed to the active
scheduler; ``run_task_here`` / ``resume_run_here`` run it in this process when no
scheduler runs on the database (the CLI's ``--wait``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from scheduler.alone import run_alone
from scheduler.dependencies.follow import Followers
from scheduler.enums import RunStatus, RunTrigger
from scheduler.exceptions import (
    AnswerMismatchError,
    RunNotFoundError,
    RunNotWaitingError,
    SchedulerError,
)
from scheduler.limits import check_json_value
from scheduler.pending import PendingRun, new_run_id, pending_of
from scheduler.records import RunRecord
from scheduler.rows import decode_or_raise, queued_run
from scheduler.runlog import Follow
from scheduler.storage import RunRow
from scheduler.writes import TaskWrites

__all__ = ["RunWrites", "check_answer"]

logger = logging.getLogger(__name__)

# How LangGraph tells an answer per question from one answer: an object whose keys are
# all interrupt ids (xxh3-128 hex digests).
_QUESTION_ID = re.compile(r"[0-9a-f]{32}")


def check_answer(value: Any) -> None:
    """``value`` can answer a waiting run: JSON within the limits of task input, and not
    null (LangGraph takes ``Command(resume=None)`` for no answer at all: the run would not
    go on, or would fail).

    Raises:
        ValueError: It cannot (the message names the answer).
    """
    if value is None:
        raise ValueError(
            "the answer must not be null (LangGraph takes a null answer for none at all); "
            'answer with a value, e.g. "yes", false or {}'
        )
    try:
        check_json_value(value, checkpointed=True)
    except ValueError as exc:
        raise ValueError(f"the answer {exc}") from None


def check_fits(run_id: str, interrupts: str | None, value: Any) -> None:
    """``value`` answers the questions a run waits at (``interrupts``: its recorded JSON).

    One answer goes to one question. A run waiting at several at once (parallel branches
    that each called ``interrupt()``) takes an object mapping question ids to answers (some
    of them: it waits again for the others); LangGraph fails the run on a single value. An
    object keyed by question ids names only questions the run asked.

    Raises:
        AnswerMismatchError: It does not fit (nothing was written).
    """
    try:
        asked = [str(q["id"]) for q in json.loads(interrupts or "[]") if q.get("id") is not None]
    except (ValueError, TypeError, AttributeError, KeyError):
        return  # not what this package records: LangGraph decides
    by_id = (
        isinstance(value, dict)
        and bool(value)
        and all(isinstance(k, str) and _QUESTION_ID.fullmatch(k) for k in value)
    )
    if by_id:
        unknown = sorted(set(value) - set(asked))
        if unknown:
            problem = f"the answer names question(s) it did not ask ({', '.join(unknown)})"
            raise AnswerMismatchError(run_id, asked, problem)
    elif len(asked) > 1:
        raise AnswerMismatchError(run_id, asked, "one value cannot answer them all")


class RunWrites(TaskWrites):
    """Runs asked for by hand, and answers to waiting runs."""

    if TYPE_CHECKING:  # provided by TaskScheduler

        async def _close_graph_connections(self) -> None: ...

    def run_task_now(self, task_id: str) -> str:
        """Queue a run of the task now, whatever its schedule or paused state; returns the
        run id. The active scheduler starts it (also one in another process)."""
        pending = self._queue_manual(task_id)
        supervisor = self._supervisor
        if supervisor is not None and supervisor.active and supervisor.shared is None:
            # (a leader whose workers run the runs queues it for them at its next poll)
            self._on_loop(supervisor.runner.submit, pending)
        logger.info("task %s run %s requested", task_id, pending.run_id)
        return pending.run_id

    def _queue_manual(self, task_id: str) -> PendingRun:
        """Record a run of ``task_id`` asked for now, queued; the run to start."""
        run_id = new_run_id()
        with self._changing() as changes:
            task = decode_or_raise(changes.row(task_id))
            now = changes.now
            trigger = RunTrigger.MANUAL
            queued = queued_run(
                run_id, task_id, scheduled_for=now, queued_at=now, trigger=trigger,
                thread_id=task.thread_id,  # (on its thread while queued: that thread is busy)
            )  # fmt: skip
            changes.add_runs([queued])
        return PendingRun(run_id, task, now, trigger=trigger, queued_at=now)

    async def run_task_here(self, task_id: str, *, timeout: float | None = None) -> RunRecord:
        """Run the task once, now, in this process, without starting the scheduler (no
        other task fires, nothing else is dispatched), and return its final record, after
        its retries. For scripts and the CLI's ``run --wait`` when no scheduler runs on the
        database; a started scheduler uses :meth:`run_task_now`.

        Raises:
            TaskNotFoundError: No such task.
            SchedulerError: This scheduler is started, or another process is active on the
                database.
            TimeoutError: It did not finish within ``timeout`` seconds (it was cancelled).
        """
        if self._supervisor is not None:
            raise SchedulerError("run_task_here() on a started scheduler; use run_task_now()")
        self._store.setup()
        self.graph()
        queued: list[PendingRun] = []

        def prepare() -> PendingRun:
            queued.append(self._queue_manual(task_id))
            return queued[0]

        await self._alone(prepare, timeout)
        attempts = [r for r in self.list_runs(task_id, limit=None) if r.id >= queued[0].run_id]
        return attempts[0]  # the newest: the last attempt

    async def _alone(self, prepare: Callable[[], PendingRun], timeout: float | None) -> None:
        """:func:`~scheduler.alone.run_alone` of what ``prepare`` records, here; the graph's
        connections (a LangGraph server's) are this event loop's, closed when it is done."""
        try:
            await run_alone(
                store=self._store,
                settings=self.settings,
                graph=self.graph,
                prepare=prepare,
                timeout=timeout,
                clock=self._clock,
                events=self._events,
                follow=self._queue_followers(),
            )
        finally:
            await self._close_graph_connections()

    def _queue_followers(self) -> Follow:
        """For a run made here (no scheduler started): what queues the runs of the tasks
        that run after it, with its final outcome, for the scheduler to start."""
        followers = Followers(
            self._store, clock=self._clock, output_chars=self.settings.output_max_chars
        )
        return followers.follow

    def resume_run(self, run_id: str, value: Any) -> None:
        """Answer a ``waiting`` run (one whose graph called ``interrupt()``): the run goes on
        with ``Command(resume=value)`` on its thread, recorded on the same run. The active
        scheduler resumes it (also one in another process, within
        ``SCHEDULER_POLL_INTERVAL_SECONDS``); with none running, it resumes at the next
        start (or use :meth:`resume_run_here`).

        Raises:
            RunNotFoundError: No such run.
            RunNotWaitingError: It is not waiting, has been answered already, or has
                been asked to cancel (:meth:`cancel_run` from another process).
            ValueError: ``value`` is null, or not JSON within the limits of task input
                (:func:`check_answer`); nothing is written.
            AnswerMismatchError: The run waits at several questions and ``value`` is not
                an object of answers by question id, or it names a question the run did
                not ask (:func:`check_fits`); nothing is written.
        """
        _, recorded = self._record_answer(run_id, value)
        supervisor = self._supervisor
        if supervisor is not None and supervisor.active:
            self._on_loop(supervisor.runner.answer, run_id, recorded)
        logger.info("run %s answered", run_id)

    async def resume_run_here(
        self, run_id: str, value: Any, *, timeout: float | None = None
    ) -> RunRecord:
        """Answer a waiting run and run its continuation in this process, without starting
        the scheduler (see :meth:`run_task_here`); returns its record once it ends again
        (or waits again).

        Raises:
            RunNotFoundError, RunNotWaitingError: As :meth:`resume_run`.
            SchedulerError: This scheduler is started, or another process is active.
            TimeoutError: It did not finish within ``timeout`` seconds (it was cancelled).
        """
        if self._supervisor is not None:
            raise SchedulerError("resume_run_here() on a started scheduler; use resume_run()")
        self.graph()

        def prepare() -> PendingRun:
            run, recorded = self._record_answer(run_id, value)
            task = decode_or_raise(self._task_row(run.task_id))
            return pending_of(run, task, thread_id=run.thread_id, resume=recorded, resuming=True)

        await self._alone(prepare, timeout)
        return self.get_run(run_id)

    def _record_answer(self, run_id: str, value: Any) -> tuple[RunRow, Any]:
        """Record ``value`` as the answer of the waiting run ``run_id``; the run and the
        answer as recorded (JSON's: an int key is text, a tuple a list), which is what the
        graph resumes with, here as after a restart or on a worker."""
        check_answer(value)
        text = json.dumps(value)
        value = json.loads(text)
        self._flush()  # an end of the run recorded here (cancelled) is read below
        with self._changing() as changes:
            run = changes.tx.get_run(run_id)
            if run is None:
                raise RunNotFoundError(run_id)
            if run.status != RunStatus.WAITING:
                raise RunNotWaitingError(run_id, run.status)
            if run.answer is not None:
                raise RunNotWaitingError(run_id, run.status, answered=True)
            if run.cancel_requested is not None:  # (the process holding it ends it)
                raise RunNotWaitingError(run_id, run.status, cancelling=True)
            check_fits(run_id, run.interrupts, value)
            changes.tx.update_runs([{"id": run_id, "answer": text}])
            changes.changed = True
            changes.only_inserts = False
        return run, value
