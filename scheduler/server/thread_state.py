"""A thread's state, as the LangGraph server answers ``threads.get_state``: what the graph's
checkpointer holds for the thread (the scheduler's runs of a task with that ``thread_id``
write it), so an SDK client reads what a cron produced where it would on the LangGraph
server. The values are encoded as the server encodes them (a message as its
``model_dump()``); a thread with no checkpoint yet answers empty values, as the server does.
"""

from __future__ import annotations

from typing import Any

import pydantic_core
from fastapi import APIRouter, HTTPException, Request

from scheduler.exceptions import GraphLoadError
from scheduler.pools import OWN
from scheduler.server.crons import scheduler_of
from scheduler.server.replies import JsonReply
from scheduler.storage.threads import find_thread
from scheduler.task_scheduler import TaskScheduler

__all__ = ["StateReply", "read_values", "router"]

router = APIRouter(tags=["LangGraph threads and runs (SDK)"])

_EMPTY: dict[str, Any] = {
    "values": {}, "next": [], "tasks": [], "metadata": None, "created_at": None,
    "checkpoint": None, "parent_checkpoint": None, "interrupts": [], "checkpoint_id": None,
    "parent_checkpoint_id": None,
}  # fmt: skip


async def _snapshot(scheduler: TaskScheduler, thread_id: str) -> Any:
    """The graph's state snapshot of the thread; None if it has no checkpoint.

    Raises:
        HTTPException: 503, the graph cannot be loaded or keeps no checkpoints.
    """
    try:
        graph = await OWN.run(scheduler.graph)  # loaded on first use: imports, off the loop
    except GraphLoadError as exc:
        raise HTTPException(503, f"the graph cannot be loaded: {exc}") from None
    if not hasattr(graph, "aget_state"):
        raise HTTPException(503, "the graph has no state to read (it has no aget_state)")
    try:
        snapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})
    except ValueError as exc:  # "No checkpointer set": a graph compiled without, none injected
        raise HTTPException(
            503,
            f"the graph keeps no checkpoints ({exc}); set SCHEDULER_INJECT_CHECKPOINTER=true "
            "or compile it with a checkpointer",
        ) from None
    except Exception as exc:  # a LangGraph server's graph: that server did not answer
        raise HTTPException(503, f"cannot read the thread's state: {exc!r}"[:500]) from None
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
                "error": None if task.error is None else repr(task.error),
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
    try:
        snapshot = await _snapshot(scheduler, thread_id)
    except HTTPException:
        return None
    return None if snapshot is None else _state(snapshot)["values"]


@router.get("/threads/{thread_id:path}/state", summary="A thread's state (its latest checkpoint)")
async def get_thread_state(request: Request, thread_id: str) -> JsonReply:
    scheduler = scheduler_of(request)
    known = await OWN.run(find_thread, scheduler.store, thread_id)  # in any UUID spelling
    if known is None:
        raise HTTPException(404, f"no thread {thread_id!r}")
    snapshot = await _snapshot(scheduler, known)
    return StateReply(_EMPTY if snapshot is None else _state(snapshot))


class StateReply(JsonReply):
    """A state encoded as the LangGraph server encodes it: a message (any pydantic model)
    as its ``model_dump()``, a value JSON has no form for as its ``str()``."""

    def render(self, content: Any) -> bytes:
        return pydantic_core.to_json(content, fallback=str)
