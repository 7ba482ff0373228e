"""Which server run of its earlier attempts a retry on a LangGraph server adopts, and which
it cancels first (:func:`scheduler.remote_attempts.find_adoption`), against a stand-in
for the SDK's ``runs.list`` (newest first, paged, 404 for a thread never made)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from langgraph_sdk.errors import NotFoundError

from scheduler.enums import RunStatus, RunTrigger
from scheduler.records import RunRecord
from scheduler.remote_attempts import find_adoption

NOW = datetime(2026, 12, 6, tzinfo=UTC)


def attempt(run_id: str, status: RunStatus, thread: str) -> RunRecord:
    return RunRecord(
        id=run_id, task_id="t", status=status, scheduled_for=NOW, queued_at=NOW,
        started_at=NOW, finished_at=NOW, attempt=1, occurrences=1,
        trigger=RunTrigger.SCHEDULE, thread_id=thread, error_type=None, error_message=None,
        error_traceback=None, output=None,
    )  # fmt: skip


def server_run(n: int, status: str, of: str, thread: str = "T1") -> dict[str, Any]:
    """The ``n``-th run made on the server (a later one is newer)."""
    created = f"2026-12-06T00:{n // 60:02d}:{n % 60:02d}+00:00"
    metadata = {"scheduler_run_id": of}
    return {"run_id": f"r{n}", "thread_id": thread, "status": status, "metadata": metadata,
            "created_at": created}  # fmt: skip


class Runs:
    def __init__(self, runs: list[dict[str, Any]]) -> None:
        self.runs = runs
        self.asked: list[tuple[str, int]] = []

    async def list(
        self, thread: str, *, limit: int, offset: int, select: list[str]
    ) -> list[dict[str, Any]]:
        self.asked.append((thread, offset))
        mine = sorted(
            (r for r in self.runs if r["thread_id"] == thread),
            key=lambda r: r["created_at"],
            reverse=True,
        )
        if not mine:
            response = httpx.Response(404, request=httpx.Request("GET", "http://server"))
            raise NotFoundError("Thread not found", response=response, body=None)
        return [{k: r[k] for k in select} for r in mine[offset : offset + limit]]


class Client:
    def __init__(self, runs: list[dict[str, Any]]) -> None:
        self.runs = Runs(runs)


A = attempt("a", RunStatus.INTERRUPTED, "thread-a")
B = attempt("b", RunStatus.INTERRUPTED, "thread-b")
TIMED_OUT = attempt("a", RunStatus.TIMED_OUT, "thread-a")
FAILED = attempt("a", RunStatus.FAILED, "thread-a")
THREADS = {"thread-a": "T1", "thread-b": "T2"}


@pytest.mark.parametrize(
    ("attempts", "runs", "adopted", "stale"),
    [
        # the process died while its run went on, or after it succeeded there: adopted
        ([A], [server_run(1, "running", "a")], "r1", []),
        ([A], [server_run(1, "pending", "a")], "r1", []),
        ([A], [server_run(1, "success", "a")], "r1", []),
        # it ended otherwise there (cancelled, failed): a new run
        ([A], [server_run(1, "interrupted", "a")], None, []),
        ([A], [server_run(1, "error", "a")], None, []),
        # recorded failed here: only a run still going is adopted, not a success
        ([FAILED], [server_run(1, "success", "a")], None, []),
        ([FAILED], [server_run(1, "running", "a")], "r1", []),
        # timed out here: its deadline passed, the run still going there is cancelled
        ([TIMED_OUT], [server_run(1, "running", "a")], None, ["r1"]),
        # the newest run of the attempts counts; older ones still going are cancelled
        ([B, A], [server_run(1, "running", "a"), server_run(2, "running", "b", "T2")], "r2",
         ["r1"]),
        ([B, A], [server_run(1, "running", "a"), server_run(2, "error", "b", "T2")], None,
         ["r1"]),
        # another run's, or a run made before the process died: none
        ([A], [server_run(1, "running", "someone else")], None, []),
        ([A], [], None, []),
    ],
)  # fmt: skip
async def test_the_newest_run_of_the_earlier_attempts_is_adopted_if_it_can_be(
    attempts: list[RunRecord], runs: list[dict[str, Any]], adopted: str | None, stale: list[str]
) -> None:
    threads = {a.thread_id: THREADS[a.thread_id] for a in attempts if a.thread_id}
    found = await find_adoption(Client(runs), attempts, threads)
    assert (found.run or {}).get("run_id") == adopted
    assert [r["run_id"] for r in found.stale] == stale
    if found.run is not None:  # the retry goes on the thread of the attempt that made it
        assert found.thread == f"thread-{found.run['metadata']['scheduler_run_id']}"


async def test_an_attempts_run_is_found_behind_a_page_of_others() -> None:
    others = [server_run(n, "success", f"other-{n}") for n in range(2, 152)]
    client = Client([server_run(1, "running", "a"), *others])
    found = await find_adoption(client, [A], {"thread-a": "T1"})
    assert (found.run or {}).get("run_id") == "r1"
    assert client.runs.asked == [("T1", 0), ("T1", 100)]
