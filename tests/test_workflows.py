"""Workflows on the test clock: tasks that run after other tasks' final outcomes (chains,
fan-in, fallbacks), with a real compiled graph and real run records; the links refused at
the edge (unknown ids, cycles named, a task on itself, removing what others need)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import START as START_NODE
from langgraph.graph import MessagesState, StateGraph
from langgraph.types import interrupt
from pydantic import ValidationError

from scheduler import (
    RunStatus,
    RunTrigger,
    TaskDefinition,
    TaskScheduler,
    TaskType,
    changeset,
)
from scheduler.dependencies.after import After
from scheduler.dependencies.follow import Followers
from scheduler.exceptions import DependencyError, StorageError, TasksFileError
from scheduler.records import RunRecord
from scheduler.rows import queued_run
from scheduler.runlog import RunLog
from scheduler.storage.transaction import Transaction
from scheduler.tasksfile import apply_tasks_file, check_tasks_file, load_tasks_file
from scheduler.testing import clocked_scheduler
from scheduler.wording import describe_task
from tests import callbacks, prompt_graphs
from tests.conftest import SchedulerFactory, eventually, make_settings
from tests.test_cli import Cli

START = "2030-01-01T00:00:00Z"


def _seen(run: RunRecord) -> dict[str, Any]:
    """What the graph saw, from its echoed answer."""
    assert run.output is not None
    seen: dict[str, Any] = json.loads(run.output)
    return seen


def _manual(task_id: str, prompt: str, **fields: Any) -> TaskDefinition:
    """A task that runs only when asked (a far-off one-time run)."""
    return TaskDefinition(id=task_id, run_at="2099-01-01T00:00:00Z", prompt=prompt, **fields)


@contextmanager
def _scheduler(tmp_path: Path) -> Iterator[TaskScheduler]:
    """A scheduler that is not started: its management calls only."""
    scheduler = TaskScheduler(db_path=str(tmp_path / "s.db"), graph=prompt_graphs.graph)
    try:
        yield scheduler
    finally:
        scheduler.close()


@contextmanager
def _scheduler_at(db: Path) -> Iterator[TaskScheduler]:
    """A scheduler on ``db`` that is not started (the CLI's database: ``Cli.db``)."""
    scheduler = TaskScheduler(db_path=str(db), graph=prompt_graphs.graph)
    try:
        yield scheduler
    finally:
        scheduler.close()


def _runs(scheduler: TaskScheduler, task_id: str) -> list[RunRecord]:
    return list(reversed(scheduler.list_runs(task_id, limit=None)))


async def test_a_chain_runs_in_order_and_passes_each_output_on() -> None:
    async with clocked_scheduler(graph=prompt_graphs.graph, start=START) as (scheduler, clock):
        scheduler.add_tasks(
            [
                TaskDefinition(id="fetch", schedule="every day at 09:00", prompt="fetch it"),
                TaskDefinition(id="summarise", after="fetch", prompt="summarise"),
                TaskDefinition(id="publish", after=["summarise"], prompt="publish"),
            ]
        )
        assert scheduler.get_task("summarise").definition.task_type is TaskType.AFTER  # type: ignore[union-attr]
        assert scheduler.get_task("summarise").next_run is None
        runs = await clock.advance(days=2)
    assert [r.task_id for r in runs] == ["fetch", "summarise", "publish"] * 2
    assert all(r.status is RunStatus.SUCCEEDED for r in runs)
    fetch, summarise, publish = runs[:3]
    assert fetch.finished_at is not None and summarise.started_at is not None
    assert fetch.finished_at <= summarise.started_at
    assert (summarise.trigger, publish.trigger) == (RunTrigger.DEPENDENCY,) * 2
    assert summarise.upstream == {
        "fetch": {"run_id": fetch.id, "status": "succeeded", "output": fetch.output}
    }
    # the upstream's output reached the graph, in the prompt after the task's own
    summarise_prompt = _seen(summarise)["prompt"]
    assert summarise_prompt.startswith("summarise\n\nResults of the tasks this one runs after:")
    assert f"- fetch (succeeded, run {fetch.id}):" in summarise_prompt
    assert '\\"prompt\\": \\"fetch it\\"' in json.dumps(summarise_prompt)
    assert publish.upstream is not None and publish.upstream["summarise"]["run_id"] == summarise.id
    assert "summarise" in _seen(publish)["prompt"]  # C saw B's output, which holds A's


async def test_a_chain_keeps_its_order_on_the_test_clock_however_slow_the_run_logs_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The thread of the advance's flush that queued day 1's summarise is slow to come back
    (descheduled on a busy machine) until that run has ended, and the background flush
    writes only the starts it is waited for (late for the rest): the advance still queues
    and runs the publish after it at day 1's time, before the clock moves on (it was queued
    at day 2, after that day's fetch, and sorted after it)."""
    summarised = threading.Event()
    handed = threading.local()

    deliver = Followers._deliver

    def deliver_noting(self: Followers, runs: list[Any]) -> None:
        handed.summarise = any(pending.task.id == "summarise" for pending in runs)
        deliver(self, runs)

    flush = RunLog.flush

    def flush_then_linger(self: RunLog) -> None:
        handed.summarise = False
        flush(self)  # (its lock is free again: the loop and the other flushes go on)
        if handed.summarise:
            summarised.wait(5)

    finish = RunLog.finish

    def finish_noting(self: RunLog, run_id: str, task_id: str, **changes: Any) -> None:
        finish(self, run_id, task_id, **changes)
        if task_id == "summarise":
            summarised.set()

    async def starts_only(self: RunLog) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._waiters:  # a run's start waits for its commit
                await self.aflush()

    monkeypatch.setattr(Followers, "_deliver", deliver_noting)
    monkeypatch.setattr(RunLog, "flush", flush_then_linger)
    monkeypatch.setattr(RunLog, "finish", finish_noting)
    monkeypatch.setattr(RunLog, "_flush_forever", starts_only)
    async with clocked_scheduler(graph=prompt_graphs.graph, start=START) as (scheduler, clock):
        scheduler.add_tasks(
            [
                TaskDefinition(id="fetch", schedule="every day at 09:00", prompt="fetch it"),
                TaskDefinition(id="summarise", after="fetch", prompt="summarise"),
                TaskDefinition(id="publish", after=["summarise"], prompt="publish"),
            ]
        )
        runs = await clock.advance(days=2)
    assert summarised.is_set()
    assert [(r.task_id, r.scheduled_for.day) for r in runs] == [
        (task_id, day) for day in (1, 2) for task_id in ("fetch", "summarise", "publish")
    ]


async def test_fan_in_waits_for_all_and_fires_once_per_condition() -> None:
    async with clocked_scheduler(graph=prompt_graphs.graph, start=START) as (scheduler, clock):
        scheduler.add_tasks(
            [
                _manual("fetch-sales", "sales"),
                _manual("fetch-costs", "costs"),
                TaskDefinition(id="report", after=["fetch-sales", "fetch-costs"], prompt="r"),
                TaskDefinition(
                    id="each",
                    after={"tasks": ["fetch-sales", "fetch-costs"], "mode": "any"},
                    prompt="e",
                ),
            ]
        )
        assert describe_task(scheduler.get_task("report").definition) == (  # type: ignore[arg-type]
            "After fetch-sales, fetch-costs"
        )
        scheduler.run_task_now("fetch-sales")
        await clock.advance(seconds=1)
        scheduler.run_task_now("fetch-sales")  # twice before the costs: still one report
        await clock.advance(seconds=1)
        assert _runs(scheduler, "report") == []
        scheduler.run_task_now("fetch-costs")
        await clock.advance(seconds=1)
        [report] = _runs(scheduler, "report")
        scheduler.run_task_now("fetch-costs")  # a new round starts: costs alone is not enough
        await clock.advance(seconds=1)
        assert len(_runs(scheduler, "report")) == 1
        sales = _runs(scheduler, "fetch-sales")
        costs = _runs(scheduler, "fetch-costs")
        each = _runs(scheduler, "each")
    assert report.status is RunStatus.SUCCEEDED and report.upstream is not None
    assert report.upstream["fetch-sales"]["run_id"] == sales[1].id  # the latest outcome
    assert report.upstream["fetch-costs"]["run_id"] == costs[0].id
    assert [list(r.upstream or {}) for r in each] == [
        ["fetch-sales"],
        ["fetch-sales"],
        ["fetch-costs"],
        ["fetch-costs"],
    ]


async def test_a_fallback_fires_only_on_failure_after_the_last_retry(tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    async with clocked_scheduler(graph=prompt_graphs.graph, start=START) as (scheduler, clock):
        scheduler.add_tasks(
            [
                _manual("report", "ok"),
                _manual("flaky", "fail", max_retries=2, retry_delay_seconds=60),
                _manual(
                    "recovers",
                    "fail-until:3",
                    max_retries=3,
                    retry_delay_seconds=60,
                    metadata={"counter": str(counter)},
                ),
                TaskDefinition(
                    id="alert",
                    after={"tasks": ["report", "flaky"], "on": "failed", "mode": "any"},
                    prompt="alert",
                ),
                TaskDefinition(id="next", after="recovers", prompt="next"),
                TaskDefinition(
                    id="audit", after={"tasks": ["flaky"], "on": "finished"}, prompt="audit"
                ),
            ]
        )
        scheduler.run_task_now("report")
        await clock.advance(seconds=1)
        assert _runs(scheduler, "alert") == []  # report succeeded
        scheduler.run_task_now("flaky")
        scheduler.run_task_now("recovers")
        await clock.advance(minutes=10)
        flaky = _runs(scheduler, "flaky")
        recovers = _runs(scheduler, "recovers")
        alert = _runs(scheduler, "alert")
        follow = _runs(scheduler, "next")
        audit = _runs(scheduler, "audit")
    assert [r.status for r in flaky] == [RunStatus.FAILED] * 3
    assert [r.status for r in recovers] == [RunStatus.FAILED] * 2 + [RunStatus.SUCCEEDED]
    [alerted] = alert  # once, after the last attempt
    assert alerted.upstream == {
        "flaky": {"run_id": flaky[-1].id, "status": "failed", "output": None}
    }
    assert alerted.started_at is not None and flaky[-1].finished_at is not None
    assert alerted.started_at >= flaky[-1].finished_at
    [followed] = follow
    assert followed.upstream is not None
    assert followed.upstream["recovers"]["run_id"] == recovers[-1].id
    assert [r.upstream["flaky"]["status"] for r in audit if r.upstream] == ["failed"]


async def test_a_retry_an_edit_no_longer_allows_does_not_run(tmp_path: Path) -> None:
    """A retry scheduled before an edit to ``max_retries: 0`` does not run (an edit applies
    to what comes after it): it is recorded ``skipped`` (``RetryWithdrawn``), and the
    attempt it retried is the task's final outcome, as when a retry is missed after
    downtime: the fallback after it runs, its failure callback is called. Before, the
    retry ran, a second attempt the task no longer asked for."""
    callbacks.failures.clear()
    async with clocked_scheduler(graph=prompt_graphs.graph, start=START) as (scheduler, clock):
        scheduler.add_tasks(
            [
                _manual(
                    "flaky",
                    "fail",
                    max_retries=2,
                    retry_delay_seconds=60,
                    on_failure_callback="tests.callbacks:on_failure",
                ),
                TaskDefinition(id="alert", after={"tasks": ["flaky"], "on": "failed"}, prompt="a"),
            ]
        )
        scheduler.run_task_now("flaky")
        await clock.advance(seconds=1)
        [first, retry] = _runs(scheduler, "flaky")
        assert (first.status, retry.status) == (RunStatus.FAILED, RunStatus.QUEUED)
        scheduler.edit_task("flaky", lambda t: t.model_copy(update={"max_retries": 0}))
        await clock.advance(minutes=10)
        flaky = _runs(scheduler, "flaky")
        alert = _runs(scheduler, "alert")
    assert [(r.status, r.error_type) for r in flaky] == [
        (RunStatus.FAILED, "CommandError"),
        (RunStatus.SKIPPED, "RetryWithdrawn"),
    ]
    assert flaky[1].started_at is None and "max_retries 0" in (flaky[1].error_message or "")
    [alerted] = alert
    assert alerted.status is RunStatus.SUCCEEDED
    assert alerted.upstream is not None and alerted.upstream["flaky"]["run_id"] == first.id
    assert [(task_id, run.id) for task_id, run in callbacks.failures] == [("flaky", first.id)]


async def test_a_paused_task_starts_no_run_queued_before_the_pause(tmp_path: Path) -> None:
    """A dependency run queued before its task was paused (held by the ``queue`` overlap
    policy behind a run waiting for an answer) does not start once the task is paused: it
    is recorded ``skipped`` (``Paused``), as one queued after the pause is. Before, it ran
    when the run before it ended. A run asked for by hand still runs."""
    log = {"log": str(tmp_path / "calls.log")}
    async with clocked_scheduler(graph=prompt_graphs.graph, start=START) as (scheduler, clock):
        scheduler.add_tasks(
            [
                _manual("up", "up"),
                _manual("down", "ask-record-sleep:0", after="up", overlap="queue", metadata=log),
            ]
        )
        asking = scheduler.run_task_now("down")
        await clock.advance(seconds=1)
        assert scheduler.get_run(asking).status is RunStatus.WAITING
        scheduler.run_task_now("up")
        await clock.advance(seconds=1)
        [_, queued] = _runs(scheduler, "down")
        assert (queued.status, queued.trigger) == (RunStatus.QUEUED, RunTrigger.DEPENDENCY)
        scheduler.pause_task("down")
        await clock.advance(seconds=1)
        scheduler.resume_run(asking, "yes")
        await clock.advance(seconds=1)
        by_hand = scheduler.run_task_now("down")
        await clock.advance(seconds=1)
        down = {r.id: r for r in _runs(scheduler, "down")}
    assert down[asking].status is RunStatus.SUCCEEDED
    assert (down[queued.id].status, down[queued.id].error_type) == (RunStatus.SKIPPED, "Paused")
    assert down[queued.id].started_at is None
    assert down[by_hand].status is RunStatus.WAITING  # (it asks, as the first did)


async def test_a_run_left_queued_is_skipped_at_start_if_its_task_was_paused_meanwhile(
    tmp_path: Path, make_scheduler: SchedulerFactory
) -> None:
    """``run up --wait`` with no scheduler running leaves the run after it ``queued``;
    ``pause down`` then: the next start records it ``skipped`` (``Paused``) instead of
    running it, and a run asked for by hand, left queued too, still runs."""
    with _scheduler(tmp_path) as cli:
        cli.add_tasks([_manual("up", "up"), TaskDefinition(id="down", after="up", prompt="d")])
        await cli.run_task_here("up")
        [queued] = _runs(cli, "down")
        by_hand = cli.run_task_now("down")
        cli.pause_task("down")
    scheduler = make_scheduler(db="s.db")
    scheduler.start()
    skipped = await scheduler.wait_for_run(queued.id, timeout=10)
    ran = await scheduler.wait_for_run(by_hand, timeout=10)
    assert (skipped.status, skipped.error_type) == (RunStatus.SKIPPED, "Paused")
    assert skipped.started_at is None
    assert ran.status is RunStatus.SUCCEEDED


async def test_a_paused_downstream_records_what_it_would_have_run() -> None:
    async with clocked_scheduler(graph=prompt_graphs.graph, start=START) as (scheduler, clock):
        scheduler.add_tasks(
            [_manual("fetch", "f"), TaskDefinition(id="report", after="fetch", prompt="r")]
        )
        scheduler.pause_task("report")
        scheduler.run_task_now("fetch")
        await clock.advance(seconds=1)
        [skipped] = _runs(scheduler, "report")
        [fetch] = _runs(scheduler, "fetch")
        scheduler.resume_task("report")  # resuming does not run the skipped one
        await clock.advance(seconds=1)
        assert len(_runs(scheduler, "report")) == 1
        scheduler.run_task_now("fetch")
        await clock.advance(seconds=1)
        statuses = [r.status for r in _runs(scheduler, "report")]
    assert skipped.status is RunStatus.SKIPPED and skipped.trigger is RunTrigger.DEPENDENCY
    assert skipped.upstream is not None and skipped.upstream["fetch"]["run_id"] == fetch.id
    assert "paused" in (skipped.error_message or "") and "fetch (succeeded)" in (
        skipped.error_message or ""
    )
    assert statuses == [RunStatus.SKIPPED, RunStatus.SUCCEEDED]


async def test_a_dependency_runs_skip_reaches_listeners_as_any_runs_end() -> None:
    async with clocked_scheduler(graph=prompt_graphs.graph, start=START) as (scheduler, clock):
        ended: list[tuple[str, str, str | None]] = []
        scheduler.subscribe(
            lambda e: (
                ended.append((e.task.id, e.run.status.value, e.run.error_type))
                if e.kind == "finished"
                else None
            )
        )
        scheduler.add_tasks(
            [
                _manual("fetch", "f"),
                TaskDefinition(id="paused", after="fetch", prompt="p"),
                TaskDefinition(id="busy", after={"tasks": ["fetch"], "on": "finished"},
                               prompt="sleep:0.3", overlap="skip"),
            ]
        )  # fmt: skip
        scheduler.pause_task("paused")
        scheduler.run_task_now("fetch")
        scheduler.run_task_now("fetch")  # two outcomes at once: busy runs once, skips once
        await clock.advance(seconds=1)
        records = sorted((r.task_id, r.status.value) for r in scheduler.list_runs(limit=None))
    assert ("paused", "skipped", "Paused") in ended and ("busy", "skipped", "Overlap") in ended
    assert sorted((t, s) for t, s, _ in ended) == records  # every record's end told once
    assert len(records) == 6  # fetch twice, paused skipped twice, busy once and skipped once


async def test_a_clock_and_after_together() -> None:
    async with clocked_scheduler(graph=prompt_graphs.graph, start=START) as (scheduler, clock):
        scheduler.add_tasks(
            [
                _manual("fetch", "f"),
                TaskDefinition(id="report", interval_seconds=3600, after="fetch", prompt="r"),
            ]
        )
        assert describe_task(scheduler.get_task("report").definition).endswith(  # type: ignore[arg-type]
            ", and after fetch"
        )
        scheduler.run_task_now("fetch")
        runs = await clock.advance(hours=1)
    triggers = [r.trigger for r in runs if r.task_id == "report"]
    assert triggers == [RunTrigger.DEPENDENCY, RunTrigger.SCHEDULE]


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        (
            [TaskDefinition(id="b", after="nope", prompt="p")],
            "task .b. runs after .nope., which is not a task",
        ),
        (
            [
                TaskDefinition(id="a", after="c", prompt="p"),
                TaskDefinition(id="b", after="a", prompt="p"),
                TaskDefinition(id="c", after=["b"], prompt="p"),
            ],
            "a -> b -> c -> a",
        ),
    ],
)
def test_unknown_ids_and_cycles_are_refused_all_or_nothing(
    tmp_path: Path, tasks: list[TaskDefinition], message: str
) -> None:
    with _scheduler(tmp_path) as scheduler:
        scheduler.add_task(_manual("kept", "k"))
        with pytest.raises(DependencyError, match=message):
            scheduler.add_tasks([_manual("other", "o"), *tasks])
        assert [t.id for t in scheduler.list_tasks()] == ["kept"]


