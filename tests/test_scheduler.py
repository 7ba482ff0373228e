"""TaskScheduler in one process, on a real SQLite file and a real compiled graph: firing,
callbacks, pause / resume / remove / run now / disabled, errors."""

from __future__ import annotations

import asyncio
import gc
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from scheduler import (
    CallbackError,
    RunStatus,
    TaskDefinition,
    TaskExistsError,
    TaskNotFoundError,
    TaskScheduler,
    TaskState,
)
from scheduler.exceptions import (
    DependencyError,
    GraphLoadError,
    SchedulerNotRunningError,
    TaskSourceConflictError,
)
from scheduler.loader import load_graph
from tests import callbacks, prompt_graphs
from tests.conftest import SchedulerFactory, eventually, make_settings


def soon(seconds: float = 0.3) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def seen(output: str | None) -> dict[str, Any]:
    assert output is not None
    result: dict[str, Any] = json.loads(output)
    return result


async def test_a_firing_invokes_the_graph_with_prompt_thread_and_metadata(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler()
    scheduler.start()
    at = soon()
    scheduler.add_task(
        TaskDefinition(
            id="report",
            name="Report",
            run_at=at,
            prompt="Write the report.",
            metadata={"team": "ops"},
        )
    )
    runs = await eventually(lambda: scheduler.list_runs("report", status="succeeded"))
    run = runs[0]
    got = seen(run.output)
    assert got["prompt"] == "Write the report."
    assert got["task_id"] == "report"
    assert got["run_id"] == run.id
    assert got["tags"] == ["scheduler"]
    assert got["metadata"]["team"] == "ops"
    assert got["metadata"]["task_name"] == "Report"
    assert datetime.fromisoformat(got["scheduled_for"]) == at
    assert got["thread_id"] == run.thread_id  # a fresh thread for the run
    assert run.scheduled_for == at
    assert run.started_at is not None and run.started_at >= at
    assert scheduler.get_task("report").state is TaskState.COMPLETED


async def test_a_thread_id_continues_the_conversation(make_scheduler: SchedulerFactory) -> None:
    scheduler = make_scheduler(graph=prompt_graphs.build(prompt_graphs.InMemorySaver()))
    scheduler.start()
    scheduler.add_task(
        TaskDefinition(id="chat", interval_seconds=3600, prompt="hello", thread_id="conv-1")
    )
    first = await scheduler.wait_for_run(scheduler.run_task_now("chat"), timeout=10)
    second = await scheduler.wait_for_run(scheduler.run_task_now("chat"), timeout=10)
    assert (seen(first.output)["turns"], seen(second.output)["turns"]) == (1, 2)
    assert first.thread_id == second.thread_id == "conv-1"


async def test_fresh_thread_per_run_when_no_thread_id(make_scheduler: SchedulerFactory) -> None:
    scheduler = make_scheduler(graph=prompt_graphs.build(prompt_graphs.InMemorySaver()))
    scheduler.start()
    scheduler.add_task(TaskDefinition(id="t", interval_seconds=3600, prompt="hello"))
    first = await scheduler.wait_for_run(scheduler.run_task_now("t"), timeout=10)
    second = await scheduler.wait_for_run(scheduler.run_task_now("t"), timeout=10)
    assert first.thread_id != second.thread_id
    assert seen(second.output)["turns"] == 1


@pytest.mark.parametrize("path", ["tests.callbacks:collect", "tests.callbacks.collect_sync"])
async def test_result_callback_receives_task_and_result(
    make_scheduler: SchedulerFactory, path: str
) -> None:
    callbacks.received.clear()
    scheduler = make_scheduler()
    scheduler.start()
    scheduler.add_task(
        TaskDefinition(id="cb", interval_seconds=3600, prompt="ping", result_callback=path)
    )
    run = await scheduler.wait_for_run(scheduler.run_task_now("cb"), timeout=10)
    assert run.status is RunStatus.SUCCEEDED
    [(task_id, result)] = callbacks.received
    assert task_id == "cb"
    assert seen(result["messages"][-1].content)["prompt"] == "ping"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("tests.nowhere:collect", "result_callback 'tests.nowhere:collect': cannot import"),
        ("tests.callbacks:missing", "has no 'missing'"),
        ("tests.callbacks:not_callable", "is a int, not callable"),
    ],
)
async def test_bad_callback_is_rejected_by_add_task_and_nothing_is_written(
    make_scheduler: SchedulerFactory, path: str, message: str
) -> None:
    scheduler = make_scheduler()
    good = TaskDefinition(id="good", interval_seconds=60, prompt="p")
    bad = TaskDefinition(id="bad", interval_seconds=60, prompt="p", result_callback=path)
    with pytest.raises(CallbackError, match=message):
        scheduler.add_tasks([good, bad])
    assert scheduler.list_tasks() == []


