"""The native REST API (``/api/...``): what the Python API does, as JSON.

Tasks: create (a ``TaskDefinition`` as JSON, ``schedule:`` strings included), get, list
(``source``, ``state``, ``limit``, ``offset``), patch (the fields to change), delete
(``?force=true`` if others run after it), pause, resume, run now. Runs: list (``task_id``,
``status``, ``limit``, ``offset``), get, cancel (a running run, in this process or
another; 409 when it is not running), answer (a ``waiting`` run; 409 when it is not
waiting, or is answered already). ``/api/schedules/preview`` shows a schedule's next
fire times. A list of
tasks answers ``{"items": [...], "total": N, "limit": L, "offset": O}``; of runs, the same
without ``total`` (a count of a long history on every page). Tasks made here have
source ``http``. A callback set here must come from a module listed in
``SCHEDULER_CALLBACK_MODULES`` (importing a module runs its code), then passes the callback
policy as everywhere. A task id is one path segment, percent-encoded (``quote(id,
safe="")``); a stored id with ``/`` in it (the id rules refuse it, a row written otherwise
may have it) is reached as well, ``%2F`` or ``/``.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from scheduler.documents import key_given_twice
from scheduler.enums import RunStatus, TaskState
from scheduler.exceptions import DependencyError, RunNotWaitingError, TaskNotRunnableError
from scheduler.limits import MAX_OFFSET
from scheduler.models import CALLBACK_FIELDS, TaskDefinition
from scheduler.pools import OWN
from scheduler.task_scheduler import TaskScheduler
from scheduler.zones import unknown_zone_message, zone_or_none

__all__ = ["HTTP_SOURCE", "router"]

router = APIRouter(prefix="/api", tags=["tasks and runs"])

HTTP_SOURCE = "http"


def _scheduler(request: Request) -> TaskScheduler:
    scheduler: TaskScheduler = request.app.state.scheduler
    return scheduler


def _validate(
    request: Request, data: dict[str, Any], before: TaskDefinition | None = None
) -> TaskDefinition:
    """The task of ``data``; a callback it sets (or changes from ``before``) must come from
    a module of ``SCHEDULER_CALLBACK_MODULES`` (:meth:`CallbackPolicy.check_remote`)."""
    settings = _scheduler(request).settings
    if data.get("request") != (before.request if before is not None else None):
        raise HTTPException(422, "request: set by the crons API only (/runs/crons)")
    task = TaskDefinition.model_validate(data, context={"timezone": settings.timezone})
    for field in CALLBACK_FIELDS:
        path = getattr(task, field)
        if path is not None and path != getattr(before, field, None):
            settings.callback_policy().check_remote(path, field=field)
    return task


async def _once_each(request: Request) -> None:
    """Refuse a key given twice in the body, as the CLI's JSON flags and a tasks file do
    (the last one was taken, unseen; a proxy reading the first would disagree)."""
    if (key := key_given_twice(await request.body())) is not None:
        raise HTTPException(422, f"{key}: given twice in one object of the body; give it once")


def _page(items: list[Any], limit: int, offset: int) -> dict[str, Any]:
    return {
        "items": items[offset : offset + limit],
        "total": len(items),
        "limit": limit,
        "offset": offset,
    }


@router.get("/tasks", summary="List tasks")
async def list_tasks(
    request: Request,
    source: str | None = None,
    state: TaskState | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
) -> dict[str, Any]:
    tasks = await _scheduler(request).alist_tasks(source=source)
    items = [t.to_dict() for t in tasks if state is None or t.state is state]
    return _page(items, limit, offset)


@router.post("/tasks", status_code=201, summary="Create a task (409 if the id exists)")
async def create_task(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    await _once_each(request)
    scheduler = _scheduler(request)
    info = await scheduler.aadd_task(
        _validate(request, body), replace_existing=False, source=HTTP_SOURCE
    )
    return info.to_dict()


@router.patch("/tasks/{task_id:path}", summary="Change some fields of a task")
async def patch_task(request: Request, task_id: str, body: dict[str, Any]) -> dict[str, Any]:
    await _once_each(request)
    if "id" in body and body["id"] != task_id:
        raise HTTPException(422, "id: a task's id cannot change")

    def edit(before: TaskDefinition) -> TaskDefinition:  # in the write's transaction
        data = before.model_dump(mode="json", exclude_none=True)
        if any(k in body for k in ("schedule", "cron_expression", "interval_seconds", "run_at")):
            for key in ("task_type", "cron_expression", "interval_seconds", "run_at"):
                data.pop(key, None)
        # (a request is the crons API's: sent whole, refused unless unchanged)
        return _validate(request, merge_patch(data, body, whole={"request"}), before)

    try:
        updated = await _scheduler(request).aedit_task(task_id, edit)
    except TaskNotRunnableError as exc:
        raise HTTPException(409, str(exc)) from None
    return updated.to_dict()


def merge_patch(
    target: dict[str, Any], patch: dict[str, Any], *, whole: Collection[str] = ()
) -> dict[str, Any]:
    """``patch`` applied to ``target`` as RFC 7386 says: an object merges into the object
    there (a key sent as null goes), any other value replaces it, as does one of ``whole``.
    (It goes only as deep as ``target``, a stored definition: a patch nested deeper is
    not recursed into.)"""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict) and key not in whole:
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


@router.delete("/tasks/{task_id:path}", status_code=204, summary="Remove a task")
async def delete_task(request: Request, task_id: str, force: bool = False) -> Response:
    try:
        await _scheduler(request).aremove_task(task_id, force=force)
    except DependencyError as exc:  # others run after it: the task's state, not the request
        raise HTTPException(409, str(exc)) from None
    return Response(status_code=204)


@router.post("/tasks/{task_id:path}/pause", summary="Pause a task")
async def pause_task(request: Request, task_id: str) -> dict[str, Any]:
    return (await _scheduler(request).apause_task(task_id)).to_dict()


@router.post("/tasks/{task_id:path}/resume", summary="Resume a task")
async def resume_task(request: Request, task_id: str) -> dict[str, Any]:
    return (await _scheduler(request).aresume_task(task_id)).to_dict()


@router.post("/tasks/{task_id:path}/run", status_code=202, summary="Run a task now")
async def run_task(request: Request, task_id: str) -> dict[str, Any]:
    scheduler = _scheduler(request)
    run_id = await scheduler.arun_task_now(task_id)
    return (await scheduler.aget_run(run_id)).to_dict()


@router.get("/tasks/{task_id:path}/next", summary="A task's next fire times")
async def next_times(
    request: Request, task_id: str, count: int = Query(default=5, ge=1, le=100)
) -> list[str]:
    return [t.isoformat() for t in await _scheduler(request).anext_run_times(task_id, count)]


# (after .../next: a task id may hold "/", in a row written before the id rules or by
# someone else, so {task_id:path} would take "x/next" for an id)
@router.get("/tasks/{task_id:path}", summary="Get a task")
async def get_task(request: Request, task_id: str) -> dict[str, Any]:
    return (await _scheduler(request).aget_task(task_id)).to_dict()


@router.get("/runs", summary="List runs, newest first")
async def list_runs(
    request: Request,
    task_id: str | None = None,
    status: RunStatus | None = None,
    limit: int = Query(default=50, ge=1, le=1000),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
) -> dict[str, Any]:
    runs = await _scheduler(request).alist_runs(task_id, status=status, limit=limit, offset=offset)
    return {"items": [r.to_dict() for r in runs], "limit": limit, "offset": offset}


@router.get("/runs/{run_id}", summary="Get a run, with its webhook deliveries")
async def get_run(request: Request, run_id: str) -> dict[str, Any]:

    scheduler = _scheduler(request)
    run = (await scheduler.aget_run(run_id)).to_dict()
    run["deliveries"] = await OWN.run(scheduler.store.deliveries, run_id)
    return run


@router.post("/runs/{run_id}/cancel", summary="Cancel a running run, or one waiting here")
async def cancel_run(request: Request, run_id: str) -> dict[str, Any]:
    scheduler = _scheduler(request)
    run = await scheduler.aget_run(run_id)
    if not await scheduler.acancel_run(run_id):
        raise HTTPException(
            409, f"run {run_id} is {run.status.value}, not running (nor waiting unanswered)"
        )
    return {"id": run_id, "cancelling": True}


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")  # (a misspelt key was dropped, unseen)

    value: Any


@router.post("/runs/{run_id}/answer", summary="Answer a run waiting at interrupt()")
async def answer_run(request: Request, run_id: str, body: Answer) -> dict[str, Any]:
    scheduler = _scheduler(request)
    try:
        await scheduler.aresume_run(run_id, body.value)
    except RunNotWaitingError as exc:  # answered already, running or finished: as a cancel
        raise HTTPException(409, str(exc)) from None
    except ValueError as exc:  # not JSON within the limits of task input
        raise HTTPException(422, f"value: {exc}") from None
    return (await scheduler.aget_run(run_id)).to_dict()


@router.get("/schedules/preview", summary="The next fire times of a schedule string")
async def preview(
    request: Request,
    schedule: str,
    timezone: str | None = None,
    tz: str | None = Query(default=None, description="the same as timezone (older name)"),
    count: int = Query(default=5, ge=1, le=100),
) -> dict[str, Any]:
    from scheduler.preview import preview as preview_of

    unknown = sorted(set(request.query_params) - {"schedule", "timezone", "tz", "count"})
    if unknown:  # (a misspelt timezone answered in the default zone, silently)
        raise HTTPException(
            422, f"{unknown[0]}: unknown parameter; this takes schedule, timezone and count"
        )
    if timezone is not None and tz is not None and timezone != tz:
        raise HTTPException(422, "timezone: given twice (timezone and tz) with two values")
    given = timezone if timezone is not None else tz
    if given is not None and zone_or_none(given) is None:  # (not the default, nor the schedule's)
        said = "is empty" if not given.strip() else unknown_zone_message(given)
        raise HTTPException(422, f"timezone: {said}")
    zone = given if given is not None else _scheduler(request).settings.timezone
    now = _scheduler(request).now().astimezone(UTC)
    shown = preview_of(schedule, timezone=zone, now=now, count=count)
    return {
        "schedule": schedule,
        "timezone": zone,
        "description": shown.description,
        "times": [t.isoformat() for t in shown.times],
        "passed": shown.passed,  # a one-time time not after now (add refuses it)
    }
