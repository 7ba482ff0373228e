"""For the people who build on it: an async twin of every management method (same
arguments, results and errors, the database off the event loop), waiting for the outcome
after retries, run events, the test clock, JSON from every CLI command, JSON log lines."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import json
import logging
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.types import interrupt

from scheduler import RunRecord, RunStatus, TaskDefinition, TaskNotFoundError, TaskScheduler
from scheduler.events import RunEvent
from scheduler.preview import preview
from scheduler.testing import TestClock, clocked_scheduler
from tests import callbacks, prompt_graphs, server_graphs
from tests.conftest import PYTHON, ROOT, SchedulerFactory, eventually, make_settings
from tests.test_cli import Cli

SYNC_METHODS = [
    "add_task",
    "add_tasks",
    "edit_task",
    "sync_tasks",
    "check_task",
    "remove_task",
    "remove_tasks",
    "pause_task",
    "resume_task",
    "run_task_now",
    "resume_run",
    "get_task",
    "list_tasks",
    "next_run_times",
    "dependencies",
    "list_runs",
    "get_run",
    "count_tasks",
    "count_runs",
    "notices",
    "note_problem",
    "prune_history",
    "cancel_run",
]


def twin(name: str) -> str:
    return "async_tasks" if name == "sync_tasks" else f"a{name}"


@pytest.mark.parametrize("name", SYNC_METHODS)
def test_every_management_method_has_an_async_twin_with_the_same_parameters(name: str) -> None:
    sync, asynchronous = getattr(TaskScheduler, name), getattr(TaskScheduler, twin(name))
    assert inspect.iscoroutinefunction(asynchronous), twin(name)
    assert list(inspect.signature(asynchronous).parameters) == list(
        inspect.signature(sync).parameters
    )


async def test_the_async_twins_return_what_the_sync_methods_return(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler(graph=server_graphs.asker)
    scheduler.start()
    task = TaskDefinition(id="a", interval_seconds=3600, prompt="x")
    info = await scheduler.aadd_task(task)
    assert info.id == "a" and info == scheduler.get_task("a")
    await scheduler.aadd_tasks([TaskDefinition(id="b", interval_seconds=60, prompt="y")])
    report = await scheduler.async_tasks(
        [TaskDefinition(id="f", interval_seconds=60, prompt="z")], source="file:t.yaml"
    )
    assert report.added == ["f"]
    await scheduler.acheck_task(task)
    assert [t.id for t in await scheduler.alist_tasks()] == ["a", "b", "f"]
    assert (await scheduler.aget_task("b")).definition is not None
    edited = await scheduler.aedit_task("b", lambda t: t.model_copy(update={"prompt": "y2"}))
    assert edited.definition is not None and edited.definition.prompt == "y2"
    assert edited == scheduler.get_task("b")
    with pytest.raises(ValueError, match="id: a task's id cannot change"):
        await scheduler.aedit_task("b", lambda t: t.model_copy(update={"id": "c"}))
    assert [t.id for t in scheduler.list_tasks()] == ["a", "b", "f"]  # nothing written
    assert len(await scheduler.anext_run_times("b", 3)) == 3
    assert (await scheduler.apause_task("b")).paused
    assert not (await scheduler.aresume_task("b")).paused
    run_id = await scheduler.arun_task_now("a")
    waiting = await scheduler.wait_for_run(run_id, timeout=10)
    assert waiting.status is RunStatus.WAITING
    await scheduler.aresume_run(run_id, "ok")
    done = await scheduler.wait_for_outcome(run_id, timeout=10)
    assert (done.status, done.output) == (RunStatus.SUCCEEDED, "the answer was ok")
    assert (await scheduler.aget_run(run_id)).status is RunStatus.SUCCEEDED
    assert [r.id for r in await scheduler.alist_runs("a")] == [run_id]
    assert await scheduler.acount_tasks() == 3
    assert await scheduler.acount_runs() == {RunStatus.SUCCEEDED: 1}
    await scheduler.anote_problem("file:t.yaml", "broken")
    assert [n.message for n in await scheduler.anotices()] == ["broken"]
    assert await scheduler.aprune_history() == 0
    await scheduler.aremove_task("f")
    with pytest.raises(TaskNotFoundError, match="no task with id 'f'"):
        await scheduler.aget_task("f")  # the same errors


@pytest.mark.slow
async def test_an_aadd_task_loop_does_not_delay_a_10_ms_interval_task(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler(gc_freeze=False)
    scheduler.add_task(TaskDefinition(id="tick", interval_seconds=0.01, prompt="p"))
    scheduler.start()
    await eventually(lambda: scheduler.list_runs("tick"), message="the first tick")
    began = time.time()
    added = 0
    while added < 1000 or time.time() - began < 1.0:  # (a fast machine adds 1,000 in 0.2 s)
        await scheduler.aadd_task(
            TaskDefinition(id=f"bulk-{added}", interval_seconds=3600, prompt="p")
        )
        added += 1
    ended = time.time()
    await scheduler.stop()
    runs = [
        r
        for r in scheduler.list_runs("tick", limit=None)
        if r.started_at is not None and began <= r.started_at.timestamp() <= ended
    ]
    assert len(runs) > 20, "the tick did not fire while tasks were added"
    # A late run stands for the occurrences it coalesced: its delay counts from the first.
    delays = sorted(
        r.started_at.timestamp() - r.scheduled_for.timestamp() + (r.occurrences - 1) * 0.01
        for r in runs
        if r.started_at is not None
    )
    p99 = delays[int(len(delays) * 0.99) - 1]
    # adds that held the loop would starve the tick for the whole second of adds; a quiet
    # machine sees a few ms, a loaded one (CI beside other work) up to 0.15 s
    assert p99 <= 0.3, f"p99 delay {p99 * 1000:.1f} ms over {len(delays)} runs"


async def test_wait_for_outcome_follows_the_retries(make_scheduler: SchedulerFactory) -> None:
    scheduler = make_scheduler()
    scheduler.add_task(
        TaskDefinition(
            id="flaky",
            interval_seconds=3600,
            prompt="fail",
            max_retries=2,
            retry_delay_seconds=0.01,
        )
    )
    scheduler.start()
    run_id = scheduler.run_task_now("flaky")
    first = await scheduler.wait_for_run(run_id, timeout=10)
    last = await scheduler.wait_for_outcome(run_id, timeout=10)
    assert (first.attempt, last.attempt) == (1, 3)
    assert last.status is RunStatus.FAILED and last.id != run_id


async def test_a_run_requested_while_the_poll_picks_it_up_runs_once(
    make_scheduler: SchedulerFactory, tmp_path: Path
) -> None:
    """``arun_task_now`` commits the run, and its hand-over to the runner comes after the
    call returns; the poll that runs meanwhile picks the queued run up from the database
    and runs it. The hand-over that came after it ran the graph a second time."""
    log = tmp_path / "calls.log"
    scheduler = make_scheduler(poll_interval_seconds=0.1)
    scheduler.add_task(
        TaskDefinition(id="t", interval_seconds=3600, prompt="record", metadata={"log": str(log)})
    )

    class Slow(logging.Handler):  # a slow log sink: the call returns 0.5 s after its commit
        def handle(self, record: logging.LogRecord) -> bool:  # (no lock: the loop logs on)
            if "requested" in record.getMessage():
                time.sleep(0.5)
            return True

    handler, logs = Slow(logging.INFO), logging.getLogger("scheduler")
    level = logs.level
    logs.addHandler(handler)
    logs.setLevel(logging.INFO)
    try:
        async with scheduler:
            await asyncio.sleep(0.3)  # (its first polls)
            run_id = await scheduler.arun_task_now("t")
            await scheduler.wait_for_run(run_id, timeout=10)
            await asyncio.sleep(0.5)  # (a second start would have come by now)
    finally:
        logs.removeHandler(handler)
        logs.setLevel(level)
    calls = [line.split()[0] for line in log.read_text().splitlines()]
    assert calls == [run_id], calls


async def test_run_events_reach_listeners_and_iterators(make_scheduler: SchedulerFactory) -> None:
    scheduler = make_scheduler(graph=server_graphs.asker)
    seen: list[tuple[str, str]] = []
    received: list[RunEvent] = []

    async def async_listener(event: RunEvent) -> None:
        received.append(event)

    unsubscribe = scheduler.subscribe(lambda e: seen.append((e.kind, e.run.status)))
    scheduler.subscribe(async_listener)
    scheduler.start()
    stream = scheduler.events()
    scheduler.add_task(TaskDefinition(id="ask", interval_seconds=3600, prompt="x"))
    run_id = scheduler.run_task_now("ask")
    first = await asyncio.wait_for(anext(stream), 10)
    assert (first.kind, first.run.id, first.task.id) == ("started", run_id, "ask")
    waiting = await asyncio.wait_for(anext(stream), 10)
    assert waiting.kind == "waiting" and waiting.run.interrupts
    scheduler.resume_run(run_id, "go")
    kinds = [(await asyncio.wait_for(anext(stream), 10)).kind for _ in range(2)]
    assert kinds == ["started", "finished"]
    await eventually(lambda: len(received) == 4)
    assert seen == [
        ("started", "running"),
        ("waiting", "waiting"),
        ("started", "running"),
        ("finished", "succeeded"),
    ]
    assert received[-1].run.output == "the answer was go"
    done = scheduler.get_run(run_id)  # it asks nothing any more ("while waiting")
    assert (done.status, done.interrupts) == (RunStatus.SUCCEEDED, None)
    assert json.loads(json.dumps(received[-1].to_dict()))["run"]["status"] == "succeeded"
    unsubscribe()
    await stream.aclose()


async def test_runs_cancelled_by_removing_their_task_are_told_as_finished(
    make_scheduler: SchedulerFactory,
) -> None:
    """A waiting run and a retry waiting for its delay are recorded ``cancelled`` when their
    task is removed; listeners (and webhooks, which listen) never heard of it."""
    scheduler = make_scheduler(graph=server_graphs.asker)
    finished: list[RunEvent] = []
    scheduler.subscribe(lambda e: finished.append(e) if e.kind == "finished" else None)
    scheduler.add_task(TaskDefinition(id="ask", interval_seconds=3600, prompt="x"))
    scheduler.start()
    asked = scheduler.run_task_now("ask")
    await eventually(lambda: scheduler.get_run(asked).status is RunStatus.WAITING)
    await scheduler.aremove_task("ask")
    await eventually(lambda: finished)
    [event] = finished
    assert (event.run.id, event.run.status, event.run.error_type) == (
        asked, RunStatus.CANCELLED, "TaskRemoved",
    )  # fmt: skip
    assert scheduler.get_run(asked).status is RunStatus.CANCELLED


async def test_an_async_listener_that_hangs_does_not_hold_up_stop(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler()
    hung = asyncio.Event()

    async def hangs(_: RunEvent) -> None:
        hung.set()
        await asyncio.sleep(3600)  # a notification call without a timeout of its own

    scheduler.subscribe(hangs)
    scheduler.add_task(TaskDefinition(id="t", interval_seconds=3600, prompt="hi"))
    scheduler.start()
    await scheduler.wait_for_run(scheduler.run_task_now("t"), timeout=10)
    await asyncio.wait_for(hung.wait(), 10)
    began = time.monotonic()
    await asyncio.wait_for(scheduler.stop(grace_seconds=0.5), 30)  # (it waited for ever)
    assert time.monotonic() - began < 10


async def test_events_are_kept_from_the_call_and_a_timed_out_read_ends_nothing(
    make_scheduler: SchedulerFactory,
) -> None:
    """``events()`` subscribed at the first ``anext`` (the events before were lost), and an
    ``anext`` cut short by a timeout closed the iterator."""
    scheduler = make_scheduler()
    scheduler.add_task(TaskDefinition(id="t", interval_seconds=3600, prompt="hi"))
    scheduler.start()
    stream = scheduler.events()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(stream), 0.2)
    first = scheduler.run_task_now("t")
    await scheduler.wait_for_run(first, timeout=10)
    kinds = [(e.kind, e.run.id) for e in [await asyncio.wait_for(anext(stream), 5) for _ in "ab"]]
    assert kinds == [("started", first), ("finished", first)]
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    scheduler.events()  # dropped without aclose(): collected and unsubscribed
    gc.collect()
    assert not scheduler._events, "a dropped stream is still subscribed"


def test_events_reach_a_consumer_on_another_event_loop(tmp_path: Path) -> None:
    """With the scheduler on a background loop (start_in_background), a consumer's loop was
    not woken: it saw the events only when something else woke it."""
    from scheduler.service import start_in_background

    settings = make_settings(graph="tests.prompt_graphs:graph", db_path=tmp_path / "s.db")
    service = start_in_background(settings)
    scheduler = service.scheduler
    try:
        scheduler.add_task(TaskDefinition(id="t", interval_seconds=3600, prompt="hi"))

        async def consume() -> float:
            stream = scheduler.events()
            began = time.monotonic()
            scheduler.run_task_now("t")
            try:
                async for event in stream:
                    if event.kind == "finished":
                        return time.monotonic() - began
            finally:
                await stream.aclose()
            raise AssertionError("the stream ended")

        took = asyncio.run(asyncio.wait_for(consume(), 30))
    finally:
        service.stop()
    assert took < 2.5, f"the consumer heard of the run's end after {took:.1f} s"


# -- the test clock ------------------------------------------------------------------------------


async def test_the_test_clock_fires_a_week_of_weekdays_across_a_dst_change_at_once() -> None:
    began = time.monotonic()
    paris = ZoneInfo("Europe/Paris")
    async with clocked_scheduler(
        graph=prompt_graphs.graph, start=datetime(2026, 3, 25, 0, 0, tzinfo=paris)
    ) as (scheduler, clock):
        scheduler.add_task(
            TaskDefinition(
                id="standup", cron_expression="0 9 * * 1-5", timezone="Europe/Paris", prompt="go"
            )
        )
        runs = await clock.advance(days=7)
        # seven days of elapsed time end at 01:00 on the wall clock: the night lost an hour
        assert clock.now == datetime(2026, 4, 1, 1, 0, tzinfo=paris)
    assert [r.scheduled_for.astimezone(paris).isoformat() for r in runs] == [
        "2026-03-25T09:00:00+01:00",
        "2026-03-26T09:00:00+01:00",
        "2026-03-27T09:00:00+01:00",
        "2026-03-30T09:00:00+02:00",  # summer time since Sunday 29 March
        "2026-03-31T09:00:00+02:00",
    ]
    assert [r.scheduled_for.astimezone(UTC).hour for r in runs] == [8, 8, 8, 7, 7]
    assert all(r.status is RunStatus.SUCCEEDED and r.started_at == r.scheduled_for for r in runs)
    assert time.monotonic() - began < 5  # a week in (well) under a second of work


async def test_the_test_clock_runs_retries_and_waiting_timeouts_in_order() -> None:
    async with clocked_scheduler(graph=server_graphs.asker, start="2030-01-01T00:00:00Z") as (
        scheduler,
        clock,
    ):
        scheduler.add_task(
            TaskDefinition(id="ask", interval_seconds=600, prompt="x", waiting_timeout_seconds=900)
        )
        runs = await clock.advance(hours=1)
    # 00:10 waits, 00:20 .. 00:30 skipped while it waits, 00:25 it times out; then 00:30 waits
    statuses = [(r.scheduled_for.strftime("%H:%M"), r.status.value) for r in runs]
    assert statuses[:3] == [("00:10", "timed_out"), ("00:20", "skipped"), ("00:30", "timed_out")]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris"])
async def test_a_cron_set_on_its_own_minute_first_fires_when_its_preview_says(zone: str) -> None:
    # set at 09:00:00 sharp (in the zone): "0 9 * * *" is next due tomorrow, as every
    # preview shows, and nothing runs before the clock moves; one with start_date = now
    # starts at that moment
    start = datetime(2030, 1, 7, 9, 0, tzinfo=ZoneInfo(zone))
    async with clocked_scheduler(graph=prompt_graphs.graph, start=start) as (scheduler, clock):
        daily = TaskDefinition(id="daily", cron_expression="0 9 * * *", timezone=zone, prompt="go")
        info = scheduler.add_task(daily)
        [shown] = preview("0 9 * * *", timezone=zone, now=clock.now, count=1).times
        assert info.next_run == shown == start + timedelta(days=1)
        await asyncio.sleep(0.05)
        assert scheduler.list_runs() == []
        since = daily.model_copy(update={"id": "since", "start_date": start})
        assert scheduler.add_task(since).next_run == start
        runs = await clock.advance(days=1)
    assert [(r.task_id, r.scheduled_for) for r in runs] == [
        ("since", start),
        ("daily", start + timedelta(days=1)),
        ("since", start + timedelta(days=1)),
    ]


async def test_the_test_clock_returns_the_same_runs_however_fast_the_machine_is() -> None:
    # history is pruned only when asked: 600 runs stay though the limit is 100 (in the
    # background it ran on wall-clock polls during the advance), and are readable after
    # the block (an in-memory database outlives close())
    async with clocked_scheduler(graph=prompt_graphs.graph, history_max_runs=100) as (
        scheduler,
        clock,
    ):
        scheduler.add_task(TaskDefinition(id="tick", interval_seconds=1, prompt="go"))
        runs = await clock.advance(minutes=10)
        assert len(runs) == 600
        # a run made between two advances, finished before the second: returned by it
        run_id = await scheduler.arun_task_now("tick")
        assert (await scheduler.wait_for_run(run_id, timeout=30)).status is RunStatus.SUCCEEDED
        assert [r.id for r in await clock.advance(seconds=0.5)] == [run_id]
        assert await clock.advance(seconds=0.1) == []
        assert scheduler.prune_history() > 0  # when the test asks
    assert len(scheduler.list_runs(limit=None)) == 100


async def test_the_test_clock_waits_for_async_listeners_and_failure_callbacks() -> None:
    """An async listener that answers a waiting run (``await aresume_run``) and the failure
    callback of a waiting timeout ran while the advance moved on: the answered run resumed
    at a later stop (the occurrence due meanwhile skipped as overlapping it), the alert
    came after the advance had returned."""
    callbacks.failures.clear()
    start = datetime(2030, 1, 1, tzinfo=UTC)
    async with clocked_scheduler(graph=server_graphs.asker, start=start) as (scheduler, clock):

        async def answer(event: RunEvent) -> None:
            if event.kind == "waiting" and event.task.id == "ask":
                await asyncio.sleep(0.1)  # (deciding takes a moment: a model's call)
                await scheduler.aresume_run(event.run.id, "yes")

        scheduler.subscribe(answer)
        scheduler.add_tasks(
            [
                TaskDefinition(id="ask", interval_seconds=600, prompt="x"),
                TaskDefinition(
                    id="unanswered", run_at=start + timedelta(minutes=5), prompt="x",
                    waiting_timeout_seconds=60,
                    on_failure_callback="tests.callbacks:on_failure_after_a_moment",
                ),
            ]
        )  # fmt: skip
        runs = await clock.advance(minutes=35)
        assert [task_id for task_id, _ in callbacks.failures] == ["unanswered"]
    assert [
        (r.task_id, r.scheduled_for.strftime("%H:%M"), f"{r.finished_at:%H:%M}", r.status.value)
        for r in runs
    ] == [
        ("unanswered", "00:05", "00:06", "timed_out"),
        ("ask", "00:10", "00:10", "succeeded"),
        ("ask", "00:20", "00:20", "succeeded"),
        ("ask", "00:30", "00:30", "succeeded"),
    ]


async def test_a_listener_that_waits_for_the_clock_holds_an_advance_only_so_long(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener that waits for a retry (which comes only when the clock moves) is let
    go of after ``LISTENER_WAIT`` seconds of real time, with a warning."""
    monkeypatch.setattr("scheduler.testing.LISTENER_WAIT", 0.2)
    outcomes: list[RunRecord] = []
    async with clocked_scheduler(graph=prompt_graphs.graph, start="2030-01-01T00:00:00Z") as (
        scheduler,
        clock,
    ):

        async def follow(event: RunEvent) -> None:
            if event.kind == "started" and event.run.attempt == 1:
                outcomes.append(await scheduler.wait_for_outcome(event.run.id))

        scheduler.subscribe(follow)
        scheduler.add_task(
            TaskDefinition(id="f", interval_seconds=3600, prompt="fail", max_retries=1)
        )
        with caplog.at_level(logging.WARNING, logger="scheduler.testing"):
            runs = await clock.advance(hours=1, minutes=1)
        assert [(r.attempt, r.status) for r in runs] == [
            (1, RunStatus.FAILED),
            (2, RunStatus.FAILED),
        ]
        assert "still going after 0.2 s of real time" in caplog.text
        await eventually(lambda: outcomes)
        assert outcomes[0].id == runs[1].id


