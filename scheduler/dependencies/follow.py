"""What an upstream's final outcome sets off, inside the transaction that writes it.

For each task that runs after the upstream and counts that outcome (its ``after.on``), the
outcome is recorded in ``scheduler_waits`` (the latest one per upstream). When the
downstream's condition holds (every upstream has one, or any, with ``mode: any``), its
run is queued with the outcomes as its ``upstream`` (run id, status, output of each), and
its waits are cleared: one run per satisfied condition. A paused or disabled downstream
gets a ``skipped`` record saying what it would have run instead. All of it commits with the
upstream's final status, or not at all (see :class:`~scheduler.runlog.RunLog`), so a crash
loses no follow-up and a restart makes none twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from scheduler.current import Definitions
from scheduler.enums import RunStatus, RunTrigger
from scheduler.events import EventBus, RunEvent
from scheduler.exceptions import DefinitionError
from scheduler.models import TaskDefinition
from scheduler.pending import Admission, PendingRun, new_run_id
from scheduler.rows import queued_run, run_record, settled
from scheduler.runlog import Ended, RunLog
from scheduler.runner import Runner
from scheduler.storage import RunRow, Store, TaskRow, Transaction

__all__ = ["Followers"]

logger = logging.getLogger(__name__)


class Followers:
    """Queues the runs that follow finished runs (see the module docstring).

    Args:
        store: The database (for the set of tasks others run after).
        clock: UNIX time source.
        output_chars: How much of each upstream's output goes into the downstream's input.
    """

    def __init__(self, store: Store, *, clock: Callable[[], float], output_chars: int) -> None:
        self._store = store
        self._clock = clock
        self._output_chars = output_chars
        self.upstreams: frozenset[str] = frozenset()
        self._run_log: RunLog | None = None
        self._runner: Runner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events: EventBus | None = None
        self._definitions = Definitions(most=None)  # pruned by warm()
        self._kept: _Kept | None = None  # what warm() read, for a follow on SQLite
        # the skipped records written by the last follow on each thread (a flush's thread,
        # the loop's recovery), told once that thread has committed them
        self._local = threading.local()
        self._handing = 0  # hand-overs sent to the loop that it has not taken yet
        self._handing_lock = threading.Lock()

    def attach(
        self,
        run_log: RunLog,
        runner: Runner,
        loop: asyncio.AbstractEventLoop,
        events: EventBus | None = None,
    ) -> None:
        """Follow the final outcomes ``run_log`` writes; hand the runs queued to ``runner``
        (on ``loop``), through the task's overlap policy; the ``skipped`` records go to
        ``events`` as any run's end does."""
        self._run_log, self._runner, self._loop = run_log, runner, loop
        self._events = events
        run_log.follow = self.follow
        run_log.deliver = self._deliver

    def refresh(self) -> None:
        """Re-read which tasks others run after (at start, and when tasks change), so a
        final outcome of one of them is written at once."""
        self.upstreams = frozenset(self._store.upstream_ids())
        if self._run_log is not None:
            self._run_log.upstreams = self.upstreams

    def warm(self) -> None:
        """Decode the definitions of the tasks that run after others ahead of time (off
        the event loop, when tasks change), so the flush an upstream's outcome waits for
        only looks them up. The rows and links read are kept with the change counter read
        before them: a follow on SQLite that finds the counter unchanged takes them
        instead of reading them again (rows changed after the counter was read carry a
        later one, so they are never taken for it)."""
        kept = self._store.is_sqlite  # (PostgreSQL's follow reads them, locked)
        revision = self._store.revision() if kept else 0
        links = self._store.links() if kept else []
        rows = self._store.downstream_tasks()
        for row in rows:
            self._task(row)
        self._definitions.keep_only({row.id for row in rows})
        if kept:
            downstreams: dict[str, list[str]] = defaultdict(list)
            for downstream, upstream in links:
                downstreams[upstream].append(downstream)
            self._kept = _Kept(revision, {row.id: row for row in rows}, dict(downstreams))

    def moved_to(self, revision: int) -> None:
        """A change made here wrote ``revision`` and touched no link and no task that runs
        after another (tasks added): what :meth:`warm` kept at the revision before it
        holds at this one too."""
        kept = self._kept
        if kept is not None and kept.revision == revision - 1:
            self._kept = _Kept(revision, kept.rows, kept.downstreams)

    @property
    def delivering(self) -> int:
        """Hand-overs of queued runs (or skips) on their way to the loop, not taken there
        yet: the runs that follow an outcome are not in the runner until this is 0."""
        with self._handing_lock:
            return self._handing

    def _deliver(self, runs: list[PendingRun]) -> None:
        """Called from the thread that committed ``runs`` (and the last follow's skips)."""
        skips = self._take_skips()
        if self._loop is not None and (runs or skips):
            with self._handing_lock:
                self._handing += 1
            try:
                self._loop.call_soon_threadsafe(self._arrive, runs, skips)
            except RuntimeError:  # the loop has closed: they stay queued
                self._arrived()

    def _arrive(
        self, runs: list[PendingRun], skips: Sequence[tuple[RunRow, TaskDefinition]]
    ) -> None:
        try:
            self._accept(runs, skips)
        finally:
            self._arrived()

    def _arrived(self) -> None:
        with self._handing_lock:
            self._handing -= 1

    def emit_skips(self) -> None:
        """On the loop, once a transaction of its own that followed outcomes has committed
        (a recovery): tell the listeners about the skipped records it wrote."""
        for row, task in self._take_skips():
            self._emit(row, task)

    def forget_skips(self) -> None:
        """Forget the skips of an earlier follow on this thread whose transaction did not
        commit (before a transaction whose own skips :meth:`emit_skips` will tell)."""
        self._local.skips = []

    def _take_skips(self) -> list[tuple[RunRow, TaskDefinition]]:
        skips: list[tuple[RunRow, TaskDefinition]] = getattr(self._local, "skips", [])
        self._local.skips = []
        return skips

    def _accept(
        self, runs: list[PendingRun], skips: Sequence[tuple[RunRow, TaskDefinition]] = ()
    ) -> None:
        assert self._runner is not None
        assert self._run_log is not None
        for row, task in skips:
            self._emit(row, task)
        for pending in runs:
            admission = self._runner.admit(pending.task)
            if admission is Admission.SKIP:
                message = "another run of the task was still going (overlap policy)"
                now = self._clock()
                change = settled(
                    pending.run_id, RunStatus.SKIPPED, now=now, kind="Overlap", message=message
                )
                self._run_log.change(change)
                self._emit(_record(pending, change), pending.task)
                continue
            self._runner.accept(pending, admission)

    def skipped(self, pending: PendingRun, change: dict[str, Any]) -> None:
        """``pending`` is recorded ``skipped`` (``change``) in the transaction this thread's
        follow writes in (the workers' shared admission): told with that follow's own
        skips once it commits."""
        self._local.skips.append((_record(pending, change), pending.task))

    def _emit(self, row: RunRow, task: TaskDefinition) -> None:
        if self._events is not None and self._events.wants(task):
            self._events.emit(RunEvent("finished", run_record(row), task))

    def follow(self, tx: Transaction, ended: Sequence[Ended]) -> list[PendingRun]:
        """Record ``ended`` toward the tasks that run after them; queue those whose
        condition now holds. Returns their pending runs (queued in ``tx``)."""
        skips: list[tuple[RunRow, TaskDefinition]] = []
        self._local.skips = skips  # what an earlier follow here left (rolled back) is gone
        kept = self._kept
        if kept is not None and (tx.locks_rows or tx.revision() != kept.revision):
            kept = None  # (PostgreSQL locks the rows it reads: they are read, and locked)
        downstreams: dict[str, list[str]]
        if kept is not None:
            downstreams = kept.downstreams
        else:
            downstreams = defaultdict(list)
            for downstream, upstream in tx.links_from({e.task_id for e in ended}):  # as it is
                downstreams[upstream].append(downstream)
        relevant = [e for e in ended if e.task_id in downstreams]
        if relevant:  # only outcomes that were written (a final record is never changed),
            stored = tx.run_statuses([e.run_id for e in relevant])  # of tasks not removed
            present = tx.existing_tasks({e.task_id for e in relevant})  # (forced) meanwhile
            relevant = sorted(
                (e for e in relevant if stored.get(e.run_id) == e.status and e.task_id in present),
                key=_when,
            )
        if not relevant:
            return []
        wanted = {d for e in relevant for d in downstreams[e.task_id]}
        if kept is not None and wanted <= kept.rows.keys():
            rows = {task_id: kept.rows[task_id] for task_id in wanted}
        else:
            rows = tx.get_tasks(wanted)
        now = self._clock()
        outputs: dict[str, str | None] = {}
        texts: dict[tuple[tuple[str, tuple[str, str]], ...], str] = {}  # outcomes -> JSON
        queued: list[PendingRun] = []
        records: list[RunRow] = []
        for end in relevant:
            for downstream in sorted(downstreams[end.task_id]):
                task = self._task(rows.get(downstream))
                if task is None or task.after is None or not task.after.fires_on(end.status):
                    continue
                chosen = self._chosen(tx, task.id, task.after.tasks, task.after.mode, end)
                if chosen is None:
                    continue
                outcomes = {
                    upstream: {
                        "run_id": run_id,
                        "status": status,
                        "output": self._output(tx, run_id, outputs),
                    }
                    for upstream, (run_id, status) in chosen.items()
                }
                if rows[downstream].paused or not task.enabled:
                    records.append(_skipped(task, outcomes, now))
                    skips.append((records[-1], task))
                    continue
                pending = PendingRun(
                    run_id=new_run_id(),
                    task=task,
                    scheduled_for=now,
                    trigger=RunTrigger.DEPENDENCY,
                    queued_at=now,
                    upstream=outcomes,
                )
                records.append(
                    queued_run(
                        pending.run_id,
                        task.id,
                        scheduled_for=now,
                        queued_at=now,
                        trigger=RunTrigger.DEPENDENCY,
                        upstream=_text(texts, chosen, outcomes),
                        thread_id=task.thread_id,  # (on its thread while queued)
                    )
                )
                queued.append(pending)
        tx.insert_runs(records)
        return queued

    @staticmethod
    def _chosen(
        tx: Transaction, downstream: str, wanted: list[str], mode: str, end: Ended
    ) -> dict[str, tuple[str, str]] | None:
        """The upstream outcomes a run of ``downstream`` goes with, if its condition now
        holds; else None, with ``end`` recorded toward it."""
        # nothing to wait for (and none kept: TaskChanges._drop_stale_waits)
        if mode == "any" or wanted == [end.task_id]:
            return {end.task_id: (end.run_id, end.status.value)}
        tx.put_wait(
            downstream,
            end.task_id,
            run_id=end.run_id,
            status=end.status.value,
            finished_at=end.finished_at,
        )
        waits = tx.waits_of(downstream)
        if not all(upstream in waits for upstream in wanted):
            return None
        tx.clear_waits(downstream)
        return {upstream: waits[upstream][:2] for upstream in wanted}

    def _output(self, tx: Transaction, run_id: str, seen: dict[str, str | None]) -> str | None:
        """A run's output, bounded (read once per flush, however many follow it)."""
        if run_id not in seen:
            run = tx.get_run(run_id)
            output = run.output if run is not None else None
            if output is not None and len(output) > self._output_chars:
                output = output[: self._output_chars]
            seen[run_id] = output
        return seen[run_id]

    def _task(self, row: TaskRow | None) -> TaskDefinition | None:
        """The row's definition, decoded once per stored version."""
        if row is None:
            return None
        try:
            return self._definitions.of(row)
        except DefinitionError as exc:
            logger.warning("task %s cannot be loaded, so it does not follow: %s", row.id, exc)
            return None


