"""``on_failure_callback`` for runs that fail for good without a runner to see it end: a run
cut off by a crash (recorded ``interrupted`` at the next start, no retry left), and a
failed attempt whose retry was ``missed`` during downtime. The callback is how a team hears
that a task failed; a crash must not silence it. Real processes (kill -9), a real SQLite
file, a real graph. (The missed retry: test_workflows, with what runs after the task.)"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from scheduler import RunStatus
from tests import callbacks
from tests.conftest import SchedulerFactory, eventually
from tests.test_reliability import Child, child

pytestmark = pytest.mark.slow


def _killed_in_a_run(tmp_path: Path, task_id: str, **fields: object) -> str:
    """Add a task that fires every 0.2 s, and run a scheduler process that dies (kill -9)
    in its first run; that run's id (the process ran its "record" node)."""
    db, log = tmp_path / "scheduler.db", tmp_path / "calls.log"
    task = {
        "id": task_id,
        "interval_seconds": 0.2,
        "prompt": "record",
        "metadata": {"log": str(log)},
        "on_failure_callback": "tests.callbacks:on_failure",
        **fields,
    }
    child(db, "add", json.dumps([task]))
    process = Child(db, env={"TEST_KILL_AFTER_RECORD": "1"})
    assert process.process.wait(timeout=60) == -signal.SIGKILL, process._finish()
    process._finish()
    [(run_id, _)] = [line.split() for line in log.read_text().splitlines()]
    return run_id


async def test_a_run_cut_off_by_a_crash_calls_the_failure_callback_at_the_next_start(
    make_scheduler: SchedulerFactory, tmp_path: Path
) -> None:
    cut_off = _killed_in_a_run(tmp_path, "dies")
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
    _killed_in_a_run(tmp_path, "retried", max_retries=1, retry_delay_seconds=0.1)
    callbacks.failures.clear()
    scheduler = make_scheduler()
    scheduler.start()
    retried = lambda: [r for r in scheduler.list_runs("retried") if r.attempt == 2]  # noqa: E731
    [retry] = await eventually(retried)
    await eventually(lambda: scheduler.get_run(retry.id).status is RunStatus.SUCCEEDED)
    scheduler.pause_task("retried")
    assert callbacks.failures == []  # the retry ran: the task did not fail