async def test_graph_and_callback_errors_are_recorded_and_do_not_stop_the_scheduler(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler()
    scheduler.start()
    scheduler.add_tasks(
        [
            TaskDefinition(id="broken-graph", interval_seconds=0.3, prompt="fail"),
            TaskDefinition(
                id="broken-callback",
                interval_seconds=0.3,
                prompt="p",
                result_callback="tests.callbacks:explode",
            ),
            TaskDefinition(id="healthy", interval_seconds=0.3, prompt="p"),
        ]
    )
    await eventually(lambda: len(scheduler.list_runs("healthy", status="succeeded")) >= 3)
    graph_failure = scheduler.list_runs("broken-graph", status="failed")[0]
    assert graph_failure.error_type == "CommandError"
    assert graph_failure.error_message == "failing on command"
    assert "CommandError" in (graph_failure.error_traceback or "")
    callback_failure = scheduler.list_runs("broken-callback", status="failed")[0]
    assert "result_callback tests.callbacks:explode failed" in (
        callback_failure.error_message or ""
    )
    assert callback_failure.output is not None  # the graph's answer is kept


async def test_pause_resume_remove(make_scheduler: SchedulerFactory) -> None:
    scheduler = make_scheduler()
    scheduler.start()
    scheduler.add_task(TaskDefinition(id="tick", interval_seconds=0.2, prompt="p"))
    await eventually(lambda: scheduler.list_runs("tick", status="succeeded"))
    paused = scheduler.pause_task("tick")
    assert (paused.state, paused.paused, paused.next_run) == (TaskState.PAUSED, True, None)
    await scheduler.wait_idle()
    count = len(scheduler.list_runs("tick", limit=None))
    await asyncio.sleep(0.8)
    assert len(scheduler.list_runs("tick", limit=None)) == count
    resumed = scheduler.resume_task("tick")
    assert resumed.state is TaskState.ACTIVE and resumed.next_run is not None
    await eventually(lambda: len(scheduler.list_runs("tick", limit=None)) > count)
    scheduler.remove_task("tick")
    with pytest.raises(TaskNotFoundError):
        scheduler.get_task("tick")
    await scheduler.wait_idle()
    count = len(scheduler.list_runs("tick", limit=None))
    await asyncio.sleep(0.8)
    assert len(scheduler.list_runs("tick", limit=None)) == count  # history kept, no new runs


@pytest.mark.parametrize("target", ["tests.prompt_graphs:graph", "tests/prompt_graphs.py:graph"])
async def test_a_graph_given_as_a_target_is_loaded(
    make_scheduler: SchedulerFactory, target: str
) -> None:
    """``TaskScheduler(graph="module:attr")`` (a target, as ``SCHEDULER_GRAPH`` takes and
    ``main(graph=...)`` passes) loads that graph; before, the text itself was taken for the
    graph, and every run failed ("'str' object has no attribute 'ainvoke'")."""
    scheduler = make_scheduler(graph=target)
    scheduler.start()
    scheduler.add_task(TaskDefinition(id="t", cron_expression="0 0 1 1 *", prompt="hi"))
    run = await scheduler.wait_for_run(scheduler.run_task_now("t"), timeout=30)
    assert run.status is RunStatus.SUCCEEDED, run.error_message
    with pytest.raises(GraphLoadError):
        make_scheduler(graph="tests.prompt_graphs:no_such_graph").graph()


async def test_run_now_works_on_paused_tasks(make_scheduler: SchedulerFactory) -> None:
    scheduler = make_scheduler()
    scheduler.start()
    scheduler.add_task(TaskDefinition(id="later", cron_expression="0 0 1 1 *", prompt="p"))
    scheduler.pause_task("later")
    run = await scheduler.wait_for_run(scheduler.run_task_now("later"), timeout=10)
    assert run.status is RunStatus.SUCCEEDED
    assert run.trigger.value == "manual"
    assert scheduler.get_task("later").state is TaskState.PAUSED


async def test_disabled_task_is_listed_but_never_fires_until_resumed(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler()
    scheduler.start()
    scheduler.add_task(TaskDefinition(id="off", interval_seconds=0.2, prompt="p", enabled=False))
    info = scheduler.get_task("off")
    assert (info.state, info.next_run, info.paused) == (TaskState.DISABLED, None, False)
    await asyncio.sleep(0.8)
    assert scheduler.list_runs("off") == []
    resumed = scheduler.resume_task("off")
    assert resumed.state is TaskState.ACTIVE
    assert resumed.definition is not None and resumed.definition.enabled
    await eventually(lambda: scheduler.list_runs("off", status="succeeded"))


@pytest.mark.parametrize(
    "method", ["get_task", "remove_task", "pause_task", "resume_task", "run_task_now"]
)
async def test_unknown_id_raises_task_not_found(
    make_scheduler: SchedulerFactory, method: str
) -> None:
    scheduler = make_scheduler()
    with pytest.raises(TaskNotFoundError) as caught:
        getattr(scheduler, method)("nope")
    assert isinstance(caught.value, KeyError)
    assert str(caught.value) == "no task with id 'nope'"


async def test_replace_existing_false_refuses_and_true_updates(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler()
    scheduler.add_task(TaskDefinition(id="t", interval_seconds=60, prompt="one"))
    with pytest.raises(TaskExistsError, match="already exists"):
        scheduler.add_task(
            TaskDefinition(id="t", interval_seconds=60, prompt="two"), replace_existing=False
        )
    before = scheduler.get_task("t")
    after = scheduler.add_task(TaskDefinition(id="t", interval_seconds=60, prompt="two"))
    assert after.definition is not None and after.definition.prompt == "two"
    assert after.next_run == before.next_run  # same schedule: next run kept
    moved = scheduler.add_task(TaskDefinition(id="t", interval_seconds=120, prompt="two"))
    assert moved.next_run is not None and before.next_run is not None
    assert moved.next_run > before.next_run


def test_start_outside_an_event_loop_says_what_it_needs() -> None:
    """It said "start() (inside a running event loop, ...) needs a started scheduler; call
    start() first": to call the very method just called."""
    scheduler = TaskScheduler(False, graph=prompt_graphs.graph, settings=make_settings())
    try:
        with pytest.raises(SchedulerNotRunningError) as caught:
            scheduler.start()
        assert str(caught.value).startswith("start() needs a running event loop: call it from")
        assert "call start() first" not in str(caught.value)
    finally:
        scheduler.close()


def test_check_task_refuses_what_add_task_refuses_and_writes_nothing(
    make_scheduler: SchedulerFactory,
) -> None:
    """``check_task`` ("the checks of add_task, writing nothing") checked only the
    callbacks: a link to no task, a time in a DST gap, an id of a tasks file's task or one
    taken under ``replace_existing=False`` passed it, and ``add_task`` then raised."""
    scheduler = make_scheduler(timezone="America/New_York")
    scheduler.sync_tasks(
        [TaskDefinition(id="f1", interval_seconds=60, prompt="x")], source="file:tasks.yaml"
    )
    refused: list[tuple[TaskDefinition, dict[str, Any], type[Exception], str]] = [
        (TaskDefinition(id="b", after="zzz", prompt="x"), {}, DependencyError, "zzz"),
        (
            TaskDefinition(id="c", run_at=datetime(2030, 3, 10, 2, 30), prompt="x"),
            {},
            ValidationError,
            "run_at",
        ),
        (
            TaskDefinition(id="f1", interval_seconds=60, prompt="y"),
            {},
            TaskSourceConflictError,
            "f1",
        ),
        (
            TaskDefinition(id="f1", interval_seconds=60, prompt="y"),
            {"replace_existing": False, "source": "file:tasks.yaml"},
            TaskExistsError,
            "already exists",
        ),
    ]
    for task, arguments, error, says in refused:
        with pytest.raises(error, match=says):
            scheduler.check_task(task, **arguments)
        with pytest.raises(error, match=says):
            scheduler.add_task(task, **arguments)
    fine = TaskDefinition(id="d", after="f1", prompt="x")
    scheduler.check_task(fine)
    scheduler.check_task(
        TaskDefinition(id="f1", interval_seconds=60, prompt="y"), source="file:tasks.yaml"
    )
    assert [t.id for t in scheduler.list_tasks()] == ["f1"]
    assert scheduler.get_task("f1").definition.prompt == "x"  # type: ignore[union-attr]
    assert scheduler.list_runs() == []
    scheduler.add_task(fine)


def test_a_sync_source_of_your_own_keeps_its_tasks_as_a_tasks_file_does(
    make_scheduler: SchedulerFactory,
) -> None:
    """``add_task`` took a task of ``sync_tasks(..., source="my-config")`` (only a tasks
    file's were kept from it), and every later sync of that source then failed on it."""
    scheduler = make_scheduler()
    mine = TaskDefinition(id="s", interval_seconds=60, prompt="x")
    scheduler.sync_tasks([mine], source="my-config")
    changed = TaskDefinition(id="s", interval_seconds=60, prompt="changed")
    for source in ("api", "cli", "http", "http:crons", "agent:thread:t", "other-config"):
        with pytest.raises(TaskSourceConflictError, match="'s' \\(my-config\\)"):
            scheduler.add_task(changed, source=source)
    assert scheduler.get_task("s").source == "my-config"
    assert scheduler.sync_tasks([mine], source="my-config").unchanged == ["s"]
    scheduler.add_task(changed, source=None)  # (None: the task keeps its source)
    assert scheduler.get_task("s").source == "my-config"
    # tasks added one by one go on changing hands, as before
    scheduler.add_task(TaskDefinition(id="a", interval_seconds=60, prompt="x"))
    for source in ("cli", "http", "api"):
        assert scheduler.add_task(changed.model_copy(update={"id": "a"}), source=source)
        assert scheduler.get_task("a").source == source


async def test_list_tasks_reports_state_next_run_and_definition(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler(timezone="Europe/Paris")
    scheduler.add_tasks(
        [
            TaskDefinition(id="a", cron_expression="0 9 * * 1-5", prompt="p"),
            TaskDefinition(id="b", interval_seconds=60, prompt="p"),
        ]
    )
    scheduler.pause_task("b")
    listed = {t.id: t for t in scheduler.list_tasks()}
    assert listed["a"].state is TaskState.ACTIVE
    assert listed["a"].next_run is not None and listed["a"].next_run.tzinfo is not None
    assert listed["a"].definition is not None and listed["a"].definition.timezone == "Europe/Paris"
    assert listed["a"]["id"] == "a"  # the classic recipe's dict-style access still works
    assert listed["b"].paused and listed["b"].next_run is None
    local = listed["a"].next_run.astimezone(listed["a"].definition.zone())
    assert (local.hour, local.minute, local.isoweekday() <= 5) == (9, 0, True)


async def test_a_one_time_task_is_completed_once_its_run_ended_not_while_it_goes(
    make_scheduler: SchedulerFactory,
) -> None:
    """With no next run, a one-time task was listed ``completed`` while its run was still
    queued, running or waiting (and an agent's tool stopped counting it)."""
    scheduler = make_scheduler()
    scheduler.start()
    scheduler.add_tasks(
        [
            TaskDefinition(id="slow", run_at=soon(0.1), prompt="sleep:4"),
            TaskDefinition(id="quick", run_at=soon(0.1), prompt="echo"),
        ]
    )
    await eventually(lambda: scheduler.list_runs("slow", status="running"))
    await eventually(lambda: scheduler.list_runs("quick", status="succeeded"))
    for listed in (scheduler.list_tasks(), scheduler.list_tasks(source="api")):
        states = {t.id: (t.state, t.next_run) for t in listed}
        assert states == {"slow": (TaskState.ACTIVE, None), "quick": (TaskState.COMPLETED, None)}
    assert scheduler.get_task("slow").state is TaskState.ACTIVE
    await eventually(lambda: scheduler.list_runs("slow", status="succeeded"), timeout=10)
    assert scheduler.get_task("slow").state is TaskState.COMPLETED
    assert {t.state for t in scheduler.list_tasks()} == {TaskState.COMPLETED}


async def test_in_memory_scheduler_fires(make_scheduler: SchedulerFactory) -> None:
    scheduler = make_scheduler(persistent=False)
    scheduler.start()
    scheduler.add_task(TaskDefinition(id="m", interval_seconds=0.2, prompt="p"))
    await eventually(lambda: scheduler.list_runs("m", status="succeeded"))
    assert scheduler._store.is_memory


async def test_job_rows_hold_json_never_a_pickle(
    make_scheduler: SchedulerFactory, tmp_path: Any
) -> None:
    scheduler = make_scheduler()
    scheduler.add_task(
        TaskDefinition(
            id="row",
            cron_expression="0 9 * * 1-5",
            prompt="p",
            metadata={"k": 1},
            priority="high",
            overlap="queue",
        )
    )
    connection = sqlite3.connect(tmp_path / "scheduler.db")
    try:
        rows = connection.execute("SELECT * FROM scheduler_tasks").fetchall()
        columns = [c[1] for c in connection.execute("PRAGMA table_info(scheduler_tasks)")]
    finally:
        connection.close()
    assert len(rows) == 1
    for value in rows[0]:
        assert not isinstance(value, bytes), "a binary (pickled) column"
    definition = json.loads(rows[0][columns.index("definition")])
    assert definition["id"] == "row"
    assert definition["cron_expression"] == "0 9 * * 1-5"
    assert definition["priority"] == "high"
    assert TaskDefinition.model_validate(definition).metadata == {"k": 1}


async def test_running_schedulers_keep_startup_objects_out_of_collections(
    make_scheduler: SchedulerFactory,
) -> None:
    assert gc.get_freeze_count() == 0, "a scheduler from an earlier test is still running"
    first, second = make_scheduler(), make_scheduler(db="second.db")
    first.start()
    frozen = gc.get_freeze_count()
    assert frozen > 1000  # the libraries and the graph
    second.start()
    assert gc.get_freeze_count() <= frozen  # frozen once, by the first (some since freed)
    run = await second.wait_for_run(
        second.run_task_now(
            second.add_task(TaskDefinition(id="t", prompt="hi", interval_seconds=3600)).id
        ),
        timeout=10,
    )
    assert run.status is RunStatus.SUCCEEDED
    await first.stop()
    assert gc.get_freeze_count() > 1000  # the second still runs
    await second.stop()
    assert gc.get_freeze_count() == 0
    unfrozen = make_scheduler(db="off.db", gc_freeze=False)
    unfrozen.start()
    assert gc.get_freeze_count() == 0
    await unfrozen.stop()


async def test_adds_due_after_the_dispatchers_timer_do_not_wake_it_and_earlier_ones_fire(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler(poll_interval_seconds=30)  # no poll pass during the test
    scheduler.start()
    scheduler.add_task(TaskDefinition(id="first", run_at=soon(3600), prompt="p"))
    await asyncio.sleep(0.1)
    assert scheduler._supervisor is not None
    dispatcher = scheduler._supervisor.dispatcher
    passes = dispatcher.last_processed
    for i in range(10):  # from worker threads, as the async API and the HTTP server add
        await scheduler.aadd_task(TaskDefinition(id=f"late-{i}", run_at=soon(7200), prompt="p"))
    await asyncio.sleep(0.1)
    assert dispatcher.last_processed == passes  # no pass: the timer looks before they are due
    for i in range(3):  # earlier than the timer: woken, from a thread and on the loop
        await scheduler.aadd_task(TaskDefinition(id=f"soon-{i}", run_at=soon(0.3), prompt="p"))
        scheduler.add_task(TaskDefinition(id=f"now-{i}", run_at=soon(0.3), prompt="p"))
    for task_id in [f"soon-{i}" for i in range(3)] + [f"now-{i}" for i in range(3)]:
        await eventually(lambda t=task_id: scheduler.list_runs(t, status="succeeded"))
    assert dispatcher.last_processed > passes
    assert not scheduler.list_runs("first") and not scheduler.list_runs("late-0")


async def test_a_listing_holds_no_definition_models_until_one_is_asked_for(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler()
    scheduler.add_tasks(
        [
            TaskDefinition(id=f"t{i}", cron_expression="0 9 * * *", prompt="p", metadata={"i": i})
            for i in range(500)
        ]
    )

    def models() -> int:
        gc.collect()
        return sum(isinstance(o, TaskDefinition) for o in gc.get_objects())

    before = models()
    listed = scheduler.list_tasks()
    assert len(listed) == 500 and models() - before < 10  # 500 would be one per task
    first = next(info for info in listed if info.id == "t7")
    assert first.definition == scheduler.get_task("t7").definition
    assert first.definition is first.definition  # read once
    assert first["definition"] is first.definition
    assert first.to_dict()["definition"]["metadata"] == {"i": 7}
    assert first.name == "t7" and first.state is TaskState.ACTIVE


def test_add_task_returns_the_task_as_stored(make_scheduler: SchedulerFactory) -> None:
    """What add_task answers is what get_task reads back, not the caller's object: a value
    of its own, its times as stored."""
    scheduler = make_scheduler()
    values = {"n": 1}
    task = TaskDefinition(
        id="once",
        run_at=datetime(2999, 7, 1, 9, 0),
        timezone="Europe/Paris",
        prompt="go",
        input={"values": values},
    )
    info = scheduler.add_task(task)
    values["n"] = 2  # the caller changes its own dict afterwards
    assert info.definition == scheduler.get_task("once").definition
    assert info.definition is not None and info.definition.input == {"values": {"n": 1}}


async def test_a_schedule_string_without_a_zone_is_read_in_the_schedulers_zone(
    make_scheduler: SchedulerFactory,
) -> None:
    """``at 2030-01-01 14:00`` is 14:00 in SCHEDULER_TIMEZONE, as ``run_at=`` a naive
    datetime and ``every day at 14:00`` are; with the task's own zone, in that one."""
    scheduler = make_scheduler(timezone="Europe/Paris")
    scheduler.add_tasks(
        [
            TaskDefinition(id="string", schedule="at 2030-01-01 14:00", prompt="p"),
            TaskDefinition(id="naive", run_at=datetime(2030, 1, 1, 14), prompt="p"),
            TaskDefinition(
                id="own", schedule="at 2030-01-01 14:00", timezone="Asia/Tokyo", prompt="p"
            ),
        ]
    )
    paris = datetime(2030, 1, 1, 13, tzinfo=UTC)
    assert scheduler.get_task("string").next_run == paris
    assert scheduler.get_task("naive").next_run == paris
    assert scheduler.get_task("own").next_run == datetime(2030, 1, 1, 5, tzinfo=UTC)


@pytest.mark.parametrize("factory", ["make_graph", "make_graph_plainly"])
async def test_a_graph_factory_is_called_and_its_graph_runs(tmp_path: Path, factory: str) -> None:
    """``langgraph.json`` may name a factory (``./graph.py:make_graph``), as the LangGraph
    server accepts; the scheduler calls it (once) and runs the graph it gives."""
    settings = make_settings(graph=f"tests.prompt_graphs:{factory}")
    async with TaskScheduler(True, tmp_path / "s.db", settings=settings) as scheduler:
        scheduler.add_task(TaskDefinition(id="t", interval_seconds=3600, prompt="hi"))
        run = await scheduler.wait_for_run(scheduler.run_task_now("t"), timeout=10)
    assert run.status is RunStatus.SUCCEEDED and json.loads(run.output or "")["prompt"] == "hi"


def test_an_async_graph_factory_is_refused_saying_what_to_do() -> None:
    with pytest.raises(GraphLoadError, match="an async graph factory is not supported here"):
        load_graph("tests.prompt_graphs:make_graph_async")


async def test_today_at_made_in_python_without_a_zone_is_read_in_the_schedulers_zone(
    tmp_path: Path,
) -> None:
    """``TaskDefinition(schedule="today at 9:30")`` without ``timezone`` was read in UTC
    (the model has no zone yet): in Paris it fired an hour late, in New York "today at
    17:00" was refused as past at 16:00 UTC. Its day and time are now read when
    ``add_task`` gives it the scheduler's zone, as of when it was written."""
    from scheduler.exceptions import ScheduleError
    from scheduler.testing import clocked_scheduler

    start = "2030-01-01T08:00:00Z"  # 09:00 in Paris, 03:00 in New York
    async with clocked_scheduler(
        graph=prompt_graphs.graph, start=start, db_path=tmp_path / "s.db", timezone="Europe/Paris"
    ) as (scheduler, clock):
        task = TaskDefinition(id="soon", schedule="today at 9:30", prompt="p")
        scheduler.add_task(task)
        stored = scheduler.get_task("soon")
        assert stored.next_run == datetime(2030, 1, 1, 8, 30, tzinfo=UTC)
        assert stored.definition is not None and stored.definition.timezone == "Europe/Paris"
        late = TaskDefinition(id="late", schedule="today at 8:30", prompt="p")  # 07:30 UTC
        with pytest.raises(ScheduleError, match="is not after now"):
            scheduler.add_task(late)  # past in Paris (in UTC it was not): nothing written
        assert [t.id for t in scheduler.list_tasks()] == ["soon"]
        [run] = await clock.advance_to(datetime(2030, 1, 1, 8, 30, tzinfo=UTC))
        assert run.status is RunStatus.SUCCEEDED
        assert run.scheduled_for == datetime(2030, 1, 1, 8, 30, tzinfo=UTC)
    async with clocked_scheduler(
        graph=prompt_graphs.graph, start="2030-01-01T16:00:00Z", timezone="America/New_York"
    ) as (scheduler, _):
        scheduler.add_task(TaskDefinition(id="evening", schedule="today at 17:00", prompt="p"))
        scheduler.add_task(TaskDefinition(id="next", schedule="tomorrow at 9:00", prompt="p"))
        runs = {t.id: t.next_run for t in scheduler.list_tasks()}
        assert runs == {
            "evening": datetime(2030, 1, 1, 22, 0, tzinfo=UTC),
            "next": datetime(2030, 1, 2, 14, 0, tzinfo=UTC),
        }
