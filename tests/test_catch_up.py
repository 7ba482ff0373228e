"""Catching up after downtime, on the test clock (real scheduler, real SQLite file, real
graph calls; the downtime passes in no time): occurrences inside the catch-up window run
once, coalesced; older ones are one ``missed`` record; the schedule goes on from its grid;
retries wait their backoff. These replace tests that slept through real downtime."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scheduler import RunStatus, TaskDefinition
from scheduler.testing import clocked_scheduler
from tests import callbacks, prompt_graphs

START = "2030-01-01T00:00:00Z"


async def test_catch_up_inside_and_outside_the_window(tmp_path: Path) -> None:
    async with clocked_scheduler(
        graph=prompt_graphs.graph, start=START, db_path=tmp_path / "scheduler.db"
    ) as (scheduler, clock):
        scheduler.add_task(
            TaskDefinition(id="tick", interval_seconds=10, prompt="p", misfire_grace_seconds=25)
        )
        before = await clock.advance(seconds=30)  # 00:10, 00:20, 00:30
        await scheduler.stop()
        clock.pass_time(seconds=60)  # down: 00:40 .. 01:30 fall due
        scheduler.start()
        after = await clock.advance(seconds=20)  # the catch-up, then 01:40, 01:50
    assert [(r.status, r.occurrences) for r in before] == [(RunStatus.SUCCEEDED, 1)] * 3
    [missed, caught_up, *on_time] = after
    assert (missed.status, missed.occurrences) == (RunStatus.MISSED, 3)  # 00:40 .. 01:00
    assert missed.scheduled_for.strftime("%M:%S") == "00:40"
    assert "outside the catch-up window of 25 s" in (missed.error_message or "")
    assert (caught_up.status, caught_up.occurrences) == (RunStatus.SUCCEEDED, 3)  # 01:10 .. 01:30
    assert caught_up.scheduled_for.strftime("%M:%S") == "01:30"
    assert [r.scheduled_for.strftime("%M:%S") for r in on_time] == ["01:40", "01:50"]
    assert all(r.occurrences == 1 and r.started_at == r.scheduled_for for r in on_time)


async def test_an_occurrence_missed_while_down_runs_once_on_restart(tmp_path: Path) -> None:
    async with clocked_scheduler(
        graph=prompt_graphs.graph, start=START, db_path=tmp_path / "scheduler.db"
    ) as (scheduler, clock):
        due = clock.now.replace(minute=5)
        scheduler.add_tasks(
            [
                TaskDefinition(id="once", run_at=due, prompt="catch up"),
                TaskDefinition(id="hourly", interval_seconds=3600, start_date=due, prompt="h"),
                TaskDefinition(id="strict", run_at=due, prompt="p", misfire_grace_seconds=30),
            ]
        )
        await scheduler.stop()
        clock.pass_time(minutes=6)  # everything fell due while down, a minute ago
        scheduler.start()
        runs = {r.task_id: r for r in await clock.advance(seconds=0)}
        for task_id in ("once", "hourly"):
            assert runs[task_id].status is RunStatus.SUCCEEDED
            assert runs[task_id].scheduled_for == due and runs[task_id].occurrences == 1
        assert runs["strict"].status is RunStatus.MISSED
        assert "outside the catch-up window of 30 s" in (runs["strict"].error_message or "")
        assert scheduler.get_task("once").state == "completed"
        hourly = scheduler.get_task("hourly").next_run
        assert hourly is not None and hourly == due.replace(hour=1)


async def test_retries_wait_their_backoff(tmp_path: Path) -> None:
    callbacks.failures.clear()
    async with clocked_scheduler(graph=prompt_graphs.graph, start=START) as (scheduler, clock):
        scheduler.add_task(
            TaskDefinition(
                id="flaky",
                interval_seconds=3600,
                prompt="fail",
                max_retries=3,
                retry_delay_seconds=60,
                on_failure_callback="tests.callbacks:on_failure",
            )
        )
        scheduler.run_task_now("flaky")
        attempts = await clock.advance(minutes=30)
    assert [(r.attempt, r.trigger.value, r.status) for r in attempts] == [
        (1, "manual", RunStatus.FAILED),
        (2, "retry", RunStatus.FAILED),
        (3, "retry", RunStatus.FAILED),
        (4, "retry", RunStatus.FAILED),
    ]
    gaps = [
        (b.started_at - a.finished_at).total_seconds()  # type: ignore[operator]
        for a, b in itertools.pairwise(attempts)
    ]
    for gap, base in zip(gaps, (60, 120, 240), strict=True):
        assert base <= gap <= base * 1.25  # retry_delay * 2**(n-1) plus 0-25 % jitter
    [(task_id, final)] = callbacks.failures
    assert (task_id, final.attempt) == ("flaky", 4)


async def test_a_one_time_task_at_the_first_instant_of_1970_is_recorded_missed(
    tmp_path: Path,
) -> None:
    """1970-01-01T00:00:00Z is a time a task may name; stored, it is next run time 0, which
    the dispatcher read as "none" (``or now``): the task ran now, for now, instead of being
    recorded missed (as its warning said it would be, and as one a second later is)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    async with clocked_scheduler(
        graph=prompt_graphs.graph, start=START, db_path=tmp_path / "scheduler.db"
    ) as (scheduler, clock):
        scheduler.add_task(TaskDefinition(id="once", run_at=epoch, prompt="p"))
        [run] = await clock.advance(seconds=1)
    assert (run.status, run.scheduled_for, run.occurrences) == (RunStatus.MISSED, epoch, 1)


