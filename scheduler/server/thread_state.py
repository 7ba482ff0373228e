"""A thread's state, as the LangGraph server answers ``threads.get_state``: what the graph's
checkpointer holds for the thread (the scheduler's runs of a task with that ``thread_id``
write it), so an SDK client reads what a cron produced where it would on the LangGraph
server. The values are encoded as the server encodes them (a message as its
``model_dump()``); a thread with no checkpoint yet answers empty values, as the server does.
``threads.get_history`` answers the thread's checkpoints, newest first, each as a state
(none yet: ``[]``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from scheduler.exceptions import GraphLoadError
from scheduler.pools import OWN
from scheduler.server.bodies import documented, read_body
from scheduler.server.crons import scheduler_of
from scheduler.server.replies import JsonReply, StateReply
from scheduler.server.thread_metadata import stored_metadata
from scheduler.storage.threads import find_thread, one_thread
from scheduler.task_scheduler import TaskScheduler

__all__ = ["StateReply", "read_state", "read_values", "router"]

router = APIRouter(tags=["LangGraph threads and runs (SDK)"])

_EMPTY: dict[str, Any] = {
    "values": {}, "next": [], "tasks": [], "metadata": None, "created_at": None,
    "checkpoint": None, "parent_checkpoint": None, "interrupts": [], "checkpoint_id": None,
    "parent_checkpoint_id": None,
}  # fmt: skip


async def _graph(scheduler: TaskScheduler, reads: str = "aget_state") -> Any:
    """The scheduler's graph, loaded (off the loop) on first use; it must have ``reads``.

    Raises:
        HTTPException: 503, the graph cannot be loaded or has no state to read.
    """
    try:
        graph = await OWN.run(scheduler.graph)  # loaded on first use: imports, off the loop
    except GraphLoadError as exc:
        raise HTTPException(503, f"the graph cannot be loaded: {exc}") from None
    if not hasattr(graph, reads):  # (a LangGraph server's graph keeps no history here)
        raise HTTPException(503, f"the graph has no state to read (it has no {reads})")
    return graph


def _unreadable(exc: Exception, metadata: dict[str, Any] | None = None) -> HTTPException:
    """The answer to a graph's failure to read a thread's checkpoints: a 503; a 422 for
    a ``metadata`` filter the checkpointer refuses (SQLite's takes keys of letters,
    digits, ``_ . -`` only)."""
    text = str(exc)
    if isinstance(exc, ValueError) and metadata and "filter key" in text:
        return HTTPException(422, f"metadata: this server's checkpointer cannot filter so: {text}")
    if isinstance(exc, ValueError) and text == "No checkpointer set":  # (compiled without)
        return HTTPException(
            503,
            f"the graph keeps no checkpoints ({exc}); set SCHEDULER_INJECT_CHECKPOINTER=true "
            "or compile it with a checkpointer",
        )
    return HTTPException(503, f"cannot read the thread's state: {exc!r}"[:500])  # a server's


async def _snapshot(
    scheduler: TaskScheduler, thread_id: str, checkpoint: dict[str, str] | None = None
) -> Any:
    """The graph's state snapshot of the thread (at ``checkpoint``, its ``checkpoint_id``
    and ``checkpoint_ns``, else its latest); None if it has no such checkpoint.

    Raises:
        HTTPException: 503, the graph cannot be loaded or keeps no checkpoints.
    """
    graph = await _graph(scheduler)
    config = {"configurable": {**(checkpoint or {}), "thread_id": thread_id}}
    try:
        snapshot = await graph.aget_state(config)
    except Exception as exc:  # a LangGraph server's graph: that server did not answer
        raise _unreadable(exc) from None
    if snapshot is None or getattr(snapshot, "created_at", None) is None:
        return None
    return snapshot


def _checkpoint(config: Any) -> dict[str, Any] | None:
    configurable = (config or {}).get("configurable") or {}
    if configurable.get("checkpoint_id") is None:
        return None
    return {
        "checkpoint_id": configurable["checkpoint_id"],
        "thread_id": configurable.get("thread_id"),
        "checkpoint_ns": configurable.get("checkpoint_ns", ""),
    }


def _interrupts(found: Any) -> list[dict[str, Any]]:
    return [{"value": i.value, "id": i.id} for i in found or ()]


def _error_text(error: Any) -> str | None:
    """A task's error as the server shows it: the exception's ``repr()``; one read back
    from a checkpointer is that text already (it was quoted a second time)."""
    if error is None or isinstance(error, str):
        return error
    return repr(error)


def _state(snapshot: Any) -> dict[str, Any]:
    """The LangGraph server's ThreadState of a snapshot."""
    checkpoint, parent = _checkpoint(snapshot.config), _checkpoint(snapshot.parent_config)
    values = snapshot.values
    return {
        "values": values if values is not None else {},
        "next": list(snapshot.next or ()),
        "tasks": [
            {
                "id": task.id,
                "name": task.name,
                "error": _error_text(task.error),
                "interrupts": _interrupts(task.interrupts),
                "checkpoint": None,
                "state": None,
                "result": getattr(task, "result", None),
            }
            for task in snapshot.tasks or ()
        ],
        "metadata": snapshot.metadata,
        "created_at": snapshot.created_at,
        "checkpoint": checkpoint,
        "parent_checkpoint": parent,
        "interrupts": _interrupts(snapshot.interrupts),
        "checkpoint_id": checkpoint["checkpoint_id"] if checkpoint else None,
        "parent_checkpoint_id": parent["checkpoint_id"] if parent else None,
    }


