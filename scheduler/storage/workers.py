"""The SQL of worker processes (PostgreSQL only): claims, heartbeats, the reaper's
queries, and the ``NOTIFY`` that wakes workers (they listen: :mod:`scheduler.storage.listen`).

A run row's ``worker`` column says who executes it: NULL, the active scheduler's own
process (role ``all``); ``"*"``, any worker (queued for a claim); otherwise the id of the
worker that claimed it. A claim takes queued ``"*"`` rows with ``FOR UPDATE SKIP LOCKED``
(workers never wait for each other's rows), in priority order. A row with ``max_running``
is claimed only while fewer of its task's runs are in progress; a transaction-scoped
advisory lock per task makes that count and the claim one step across all workers. The
runs of one thread (a task's ``thread_id``, written on its shared rows) take turns: a run
is claimed only while none of its thread is claimed or running, under a lock per thread.
Heartbeats and the reaper's lease use the database's clock, so clocks of machines may differ.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import String, all_, any_, bindparam, delete, func, select, text, update

from scheduler.storage.listen import CHANNEL
from scheduler.storage.schema import (
    MAX_TIMESTAMP,
    OPEN_STATUSES,
    RunRow,
    TaskRow,
    run_row,
    runs_table,
    task_row,
    tasks_table,
    workers_table,
)
from scheduler.storage.store import Store
from scheduler.storage.transaction import Transaction

__all__ = [
    "ANY_WORKER",
    "DATABASE_NOW",
    "adopt_waiting",
    "claim_runs",
    "freed_at",
    "in_progress",
    "notify",
    "reap_workers",
    "release_held",
    "share_runs",
]

ANY_WORKER = "*"

DATABASE_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::float8"
_ACTIVE = (
    "(status IN ('running', 'waiting') OR "
    "(status = 'queued' AND worker IS NOT NULL AND worker <> '*'))"
)
_TAKEN = "(status = 'running' OR (status = 'queued' AND worker IS NOT NULL AND worker <> '*'))"
_COUNT_ACTIVE = text(f"SELECT count(*) FROM scheduler_runs WHERE task_id = :task_id AND {_ACTIVE}")
# two keys (schema, task): that key space is not the one-key space of the leader's lock
_TASK_LOCK = text(
    "SELECT pg_try_advisory_xact_lock(hashtext('scheduler-task/' || current_schema()), "
    "hashtext(:task_id))"
)
# Queued runs any worker may take, best first; not those of a task at its limit of runs in
# progress, nor of a thread with a run claimed or running (without these filters they
# filled the scan and held up every run behind them).
# The runs in progress are few: counted once per claim, not per candidate. A row whose limit
# or delay cannot be a real one (written by someone else: 0, NaN, infinity) is taken too, so
# that the worker settles it as unreadable instead of leaving it queued for ever.
_CANDIDATES = text(
    "SELECT c.id, c.task_id, c.max_running, c.thread_id FROM scheduler_runs AS c "
    "LEFT JOIN (SELECT task_id, count(*) AS n FROM scheduler_runs "
    f"WHERE {_ACTIVE} GROUP BY task_id) AS a ON a.task_id = c.task_id "
    "WHERE c.status = 'queued' AND c.worker = '*' "
    "AND (c.not_before IS NULL OR c.not_before <= :now "
    "OR NOT (c.not_before >= 0 AND c.not_before <= :latest)) "
    "AND (c.max_running IS NULL OR c.max_running < 1 OR c.max_running > COALESCE(a.n, 0)) "
    "AND (c.thread_id IS NULL OR NOT EXISTS (SELECT 1 FROM scheduler_runs AS t "
    f"WHERE t.thread_id = c.thread_id AND {_TAKEN})) "
    "ORDER BY COALESCE(c.priority_rank, :rank), c.scheduled_for, c.id "
    "LIMIT :scan FOR UPDATE OF c SKIP LOCKED"
)
# A thread's runs take turns across workers, as in one process (two at once read one
# checkpoint; the later write drops the other's): claimed under a lock of the thread, while
# none of its runs is claimed or running
_THREAD_LOCK = text(
    "SELECT pg_try_advisory_xact_lock(hashtext('scheduler-thread/' || current_schema()), "
    "hashtext(:thread_id))"
)
_THREAD_BUSY = text(
    f"SELECT EXISTS (SELECT 1 FROM scheduler_runs WHERE thread_id = :thread_id AND {_TAKEN})"
)
# When a run held back by its task's limit could start: the last end of another run of the
# task that ran (a skipped or missed record held no place) since it was due; its catch-up
# window counts from then, as one process's buffer does
_FREED_AT = text(
    "SELECT max(finished_at) FROM scheduler_runs WHERE task_id = :task_id AND id <> :id "
    "AND started_at IS NOT NULL AND finished_at >= :since"
)


def _conn(tx: Transaction) -> Any:
    return tx._conn  # the storage package's own transaction


def in_progress(
    tx: Transaction, task_ids: Collection[str], *, besides: Collection[str] = ()
) -> dict[str, tuple[int, int]]:
    """Per task: its runs in progress anywhere (queued, running, waiting) and how many of
    those have not been claimed yet (queued for any worker or not shared); not counting
    the runs ``besides`` (those being admitted)."""
    if not task_ids:
        return {}
    unstarted = func.count().filter(
        (runs_table.c.status == "queued")
        & (runs_table.c.worker.is_(None) | (runs_table.c.worker == ANY_WORKER))
    )
    query = (
        select(runs_table.c.task_id, func.count(), unstarted)
        .where(runs_table.c.task_id == any_(_texts("task_ids", task_ids)))
        .where(runs_table.c.status.in_(OPEN_STATUSES))
        .where(runs_table.c.id != all_(_texts("besides", besides)))
        .group_by(runs_table.c.task_id)
    )
    return {
        task_id: (int(count), int(waiting or 0))
        for task_id, count, waiting in _conn(tx).execute(query)
    }


def _texts(name: str, values: Collection[str]) -> Any:
    """``values`` as one array parameter (a dispatch's thousands of ids: one parameter, not
    one each, which PostgreSQL parses in a third of the time)."""
    from sqlalchemy.dialects.postgresql import ARRAY  # (here: SQLite never needs it)

    return bindparam(name, list(values), type_=ARRAY(String))


def share_runs(tx: Transaction, runs: Sequence[tuple[str, int | None, int, str | None]]) -> None:
    """Queue runs (``(run id, max_running, priority_rank, thread_id)``) for any worker to
    claim; a run keeps the thread it has (a resumed one)."""
    if runs:
        _conn(tx).execute(
            update(runs_table)
            .where(runs_table.c.id == bindparam("_id"))
            .values(
                worker=ANY_WORKER,
                max_running=bindparam("_max"),
                priority_rank=bindparam("_rank"),
                thread_id=func.coalesce(runs_table.c.thread_id, bindparam("_thread")),
            ),
            [
                {"_id": run_id, "_max": most, "_rank": rank, "_thread": thread}
                for run_id, most, rank, thread in runs
            ],
        )


def share_answered(store: Store, worker_id: str, run_id: str, *, rank: int) -> bool:
    """Queue a run that waited at ``worker_id`` and was answered for any worker to resume
    (claimed as any run: only while none of its thread's runs is claimed or running); its
    answer, interrupts and thread stay on the row. False if it is no longer waiting there."""
    with store.transaction() as tx:
        shared = _conn(tx).execute(
            update(runs_table)
            .where(
                runs_table.c.id == run_id,
                runs_table.c.worker == worker_id,
                runs_table.c.status == "waiting",
                runs_table.c.answer.is_not(None),
            )
            .values(
                status="queued",
                worker=ANY_WORKER,
                not_before=None,
                max_running=None,  # (in progress already: no admission again)
                priority_rank=rank,
            )
        )
        if shared.rowcount:
            notify(tx)
        return bool(shared.rowcount)


def notify(tx: Transaction) -> None:
    """Wake the listening workers of this schema when ``tx`` commits (the schema is the
    payload: schedulers of other schemas of the database hear it and let it pass)."""
    _conn(tx).execute(text("SELECT pg_notify(:channel, current_schema())"), {"channel": CHANNEL})


def claim_runs(
    store: Store, worker_id: str, *, now: float, limit: int, default_rank: int
) -> tuple[list[RunRow], dict[str, TaskRow]]:
    """Claim up to ``limit`` queued runs for ``worker_id`` (see the module doc); with the
    rows of their tasks (read, not locked: the leader may be moving their next run)."""
    if limit <= 0:
        return [], {}
    with store.transaction() as tx:
        conn = _conn(tx)
        candidates = conn.execute(
            _CANDIDATES,
            {"now": now, "rank": default_rank, "scan": limit * 4 + 16, "latest": MAX_TIMESTAMP},
        ).all()
        chosen: list[str] = []
        claimed_here: dict[str, int] = {}
        locked: dict[str, bool] = {}
        threads: dict[str, bool] = {}  # thread -> claimable by this claim (once)
        for run_id, task_id, max_running, thread_id in candidates:
            if len(chosen) >= limit:
                break
            if thread_id is not None:
                if thread_id not in threads:
                    threads[thread_id] = (
                        bool(conn.execute(_THREAD_LOCK, {"thread_id": thread_id}).scalar())
                        and not conn.execute(_THREAD_BUSY, {"thread_id": thread_id}).scalar()
                    )
                if not threads[thread_id]:
                    continue
            if max_running is not None and max_running >= 1:  # (else: settled as unreadable)
                if task_id not in locked:
                    locked[task_id] = bool(conn.execute(_TASK_LOCK, {"task_id": task_id}).scalar())
                if not locked[task_id]:
                    continue  # another worker is claiming this task's runs right now
                if task_id not in claimed_here:
                    claimed_here[task_id] = int(
                        conn.execute(_COUNT_ACTIVE, {"task_id": task_id}).scalar() or 0
                    )
                if claimed_here[task_id] >= max_running:
                    continue
            claimed_here[task_id] = claimed_here.get(task_id, 0) + 1
            chosen.append(run_id)
            if thread_id is not None:
                threads[thread_id] = False  # its next run waits for this one
        if not chosen:
            return [], {}
        rows = conn.execute(
            update(runs_table)
            .where(runs_table.c.id.in_(chosen))
            .values(worker=worker_id)
            .returning(*runs_table.columns)
        ).all()
        runs = [run_row(row) for row in rows]
        tasks = {
            task.id: task
            for task in map(
                task_row,
                conn.execute(
                    select(tasks_table).where(tasks_table.c.id.in_({r.task_id for r in runs}))
                ),
            )
        }
    order = {run_id: i for i, run_id in enumerate(chosen)}
    return sorted(runs, key=lambda run: order.get(run.id, 0)), tasks


def freed_at(store: Store, runs: Sequence[RunRow]) -> dict[str, float]:
    """For claimed runs that waited for their task's limit: when it let each go
    (``_FREED_AT``), where it did. Asked only for runs that look late (few)."""
    freed: dict[str, float] = {}
    with store.transaction() as tx:
        for run in runs:
            since = max(run.scheduled_for, run.not_before or 0.0)
            found = (
                _conn(tx)
                .execute(_FREED_AT, {"task_id": run.task_id, "id": run.id, "since": since})
                .scalar()
            )
            if found is not None:
                freed[run.id] = float(found)
    return freed


def adopt_waiting(store: Store, worker_id: str, *, limit: int) -> list[RunRow]:
    """Take waiting runs that no live worker holds (their worker died or stopped)."""
    with store.transaction() as tx:
        conn = _conn(tx)
        ids = conn.execute(
            text(
                "SELECT id FROM scheduler_runs WHERE status = 'waiting' AND worker = '*' "
                "ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"
            ),
            {"limit": limit},
        ).scalars()
        chosen = list(ids)
        if not chosen:
            return []
        rows = conn.execute(
            update(runs_table)
            .where(runs_table.c.id.in_(chosen))
            .values(worker=worker_id)
            .returning(*runs_table.columns)
        ).all()
    return [run_row(row) for row in rows]


def release_held(tx: Transaction, worker_ids: Sequence[str]) -> int:
    """Hand the runs ``worker_ids`` hold but have not started back to any worker."""
    result = _conn(tx).execute(
        update(runs_table)
        .where(
            runs_table.c.worker.in_(list(worker_ids)),
            runs_table.c.status.in_(("queued", "waiting")),
        )
        .values(worker=ANY_WORKER)
    )
    return int(result.rowcount or 0)


def reap_workers(tx: Transaction, *, lease: float) -> tuple[list[str], list[RunRow], int]:
    """Find the workers whose last heartbeat is older than their lease (the one each
    registered with; ``lease`` seconds for one that did not), in database time; remove
    them, release what they held but had not started, and return their ids, their
    ``running`` runs (for the caller to settle) and how many runs were released."""
    conn = _conn(tx)
    dead = list(
        conn.execute(
            text(
                "SELECT id FROM scheduler_workers "
                f"WHERE heartbeat_at < {DATABASE_NOW} - COALESCE(lease_seconds, :lease) "
                "FOR UPDATE SKIP LOCKED"
            ),
            {"lease": lease},
        ).scalars()
    )
    # runs held by a worker that is not registered (any more): written by one declared
    # dead after its reaping (a retry it made meanwhile), they would wait for it for ever
    dead += conn.execute(
        select(runs_table.c.worker)
        .distinct()
        .where(
            runs_table.c.status.in_(("queued", "waiting", "running")),
            runs_table.c.worker != ANY_WORKER,
            runs_table.c.worker.not_in(select(workers_table.c.id)),
        )
    ).scalars()
    if not dead:
        return [], [], 0
    running = [
        run_row(row)
        for row in conn.execute(
            select(runs_table)
            .where(runs_table.c.worker.in_(dead), runs_table.c.status == "running")
            .order_by(runs_table.c.id)
            .with_for_update()
        )
    ]
    released = release_held(tx, dead)
    if released:
        notify(tx)  # the live workers take them now, not at their next poll
    conn.execute(delete(workers_table).where(workers_table.c.id.in_(dead)))
    return dead, running, released
