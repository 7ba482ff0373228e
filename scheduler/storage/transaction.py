"""Statements inside one write transaction."""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import (
    BindParameter,
    Connection,
    Select,
    Update,
    bindparam,
    delete,
    func,
    insert,
    select,
    text,
    update,
)

from scheduler.exceptions import LeadershipLostError
from scheduler.fresh_threads import is_fresh
from scheduler.storage.driver import copy_rows, execute_many, execute_rows, fetch_in, fetch_one
from scheduler.storage.links import LinkStatements, chunks
from scheduler.storage.schema import (
    OPEN_STATUSES,
    RUN_FIELDS,
    TASK_COLUMNS,
    RunRow,
    TaskRow,
    deliveries_table,
    meta_table,
    notices_table,
    run_row,
    runs_table,
    task_row,
    tasks_table,
)

__all__ = ["EPOCH", "SELECT_TASK", "Transaction"]

_ANALYZE_AFTER = 10_000  # tasks inserted at once
_COPY_AFTER = 100  # rows written at once: PostgreSQL's COPY, or one statement of arrays

# PostgreSQL: the next run times of many tasks in one statement (a run due at once each)
_SET_NEXT_RUN_TIMES = (
    f"UPDATE {tasks_table.name} AS t SET next_run_time = v.at "
    "FROM unnest(%(ids)s::text[], %(at)s::float8[]) AS v(id, at) WHERE t.id = v.id"
)

# Statements used on every change, built once (building one costs more than running it).
SELECT_TASK = select(tasks_table).where(tasks_table.c.id == bindparam("task_id"))
_INSERT_TASK = insert(tasks_table)
_BUMP_REVISION = (
    update(meta_table).where(meta_table.c.key == "revision").values(value=meta_table.c.value + 1)
)
_BUMPED_REVISION = _BUMP_REVISION.returning(meta_table.c.value)

_REVISION = select(meta_table.c.value).where(meta_table.c.key == "revision")
EPOCH = select(meta_table.c.value).where(meta_table.c.key == "leader_epoch")
_EPOCH_ROW = update(meta_table).where(meta_table.c.key == "leader_epoch")
_BUMP_EPOCH = _EPOCH_ROW.values(value=meta_table.c.value + 1)
# FOR SHARE: taking the next epoch (an UPDATE) waits for the writes checked against this one
_EPOCH_SHARED = EPOCH.with_for_update(read=True)
_EPOCH_WAIT = text("SET LOCAL lock_timeout = '5s'")


