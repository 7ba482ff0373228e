"""The dispatcher's claim, one pass at a time on an in-memory store with a controlled clock:
every due occurrence becomes a record in the same transaction that moves the next run time
(queued, coalesced, missed or skipped), and a row that cannot be used is left out without
holding up the others."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from scheduler import TaskDefinition
from scheduler.dispatcher import Dispatcher
from scheduler.rows import task_row_for
from scheduler.runlog import RunLog
from scheduler.runner import Runner
from scheduler.storage import Store
from tests import prompt_graphs
from tests.conftest import make_settings

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


LOGS: dict[int, RunLog] = {}


def make(clock: Clock, **overrides: object) -> tuple[Store, Dispatcher, Runner]:
    settings = make_settings(**overrides)
    store = Store("sqlite://")
    store.setup()
    LOGS[id(store)] = log = RunLog(store)
    runner = Runner(settings=settings, run_log=log, graph=lambda: prompt_graphs.graph, clock=clock)
    return store, Dispatcher(store=store, runner=runner, settings=settings, clock=clock), runner


def add(store: Store, task: TaskDefinition, *, at: float) -> None:
    row = task_row_for(
        task.with_timezone("UTC"), None, now=at, source="api", settings=make_settings()
    )
    with store.transaction() as tx:
        tx.insert_tasks([row])


def runs(store: Store, task_id: str) -> list[tuple[str, int]]:
    LOGS[id(store)].flush()  # what the runner buffered, written
    return [(r.status, r.occurrences) for r in reversed(store.list_runs(task_id=task_id))]


async def test_a_pass_records_every_occurrence_and_moves_the_next_run_times() -> None:
    clock = Clock(T0)
    store, dispatcher, runner = make(clock, misfire_grace_seconds=100)
    add(store, TaskDefinition(id="every-10", interval_seconds=10, prompt="p"), at=T0)
    add(store, TaskDefinition(id="later", interval_seconds=3600, prompt="p"), at=T0)
    once = datetime.fromtimestamp(T0 + 5, UTC)
    add(store, TaskDefinition(id="old-once", run_at=once, prompt="p"), at=T0)
    clock.now = T0 + 35  # every-10 is due at +10, +20, +30
    assert dispatcher._dispatch() is False
    assert runs(store, "every-10") == [("queued", 3)]  # coalesced into one run
    assert runs(store, "old-once") == [("queued", 1)]  # 30 s late: inside the window
    assert runs(store, "later") == []
    row = store.get_task("every-10")
    assert row is not None and row.next_run_time == T0 + 40
    await runner.wait_idle()  # the first run ends (else the next one is skipped: overlap)
    clock.now = T0 + 500  # beyond the 100 s window: the earlier ones are missed
    dispatcher._dispatch()
    statuses = [status for status, _ in runs(store, "every-10")]
    assert statuses == ["succeeded", "missed", "queued"]
    [missed] = [r for r in store.list_runs(task_id="every-10") if r.status == "missed"]
    assert missed.occurrences == 36  # +40 .. +390: before the cutoff at +400
    await runner.wait_idle()


async def test_an_unusable_row_is_left_out_and_the_others_are_claimed() -> None:
    clock = Clock(T0)
    store, dispatcher, runner = make(clock)
    add(store, TaskDefinition(id="good", interval_seconds=10, prompt="p"), at=T0)
    add(store, TaskDefinition(id="bad", interval_seconds=10, prompt="p"), at=T0)
    with store.transaction() as tx:
        [bad] = tx.get_tasks(["bad"]).values()
        bad.definition = '{"id": "bad", "interval_seconds": "soon"}'
        tx.update_tasks([bad])
    clock.now = T0 + 11
    dispatcher._dispatch()
    assert runs(store, "good") == [("queued", 1)]
    assert runs(store, "bad") == []
    assert "bad" in dispatcher.broken
    clock.now = T0 + 21
    dispatcher._dispatch()  # the broken row stays out; no error, no record
    assert len(runs(store, "good")) == 2 and runs(store, "bad") == []
    await runner.wait_idle()


async def test_an_occurrence_due_while_the_previous_run_goes_is_recorded_skipped() -> None:
    clock = Clock(T0)
    store, dispatcher, runner = make(clock)
    add(store, TaskDefinition(id="slow", interval_seconds=10, prompt="sleep:0.3"), at=T0)
    clock.now = T0 + 10
    dispatcher._dispatch()
    await asyncio.sleep(0.05)  # the first run is going
    clock.now = T0 + 20
    dispatcher._dispatch()
    await runner.wait_idle()
    assert runs(store, "slow") == [("succeeded", 1), ("skipped", 1)]
    [skipped] = [r for r in store.list_runs(task_id="slow") if r.status == "skipped"]
    assert "overlap policy 'skip'" in (skipped.error_message or "")


def test_due_times_far_in_the_past_or_future_do_not_break_a_pass() -> None:
    clock = Clock(T0)
    store, dispatcher, _ = make(clock)
    add(store, TaskDefinition(id="ok", interval_seconds=60, prompt="p"), at=T0)
    dispatcher._dispatch()
    row = store.get_task("ok")
    assert row is not None and row.next_run_time == T0 + 60
    assert datetime.fromtimestamp(row.next_run_time, UTC) - datetime.fromtimestamp(
        T0, UTC
    ) == timedelta(seconds=60)
