"""The runner: runs graph invocations with a concurrency limit, priorities, overlap
policies, timeouts, retries and callbacks, and records every state change.

Runs wait in one queue ordered by priority, then scheduled time; at most
``max_concurrent_runs`` are in flight. Everything here happens on the event loop thread;
other threads reach it through ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import heapq
import itertools
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from scheduler.clock import Timer, call_at
from scheduler.enums import OverlapPolicy, RunStatus, RunTrigger
from scheduler.events import EventBus
from scheduler.fresh_threads import fresh_thread
from scheduler.invocation import NO_RESUME, Outcome, invoke
from scheduler.models import TaskDefinition
from scheduler.outcomes import (
    call_run_callback,
    call_task_callback,
    report,
    report_started,
    retry_of,
)
from scheduler.pending import Admission, PendingRun
from scheduler.records import RunRecord
from scheduler.rows import queued_run
from scheduler.runlog import RunLog
from scheduler.runner_stop import RunnerStopping
from scheduler.settings import Settings
from scheduler.waiting import RunnerWaiting
from scheduler.waiting_runs import WaitingRuns
from scheduler.withdraw import RunnerWithdrawing

__all__ = ["Runner"]

logger = logging.getLogger(__name__)

_STARTED_KEPT = 4096  # runs started here that a late second submit is checked against
# the outcomes of a run that its task's on_failure_callback hears of (once no retry is left)
_ALERTED = (RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.INTERRUPTED)


def _turn_of(thread: str | None) -> str | None:
    """Whose turn a run on ``thread`` takes: the thread, one UUID however it is spelled (a
    LangGraph server reads ``ABC...``, ``{abc...}`` and ``abc...`` as one thread)."""
    if thread is None:
        return None
    try:
        return str(uuid.UUID(thread))
    except ValueError:
        return thread


class Runner(RunnerWaiting, RunnerStopping, RunnerWithdrawing):
    """Starts queued runs as slots free up and records how each ends.

    Args:
        settings: Defaults for every run-policy field a task leaves unset.
        run_log: Where state changes are recorded.
        graph: Returns the graph to invoke (loaded on first call).
        clock: UNIX time source.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        run_log: RunLog,
        graph: Callable[[], Any],
        clock: Callable[[], float] = time.time,
        events: EventBus | None = None,
    ) -> None:
        self._settings = settings
        self._events = events if events is not None else EventBus()
        self._policy = settings.callback_policy()
        self._log = run_log
        self._graph = graph
        self._clock = clock
        self._heap: list[tuple[int, float, int, PendingRun]] = []
        self._seq = itertools.count()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._in_progress: Counter[str] = Counter()
        self._buffered: dict[str, PendingRun] = {}
        self._delayed: dict[str, tuple[Timer, PendingRun]] = {}
        self._known: set[str] = set()
        # the runs that reached the graph here lately (oldest first): a late second submit of
        # one (a run requested here and also picked up from the database) is not run again
        self._started: dict[str, None] = {}
        self._threads: set[str] = set()  # the given threads of the runs going
        # runs let go of (abandon), by their asyncio task: a later start is another task
        self._abandoned: set[asyncio.Task[None]] = set()
        self._expiring: set[asyncio.Task[None]] = set()  # waiting timeouts being written
        self._accepting = True
        self._waiting = WaitingRuns(
            settings=settings,
            clock=clock,
            on_answer=self._resume,
            on_expiry=self._expire_waiting,
        )
        self._idle = asyncio.Event()
        self._idle.set()
        self.on_slot_free: Callable[[], None] | None = None  # a worker claims more then
        # a worker: an answered run goes to any worker instead of resuming here (it takes
        # its thread's turn across workers then), given the run let go of here
        self.hand_off: Callable[[PendingRun], None] | None = None
        # a worker: its retries are queued for any worker (this is their ``worker``), claimed
        # once due on their thread's turn, as a retry here holds no turn while it waits
        self.retries_to: str | None = None
        # a worker: awaited before a run's result or failure callback (its lease still holds)
        self.before_callback: Callable[[], Awaitable[None]] | None = None
        # what each run sees of context variables: the scheduler's start's, whoever made it
        # due (a wake-up from a graph's tool or an HTTP request gave the run theirs: the
        # tool call's callbacks, through LangChain's config; a test clock's "now" was lost)
        self._context = contextvars.copy_context()

    # -- admission ------------------------------------------------------------------------

    def admit(self, task: TaskDefinition) -> Admission:
        """Decide what a due occurrence of ``task`` becomes (changes nothing)."""
        in_progress = self._in_progress[task.id]
        policy = task.overlap or self._settings.overlap
        if policy is OverlapPolicy.ALLOW:
            limit = task.max_instances or self._settings.max_instances
            return Admission.RUN if in_progress < limit else Admission.SKIP
        if in_progress == 0:
            return Admission.RUN
        if policy is OverlapPolicy.QUEUE and task.id not in self._buffered:
            return Admission.BUFFER
        return Admission.SKIP

    def accept(self, pending: PendingRun, admission: Admission) -> None:
        """Take a run whose ``queued`` record is committed, as :meth:`admit` decided."""
        if pending.run_id in self._known or pending.run_id in self._started:
            return
        if admission is Admission.SKIP:
            return
        self._known.add(pending.run_id)
        self._idle.clear()
        if admission is Admission.BUFFER:
            self._buffered[pending.task.id] = pending
            return
        self._in_progress[pending.task.id] += 1
        self._queue(pending)

    def submit(self, pending: PendingRun) -> None:
        """Take a run that ignores the overlap policy (run now, recovered, retried)."""
        self.accept(pending, Admission.RUN)

    def knows(self, run_id: str) -> bool:
        """The run is queued, waiting, buffered or running here."""
        return run_id in self._known

    def task_ids(self) -> set[str]:
        """Tasks that have runs here not yet started, or waiting for an answer."""
        return {pending.task.id for pending in self._unstarted()} | self._waiting.task_ids()

    def retask(self, tasks: Mapping[str, TaskDefinition]) -> None:
        """The runs here that have not started take these (edited) definitions, and so do
        those waiting for an answer (resumed, they run the task as it is then, as after a
        restart, which reads the tasks again)."""
        for pending in self._unstarted():
            pending.task = tasks.get(pending.task.id, pending.task)
        self._waiting.retask(tasks)
        self._withdraw(tasks)  # (now disabled, or retries its max_retries no longer allows)

    def _unstarted(self) -> list[PendingRun]:
        delayed = [pending for _, pending in self._delayed.values()]
        return [e[3] for e in self._heap] + list(self._buffered.values()) + delayed

    @property
    def running_count(self) -> int:
        return len(self._running)

    @property
    def free_slots(self) -> int:
        """Runs that could start now without waiting for a slot."""
        busy = len(self._running) + len(self._abandoned) + len(self._heap)
        return max(0, self._settings.max_concurrent_runs - busy)

    @property
    def waiting_count(self) -> int:
        return len(self._heap) + len(self._buffered) + len(self._delayed)

    async def wait_idle(self) -> None:
        """Wait until nothing is queued, waiting or running."""
        await self._idle.wait()

    async def settle(self) -> None:
        """Wait until no run runs (those that start meanwhile too), nor a waiting timeout is
        being written; runs waiting for a time, a slot or an answer do not count."""
        while self._running or self._expiring:
            await asyncio.wait(set(self._running.values()) | self._expiring)

    # -- queue ----------------------------------------------------------------------------

    def _queue(self, pending: PendingRun) -> None:
        if pending.not_before is not None and pending.not_before > self._clock():
            handle = call_at(self._clock, pending.not_before, self._release_delayed, pending.run_id)
            self._delayed[pending.run_id] = (handle, pending)
            return
        priority = pending.task.priority or self._settings.priority
        entry = (priority.rank, pending.scheduled_for, next(self._seq), pending)
        heapq.heappush(self._heap, entry)
        self._pump()

    def _release_delayed(self, run_id: str) -> None:
        item = self._delayed.pop(run_id, None)
        if item is not None:
            item[1].not_before = None
            self._queue(item[1])

    def _pump(self) -> None:
        limit = self._settings.max_concurrent_runs
        held = []  # runs on a thread that has a run going: one at a time, as the server does
        # runs let go of still hold their slots until their cancelled tasks have ended
        while self._accepting and self._heap and len(self._running) + len(self._abandoned) < limit:
            entry = heapq.heappop(self._heap)
            pending = entry[3]
            thread = _turn_of(pending.thread_id or pending.task.thread_id)
            if thread is not None and thread in self._threads:
                held.append(entry)
                continue
            task = asyncio.get_running_loop().create_task(
                self._execute(pending),
                name=f"run:{pending.task.id}:{pending.run_id}",
                context=self._context.copy(),
            )
            self._running[pending.run_id] = task
            if thread is not None:
                self._threads.add(thread)
                task.add_done_callback(functools.partial(self._thread_free, thread))
        for entry in held:
            heapq.heappush(self._heap, entry)

    def _thread_free(self, thread: str, _: object) -> None:
        self._threads.discard(thread)
        self._pump()

    def _release(self, task_id: str) -> None:
        """One run of ``task_id`` ended: release a buffered occurrence if it was the last."""
        self._in_progress[task_id] -= 1
        if self._in_progress[task_id] > 0:
            return
        del self._in_progress[task_id]
        buffered = self._buffered.pop(task_id, None)
        if buffered is not None and self._accepting:
            self._in_progress[task_id] += 1
            self._queue(buffered)

    def _check_idle(self) -> None:
        if not (self._heap or self._running or self._buffered or self._delayed):
            self._idle.set()

    # -- execution ------------------------------------------------------------------------

    def call_failure_callbacks(self, failed: list[tuple[TaskDefinition, RunRecord]]) -> None:
        """The ``on_failure_callback`` of runs that failed for good without this runner (at
        a start after a crash, or on a worker that died), each on a task of its own."""
        for task, record in failed:
            if task.on_failure_callback:
                call = call_task_callback(
                    task,
                    record,
                    "on_failure_callback",
                    policy=self._policy,
                    settings=self._settings,
                )
                asyncio.get_running_loop().create_task(call, name=f"failure-callback:{record.id}")

    def _earlier(self, pending: PendingRun) -> Callable[[], Awaitable[list[RunRecord]]] | None:
        """What a run may adopt on a LangGraph server: a retry, its earlier attempts'
        runs; a run watched again after its process died, its own."""
        if pending.reattach:
            return functools.partial(self._log.cut_off, pending.run_id)
        if pending.trigger is RunTrigger.RETRY:
            return functools.partial(self._log.attempts_before, pending.run_id)
        return None

    async def _execute(self, pending: PendingRun) -> None:
        task = pending.task
        # a run resumed with its answer keeps the start of its first attempt (it began then;
        # when it stopped to wait is its ``waiting_since``)
        first = pending.started_at if pending.resuming else None
        started = self._clock() if first is None else first
        thread_id = pending.thread_id = (
            pending.thread_id or task.thread_id or fresh_thread(pending.run_id)
        )
        try:
            # Durable before the graph is called: after a crash from here on, the run is
            # found ``running`` and recorded interrupted, never started a second time. A
            # resumed run takes its answer and its question off the record in the same commit.
            resumed = {"answer": None, "interrupts": None}
            changes: dict[str, Any] = resumed if pending.resuming else {}
            if not pending.reattach:  # (one watched again is running since its start)
                await self._log.commit(
                    pending.run_id,
                    status=RunStatus.RUNNING,
                    started_at=started,
                    thread_id=thread_id,
                    **changes,
                )
                pending.started_at = started
        except asyncio.CancelledError as cancelled:
            if self._put_back(pending, cancelled):  # the stop's, before the graph was called
                return
            outcome = Outcome(
                RunStatus.CANCELLED,
                error_type="Cancelled",
                error_message="the scheduler stopped before the run started",
            )
        else:
            self._started[pending.run_id] = None
            if len(self._started) > _STARTED_KEPT:
                del self._started[next(iter(self._started))]
            if self._events.wants(pending.task):
                self._emit("started", pending, Outcome(RunStatus.RUNNING), thread_id, started, None)
            report_started(pending, thread_id)
            outcome = await invoke(
                pending.task,
                graph=self._graph,
                run_id=pending.run_id,
                thread_id=thread_id,
                scheduled_for=pending.scheduled_for,
                attempt=pending.attempt,
                timeout=pending.task.timeout_seconds or self._settings.timeout_seconds,
                output_max_chars=self._settings.output_max_chars,
                policy=self._policy,
                resume=pending.resume if pending.resuming else NO_RESUME,
                asked=pending.asked,
                upstream=pending.upstream,
                earlier=self._earlier(pending),
                adopt_only=pending.reattach,
                before_callback=self.before_callback,
            )
            thread_id = pending.thread_id = outcome.thread_id or thread_id  # (adopted there)
            if self.before_callback and task.on_failure_callback and outcome.status in _ALERTED:
                # a worker's lease holds before its failure callback: let go of if not (a
                # stop's cancel meanwhile: the outcome is recorded, as a cancel that came late)
                with contextlib.suppress(asyncio.CancelledError):
                    await self.before_callback()
        finished = self._clock()
        current = asyncio.current_task()
        if current in self._abandoned:  # the process that took over settles it
            return
        if self._running.get(pending.run_id) is current:
            del self._running[pending.run_id]
        if outcome.status is RunStatus.WAITING:
            await self._start_waiting(pending, outcome, thread_id, finished)
            return
        retry = retry_of(pending, outcome, self._settings, now=finished)
        changes = {
            "status": outcome.status,
            "finished_at": finished,
            "output": outcome.output,
            "error_type": outcome.error_type,
            "error_message": outcome.error_message,
            "error_traceback": outcome.error_traceback,
        }
        if outcome.thread_id:  # the thread of the server run it adopted
            changes["thread_id"] = thread_id
        if retry is None:  # the final outcome: the tasks that run after it learn of it
            self._log.finish(pending.run_id, task.id, **changes)
        else:  # with its retry, in one flush: a crash between the two would lose the retry
            # with its task's thread and its claim order, for a worker's claim
            after = queued_run(
                retry.run_id, task.id, scheduled_for=retry.scheduled_for, queued_at=finished,
                trigger=RunTrigger.RETRY, attempt=retry.attempt, not_before=retry.not_before,
                upstream=retry.upstream, thread_id=task.thread_id, retry_of=pending.run_id,
            )  # fmt: skip
            after.priority_rank = (task.priority or self._settings.priority).rank
            after.worker = self.retries_to
            self._log.update(pending.run_id, then=after, **changes)
        self._known.discard(pending.run_id)
        report(pending, outcome, finished - started)
        if self._events.wants(pending.task):
            self._emit("finished", pending, outcome, thread_id, started, finished)
        if retry is not None:
            if self._accepting and self.retries_to is None:
                self._known.add(retry.run_id)
                self._queue(retry)  # the task stays in progress through its retries
            else:  # stopping (or a worker's): it stays queued for the next start or claim
                self._release(task.id)
        else:
            self._release(task.id)
            if outcome.status in _ALERTED:
                await call_run_callback(
                    pending,
                    outcome,
                    "on_failure_callback",
                    thread_id,
                    started,
                    finished,
                    policy=self._policy,
                    settings=self._settings,
                )
        self._pump()
        self._check_idle()
        if self.on_slot_free is not None:
            self.on_slot_free()
