"""The LangGraph server's crons contract, so ``langgraph_sdk.get_client(url=...).crons``
works unchanged, and the threads / runs endpoints the SDK needs to see what a cron did.

A cron is a task like any other (source ``http:crons``): ``list``, the CLI and the
dashboard see it. Its id is the ``cron_id``; the request's fields are kept in the task's
``request`` to be answered back. ``assistant_id`` is the scheduler's graph: its id in
``langgraph.json`` or the default assistant's UUID the LangGraph server derives from it
(both are accepted, in searches too, where the reference server answers 422 to a name).
``multitask_strategy`` ``reject`` skips a firing while a run of the cron is going,
``enqueue`` queues it; ``interrupt`` and ``rollback`` are refused (422). A missing
schedule is a 422 naming the field (the reference answers 500). A cron REST or the CLI
made an interval or one-time task stays a cron (:mod:`scheduler.server.cron_tasks`).

Searches and counts are answered on the event loop from a list of every cron kept in
memory (:mod:`scheduler.server.cron_list`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from scheduler.exceptions import TaskNotFoundError
from scheduler.loader import default_graph_target
from scheduler.models import TaskDefinition
from scheduler.pools import OWN
from scheduler.records import TaskInfo
from scheduler.server.bodies import CronIn, CronPatch, CronSearch, documented, read_body
from scheduler.server.containment import MetadataFilter
from scheduler.server.cron_list import CronList, Crons, cron_of, cron_request, order_by
from scheduler.server.cron_tasks import cron_payload, cron_task, patched_task
from scheduler.server.replies import JsonReply
from scheduler.storage.threads import find_thread
from scheduler.task_scheduler import TaskScheduler

__all__ = ["CRONS_SOURCE", "SDK_HOT", "assistant_of", "graph_id", "router", "scheduler_of"]

router = APIRouter(tags=["LangGraph crons (SDK)"])

CRONS_SOURCE = "http:crons"
NAMESPACE_GRAPH = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")  # the LangGraph server's


# -- the graph -----------------------------------------------------------------------------


def graph_id(target: str | None, directory: Path | None = None) -> str:
    """The id of the scheduler's graph in ``langgraph.json`` (``agent`` when none says)."""
    directory = directory or Path.cwd()
    target = target or default_graph_target(directory)
    try:
        graphs = json.loads((directory / "langgraph.json").read_text()).get("graphs", {})
    except (OSError, ValueError, AttributeError):
        graphs = {}
    if not isinstance(graphs, dict):
        graphs = {}
    for gid, spec in graphs.items():
        path = spec.get("path") if isinstance(spec, dict) else spec
        if isinstance(path, str) and _same_target(path, target, directory):
            return str(gid)
    return str(next(iter(graphs))) if len(graphs) == 1 else "agent"


def _same_target(spec: str, target: str, directory: Path) -> bool:
    """``spec`` (of ``langgraph.json``) and ``target`` name one graph: the same file (a
    module's, or a path relative to ``directory``, or absolute) and attribute."""

    def norm(text: str) -> tuple[Path, str]:
        module, _, attr = text.strip().rpartition(":")
        if not module.endswith(".py") and "/" not in module:  # a module: its file here
            module = module.replace(".", "/") + ".py"
        return (directory / module).resolve(), attr.strip()

    return norm(spec) == norm(target)


def assistant_of(request: Request) -> tuple[str, str]:
    """(graph id, default assistant UUID) of the scheduler's graph."""
    cached = getattr(request.app.state, "assistant", None)
    if cached is None:
        gid = graph_id(request.app.state.settings.graph)
        cached = (gid, str(uuid.uuid5(NAMESPACE_GRAPH, gid)))
        request.app.state.assistant = cached
    return cached


def _check_assistant(request: Request, assistant_id: str) -> str:
    gid, assistant_uuid = assistant_of(request)
    if assistant_id not in (gid, assistant_uuid):
        raise HTTPException(
            422,
            f"assistant_id: this scheduler runs graph {gid!r} (assistant {assistant_uuid}); "
            f"{assistant_id!r} is not it",
        )
    return assistant_uuid


