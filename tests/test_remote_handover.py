"""Runs on a LangGraph server whose owner changes while they go on: a process that lost the
lead on PostgreSQL (its lock's connection cut) to another. The server's run is left going
for the new owner's retry to adopt: the graph runs once. A real ``langgraph dev``, real
PostgreSQL and real scheduler processes (``python -m scheduler serve``)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from langgraph_sdk import get_sync_client

from scheduler import TaskScheduler
from scheduler.remote import server_thread_id
from tests.conftest import LangGraphDev
from tests.test_reliability import wait_until
from tests.test_workers import Fleet, _cut_the_lock_connection, _said

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.serial]


@pytest.fixture
def fleet(pg_schema_url: str, tmp_path: Path) -> Iterator[Fleet]:
    made = Fleet(pg_schema_url, tmp_path)
    try:
        yield made
    finally:
        made.close()


def _serve(fleet: Fleet, graph: str, poll: float) -> subprocess.Popen[str]:
    return fleet._spawn(
        ["-m", "scheduler", "serve"],
        SCHEDULER_ROLE="all",
        SCHEDULER_LOG_LEVEL="INFO",
        SCHEDULER_GRAPH=graph,
        SCHEDULER_POLL_INTERVAL_SECONDS=str(poll),
    )


def _hand_the_lead_over(
    fleet: Fleet, old: subprocess.Popen[str], new: subprocess.Popen[str]
) -> None:
    """Cut the old leader's lock connection until the new one takes over. Right after a
    cut, the old one's own poll may take its lock back first, when it comes before the new
    one's (about one cut in ten with a 1 s poll against 0.1 s): then it carries on (its
    epoch is still the last, it says "taken back"), and the lock is cut again."""
    for _ in range(5):
        _cut_the_lock_connection(fleet)
        try:
            wait_until(lambda: _said(fleet, new, "taking over"), 10, "the new one taking over")
            return
        except AssertionError:
            if not _said(fleet, old, "taken back"):
                raise
    raise AssertionError("the old leader took its lock back after every cut: " + fleet.logs())


@pytest.mark.parametrize(
    ("old_poll", "retry_delay"),
    [(6.0, 0.1), (1.0, 6.0)],
    ids=["adopted-before-the-old-owner-notices", "the-old-owner-notices-first"],
)
def test_a_server_run_of_a_process_that_lost_the_lead_is_adopted_not_cut_short(
    fleet: Fleet, langgraph_dev: LangGraphDev, old_poll: float, retry_delay: float
) -> None:
    """The old leader notices its loss at its next poll: after the new leader's retry
    adopted its server run, or before the retry looks. Either way the server's run goes on
    and the retry records its end: the graph ran once. Before, the old leader cancelled
    the server's run when it let go: the adopter's run ended ``interrupted`` (a failed
    retry), or the retry found it cancelled and ran the graph again."""
    calls = fleet.directory / "tally.txt"
    graph = f"{langgraph_dev.url}#tally"
    fleet.add(
        [
            {
                "id": "tally",
                "run_at": "2099-01-01T00:00:00Z",
                "prompt": f"{calls} 15",
                "max_retries": 1,
                "retry_delay_seconds": retry_delay,
            }
        ]
    )
    old = _serve(fleet, graph, poll=old_poll)
    wait_until(lambda: _said(fleet, old, "scheduler active on"), 60, "the old leader active")
    new = _serve(fleet, graph, poll=0.1)
    wait_until(lambda: _said(fleet, new, "stands by"), 60, "the new one standing by")
    here = TaskScheduler(database_url=fleet.url, graph=object())
    try:
        first = here.run_task_now("tally")
    finally:
        here.close()
    wait_until(calls.exists, 60, "the graph called on the server")
    _hand_the_lead_over(fleet, old, new)
    adopted, lost = "adopts the server's run", "to another process"
    if retry_delay < old_poll:
        wait_until(lambda: _said(fleet, new, adopted), 30, "the retry adopting")
        assert not _said(fleet, old, lost), "the old leader noticed first: " + fleet.logs()
    else:
        wait_until(lambda: _said(fleet, old, lost), 30, "the old leader letting go")
        assert not _said(fleet, new, adopted), "the retry looked first: " + fleet.logs()
    wait_until(
        lambda: fleet.count("status IN ('queued', 'running')") == 0 and fleet.count("true") == 2,
        60,
        "the retry's end",
    )
    runs = fleet.rows("SELECT * FROM scheduler_runs ORDER BY attempt")
    assert calls.read_text().splitlines() == ["called"], fleet.logs()  # the graph ran once
    assert [(r["id"], r["status"], r["attempt"]) for r in runs] == [
        (first, "interrupted", 1),
        (runs[1]["id"], "succeeded", 2),
    ], fleet.logs()
    assert runs[1]["output"] == "tallied 1"
    assert runs[1]["thread_id"] == runs[0]["thread_id"]  # where the adopted run was
    assert _said(fleet, old, lost) and _said(fleet, new, adopted)
    with get_sync_client(url=langgraph_dev.url) as client:
        server_runs = client.runs.list(server_thread_id(runs[0]["thread_id"]))
    assert [(r["status"], r["metadata"]["scheduler_run_id"]) for r in server_runs] == [
        ("success", first)
    ]
    fleet.stop(old)
    fleet.stop(new)
