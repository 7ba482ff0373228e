"""The threads and runs endpoints of the LangGraph server that the SDK needs to see what a
cron did: ``threads.create`` / ``threads.search`` (threads made here, and the threads runs
used) and ``runs.list`` / ``runs.get`` on a thread, answered from the run history;
``threads.get`` with the thread's values (and ``threads.get_state``,
:mod:`scheduler.server.thread_state`) from the graph's checkpoints. A run's status in the
server's words: queued is ``pending``, succeeded ``success``, failed and interrupted
``error``, timed out ``timeout``, waiting, cancelled, skipped and missed ``interrupted``.
A thread id that is a UUID names its thread in any spelling, as on the server (see
:mod:`scheduler.storage.threads`).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from scheduler.control_characters import OneLineOrNone
from scheduler.enums import OverlapPolicy, RunStatus
from scheduler.exceptions import DefinitionError
from scheduler.limits import MAX_OFFSET, TEXT_LIMITS, check_json_value
from scheduler.pools import OWN
from scheduler.records import RunRecord
from scheduler.rows import decode, run_record
from scheduler.server.bodies import documented, read_body
from scheduler.server.containment import MetadataFilter
from scheduler.server.crons import assistant_of, scheduler_of
from scheduler.server.replies import StateReply
from scheduler.server.thread_metadata import shown_metadata, stored_metadata, thread_metadata
from scheduler.server.thread_state import read_state
from scheduler.storage.threads import (
    find_thread,
    insert_thread,
    made_threads,
    one_thread,
    run_threads,
    spellings,
    thread_statuses,
    usual_spelling,
)
from scheduler.task_scheduler import TaskScheduler

__all__ = ["router"]

router = APIRouter(tags=["LangGraph threads and runs (SDK)"])

_RUN_STATUS = {
    RunStatus.QUEUED: "pending",
    RunStatus.RUNNING: "running",
    RunStatus.WAITING: "interrupted",
    RunStatus.SUCCEEDED: "success",
    RunStatus.FAILED: "error",
    RunStatus.TIMED_OUT: "timeout",
    RunStatus.INTERRUPTED: "error",
    RunStatus.CANCELLED: "interrupted",
    # a queued run withdrawn before it started (its task paused): as a pending run cancelled
    # on the server; a run comes on its thread when it is queued (a skipped or missed
    # occurrence of a thread-less task is on none)
    RunStatus.SKIPPED: "interrupted",
    RunStatus.MISSED: "interrupted",
}


class ThreadIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    thread_id: OneLineOrNone = Field(
        default=None, min_length=1, max_length=TEXT_LIMITS["thread_id"]
    )
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] | None = None


ThreadField = Literal[
    "thread_id", "created_at", "updated_at", "state_updated_at", "metadata", "config",
    "context", "status", "values", "interrupts",
]  # fmt: skip
RunField = Literal[
    "run_id", "thread_id", "assistant_id", "created_at", "updated_at", "status", "metadata",
    "kwargs", "multitask_strategy", "cancel_reason", "langsmith_session_name",
]  # fmt: skip


class ThreadSearch(BaseModel):
    model_config = ConfigDict(extra="allow")

    ids: list[str] | None = Field(default=None, max_length=1000)
    metadata: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: int = Field(default=10, ge=1, le=1000, strict=True)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET, strict=True)
    sort_by: (
        Literal["thread_id", "status", "created_at", "updated_at", "state_updated_at"] | None
    ) = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[ThreadField] | None = None
    values: Any = None  # refused (_unsupported), not ignored
    extract: Any = None


# a thread's status in the LangGraph server's words, from the status of its newest run
# (storage.threads.thread_statuses), as langgraph dev answers: a run going makes it busy,
# one waiting at interrupt() or cancelled interrupted, one that failed an error; one done,
# or no run yet, idle
_THREAD_STATUS = {
    "queued": "busy",
    "running": "busy",
    "waiting": "interrupted",
    "cancelled": "interrupted",
    "failed": "error",
    "timed_out": "error",
    "interrupted": "error",
}


def _status_of(statuses: dict[str, str] | None, thread_id: str) -> str:
    """The thread's status in the server's words, from ``thread_statuses``."""
    return _THREAD_STATUS.get((statuses or {}).get(thread_id, ""), "idle")


def _thread(
    thread_id: str,
    metadata: dict[str, Any],
    created: float,
    updated: float,
    statuses: dict[str, str] | None = None,
) -> dict[str, Any]:
    made, last = datetime.fromtimestamp(created, UTC), datetime.fromtimestamp(updated, UTC)
    return {
        "thread_id": thread_id,
        "created_at": made.isoformat(),
        "updated_at": last.isoformat(),
        "state_updated_at": last.isoformat(),
        "metadata": metadata,
        "status": _status_of(statuses, thread_id),
        "config": {},
        "values": None,
    }


@router.post("/threads", summary="Create a thread", openapi_extra=documented(ThreadIn))
async def create_thread(request: Request) -> Any:
    body = await read_body(request, ThreadIn)
    extra = body.model_extra or {}  # (what it would make of the thread: not done here)
    _unsupported("threads create", supersteps=extra.get("supersteps"), ttl=extra.get("ttl"))
    scheduler = scheduler_of(request)
    thread_id = body.thread_id or str(uuid.uuid4())
    now = scheduler.now().timestamp()
    metadata = body.metadata or {}
    try:
        check_json_value(metadata)
    except ValueError as exc:
        raise HTTPException(422, f"metadata: {exc}") from None
    store = scheduler.store
    # one transaction: two requests for one id make one thread, the other finds it
    old = await OWN.run(insert_thread, store, thread_id, json.dumps(metadata), now)
    if old is None:
        return _thread(usual_spelling(thread_id), metadata, now, now)
    if body.if_exists == "do_nothing":  # the server's if_exists: raise (default) or do_nothing
        # the thread as it is, as threads.get answers it (its values, status, last change)
        thread = await _known_thread(scheduler, assistant_of(request), old[0])  # (None: gone)
        return StateReply(thread or _thread(old[0], stored_metadata(old[1]), old[2], old[2]))
    raise HTTPException(409, f"thread {old[0]} exists (if_exists: do_nothing keeps it)")


@router.post(
    "/threads/search",
    summary="Search threads (made here, or used by runs)",
    openapi_extra=documented(ThreadSearch),
)
async def search_threads(request: Request) -> StateReply:
    body = await read_body(request, ThreadSearch)
    _unsupported(values=body.values, extract=body.extract)
    store = scheduler_of(request).store
    made = await OWN.run(made_threads, store)
    # the default order (last change first) needs only the threads of the page's runs
    whole = body.ids is not None or body.sort_by not in (None, "updated_at", "state_updated_at")
    whole = whole or bool(body.metadata)  # (runs give threads metadata: every one is looked at)
    whole = whole or (body.sort_by is not None and body.sort_order == "asc")
    by_status = body.status is not None or body.sort_by == "status"
    whole = whole or by_status
    most = None if whole else body.offset + body.limit + len(made)
    used = await OWN.run(run_threads, store, limit=most)
    # the statuses of every thread when they filter or sort; else those of the page only
    statuses = await OWN.run(thread_statuses, store, None) if by_status else None
    times: dict[str, tuple[float, float]] = {t: (first, last) for t, first, last in used}
    used_ids = set(times)
    metadata: dict[str, dict[str, Any]] = {}
    for thread_id, metadata_json, created in made:
        last = max(times.get(thread_id, (created, created))[1], created)
        times[thread_id] = (created, last)
        metadata[thread_id] = stored_metadata(metadata_json)
    ids = {usual_spelling(i) for i in body.ids} if body.ids is not None else None
    listed = [
        (thread_id, span)
        for thread_id, span in sorted(times.items(), key=lambda item: item[1][0])
        if ids is None or usual_spelling(thread_id) in ids
    ]  # oldest first: equal keys stay in the order made, as the reference's stable sort
    graph = assistant_of(request)
    shown: dict[str, dict[str, Any]] | None = None
    if body.metadata:  # (else only the page's are read, below)
        listed_ids = [thread_id for thread_id, _ in listed]
        shown = await shown_metadata(store, graph, listed_ids, metadata, used_ids)
        known = shown  # (for mypy: the lambda's)
        listed = await MetadataFilter(body.metadata).select(listed, lambda i: known[i[0]])
    found = [_thread(t, {}, first, last, statuses) for t, (first, last) in listed]
    if body.status is not None:
        found = [thread for thread in found if thread["status"] == body.status]
    key = body.sort_by or "updated_at"  # the reference: no sort_by is updated_at, newest first
    found.sort(key=lambda t: t[key], reverse=body.sort_by is None or body.sort_order != "asc")
    page = found[body.offset : body.offset + body.limit]
    if shown is None:
        page_ids = [thread["thread_id"] for thread in page]
        shown = await shown_metadata(store, graph, page_ids, metadata, used_ids)
    for thread in page:
        thread["metadata"] = shown[thread["thread_id"]]
    if statuses is None and page:
        statuses = await OWN.run(thread_statuses, store, [t["thread_id"] for t in page])
        for thread in page:
            thread["status"] = _status_of(statuses, thread["thread_id"])
    if body.select is None or {"values", "interrupts"} & set(body.select):  # what runs left
        scheduler = scheduler_of(request)  # in the checkpoints
        for thread in page:
            if thread["thread_id"] in used_ids:
                thread["values"], thread["interrupts"] = await read_state(
                    scheduler, thread["thread_id"]
                )
    if body.select:
        page = [{k: v for k, v in t.items() if k in body.select} for t in page]
    return StateReply(page)  # (values: as the graph's values anywhere)


def _unsupported(where: str = "threads search", **fields: Any) -> None:
    """A 422 for a field this server cannot apply (the SDK omits an empty one): ignored, a
    search would answer threads that do not match, a create a thread not made as asked."""
    for name, value in fields.items():
        if value is not None and value != {} and value != []:
            raise HTTPException(422, f"{name}: not supported by this server's {where}")


class ThreadCount(BaseModel):
    model_config = ConfigDict(extra="allow")

    metadata: dict[str, Any] | None = None
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    values: Any = None  # refused (_unsupported), not ignored


@router.post("/threads/count", summary="Count threads", openapi_extra=documented(ThreadCount))
async def count_threads(request: Request) -> int:
    body = await read_body(request, ThreadCount)
    _unsupported(values=body.values)
    store = scheduler_of(request).store
    made = await OWN.run(made_threads, store)
    metadata = {thread_id: stored_metadata(stored) for thread_id, stored, _ in made}
    used = {thread_id for thread_id, _, _ in await OWN.run(run_threads, store, limit=None)}
    counted = metadata.keys() | used
    if body.metadata:  # (runs give threads metadata: the graph's, their task's)
        graph = assistant_of(request)
        shown = await shown_metadata(store, graph, counted, metadata, used)
        counted = set(await MetadataFilter(body.metadata).select(counted, shown.__getitem__))
    if body.status is not None:
        statuses = await OWN.run(thread_statuses, store, None)
        counted = {t for t in counted if _status_of(statuses, t) == body.status}
    return len(counted)


def _task_of(scheduler: TaskScheduler, task_id: str) -> tuple[str, dict[str, Any]]:
    """What a run shows of its task (reads it): the LangGraph server's ``multitask_strategy``
    (``reject`` when the task skips an occurrence while its previous run goes, else
    ``enqueue``) and the task's metadata (a removed task: the setting, ``{}``)."""
    policy, metadata = scheduler.settings.overlap, {}
    row = scheduler.store.get_task(task_id)
    if row is not None:
        with contextlib.suppress(DefinitionError):  # a row that does not load: as removed
            task = decode(row)
            policy, metadata = task.overlap or policy, task.metadata
    return ("reject" if policy == OverlapPolicy.SKIP else "enqueue"), metadata