def scheduler_of(request: Request) -> TaskScheduler:
    scheduler: TaskScheduler = request.app.state.scheduler
    return scheduler


def cron_list_of(request: Request) -> CronList:
    """The app's kept list of crons (made on first use)."""
    state = request.app.state
    kept: CronList | None = getattr(state, "cron_list", None)
    if kept is None:
        kept = state.cron_list = CronList(scheduler_of(request), CRONS_SOURCE)
    return kept


# -- crons ---------------------------------------------------------------------------------


def _cron(info: TaskInfo) -> dict[str, Any]:
    """The SDK's Cron shape of a cron's task."""
    assert info.definition is not None
    next_run = info.next_run.timestamp() if info.next_run else None
    return cron_of(
        info.definition,
        next_run,
        info.paused,
        info.created_at.timestamp(),
        info.updated_at.timestamp(),
    )


def _is_cron(info: TaskInfo) -> bool:
    return info.definition is not None and cron_request(info.definition) is not None


async def _create(request: Request, body: CronIn, thread_id: str | None) -> dict[str, Any]:
    scheduler = scheduler_of(request)
    assistant = _check_assistant(request, body.assistant_id)
    cron_id = str(uuid.uuid4())
    sent = body.model_dump(mode="json", exclude_none=True)
    fields = {**sent, "thread_id": thread_id}
    if thread_id is None and body.on_run_completed is None:
        fields["on_run_completed"] = "delete"
    kept = {
        "kind": "cron",
        "assistant_id": assistant,
        "timezone": body.timezone,
        "on_run_completed": fields.get("on_run_completed"),
        "payload": cron_payload(sent, assistant, cron_id),
        "fields": fields,
    }
    task = cron_task(cron_id, fields, kept)
    before = scheduler.store.local_changes
    info = await scheduler.aadd_task(task, replace_existing=False, source=CRONS_SOURCE)
    cron = _cron(info)
    cron_list_of(request).follow(before, added=cron)
    return cron


@router.post(
    "/runs/crons",
    summary="Create a cron (a task on a fresh thread per run)",
    openapi_extra=documented(CronIn),
)
async def create_cron(request: Request) -> JsonReply:
    return JsonReply(await _create(request, await read_body(request, CronIn), None))


@router.post(
    "/threads/{thread_id:path}/runs/crons",
    summary="Create a cron on a thread",
    openapi_extra=documented(CronIn),
)
async def create_thread_cron(request: Request, thread_id: str) -> JsonReply:
    body = await read_body(request, CronIn)
    known = await OWN.run(find_thread, scheduler_of(request).store, thread_id)
    if known is None:  # (another spelling of a UUID: the thread in the spelling it has)
        raise HTTPException(404, f"no thread {thread_id!r} (make it with threads.create)")
    return JsonReply(await _create(request, body, known))


_SORT_KEYS = frozenset(
    {"cron_id", "assistant_id", "thread_id", "next_run_date", "end_time", "created_at",
     "updated_at"}
)  # fmt: skip


async def _matching(request: Request, body: CronSearch) -> tuple[Crons, list[int]]:
    """The kept list, and the positions in it of the matching crons in the order asked."""
    assistant = _check_assistant(request, body.assistant_id) if body.assistant_id else None
    key = body.sort_by or "created_at"
    if key not in _SORT_KEYS:
        raise HTTPException(422, f"sort_by: cannot sort by {key!r}")
    crons_of = cron_list_of(request)
    kept = crons_of.kept()
    if kept is None:
        kept = await OWN.run(crons_of.read)
    crons = kept.crons
    wanted = MetadataFilter(body.metadata or {})
    if assistant is None and body.thread_id is None and body.enabled is None and not wanted.wanted:
        found = list(range(len(crons)))
    else:
        found = [
            i
            for i, c in enumerate(crons)
            if (assistant is None or c["assistant_id"] == assistant)
            and (body.thread_id is None or c["thread_id"] == body.thread_id)
            and (body.enabled is None or c["enabled"] == body.enabled)
        ]
        if wanted.wanted:  # (bounded; the loop runs meanwhile, so on a copy of the list)
            kept = replace(kept, crons=(crons := list(crons)), encoded=list(kept.encoded))
            found = await wanted.select(found, lambda i: crons[i]["metadata"])
    descending = body.sort_order != "asc"
    if key != "created_at" or not descending:  # else: the kept order
        order = order_by(key)
        found.reverse()  # oldest first: equal keys stay in the order made, as the reference's
        found.sort(key=lambda i: order(crons[i]), reverse=descending)
    return kept, found


