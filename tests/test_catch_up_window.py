"""A catch-up window of 0 s: every occurrence due while the scheduler runs is run, on the
real clock as on the test clock (a pass a few ms after the fire time is not downtime);
after downtime, every one is recorded missed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from scheduler import RunStatus, TaskDefinition
from scheduler.testing import clocked_scheduler
from tests import prompt_graphs
from tests.conftest import SchedulerFactory


async def test_a_zero_window_runs_every_occurrence_while_running(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler()
    scheduler.add_task(  # (overlap allow: a run slowed by a loaded machine skips nothing)
        TaskDefinition(
            id="t",
            interval_seconds=0.3,
            prompt="p",
            misfire_grace_seconds=0,
            overlap="allow",
            max_instances=10,
        )
    )
    scheduler.start()
    await asyncio.sleep(2)
    await scheduler.stop()
    statuses = [r.status for r in scheduler.list_runs("t", limit=None)]
    assert len(statuses) >= 4 and set(statuses) == {RunStatus.SUCCEEDED}, statuses


async def test_a_zero_window_records_what_fell_due_while_down_missed(tmp_path: Path) -> None:
    async with clocked_scheduler(graph=prompt_graphs.graph, db_path=tmp_path / "s.db") as (
        scheduler,
        clock,
    ):
        scheduler.add_task(
            TaskDefinition(id="t", interval_seconds=10, prompt="p", misfire_grace_seconds=0)
        )
        on_time = await clock.advance(seconds=30)
        await scheduler.stop()
        clock.pass_time(seconds=35)
        scheduler.start()
        after = await clock.advance(seconds=0)
    assert [r.status for r in on_time] == [RunStatus.SUCCEEDED] * 3
    assert [(r.status, r.occurrences) for r in after] == [(RunStatus.MISSED, 3)]