def test_a_cycle_through_stored_tasks_is_named(tmp_path: Path) -> None:
    with _scheduler(tmp_path) as scheduler:
        scheduler.add_tasks(
            [
                _manual("x", "x"),
                TaskDefinition(id="y", after="x", prompt="p"),
                TaskDefinition(id="z", after="y", prompt="p"),
            ]
        )
        with pytest.raises(DependencyError, match="x -> y -> z -> x"):
            scheduler.add_task(TaskDefinition(id="x", after="z", prompt="p"))
        assert scheduler.get_task("x").definition.after is None  # type: ignore[union-attr]


def test_a_task_cannot_run_after_itself() -> None:
    with pytest.raises(ValidationError, match=r"after.*itself"):
        TaskDefinition(id="loop", after=["a", "loop"], prompt="p")


def test_removing_a_task_others_run_after_needs_force(tmp_path: Path) -> None:
    with _scheduler(tmp_path) as scheduler:
        scheduler.add_tasks(
            [
                _manual("fetch", "f"),
                TaskDefinition(id="report", after="fetch", prompt="r"),
                TaskDefinition(id="alert", after={"tasks": ["fetch"], "on": "failed"}, prompt="a"),
            ]
        )
        with pytest.raises(DependencyError, match="alert, report"):
            scheduler.remove_task("fetch")
        assert scheduler.get_task("fetch")
        scheduler.remove_task("report")  # nothing runs after it
        scheduler.remove_task("fetch", force=True)
        assert [t.id for t in scheduler.list_tasks()] == ["alert"]
        assert scheduler.get_task("alert").definition.after.tasks == ["fetch"]  # type: ignore[union-attr]
        # the task left waiting can still be changed (an edit of its name was refused: "runs
        # after 'fetch', which is not a task"); a new link to no task is still refused
        scheduler.edit_task("alert", lambda t: t.model_copy(update={"name": "Alert"}))
        assert scheduler.get_task("alert").name == "Alert"
        with pytest.raises(DependencyError, match="'report' runs after 'fetch', which is not"):
            scheduler.add_task(TaskDefinition(id="report", after="fetch", prompt="r"))
        with pytest.raises(DependencyError, match="'alert' runs after 'gone', which is not"):
            scheduler.edit_task(
                "alert", lambda t: t.model_copy(update={"after": ["fetch", "gone"]})
            )


