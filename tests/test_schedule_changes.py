"""Changing a task at the edges, on the test clock (real scheduler, real SQLite file, real
graph): applying a tasks file again with a time in a DST fold, enabling again a one-time
task that ran, an edit in the instant of a dispatch, a pause or an edit while occurrences
are due that nobody ran. Each occurrence runs once, or is recorded missed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from scheduler import RunStatus, TaskDefinition
from scheduler.events import RunEvent
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


KOLKATA = "Asia/Kolkata"  # +05:30 all year: the cron's minute 0 is minute 30 in UTC
DUE = "from 2030-01-01T18:00:00+05:30 to 2030-01-01T20:00:00+05:30 were due and had not run"


@pytest.mark.parametrize(
    ("change", "missed", "ran"),
    [
        ("pause", [(3, f"{DUE} when the task was paused")], []),
        ("reschedule", [(3, f"{DUE} when the task was rescheduled")], ["15:45"]),
        ("disable", [(3, f"{DUE} when the task was disabled")], []),
        ("remove", [(3, f"{DUE} when the task was removed")], []),
        # its next run is kept: the catch-up records or runs them, as after any downtime
        ("prompt", [(2, "outside the catch-up window of 3600 s")], ["14:30", "15:30"]),
    ],
    ids=["pause", "reschedule", "disable", "remove", "prompt"],
)
async def test_a_change_records_missed_the_occurrences_due_that_had_not_run(
    change: str, missed: list[tuple[int, str]], ran: list[str], tmp_path: Path
) -> None:
    """12:30, 13:30 and 14:30 UTC fell due while the scheduler was down (14:30 inside the
    catch-up window). Pausing the task, or changing its schedule, moved its next run time
    past them with no trace: they neither ran nor were recorded. Now they are one missed
    record, as the dispatcher writes for occurrences it will not run (times in the task's
    zone), in the change's transaction; even inside the window, since the change says the
    task should not run as it was. Removing the task did the same."""
    edits = {
        "reschedule": {"cron_expression": "15 * * * *"},
        "disable": {"enabled": False},
        "prompt": {"prompt": "y"},
    }
    async with clocked_scheduler(graph=graph, start=START, db_path=tmp_path / "s.db") as (
        scheduler,
        clock,
    ):
        scheduler.add_task(
            TaskDefinition(id="t", cron_expression="0 * * * *", timezone=KOLKATA, prompt="x")
        )
        await scheduler.stop()
        clock.pass_time(hours=3, minutes=10)  # to 15:10 UTC
        if change == "pause":
            scheduler.pause_task("t")
        elif change == "remove":  # its history stays
            scheduler.remove_task("t")
        else:
            scheduler.edit_task("t", lambda t: t.model_copy(update=edits[change]))
        scheduler.start()
        await clock.advance(hours=1)
        runs = scheduler.list_runs("t")[::-1]
    recorded = [r for r in runs if r.status is RunStatus.MISSED]
    assert [(r.occurrences, r.scheduled_for) for r in recorded] == [
        (count, START.replace(minute=30)) for count, _ in missed
    ]
    for record, (_, message) in zip(recorded, missed, strict=True):
        assert message in (record.error_message or ""), record.error_message
    done = [r for r in runs if r.status is not RunStatus.MISSED]
    assert [r.scheduled_for.strftime("%H:%M") for r in done] == ran
    assert all(r.status is RunStatus.SUCCEEDED and r.occurrences == 1 for r in done)


async def test_a_one_time_task_due_keeps_its_time_when_paused_and_is_recorded_when_moved(
    tmp_path: Path,
) -> None:
    """Paused while due, a one-time task keeps its time: resumed, it runs (inside the
    catch-up window), as one whose time passed while it was paused. Moved to another time,
    the one it had is recorded missed and the new one runs."""
    due = START + timedelta(minutes=30)
    async with clocked_scheduler(graph=graph, start=START, db_path=tmp_path / "s.db") as (
        scheduler,
        clock,
    ):
        scheduler.add_tasks(
            [
                TaskDefinition(id="paused", run_at=due, prompt="x"),
                TaskDefinition(id="moved", run_at=due, prompt="x"),
            ]
        )
        await scheduler.stop()
        clock.pass_time(minutes=40)
        scheduler.pause_task("paused")
        later = START + timedelta(hours=1)
        scheduler.edit_task("moved", lambda t: t.model_copy(update={"run_at": later}))
        scheduler.start()
        ended = await clock.advance(minutes=10)  # the paused one waits
        assert [(r.task_id, r.status) for r in ended] == [("moved", RunStatus.MISSED)]
        scheduler.resume_task("paused")
        await clock.advance(minutes=30)
        runs = {(r.task_id, r.scheduled_for, r.status) for r in scheduler.list_runs()}
    assert runs == {
        ("paused", due, RunStatus.SUCCEEDED),
        ("moved", due, RunStatus.MISSED),
        ("moved", later, RunStatus.SUCCEEDED),
    }


async def test_a_pause_while_the_scheduler_had_not_come_to_an_occurrence_tells_listeners() -> None:
    """The missed record of a change is a finished run like the dispatcher's: the run
    events' listeners (and the task's webhook) hear of it."""
    events: list[RunEvent] = []
    async with clocked_scheduler(graph=graph, start=START) as (scheduler, clock):
        scheduler.add_task(TaskDefinition(id="i", interval_seconds=60, prompt="x"))
        [first] = await clock.advance(seconds=60)
        scheduler.subscribe(events.append)
        clock.pass_time(minutes=5)  # a stall: 12:02 .. 12:06 fell due, nothing ran them
        scheduler.pause_task("i")
        assert await clock.advance(minutes=5) == [events[0].run]
    [event] = events
    assert (event.kind, event.run.status, event.run.occurrences) == ("finished", "missed", 5)
    assert event.run.scheduled_for == first.scheduled_for + timedelta(minutes=1)


async def test_removing_a_one_time_task_due_that_had_not_run_records_it_missed() -> None:
    """Its time passed while the scheduler was down: removing it dropped the occurrence
    without a trace (a pause keeps the time instead)."""
    async with clocked_scheduler(graph=graph, start=START) as (scheduler, clock):
        due = START + timedelta(minutes=30)
        scheduler.add_task(TaskDefinition(id="once", run_at=due, prompt="x"))
        await scheduler.stop()
        clock.pass_time(minutes=45)
        scheduler.remove_task("once")
        [record] = scheduler.list_runs("once")
    assert record.status is RunStatus.MISSED and record.scheduled_for == due
    assert "were due and had not run when the task was removed" in (record.error_message or "")


@pytest.mark.parametrize(
    "update",
    [
        {"end_date": datetime(2031, 1, 1, tzinfo=UTC)},
        {"timezone": "America/New_York"},
        {"jitter_seconds": 60.0},
        {"enabled": False},  # then enabled again, as the tasks file does
    ],
    ids=["end_date", "timezone", "jitter", "disabled and enabled"],
)
async def test_an_edit_that_keeps_the_interval_keeps_its_grid(
    update: dict[str, object], tmp_path: Path
) -> None:
    """A daily interval task (no ``start_date``: its grid counts from when it was added),
    next due at 12:00 tomorrow. An edit of its end, its zone or its jitter moves none of
    its times, but the grid was counted again from the edit: the next run went to 08:00
    the day after, 20 hours late, and the run of 12:00 was lost without a trace."""
    async with clocked_scheduler(graph=graph, start=START, db_path=tmp_path / "s.db") as (
        scheduler,
        clock,
    ):
        scheduler.add_task(TaskDefinition(id="daily", schedule="every day", prompt="x"))
        await clock.advance(hours=20)  # 08:00 the next day
        scheduler.edit_task("daily", lambda t: t.model_copy(update=update))
        if update.get("enabled") is False:
            scheduler.edit_task("daily", lambda t: t.model_copy(update={"enabled": True}))
        runs = await clock.advance(hours=5)
    [run] = runs
    due = START + timedelta(days=1)
    assert run.status is RunStatus.SUCCEEDED
    assert due <= run.scheduled_for <= due + timedelta(seconds=60)


@pytest.mark.parametrize(
    ("schedule", "update", "problem"),
    [
        ({"interval_seconds": 60}, {"interval_seconds": 0}, "interval_seconds"),
        ({"interval_seconds": 60}, {"jitter_seconds": 120.0}, "jitter_seconds 120 must be less"),
        ({"run_at": START + timedelta(hours=1)}, {"start_date": START}, "start_date applies to"),
        ({"cron_expression": "0 * * * *"}, {"interval_seconds": 60}, "interval_seconds does not"),
        ({"cron_expression": "0 * * * *"}, {"prompt": " "}, "prompt is empty"),
    ],
)
async def test_an_edit_is_validated_as_a_new_definition_is(
    schedule: dict[str, object], update: dict[str, object], problem: str, tmp_path: Path
) -> None:
    """``edit_task(id, lambda t: t.model_copy(update=...))``, the usual edit: pydantic's
    ``model_copy`` validates nothing, and the edited definition was written as it was. A
    row its own load refuses (an interval of 0, a ``start_date`` on a one-time task) was
    listed in state ``error`` and never fired again; a jitter of two intervals was taken.
    Now the edit raises as the model would, and the task is left as it was."""
    async with clocked_scheduler(graph=graph, start=START, db_path=tmp_path / "s.db") as (
        scheduler,
        clock,
    ):
        scheduler.add_task(TaskDefinition(id="t", prompt="x", **schedule))
        with pytest.raises(ValidationError, match=problem):
            scheduler.edit_task("t", lambda t: t.model_copy(update=update))
        assert scheduler.get_task("t").state == "active"
        runs = await clock.advance(hours=1)
    assert runs and all(run.status is RunStatus.SUCCEEDED for run in runs)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("interval_seconds", 0, "interval_seconds\n .* got 0"),
        ("cron_expression", "0 9 * * *", "cron_expression does not apply to task_type 'interval'"),
        ("timezone", "Mars/Base", "timezone\n .*unknown time zone 'Mars/Base'"),
        ("jitter_seconds", 7200, "jitter_seconds"),
    ],
)
async def test_a_definition_changed_in_place_is_validated_as_it_is_changed(
    field: str, value: object, problem: str, tmp_path: Path
) -> None:
    """A definition read back, changed in place and added again: ``add_task`` wrote an
    interval of 0 or a cron on an interval task as a row that could not be loaded back (the
    working task listed in state ``error``, never to fire again); an unknown zone raised
    ``ZoneInfoNotFoundError``. Now the assignment raises, naming the field, and the task is
    left as it was; a change that fits is added as any."""
    async with clocked_scheduler(graph=graph, start=START, db_path=tmp_path / "s.db") as (
        scheduler,
        clock,
    ):
        scheduler.add_task(TaskDefinition(id="t", prompt="x", interval_seconds=3600))
        definition = scheduler.get_task("t").definition
        assert definition is not None
        with pytest.raises(ValidationError, match=problem):
            setattr(definition, field, value)
        scheduler.add_task(definition)
        definition.prompt = "y"
        scheduler.add_task(definition)
        assert scheduler.get_task("t").state == "active"
        runs = await clock.advance(hours=1)
    assert [run.status for run in runs] == [RunStatus.SUCCEEDED]


@pytest.mark.parametrize(
    ("made", "field", "value", "problem"),
    [
        ({"input": {"x": 1}}, "input", None, "a prompt is required"),
        ({"prompt": "p"}, "task_type", "cron", "interval_seconds"),
        ({"prompt": "p"}, "task_type", "one_time", "interval_seconds"),
    ],
    ids=["input taken from an input-only task", "cron type", "one-time type"],
)
async def test_a_change_in_place_that_another_field_refuses_is_refused_at_the_add(
    made: dict[str, object], field: str, value: object, problem: str, tmp_path: Path
) -> None:
    """An assignment validates the field set, not what another field asks of it: the task
    was written as a row that could not be loaded back (``input`` taken from a task with no
    prompt), or ``add_task`` failed with a bare ``AssertionError`` (a type with no schedule
    of its kind). A definition changed in place is validated whole when it is added or
    checked, and nothing is written."""
    async with clocked_scheduler(graph=graph, start=START, db_path=tmp_path / "s.db") as (
        scheduler,
        _,
    ):
        definition = TaskDefinition(id="t", interval_seconds=3600, **made)  # type: ignore[arg-type]
        scheduler.add_task(definition)
        setattr(definition, field, value)
        for write in (scheduler.check_task, scheduler.add_task):
            with pytest.raises(ValidationError, match=problem):
                write(definition)
        assert scheduler.get_task("t").state == "active"


@pytest.mark.parametrize(
    "change",
    [{"timezone": "Europe/Paris"}, {"enabled": False}],
    ids=["zone edited", "disabled and enabled again"],
)
async def test_a_one_time_task_that_ran_runs_no_more_once_its_record_is_pruned(
    change: dict[str, object],
) -> None:
    """That a one-time task's occurrence has run is known from its run record alone: the
    history prune deleted it, then an edit (or enabling it again) found the occurrence not
    run, and ran it a second time inside its window (outside it: recorded it missed). The
    prune keeps that one record (the newest scheduled one of a task with no next run)."""
    async with clocked_scheduler(graph=graph, start=START, history_max_age_days=1) as (
        scheduler,
        clock,
    ):
        window = 5 * 86400
        scheduler.add_task(
            TaskDefinition(
                id="once", run_at=START + timedelta(hours=1), prompt="p",
                misfire_grace_seconds=window,
            )
        )  # fmt: skip
        scheduler.add_task(TaskDefinition(id="daily", schedule="every day", prompt="p"))
        [ran] = await clock.advance(hours=2)
        assert ran.status is RunStatus.SUCCEEDED
        await clock.advance(days=2)
        assert scheduler.prune_history() >= 1  # (daily's first, at least)
        scheduler.edit_task("once", lambda t: t.model_copy(update=change))
        if change.get("enabled") is False:
            scheduler.edit_task("once", lambda t: t.model_copy(update={"enabled": True}))
        assert [r.task_id for r in await clock.advance(minutes=1)] == []
        assert [r.id for r in scheduler.list_runs("once")] == [ran.id]
        assert scheduler.get_task("once").next_run is None


async def test_a_one_time_task_paused_after_it_fired_skips_its_run_not_started(
    tmp_path: Path,
) -> None:
    """A one-time task fired at its time, and its run queued (``overlap: queue``, behind a
    run of it asked for by hand that waits for an answer): pausing it did nothing, since a
    one-time task with no next run counted as completed, and the run started when the one
    before it ended. Now it is recorded ``skipped`` (``Paused``), as a recurring task's run
    is; resuming does not run that occurrence again (it has its record), the task is
    completed, as a recurring task resumed goes on from its next occurrence."""
    due = START + timedelta(minutes=30)
    log = {"log": str(tmp_path / "calls.log")}
    async with clocked_scheduler(graph=graph, start=START, db_path=tmp_path / "s.db") as (
        scheduler,
        clock,
    ):
        scheduler.add_task(
            TaskDefinition(
                id="once", run_at=due, prompt="ask-record-sleep:0", overlap="queue", metadata=log
            )
        )
        asking = scheduler.run_task_now("once")
        await clock.advance(seconds=1)
        assert scheduler.get_run(asking).status is RunStatus.WAITING
        await clock.advance(minutes=30)
        [queued] = [r for r in scheduler.list_runs("once") if r.id != asking]
        assert (queued.status, queued.scheduled_for) == (RunStatus.QUEUED, due)
        paused = scheduler.pause_task("once")
        assert (paused.state, paused.paused, paused.next_run) == ("paused", True, None)
        scheduler.resume_run(asking, "yes")
        await clock.advance(seconds=1)
        skipped = scheduler.get_run(queued.id)
        resumed = scheduler.resume_task("once")
        assert await clock.advance(hours=1) == []
        runs = {r.id: r.status for r in scheduler.list_runs("once")}
    assert (skipped.status, skipped.error_type, skipped.started_at) == (
        RunStatus.SKIPPED,
        "Paused",
        None,
    )
    assert runs == {asking: RunStatus.SUCCEEDED, queued.id: RunStatus.SKIPPED}
    assert (resumed.state, resumed.paused, resumed.next_run) == ("completed", False, None)


@pytest.mark.parametrize(
    ("update", "problem"),
    [
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"start_date": START}, "start_date applies to"),
        ({"prompt": " "}, "prompt is empty"),
        ({"max_retries": -1}, "max_retries"),
        ({"bogus": 1}, "bogus"),
    ],
)
async def test_add_task_of_a_model_copy_checks_the_update(
    update: dict[str, object], problem: str, tmp_path: Path
) -> None:
    """``add_task(task.model_copy(update=...))``: pydantic's ``model_copy`` validates
    nothing, and ``add_task`` does not validate a definition again, so the copy was written
    as it was (an interval of 0: a row its own load refuses, listed ``error``, never to
    fire). Now the copy is validated as a new definition is; a valid one is added as any."""
    once = TaskDefinition(id="t", run_at=START + timedelta(hours=1), prompt="x")
    every = TaskDefinition(id="t", interval_seconds=60, prompt="x")
    base = once if "start_date" in update else every
    async with clocked_scheduler(graph=graph, start=START, db_path=tmp_path / "s.db") as (
        scheduler,
        clock,
    ):
        with pytest.raises(ValidationError, match=problem):
            scheduler.add_task(base.model_copy(update=update))
        assert scheduler.list_tasks() == []
        copied = every.model_copy(update={"id": "copy", "prompt": "y", "interval_seconds": 120})
        assert (copied.name, every.name) == ("t", "t")  # (the copy keeps what it was given)
        scheduler.add_task(copied)
        runs = await clock.advance(minutes=5)
    assert [(r.task_id, r.status) for r in runs] == [("copy", RunStatus.SUCCEEDED)] * 2