def _run(
    run: RunRecord, graph: tuple[str, str], task: tuple[str, dict[str, Any]]
) -> dict[str, Any]:
    """A run in the LangGraph server's shape; its metadata is the task's, with the graph's
    and the scheduler's ids, as the server's has the cron's."""
    updated = run.finished_at or run.started_at or run.queued_at
    strategy, metadata = task
    return {
        "run_id": run.id,
        "thread_id": run.thread_id,
        "assistant_id": graph[1],
        "created_at": run.queued_at.isoformat(),
        "updated_at": updated.isoformat(),
        "status": _RUN_STATUS.get(run.status, "error"),
        "metadata": {
            **metadata,
            "graph_id": graph[0],
            "assistant_id": graph[1],
            "task_id": run.task_id,
            "scheduled_for": run.scheduled_for.isoformat(),
        },
        "kwargs": {},
        "multitask_strategy": strategy,
    }


@router.get("/threads/{thread_id:path}/runs", summary="The runs on a thread, newest first")
async def list_thread_runs(
    request: Request,
    thread_id: str,
    limit: int = 10,
    offset: int = 0,
    status: str | None = None,
    select: Annotated[list[RunField] | None, Query()] = None,
) -> list[dict[str, Any]]:
    scheduler = scheduler_of(request)
    store = scheduler.store
    graph = assistant_of(request)
    tasks: dict[str, tuple[str, dict[str, Any]]] = {}
    limit, offset = min(max(limit, 1), 1000), min(max(offset, 0), MAX_OFFSET)

    def page() -> list[dict[str, Any]]:  # a status filters before the page is cut
        found: list[dict[str, Any]] = []
        start, step = (offset, limit) if status is None else (0, 1000)
        while True:
            rows = store.thread_runs(thread_id, limit=step, offset=start)
            for row in rows:
                if row.task_id not in tasks:
                    tasks[row.task_id] = _task_of(scheduler, row.task_id)
            runs = (_run(run_record(r), graph, tasks[r.task_id]) for r in rows)
            found += [r for r in runs if status is None or r["status"] == status]
            if status is None or len(rows) < step or len(found) >= offset + limit:
                return found if status is None else found[offset : offset + limit]
            start += step

    known = await OWN.run(find_thread, store, thread_id)
    if known is None:
        raise HTTPException(404, f"no thread {thread_id!r}")
    thread_id = known  # (read by page)
    runs = await OWN.run(page)
    if select:
        return [{k: v for k, v in run.items() if k in select} for run in runs]
    return runs


