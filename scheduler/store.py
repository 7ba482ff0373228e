"""Storage: the one module that talks SQL.

One SQLAlchemy URL holds three tables: ``scheduler_tasks`` (the job store: one row per task,
the definition as JSON text, never a pickle), ``scheduler_runs`` (run history) and
``scheduler_meta`` (schema version and a revision counter that every change bumps, so a
running scheduler notices changes made by other processes).

SQLite files run in WAL mode with ``synchronous=NORMAL``; write transactions start with
``BEGIN IMMEDIATE`` so a read-modify-write (the dispatcher claiming due tasks) cannot
interleave with another writer. Driver errors leave this module as
:class:`~scheduler.exceptions.StorageError`, chained to the original.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from scheduler.exceptions import StorageError

__all__ = ["DEFINITION_FORMAT", "SCHEMA_VERSION", "RunRow", "Store", "TaskRow", "Transaction"]

SCHEMA_VERSION = 1
DEFINITION_FORMAT = 1
_CHUNK = 500  # bound parameters per IN (...) list

metadata = MetaData()

tasks_table = Table(
    "scheduler_tasks",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("definition", Text, nullable=False),
    Column("format", Integer, nullable=False),
    Column("next_run_time", Float, index=True),
    Column("paused", Boolean, nullable=False),
    Column("anchor", Float, nullable=False),
    Column("source", String(255), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

runs_table = Table(
    "scheduler_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("task_id", String(128), nullable=False),
    Column("scheduled_for", Float, nullable=False),
    Column("queued_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("status", String(16), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("occurrences", Integer, nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("not_before", Float),
    Column("thread_id", String(255)),
    Column("error_type", String(255)),
    Column("error_message", Text),
    Column("error_traceback", Text),
    Column("output", Text),
    Index("ix_scheduler_runs_task", "task_id", "id"),
    Index("ix_scheduler_runs_status", "status"),
)

meta_table = Table(
    "scheduler_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Integer, nullable=False),
)


@dataclass(slots=True)
class TaskRow:
    """One row of ``scheduler_tasks``; times are UNIX seconds."""

    id: str
    definition: str
    format: int
    next_run_time: float | None
    paused: bool
    anchor: float
    source: str
    created_at: float
    updated_at: float


@dataclass(slots=True)
class TaskStats:
    """Run counts and the latest run of one task."""

    run_count: int = 0
    last_run_id: str | None = None
    last_run_at: float | None = None
    last_status: str | None = None
    last_error: str | None = None


@dataclass(slots=True)
class RunRow:
    """One row of ``scheduler_runs``; times are UNIX seconds."""

    id: str
    task_id: str
    scheduled_for: float
    queued_at: float
    status: str
    trigger: str
    attempt: int = 1
    occurrences: int = 1
    started_at: float | None = None
    finished_at: float | None = None
    not_before: float | None = None
    thread_id: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    error_traceback: str | None = None
    output: str | None = None

    def as_params(self) -> dict[str, Any]:
        """The row as insert parameters."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


_TASK_COLUMNS = [c.name for c in tasks_table.columns]
_RUN_COLUMNS = [c.name for c in runs_table.columns]


def _task_row(row: Any) -> TaskRow:
    return TaskRow(*(row[i] for i in range(len(_TASK_COLUMNS))))


def _run_row(row: Any) -> RunRow:
    return RunRow(**dict(zip(_RUN_COLUMNS, row, strict=True)))


@contextmanager
def _translated(store: Store) -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc
        raise StorageError(f"database {store.display_url}: {reason}") from exc