async def test_a_clocked_scheduler_that_stands_by_fires_nothing(tmp_path: Path) -> None:
    """Two clocked schedulers on one ``db_path``: the second stands by (the first holds
    the database's lock), yet its clock's advance dispatched and ran the first's tasks."""
    db = tmp_path / "scheduler.db"
    async with (
        clocked_scheduler(graph=prompt_graphs.graph, db_path=db) as (active, clock),
        clocked_scheduler(graph=prompt_graphs.graph, db_path=db) as (standby, other),
    ):
        assert active.active and not standby.active
        active.add_task(TaskDefinition(id="t", interval_seconds=60, prompt="go"))
        assert await other.advance(minutes=3) == []
        assert standby.list_runs() == []
        runs = await clock.advance(minutes=3)
        assert [r.scheduled_for.strftime("%H:%M") for r in runs] == ["00:01", "00:02", "00:03"]
        await active.stop()  # the standby takes over (at its next poll, on the wall clock)
        await eventually(lambda: standby.active, message="the standby taking over")
        runs = await other.advance(minutes=2)  # (with those the first one ran since)
        assert [r.scheduled_for.strftime("%H:%M") for r in runs][-3:] == [
            "00:03",
            "00:04",
            "00:05",
        ]
        assert len(active.list_runs(limit=None)) == 5  # each once