async def read_values(scheduler: TaskScheduler, thread_id: str) -> Any:
    """A thread's values as ``threads.get`` shows them: None if it has no checkpoint (or
    they cannot be read: the thread is still shown, as it is without them)."""
    return (await read_state(scheduler, thread_id))[0]


async def read_state(scheduler: TaskScheduler, thread_id: str) -> tuple[Any, dict[str, Any]]:
    """A thread's values and interrupts as ``threads.get`` shows them: the interrupts by
    the id of the task that raised them (``{}`` when it waits at none), as the LangGraph
    server keeps them on a thread when a run ends; None and ``{}`` if it has no checkpoint
    (or it cannot be read)."""
    try:
        snapshot = await _snapshot(scheduler, thread_id)
    except HTTPException:
        return None, {}
    if snapshot is None:
        return None, {}
    state = _state(snapshot)
    asked = {task["id"]: task["interrupts"] for task in state["tasks"] if task["interrupts"]}
    return state["values"], asked


@router.get("/threads/{thread_id:path}/state", summary="A thread's state (its latest checkpoint)")
async def get_thread_state(request: Request, thread_id: str) -> JsonReply:
    return await _state_at(request, thread_id, None)


async def _state_at(
    request: Request, thread_id: str, checkpoint: dict[str, str] | None
) -> StateReply:
    """``threads.get_state``: the thread's state at ``checkpoint`` (None: its latest);
    empty values if it has no such checkpoint, as the LangGraph server answers: for a
    thread with a graph (runs used it, or its metadata names a ``graph_id``), the
    checkpoint asked for as the state's ``checkpoint`` (as the graph's empty snapshot
    echoes its config there), for another the empty state."""
    scheduler = scheduler_of(request)
    found = await OWN.run(one_thread, scheduler.store, thread_id)  # in any UUID spelling
    if found is None:
        raise HTTPException(404, f"no thread {thread_id!r}")
    known, made, used = found
    snapshot = await _snapshot(scheduler, known, checkpoint)
    if snapshot is not None:
        return StateReply(_state(snapshot))
    graph = used is not None or (made is not None and "graph_id" in stored_metadata(made[0]))
    if not graph or checkpoint is None or "checkpoint_id" not in checkpoint:
        return StateReply(_EMPTY)
    asked = {"checkpoint_id": checkpoint["checkpoint_id"], "thread_id": known}
    if "checkpoint_ns" in checkpoint:
        asked["checkpoint_ns"] = checkpoint["checkpoint_ns"]
    return StateReply({**_EMPTY, "checkpoint": asked, "checkpoint_id": asked["checkpoint_id"]})


