"""The runner on its own: admission under each overlap policy, priorities under the
concurrency limit, and retries as new recorded attempts. A real graph, an in-memory store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from scheduler import OverlapPolicy, RunTrigger, TaskDefinition
from scheduler.pending import Admission, PendingRun, new_run_id, retry_delay
from scheduler.rows import queued_run
from scheduler.runlog import RunLog
from scheduler.runner import Runner
from scheduler.storage import Store
from tests import prompt_graphs
from tests.conftest import make_settings


def make(**overrides: object) -> tuple[Store, Runner]:
    store = Store("sqlite://")
    store.setup()
    runner = Runner(
        settings=make_settings(**overrides),
        run_log=RunLog(store, interval=0.01),
        graph=lambda: prompt_graphs.graph,
    )
    return store, runner


def flushed(runner: Runner) -> None:
    """What the runner buffered, written (its run log is the one it was given)."""
    runner._log.flush()


def pending(store: Store, task: TaskDefinition) -> PendingRun:
    run = PendingRun(new_run_id(), task, 0.0)
    with store.transaction() as tx:
        tx.insert_runs([queued_run(run.run_id, task.id, scheduled_for=0.0, queued_at=0.0)])
    return run


@pytest.mark.parametrize(
    ("policy", "max_instances", "expected"),
    [
        (OverlapPolicy.SKIP, None, [Admission.RUN, Admission.SKIP, Admission.SKIP]),
        (OverlapPolicy.QUEUE, None, [Admission.RUN, Admission.BUFFER, Admission.SKIP]),
        (OverlapPolicy.ALLOW, 2, [Admission.RUN, Admission.RUN, Admission.SKIP]),
    ],
)
async def test_admission_follows_the_overlap_policy(
    policy: OverlapPolicy, max_instances: int | None, expected: list[Admission]
) -> None:
    store, runner = make()
    task = TaskDefinition(
        id="t", interval_seconds=60, prompt="hang", overlap=policy, max_instances=max_instances
    )
    decided = []
    for _ in expected:
        admission = runner.admit(task)
        decided.append(admission)
        runner.accept(pending(store, task), admission)
    assert decided == expected
    runner.cancel_running()
    await runner.stop(0)


async def test_waiting_runs_start_by_priority(tmp_path: Path) -> None:
    store, runner = make(max_concurrent_runs=1)
    log = tmp_path / "order.log"
    blocker = TaskDefinition(id="blocker", interval_seconds=60, prompt="sleep:0.2")
    runner.submit(pending(store, blocker))
    started: dict[str, str] = {}
    for priority in ("low", "urgent", "medium", "high"):
        task = TaskDefinition(
            id=priority,
            interval_seconds=60,
            prompt="record",
            priority=priority,
            metadata={"log": str(log)},
        )
        run = pending(store, task)
        started[run.run_id] = priority
        runner.submit(run)
    await runner.wait_idle()
    order = [started[line.split()[0]] for line in log.read_text().splitlines()]
    assert order == ["urgent", "high", "medium", "low"]


async def test_a_failing_run_is_retried_as_new_recorded_attempts() -> None:
    store, runner = make()
    task = TaskDefinition(
        id="flaky", interval_seconds=60, prompt="fail", max_retries=2, retry_delay_seconds=0.01
    )
    runner.submit(pending(store, task))
    await runner.wait_idle()
    await runner.stop(0)
    flushed(runner)
    attempts = sorted(store.list_runs(task_id="flaky"), key=lambda r: r.attempt)
    assert [(r.attempt, r.trigger, r.status) for r in attempts] == [
        (1, RunTrigger.SCHEDULE, "failed"),
        (2, RunTrigger.RETRY, "failed"),
        (3, RunTrigger.RETRY, "failed"),
    ]


def test_retry_delays_double_with_jitter_and_a_cap() -> None:
    for attempt, low in ((1, 10), (2, 20), (3, 40)):
        assert low <= retry_delay(attempt, base=10, cap=600) <= low * 1.25
    assert 600 <= retry_delay(20, base=10, cap=600) <= 750


async def test_a_run_is_marked_running_in_the_database_before_the_graph_is_called() -> None:
    """The durable start: when the graph runs, its record already says ``running``."""
    store = Store("sqlite://")
    store.setup()
    seen: list[str] = []

    class Probe:
        async def ainvoke(self, *_: object, **__: object) -> dict[str, object]:
            [record] = store.list_runs(task_id="probe")
            seen.append(record.status)
            return {"messages": []}

    runner = Runner(settings=make_settings(), run_log=RunLog(store), graph=lambda: Probe())
    runner.submit(pending(store, TaskDefinition(id="probe", interval_seconds=60, prompt="p")))
    await runner.wait_idle()
    await asyncio.sleep(0)
    assert seen == ["running"]


async def test_a_run_let_go_of_can_start_again_here_while_its_old_task_winds_down() -> None:
    # a process that lost the database to another and took it back starts over: the runs
    # it let go of may be handed back to it at once, while their cancelled tasks still end
    store = Store("sqlite://")
    store.setup()
    calls: list[str] = []
    called = asyncio.Event()
    going = [0, 0]  # graph calls going now, the most at once

    class Probe:
        async def ainvoke(self, *_: object, **__: object) -> dict[str, object]:
            calls.append("call")
            called.set()
            going[0] += 1
            going[1] = max(going)
            try:
                if len(calls) == 1:
                    try:
                        await asyncio.sleep(60)
                    except asyncio.CancelledError:
                        await asyncio.sleep(0.2)  # cleaning up after the cancel
                        raise
                return {"messages": []}
            finally:
                going[0] -= 1

    runner = Runner(
        settings=make_settings(max_concurrent_runs=1),
        run_log=RunLog(store, interval=0.01),
        graph=lambda: Probe(),
    )
    task = TaskDefinition(id="probe", interval_seconds=60, prompt="p")
    first = pending(store, task)
    runner.submit(first)
    await asyncio.wait_for(called.wait(), timeout=5)
    assert runner.abandon() == {first.run_id}
    runner.submit(PendingRun(first.run_id, task, 0.0))  # the same run, handed back
    await asyncio.wait_for(runner.wait_idle(), timeout=5)
    await asyncio.sleep(0.3)  # the old task has ended meanwhile, recording nothing
    flushed(runner)
    assert calls == ["call", "call"]
    assert going[1] == 1  # the new start waited for the old task's slot (one at most)
    [record] = store.list_runs(task_id="probe")
    assert record.status == "succeeded" and runner.running_count == 0


def test_a_retry_withdrawn_by_the_settings_does_not_say_the_task_was_edited() -> None:
    """A worker whose SCHEDULER_MAX_RETRIES is lower than the one that made a retry withdrew
    it saying "the task was edited", which nobody had done."""
    from scheduler.withdraw import retry_withdrawn

    retry = PendingRun("r", TaskDefinition(id="t", interval_seconds=60, prompt="p"), 0.0,
                       attempt=2, trigger=RunTrigger.RETRY)  # fmt: skip
    assert retry_withdrawn(retry.task, retry, default_most=1) is None
    assert retry_withdrawn(retry.task, retry, default_most=0) == (
        "this process's SCHEDULER_MAX_RETRIES (0; the task sets no max_retries) allows no attempt 2"
    )
    edited = retry.task.model_copy(update={"max_retries": 0})
    assert retry_withdrawn(edited, retry, default_most=3) == (
        "the task was edited: max_retries 0 allows no attempt 2"
    )
