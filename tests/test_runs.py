"""Run policies in one process on a real SQLite file and a real graph that fails, hangs or
sleeps on command: history, retries with backoff, timeouts, overlap, priorities under a
concurrency limit, graceful stop, retention."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler import RunRecord, RunStatus, TaskDefinition
from scheduler.task_scheduler import running_scheduler
from tests import callbacks
from tests.conftest import SchedulerFactory, eventually


def runs_of(scheduler: object, task_id: str) -> list[RunRecord]:
    """Oldest first."""
    return list(reversed(scheduler.list_runs(task_id, limit=None)))  # type: ignore[attr-defined]


async def test_retry_succeeds_after_failures(
    make_scheduler: SchedulerFactory, tmp_path: Path
) -> None:
    callbacks.failures.clear()
    scheduler = make_scheduler()
    scheduler.start()
    scheduler.add_task(
        TaskDefinition(
            id="recovers",
            interval_seconds=3600,
            prompt="fail-until:3",
            max_retries=5,
            retry_delay_seconds=0.05,
            metadata={"counter": str(tmp_path / "calls")},
            on_failure_callback="tests.callbacks:on_failure",
        )
    )
    scheduler.run_task_now("recovers")
    await eventually(lambda: scheduler.list_runs("recovers", status="succeeded"))
    statuses = [(r.attempt, r.status) for r in runs_of(scheduler, "recovers")]
    assert statuses == [(1, RunStatus.FAILED), (2, RunStatus.FAILED), (3, RunStatus.SUCCEEDED)]
    assert callbacks.failures == []


async def test_timeout_cancels_the_run_and_records_timed_out(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler()
    scheduler.start()
    scheduler.add_task(
        TaskDefinition(id="slow", interval_seconds=3600, prompt="hang", timeout_seconds=0.3)
    )
    run = await scheduler.wait_for_run(scheduler.run_task_now("slow"), timeout=10)
    assert run.status is RunStatus.TIMED_OUT
    assert run.error_message == "the run exceeded its timeout of 0.3 s"
    assert run.duration_seconds is not None and 0.25 <= run.duration_seconds < 2


async def test_overlap_skip_records_skipped_occurrences(make_scheduler: SchedulerFactory) -> None:
    scheduler = make_scheduler()
    scheduler.start()
    scheduler.add_task(
        TaskDefinition(id="busy", interval_seconds=0.2, prompt="sleep:1", overlap="skip")
    )
    await eventually(lambda: len(scheduler.list_runs("busy", status="skipped")) >= 3)
    running = scheduler.list_runs("busy", status=["running", "succeeded"])
    assert running, "the first occurrence runs"
    skipped = scheduler.list_runs("busy", status="skipped")[0]
    assert skipped.error_message == "the previous run was still going (overlap policy 'skip')"
    assert skipped.started_at is None and skipped.finished_at is not None


async def test_overlap_queue_buffers_one_and_runs_it_right_after(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler()
    scheduler.start()
    scheduler.add_task(
        TaskDefinition(id="q", interval_seconds=0.25, prompt="sleep:0.8", overlap="queue")
    )
    await eventually(lambda: len(scheduler.list_runs("q", status="succeeded")) >= 2, timeout=15)
    scheduler.pause_task("q")
    await scheduler.wait_idle()
    history = runs_of(scheduler, "q")
    done = [r for r in history if r.status is RunStatus.SUCCEEDED]
    assert any(r.status is RunStatus.SKIPPED for r in history), "extra occurrences are skipped"
    first, second = done[0], done[1]
    assert second.queued_at < first.finished_at  # type: ignore[operator]  # buffered meanwhile
    gap = (second.started_at - first.finished_at).total_seconds()  # type: ignore[operator]
    assert 0 <= gap < 0.3  # and started right after
    intervals = sorted((r.started_at, r.finished_at) for r in done)
    for (_, end), (start, _) in itertools.pairwise(intervals):
        assert start >= end  # type: ignore[operator]  # never in parallel


async def test_overlap_allow_runs_in_parallel_up_to_max_instances(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler()
    scheduler.start()
    scheduler.add_task(
        TaskDefinition(
            id="par", interval_seconds=0.2, prompt="sleep:1", overlap="allow", max_instances=2
        )
    )
    await eventually(lambda: len(scheduler.list_runs("par", status="skipped")) >= 2, timeout=15)
    await eventually(lambda: len(scheduler.list_runs("par", status="succeeded")) >= 2, timeout=15)
    scheduler.pause_task("par")
    await scheduler.wait_idle()
    done = sorted(
        (r.started_at, r.finished_at)
        for r in runs_of(scheduler, "par")
        if r.status is RunStatus.SUCCEEDED
    )
    overlapping = max(
        sum(1 for s, e in done if s <= moment < e)  # type: ignore[operator]
        for moment, _ in done
    )
    assert overlapping == 2


async def test_priorities_decide_who_gets_a_free_slot(make_scheduler: SchedulerFactory) -> None:
    scheduler = make_scheduler(max_concurrent_runs=1)
    scheduler.start()
    scheduler.add_task(TaskDefinition(id="blocker", interval_seconds=3600, prompt="sleep:1"))
    scheduler.run_task_now("blocker")
    await eventually(lambda: scheduler.list_runs("blocker", status="running"))
    at = datetime.now(UTC) + timedelta(seconds=0.2)
    later = at + timedelta(seconds=0.1)
    scheduler.add_tasks(
        [
            TaskDefinition(id="low", run_at=at, prompt="p", priority="low"),
            TaskDefinition(id="medium-later", run_at=later, prompt="p"),
            TaskDefinition(id="medium", run_at=at, prompt="p", priority="medium"),
            TaskDefinition(id="urgent", run_at=later, prompt="p", priority="urgent"),
            TaskDefinition(id="high", run_at=at, prompt="p", priority="high"),
        ]
    )
    waiting = await eventually(
        lambda: len(scheduler.list_runs(status="queued")) == 5, message="five queued runs"
    )
    assert waiting
    await eventually(lambda: len(scheduler.list_runs(status="succeeded")) == 6, timeout=15)
    order = [r.task_id for r in sorted(scheduler.list_runs(limit=None), key=lambda r: r.started_at)]  # type: ignore[arg-type, return-value]
    assert order == ["blocker", "urgent", "high", "medium", "medium-later", "low"]


async def test_during_stops_grace_its_runs_can_be_cancelled_and_reach_it(
    make_scheduler: SchedulerFactory,
) -> None:
    """Through the grace, cancel_run said True and the run went on to succeed (it looked
    only at a running supervisor, then asked the database, which nobody polled); and
    running_scheduler() said None, so a run's agent tools fell back to the settings'
    database (another one, possibly)."""
    scheduler = make_scheduler()
    scheduler.start()
    scheduler.add_tasks(
        [
            TaskDefinition(id="slow", interval_seconds=3600, prompt="sleep:5"),
            TaskDefinition(id="other", interval_seconds=3600, prompt="sleep:1"),
            TaskDefinition(id="asks", interval_seconds=3600, prompt="ask-record-sleep:0"),
        ]
    )
    slow, other = scheduler.run_task_now("slow"), scheduler.run_task_now("other")
    asks = scheduler.run_task_now("asks")
    await eventually(lambda: len(scheduler.list_runs(status="running")) == 2)
    await eventually(lambda: scheduler.get_run(asks).status is RunStatus.WAITING)
    stopping = asyncio.create_task(scheduler.stop(grace_seconds=10))
    await asyncio.sleep(0.2)
    assert not scheduler.running and running_scheduler() is scheduler
    assert scheduler.cancel_run(slow)
    # a waiting run, let go of by the stop, is asked through the database (the next start
    # cancels it), as once the scheduler has stopped
    assert scheduler.cancel_run(asks)
    await stopping
    assert running_scheduler() is None
    assert scheduler.get_run(slow).status is RunStatus.CANCELLED
    assert scheduler.get_run(other).status is RunStatus.SUCCEEDED  # (the grace held)
    assert not scheduler.cancel_run(other)
    scheduler.start()
    await eventually(lambda: scheduler.get_run(asks).status is RunStatus.CANCELLED)


async def test_graceful_stop_lets_runs_finish_then_cancels_the_rest(
    make_scheduler: SchedulerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler = make_scheduler()
    scheduler.start()
    scheduler.add_tasks(
        [
            TaskDefinition(id="quick", interval_seconds=3600, prompt="sleep:0.3"),
            TaskDefinition(id="stuck", interval_seconds=3600, prompt="hang"),
        ]
    )
    quick = scheduler.run_task_now("quick")
    stuck = scheduler.run_task_now("stuck")
    await eventually(lambda: len(scheduler.list_runs(status="running")) == 2)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        await scheduler.stop(grace_seconds=1.0)
    assert scheduler.get_run(quick).status is RunStatus.SUCCEEDED
    cancelled = scheduler.get_run(stuck)
    assert cancelled.status is RunStatus.CANCELLED
    assert cancelled.error_message == "the scheduler stopped before the run finished"
    noisy = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert noisy == [], [r.getMessage() for r in noisy]
    assert not any("raised an exception" in r.getMessage() for r in caplog.records)


async def test_list_tasks_and_runs_show_counts_and_last_status(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler()
    scheduler.start()
    scheduler.add_tasks(
        [
            TaskDefinition(id="ok", interval_seconds=3600, prompt="p"),
            TaskDefinition(id="bad", interval_seconds=3600, prompt="fail"),
        ]
    )
    for _ in range(3):
        await scheduler.wait_for_run(scheduler.run_task_now("ok"), timeout=10)
    await scheduler.wait_for_run(scheduler.run_task_now("bad"), timeout=10)
    tasks = {t.id: t for t in scheduler.list_tasks()}
    assert (tasks["ok"].run_count, tasks["ok"].last_status) == (3, RunStatus.SUCCEEDED)
    assert tasks["ok"].last_error is None
    assert (tasks["bad"].run_count, tasks["bad"].last_status) == (1, RunStatus.FAILED)
    assert tasks["bad"].last_error == "failing on command"
    assert tasks["bad"].last_run is not None
    assert len(scheduler.list_runs()) == 4
    assert len(scheduler.list_runs("ok", limit=2)) == 2
    assert [r.task_id for r in scheduler.list_runs(status="failed")] == ["bad"]
    newest = scheduler.list_runs(limit=1)[0]
    assert newest.task_id == "bad"


async def test_history_is_bounded_by_retention(make_scheduler: SchedulerFactory) -> None:
    scheduler = make_scheduler(history_max_runs=3)
    scheduler.start()
    scheduler.add_task(TaskDefinition(id="many", interval_seconds=3600, prompt="p"))
    ids = [
        await scheduler.wait_for_run(scheduler.run_task_now("many"), timeout=10) for _ in range(6)
    ]
    assert scheduler.prune_history() == 3
    kept = [r.id for r in scheduler.list_runs("many", limit=None)]
    assert kept == [r.id for r in reversed(ids[-3:])]
    assert scheduler.get_task("many").run_count == 3


async def test_removing_a_task_cancels_its_waiting_runs(make_scheduler: SchedulerFactory) -> None:
    scheduler = make_scheduler(max_concurrent_runs=1)
    scheduler.start()
    scheduler.add_tasks(
        [
            TaskDefinition(id="blocker", interval_seconds=3600, prompt="sleep:0.5"),
            TaskDefinition(id="doomed", interval_seconds=3600, prompt="p"),
        ]
    )
    scheduler.run_task_now("blocker")
    await eventually(lambda: scheduler.list_runs("blocker", status="running"))
    waiting = scheduler.run_task_now("doomed")
    scheduler.remove_task("doomed")
    run = await scheduler.wait_for_run(waiting, timeout=10)
    assert run.status is RunStatus.CANCELLED
    assert run.error_message == "the task was removed"


async def test_a_run_not_yet_started_runs_the_task_as_edited(
    make_scheduler: SchedulerFactory,
) -> None:
    """Queued behind a busy slot, waiting to retry, or queued by an edit elsewhere: a run
    that has not started takes the task's definition as it is when it starts."""

    def retried(prompt: str) -> TaskDefinition:
        return TaskDefinition(
            id="retried",
            interval_seconds=3600,
            prompt=prompt,
            max_retries=1,
            retry_delay_seconds=0.8,
        )

    scheduler = make_scheduler(max_concurrent_runs=1, poll_interval_seconds=0.1)
    scheduler.start()
    scheduler.add_tasks(
        [
            TaskDefinition(id="blocker", interval_seconds=3600, prompt="sleep:0.6"),
            TaskDefinition(id="here", interval_seconds=3600, prompt="fail"),
            TaskDefinition(id="elsewhere", interval_seconds=3600, prompt="fail"),
            retried("fail"),
        ]
    )
    scheduler.run_task_now("blocker")
    await eventually(lambda: scheduler.list_runs("blocker", status="running"))
    here = scheduler.run_task_now("here")
    elsewhere = scheduler.run_task_now("elsewhere")
    scheduler.add_task(TaskDefinition(id="here", interval_seconds=3600, prompt="fixed here"))
    other = make_scheduler()  # another process's write: seen by the running one's poll
    other.add_task(TaskDefinition(id="elsewhere", interval_seconds=3600, prompt="fixed elsewhere"))
    assert (await scheduler.wait_for_run(here, timeout=10)).status is RunStatus.SUCCEEDED
    assert (await scheduler.wait_for_run(elsewhere, timeout=10)).status is RunStatus.SUCCEEDED
    for run_id, prompt in ((here, "fixed here"), (elsewhere, "fixed elsewhere")):
        assert json.loads(scheduler.get_run(run_id).output or "")["prompt"] == prompt

    first = scheduler.run_task_now("retried")
    await eventually(lambda: scheduler.list_runs("retried", status="failed"))
    scheduler.add_task(retried("fixed before the retry"))
    await eventually(lambda: scheduler.list_runs("retried", status="succeeded"))
    attempts = [(r.attempt, r.status) for r in runs_of(scheduler, "retried")]
    assert attempts == [(1, RunStatus.FAILED), (2, RunStatus.SUCCEEDED)], first