class CheckpointIn(BaseModel):
    """``POST /threads/{thread_id}/state/checkpoint``: ``threads.get_state(checkpoint=...)``
    (``subgraphs`` is not applied: subgraphs' states are not read here)."""

    model_config = ConfigDict(extra="allow")

    checkpoint: dict[str, Any]


@router.post(
    "/threads/{thread_id:path}/state/checkpoint",
    summary="A thread's state at a checkpoint (threads.get_state(checkpoint=...))",
    openapi_extra=documented(CheckpointIn),
)
async def post_thread_state_at(request: Request, thread_id: str) -> JsonReply:
    body = await read_body(request, CheckpointIn)
    return await _state_at(request, thread_id, _configurable(body.checkpoint, "checkpoint"))


@router.get(
    "/threads/{thread_id:path}/state/{checkpoint_id}",
    summary="A thread's state at a checkpoint (threads.get_state(checkpoint_id=...))",
)
async def get_thread_state_at(request: Request, thread_id: str, checkpoint_id: str) -> JsonReply:
    return await _state_at(request, thread_id, {"checkpoint_id": checkpoint_id})


class HistoryIn(BaseModel):
    """``POST /threads/{thread_id}/history``: the SDK's fields (``select`` is not applied,
    as the LangGraph server does not: every field is answered)."""

    model_config = ConfigDict(extra="allow")

    limit: int = Field(default=10, ge=1, le=1000, strict=True)
    before: str | dict[str, Any] | None = None  # a checkpoint id, a Checkpoint or a config
    metadata: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None  # (a subgraph's namespace, a checkpoint)
    select: list[str] | None = None


def _configurable(value: dict[str, Any], field: str) -> dict[str, str]:
    """The checkpoint keys of ``value`` (a Checkpoint, or a config holding one)."""
    inner = value.get("configurable", value)
    if not isinstance(inner, dict):
        raise HTTPException(422, f"{field}: configurable is not an object")
    keys = {k: inner[k] for k in ("checkpoint_id", "checkpoint_ns") if inner.get(k) is not None}
    if not all(isinstance(v, str) for v in keys.values()):
        raise HTTPException(422, f"{field}: checkpoint_id and checkpoint_ns are text")
    return keys


async def _history(request: Request, thread_id: str, body: HistoryIn) -> StateReply:
    scheduler = scheduler_of(request)
    known = await OWN.run(find_thread, scheduler.store, thread_id)  # in any UUID spelling
    if known is None:
        raise HTTPException(404, f"no thread {thread_id!r}")
    config = {"configurable": {**_configurable(body.checkpoint or {}, "checkpoint"),
                               "thread_id": known}}  # fmt: skip
    before = None
    if body.before is not None:
        given = {"checkpoint_id": body.before} if isinstance(body.before, str) else body.before
        before = {"configurable": {**_configurable(given, "before"), "thread_id": known}}
    graph = await _graph(scheduler, "aget_state_history")
    states = []
    try:
        found = graph.aget_state_history(
            config, filter=body.metadata or None, before=before, limit=body.limit
        )
        async for snapshot in found:
            states.append(_state(snapshot))
    except Exception as exc:
        raise _unreadable(exc, body.metadata) from None
    return StateReply(states)


@router.post(
    "/threads/{thread_id:path}/history",
    summary="A thread's states, newest first (its checkpoints)",
    openapi_extra=documented(HistoryIn),
)
async def post_thread_history(request: Request, thread_id: str) -> JsonReply:
    return await _history(request, thread_id, await read_body(request, HistoryIn))


@router.get("/threads/{thread_id:path}/history", summary="A thread's states, newest first")
async def get_thread_history(
    request: Request,
    thread_id: str,
    limit: int = Query(default=10, ge=1, le=1000),
    before: str | None = None,
) -> JsonReply:
    return await _history(request, thread_id, HistoryIn(limit=limit, before=before))
