"""A scheduler process that dies while its run goes on on a LangGraph server (``kill -9``;
to the server, a host that vanished looks the same): the server's run goes on, and the
retry at the next start adopts it instead of running the graph a second time. A real
``langgraph dev`` and real scheduler processes (``python -m scheduler serve``)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client

from scheduler import RunStatus, Settings, TaskDefinition, TaskScheduler
from scheduler.remote import server_thread_id
from tests.conftest import PYTHON, ROOT, LangGraphDev, eventually

# one xdist worker runs every test of the group (--dist loadgroup): one langgraph dev (a
# session fixture), started once
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("langgraph-dev")]


class Serve:
    """``python -m scheduler serve`` on ``directory``'s database, its output in a file."""

    def __init__(self, directory: Path, env: dict[str, str], name: str) -> None:
        self.log = directory / f"{name}.log"
        with self.log.open("wb") as output:
            self.process = subprocess.Popen(
                [PYTHON, "-m", "scheduler", "serve"], cwd=directory, env=env,
                stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def end(self, how: signal.Signals) -> str:
        if self.process.poll() is None:
            self.process.send_signal(how)
        self.process.wait(timeout=60)
        return self.log.read_text(errors="replace")


def _serving(langgraph_dev: LangGraphDev, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``serve`` on ``tmp_path``'s database, its graph on the server."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("SCHEDULER_")},
        "PYTHONPATH": str(ROOT),
        "SCHEDULER_DB_PATH": str(tmp_path / "scheduler.db"),
        "SCHEDULER_GRAPH": f"{langgraph_dev.url}#tally",
        "SCHEDULER_TASKS_FILE": "none",
        **extra,
    }


@pytest.mark.parametrize("vanished", [False, True], ids=["killed", "vanished"])
async def test_a_server_run_of_a_scheduler_that_died_is_adopted_by_the_retry_not_run_again(
    langgraph_dev: LangGraphDev, tmp_path: Path, vanished: bool
) -> None:
    """Killed during the run, or vanished (frozen with SIGSTOP, its connection open, killed
    once the server's run succeeded): the graph runs once, and the retry records its end.
    Before, a killed one's run was cancelled by the server when its client went away
    (half-way through the graph), and a vanished one's ran to its end; either way the
    retry ran the graph again."""
    calls = tmp_path / "calls.txt"
    env = _serving(langgraph_dev, tmp_path, SCHEDULER_MAX_RETRIES="1")
    env["SCHEDULER_RETRY_DELAY_SECONDS"] = "0.1"
    settings = Settings(_env_file=None, graph=env["SCHEDULER_GRAPH"])  # type: ignore[call-arg]
    here = TaskScheduler(db_path=tmp_path / "scheduler.db", settings=settings)
    try:
        here.add_task(TaskDefinition(id="tally", interval_seconds=3600, prompt=f"{calls} 5"))
        first = here.run_task_now("tally")  # queued: the process below starts it
        killed = Serve(tmp_path, env, "killed")
        try:
            await eventually(calls.exists, timeout=60, message="the graph called on the server")
            if vanished:
                killed.process.send_signal(signal.SIGSTOP)
                thread = server_thread_id(str(here.get_run(first).thread_id))
                async with get_client(url=langgraph_dev.url) as client:

                    async def done() -> bool:
                        runs = await client.runs.list(thread)
                        return bool(runs) and runs[0]["status"] == "success"

                    await eventually(done, timeout=60, message="the server's run done")
        finally:
            killed.end(signal.SIGKILL)  # while the server's run goes on, or once it ended
        assert here.get_run(first).status is RunStatus.RUNNING
        again = Serve(tmp_path, env, "again")
        try:

            async def retried() -> object:
                runs = here.list_runs("tally")
                return len(runs) == 2 and runs[0].status.is_final and runs[0]

            retry = await eventually(retried, timeout=60, message="the retry's end")
        finally:
            log = again.end(signal.SIGTERM)
        interrupted = here.get_run(first)
    finally:
        here.close()
    assert calls.read_text().splitlines() == ["called"], log  # the graph ran once
    assert interrupted.status is RunStatus.INTERRUPTED
    assert (retry.status, retry.attempt, retry.output) == (
        RunStatus.SUCCEEDED,
        2,
        "tallied 1",
    ), (retry.error_message, log)
    assert retry.thread_id == interrupted.thread_id  # where the adopted run was
    assert "adopts the server's run" in log
    assert interrupted.thread_id is not None
    async with get_client(url=langgraph_dev.url) as client:
        runs = await client.runs.list(server_thread_id(interrupted.thread_id))
    assert [(r["status"], r["metadata"]["scheduler_run_id"]) for r in runs] == [("success", first)]


@pytest.mark.parametrize("ending", ["killed", "vanished", "failed"])
async def test_with_no_retry_left_the_server_run_of_a_scheduler_that_died_is_watched_again(
    langgraph_dev: LangGraphDev, tmp_path: Path, ending: str
) -> None:
    """``max_retries: 0``: the next start makes no new attempt, but watches the run's server
    run again (still going, or done once the process that watched it died) and records its
    end on the run itself: the graph ran once, and its outcome is the run's. Before, the
    run was recorded ``interrupted`` while its server run went on to succeed, unwatched;
    and one whose server run failed before the next start was ``interrupted``, not
    ``failed``."""
    calls = tmp_path / "calls.txt"
    env = _serving(langgraph_dev, tmp_path, SCHEDULER_MAX_RETRIES="0")
    settings = Settings(_env_file=None, graph=env["SCHEDULER_GRAPH"])  # type: ignore[call-arg]
    here = TaskScheduler(db_path=tmp_path / "scheduler.db", settings=settings)
    prompt = f"{calls} 3 fail" if ending == "failed" else f"{calls} 5"
    server_end = "error" if ending == "failed" else "success"
    try:
        here.add_task(TaskDefinition(id="tally", interval_seconds=3600, prompt=prompt))
        first = here.run_task_now("tally")
        killed = Serve(tmp_path, env, "killed")
        try:
            await eventually(calls.exists, timeout=60, message="the graph called on the server")
            thread = server_thread_id(str(here.get_run(first).thread_id))
            if ending == "vanished":  # frozen, its connection open
                killed.process.send_signal(signal.SIGSTOP)
            else:
                killed.end(signal.SIGKILL)
            if ending != "killed":  # the server's run ends before the next start looks
                async with get_client(url=langgraph_dev.url) as client:

                    async def done() -> bool:
                        runs = await client.runs.list(thread)
                        return bool(runs) and runs[0]["status"] == server_end

                    await eventually(done, timeout=60, message="the server's run done")
        finally:
            killed.end(signal.SIGKILL)
        again = Serve(tmp_path, env, "again")
        try:
            ended = await eventually(
                lambda: (run := here.get_run(first)).status.is_final and run,
                timeout=60,
                message="the run's end",
            )
        finally:
            log = again.end(signal.SIGTERM)
        runs = here.list_runs("tally")
    finally:
        here.close()
    assert calls.read_text().splitlines() == ["called"], log  # the graph ran once
    assert [r.id for r in runs] == [first], log  # no new attempt
    if ending == "failed":
        assert (ended.status, ended.attempt) == (RunStatus.FAILED, 1), (ended, log)
        assert "failed on the server" in str(ended.error_message), ended.error_message
    else:
        assert (ended.status, ended.attempt, ended.output) == (
            RunStatus.SUCCEEDED, 1, "tallied 1"
        ), (ended.error_message, log)  # fmt: skip
    assert "1 watched again on the LangGraph server" in log
    assert "adopts the server's run" in log
    async with get_client(url=langgraph_dev.url) as client:
        server_runs = await client.runs.list(thread)
    assert [(r["status"], r["metadata"]["scheduler_run_id"]) for r in server_runs] == [
        (server_end, first)
    ]


async def test_an_attempts_server_run_is_found_behind_more_than_a_thousand_newer_runs(
    langgraph_dev: LangGraphDev,
) -> None:
    """A thread with 1,200 runs made after the attempt's: its run is still found (and
    adopted) by the look-up, which pages back to the attempt's start. Before, only the
    newest 1,000 runs of a thread were read: the retry started the graph a second time."""
    from datetime import UTC, datetime

    from scheduler import RunTrigger
    from scheduler.records import RunRecord
    from scheduler.remote_attempts import find_adoption

    now = datetime.now(UTC)
    attempt = RunRecord(
        id="attempt-1", task_id="tally", status=RunStatus.INTERRUPTED, scheduled_for=now,
        queued_at=now, started_at=now, finished_at=now, attempt=1, occurrences=1,
        trigger=RunTrigger.MANUAL, thread_id="busy", error_type=None, error_message=None,
        error_traceback=None, output=None,
    )  # fmt: skip
    thread = server_thread_id("busy")
    async with get_client(url=langgraph_dev.url) as client:
        await client.threads.create(thread_id=thread)
        try:

            async def make(n: int) -> dict[str, Any]:
                return await client.runs.create(  # held back: they stay pending
                    thread, "counter", input={"messages": []}, after_seconds=3600,
                    multitask_strategy="enqueue", metadata={"n": n} if n else
                    {"scheduler_run_id": "attempt-1"},
                )  # fmt: skip

            made = await make(0)
            for batch in range(12):
                await asyncio.gather(*(make(1 + batch * 100 + i) for i in range(100)))
            found = await find_adoption(client, [attempt], {"busy": thread})
        finally:
            await client.threads.delete(thread)
    assert found.run is not None and found.run["run_id"] == made["run_id"]
    assert found.thread == "busy"