async def test_a_run_failing_during_a_graceful_stop_keeps_its_retries(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler()
    scheduler.start()
    scheduler.add_task(
        TaskDefinition(
            id="report",
            interval_seconds=3600,
            prompt="sleep-fail:0.4",
            max_retries=2,
            retry_delay_seconds=0.1,
        )
    )
    run_id = scheduler.run_task_now("report")
    await eventually(lambda: scheduler.get_run(run_id).status is RunStatus.RUNNING)
    await scheduler.stop(grace_seconds=5)  # the attempt fails inside the grace
    attempts = [(r.attempt, r.status) for r in runs_of(scheduler, "report")]
    assert attempts == [(1, RunStatus.FAILED), (2, RunStatus.QUEUED)]
    again = make_scheduler()  # the next start runs the retries owed
    again.start()
    await eventually(lambda: len(again.list_runs("report", status="failed")) == 3)
    attempts = [(r.attempt, r.status) for r in runs_of(again, "report")]
    assert attempts == [(1, RunStatus.FAILED), (2, RunStatus.FAILED), (3, RunStatus.FAILED)]


async def test_run_history_pages_with_and_without_a_limit(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler()
    scheduler.start()
    scheduler.add_task(TaskDefinition(id="paged", interval_seconds=3600, prompt="hi"))
    made = [scheduler.run_task_now("paged") for _ in range(4)]
    await eventually(lambda: len(scheduler.list_runs("paged", status="succeeded")) == 4)
    newest_first = made[::-1]
    assert [r.id for r in scheduler.list_runs("paged", limit=2, offset=1)] == newest_first[1:3]
    assert [r.id for r in scheduler.list_runs("paged", limit=None, offset=3)] == newest_first[3:]
    assert [r.id for r in await scheduler.alist_runs(limit=None, offset=1)] == newest_first[1:]
    with pytest.raises(ValueError, match="0 or more"):
        scheduler.list_runs(offset=-1)


async def test_a_failed_attempt_is_never_committed_without_its_retry(
    make_scheduler: SchedulerFactory, tmp_path: Path
) -> None:
    """An attempt that fails and the retry it leads to are written in one transaction: a
    flush in between (from another thread, as the run log's own) never leaves a failed
    attempt 1 without its attempt 2, which a crash at that moment would lose for good."""
    scheduler = make_scheduler(retry_delay_seconds=3600)
    scheduler.start()
    scheduler.add_task(
        TaskDefinition(
            id="f",
            interval_seconds=3600,
            prompt="fail-until:1000000",
            max_retries=1,
            overlap="allow",
            max_instances=50,
            metadata={"counter": str(tmp_path / "calls")},
        )
    )
    supervisor = scheduler._supervisor
    assert supervisor is not None
    stop, broken = threading.Event(), []

    def watch() -> None:
        with contextlib.closing(sqlite3.connect(tmp_path / "scheduler.db")) as db:
            while not stop.is_set():
                supervisor.run_log.flush()
                rows = db.execute("SELECT status, attempt FROM scheduler_runs").fetchall()
                failed = sum(1 for status, attempt in rows if (status, attempt) == ("failed", 1))
                retries = sum(1 for _, attempt in rows if attempt == 2)
                if failed > retries:
                    broken.append((failed, retries))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(200):
            scheduler.run_task_now("f")
            await asyncio.sleep(0.002)
        await eventually(
            lambda: len(scheduler.list_runs("f", status="failed", limit=None)) >= 200,
            timeout=60,
            message="200 failed attempts",
        )
    finally:
        stop.set()
        watcher.join()
    assert broken == []


async def test_runs_on_one_thread_take_turns(
    make_scheduler: SchedulerFactory, tmp_path: Path
) -> None:
    """Two tasks on one conversation (``thread_id``), due together: the second starts when
    the first has ended, as the LangGraph server runs a thread's runs (at once, both read
    the same checkpoint and the later write drops the other's reply). Runs on other
    threads still go side by side."""
    log = tmp_path / "calls.log"
    scheduler = make_scheduler(max_concurrent_runs=5)
    scheduler.start()
    for task_id, thread in (("a", "shared"), ("b", "shared"), ("c", None)):
        scheduler.add_task(
            TaskDefinition(
                id=task_id,
                interval_seconds=3600,
                prompt="record-sleep:0.5",
                thread_id=thread,
                metadata={"log": str(log)},
            )
        )
    runs = {task_id: scheduler.run_task_now(task_id) for task_id in ("a", "b", "c")}
    await eventually(
        lambda: all(scheduler.get_run(r).status is RunStatus.SUCCEEDED for r in runs.values()),
        message="the three runs",
    )
    spans: dict[str, list[float]] = {}
    for line in log.read_text().splitlines():
        run_id, _, at = line.split()[:3]
        spans.setdefault(run_id, []).append(float(at))
    (a_start, a_end), (b_start, b_end), (c_start, _) = (spans[runs[t]] for t in ("a", "b", "c"))
    assert a_end <= b_start or b_end <= a_start, "two runs on one thread at once"
    assert c_start < max(a_end, b_end) - 0.2  # another thread's run did not wait
    thread_runs = [scheduler.get_run(runs[t]) for t in ("a", "b")]
    assert {r.thread_id for r in thread_runs} == {"shared"}
