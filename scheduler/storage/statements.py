"""The read statements behind the API's per-request reads, built once with bound
parameters: building a SQLAlchemy statement (and its cache key) costs several times more
than running it (``task_stats`` of one task: 0.93 ms built per call, 0.22 ms prebuilt)."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Select, bindparam, case, func, select

from scheduler.storage.schema import (
    OPEN_STATUSES,
    deliveries_table,
    meta_table,
    runs_table,
    tasks_table,
)

__all__ = [
    "CANCELS_HERE",
    "CANCELS_OF",
    "COUNTS",
    "COUNT_TASKS",
    "DELIVERIES",
    "OPEN_TASKS",
    "REVISION",
    "SELECT_RUN",
    "STATS_OF_TASK",
    "THREAD_RUNS",
    "runs_query",
    "stats_query",
]

REVISION = select(meta_table.c.value).where(meta_table.c.key == "revision")
COUNT_TASKS = select(func.count()).select_from(tasks_table)
SELECT_RUN = select(runs_table).where(runs_table.c.id == bindparam("run_id"))
DELIVERIES = (
    select(deliveries_table)
    .where(deliveries_table.c.run_id == bindparam("run_id"))
    .order_by(deliveries_table.c.id)
)
# running (and waiting) runs another process asked to cancel: of the active process's own
# (no worker) and of one worker
_ASKED = (
    runs_table.c.cancel_requested.is_not(None),
    runs_table.c.status.in_(["running", "waiting"]),
)
CANCELS_HERE = select(runs_table.c.id).where(*_ASKED, runs_table.c.worker.is_(None))
CANCELS_OF = select(runs_table.c.id).where(*_ASKED, runs_table.c.worker == bindparam("worker"))
THREAD_RUNS = (
    select(runs_table)
    .where(runs_table.c.thread_id == bindparam("thread_id"))
    .order_by(runs_table.c.id.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)


def stats_query(counts: Select[Any]) -> Select[Any]:
    """Run count and last outcome per task of ``counts`` (the grouped count, filtered)."""
    sub = counts.subquery()
    return select(
        sub.c.task_id,
        sub.c.n,
        sub.c.last_id,
        runs_table.c.queued_at,
        runs_table.c.status,
        runs_table.c.error_message,
    ).join(runs_table, runs_table.c.id == sub.c.last_id)


_FINISHED = case((runs_table.c.status.not_in(["skipped", "queued", "running"]), runs_table.c.id))
COUNTS = select(
    runs_table.c.task_id,
    func.count().label("n"),
    func.coalesce(func.max(_FINISHED), func.max(runs_table.c.id)).label("last_id"),
).group_by(runs_table.c.task_id)
STATS_OF_TASK = stats_query(COUNTS.where(runs_table.c.task_id == bindparam("task_id")))
# the tasks with a run not final yet
OPEN_TASKS = select(runs_table.c.task_id).where(runs_table.c.status.in_(OPEN_STATUSES)).distinct()


@functools.cache
def runs_query(*, task: bool, statuses: bool, limit: bool) -> Select[Any]:
    """Runs newest first, filtered by the bound ``task_id`` / ``statuses`` (expanding) and
    the first ``offset`` skipped, cut at ``limit`` if asked: one statement per combination."""
    query = select(runs_table).order_by(runs_table.c.id.desc())
    if task:
        query = query.where(runs_table.c.task_id == bindparam("task_id"))
    if statuses:
        query = query.where(runs_table.c.status.in_(bindparam("statuses", expanding=True)))
    if limit:
        query = query.limit(bindparam("limit"))
    return query.offset(bindparam("offset"))