@pytest.mark.parametrize(
    "schedule",
    [
        {"cron_expression": "0 * * * *"},
        # counted arithmetically: both times were said in UTC
        {"interval_seconds": 3600, "start_date": datetime(2030, 1, 1, 0, 30, tzinfo=UTC)},
    ],
    ids=["cron", "interval"],
)
async def test_a_missed_records_times_are_said_in_the_tasks_zone(
    schedule: dict[str, Any], tmp_path: Path
) -> None:
    async with clocked_scheduler(
        graph=prompt_graphs.graph, start=START, db_path=tmp_path / "scheduler.db"
    ) as (scheduler, clock):
        scheduler.add_task(
            TaskDefinition(
                id="hourly",
                timezone="Asia/Kolkata",  # +05:30 all year
                prompt="p",
                misfire_grace_seconds=60,
                **schedule,
            )
        )
        await clock.advance(minutes=31)  # 00:30 UTC is 06:00 in Kolkata: one run
        await scheduler.stop()
        clock.pass_time(hours=4)
        scheduler.start()
        [missed, *_] = await clock.advance(seconds=1)
    assert (missed.status, missed.occurrences) == (RunStatus.MISSED, 3)  # 10:00 is caught up
    message = missed.error_message or ""
    assert "from 2030-01-01T07:00:00+05:30 to 2030-01-01T09:00:00+05:30" in message, message


async def test_a_long_downtime_of_a_frequent_task_still_runs_the_window_once(
    tmp_path: Path,
) -> None:
    """70 days down with a task due every minute: the occurrences are walked from the
    oldest, at most 100,000 of them. The walk stopped among the missed ones (100,000 of
    them, 69 days), so the 60 of the last hour, inside the catch-up window, never ran and
    were recorded nowhere; they now make their one coalesced run."""
    async with clocked_scheduler(
        graph=prompt_graphs.graph, start=START, db_path=tmp_path / "scheduler.db"
    ) as (scheduler, clock):
        scheduler.add_task(TaskDefinition(id="minutely", cron_expression="* * * * *", prompt="p"))
        await scheduler.stop()
        clock.pass_time(days=70, seconds=30)
        scheduler.start()
        missed, caught_up = await clock.advance(seconds=0)
    assert missed.status is RunStatus.MISSED
    assert (missed.error_message or "").startswith("100000 or more occurrence(s) from ")
    assert (caught_up.status, caught_up.occurrences) == (RunStatus.SUCCEEDED, 60)
    assert caught_up.scheduled_for == datetime(2030, 3, 12, 0, 0, tzinfo=UTC)