@router.get("/threads/{thread_id:path}/runs/{run_id}", summary="One run on a thread")
async def get_thread_run(request: Request, thread_id: str, run_id: str) -> dict[str, Any]:
    scheduler = scheduler_of(request)
    run = await scheduler.aget_run(run_id)
    if run.thread_id not in spellings(thread_id):
        raise HTTPException(404, f"no run {run_id!r} on thread {thread_id!r}")
    return _run(run, assistant_of(request), await OWN.run(_task_of, scheduler, run.task_id))


# last of the routes: a thread id may hold "/" ({thread_id:path}), so this one would take
# ".../runs" for an id
@router.get("/threads/{thread_id:path}", summary="One thread (made here, or used by runs)")
async def get_thread(request: Request, thread_id: str) -> StateReply:
    thread = await _known_thread(scheduler_of(request), assistant_of(request), thread_id)
    if thread is None:
        raise HTTPException(404, f"no thread {thread_id!r}")
    return StateReply(thread)


async def _known_thread(
    scheduler: TaskScheduler, graph: tuple[str, str], thread_id: str
) -> dict[str, Any] | None:
    """The thread asked for as ``thread_id`` as ``threads.get`` answers it (with its
    values, its status, its last change, its metadata with ``graph``'s ids once runs used
    it); None: no such thread."""
    found = await OWN.run(one_thread, scheduler.store, thread_id)
    if found is None:
        return None
    thread_id, made, used = found
    statuses = await OWN.run(thread_statuses, scheduler.store, [thread_id])
    if made is None:
        assert used is not None
        ids = [thread_id]
        [metadata] = (await shown_metadata(scheduler.store, graph, ids, {}, ids)).values()
        thread = _thread(thread_id, metadata, used[0], used[1], statuses)
    else:
        last = max(made[1], used[1]) if used is not None else made[1]
        metadata = thread_metadata(stored_metadata(made[0]), used is not None, graph)
        thread = _thread(thread_id, metadata, made[1], last, statuses)
    if used is not None:  # runs used it: its values are what its checkpoints hold
        thread["values"], thread["interrupts"] = await read_state(scheduler, thread_id)
    return thread
