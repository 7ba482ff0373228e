"""Changing a task at the edges, on the test clock (real scheduler, real SQLite file, real
graph): applying a tasks file again with a time in a DST fold, enabling again a one-time
task that ran, an edit in the instant of a dispatch. Each occurrence runs once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from scheduler import RunStatus, TaskDefinition
from scheduler.tasksfile import apply_tasks_file
from scheduler.testing import clocked_scheduler
from tests.prompt_graphs import graph

NEW_YORK = ZoneInfo("America/New_York")
START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


async def test_a_tasks_file_applied_again_with_a_time_in_a_fold_changes_nothing(
    tmp_path: Path,
) -> None:
    """01:30 on the night New York falls back happens twice. A time of that hour read
    again from the file (a ``ZoneInfo``) was never ``==`` to the stored one (PEP 495): the
    task counted as changed at every start, and its one occurrence ran again."""
    path = tmp_path / "tasks.yaml"
    path.write_text(
        "- id: once\n  run_at: '2026-11-01 01:30'\n  timezone: America/New_York\n  prompt: x\n"
        "- id: hourly\n  cron_expression: '0 * * * *'\n  timezone: America/New_York\n"
        "  end_date: '2026-11-01 01:30'\n  prompt: x\n"
    )
    start = datetime(2026, 11, 1, 0, 50, tzinfo=NEW_YORK)
    async with clocked_scheduler(graph=graph, start=start, db_path=tmp_path / "s.db") as (
        scheduler,
        clock,
    ):
        apply_tasks_file(scheduler, path)
        ran = await clock.advance(minutes=50)  # 01:00 (hourly) and 01:30 (once), EDT
        assert sorted(r.task_id for r in ran) == ["hourly", "once"]
        await scheduler.stop(grace_seconds=0)
        clock.pass_time(minutes=5)
        scheduler.start()
        report = apply_tasks_file(scheduler, path)  # what main.py does at every start
        assert sorted(report.unchanged) == ["hourly", "once"], report.summary()
        assert await clock.advance(hours=3) == []


async def test_a_one_time_task_that_ran_does_not_run_again_when_enabled_or_edited() -> None:
    async with clocked_scheduler(graph=graph, start=START) as (scheduler, clock):
        scheduler.add_task(TaskDefinition(id="o", run_at=START + timedelta(minutes=5), prompt="x"))
        assert [r.status for r in await clock.advance(minutes=10)] == [RunStatus.SUCCEEDED]
        scheduler.edit_task("o", lambda t: t.model_copy(update={"enabled": False}))
        scheduler.resume_task("o")
        scheduler.edit_task("o", lambda t: t.model_copy(update={"timezone": "Europe/Paris"}))
        scheduler.edit_task("o", lambda t: t.model_copy(update={"prompt": "y"}))
        assert await clock.advance(minutes=30) == []
        assert len(scheduler.list_runs("o")) == 1
        # a new time is a new occurrence
        later = START + timedelta(minutes=50)
        scheduler.edit_task("o", lambda t: t.model_copy(update={"run_at": later}))
        assert [r.task_id for r in await clock.advance(minutes=20)] == ["o"]


async def test_an_edit_in_the_instant_of_a_dispatch_is_taken() -> None:
    """On a test clock a dispatch and an edit can share one instant, so one ``updated_at``:
    the dispatcher kept the definition it had cached by that time alone, and the next runs
    ran the old prompt."""
    async with clocked_scheduler(graph=graph, start=START) as (scheduler, clock):
        scheduler.add_task(
            TaskDefinition(id="i", interval_seconds=60, start_date=START, prompt="before")
        )
        [first] = await clock.advance(seconds=0)
        scheduler.edit_task("i", lambda t: t.model_copy(update={"prompt": "after"}))
        [second] = await clock.advance(seconds=60)
        assert "before" in (first.output or "") and "after" in (second.output or ""), (
            first.output,
            second.output,
        )