@dataclass(frozen=True, slots=True)
class _Kept:
    """The tasks that run after others as stored at ``revision`` (the change counter):
    their rows by id, and their ids by the upstream they run after."""

    revision: int
    rows: dict[str, TaskRow]
    downstreams: dict[str, list[str]]


def _record(pending: PendingRun, change: dict[str, Any]) -> RunRow:
    """The record of ``pending`` settled by ``change`` (a skip), as the listeners get it."""
    row = queued_run(
        pending.run_id,
        pending.task.id,
        scheduled_for=pending.scheduled_for,
        queued_at=pending.queued_at or change["finished_at"],
        trigger=RunTrigger.DEPENDENCY,
        upstream=pending.upstream,
    )
    for key, value in change.items():
        setattr(row, key, value)
    return row


def _text(
    texts: dict[tuple[tuple[str, tuple[str, str]], ...], str],
    chosen: dict[str, tuple[str, str]],
    outcomes: dict[str, Any],
) -> str:
    """``outcomes`` as JSON, encoded once for every run that goes with the same upstream
    runs (the thousand runs of a fan-out)."""
    key = tuple(chosen.items())
    text = texts.get(key)
    if text is None:
        text = texts[key] = json.dumps(outcomes)
    return text


def _when(end: Ended) -> float:
    return end.finished_at


def _skipped(task: TaskDefinition, upstream: dict[str, Any], now: float) -> RunRow:
    names = ", ".join(f"{u} ({o['status']})" for u, o in upstream.items())
    return RunRow(
        id=new_run_id(),
        task_id=task.id,
        scheduled_for=now,
        queued_at=now,
        finished_at=now,
        status=RunStatus.SKIPPED,
        trigger=RunTrigger.DEPENDENCY,
        error_type="Paused",
        error_message=f"the task is paused; it would have run after {names}",
        upstream=json.dumps(upstream),
    )
