"""Time zones at the edges, on the test clock (real scheduler, real SQLite file, real
graph): wall times read during the second pass of a fall-back hour, bounds given as the two
passes of one wall time. Each occurrence runs once, at its own instant."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from scheduler import ScheduleError, TaskDefinition
from scheduler.exceptions import TasksFileError
from scheduler.tasksfile import apply_tasks_file
from scheduler.testing import clocked_scheduler
from tests.prompt_graphs import graph

NEW_YORK = ZoneInfo("America/New_York")
# 01:40 on the second pass of New York's fall-back hour (EST, 06:40 UTC): 01:50 on the
# first pass (EDT, 05:50 UTC) was 50 minutes ago
SECOND_PASS = datetime(2026, 11, 1, 1, 40, fold=1, tzinfo=NEW_YORK)


@pytest.mark.parametrize("schedule", ["today at 01:50", "at 2026-11-01 01:50"])
async def test_a_time_of_the_repeated_hour_already_past_on_its_first_pass_is_refused(
    schedule: str, tmp_path: Path
) -> None:
    """A repeated wall time means its first pass (the README); said during the second pass,
    after a later wall time, that instant has passed. It was compared as a wall time with
    "now" in the same zone (PEP 495 ignores fold there), taken for a future time, and the
    task ran at once, for a scheduled time 50 minutes before it was added."""
    async with clocked_scheduler(graph=graph, start=SECOND_PASS, db_path=tmp_path / "s.db") as (
        scheduler,
        clock,
    ):
        with pytest.raises(ValidationError, match="is not after now"):
            scheduler.add_task(
                TaskDefinition(
                    id="late", schedule=schedule, timezone="America/New_York", prompt="x"
                )
            )
        assert await clock.advance(hours=1) == []


async def test_bounds_given_as_the_two_passes_of_a_repeated_hour_compare_as_instants(
    tmp_path: Path,
) -> None:
    """``start_date`` 01:45 on the first pass (EDT) and ``end_date`` 01:30 on the second
    (EST) span 45 minutes of real time; the end was compared as a wall time and refused as
    before the start. The other way round (an end 15 wall minutes after the start, but an
    hour and 45 minutes before it) was accepted, a task that could never fire."""
    first_pass = datetime(2026, 11, 1, 1, 45)
    second_pass = datetime(2026, 11, 1, 1, 30, fold=1)
    with pytest.raises(ValidationError, match="is before start_date"):
        TaskDefinition(
            id="never",
            cron_expression="*/15 * * * *",
            timezone="America/New_York",
            start_date=second_pass,
            end_date=first_pass,
            prompt="x",
        )
    start = datetime(2026, 11, 1, 0, 0, tzinfo=NEW_YORK)
    async with clocked_scheduler(graph=graph, start=start, db_path=tmp_path / "s.db") as (
        scheduler,
        clock,
    ):
        scheduler.add_task(
            TaskDefinition(
                id="fold",
                cron_expression="*/15 * * * *",
                timezone="America/New_York",
                start_date=first_pass,
                end_date=second_pass,
                prompt="x",
            )
        )
        runs = await clock.advance(hours=4)
    assert [run.scheduled_for.astimezone(NEW_YORK).strftime("%H:%M %z") for run in runs] == [
        "01:45 -0400",
        "01:00 -0500",
        "01:15 -0500",
        "01:30 -0500",
    ]


@pytest.mark.parametrize(
    ("zone", "schedule", "expected"),
    [
        # 08:00 in Los Angeles is 15:00 UTC, five hours ahead: it was read in UTC and
        # refused as past
        ("America/Los_Angeles", "at 2026-06-01 08:00", "2026-06-01T15:00:00+00:00"),
        # an offset is kept: it was dropped and the wall time read in the scheduler's zone
        ("Asia/Tokyo", "2026-06-01T14:00:00+01:00", "2026-06-01T13:00:00+00:00"),
        ("Asia/Tokyo", "on 2026-06-01 at 13:00Z", "2026-06-01T13:00:00+00:00"),
    ],
)
async def test_a_date_and_time_without_a_zone_is_read_in_the_zone_the_task_gets(
    zone: str, schedule: str, expected: str
) -> None:
    """A ``TaskDefinition`` made in Python without ``timezone`` gets the scheduler's zone
    at ``add_task``: a date and time without an offset is a wall time there, one with an
    offset is that instant (the README)."""
    start = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    async with clocked_scheduler(graph=graph, start=start, timezone=zone) as (scheduler, clock):
        scheduler.add_task(TaskDefinition(id="once", schedule=schedule, prompt="x"))
        [run] = await clock.advance(days=1)
    assert run.scheduled_for.isoformat() == expected


@pytest.mark.parametrize(
    ("zone", "schedule", "start", "problem"),
    [
        # 18:30 in Tokyo was 30 minutes ago (09:30 UTC): it ran at once
        ("Asia/Tokyo", "at 2026-06-01 18:30", "2026-06-01T10:00:00Z", "is not after now"),
        # 02:30 does not exist in New York that night: it ran at 03:30
        ("America/New_York", "at 2026-03-08 02:30", "2026-03-07T10:00:00Z", "DST gap"),
    ],
)
async def test_a_date_and_time_without_a_zone_past_or_skipped_there_is_refused(
    zone: str, schedule: str, start: str, problem: str
) -> None:
    async with clocked_scheduler(graph=graph, start=start, timezone=zone) as (scheduler, clock):
        task = TaskDefinition(id="once", schedule=schedule, prompt="x")
        with pytest.raises(ScheduleError, match=problem):
            scheduler.add_task(task)
        assert scheduler.list_tasks() == []
        assert await clock.advance(days=2) == []


async def test_a_naive_run_at_in_the_dst_gap_is_refused_as_its_schedule_text_is(
    tmp_path: Path,
) -> None:
    """02:30 does not exist in New York on 2026-03-08. Given as ``run_at`` without an offset
    (a Python datetime, a tasks file's value) it was moved to 03:30 and ran there, while
    ``at 2026-03-08 02:30`` was refused: now both are refused, naming ``run_at``, in the
    zone the task has, is read in (the tasks file) or gets (``add_task``), and nothing is
    written."""
    gap = datetime(2026, 3, 8, 2, 30)
    path = tmp_path / "tasks.yaml"
    path.write_text("- id: filed\n  prompt: x\n  run_at: '2026-03-08 02:30'\n")
    start = "2026-03-07T10:00:00Z"
    async with clocked_scheduler(
        graph=graph, start=start, timezone="America/New_York", db_path=tmp_path / "s.db"
    ) as (scheduler, clock):
        message = re.escape("run_at 2026-03-08 02:30 does not exist in America/New_York (DST gap)")
        with pytest.raises(ValidationError, match=message):
            scheduler.add_task(TaskDefinition(id="once", run_at=gap, prompt="x"))
        with pytest.raises(TasksFileError, match=rf"tasks.yaml:3: .*: run_at: {message}"):
            apply_tasks_file(scheduler, path)
        later = datetime(2026, 3, 8, 4, 30)
        scheduler.add_task(TaskDefinition(id="edited", run_at=later, prompt="x"))
        with pytest.raises(ValidationError, match=message):  # an edit copies, not validates
            scheduler.edit_task("edited", lambda t: t.model_copy(update={"run_at": gap}))
        assert [task.id for task in scheduler.list_tasks()] == ["edited"]
        runs = await clock.advance(days=2)
    assert [run.scheduled_for.astimezone(NEW_YORK).strftime("%H:%M") for run in runs] == ["04:30"]


@pytest.mark.parametrize(
    ("zone", "end", "runs"),
    [
        # 09:00 in Tokyo is 00:00 UTC: the 30-minute task fires from then until 05:00
        # UTC; the naive start was read in UTC (09:00) and the task refused
        ("Asia/Tokyo", datetime(2030, 1, 2, 5, 0, tzinfo=UTC), 11),
        # 09:00 in New York is 14:00 UTC, after the end: refused now; it was accepted and
        # written, and its row could not be loaded back (state "error", never firing)
        ("America/New_York", datetime(2030, 1, 2, 10, 0, tzinfo=UTC), None),
    ],
)
async def test_bounds_one_without_an_offset_compare_in_the_zone_the_task_gets(
    zone: str, end: datetime, runs: int | None, tmp_path: Path
) -> None:
    """``start_date`` 09:00 without an offset and ``end_date`` with one, on a task made
    without ``timezone``: the start is a wall time in the zone ``add_task`` gives it, and
    the order of the two is checked there (and in an edit, which was not checked: its row
    could not be loaded back either)."""
    start = datetime(2030, 1, 2, 9, 0)
    async with clocked_scheduler(
        graph=graph, start="2030-01-01T00:00:00Z", timezone=zone, db_path=tmp_path / "s.db"
    ) as (scheduler, clock):
        task = TaskDefinition(
            id="bounded", cron_expression="*/30 * * * *", start_date=start, end_date=end, prompt="x"
        )
        if runs is None:
            with pytest.raises(ValidationError, match=r"end_date .* is before start_date"):
                scheduler.add_task(task)
            assert scheduler.list_tasks() == []
            return
        scheduler.add_task(task)
        early = datetime(2029, 12, 31, tzinfo=UTC)  # an edit copies, not validates
        with pytest.raises(ValidationError, match=r"end_date .* is before start_date"):
            scheduler.edit_task("bounded", lambda t: t.model_copy(update={"end_date": early}))
        assert scheduler.get_task("bounded").state == "active"
        assert len(await clock.advance(days=2)) == runs
