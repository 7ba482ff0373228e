"""What a worker claims and how it settles it, with a leader beside it, all real
subprocesses on a real PostgreSQL schema (``tests.test_workers.Fleet``): the refusal of
SQLite, claim order, manual runs, runs held by a worker gone or written by hand, what runs
after a run, and tasks or answers that cannot be read.

None of these depends on timing: their workers hold a 30 s lease (a loaded machine never
lets it lapse; the leader's own stays 3 s, so it reaps a vanished worker's runs within a
second) and their tasks keep the default catch-up window, so they run with the rest of the
suite, not alone (the lease, kill -9, burst and window scenarios stay in test_workers.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from scheduler import Settings, TaskScheduler
from scheduler.exceptions import SettingError
from tests.conftest import POSTGRES_URL, PYTHON, ROOT
from tests.test_reliability import wait_until
from tests.test_workers import Fleet, at, pid_of

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def fleet(pg_schema_url: str, tmp_path: Path) -> Iterator[Fleet]:
    made = Fleet(pg_schema_url, tmp_path, worker_lease=30.0)
    try:
        yield made
    finally:
        made.close()


def test_a_worker_refuses_to_start_on_sqlite(tmp_path: Path) -> None:
    done = subprocess.run(
        [PYTHON, "-m", "scheduler", "worker"],
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SCHEDULER_DB_PATH": str(tmp_path / "scheduler.db"),
            "SCHEDULER_GRAPH": "tests.prompt_graphs:graph",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2  # a bad setting, as any (it was 1, a scheduler error)
    assert "SCHEDULER_ROLE: worker needs PostgreSQL" in done.stderr
    assert "scheduler.db" in done.stderr and "SCHEDULER_ROLE=all" in done.stderr


async def test_the_scheduler_role_refuses_sqlite(tmp_path: Path) -> None:
    scheduler = TaskScheduler(
        db_path=tmp_path / "s.db", graph=object(), settings=Settings(role="scheduler")
    )
    with pytest.raises(SettingError, match="SCHEDULER_ROLE: scheduler needs PostgreSQL"):
        scheduler.start()
    assert not (tmp_path / "s.db").exists()  # nothing written


def test_priorities_decide_the_claim_order(fleet: Fleet) -> None:
    priorities = ["low", "medium", "high", "urgent"]
    fleet.add(
        [
            {"id": f"{p}-{i}", "run_at": at(0), "prompt": "record", "priority": p}
            for i in range(5)
            for p in priorities
        ]
    )
    leader = fleet.leader()
    wait_until(lambda: fleet.count("status = 'queued'") == 20, message="20 queued runs")
    worker = fleet.worker(SCHEDULER_MAX_CONCURRENT_RUNS="1")
    wait_until(lambda: len(fleet.calls()) == 20, timeout=60, message="20 calls")
    task_of = {r["id"]: r["task_id"] for r in fleet.rows("SELECT id, task_id FROM scheduler_runs")}
    order = [task_of[run_id].split("-")[0] for run_id, _ in fleet.calls()]
    assert order == sorted(order, key=lambda p: -priorities.index(p)), order
    fleet.stop(worker, leader)


def test_a_run_requested_from_the_cli_goes_to_a_worker(fleet: Fleet) -> None:
    fleet.add([{"id": "hourly", "interval_seconds": 3600, "prompt": "record"}])
    leader = fleet.leader()
    worker = fleet.worker()
    fleet.workers_registered(1)
    fleet.active_leader([leader])
    fleet.cli("run", "hourly", "--json")
    wait_until(
        lambda: fleet.count("trigger = 'manual' AND status = 'succeeded'"),
        timeout=30,
        message=f"the manual run: {fleet.rows('SELECT * FROM scheduler_runs')}",
    )
    manual = fleet.rows("SELECT * FROM scheduler_runs WHERE trigger = 'manual'")
    assert [r["status"] for r in manual] == ["succeeded"]
    assert pid_of(manual[0]["worker"]) == worker.pid
    assert {int(pid) for _, pid in fleet.calls()} == {worker.pid}
    fleet.stop(worker, leader)


def test_a_task_after_another_runs_once_with_workers(fleet: Fleet) -> None:
    """A worker queues what follows a run it finished; it was admitted against its own
    row (just written): recorded ``skipped`` under the default overlap policy, never run."""
    leader = fleet.leader()
    worker = fleet.worker()
    fleet.workers_registered(1)
    fleet.add(
        [
            {"id": "up", "run_at": at(0), "prompt": "record"},
            {"id": "down", "after": "up", "prompt": "record"},
            {"id": "last", "after": "down", "prompt": "record", "overlap": "queue"},
        ]
    )
    wait_until(lambda: fleet.count("task_id = 'last'") == 1, timeout=30, message="last queued")
    wait_until(lambda: fleet.count("status IN ('queued', 'running')") == 0, timeout=30)
    fleet.stop(leader, worker)
    rows = fleet.rows("SELECT task_id, status FROM scheduler_runs ORDER BY queued_at")
    assert [(r["task_id"], r["status"]) for r in rows] == [
        ("up", "succeeded"), ("down", "succeeded"), ("last", "succeeded"),
    ], rows  # fmt: skip


def test_a_run_held_by_a_worker_no_longer_registered_goes_back_to_the_others(
    fleet: Fleet,
) -> None:
    # what a worker declared dead may still have written after its reaping (a retry of its
    # own), held by it: it would wait for that worker for ever
    fleet.add([{"id": "stray", "run_at": "2099-01-01T00:00:00Z", "prompt": "record"}])
    scheduler = TaskScheduler(database_url=fleet.url, graph=object())
    try:
        run_id = scheduler.run_task_now("stray")
    finally:
        scheduler.close()
    with fleet.engine.begin() as conn:
        conn.execute(text("UPDATE scheduler_runs SET worker = 'vm:1:gone00' WHERE id = :id"),
                     {"id": run_id})  # fmt: skip
    leader = fleet.leader()
    worker = fleet.worker()
    wait_until(lambda: fleet.count("status = 'succeeded'") == 1, 60, "the stray run done")
    assert [c[0] for c in fleet.calls()] == [run_id]
    fleet.stop(leader, worker)


def test_a_queued_row_with_an_impossible_limit_or_delay_is_settled_not_kept(fleet: Fleet) -> None:
    # rows written by someone else: a limit of 0 or a delay of NaN or infinity fit their
    # columns but can never be met; a worker takes them and settles them as unreadable
    # (nothing is run) instead of leaving them queued for ever
    from tests.test_hostile_rows import run_values

    fleet.add([{"id": "t", "run_at": "2099-01-01T00:00:00Z", "prompt": "record"}])
    hostile = {
        "a" * 24: {"max_running": 0},
        "b" * 24: {"max_running": -3},
        "c" * 24: {"not_before": float("nan")},
        "d" * 24: {"not_before": float("inf")},
        "e" * 24: {"not_before": 1e300, "max_running": 1},
    }
    with fleet.engine.begin() as conn:
        for run_id, changes in hostile.items():
            values = run_values(run_id, task_id="t", status="queued", worker="*", **changes)
            columns = ", ".join(f'"{c}"' for c in values)
            params = ", ".join(f":{c}" for c in values)
            conn.execute(text(f"INSERT INTO scheduler_runs ({columns}) VALUES ({params})"), values)
    leader = fleet.leader()
    worker = fleet.worker()
    ids = ", ".join(f"'{i}'" for i in hostile)
    wait_until(
        lambda: fleet.count(f"id IN ({ids}) AND status = 'queued'") == 0, 30, "the rows settled"
    )
    rows = fleet.rows(f"SELECT status, error_message FROM scheduler_runs WHERE id IN ({ids})")
    assert {r["status"] for r in rows} == {"cancelled"}
    assert all("its record" in r["error_message"] for r in rows)
    assert fleet.calls() == []  # nothing ran
    fleet.stop(worker, leader)


_UNREADABLE = '{"id": "up", "interval_seconds": NaN, "prompt": "p"}'  # (written by hand)


@pytest.mark.parametrize(
    "left", ["queued for the workers", "waiting, no worker holds it", "asked for at the leader"]
)
def test_a_run_cancelled_as_its_task_cannot_be_read_is_followed_with_workers(
    fleet: Fleet, left: str
) -> None:
    """A run cancelled ``TaskUnavailable`` (its task's definition made unreadable by hand)
    by the worker that claims it, the one that adopts it waiting, or the leader it was asked
    of: what runs after it on ``finished`` runs once, on a worker (before, nothing did)."""
    from tests.test_hostile_rows import run_values

    fleet.add(
        [
            {"id": "up", "run_at": "2099-01-01T00:00:00Z", "prompt": "record"},
            {"id": "any-end", "after": {"tasks": ["up"], "on": "finished"}, "prompt": "record"},
        ]
    )
    leader = fleet.leader()
    worker = fleet.worker()
    fleet.workers_registered(1)
    fleet.active_leader([leader])
    now = time.time()
    values = {
        "queued for the workers": {"status": "queued", "worker": "*"},
        "waiting, no worker holds it": {
            "status": "waiting", "worker": "*", "thread_id": "t", "started_at": now,
            "waiting_since": now,
        },
        "asked for at the leader": {"status": "queued", "trigger": "manual"},
    }[left]  # fmt: skip
    run_id = "f" * 24
    with fleet.engine.begin() as conn:
        conn.execute(text("UPDATE scheduler_tasks SET definition = :d WHERE id = 'up'"),
                     {"d": _UNREADABLE})  # fmt: skip
        row = run_values(run_id, task_id="up", scheduled_for=now, queued_at=now, **values)
        columns = ", ".join(f'"{c}"' for c in row)
        params = ", ".join(f":{c}" for c in row)
        conn.execute(text(f"INSERT INTO scheduler_runs ({columns}) VALUES ({params})"), row)
    fleet.add([{"id": "other", "run_at": "2099-01-01T00:00:00Z", "prompt": "p"}])  # a change
    wait_until(
        lambda: fleet.count("task_id = 'any-end' AND status = 'succeeded'"), 30, "the follower"
    )
    [up] = fleet.rows(f"SELECT status, error_type FROM scheduler_runs WHERE id = '{run_id}'")
    assert (up["status"], up["error_type"]) == ("cancelled", "TaskUnavailable")
    [follower] = fleet.rows("SELECT id, upstream FROM scheduler_runs WHERE task_id = 'any-end'")
    assert json.loads(follower["upstream"])["up"]["status"] == "cancelled"
    assert fleet.calls() == [[follower["id"], str(worker.pid)]]  # once, on the worker
    fleet.stop(worker, leader)


def test_an_answer_a_worker_cannot_read_fails_the_run_as_any_failure(fleet: Fleet) -> None:
    """A run answered and queued to resume whose recorded answer is not JSON (changed by
    hand) is claimed by a worker: it ends ``failed`` (BadAnswer) as any failure does, the
    fallback after it runs and its failure callback is called, as in one process; before,
    the worker only set its record failed."""
    failures = fleet.directory / "failures.log"
    fleet.add(
        [
            {"id": "ask", "run_at": "2099-01-01T00:00:00Z", "prompt": "ask-record-sleep:0.1",
             "on_failure_callback": "tests.callbacks:record_failure",
             "metadata": {"failures": str(failures)}},
            {"id": "alert", "after": {"tasks": ["ask"], "on": "failed"}, "prompt": "record"},
        ]
    )  # fmt: skip
    leader = fleet.leader()
    first = fleet.worker(SCHEDULER_CALLBACK_MODULES="tests")
    fleet.workers_registered(1)
    api = TaskScheduler(database_url=fleet.url, graph=object())
    try:
        run_id = api.run_task_now("ask")
    finally:
        api.close()
    wait_until(lambda: fleet.count("status = 'waiting'"), 30, "the question")
    fleet.stop(first)  # its waiting run goes back to any worker
    with fleet.engine.begin() as conn:  # as an answer queued to resume, but not JSON
        conn.execute(
            text("UPDATE scheduler_runs SET status = 'queued', answer = :a WHERE id = :id"),
            {"a": '{"broken', "id": run_id},
        )
    second = fleet.worker(SCHEDULER_CALLBACK_MODULES="tests")
    wait_until(lambda: fleet.count("task_id = 'alert' AND status = 'succeeded'"), 30, "alert")
    [ask] = fleet.rows(f"SELECT status, error_type FROM scheduler_runs WHERE id = '{run_id}'")
    assert (ask["status"], ask["error_type"]) == ("failed", "BadAnswer")
    [alert] = fleet.rows("SELECT id, upstream FROM scheduler_runs WHERE task_id = 'alert'")
    assert json.loads(alert["upstream"])["ask"]["status"] == "failed"
    assert fleet.calls() == [[alert["id"], str(second.pid)]]
    wait_until(failures.exists, 30, "the failure callback")
    assert failures.read_text().split() == [run_id, "failed", "BadAnswer"]
    fleet.stop(second, leader)


def test_the_schedulers_own_locks_never_meet_a_lock_of_one_key(fleet: Fleet) -> None:
    # The leader holds a one-key advisory lock for as long as it leads, and applications
    # take their own. A session holding the one-key locks that a task's claim and every
    # task write once hashed to (as a collision would): runs of a task with a limit are
    # still claimed, and tasks still written.
    fleet.add([{"id": "limited", "interval_seconds": 3600, "prompt": "record"}])
    leader = fleet.leader()
    worker = fleet.worker()
    fleet.workers_registered(1)
    fleet.active_leader([leader])
    with fleet.engine.connect() as holder:
        holder.execute(
            text(
                "SELECT pg_advisory_lock(hashtext('scheduler-task/' || 'limited')), "
                "pg_advisory_lock(hashtext('scheduler-links/' || current_schema()))"
            )
        )
        holder.commit()
        fleet.cli("add", "--id", "limited", "--replace", "--schedule", "every 1 second",
                  "--prompt", "record", "--overlap", "skip",
                  "--metadata", json.dumps({"log": str(fleet.log)}))  # fmt: skip
        wait_until(
            lambda: fleet.count("max_running = 1 AND status = 'succeeded'") >= 2,
            timeout=30,
            message=f"runs with a limit: {fleet.rows('SELECT * FROM scheduler_runs')}",
        )
    fleet.stop(worker, leader)


def test_a_worker_hears_only_its_own_schemas_notifications(pg_schema_url: str) -> None:
    """Schedulers of two schemas of one database share the channel: each listener wakes for
    its own schema's queued runs only (it woke for every schema's, and claimed for nothing)."""
    import threading

    from scheduler.storage import Store
    from scheduler.storage.listen import CHANNEL, Listener
    from scheduler.storage.workers import notify

    store = Store(pg_schema_url)
    store.setup()
    woken = threading.Semaphore(0)
    listener = Listener(store, woken.release)
    listener.start()
    try:
        assert woken.acquire(timeout=10)  # the wake-up when it starts listening
        with store.transaction() as tx:
            notify(tx)
        assert woken.acquire(timeout=10), "its own schema's notification"
        other = create_engine(POSTGRES_URL)
        with other.begin() as conn:
            conn.execute(text("SELECT pg_notify(:c, 'another_schema')"), {"c": CHANNEL})
        other.dispose()
        assert not woken.acquire(timeout=2), "woken by another schema's notification"
    finally:
        listener.stop()
        store.close()