class Transaction(LinkStatements):
    """Statements inside one write transaction (see :meth:`Store.transaction`); those of
    the links between tasks in :class:`~scheduler.storage.links.LinkStatements`."""

    def __init__(self, conn: Connection, *, lock_rows: bool) -> None:
        self._conn = conn
        self._lock_rows = lock_rows
        self.bumped = False  # the revision was bumped
        self._revision: int | None = None  # what the last bump made it

    @property
    def locks_rows(self) -> bool:
        """Rows read here are locked until it ends (PostgreSQL); SQLite's writers take
        turns for the whole transaction instead, so nothing read in it changes meanwhile."""
        return self._lock_rows

    def savepoint(self) -> Any:
        """A savepoint (a context manager): what is written in it is undone alone when it
        raises, and the transaction goes on."""
        return self._conn.begin_nested()

    # -- tasks ----------------------------------------------------------------------------

    def get_task(self, task_id: str) -> TaskRow | None:
        if self._lock_rows:
            build = SELECT_TASK.with_for_update
            row = fetch_one(self._conn, "task_for_update", build, {"task_id": task_id})
        else:
            row = fetch_one(self._conn, "task", lambda: SELECT_TASK, {"task_id": task_id})
        return task_row(row) if row is not None else None

    def get_tasks(self, task_ids: Iterable[str]) -> dict[str, TaskRow]:
        lock = self._lock_rows

        def build(params: list[BindParameter[Any]]) -> Select[Any]:
            query = select(tasks_table).where(tasks_table.c.id.in_(params))
            return query.with_for_update() if lock else query

        key = "tasks_for_update" if lock else "tasks"
        rows = fetch_in(self._conn, key, build, list(task_ids))
        return {task.id: task for task in map(task_row, rows)}

    def tasks_from_source(self, source: str) -> list[TaskRow]:
        query = select(tasks_table).where(tasks_table.c.source == source)
        return [task_row(row) for row in self._conn.execute(query)]

    def insert_tasks(self, rows: Sequence[TaskRow]) -> None:
        if rows:
            execute_many(
                self._conn, "insert_tasks", lambda: _INSERT_TASK, [_task_params(r) for r in rows]
            )
        if len(rows) >= _ANALYZE_AFTER and self._conn.dialect.name == "postgresql":
            # Fresh statistics, or PostgreSQL keeps planning lookups by id on a table it
            # believes empty (sequential scans: a second bulk add took minutes).
            self._conn.exec_driver_sql(f"ANALYZE {tasks_table.name}")

    def update_tasks(self, rows: Sequence[TaskRow]) -> None:
        """Replace whole rows (matched by id); ``created_at`` is kept."""
        if not rows:
            return
        columns = [c for c in TASK_COLUMNS if c not in ("id", "created_at")]
        statement = (
            update(tasks_table)
            .where(tasks_table.c.id == bindparam("_id"))
            .values({c: bindparam(c) for c in columns})
        )
        params = [{"_id": r.id, **{c: getattr(r, c) for c in columns}} for r in rows]
        self._conn.execute(statement, params)

    def delete_tasks(self, task_ids: Collection[str]) -> int:
        deleted = 0
        for chunk in chunks(list(task_ids)):
            result = self._conn.execute(delete(tasks_table).where(tasks_table.c.id.in_(chunk)))
            deleted += result.rowcount
        return deleted

    def due_tasks(self, now: float, *, limit: int, exclude: Collection[str] = ()) -> list[TaskRow]:
        """Tasks whose next run time has come, earliest first."""
        query = (
            select(tasks_table)
            .where(tasks_table.c.next_run_time <= now)
            .order_by(tasks_table.c.next_run_time)
            .limit(limit)
        )
        if exclude:
            query = query.where(tasks_table.c.id.not_in(list(exclude)))
        if self._lock_rows:
            query = query.with_for_update(skip_locked=True)
        return [task_row(row) for row in self._conn.execute(query)]

    def set_next_run_times(self, changes: Sequence[tuple[str, float | None]]) -> None:
        if not changes:
            return
        if len(changes) >= _COPY_AFTER and self._conn.dialect.name == "postgresql":
            ids, times = zip(*changes, strict=True)  # one statement, not one per task
            self._conn.exec_driver_sql(_SET_NEXT_RUN_TIMES, {"ids": list(ids), "at": list(times)})
            return
        execute_many(
            self._conn,
            "set_next_run_times",
            lambda: (
                update(tasks_table)
                .where(tasks_table.c.id == bindparam("_id"))
                .values(next_run_time=bindparam("_next"))
            ),
            [{"_id": i, "_next": n} for i, n in changes],
        )

    def set_notice(self, key: str, message: str | None, *, now: float) -> None:
        """See :meth:`Store.set_notice`."""
        table = notices_table
        current = self._conn.execute(select(table.c.message).where(table.c.key == key)).first()
        if message is None:
            if current is not None:
                self._conn.execute(delete(table).where(table.c.key == key))
        elif current is None:
            self._conn.execute(insert(table).values(key=key, message=message, created_at=now))
        elif current[0] != message:
            self._conn.execute(update(table).where(table.c.key == key).values(message=message))

    def bump_revision(self) -> None:
        if self._conn.dialect.update_returning:  # the new value in the same statement
            row = fetch_one(self._conn, "bump_revision", lambda: _BUMPED_REVISION, {})
            self._revision = int(row[0]) if row is not None else None
        else:
            self._conn.execute(_BUMP_REVISION)
        self.bumped = True

    def revision(self) -> int:
        """The change counter as this transaction sees it."""
        if self._revision is not None:
            return self._revision
        row = fetch_one(self._conn, "revision", lambda: _REVISION, {})
        return int(row[0]) if row is not None and row[0] is not None else 0

    # -- the leader's epoch --------------------------------------------------------------

    def take_epoch(self) -> int:
        """The next leader epoch (one per activation: see :meth:`check_epoch`). PostgreSQL:
        waits at most 5 s for writes checked against the last one (else a StorageError)."""
        if self._conn.dialect.name == "postgresql":  # a frozen old leader: not for ever
            self._conn.execute(_EPOCH_WAIT)
        if self._conn.execute(_BUMP_EPOCH).rowcount == 0:
            self._conn.execute(insert(meta_table).values(key="leader_epoch", value=1))
        return int(self._conn.execute(EPOCH).scalar_one())

    def check_epoch(self, epoch: int) -> None:
        """Refuse the transaction (:class:`LeadershipLostError`) unless ``epoch`` is the last."""
        if (current := self._conn.execute(_EPOCH_SHARED).scalar()) != epoch:
            message = f"another scheduler process became active (epoch {current}, not {epoch})"
            raise LeadershipLostError(message + "; this process's writes are refused")

    # -- runs -----------------------------------------------------------------------------

    def add_delivery(self, values: dict[str, Any]) -> None:
        """Record one webhook delivery attempt."""
        self._conn.execute(insert(deliveries_table), values)

    def insert_runs(self, rows: Sequence[RunRow]) -> None:
        if rows:
            values = [_no_nul_values(row.as_values()) for row in rows]
            if len(values) >= _COPY_AFTER and self._conn.dialect.name == "postgresql":
                copy_rows(self._conn, runs_table.name, RUN_FIELDS, values)
            else:
                execute_rows(
                    self._conn, "insert_runs", lambda: insert(runs_table), RUN_FIELDS, values
                )

    def update_runs(self, changes: Sequence[dict[str, Any]]) -> None:
        """Apply updates, each a dict with ``id`` and the columns to set."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for change in changes:
            keys = tuple(sorted(k for k in change if k != "id"))
            groups.setdefault(keys, []).append(change)
        for keys, group in groups.items():
            if not keys:
                continue
            params = [_no_nul({"_id": c["id"], **{k: c[k] for k in keys}}) for c in group]
            execute_many(
                self._conn,
                "update_runs:" + ",".join(keys),
                functools.partial(_update_runs_statement, keys),
                params,
            )

    def run_statuses(self, run_ids: Collection[str]) -> dict[str, str]:
        """The stored status of each of ``run_ids`` that exists."""
        found: dict[str, str] = {}
        for chunk in chunks(list(run_ids)):
            query = select(runs_table.c.id, runs_table.c.status).where(runs_table.c.id.in_(chunk))
            found.update((run_id, status) for run_id, status in self._conn.execute(query))
        return found

    def has_run_for(self, task_id: str, scheduled_for: float) -> bool:
        """A run (or a skipped, missed record) of ``task_id`` for that occurrence exists."""
        query = select(runs_table.c.id).where(
            runs_table.c.task_id == task_id, runs_table.c.scheduled_for == scheduled_for
        )
        return self._conn.execute(query.limit(1)).first() is not None

    def has_unfinished_runs(self, task_id: str) -> bool:
        """A run of ``task_id`` is not final: queued, running or waiting for an answer."""
        query = select(runs_table.c.id).where(runs_table.c.task_id == task_id, _OPEN)
        return self._conn.execute(query.limit(1)).first() is not None

    def get_run(self, run_id: str) -> RunRow | None:
        """One run, locked for the transaction."""
        query = select(runs_table).where(runs_table.c.id == run_id)
        if self._lock_rows:
            query = query.with_for_update()
        row = self._conn.execute(query).first()
        return run_row(row) if row is not None else None

    def runs_with_status(self, statuses: Collection[str]) -> list[RunRow]:
        query = (
            select(runs_table)
            .where(runs_table.c.status.in_(list(statuses)))
            .order_by(runs_table.c.id)
        )
        return [run_row(row) for row in self._conn.execute(query)]

    def request_cancel(self, run_id: str, now: float) -> bool:
        """Ask whoever runs ``run_id``, or holds it waiting for an answer, to cancel it;
        False unless it is recorded running, or waiting and not answered (an answer given
        first wins)."""
        running = runs_table.c.status == "running"
        unanswered = (runs_table.c.status == "waiting") & runs_table.c.answer.is_(None)
        result = self._conn.execute(
            update(runs_table)
            .where(runs_table.c.id == run_id, running | unanswered)
            .values(cancel_requested=now)
        )
        return bool(result.rowcount)

    def prune_runs(
        self, *, keep_per_task: int, older_than: float | None
    ) -> tuple[int, list[tuple[str, str]]]:
        """Delete final run records beyond the newest ``keep_per_task`` final ones of each
        task, or older than ``older_than``; queued, running and waiting records are never
        deleted (a run waiting for an answer waits as long as it takes). Nor, yet, are the
        records of runs on a fresh thread of their own: returned as ``(run id, thread id)``,
        deleted by :meth:`delete_final_runs` once their checkpoints are (a record deleted
        first would leave them for ever if that failed), nor the newest scheduled record of
        a task with no next run (a one-time task that ran: what tells an edit, or enabling
        it again, that its occurrence has run). Returns how many were deleted."""
        proofs = (
            select(func.max(runs_table.c.id))
            .join(tasks_table, tasks_table.c.id == runs_table.c.task_id)
            .where(tasks_table.c.next_run_time.is_(None), runs_table.c.trigger == "schedule")
            .group_by(runs_table.c.task_id)
        )
        final = runs_table.c.status.not_in(OPEN_STATUSES) & (runs_table.c.id.not_in(proofs))
        deleted = 0
        own: list[tuple[str, str]] = []

        def prune(*where: Any) -> int:
            found = self._conn.execute(
                select(runs_table.c.id, runs_table.c.thread_id).where(
                    *where, runs_table.c.thread_id.is_not(None)
                )
            )
            spared = [(run_id, thread) for run_id, thread in found if is_fresh(run_id, thread)]
            if not spared:
                return int(self._conn.execute(delete(runs_table).where(*where)).rowcount)
            own.extend(spared)
            kept = {run_id for run_id, _ in spared}
            ids = self._conn.execute(select(runs_table.c.id).where(*where)).scalars()
            return self.delete_final_runs([run_id for run_id in ids if run_id not in kept])

        if older_than is not None:
            deleted += prune(final, runs_table.c.queued_at < older_than)
        if keep_per_task > 0:
            crowded = self._conn.execute(
                select(runs_table.c.task_id)
                .where(final)
                .group_by(runs_table.c.task_id)
                .having(func.count() > keep_per_task)
            ).scalars()
            for task_id in list(crowded):
                boundary = self._conn.execute(
                    select(runs_table.c.id)
                    .where(runs_table.c.task_id == task_id, final)
                    .order_by(runs_table.c.id.desc())
                    .offset(keep_per_task - 1)
                    .limit(1)
                ).scalar()
                if boundary is None:
                    continue
                deleted += prune(runs_table.c.task_id == task_id, runs_table.c.id < boundary, final)
        return deleted, list(dict(own).items())  # (older and crowded: one run, once)

    def delete_final_runs(self, run_ids: Iterable[str]) -> int:
        """Delete the records of these runs that are final; returns how many."""
        final = runs_table.c.status.not_in(OPEN_STATUSES)
        deleted = 0
        for chunk in chunks(list(run_ids)):
            statement = delete(runs_table).where(runs_table.c.id.in_(chunk), final)
            deleted += int(self._conn.execute(statement).rowcount)
        return deleted


def _no_nul(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with NUL characters in texts replaced by U+FFFD: a graph's output or an
    error message may hold one, and PostgreSQL refuses it in a text column (the whole
    write failed, every run's record with it, at every retry)."""
    for key, value in params.items():
        if isinstance(value, str) and "\x00" in value:
            params[key] = value.replace("\x00", "\ufffd")
    return params


def _no_nul_values(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """:func:`_no_nul` of one row's values (looked for in all its texts at once)."""
    if "\x00" not in "".join([v for v in values if isinstance(v, str)]):
        return values
    return tuple(v.replace("\x00", "\ufffd") if isinstance(v, str) else v for v in values)


def _task_params(row: TaskRow) -> dict[str, Any]:
    return {c: getattr(row, c) for c in TASK_COLUMNS}


# A final record is never changed again: a process that lost a run to another (the leader
# lock lost, a worker declared dead) cannot write over how the other settled it.
# (as text: these statements run on the driver's cursor, which expands no IN lists)
_OPEN = text("scheduler_runs.status IN ('queued', 'running', 'waiting')")


def _update_runs_statement(keys: tuple[str, ...]) -> Update:
    return (
        update(runs_table)
        .where(runs_table.c.id == bindparam("_id"), _OPEN)
        .values({k: bindparam(k) for k in keys})
    )