async def test_an_advance_that_takes_long_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An agent whose every run asks for another at once keeps the clock at that instant
    for ever: the advance hung without a word (as a year of a minutely task held it for
    half an hour). It says where it is after ``SLOW_ADVANCE`` seconds of real time."""
    monkeypatch.setattr("scheduler.testing.SLOW_ADVANCE", 0.3)
    schedulers: list[TaskScheduler] = []

    async def again(state: MessagesState) -> dict[str, Any]:
        await schedulers[0].arun_task_now("loop")
        return {"messages": [AIMessage("again")]}

    builder = StateGraph(MessagesState)
    builder.add_node("again", again)
    builder.add_edge(START, "again")
    start = "2030-01-01T00:00:00Z"
    async with clocked_scheduler(graph=builder.compile(), start=start) as (scheduler, clock):
        schedulers.append(scheduler)
        scheduler.add_task(TaskDefinition(id="loop", interval_seconds=60, prompt="go"))
        with caplog.at_level(logging.WARNING, logger="scheduler.testing"):
            moving = asyncio.ensure_future(clock.advance(hours=1))
            await eventually(lambda: "clock.advance has taken" in caplog.text, timeout=10)
            moving.cancel()
            await asyncio.gather(moving, return_exceptions=True)
    assert (
        "the clock shows 2030-01-01T00:01:00+00:00, on its way to 2030-01-01T01:00:00+00:00"
        in caplog.text
    )


def test_a_test_clock_cannot_go_backwards() -> None:
    clock = TestClock("2030-01-01T00:00:00+00:00")
    assert clock() == datetime(2030, 1, 1, tzinfo=UTC).timestamp()
    with pytest.raises(ValueError, match="timezone-aware"):
        TestClock("2030-01-01T00:00:00")


async def test_a_test_clock_stays_within_the_times_the_scheduler_stores() -> None:
    """A clock moved past the year 3000 (``advance(days=400_000)``) wrote run records
    nobody could read back (listed with a ``problem``, as of 1970); one moved past 9999
    raised out of every later call. A naive ``advance_to`` moment was read in the
    machine's zone, and one in the past was ignored."""
    with pytest.raises(ValueError, match="1970 to 3000"):
        TestClock("1969-12-31T23:00:00Z")
    start = datetime(2999, 12, 31, 23, 0, tzinfo=UTC)
    async with clocked_scheduler(graph=prompt_graphs.graph, start=start) as (scheduler, clock):
        scheduler.add_task(TaskDefinition(id="t", interval_seconds=1800, prompt="go"))
        for move in (clock.advance(days=400_000), clock.advance(days=3_000_000)):
            with pytest.raises(ValueError, match="1970 to 3000"):
                await move
        with pytest.raises(ValueError, match="1970 to 3000"):
            clock.pass_time(hours=2)
        with pytest.raises(ValueError, match="timezone-aware"):
            await clock.advance_to(datetime(3000, 1, 1))
        assert clock.now == start  # nothing moved
        runs = await clock.advance_to(datetime(3000, 1, 1, tzinfo=UTC))
        assert [(r.scheduled_for, r.problem) for r in runs] == [
            (start + timedelta(minutes=30), None),
            (start + timedelta(hours=1), None),
        ]
        with pytest.raises(ValueError, match="only moves forward"):
            await clock.advance_to(start)
        at = clock.now
        with pytest.raises(TypeError, match="not both"):  # the keywords were dropped
            await clock.advance(timedelta(hours=1), minutes=5)
        with pytest.raises(TypeError, match="not both"):  # the zero span was not given
            clock.pass_time(timedelta(0), hours=1)
        assert clock.now == at
        run_id = await scheduler.arun_task_now("t")
        [run] = await clock.advance()
        assert (run.id, run.status, run.problem) == (run_id, RunStatus.SUCCEEDED, None)