class Store:
    """Tables, transactions and queries for one database URL.

    Args:
        url: Any SQLAlchemy URL; ``sqlite://`` (no file) keeps everything in memory.
        busy_timeout: Seconds SQLite waits for a lock before raising an error.
    """

    def __init__(self, url: str, *, busy_timeout: float = 5.0) -> None:
        parsed = make_url(url)
        self.url = url
        self.display_url = parsed.render_as_string(hide_password=True)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.is_memory = self.is_sqlite and parsed.database in (None, "", ":memory:")
        self.sqlite_path: Path | None = None
        kwargs: dict[str, Any] = {}
        if self.is_memory:
            kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        elif self.is_sqlite:
            self.sqlite_path = Path(str(parsed.database))
            kwargs = {"connect_args": {"timeout": busy_timeout}, "pool_size": 8}
        else:
            kwargs = {"pool_pre_ping": True, "pool_size": 8}
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            self._install_sqlite_hooks(busy_timeout)
        # In-process writers queue here instead of spinning on SQLite's busy handler.
        self._write_lock = threading.RLock()
        # One shared in-memory connection: every use must be serialised.
        self._read_lock: AbstractContextManager[Any] = (
            self._write_lock if self.is_memory else nullcontext()
        )
        self._set_up = False

    def _install_sqlite_hooks(self, busy_timeout: float) -> None:
        memory = self.is_memory

        @event.listens_for(self.engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event below issue BEGIN (pysqlite's own is broken).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cursor.close()

        @event.listens_for(self.engine, "begin")
        def _on_begin(connection: Connection) -> None:
            immediate = connection.get_execution_options().get("immediate", False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    # -- lifecycle -------------------------------------------------------------------------

    def setup(self) -> None:
        """Create the tables if needed and check the schema version. Idempotent."""
        if self._set_up:
            return
        with self._write_lock, _translated(self):
            if self.sqlite_path is not None and not self.sqlite_path.parent.is_dir():
                raise StorageError(
                    f"cannot open SQLite database {self.sqlite_path}: "
                    f"directory {self.sqlite_path.parent} does not exist"
                )
            metadata.create_all(self.engine)
            with self.engine.connect() as conn:
                conn.execution_options(immediate=True)
                with conn.begin():
                    schema = conn.execute(
                        select(meta_table.c.value).where(meta_table.c.key == "schema")
                    ).scalar()
                    if schema is None:
                        _insert_ignore(conn, "schema", SCHEMA_VERSION)
                        _insert_ignore(conn, "revision", 0)
                    elif schema > SCHEMA_VERSION:
                        raise StorageError(
                            f"database {self.display_url} has schema version {schema}, "
                            f"written by a newer version of this package (this one reads "
                            f"{SCHEMA_VERSION}); upgrade the package"
                        )
        self._set_up = True

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    # -- transactions ---------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success."""
        self.setup()
        with self._write_lock, _translated(self), self.engine.connect() as conn:
            conn.execution_options(immediate=True)
            with conn.begin():
                yield Transaction(conn, lock_rows=not self.is_sqlite)

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        self.setup()
        with self._read_lock, _translated(self), self.engine.connect() as conn:
            yield conn

    # -- reads ----------------------------------------------------------------------------

    def revision(self) -> int:
        """The change counter; it grows with every change to tasks or requested runs."""
        with self._reading() as conn:
            value = conn.execute(
                select(meta_table.c.value).where(meta_table.c.key == "revision")
            ).scalar()
            return int(value or 0)

    def get_task(self, task_id: str) -> TaskRow | None:
        with self._reading() as conn:
            row = conn.execute(select(tasks_table).where(tasks_table.c.id == task_id)).first()
            return _task_row(row) if row is not None else None

    def list_tasks(self) -> list[TaskRow]:
        with self._reading() as conn:
            result = conn.execute(select(tasks_table).order_by(tasks_table.c.id))
            return [_task_row(row) for row in result]

    def task_stats(self, task_id: str | None = None) -> dict[str, TaskStats]:
        """Run count and latest run per task (of one task when ``task_id`` is given)."""
        counts = select(
            runs_table.c.task_id,
            func.count().label("n"),
            func.max(runs_table.c.id).label("last_id"),
        ).group_by(runs_table.c.task_id)
        if task_id is not None:
            counts = counts.where(runs_table.c.task_id == task_id)
        sub = counts.subquery()
        query = select(
            sub.c.task_id,
            sub.c.n,
            sub.c.last_id,
            runs_table.c.queued_at,
            runs_table.c.status,
            runs_table.c.error_message,
        ).join(runs_table, runs_table.c.id == sub.c.last_id)
        with self._reading() as conn:
            return {
                row[0]: TaskStats(row[1], row[2], row[3], row[4], row[5])
                for row in conn.execute(query)
            }

    def next_run_time(self, exclude: Collection[str] = ()) -> float | None:
        """The earliest stored next run time, skipping the task ids in ``exclude``."""
        query = select(func.min(tasks_table.c.next_run_time))
        if exclude:
            query = query.where(tasks_table.c.id.not_in(list(exclude)))
        with self._reading() as conn:
            value = conn.execute(query).scalar()
            return float(value) if value is not None else None

    def get_run(self, run_id: str) -> RunRow | None:
        with self._reading() as conn:
            row = conn.execute(select(runs_table).where(runs_table.c.id == run_id)).first()
            return _run_row(row) if row is not None else None

    def list_runs(
        self,
        *,
        task_id: str | None = None,
        statuses: Collection[str] = (),
        limit: int | None = 50,
    ) -> list[RunRow]:
        """Runs, newest first."""
        query = select(runs_table).order_by(runs_table.c.id.desc())
        if task_id is not None:
            query = query.where(runs_table.c.task_id == task_id)
        if statuses:
            query = query.where(runs_table.c.status.in_(list(statuses)))
        if limit is not None:
            query = query.limit(limit)
        with self._reading() as conn:
            return [_run_row(row) for row in conn.execute(query)]

    def count_runs(self) -> dict[str, int]:
        """Number of run records per status."""
        query = select(runs_table.c.status, func.count()).group_by(runs_table.c.status)
        with self._reading() as conn:
            return {row[0]: int(row[1]) for row in conn.execute(query)}

    # -- writes outside a caller's transaction ----------------------------------------------

    def update_runs(self, changes: Sequence[dict[str, Any]]) -> None:
        """Apply run updates (each a dict with ``id`` and the columns to set) in one commit."""
        if changes:
            with self.transaction() as tx:
                tx.update_runs(changes)


def _insert_ignore(conn: Connection, key: str, value: int) -> None:
    try:
        with conn.begin_nested():
            conn.execute(insert(meta_table).values(key=key, value=value))
    except IntegrityError:
        pass  # another process created it first


class Transaction:
    """Statements inside one write transaction (see :meth:`Store.transaction`)."""

    def __init__(self, conn: Connection, *, lock_rows: bool) -> None:
        self._conn = conn
        self._lock_rows = lock_rows

    # -- tasks ----------------------------------------------------------------------------

    def get_task(self, task_id: str) -> TaskRow | None:
        query = select(tasks_table).where(tasks_table.c.id == task_id)
        if self._lock_rows:
            query = query.with_for_update()
        row = self._conn.execute(query).first()
        return _task_row(row) if row is not None else None

    def get_tasks(self, task_ids: Iterable[str]) -> dict[str, TaskRow]:
        found: dict[str, TaskRow] = {}
        for chunk in _chunks(list(task_ids)):
            query = select(tasks_table).where(tasks_table.c.id.in_(chunk))
            if self._lock_rows:
                query = query.with_for_update()
            for row in self._conn.execute(query):
                task = _task_row(row)
                found[task.id] = task
        return found

    def tasks_from_source(self, source: str) -> list[TaskRow]:
        query = select(tasks_table).where(tasks_table.c.source == source)
        return [_task_row(row) for row in self._conn.execute(query)]

    def insert_tasks(self, rows: Sequence[TaskRow]) -> None:
        if rows:
            self._conn.execute(insert(tasks_table), [_task_params(r) for r in rows])

    def update_tasks(self, rows: Sequence[TaskRow]) -> None:
        """Replace whole rows (matched by id); ``created_at`` is kept."""
        if not rows:
            return
        columns = [c for c in _TASK_COLUMNS if c not in ("id", "created_at")]
        statement = (
            update(tasks_table)
            .where(tasks_table.c.id == bindparam("_id"))
            .values({c: bindparam(c) for c in columns})
        )
        params = [{"_id": r.id, **{c: getattr(r, c) for c in columns}} for r in rows]
        self._conn.execute(statement, params)

    def delete_tasks(self, task_ids: Collection[str]) -> int:
        deleted = 0
        for chunk in _chunks(list(task_ids)):
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
        return [_task_row(row) for row in self._conn.execute(query)]

    def set_next_run_times(self, changes: Sequence[tuple[str, float | None]]) -> None:
        if not changes:
            return
        statement = (
            update(tasks_table)
            .where(tasks_table.c.id == bindparam("_id"))
            .values(next_run_time=bindparam("_next"))
        )
        self._conn.execute(statement, [{"_id": i, "_next": n} for i, n in changes])

    def bump_revision(self) -> None:
        self._conn.execute(
            update(meta_table)
            .where(meta_table.c.key == "revision")
            .values(value=meta_table.c.value + 1)
        )

    # -- runs -----------------------------------------------------------------------------

    def insert_runs(self, rows: Sequence[RunRow]) -> None:
        if rows:
            self._conn.execute(insert(runs_table), [r.as_params() for r in rows])

    def update_runs(self, changes: Sequence[dict[str, Any]]) -> None:
        """Apply updates, each a dict with ``id`` and the columns to set."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for change in changes:
            keys = tuple(sorted(k for k in change if k != "id"))
            groups.setdefault(keys, []).append(change)
        for keys, group in groups.items():
            if not keys:
                continue
            statement = (
                update(runs_table)
                .where(runs_table.c.id == bindparam("_id"))
                .values({k: bindparam(k) for k in keys})
            )
            params = [{"_id": c["id"], **{k: c[k] for k in keys}} for c in group]
            self._conn.execute(statement, params)

    def runs_with_status(self, statuses: Collection[str]) -> list[RunRow]:
        query = (
            select(runs_table)
            .where(runs_table.c.status.in_(list(statuses)))
            .order_by(runs_table.c.id)
        )
        return [_run_row(row) for row in self._conn.execute(query)]

    def prune_runs(self, *, keep_per_task: int, older_than: float | None) -> int:
        """Delete final run records beyond the newest ``keep_per_task`` final ones of each
        task, or older than ``older_than``; queued and running records are never deleted."""
        final = runs_table.c.status.not_in(["queued", "running"])
        deleted = 0
        if older_than is not None:
            result = self._conn.execute(
                delete(runs_table).where(final, runs_table.c.queued_at < older_than)
            )
            deleted += result.rowcount
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
                result = self._conn.execute(
                    delete(runs_table).where(
                        runs_table.c.task_id == task_id, runs_table.c.id < boundary, final
                    )
                )
                deleted += result.rowcount
        return deleted


def _task_params(row: TaskRow) -> dict[str, Any]:
    return {c: getattr(row, c) for c in _TASK_COLUMNS}


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


class AdvisoryLock:
    """A PostgreSQL session-level advisory lock held on one dedicated connection."""

    def __init__(self, conn: Connection, key: int) -> None:
        self._conn = conn
        self._key = key

    def is_held(self) -> bool:
        """Check the connection (and with it the lock) is still alive."""
        try:
            self._conn.exec_driver_sql("SELECT 1")
            self._conn.commit()
        except SQLAlchemyError:
            return False
        return True

    def release(self) -> None:
        try:
            self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
            self._conn.commit()
        except SQLAlchemyError:
            pass  # the connection is gone, and the lock with it
        finally:
            self._conn.close()


def try_advisory_lock(store: Store, name: str) -> AdvisoryLock | None:
    """Take the PostgreSQL advisory lock for ``name`` in this database and schema (so two
    deployments in different schemas do not block each other), without waiting; None if
    another session holds it."""
    statement = text(
        "SELECT key, pg_try_advisory_lock(key) FROM (SELECT hashtext(:name || '/' || "
        "current_database() || '/' || current_schema())::bigint AS key) AS lock_key"
    )
    with _translated(store):
        conn = store.engine.connect()
        try:
            key, got = conn.execute(statement, {"name": name}).one()
            conn.commit()
        except BaseException:
            conn.close()
            raise
        if got:
            return AdvisoryLock(conn, key)
        conn.close()
        return None