# Searches and counts come before the routes with a {cron_id}: routes are matched in order,
# and these are the ones an SDK client calls most.
@router.post("/runs/crons/search", summary="Search crons", openapi_extra=documented(CronSearch))
async def search_crons(request: Request) -> Response:
    body = await read_body(request, CronSearch)
    kept, found = await _matching(request, body)
    found = found[body.offset : body.offset + body.limit]
    if body.select:
        chosen = [{k: kept.crons[i].get(k) for k in body.select} for i in found]
        return JsonReply(chosen)
    body_bytes = b"[" + b",".join(kept.encoded[i] for i in found) + b"]"
    return Response(body_bytes, media_type="application/json")


@router.post("/runs/crons/count", summary="Count crons", openapi_extra=documented(CronSearch))
async def count_crons(request: Request) -> int:
    return len((await _matching(request, await read_body(request, CronSearch)))[1])


# served by the app's fast lane (scheduler.server.fast_lane): the calls an SDK makes most
SDK_HOT = (create_cron, search_crons, count_crons)


def _cron_id(cron_id: str) -> str:
    """``cron_id``, checked: 422 when it is no UUID, as the LangGraph server answers (this
    API makes UUIDs; one in another spelling, upper case say, is no cron's: 404)."""
    try:
        uuid.UUID(cron_id)
        return cron_id
    except ValueError:
        raise HTTPException(422, f"cron_id: {cron_id!r} is not a UUID") from None


async def _get_cron(request: Request, cron_id: str) -> TaskInfo:
    info = await scheduler_of(request).aget_task(cron_id)
    if not _is_cron(info):
        raise HTTPException(404, f"no cron {cron_id!r}")
    return info


@router.get("/runs/crons/{cron_id}", summary="Get a cron")
async def get_cron(request: Request, cron_id: str) -> JsonReply:
    cron_id = _cron_id(cron_id)
    usual = str(uuid.UUID(cron_id))  # a get finds it in any spelling, as the reference's
    try:
        return JsonReply(_cron(await _get_cron(request, cron_id)))
    except (HTTPException, TaskNotFoundError):
        if usual == cron_id:
            raise
    return JsonReply(_cron(await _get_cron(request, usual)))


@router.patch("/runs/crons/{cron_id}", summary="Update a cron", openapi_extra=documented(CronPatch))
async def update_cron(request: Request, cron_id: str) -> dict[str, Any]:
    body = await read_body(request, CronPatch)
    cron_id = _cron_id(cron_id)
    changes = body.model_dump(mode="json", exclude_unset=True)
    for fixed in ("thread_id", "assistant_id", "cron_id"):  # a cron stays where it is
        changes.pop(fixed, None)
    # null leaves a field as it is, as the SDK omits it; but end_time: null clears it
    changes = {k: v for k, v in changes.items() if v is not None or k == "end_time"}
    if not changes:  # as the LangGraph server answers
        raise HTTPException(400, "nothing to change: give at least one field (schedule, ...)")

    def edit(before: TaskDefinition) -> TaskDefinition:  # in the write's transaction
        return patched_task(cron_id, before, changes)

    scheduler = scheduler_of(request)
    updated = await scheduler.aedit_task(cron_id, edit)
    if updated.paused and changes.get("enabled"):
        updated = await scheduler.aresume_task(cron_id)
    return _cron(updated)


@router.delete("/runs/crons/{cron_id}", status_code=204, summary="Delete a cron")
async def delete_cron(request: Request, cron_id: str) -> Response:
    cron_id = _cron_id(cron_id)
    await _get_cron(request, cron_id)
    scheduler = scheduler_of(request)
    before = scheduler.store.local_changes
    await scheduler.aremove_task(cron_id)
    cron_list_of(request).follow(before, removed=cron_id)
    return Response(status_code=204)
