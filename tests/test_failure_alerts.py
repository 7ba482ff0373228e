"""``on_failure_callback`` for runs that fail for good without a runner to see it end: a run
cut off by a crash (recorded ``interrupted`` at the next start, no retry left), and a
failed attempt whose retry was ``missed`` during downtime. The callback is how a team hears
that a task failed; a crash must not silence it. Real processes (kill -9), a real SQLite
file, a real graph."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from scheduler import RunStatus, TaskDefinition
from scheduler.testing import clocked_scheduler
from tests import callbacks, prompt_graphs
from tests.conftest import SchedulerFactory, eventually
from tests.test_reliability import Child, child

pytestmark = pytest.mark.slow


async def test_a_run_cut_off_by_a_crash_calls_the_failure_callback_at_the_next_start(
    make_scheduler: SchedulerFactory, tmp_path: Path
) -> None:
    db, log = tmp_path / "scheduler.db", tmp_path / "calls.log"
    task = {
        "id": "dies",
        "interval_seconds": 0.2,
        "prompt": "record",
        "metadata": {"log": str(log)},
        "on_failure_callback": "tests.callbacks:on_failure",
    }
    child(db, "add", json.dumps([task]))
    process = Child(db, env={"TEST_KILL_AFTER_RECORD": "1"})
    assert process.process.wait(timeout=60) == -signal.SIGKILL, process._finish()
    process._finish()
    [(cut_off, _)] = [line.split() for line in log.read_text().splitlines()]
    callbacks.failures.clear()
    scheduler = make_scheduler()
    scheduler.start()
    await eventually(lambda: callbacks.failures)
    scheduler.pause_task("dies")
    [(task_id, run)] = [(t, r) for t, r in callbacks.failures if r.id == cut_off]
    assert task_id == "dies"
    assert run.status is RunStatus.INTERRUPTED and run.error_type == "Interrupted"
    assert scheduler.get_run(cut_off).status is RunStatus.INTERRUPTED
    assert [r.id for _, r in callbacks.failures] == [cut_off]  # once, and only for it


async def test_a_crash_with_a_retry_left_calls_no_failure_callback(
    make_scheduler: SchedulerFactory, tmp_path: Path
) -> None:
    db, log = tmp_path / "scheduler.db", tmp_path / "calls.log"
    task = {
        "id": "retried",
        "interval_seconds": 0.2,
        "prompt": "record",
        "metadata": {"log": str(log)},
        "max_retries": 1,
        "retry_delay_seconds": 0.1,
        "on_failure_callback": "tests.callbacks:on_failure",
    }
    child(db, "add", json.dumps([task]))
    process = Child(db, env={"TEST_KILL_AFTER_RECORD": "1"})
    assert process.process.wait(timeout=60) == -signal.SIGKILL, process._finish()
    process._finish()
    callbacks.failures.clear()
    scheduler = make_scheduler()
    scheduler.start()
    retried = lambda: [r for r in scheduler.list_runs("retried") if r.attempt == 2]  # noqa: E731
    [retry] = await eventually(retried)
    await eventually(lambda: scheduler.get_run(retry.id).status is RunStatus.SUCCEEDED)
    scheduler.pause_task("retried")
    assert callbacks.failures == []  # the retry ran: the task did not fail


async def test_a_retry_missed_during_downtime_calls_the_failure_callback(tmp_path: Path) -> None:
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
        await clock.advance(seconds=5)
        [retry, failed] = scheduler.list_runs("up")
        assert (retry.status, failed.status) == (RunStatus.QUEUED, RunStatus.FAILED)
    assert callbacks.failures == []  # a retry was due: not yet a failure
    later = "2030-01-01T03:00:00Z"  # past the retry's catch-up window of 3,600 s
    async with clocked_scheduler(graph=prompt_graphs.graph, db_path=db, start=later) as (
        scheduler,
        clock,
    ):
        await clock.advance(seconds=5)
        assert scheduler.get_run(retry.id).status is RunStatus.MISSED
        await eventually(lambda: callbacks.failures)
    [(task_id, run)] = callbacks.failures
    assert (task_id, run.id, run.status) == ("up", failed.id, RunStatus.FAILED)
    assert run.error_message == "failing on command"
