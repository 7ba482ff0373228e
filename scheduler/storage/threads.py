"""The threads made through the HTTP API (the LangGraph SDK's ``threads.create``), and the
threads runs used, for ``threads.search``.

A thread id that is a UUID is read as the LangGraph server reads it: any spelling of the
UUID (upper case, braces, no hyphens) names the thread, which the API makes in the usual
spelling (:func:`usual_spelling`). A thread known in the spelling asked for (a task's
``thread_id``, kept as written: a checkpointer reads it as text) is that one first.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Iterable

from sqlalchemy import bindparam, func, insert, or_, select
from sqlalchemy.exc import IntegrityError

from scheduler.fresh_threads import is_fresh
from scheduler.storage.links import chunks
from scheduler.storage.schema import runs_table, tasks_table, threads_table
from scheduler.storage.store import Store
from scheduler.storage.transaction import Transaction

__all__ = [
    "find_thread",
    "first_tasks",
    "insert_thread",
    "made_threads",
    "one_thread",
    "run_threads",
    "spellings",
    "thread_statuses",
    "threads_in_use",
    "usual_spelling",
]

_MADE = select(threads_table.c.thread_id, threads_table.c.metadata, threads_table.c.created_at)
_ONE = select(threads_table.c.metadata, threads_table.c.created_at).where(
    threads_table.c.thread_id == bindparam("thread_id")
)
_TIMES = select(func.min(runs_table.c.queued_at), func.max(runs_table.c.queued_at)).where(
    runs_table.c.thread_id == bindparam("thread_id")
)
_RUN_ON = select(runs_table.c.id).where(runs_table.c.thread_id == bindparam("thread_id")).limit(1)


def usual_spelling(thread_id: str) -> str:
    """``thread_id`` as the LangGraph server answers a UUID (``str(uuid.UUID(...))``: lower
    case, hyphens, no braces); another id as it is."""
    try:
        return str(uuid.UUID(thread_id))
    except ValueError:
        return thread_id


def spellings(thread_id: str) -> list[str]:
    """The spellings a thread asked for as ``thread_id`` is looked up in: as asked, then
    the usual one."""
    usual = usual_spelling(thread_id)
    return [thread_id] if usual == thread_id else [thread_id, usual]


def insert_thread(
    store: Store, thread_id: str, metadata_json: str, created_at: float
) -> tuple[str, str, float] | None:
    """Remember a thread made through the HTTP API, in one transaction, in the usual
    spelling. If it exists in any of its :func:`spellings` (made before, or by another
    request meanwhile, or used by a run: no metadata, made when its first run was
    queued), nothing is written and its (id, metadata JSON, created at) is returned."""
    usual = usual_spelling(thread_id)
    with store.transaction() as tx:
        conn = tx._conn  # the storage package's own transaction
        for known in spellings(thread_id):
            found = conn.execute(_ONE, {"thread_id": known}).first()
            if found is not None:
                return known, found[0], found[1]
            used = conn.execute(_TIMES, {"thread_id": known}).first()
            if used is not None and used[0] is not None:
                return known, "{}", used[0]
        try:
            with tx.savepoint():
                conn.execute(
                    insert(threads_table),
                    {"thread_id": usual, "metadata": metadata_json, "created_at": created_at},
                )
        except IntegrityError:  # made meanwhile by another transaction (PostgreSQL)
            found = conn.execute(_ONE, {"thread_id": usual}).first()
    return None if found is None else (usual, found[0], found[1])


def find_thread(store: Store, thread_id: str) -> str | None:
    """The spelling in which the thread asked for as ``thread_id`` was made through the
    HTTP API or used by a run (the first of its :func:`spellings`); None: no such thread."""
    with store._reading() as conn:
        for known in spellings(thread_id):
            params = {"thread_id": known}
            if conn.execute(_ONE, params).first() is not None:
                return known
            if conn.execute(_RUN_ON, params).first() is not None:
                return known
    return None


def one_thread(
    store: Store, thread_id: str
) -> tuple[str, tuple[str, float] | None, tuple[float, float] | None] | None:
    """One thread (asked for as ``thread_id``): its id as known (see :func:`find_thread`),
    (metadata JSON, created at) if made through the HTTP API, and (first queued, last
    queued) of its runs if runs used it; None: no such thread."""
    with store._reading() as conn:
        for known in spellings(thread_id):
            params = {"thread_id": known}
            made = conn.execute(_ONE, params).first()
            used = conn.execute(_TIMES, params).first()
            if made is not None or (used is not None and used[0] is not None):
                return (
                    known,
                    None if made is None else (made[0], made[1]),
                    None if used is None or used[0] is None else (used[0], used[1]),
                )
    return None


def made_threads(store: Store) -> list[tuple[str, str, float]]:
    """The threads made through the HTTP API: (id, metadata JSON, created at)."""
    with store._reading() as conn:
        return [(t, m, c) for t, m, c in conn.execute(_MADE)]


def run_threads(store: Store, *, limit: int | None) -> list[tuple[str, float, float]]:
    """The threads runs used, newest first: (id, first queued, last queued); the ``limit``
    newest (None: all)."""
    query = (
        select(
            runs_table.c.thread_id,
            func.min(runs_table.c.queued_at),
            func.max(runs_table.c.queued_at),
        )
        .where(runs_table.c.thread_id.is_not(None))
        .group_by(runs_table.c.thread_id)
        .order_by(func.max(runs_table.c.queued_at).desc())
        .limit(limit)
    )
    with store._reading() as conn:
        return [(t, a, b) for t, a, b in conn.execute(query)]


def first_tasks(store: Store, ids: Collection[str]) -> dict[str, str]:
    """Of each thread of ``ids`` that runs used: the task of its first run (the run that
    made it, as the LangGraph server's run makes a thread it does not find), or of its
    oldest run kept."""
    wanted = set(ids)
    # many (a search by metadata looks at every thread): one walk of the thread index
    # instead of an IN list per 500, kept to the threads asked for
    walk = len(wanted) > _ONE_WALK
    filters = (
        [runs_table.c.thread_id.is_not(None)]
        if walk
        else [runs_table.c.thread_id.in_(chunk) for chunk in chunks(sorted(wanted))]
    )
    found: dict[str, str] = {}
    with store._reading() as conn:
        for which in filters:
            first = (
                select(func.min(runs_table.c.id)).where(which).group_by(runs_table.c.thread_id)
            )  # run ids sort by creation
            rows = select(runs_table.c.thread_id, runs_table.c.task_id).where(
                runs_table.c.id.in_(first)
            )
            found.update(
                (thread_id, task_id)
                for thread_id, task_id in conn.execute(rows)
                if not walk or thread_id in wanted
            )
    return found


_ONE_WALK = 2000  # threads asked for, from which one query over all of them is quicker


# runs that say what their thread did last (a skipped or missed occurrence ran nothing on it)
_RAN = ("waiting", "succeeded", "failed", "timed_out", "cancelled", "interrupted")


def thread_statuses(store: Store, ids: Iterable[str] | None) -> dict[str, str]:
    """Of each thread of ``ids`` (None: every thread runs used) that runs used: the status
    of its newest run that is going (``queued`` or ``running``, first found), else of its
    newest run that ran; a thread runs used only to skip or miss has none."""
    found: dict[str, str] = {}
    going = select(runs_table.c.thread_id, runs_table.c.status).where(
        runs_table.c.status.in_(("queued", "running")), runs_table.c.thread_id.is_not(None)
    )  # few, by the status index
    newest = func.row_number().over(
        partition_by=runs_table.c.thread_id, order_by=runs_table.c.id.desc()
    )  # run ids sort by creation
    ran = select(runs_table.c.thread_id, runs_table.c.status, newest.label("n")).where(
        runs_table.c.status.in_(_RAN), runs_table.c.thread_id.is_not(None)
    )
    wanted = None if ids is None else set(ids)
    with store._reading() as conn:
        for thread_id, status in conn.execute(going):
            if wanted is None or thread_id in wanted:
                found.setdefault(thread_id, status)
        if wanted is not None and not wanted - found.keys():
            return found
        for chunk in [None] if wanted is None else chunks(sorted(wanted - found.keys())):
            query = ran if chunk is None else ran.where(runs_table.c.thread_id.in_(chunk))
            last = query.subquery()
            rows = conn.execute(select(last.c.thread_id, last.c.status).where(last.c.n == 1))
            for thread_id, status in rows:
                found.setdefault(thread_id, status)
    return found


def threads_in_use(tx: Transaction, own: Collection[tuple[str, str]]) -> set[str]:
    """Those of the fresh threads of ``own`` (``(run id, thread id)``) that something else
    still names: a task's definition (its ``thread_id``, whatever the case of its letters),
    another run's record, or ``threads.create``. A fresh thread a task adopted (an agent's
    follow-up in the run's conversation, a cron made on the thread) goes on being used
    after the run that began it is pruned."""
    wanted = {thread for _, thread in own}
    if not wanted:
        return set()
    conn = tx._conn  # the storage package's own transaction
    used: set[str] = set()
    for chunk in chunks(sorted(wanted)):
        runs = select(runs_table.c.id, runs_table.c.thread_id).where(
            runs_table.c.thread_id.in_(chunk)
        )
        used.update(thread for run_id, thread in conn.execute(runs) if not is_fresh(run_id, thread))
        made = select(threads_table.c.thread_id).where(threads_table.c.thread_id.in_(chunk))
        used.update(row[0] for row in conn.execute(made))
    lowered = {thread.lower(): thread for thread in wanted}
    definitions = select(tasks_table.c.definition).where(
        or_(*(tasks_table.c.definition.contains(key) for key in ("thread_id", "session_id")))
    )
    for (definition,) in conn.execute(definitions):
        try:
            stored = json.loads(definition)
            named = stored.get("thread_id") or stored.get("session_id")
            names = [named] if isinstance(named, str) else []
        except (ValueError, AttributeError):  # a row that does not load: read it as text
            names = [thread for thread in wanted if thread.lower() in definition.lower()]
        used.update(lowered[name.lower()] for name in names if name.lower() in lowered)
    return used
