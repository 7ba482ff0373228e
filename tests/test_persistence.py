"""Restarts in a new process on the same SQLite file: definitions, paused state and next
run times survive, and occurrences missed while down are run once (or recorded missed)."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYTHON, ROOT

pytestmark = pytest.mark.slow


def child(db: Path, *args: str, timeout: float = 60) -> str:
    """Run ``python -m tests.child DB ...`` to completion and return its stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCHEDULER_POLL_INTERVAL_SECONDS": "0.1"}
    done = subprocess.run(
        [PYTHON, "-m", "tests.child", str(db), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def listed(db: Path) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in json.loads(child(db, "list"))}


def iso(moment: datetime) -> str:
    return moment.isoformat()


def test_definitions_paused_state_and_next_runs_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "scheduler.db"
    future = datetime.now(UTC) + timedelta(days=2)
    tasks = [
        {
            "id": "cron",
            "cron_expression": "0 9 * * 1-5",
            "prompt": "p",
            "timezone": "Europe/Paris",
            "metadata": {"team": "ops"},
            "priority": "high",
        },
        {"id": "interval", "interval_seconds": 3600, "prompt": "p"},
        {"id": "once", "run_at": iso(future), "prompt": "p", "thread_id": "t-1"},
        {"id": "off", "interval_seconds": 60, "prompt": "p", "enabled": False},
    ]
    child(db, "add", json.dumps(tasks))
    child(db, "pause", "interval")
    child(db, "serve", "1")  # a started scheduler in between must not change anything
    first = listed(db)
    child(db, "serve", "1")
    second = listed(db)
    assert second == first
    assert first["cron"]["state"] == "active"
    assert first["cron"]["definition"]["metadata"] == {"team": "ops"}
    assert first["cron"]["definition"]["priority"] == "high"
    assert first["interval"]["paused"] is True and first["interval"]["next_run"] is None
    assert datetime.fromisoformat(first["once"]["next_run"]) == future
    assert first["once"]["definition"]["thread_id"] == "t-1"
    assert first["off"]["state"] == "disabled"
    next_cron = datetime.fromisoformat(first["cron"]["next_run"]).astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Paris")
    )
    assert (next_cron.hour, next_cron.minute) == (9, 0)


_CLOSE_WHILE_WRITING = """
import sys, threading
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict
from scheduler.langgraph_json import LangGraphConfig
from scheduler.persistence import prepare_graph

class State(TypedDict):
    x: str

builder = StateGraph(State)
builder.add_node("n", lambda state: state)
builder.add_edge(START, "n")
graph = builder.compile()
for rep in range(60):
    prepared = prepare_graph(
        graph, database_url=f"sqlite:///{sys.argv[1]}/{rep}.db", config=LangGraphConfig()
    )
    config = {"configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": "c"}}

    def write() -> None:
        try:
            while True:
                prepared.checkpointer.put_writes(config, [("ch", "x" * 1000)] * 20, "task")
                prepared.store.inner.put(("ns",), "k", {"v": "x" * 1000})
        except Exception:  # the connection closed under it: an error, not a crash
            return

    threads = [threading.Thread(target=write) for _ in range(3)]
    for thread in threads:
        thread.start()
    threading.Event().wait(0.005)
    prepared.close()
    for thread in threads:
        thread.join()
print("closed", rep + 1)
"""


def test_closing_the_injected_sqlite_persistence_while_graph_threads_write(
    tmp_path: Path,
) -> None:
    """A run's threads still writing checkpoints while the scheduler stops get an error from
    the closed connection; closing it under them crashed the interpreter (exit 139)."""
    done = subprocess.run(
        [PYTHON, "-c", _CLOSE_WHILE_WRITING, str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "closed 60"
