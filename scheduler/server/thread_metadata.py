"""A thread's metadata as the LangGraph server shows it (measured on ``langgraph dev``):
what ``threads.create`` gave it until a run goes on it, then the graph's ``graph_id`` and
``assistant_id`` too (over what the thread had, as the server writes them at each run); a
thread a run made (a cron's fresh thread, a task's ``thread_id`` that no
``threads.create`` made) has the metadata of that run's task with them, as the server's
run makes the thread it does not find from the cron's metadata. Read from the run history
and the task as it is now; nothing is written for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping
from typing import Any

from scheduler.documents import DocumentError, load_json
from scheduler.exceptions import DefinitionError
from scheduler.limits import MAX_JSON_DEPTH
from scheduler.pools import OWN
from scheduler.rows import decode
from scheduler.storage.store import Store
from scheduler.storage.threads import first_tasks

__all__ = ["shown_metadata", "stored_metadata", "thread_metadata"]


def stored_metadata(stored: str) -> dict[str, Any]:
    """A thread's metadata as ``threads.create`` stored it; ``{}`` for one that is not a
    JSON object within the limits (the database is not trusted)."""
    try:
        metadata = load_json(stored, what="thread metadata", max_depth=MAX_JSON_DEPTH)
    except DocumentError:
        return {}
    return metadata if isinstance(metadata, dict) else {}


def thread_metadata(
    made: dict[str, Any] | None,
    used: bool,
    graph: tuple[str, str],
    first: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A thread's metadata as the server shows it.

    Args:
        made: What ``threads.create`` gave it (None: no ``threads.create`` made it).
        used: Runs went on it.
        graph: (graph id, assistant UUID) of the scheduler's graph.
        first: The metadata of the task whose run made it (when ``made`` is None).
    """
    if not used:
        return made or {}
    own = made if made is not None else first or {}
    return {**own, "graph_id": graph[0], "assistant_id": graph[1]}


def _first_metadata(store: Store, thread_ids: Collection[str]) -> dict[str, dict[str, Any]]:
    """Of each thread of ``thread_ids`` that runs used: the metadata of the task of its
    first run, as the task is now (``{}``: a task removed, or a row that does not load)."""
    firsts = first_tasks(store, thread_ids)
    tasks: dict[str, dict[str, Any]] = {}
    for task_id in set(firsts.values()):
        tasks[task_id] = {}
        row = store.get_task(task_id)
        if row is not None:
            with contextlib.suppress(DefinitionError):  # a row that does not load: as removed
                tasks[task_id] = dict(decode(row).metadata)
    return {thread_id: tasks[task_id] for thread_id, task_id in firsts.items()}


async def shown_metadata(
    store: Store,
    graph: tuple[str, str],
    thread_ids: Collection[str],
    made: Mapping[str, dict[str, Any]],
    used: Collection[str],
) -> dict[str, dict[str, Any]]:
    """The metadata of each thread of ``thread_ids`` as the server shows it (see
    :func:`thread_metadata`), given what ``threads.create`` gave the threads it ``made``
    and the threads runs ``used``; the task of a first run is read (off the event loop)
    only for a thread runs made."""
    by_runs = [t for t in thread_ids if t in used and t not in made]
    firsts = await OWN.run(_first_metadata, store, by_runs) if by_runs else {}
    return {t: thread_metadata(made.get(t), t in used, graph, firsts.get(t)) for t in thread_ids}