@pytest.mark.slow
def test_the_readme_pytest_example_passes(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Testing your scheduled agent") :]
    example = section[section.index("```python") + len("```python") : section.index("```\n", 40)]
    (tmp_path / "test_example.py").write_text(example)
    done = subprocess.run(
        [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_example.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


# -- JSON everywhere -------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_cli_command_prints_json(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli.env["SCHEDULER_GRAPH"] = "tests.server_graphs:asker"
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text("- id: from-file\n  schedule: every 5 minutes\n  prompt: p\n")
    outputs: dict[str, Any] = {}
    for command in (
        ("add", "--id", "t", "--schedule", "every 5 minutes", "--prompt", "x"),
        ("edit", "t", "--prompt", "y"),
        ("pause", "t"),
        ("resume", "t"),
        ("list",),
        ("show", "t"),
        ("run", "t"),
        ("runs",),
        ("validate", str(tasks)),
        ("apply", str(tasks)),
        ("next", "every 2h"),
    ):
        outputs[command[0]] = cli.json(*command)
    [added] = outputs["add"]
    assert (added["id"], added["state"]) == ("t", "active")
    assert outputs["edit"]["definition"]["prompt"] == "y"
    assert outputs["pause"]["paused"] is True and outputs["resume"]["paused"] is False
    assert outputs["run"]["status"] == "queued" and outputs["run"]["task_id"] == "t"
    assert outputs["apply"]["added"] == ["from-file"]
    waited = cli.json("run", "t", "--wait")
    assert waited["status"] == "waiting"
    answered = cli.json("answer", waited["id"], '"yes"', "--wait")
    assert (answered["status"], answered["output"]) == ("succeeded", "the answer was yes")
    removed = cli.json("remove", "t", "--yes")
    assert removed == {"id": "t", "removed": True}


@pytest.mark.slow
def test_json_log_lines_parse_and_carry_the_ids(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli("add", "--id", "tick", "--schedule", "every 1 second", "--prompt", "fail")
    env = {**cli.env, "SCHEDULER_LOG_FORMAT": "json", "SCHEDULER_TASKS_FILE": "none"}
    process = subprocess.Popen(
        [PYTHON, str(ROOT / "main.py")],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines: list[dict[str, Any]] = []
    deadline = time.monotonic() + 60
    assert process.stderr is not None
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(json.loads(line))  # every line is one JSON object
        if lines[-1].get("status") == "failed":
            break
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=60)
    lines.extend(json.loads(line) for line in (rest or "").splitlines() if line.strip())
    failed = [line for line in lines if line.get("status") == "failed"]
    assert failed, lines
    assert failed[0]["task_id"] == "tick" and failed[0]["run_id"]
    assert failed[0]["error_type"] == "CommandError" and failed[0]["level"] == "WARNING"
    assert "duration" in failed[0] and failed[0]["attempt"] == 1
    started = [line for line in lines if line.get("status") == "running"]
    assert started and started[0]["run_id"] == failed[0]["run_id"]


async def test_wait_for_outcome_follows_each_runs_own_retry() -> None:
    """Two runs of a ``mode: any`` downstream whose upstreams end together share their
    scheduled time; each one's outcome is its own retry's."""
    async with clocked_scheduler(
        graph=prompt_graphs.graph, start="2030-01-01T00:00:00Z", max_retries=1,
        retry_delay_seconds=5,
    ) as (scheduler, clock):  # fmt: skip
        scheduler.add_tasks(
            [
                TaskDefinition(id="a", schedule="every day at 09:00", prompt="a"),
                TaskDefinition(id="b", schedule="every day at 09:00", prompt="b"),
                TaskDefinition(
                    id="d",
                    after={"tasks": ["a", "b"], "mode": "any"},
                    prompt="fail",
                    overlap="allow",
                ),
            ]
        )
        await clock.advance(days=1)
        firsts = [r for r in scheduler.list_runs("d", limit=None) if r.attempt == 1]
        assert len(firsts) == 2 and firsts[0].scheduled_for == firsts[1].scheduled_for
        for first in firsts:
            outcome = await scheduler.wait_for_outcome(first.id, timeout=5)
            assert (outcome.status, outcome.attempt) == (RunStatus.FAILED, 2)
            assert outcome.upstream == first.upstream
            assert outcome.queued_at == first.finished_at


@pytest.mark.parametrize("how", ["paused", "withdrawn", "missed"])
async def test_wait_for_outcome_of_a_retry_that_never_ran_is_the_attempt_it_retried(
    how: str, tmp_path: Path
) -> None:
    """It returned the retry's ``skipped`` or ``missed`` record: an application that alerts
    on ``failed`` missed the failure its ``on_failure_callback`` was told of."""
    async with clocked_scheduler(
        graph=prompt_graphs.graph, start="2030-01-01T00:00:00Z", db_path=tmp_path / "s.db"
    ) as (scheduler, clock):
        scheduler.add_task(
            TaskDefinition(
                id="f", interval_seconds=86400, prompt="fail", max_retries=3,
                retry_delay_seconds=600, misfire_grace_seconds=60,
            )
        )  # fmt: skip
        first = scheduler.run_task_now("f")
        await clock.advance(seconds=1)
        if how == "paused":
            scheduler.pause_task("f")
        elif how == "withdrawn":
            scheduler.edit_task("f", lambda task: task.model_copy(update={"max_retries": 0}))
        else:  # down past the retry's time and its catch-up window
            await scheduler.stop()
            clock.pass_time(hours=2)
            scheduler.start()
        await clock.advance(seconds=700)
        outcome = await scheduler.wait_for_outcome(first, timeout=5)
        assert (outcome.id, outcome.status, outcome.attempt) == (first, RunStatus.FAILED, 1)
        [retry] = [r for r in scheduler.list_runs("f", limit=None) if r.attempt == 2]
        assert retry.status in (RunStatus.SKIPPED, RunStatus.MISSED)


@pytest.mark.parametrize(
    "fields",
    [
        {"interval_seconds": 600},
        {"cron_expression": "*/10 * * * *", "start_date": "2030-01-01T00:00:00Z"},
        {"cron_expression": "*/10 * * * *"},
    ],
    ids=["interval", "cron-with-start", "cron"],
)
async def test_pausing_and_resuming_at_a_fire_time_does_not_repeat_it(
    fields: dict[str, Any],
) -> None:
    """The test clock stops on fire times: paused and resumed at 00:10:00 sharp, after the
    00:10 occurrence ran, an interval task (or a cron task with a start date) counted that
    instant as its next run and ran it again. So did an edit or enabling it again."""
    start = datetime(2030, 1, 1, tzinfo=UTC)
    async with clocked_scheduler(graph=prompt_graphs.graph, start=start) as (scheduler, clock):
        scheduler.add_task(TaskDefinition(id="t", prompt="go", **fields))
        await clock.advance(minutes=10)
        scheduler.pause_task("t")
        resumed = scheduler.resume_task("t")
        assert resumed.next_run == start + timedelta(minutes=20)
        for enabled in (False, True):
            scheduler.edit_task(
                "t", lambda task, on=enabled: task.model_copy(update={"enabled": on})
            )
        await clock.advance(minutes=15)
        times = sorted(r.scheduled_for - start for r in scheduler.list_runs("t", limit=None))
        assert times[-2:] == [timedelta(minutes=10), timedelta(minutes=20)], times
        assert len(set(times)) == len(times), f"an occurrence ran twice: {times}"


async def test_the_test_clock_prunes_history_only_when_asked_after_a_restart_too() -> None:
    async with clocked_scheduler(
        graph=prompt_graphs.graph, start="2030-01-01T00:00:00Z", history_max_runs=10
    ) as (scheduler, clock):
        scheduler.add_task(TaskDefinition(id="tick", interval_seconds=60, prompt="go"))
        await clock.advance(hours=1)
        await scheduler.stop()  # the README's downtime recipe
        clock.pass_time(minutes=5)
        scheduler.start()
        await asyncio.sleep(1.5)  # (the new scheduler's polls, on the wall clock)
        kept = len(scheduler.list_runs(limit=None))  # (with the catch-up run of the gap)
        assert kept > 60, "pruned in the background"
        assert scheduler.prune_history() == kept - 10


async def test_wait_for_outcome_tells_apart_two_runs_that_fail_at_one_instant() -> None:
    """On a test clock two runs asked for at once share every time: their retries were
    matched by times, and both runs got the first retry as their outcome."""
    async with clocked_scheduler(graph=prompt_graphs.graph, start="2030-01-01T00:00:00Z") as (
        scheduler,
        clock,
    ):
        scheduler.add_task(
            TaskDefinition(id="f", interval_seconds=86400, prompt="fail", max_retries=1,
                           retry_delay_seconds=60, overlap="allow")
        )  # fmt: skip
        firsts = [await scheduler.arun_task_now("f") for _ in range(2)]
        await clock.advance(minutes=5)
        outcomes = [await scheduler.wait_for_outcome(run_id, timeout=5) for run_id in firsts]
        assert [o.attempt for o in outcomes] == [2, 2]
        assert [o.retry_of for o in outcomes] == firsts
        assert outcomes[0].id != outcomes[1].id


async def test_a_relative_schedule_counts_from_the_test_clock() -> None:
    """``in 30 minutes`` in a definition made inside ``clocked_scheduler`` is 30 minutes of
    the test clock, not of the wall clock (the definition is made before the scheduler
    sees it)."""
    async with clocked_scheduler(graph=prompt_graphs.graph, start="2030-01-01T00:00:00Z") as (
        scheduler,
        clock,
    ):
        scheduler.add_task(TaskDefinition(id="soon", schedule="in 30 minutes", prompt="p"))
        assert scheduler.get_task("soon").next_run == datetime(2030, 1, 1, 0, 30, tzinfo=UTC)
        runs = await clock.advance(minutes=31)
        assert [(r.task_id, r.status) for r in runs] == [("soon", RunStatus.SUCCEEDED)]
    later = TaskDefinition(id="x", schedule="in 30 minutes", prompt="p").run_at
    assert later is not None and later.year < 2030  # outside it, the wall clock again


async def test_runs_see_the_test_clock_however_they_were_started() -> None:
    """A graph (or a listener) that makes ``in 10 minutes`` inside a run: a run started by
    ``arun_task_now`` or resumed by ``aresume_run`` read it on the wall clock (the run was
    started from the async API's thread, outside the test's context), and so did the
    scheduled runs (started by tasks made before the clock was set): a follow-up added there
    fell in 2026, long past on a clock of 2030, and was recorded ``missed``."""
    seen: list[tuple[str, datetime | None]] = []

    async def node(state: MessagesState) -> dict[str, Any]:
        text = str(state["messages"][-1].content)
        if text == "ask":
            interrupt("ok?")
        seen.append((text, TaskDefinition(id="f", schedule="in 10 minutes", prompt="p").run_at))
        return {"messages": [AIMessage("done")]}

    builder = StateGraph(MessagesState)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    graph = builder.compile()
    start = datetime(2030, 1, 1, tzinfo=UTC)
    async with clocked_scheduler(graph=graph, start=start) as (scheduler, clock):
        for text in ("scheduled", "async", "sync", "ask"):
            every = (
                {"interval_seconds": 3600}
                if text == "scheduled"
                else {"run_at": "2031-01-01T00:00:00Z"}
            )
            await scheduler.aadd_task(TaskDefinition(id=text, prompt=text, **every))
        await clock.advance(hours=1)
        await scheduler.arun_task_now("async")
        await clock.advance(minutes=1)
        scheduler.run_task_now("sync")
        await clock.advance(minutes=1)
        asked = await scheduler.arun_task_now("ask")
        await clock.advance(minutes=1)
        await scheduler.aresume_run(asked, "yes")
        await clock.advance(minutes=1)
    assert [(text, at and at - start) for text, at in seen] == [
        ("scheduled", timedelta(hours=1, minutes=10)),
        ("async", timedelta(hours=1, minutes=10)),
        ("sync", timedelta(hours=1, minutes=11)),
        ("ask", timedelta(hours=1, minutes=13)),
    ]


CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="start")


async def test_a_run_sees_the_context_of_the_schedulers_start_not_of_who_made_it_due(
    make_scheduler: SchedulerFactory,
) -> None:
    """A run started from a graph's tool or an HTTP request (``run_task_now``, an add that
    woke the dispatcher) ran in that caller's context: a tool call's LangChain config (its
    callbacks) reached the scheduled run, and every later dispatch of the timer chain ran
    there too."""
    seen: list[str] = []

    async def node(state: MessagesState) -> dict[str, Any]:
        seen.append(CALLER.get())
        return {"messages": [AIMessage("done")]}

    builder = StateGraph(MessagesState)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    scheduler = make_scheduler(graph=builder.compile())
    CALLER.set("main")
    scheduler.start()
    scheduler.add_task(TaskDefinition(id="t", interval_seconds=3600, prompt="p"))

    async def caller(name: str) -> None:
        CALLER.set(name)
        await scheduler.wait_for_run(scheduler.run_task_now("t"), timeout=10)
        await scheduler.wait_for_run(await scheduler.arun_task_now("t"), timeout=10)
        due = TaskDefinition(id=name.replace(" ", "-"), run_at=datetime.now(UTC), prompt="p")
        await scheduler.aadd_task(due)  # due now: it wakes the dispatcher
        await eventually(lambda: len(scheduler.list_runs(due.id)) == 1, message="its run")
        await scheduler.wait_for_run(scheduler.list_runs(due.id)[0].id, timeout=10)

    await asyncio.create_task(caller("a tool call"))
    await asyncio.create_task(caller("a request"))
    assert seen == ["main"] * 6


async def test_a_week_of_a_jittered_interval_task_runs_every_occurrence() -> None:
    """Hourly with up to 15 minutes of jitter, a week on the test clock: 168 runs, each
    within its hour's first 15 minutes (the delays do not add up and push runs out)."""
    start = datetime(2030, 1, 1, tzinfo=UTC)
    async with clocked_scheduler(graph=prompt_graphs.graph, start=start) as (scheduler, clock):
        scheduler.add_task(
            TaskDefinition(id="j", interval_seconds=3600, jitter_seconds=900, prompt="p")
        )
        await clock.advance(days=7, minutes=16)  # the last one may come 15 minutes late
        runs = scheduler.list_runs("j", limit=None)
    assert len(runs) == 168 and {r.status for r in runs} == {RunStatus.SUCCEEDED}
    for run in runs:
        hour = run.scheduled_for.replace(minute=0, second=0, microsecond=0)
        assert timedelta(0) <= run.scheduled_for - hour <= timedelta(minutes=15), run