def test_two_processes_each_adding_one_link_of_a_cycle_on_postgresql(
    pg_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each writer's check reads the links before the other's are written (the barrier
    # holds both checks until both have read, unless one waits for the other's commit)
    setup = TaskScheduler(database_url=pg_schema_url, graph=prompt_graphs.graph)
    setup.add_tasks([_manual("a", "a"), TaskDefinition(id="b", after="a", prompt="b"),
                     _manual("c", "c")])  # fmt: skip
    barrier = threading.Barrier(2, timeout=2)
    checked = changeset.check_links

    def check_then_wait(*args: Any, **kwargs: Any) -> Any:
        links = checked(*args, **kwargs)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        return links

    monkeypatch.setattr(changeset, "check_links", check_then_wait)
    refused: list[str] = []

    def edit(task: TaskDefinition) -> None:
        scheduler = TaskScheduler(database_url=pg_schema_url, graph=prompt_graphs.graph)
        try:
            scheduler.add_task(task)
        except DependencyError as exc:
            refused.append(str(exc))
        finally:
            scheduler.close()

    writers = [
        threading.Thread(target=edit, args=(TaskDefinition(id="c", after="b", prompt="c"),)),
        threading.Thread(target=edit, args=(TaskDefinition(id="a", after="c", prompt="a"),)),
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    try:
        assert len(refused) == 1 and "a cycle" in refused[0]
        assert len(setup.dependencies()) == 2  # b after a, and one of the two
    finally:
        setup.close()


async def test_a_run_made_without_a_scheduler_queues_what_runs_after_it(tmp_path: Path) -> None:
    database = tmp_path / "s.db"
    with _scheduler(tmp_path) as scheduler:
        report = TaskDefinition(id="report", after="fetch", prompt="report")
        scheduler.add_tasks([_manual("fetch", "fetched"), report])
        run = await scheduler.run_task_here("fetch", timeout=30)
        assert run.status is RunStatus.SUCCEEDED
        [queued] = _runs(scheduler, "report")
        assert queued.status is RunStatus.QUEUED and queued.trigger is RunTrigger.DEPENDENCY
        assert queued.upstream is not None and queued.upstream["fetch"]["run_id"] == run.id
    async with TaskScheduler(db_path=database, graph=prompt_graphs.graph) as scheduler:
        done = await scheduler.wait_for_run(queued.id, timeout=30)
    assert done.status is RunStatus.SUCCEEDED
    assert f"- fetch (succeeded, run {run.id}):" in _seen(done)["prompt"]


async def test_a_changed_condition_drops_the_outcomes_it_no_longer_counts() -> None:
    async with clocked_scheduler(graph=prompt_graphs.graph, start=START) as (scheduler, clock):
        scheduler.add_tasks([_manual("a", "ok"), _manual("b", "fail"), _manual("c", "fail"),
                             TaskDefinition(id="d", after="a, b, c", prompt="d")])  # fmt: skip
        scheduler.run_task_now("a")
        scheduler.run_task_now("c")
        await clock.advance(seconds=1)  # a succeeded (counted), c failed (not counted)
        fallback = {"tasks": ["a", "b", "c"], "on": "failed"}
        scheduler.add_task(TaskDefinition(id="d", after=fallback, prompt="d"))
        scheduler.run_task_now("b")
        scheduler.run_task_now("c")
        await clock.advance(seconds=1)  # b and c failed; a's success no longer counts
        assert _runs(scheduler, "d") == []
        scheduler.add_task(_manual("a", "fail"))
        scheduler.run_task_now("a")
        await clock.advance(seconds=1)
        [run] = _runs(scheduler, "d")
        assert {u: o["status"] for u, o in (run.upstream or {}).items()} == {
            "a": "failed",
            "b": "failed",
            "c": "failed",
        }


async def test_an_edit_made_with_model_copy_is_checked_as_a_new_definition() -> None:
    """``edit_task(id, lambda t: t.model_copy(update=...))``, the way to edit (pydantic's
    ``model_copy`` does not validate): ``after`` given in one of its forms runs after those
    tasks; a value that does not validate is refused, nothing written, the task as it was.
    Before, an ``after`` list or dict raised AttributeError (then, validated again, a
    serializer warning), and ``max_retries=-3`` was stored: the task could no longer be
    loaded, nor edited, and never ran again."""
    async with clocked_scheduler(graph=prompt_graphs.graph, start=START) as (scheduler, clock):
        scheduler.add_tasks([_manual("a", "ok"), _manual("b", "ok"), _manual("d", "d")])
        scheduler.edit_task("d", lambda t: t.model_copy(update={"after": ["a"]}))
        scheduler.edit_task("b", lambda t: t.model_copy(update={"after": {"tasks": ["d"]}}))
        assert sorted(scheduler.dependencies()) == [("b", "d"), ("d", "a")]
        for bad in ({"max_retries": -3}, {"after": ["b"]}, {"after": {"tasks": ["nope"]}}):
            with pytest.raises((ValidationError, DependencyError)):
                scheduler.edit_task("d", lambda t, bad=bad: t.model_copy(update=bad))
        scheduler.run_task_now("a")
        await clock.advance(seconds=1)
        assert [r.status for r in _runs(scheduler, "d")] == [RunStatus.SUCCEEDED]
        assert [r.status for r in _runs(scheduler, "b")] == [RunStatus.SUCCEEDED]
        assert scheduler.get_task("d").definition.max_retries is None  # type: ignore[union-attr]


def test_an_outcome_counts_as_unfollowed_until_its_followers_are_handed_over(
    tmp_path: Path,
) -> None:
    # what the test clock ends a round on: an outcome is counted from its mark, while a flush
    # (another thread's) holds it, once when a failed flush puts it back, 0 once handed over
    with _scheduler(tmp_path) as scheduler:
        scheduler.add_tasks([_manual("u", "u"), TaskDefinition(id="d", after="u", prompt="d")])
        run_id = scheduler.run_task_now("u")
        run_log = RunLog(scheduler.store)
        follow = Followers(scheduler.store, clock=time.time, output_chars=100).follow
        seen: list[int] = []
        handed: list[list[str]] = []

        def follow_counted(tx: Any, ended: Any) -> Any:
            seen.append(run_log.unfollowed)
            if len(seen) == 1:
                raise sqlite3.OperationalError("database is locked")
            return follow(tx, ended)

        run_log.follow = follow_counted
        run_log.deliver = lambda runs: handed.append([p.task.id for p in runs])
        run_log.finish(run_id, "u", status=RunStatus.SUCCEEDED, finished_at=time.time())
        assert run_log.unfollowed == 1
        with pytest.raises(StorageError):
            run_log.flush()
        assert run_log.unfollowed == 1  # (back in the buffer, not also in the flush)
        run_log.flush()
        assert (seen, handed, run_log.unfollowed) == ([1, 1], [["d"]], 0)


def test_an_outcome_the_database_did_not_take_sets_nothing_off(tmp_path: Path) -> None:
    # a process that lost the run to another writes its outcome after the other settled it:
    # the record stays as settled, and nothing runs after the outcome that was refused
    with _scheduler(tmp_path) as scheduler:
        after_any = {"tasks": ["u"], "on": "finished"}
        scheduler.add_tasks([_manual("u", "u"), TaskDefinition(id="d", after=after_any,
                                                                  prompt="d")])  # fmt: skip
        run_id = scheduler.run_task_now("u")
        scheduler.store.update_runs([{"id": run_id, "status": "interrupted", "finished_at": 1.0}])
        run_log = RunLog(scheduler.store)
        run_log.follow = Followers(scheduler.store, clock=time.time, output_chars=100).follow
        run_log.finish(run_id, "u", status=RunStatus.SUCCEEDED, finished_at=time.time())
        run_log.flush()
        assert scheduler.get_run(run_id).status is RunStatus.INTERRUPTED
        assert _runs(scheduler, "d") == []


def test_a_follow_reads_the_tasks_again_once_another_process_changed_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a follow on SQLite takes the rows and links warm() read while the change counter is
    # as it was then; a pause and an edit made since by another process (the CLI) are seen
    # by the next outcome's follow, which reads them again
    cli = Cli(tmp_path)
    with _scheduler_at(cli.db) as scheduler:
        downstream = [TaskDefinition(id=i, after="u", prompt=f"{i} 1") for i in ("d", "e")]
        scheduler.add_tasks([_manual("u", "u"), *downstream])
        first, second = scheduler.run_task_now("u"), scheduler.run_task_now("u")
        followers = Followers(scheduler.store, clock=time.time, output_chars=100)
        followers.warm()
        run_log = RunLog(scheduler.store)
        run_log.follow = followers.follow
        handed: list[list[tuple[str, str]]] = []
        run_log.deliver = lambda runs: handed.append(
            sorted((p.task.id, p.task.prompt) for p in runs)
        )
        reads: list[str] = []

        def note(name: str, what: str) -> None:  # (the reads still made, each noted)
            read = getattr(Transaction, name)
            monkeypatch.setattr(Transaction, name, lambda tx, i: reads.append(what) or read(tx, i))

        note("get_tasks", "tasks")
        note("links_from", "links")

        run_log.finish(first, "u", status=RunStatus.SUCCEEDED, finished_at=time.time())
        run_log.flush()
        assert (handed, reads) == ([[("d", "d 1"), ("e", "e 1")]], [])  # as warm() read them

        cli("pause", "e")
        cli("edit", "d", "--prompt", "d 2")
        run_log.finish(second, "u", status=RunStatus.SUCCEEDED, finished_at=time.time())
        run_log.flush()
        assert (handed[1:], reads) == ([[("d", "d 2")]], ["links", "tasks"])
        [skipped] = [r for r in _runs(scheduler, "e") if r.status is RunStatus.SKIPPED]
        assert "paused" in (skipped.error_message or "")


async def test_tasks_added_in_this_process_leave_the_kept_rows_in_use(
    make_scheduler: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a task added here with no link moves the change counter without a reload (the poll
    # is told): the rows and links kept for the follow hold at the new counter too, and
    # the follows after it do not read them again
    scheduler = make_scheduler()
    up = TaskDefinition(id="u", interval_seconds=1, prompt="u")
    scheduler.add_tasks([up, TaskDefinition(id="d", after="u", prompt="d")])
    reads: list[str] = []
    links_from = Transaction.links_from
    monkeypatch.setattr(
        Transaction, "links_from", lambda tx, ids: reads.append("links") or links_from(tx, ids)
    )
    scheduler.start()

    def done() -> int:
        return sum(r.status is RunStatus.SUCCEEDED for r in _runs(scheduler, "d"))

    await eventually(lambda: done() >= 1, timeout=15)
    scheduler.add_task(_manual("x", "x"))
    await asyncio.sleep(0.1)  # (the loop is told of it)
    reads.clear()
    ran = done()
    await eventually(lambda: done() >= ran + 2, timeout=15)
    assert reads == []


def test_writers_of_links_on_postgresql_never_deadlock(pg_schema_url: str) -> None:
    # one adds and removes a task while another adds and removes a task after it: the
    # links lock is taken before any row lock, by every writer
    stop = time.monotonic() + 5
    failures: list[str] = []

    def churn(task: TaskDefinition) -> None:
        scheduler = TaskScheduler(database_url=pg_schema_url, graph=prompt_graphs.graph)
        try:
            while time.monotonic() < stop:
                with contextlib.suppress(DependencyError):
                    scheduler.add_task(task)
                    scheduler.remove_task(task.id)
        except Exception as exc:
            failures.append(repr(exc))
        finally:
            scheduler.close()

    threads = [
        threading.Thread(target=churn, args=(_manual("a", "a"),)),
        threading.Thread(target=churn, args=(TaskDefinition(id="b", after="a", prompt="b"),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_the_after_field_in_its_forms() -> None:
    short = TaskDefinition(id="r", after="a, b", prompt="p")
    assert short.after is not None and short.after.tasks == ["a", "b"]
    assert short.after.on == "succeeded" and short.after.mode == "all"
    with pytest.raises(ValidationError, match="after"):
        TaskDefinition(id="r", after={"tasks": ["a"], "on": "sometimes"}, prompt="p")
    with pytest.raises(ValidationError, match="after"):
        TaskDefinition(id="r", after=[], prompt="p")
    with pytest.raises(ValidationError, match="given more than once"):
        TaskDefinition(id="r", after=["a", "a"], prompt="p")


def test_after_tasks_may_be_one_name_as_after_itself_may(tmp_path: Path) -> None:
    """``after: {tasks: fetch, on: failed}`` reads ``tasks`` as ``after: fetch`` does (one
    name, or "a, b"), in a tasks file and in the model; it was refused ("Input should be a
    valid list"). Anything else is still refused naming ``after.tasks``."""
    file = tmp_path / "tasks.yaml"
    file.write_text(
        "tasks:\n"
        "  - {id: fetch, schedule: every day at 09:00, prompt: f}\n"
        "  - {id: costs, schedule: every day at 09:00, prompt: c}\n"
        "  - id: alert\n"
        "    after: {tasks: fetch, on: failed}\n"
        "    prompt: a\n"
        "  - id: report\n"
        "    after: {tasks: 'fetch, costs', mode: any}\n"
        "    prompt: r\n"
    )
    tasks = {task.id: task for task in load_tasks_file(file)}
    assert tasks["alert"].after == After(tasks=["fetch"], on="failed")
    assert tasks["report"].after == After(tasks=["fetch", "costs"], mode="any")
    one = TaskDefinition(id="r", after={"tasks": "fetch"}, prompt="p")
    assert one.after is not None and one.after.tasks == ["fetch"]
    for bad in (7, "", {"fetch": 1}):
        with pytest.raises(ValidationError, match=r"after\.tasks"):
            TaskDefinition(id="r", after={"tasks": bad}, prompt="p")


@pytest.mark.slow
def test_kill_9_between_an_upstream_finish_and_its_downstream_start(tmp_path: Path) -> None:
    """One run slot, taken by a hanging task as soon as ``fetch`` finishes: the downstream
    is queued (committed with fetch's final status) but cannot start. kill -9 then; the
    restart runs the downstream once, and fetch not again."""
    from tests.test_reliability import Child, child, rows, wait_until

    db = tmp_path / "scheduler.db"
    calls = tmp_path / "calls.log"
    now = datetime.now(UTC).isoformat()
    record = {"prompt": "record", "metadata": {"log": str(calls)}}
    child(
        db,
        "add",
        json.dumps(
            [
                {"id": "fetch", "run_at": now, "priority": "high", **record},
                {"id": "blocker", "run_at": now, "priority": "low", "prompt": "hang"},
                {"id": "report", "after": "fetch", **record},
            ]
        ),
    )
    slot = {"SCHEDULER_MAX_CONCURRENT_RUNS": "1"}
    process = Child(db, env=slot)
    process.wait_for("active")
    queued = wait_until(
        lambda: rows(db, "SELECT * FROM scheduler_runs WHERE task_id='report'"),
        message="the downstream run queued",
    )
    assert [r["status"] for r in queued] == ["queued"]
    assert [
        r["status"] for r in rows(db, "SELECT * FROM scheduler_runs WHERE task_id='fetch'")
    ] == ["succeeded"]
    process.kill()
    restarted = Child(db, seconds=3, env=slot)
    restarted.wait_for("stopped", timeout=60)
    restarted.stop()
    reached = [line.split()[0] for line in calls.read_text().splitlines()]
    runs = {r["task_id"]: r for r in rows(db, "SELECT * FROM scheduler_runs")}
    assert len(runs) == 3 and len(rows(db, "SELECT * FROM scheduler_runs")) == 3
    assert reached == [runs["fetch"]["id"], runs["report"]["id"]]  # each once, in order
    assert runs["report"]["id"] == queued[0]["id"]
    assert runs["report"]["status"] == "succeeded"
    assert json.loads(runs["report"]["upstream"])["fetch"]["run_id"] == runs["fetch"]["id"]
    assert runs["blocker"]["status"] == "interrupted"


# -- the tasks file and the CLI -------------------------------------------------------------

CHAIN_FILE = """\
tasks:
  - id: fetch-sales
    schedule: every day at 09:00
    prompt: Fetch yesterday's sales figures.
  - id: fetch-costs
    schedule: every day at 09:00
    prompt: Fetch yesterday's costs.
  - id: report
    after: [fetch-sales, fetch-costs]
    prompt: Write the daily report from these figures.
  - id: alert
    after: {tasks: [report], on: failed}
    prompt: Tell the team the daily report failed.
"""


async def test_a_tasks_file_chain_applies_and_runs(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(CHAIN_FILE)
    async with clocked_scheduler(graph=prompt_graphs.graph, start=START) as (scheduler, clock):
        apply_tasks_file(scheduler, tasks)
        runs = await clock.advance(days=1)
        # a cycle in the file: nothing of it is applied, the cycle is named at its entry
        # (validate says so too), and list notes that the last good version runs
        looped = CHAIN_FILE.replace("schedule: every day at 09:00", "after: alert", 1)
        tasks.write_text(looped)
        cycle = "fetch-sales -> report -> alert -> fetch-sales"
        for check in (check_tasks_file, apply_tasks_file):
            with pytest.raises(TasksFileError, match=cycle) as refused:
                check(scheduler, tasks)
            [problem] = refused.value.problems
            assert problem.startswith(f"{tasks}:") and "after: a cycle" in problem
        assert "was not applied" in scheduler.notices()[0].message
        unknown = CHAIN_FILE.replace("after: [fetch-sales, fetch-costs]", "after: nope", 1)
        assert unknown != CHAIN_FILE
        tasks.write_text(unknown)
        with pytest.raises(TasksFileError, match="runs after 'nope', which is not a task"):
            check_tasks_file(scheduler, tasks)
        sales = scheduler.get_task("fetch-sales").definition
    assert sorted(r.task_id for r in runs[:2]) == ["fetch-costs", "fetch-sales"]
    assert [r.task_id for r in runs[2:]] == ["report"]  # and no alert: the report succeeded
    assert sales is not None and sales.after is None  # unchanged


def test_the_cli_adds_shows_draws_and_removes_chains(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli("add", "--id", "fetch-sales", "--schedule", "every day at 09:00", "--prompt", "s")
    cli("add", "--id", "fetch-costs", "--schedule", "every day at 09:00", "--prompt", "c")
    [report] = cli.json(
        "add", "--id", "report", "--after", "fetch-sales, fetch-costs", "--prompt", "r"
    )
    assert report["schedule"] == "After fetch-sales, fetch-costs"
    assert report["state"] == "active"
    cli("add", "--id", "alert", "--after", "report", "--after-on", "failed", "--prompt", "a")
    listed = cli("list").stdout
    assert "After fetch-sales, fetch-costs" in listed and "After report fails" in listed
    shown = cli.json("show", "report")
    assert (shown["upstream"], shown["downstream"]) == (["fetch-costs", "fetch-sales"], ["alert"])
    assert "runs after:      fetch-costs, fetch-sales" in cli("show", "report").stdout
    assert cli("graph").stdout.splitlines() == [
        "fetch-costs",
        "   -> report  (After fetch-sales, fetch-costs)",
        "      -> alert  (After report fails)",
        "fetch-sales",
        "   -> report  (After fetch-sales, fetch-costs)  (see above)",
    ]
    assert "fetch-sales -> report -> alert -> fetch-sales" in cli.fails(
        "edit", "fetch-sales", "--after", "alert"
    )
    assert "which is not a task" in cli.fails(
        "add", "--id", "x", "--after", "nope", "--prompt", "p"
    )
    assert "need --after" in cli.fails("add", "--id", "x", "--after-on", "failed", "--prompt", "p")
    edited = cli.json("edit", "alert", "--after", "report,fetch-costs", "--after-any")
    assert edited["schedule"] == "After any of report, fetch-costs fails"
    # --after-all undoes --after-any (before: only --no-after, which needs a --schedule);
    # --after alone keeps the mode the task has
    kept = cli.json("edit", "alert", "--after", "fetch-costs,report")
    assert kept["schedule"] == "After any of fetch-costs, report fails"
    every = cli.json("edit", "alert", "--after-all")
    assert every["schedule"] == "After fetch-costs, report fail"
    assert every["definition"]["after"]["mode"] == "all"
    assert "not allowed with argument" in cli.fails("edit", "alert", "--after-any", "--after-all")
    assert "cannot go with" in cli.fails("edit", "alert", "--no-after", "--after-all")
    # (it said "task_type 'after' needs after": the very thing just asked to drop)
    assert "give it a schedule with it (--schedule)" in cli.fails("edit", "alert", "--no-after")
    assert "(needed by report)" in cli.fails("remove", "fetch-sales", "--yes")
    cli("remove", "fetch-sales", "--yes", "--force")
    assert "fetch-sales  (not a task: removed with force)" in cli("graph").stdout
    graph = cli.json("graph")
    assert {"task": "report", "after": "fetch-sales"} in graph["links"]


def test_a_chain_of_thousands_of_tasks_is_drawn_without_recursion() -> None:
    from scheduler.dependencies.graph import draw

    chain = [(f"t{i + 1}", f"t{i}") for i in range(5000)]  # t1 after t0, t2 after t1, ...
    lines = draw(chain, {f"t{i}": "w" for i in range(5001)})
    assert len(lines) == 5001
    assert lines[0] == "t0" and lines[-1] == "   " * 5000 + "-> t5000  (w)"


async def test_what_the_recovery_at_start_settles_reaches_listeners(tmp_path: Path) -> None:
    # a process died while "fetch" ran (no retries left): the next one records it
    # interrupted, and "paused", which runs after whatever fetch's outcome, is skipped; both
    # ends are told (listeners, webhooks) as any run's end is
    with _scheduler(tmp_path) as setup:
        setup.add_tasks(
            [
                _manual("fetch", "f", max_retries=0),
                TaskDefinition(id="paused", after={"tasks": ["fetch"], "on": "finished"},
                               prompt="p"),
            ]
        )  # fmt: skip
        setup.pause_task("paused")
        now = time.time()
        left = queued_run("left", "fetch", scheduled_for=now, queued_at=now,
                          trigger=RunTrigger.MANUAL)  # fmt: skip
        left.status, left.started_at = RunStatus.RUNNING.value, now
        with setup.store.transaction() as tx:
            tx.insert_runs([left])
    scheduler = TaskScheduler(db_path=str(tmp_path / "s.db"), graph=prompt_graphs.graph)
    ended: list[tuple[str, str]] = []
    scheduler.subscribe(
        lambda e: ended.append((e.task.id, e.run.status.value)) if e.kind == "finished" else None
    )
    scheduler.start()
    try:
        await eventually(lambda: ("paused", "skipped") in ended or None, timeout=5,
                         message=f"the skip told; told: {ended}")  # fmt: skip
        assert [r.status for r in scheduler.list_runs("paused")] == [RunStatus.SKIPPED]
        assert sorted(ended) == [("fetch", "interrupted"), ("paused", "skipped")]
    finally:
        await scheduler.stop()
        scheduler.close()


async def test_wait_idle_waits_for_the_runs_that_follow_the_last_one(make_scheduler: Any) -> None:
    # on the wall clock: the flush that writes fetch's outcome queues summarise (then
    # publish), a moment after fetch ended: wait_idle returned in that moment, with both
    # still to come (a stop() then left them queued until the next start)
    scheduler = make_scheduler()
    scheduler.start()
    scheduler.add_tasks(
        [
            _manual("fetch", "fetch it"),
            TaskDefinition(id="summarise", after="fetch", prompt="summarise"),
            TaskDefinition(id="publish", after="summarise", prompt="publish"),
        ]
    )
    scheduler.run_task_now("fetch")
    await scheduler.wait_idle()
    runs = reversed(scheduler.list_runs(limit=None))
    assert [(r.task_id, r.status) for r in runs] == [
        (task_id, RunStatus.SUCCEEDED) for task_id in ("fetch", "summarise", "publish")
    ]


async def test_a_queued_follow_up_runs_its_task_as_edited(make_scheduler: Any) -> None:
    scheduler = make_scheduler(max_concurrent_runs=1)
    scheduler.start()
    scheduler.add_tasks(
        [
            _manual("upstream", "sleep:0.3"),
            _manual("blocker", "sleep:0.6"),
            TaskDefinition(id="downstream", after="upstream", prompt="fail"),
        ]
    )
    scheduler.run_task_now("upstream")
    await eventually(lambda: scheduler.list_runs("upstream", status="running"))
    scheduler.run_task_now("blocker")  # has the slot when the follow-up is queued
    queued = await eventually(lambda: scheduler.list_runs("downstream", status="queued"))
    assert scheduler.list_runs("blocker", status="running")
    scheduler.add_task(TaskDefinition(id="downstream", after="upstream", prompt="edited"))
    run = await scheduler.wait_for_run(queued[0].id, timeout=10)
    assert run.status is RunStatus.SUCCEEDED, run.error_message
    assert _seen(run)["prompt"].startswith("edited\n")


@pytest.mark.parametrize("attempt", range(3))
async def test_stop_returns_when_a_run_others_follow_ends_in_its_grace(
    make_scheduler: Any, attempt: int
) -> None:
    """The end of a run that others follow wakes the run log's flush as stop() cancels
    it; on Python 3.11 asyncio.wait_for swallowed that cancel, and stop() never returned."""
    scheduler = make_scheduler()
    scheduler.start()
    scheduler.add_tasks(
        [
            _manual("report", "sleep:0.3"),
            TaskDefinition(id="alert", after={"tasks": ["report"], "on": "finished"}, prompt="p"),
        ]
    )
    run_id = scheduler.run_task_now("report")
    await eventually(lambda: scheduler.get_run(run_id).status is RunStatus.RUNNING)
    stopping = asyncio.ensure_future(scheduler.stop(grace_seconds=3))
    done, _ = await asyncio.wait({stopping}, timeout=10)
    assert done, "stop() did not return"
    assert scheduler.get_run(run_id).status is RunStatus.SUCCEEDED
    [alert] = scheduler.list_runs("alert")
    assert alert.status is RunStatus.QUEUED  # for the next start, as promised


async def test_a_fan_in_round_starts_empty_after_a_run_on_one_upstream() -> None:
    """A task edited from ``after: a, b`` to ``after: a`` and back: an outcome of ``a``
    recorded under the first fan-in, which the task has run on since, does not count."""
    async with clocked_scheduler(graph=prompt_graphs.graph, start=START) as (scheduler, clock):
        scheduler.add_tasks([_manual("a", "a"), _manual("b", "b")])
        scheduler.add_task(TaskDefinition(id="d", after="a, b", prompt="d"))
        scheduler.run_task_now("a")
        await clock.advance(seconds=1)  # a counted toward d (a, b)
        scheduler.add_task(TaskDefinition(id="d", after="a", prompt="d"))
        second = scheduler.run_task_now("a")
        await clock.advance(seconds=1)
        [ran] = scheduler.list_runs("d")
        assert ran.upstream is not None and ran.upstream["a"]["run_id"] == second
        scheduler.add_task(TaskDefinition(id="d", after="a, b", prompt="d"))
        scheduler.run_task_now("b")
        await clock.advance(seconds=1)
        assert len(scheduler.list_runs("d")) == 1  # waits for a again
        third = scheduler.run_task_now("a")
        await clock.advance(seconds=1)
        latest = scheduler.list_runs("d")[0]
        assert latest.upstream is not None and latest.upstream["a"]["run_id"] == third


def _approve(state: MessagesState) -> dict[str, Any]:
    prompt = str(state["messages"][-1].content)
    if prompt.startswith("approve") and interrupt({"asked": prompt}) == "fail":
        raise RuntimeError("told to fail")
    return {"messages": [AIMessage("fetched 42 rows")]}


_approver = StateGraph(MessagesState)
_approver.add_node("node", _approve)
_approver.add_edge(START_NODE, "node")
APPROVER = _approver.compile()


@pytest.mark.parametrize("restart", [False, True])
async def test_a_waiting_dependency_run_keeps_its_upstream_across_a_restart(
    tmp_path: Path, restart: bool
) -> None:
    """Its retry after a failed continuation is a fresh run with the upstream outcomes in
    its prompt, whether or not the process restarted while the run waited."""
    db = tmp_path / "s.db"
    tasks = [
        _manual("fetch", "fetch"),
        TaskDefinition(
            id="approve",
            after="fetch",
            prompt="approve the report",
            max_retries=1,
            retry_delay_seconds=1,
        ),
    ]
    async with clocked_scheduler(graph=APPROVER, db_path=db, start=START) as (scheduler, clock):
        scheduler.add_tasks(tasks)
        scheduler.run_task_now("fetch")
        await clock.advance(seconds=1)
        [waiting] = scheduler.list_runs("approve")
        assert waiting.status is RunStatus.WAITING and waiting.upstream
        if not restart:
            scheduler.resume_run(waiting.id, "fail")
            await clock.advance(seconds=5)
            retry, failed = scheduler.list_runs("approve")
    if restart:
        later = "2030-01-01T00:01:00Z"
        async with clocked_scheduler(graph=APPROVER, db_path=db, start=later) as (scheduler, clock):
            scheduler.resume_run(waiting.id, "fail")
            await clock.advance(seconds=5)
            retry, failed = scheduler.list_runs("approve")
    assert (failed.id, failed.status) == (waiting.id, RunStatus.FAILED)
    assert retry.attempt == 2 and retry.upstream == waiting.upstream
    assert retry.interrupts is not None
    assert "fetched 42 rows" in json.dumps(retry.interrupts)


async def test_an_upstream_removed_with_force_and_added_again_starts_anew() -> None:
    """The outcome of the removed task recorded toward a fan-in does not count for the
    task added later under its id."""
    async with clocked_scheduler(graph=prompt_graphs.graph, start=START) as (scheduler, clock):
        scheduler.add_tasks([_manual("a", "a"), _manual("b", "b")])
        scheduler.add_task(TaskDefinition(id="d", after="a, b", prompt="d"))
        scheduler.run_task_now("a")
        await clock.advance(seconds=1)  # a's outcome recorded toward d
        scheduler.remove_task("a", force=True)
        scheduler.add_task(_manual("a", "a again"))
        scheduler.run_task_now("b")
        await clock.advance(seconds=1)
        assert scheduler.list_runs("d") == []  # waits for the new a
        again = scheduler.run_task_now("a")
        await clock.advance(seconds=1)
        [ran] = scheduler.list_runs("d")
        assert ran.upstream is not None and ran.upstream["a"]["run_id"] == again


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_database_error_while_queueing_followers_is_retried_with_the_records(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database error inside the follow-up (a deadlock, a timeout) fails the whole flush,
    which the next one writes again, the upstream's outcome with its follower. It used to
    be logged and the flush committed: on PostgreSQL the aborted transaction's commit undid
    everything silently (the run stayed ``running`` and was run again after a restart)."""
    from scheduler.storage.transaction import Transaction

    if backend == "postgres":
        where: dict[str, Any] = {"database_url": request.getfixturevalue("pg_schema_url")}
    else:
        where = {"db_path": tmp_path / "s.db"}
    scheduler = TaskScheduler(graph=prompt_graphs.graph, settings=make_settings(), **where)
    scheduler.add_tasks(
        [
            TaskDefinition(id="a", run_at="2099-01-01T00:00:00Z", prompt="a"),
            TaskDefinition(id="d", after="a", prompt="d"),
        ]
    )
    statuses = Transaction.run_statuses
    failed: list[bool] = []

    def failing_once(self: Transaction, *args: Any) -> Any:
        if not failed:
            failed.append(True)
            if backend == "postgres":  # a real error of the server, in this transaction
                self._conn.exec_driver_sql("SELECT 1/0")
            raise sqlite3.OperationalError("database is locked")
        return statuses(self, *args)

    monkeypatch.setattr(Transaction, "run_statuses", failing_once)
    scheduler.start()
    try:
        ran = await scheduler.wait_for_run(scheduler.run_task_now("a"), timeout=10)
        assert failed and ran.status is RunStatus.SUCCEEDED
        [follower] = await eventually(lambda: scheduler.list_runs("d"))
        assert (await scheduler.wait_for_run(follower.id, timeout=10)).status is RunStatus.SUCCEEDED
        assert [r.status for r in scheduler.list_runs("a")] == [RunStatus.SUCCEEDED]
    finally:
        await scheduler.stop(grace_seconds=0)
        scheduler.close()


async def test_a_bug_while_queueing_followers_undoes_only_their_writes(
    make_scheduler: SchedulerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the follow-up (not the database's) is logged; what it wrote is undone to a
    savepoint, and the upstream's outcome is written: no half-queued follower."""
    follow = Followers.follow

    def buggy(self: Followers, *args: Any) -> Any:
        follow(self, *args)  # queues d, then fails
        raise RuntimeError("a bug")

    monkeypatch.setattr(Followers, "follow", buggy)
    scheduler = make_scheduler()
    scheduler.add_tasks(
        [
            TaskDefinition(id="a", run_at="2099-01-01T00:00:00Z", prompt="a"),
            TaskDefinition(id="d", after="a", prompt="d"),
        ]
    )
    scheduler.start()
    ran = await scheduler.wait_for_run(scheduler.run_task_now("a"), timeout=10)
    assert ran.status is RunStatus.SUCCEEDED
    await asyncio.sleep(0.3)
    assert scheduler.list_runs("d") == []


async def test_a_run_going_when_its_task_is_force_removed_sets_nothing_off(
    make_scheduler: SchedulerFactory,
) -> None:
    """The tasks that ran after a removed task wait for a task that is gone: the end of a
    run of it that was going at the removal is not theirs to follow (it used to start
    them)."""
    scheduler = make_scheduler()
    scheduler.add_tasks(
        [
            TaskDefinition(id="a", run_at="2099-01-01T00:00:00Z", prompt="sleep:0.8"),
            TaskDefinition(id="d", after="a", prompt="d"),
        ]
    )
    scheduler.start()
    going = scheduler.run_task_now("a")
    await eventually(lambda: scheduler.get_run(going).status is RunStatus.RUNNING)
    scheduler.remove_task("a", force=True)
    assert (await scheduler.wait_for_run(going, timeout=10)).status is RunStatus.SUCCEEDED
    await asyncio.sleep(0.5)
    assert scheduler.list_runs("d") == []


async def test_a_retry_missed_after_downtime_leaves_the_failed_attempt_final(
    tmp_path: Path,
) -> None:
    """The upstream fails and earns a retry; the scheduler stops, and starts again past
    the retry's catch-up window: the retry is ``missed``. The attempt it retried is then
    the final outcome: the fallback runs (it used to hear of nothing: the upstream failed
    and no one was told)."""
    db = tmp_path / "s.db"
    callbacks.failures.clear()
    async with clocked_scheduler(graph=prompt_graphs.graph, db_path=db) as (scheduler, clock):
        scheduler.add_task(
            TaskDefinition(
                id="up",
                run_at="2030-01-01T00:00:01Z",
                prompt="fail",
                max_retries=1,
                retry_delay_seconds=600,
                on_failure_callback="tests.callbacks:on_failure",
            )
        )
        scheduler.add_task(
            TaskDefinition(id="fallback", after={"tasks": ["up"], "on": "failed"}, prompt="alert")
        )
        scheduler.add_task(TaskDefinition(id="ok", after="up", prompt="done"))
        await clock.advance(seconds=5)
        [retry, failed] = scheduler.list_runs("up")
        assert (retry.status, failed.status) == (RunStatus.QUEUED, RunStatus.FAILED)
    assert callbacks.failures == []  # a retry is due: not a failure yet
    later = "2030-01-01T03:00:00Z"  # past the retry's window of 3,600 s
    async with clocked_scheduler(graph=prompt_graphs.graph, db_path=db, start=later) as (
        scheduler,
        clock,
    ):
        await clock.advance(seconds=5)
        assert scheduler.get_run(retry.id).status is RunStatus.MISSED
        [fallback] = scheduler.list_runs("fallback")
        assert fallback.status is RunStatus.SUCCEEDED
        assert fallback.upstream is not None
        assert fallback.upstream["up"]["run_id"] == failed.id
        assert scheduler.list_runs("ok") == []
        await eventually(lambda: callbacks.failures)  # and the failure callback, once
    [(task_id, run)] = callbacks.failures
    assert (task_id, run.id, run.status) == ("up", failed.id, RunStatus.FAILED)


_UNREADABLE = '{"id": "up", "interval_seconds": NaN, "prompt": "p"}'  # (written by hand)


@pytest.mark.parametrize("where", ["queued at the start", "waiting at the start", "asked for"])
async def test_a_run_cancelled_as_its_task_cannot_be_read_is_followed_as_a_cancel(
    tmp_path: Path, where: str
) -> None:
    """A run cancelled ``TaskUnavailable`` (its task's stored definition cannot be read when
    it should start: left queued or waiting by the last process, or asked for by another
    one) ends as a cancel from the user does: what runs after it on ``finished`` runs, with
    that outcome; a fallback on ``failed`` does not. It used to set nothing off."""
    with _scheduler(tmp_path) as setup:
        setup.add_tasks(
            [
                _manual("up", "u"),
                TaskDefinition(id="any-end", after={"tasks": ["up"], "on": "finished"},
                               prompt="p"),
                TaskDefinition(id="fallback", after={"tasks": ["up"], "on": "failed"},
                               prompt="p"),
            ]
        )  # fmt: skip
    now = time.time()
    left = queued_run("f" * 24, "up", scheduled_for=now, queued_at=now, trigger=RunTrigger.MANUAL)
    if where == "waiting at the start":
        left.status, left.started_at, left.waiting_since = RunStatus.WAITING.value, now, now
        left.thread_id = "t"

    def leave() -> None:  # another process's writes: the run, and a task row made unreadable
        with _scheduler(tmp_path) as other, other.store.transaction() as tx:
            tx.insert_runs([left])
        with sqlite3.connect(tmp_path / "s.db") as db:
            db.execute("UPDATE scheduler_tasks SET definition = ? WHERE id = 'up'", (_UNREADABLE,))
        db.close()

    if where != "asked for":
        leave()
    scheduler = TaskScheduler(db_path=str(tmp_path / "s.db"), graph=prompt_graphs.graph,
                              settings=make_settings())  # fmt: skip
    scheduler.start()
    try:
        if where == "asked for":
            leave()
            with _scheduler(tmp_path) as other:  # a change: the active one reads the database
                other.add_task(_manual("other", "o"))
        [follower] = await eventually(
            lambda: scheduler.list_runs("any-end", status="succeeded"), message="the follower"
        )
        cancelled = scheduler.get_run(left.id)
        assert (cancelled.status, cancelled.error_type) == (RunStatus.CANCELLED, "TaskUnavailable")
        assert follower.upstream is not None
        assert follower.upstream["up"]["run_id"] == left.id
        assert follower.upstream["up"]["status"] == "cancelled"
        assert scheduler.list_runs("fallback") == []
    finally:
        await scheduler.stop()
        scheduler.close()


async def test_every_skip_a_recovery_writes_reaches_listeners(tmp_path: Path) -> None:
    """A start settles a run cut off by a crash (``interrupted``) and a retry missed while
    down (its failed attempt is final): both are followed, each by a paused task that is
    skipped. Both skips are told (the second follow of the transaction dropped the first's)."""
    with _scheduler(tmp_path) as setup:
        setup.add_tasks(
            [_manual("a", "a"), _manual("b", "b")]
            + [TaskDefinition(id=f"after-{t}", after={"tasks": [t], "on": "finished"},
                              prompt="p") for t in "ab"]
        )  # fmt: skip
        setup.pause_task("after-a")
        setup.pause_task("after-b")
        now, long_ago = time.time(), time.time() - 7200  # (outside the catch-up window)
        cut = queued_run("a" * 24, "a", scheduled_for=now, queued_at=now,
                         trigger=RunTrigger.MANUAL)  # fmt: skip
        cut.status, cut.started_at = RunStatus.RUNNING.value, now
        failed = queued_run("b" * 24, "b", scheduled_for=long_ago, queued_at=long_ago,
                            trigger=RunTrigger.MANUAL)  # fmt: skip
        failed.status, failed.started_at, failed.finished_at = "failed", long_ago, long_ago
        retry = queued_run("c" * 24, "b", scheduled_for=long_ago, queued_at=long_ago,
                           trigger=RunTrigger.RETRY, attempt=2, retry_of=failed.id)  # fmt: skip
        with setup.store.transaction() as tx:
            tx.insert_runs([cut, failed, retry])
    scheduler = TaskScheduler(db_path=str(tmp_path / "s.db"), graph=prompt_graphs.graph)
    skipped: list[str] = []
    scheduler.subscribe(
        lambda e: skipped.append(e.task.id) if e.run.status is RunStatus.SKIPPED else None
    )
    scheduler.start()
    try:
        await eventually(lambda: len(scheduler.list_runs(status="skipped")) == 2)
        await eventually(lambda: sorted(skipped) == ["after-a", "after-b"],
                         message=f"both skips told; told: {skipped}")  # fmt: skip
    finally:
        await scheduler.stop()
        scheduler.close()
