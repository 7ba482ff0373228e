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


def _embed(texts: list[str]) -> list[list[float]]:
    return [[float(len(text)), 1.0, 0.0] for text in texts]


def test_the_store_keeps_langgraph_json_ttl(tmp_path: Path) -> None:
    """``store.ttl`` of langgraph.json reaches the injected store: items get its default
    TTL, and an explicit ``ttl=`` is taken (it raised NotImplementedError)."""
    from langgraph.graph import START, MessagesState, StateGraph

    from scheduler.langgraph_json import LangGraphConfig
    from scheduler.persistence import prepare_graph

    builder = StateGraph(MessagesState)
    builder.add_node("n", lambda state: {})
    builder.add_edge(START, "n")
    config = LangGraphConfig(store={"ttl": {"default_ttl": 10, "refresh_on_read": True}})
    prepared = prepare_graph(
        builder.compile(), database_url=f"sqlite:///{tmp_path}/s.db", config=config
    )
    try:
        store = prepared.store
        store.put(("notes",), "default", {"v": 1})
        store.put(("notes",), "explicit", {"v": 2}, ttl=5)
        rows = store.inner.conn.execute(
            "SELECT key, ttl_minutes, expires_at IS NOT NULL FROM store ORDER BY key"
        ).fetchall()
    finally:
        prepared.close()
    assert [tuple(r) for r in rows] == [("default", 10.0, 1), ("explicit", 5.0, 1)]


@pytest.mark.postgres
def test_a_store_index_without_pgvector_leaves_a_store_without_search(
    pg_schema_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``store.index`` on a PostgreSQL without the pgvector extension: the store works
    without semantic search and says so (the scheduler did not start)."""
    import psycopg
    from langgraph.graph import START, MessagesState, StateGraph

    from scheduler.langgraph_json import LangGraphConfig
    from scheduler.persistence import prepare_graph

    with psycopg.connect(pg_schema_url.replace("postgresql+psycopg", "postgresql")) as conn:
        if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone():
            pytest.skip("this PostgreSQL has pgvector: nothing to fall back from")
    builder = StateGraph(MessagesState)
    builder.add_node("n", lambda state: {})
    builder.add_edge(START, "n")
    index = {"dims": 3, "embed": f"{__name__}:_embed", "fields": ["$"]}
    prepared = prepare_graph(
        builder.compile(),
        database_url=pg_schema_url,
        config=LangGraphConfig(store={"index": index}),
    )
    try:
        prepared.store.put(("notes",), "a", {"text": "hello"})
        assert prepared.store.get(("notes",), "a").value == {"text": "hello"}
    finally:
        prepared.close()
    assert "works without semantic search" in caplog.text


@pytest.mark.postgres
async def test_the_checkpointer_replaces_connections_lost_meanwhile(
    pg_schema_url: str, postgres_url: str
) -> None:
    """A database restart or an idle timeout ends the pool's connections: the next run
    gets a new one (each lost connection failed a run)."""
    import uuid

    from langchain_core.messages import AIMessage
    from langgraph.graph import START, MessagesState, StateGraph
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from scheduler.langgraph_json import LangGraphConfig
    from scheduler.persistence import prepare_graph

    builder = StateGraph(MessagesState)
    builder.add_node("n", lambda state: {"messages": [AIMessage("ok")]})
    builder.add_edge(START, "n")
    name = f"pool-{uuid.uuid4().hex[:10]}"
    url = f"{pg_schema_url}&application_name={name}"
    prepared = prepare_graph(builder.compile(), database_url=url, config=LangGraphConfig())
    admin = create_engine(postgres_url, poolclass=NullPool)
    try:
        config = {"configurable": {"thread_id": "t"}}
        await prepared.graph.ainvoke({"messages": [("user", "1")]}, config)
        with admin.begin() as conn:
            ended = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = :name"
                ),
                {"name": name},
            ).scalars()
            assert any(ended)
        for turn in range(2, 6):  # more runs than connections the pool held
            state = await prepared.graph.ainvoke({"messages": [("user", str(turn))]}, config)
        assert len(state["messages"]) == 10
    finally:
        prepared.close()
        admin.dispose()
