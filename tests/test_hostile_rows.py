"""Rows written by someone else: every value read from the database is untrusted. A row that
cannot be used is kept, listed with its reason, and never stops the scheduler, the CLI or
``list``; the other tasks keep firing. Real SQLite files and a real PostgreSQL."""

from __future__ import annotations

import contextlib
import json
import os
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from scheduler import RunStatus, TaskDefinition, TaskScheduler, TaskState
from scheduler.cli import main as cli_main
from scheduler.events import RunEvent
from scheduler.server import create_app
from scheduler.storage.schema import RUN_COLUMNS, TASK_COLUMNS
from tests import prompt_graphs
from tests.conftest import SchedulerFactory, eventually, make_settings

pytestmark = pytest.mark.slow

NOW = time.time()
GOOD_DEFINITION = json.dumps({"id": "{id}", "interval_seconds": 60, "prompt": "p"})


def task_values(task_id: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": task_id,
        "definition": GOOD_DEFINITION.replace("{id}", task_id),
        "format": 1,
        "next_run_time": NOW + 3600,
        "paused": 0,
        "anchor": NOW,
        "source": "api",
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(changes)
    return values


def run_values(run_id: str, **changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = dict.fromkeys(RUN_COLUMNS)
    values.update(
        id=run_id,
        task_id="hostile",
        scheduled_for=NOW - 10,
        queued_at=NOW - 10,
        status="succeeded",
        attempt=1,
        occurrences=1,
        trigger="schedule",
    )
    values.update(changes)
    return values


def insert(url: str, table: str, values: dict[str, Any]) -> None:
    engine = create_engine(url, poolclass=NullPool)
    columns = ", ".join(f'"{c}"' for c in values)
    params = ", ".join(f":{c}" for c in values)
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({params})"), values)
    engine.dispose()


def cli_ok(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> str:
    capsys.readouterr()
    status = cli_main(["--database-url", url, *args])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "Traceback" not in err
    return out


async def fires_the_good_task(scheduler: TaskScheduler) -> None:
    scheduler.add_task(TaskDefinition(id="good", interval_seconds=0.2, prompt="p"))
    scheduler.start()
    await eventually(
        lambda: len(scheduler.list_runs("good", status="succeeded")) >= 3,
        message="the good task firing beside the hostile rows",
    )


HOSTILE_TASKS = [
    pytest.param({"next_run_time": 1e308}, "next_run_time", id="next run 1e308"),
    pytest.param({"next_run_time": -1e308}, "next_run_time", id="next run -1e308 (due)"),
    pytest.param({"next_run_time": NOW - 5, "anchor": 1e308}, "anchor", id="anchor 1e308"),
    pytest.param({"created_at": -5.0}, "created_at", id="created before 1970"),
    pytest.param({"next_run_time": "soon"}, "next_run_time", id="next run as text"),
    pytest.param({"format": "one"}, "format", id="format as text"),
    pytest.param(
        {"definition": '{"id": "hostile", "interval_seconds": NaN, "prompt": "p"}'},
        "interval_seconds",
        id="stored NaN interval",
    ),
    pytest.param(
        {"definition": '{"id": "hostile", "interval_seconds": 1e20, "prompt": "p"}'},
        "interval_seconds",
        id="stored huge interval",
    ),
    pytest.param(
        {
            "definition": '{"id": "hostile", "interval_seconds": 5, "prompt": "p", '
            '"result_callback": "os:system"}',
            "next_run_time": NOW - 1,
        },
        "result_callback",
        id="stored os:system callback",
    ),
    pytest.param(
        {
            "definition": '{"id": "hostile", "schedule": "every day at 09:00", "timezone": 5, '
            '"prompt": "p"}',
            "next_run_time": NOW - 1,
        },
        "timezone",
        id="stored schedule with a number for its zone",
    ),
]


async def test_a_queued_run_of_an_unloadable_task_does_not_stop_the_start(
    make_scheduler: SchedulerFactory, tmp_path: Path
) -> None:
    """Recovery decodes the task of each run a previous process left queued."""
    url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    scheduler = make_scheduler()
    scheduler.count_tasks()
    definition = '{"id": "hostile", "schedule": "every day at 09:00", "timezone": 5, "prompt": "p"}'
    insert(url, "scheduler_tasks", task_values("hostile", definition=definition))
    queued = {"status": "queued", "scheduled_for": NOW - 5, "queued_at": NOW - 5}
    insert(url, "scheduler_runs", run_values("f" * 24, **queued))
    await fires_the_good_task(scheduler)
    assert scheduler.get_task("hostile").state is TaskState.ERROR
    assert scheduler.get_run("f" * 24).status is RunStatus.CANCELLED


@pytest.mark.parametrize(("changes", "named"), HOSTILE_TASKS)
async def test_a_hostile_task_row_is_listed_as_an_error_and_the_rest_fire(
    make_scheduler: SchedulerFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, Any],
    named: str,
) -> None:
    url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    scheduler = make_scheduler()
    scheduler.count_tasks()  # creates the tables
    insert(url, "scheduler_tasks", task_values("hostile", **changes))
    await fires_the_good_task(scheduler)
    hostile = scheduler.get_task("hostile")
    if named == "result_callback":  # loads, but its runs refuse the callback
        await eventually(lambda: scheduler.list_runs("hostile", status="failed"))
        [run] = scheduler.list_runs("hostile", status="failed")[:1]
        assert "SCHEDULER_CALLBACK_MODULES" in (run.error_message or "")
    else:
        assert hostile.state is TaskState.ERROR
        assert named in (hostile.error or ""), hostile.error
        assert scheduler.list_runs("hostile") == []
    assert {t.id for t in scheduler.list_tasks()} == {"good", "hostile"}
    await scheduler.stop()
    listed = cli_ok(capsys, url, "list")
    assert "hostile" in listed and "good" in listed
    cli_ok(capsys, url, "list", "--json")
    cli_ok(capsys, url, "show", "hostile")


HOSTILE_RUNS = [
    pytest.param({"status": "exploded"}, id="unknown status"),
    pytest.param({"status": "running", "started_at": "yesterday"}, id="running, time as text"),
    pytest.param({"status": "queued", "scheduled_for": 1e308}, id="queued far in the future"),
    pytest.param({"status": "queued", "trigger": "manual", "attempt": -3}, id="queued manual"),
    pytest.param({"finished_at": float("inf"), "occurrences": "many"}, id="inf and text"),
    pytest.param({"task_id": "good", "status": "bogus", "queued_at": NOW + 1e6}, id="latest"),
]


@pytest.mark.parametrize("changes", HOSTILE_RUNS)
async def test_a_hostile_run_row_is_listed_with_its_problem_and_the_rest_fire(
    make_scheduler: SchedulerFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, Any],
) -> None:
    url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    scheduler = make_scheduler()
    scheduler.count_tasks()  # creates the tables
    insert(url, "scheduler_runs", run_values("ffffffffffffffffffffffff", **changes))
    await fires_the_good_task(scheduler)
    hostile = scheduler.get_run("ffffffffffffffffffffffff")
    assert hostile.problem or hostile.status is not RunStatus.RUNNING
    assert hostile.status.is_final  # a run left running was settled as interrupted
    [good] = [t for t in scheduler.list_tasks() if t.id == "good"]
    assert good.state is TaskState.ACTIVE
    await scheduler.stop()
    cli_ok(capsys, url, "list")
    cli_ok(capsys, url, "runs", "--limit", "100")
    cli_ok(capsys, url, "runs", "--json")


async def test_text_that_is_not_utf8_is_one_bad_value_not_a_failing_database(
    make_scheduler: SchedulerFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SQLite keeps any bytes as text: a task's definition or a run's error that another
    program wrote as bytes that are not UTF-8 made every read that met it fail ("Could not
    decode to UTF-8 column"): the dispatcher retried for ever and fired nothing, and the
    task list, ``list``, the REST API and the dashboard answered 503. The value is read
    with U+FFFD in place of those bytes: the task is listed as an error, the others fire."""
    db = tmp_path / "scheduler.db"
    scheduler = make_scheduler()
    scheduler.count_tasks()  # creates the tables
    not_utf8 = "CAST(x'7bff22' AS TEXT)"  # '{', a byte no UTF-8 text has, '"'
    row = task_values("hostile", definition=None)
    run = run_values("f" * 24, status="failed", error_type="E", error_message=None)
    connection = sqlite3.connect(db)
    with connection:
        for table, values, column in (
            ("scheduler_tasks", row, "definition"),
            ("scheduler_runs", run, "error_message"),
        ):
            names = ", ".join(f'"{c}"' for c in values)
            marks = ", ".join(not_utf8 if c == column else "?" for c in values)
            given = [v for c, v in values.items() if c != column]
            connection.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", given)
    connection.close()
    await fires_the_good_task(scheduler)
    hostile = scheduler.get_task("hostile")
    assert hostile.state is TaskState.ERROR and "definition" in (hostile.error or "")
    assert hostile.last_error == '{\ufffd"'
    assert scheduler.get_run("f" * 24).error_message == '{\ufffd"'
    app = create_app(scheduler, scheduler.settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for path in ("/", "/tasks/hostile", f"/runs/{'f' * 24}", "/api/tasks"):
            answer = await client.get(path)
            assert answer.status_code == 200, (path, answer.text)
    await scheduler.stop()
    assert "hostile" in cli_ok(capsys, f"sqlite:///{db}", "list")


@pytest.mark.parametrize(
    ("status", "task_row"),
    [("queued", True), ("waiting", True), ("queued", False)],
    ids=["queued, unreadable task", "waiting, unreadable task", "queued, task removed"],
)
async def test_a_run_cancelled_as_its_task_cannot_be_read_is_told_as_any_end(
    make_scheduler: SchedulerFactory, tmp_path: Path, status: str, task_row: bool
) -> None:
    """Its listeners (webhooks, metrics, ``events()``) hear of it, with no task to show."""
    url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    scheduler = make_scheduler()
    scheduler.count_tasks()
    if task_row:
        definition = '{"id": "hostile", "interval_seconds": NaN, "prompt": "p"}'
        insert(url, "scheduler_tasks", task_values("hostile", definition=definition))
    left = {"status": status, "scheduled_for": NOW - 5, "queued_at": NOW - 5}
    if status == "waiting":
        left.update(started_at=NOW - 5, waiting_since=NOW - 4, thread_id="t")
    insert(url, "scheduler_runs", run_values("f" * 24, **left))
    events: list[RunEvent] = []
    scheduler.subscribe(events.append)
    scheduler.start()
    await eventually(lambda: events, timeout=5, message="the cancelled run's event")
    [event] = events
    assert event.kind == "finished" and event.task is None
    assert event.run.id == "f" * 24 and event.run.status is RunStatus.CANCELLED
    assert event.run.error_type == "TaskUnavailable"
    assert event.to_dict()["task_id"] == "hostile"
    assert scheduler.get_run("f" * 24).status is RunStatus.CANCELLED


async def test_a_run_requested_elsewhere_whose_task_cannot_be_read_is_told_as_any_end(
    make_scheduler: SchedulerFactory, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    scheduler = make_scheduler()
    events: list[RunEvent] = []
    scheduler.subscribe(events.append)
    scheduler.start()
    definition = '{"id": "hostile", "interval_seconds": NaN, "prompt": "p"}'
    insert(url, "scheduler_tasks", task_values("hostile", definition=definition))
    requested = {"status": "queued", "trigger": "manual", "scheduled_for": NOW, "queued_at": NOW}
    insert(url, "scheduler_runs", run_values("f" * 24, **requested))
    # a change made by another process: the running one reads the database again
    make_scheduler().add_task(TaskDefinition(id="other", interval_seconds=3600, prompt="p"))
    await eventually(lambda: events, timeout=5, message="the cancelled run's event")
    [event] = events
    assert event.task is None and event.run.error_type == "TaskUnavailable"
    assert scheduler.get_run("f" * 24).status is RunStatus.CANCELLED


# -- fuzz ------------------------------------------------------------------------------------

POOL: list[Any] = [
    None,
    0,
    1,
    -1,
    2**62,
    0.5,
    1e308,
    -1e308,
    float("inf"),
    float("-inf"),
    "",
    "garbage",
    "queued",
    "running",
    "{}",
    '{"id": "x"',
    "null",
    "1e999",
    "x" * 5000,
    b"\x00\xffblob",
    NOW,
    NOW - 30,
]


def random_value(rng: random.Random, good: Any) -> Any:
    return good if rng.random() < 0.4 else rng.choice(POOL)


def fuzz_rows(rng: random.Random, count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    tasks, runs = [], []
    for n in range(count):
        good = task_values(f"fuzz-{n}", next_run_time=NOW - rng.choice((0, 5, 5000)))
        tasks.append({c: random_value(rng, good[c]) if c != "id" else good[c] for c in good})
        good_run = run_values(f"{n:024x}", task_id=rng.choice((f"fuzz-{n}", "good", "gone")))
        runs.append(
            {c: random_value(rng, good_run[c]) if c != "id" else good_run[c] for c in good_run}
        )
    return tasks, runs


def insert_sqlite(db: Path, table: str, rows: list[dict[str, Any]]) -> int:
    connection = sqlite3.connect(db)
    written = 0
    with connection:
        for row in rows:
            with contextlib.suppress(sqlite3.IntegrityError):
                columns = ", ".join(f'"{c}"' for c in row)
                connection.execute(
                    f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(row))})",
                    list(row.values()),
                )
                written += 1
    connection.close()
    return written


async def test_fuzz_random_values_in_every_column_never_stop_the_scheduler_or_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed = int(os.environ.get("HOSTILE_ROWS_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    db = tmp_path / "scheduler.db"
    url = f"sqlite:///{db}"
    scheduler = TaskScheduler(db_path=db, graph=prompt_graphs.graph, settings=make_settings())
    scheduler.count_tasks()  # creates the tables
    tasks, runs = fuzz_rows(rng, 60)
    assert set(tasks[0]) == set(TASK_COLUMNS)
    written = insert_sqlite(db, "scheduler_tasks", tasks)
    assert written > 0
    assert insert_sqlite(db, "scheduler_runs", runs) > 0
    try:
        await fires_the_good_task(scheduler)
        listed = scheduler.list_tasks()
        assert len(listed) == written + 1  # every row is listed, the good task too
        for info in listed:
            scheduler.get_task(info.id)
            if info.state is TaskState.ERROR:
                assert info.error, info
        scheduler.list_runs(limit=None)
        await scheduler.stop()
        for args in (("list",), ("list", "--json"), ("runs", "--limit", "500"), ("runs", "--json")):
            cli_ok(capsys, url, *args)
    except BaseException as exc:
        raise AssertionError(f"HOSTILE_ROWS_SEED={seed} reproduces this") from exc
    finally:
        await scheduler.stop()
        scheduler.close()


async def test_postgres_hostile_values_of_the_right_type_are_refused_on_read(
    pg_schema_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """PostgreSQL enforces column types, but NaN, infinities and absurd numbers fit them."""
    scheduler = TaskScheduler(
        database_url=pg_schema_url, graph=prompt_graphs.graph, settings=make_settings()
    )
    scheduler.count_tasks()  # creates the tables
    hostile = {
        "nan-next": {"next_run_time": float("nan")},
        "minus-inf-next": {"next_run_time": float("-inf")},
        "huge-anchor": {"next_run_time": NOW - 1, "anchor": 1e300},
        "future-format": {"format": 2**30},
    }
    for task_id, changes in hostile.items():
        insert(pg_schema_url, "scheduler_tasks", task_values(task_id, paused=False, **changes))
    insert(pg_schema_url, "scheduler_runs", run_values("e" * 24, status="weird", attempt=-1))
    insert(pg_schema_url, "scheduler_runs", run_values("d" * 24, scheduled_for=float("inf")))
    try:
        await fires_the_good_task(scheduler)
        states = {t.id: t.state for t in scheduler.list_tasks()}
        assert {states[task_id] for task_id in hostile} == {TaskState.ERROR}
        assert scheduler.get_run("e" * 24).status is RunStatus.UNKNOWN
        assert scheduler.get_run("d" * 24).problem
        await scheduler.stop()
        cli_ok(capsys, pg_schema_url, "list")
        cli_ok(capsys, pg_schema_url, "runs", "--json")
    finally:
        await scheduler.stop()
        scheduler.close()
