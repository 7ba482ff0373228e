"""The store: engine, set-up, transactions and the queries readers need.

One SQLAlchemy URL holds three tables: ``scheduler_tasks`` (the job store: one row per task,
the definition as JSON text, never a pickle), ``scheduler_runs`` (run history) and
``scheduler_meta`` (schema version and a revision counter that every change bumps, so a
running scheduler notices changes made by other processes).

SQLite files run in WAL mode with ``synchronous=NORMAL``; write transactions start with
``BEGIN IMMEDIATE`` (see :mod:`scheduler.storage.engine`) so a read-modify-write (the
dispatcher claiming due tasks) cannot interleave with another writer, and all of them go
through one kept connection. Driver errors leave this module as
:class:`~scheduler.exceptions.StorageError`, chained to the original.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, or_, select, text, true
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from scheduler.exceptions import DatabaseBusyError, StorageError, UnstorableTextError
from scheduler.storage.engine import begin_without_waiting, new_engine, parse_url
from scheduler.storage.migrate import create_tables, insert_ignore, migrate
from scheduler.storage.schema import (
    MAX_TIMESTAMP,
    SCHEMA_VERSION,
    RunRow,
    TaskRow,
    TaskStats,
    links_table,
    meta_table,
    metadata,
    notices_table,
    run_row,
    runs_table,
    task_row,
    task_stats,
    tasks_table,
)
from scheduler.storage.statements import (
    CANCELS_HERE,
    CANCELS_OF,
    COUNT_TASKS,
    COUNTS,
    DELIVERIES,
    OPEN_TASKS,
    REVISION,
    SELECT_RUN,
    STATS_OF_TASK,
    THREAD_RUNS,
    runs_query,
    stats_query,
)
from scheduler.storage.transaction import EPOCH, SELECT_TASK, Transaction

DATABASE_TIME = text("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8")

__all__ = ["Store", "translated"]


@contextmanager
def translated(store: Store) -> Iterator[None]:
    """Driver errors (through SQLAlchemy, or from the driver's own cursor) as
    :class:`~scheduler.exceptions.StorageError`."""
    try:
        yield
    except store.database_errors as exc:
        reason = getattr(exc, "orig", None) or exc
        if _NUL_REFUSED in str(reason):  # psycopg's, before anything reaches the server
            raise UnstorableTextError(
                "a text holds a NUL character (U+0000), which PostgreSQL cannot hold: "
                "no task, run or thread has it"
            ) from exc
        raise StorageError(f"database {store.display_url}: {reason}") from exc


_NUL_REFUSED = "cannot contain NUL"


class Store:
    """Tables, transactions and queries for one database URL.

    Args:
        url: Any SQLAlchemy URL; ``sqlite://`` (no file) keeps everything in memory.
        busy_timeout: Seconds SQLite waits for a lock before raising an error.
        synchronous: SQLite's synchronous mode on a file, ``normal`` or ``full``.
    """

    def __init__(self, url: str, *, busy_timeout: float = 5.0, synchronous: str = "normal") -> None:
        parsed = parse_url(url)
        self.url = url
        self.display_url = parsed.render_as_string(hide_password=True)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.is_memory = self.is_sqlite and parsed.database in (None, "", ":memory:")
        self.sqlite_path: Path | None = None
        if self.is_sqlite and not self.is_memory:
            self.sqlite_path = Path(str(parsed.database))
        self.busy_timeout = busy_timeout
        self.engine: Engine = new_engine(parsed, busy_timeout=busy_timeout, synchronous=synchronous)
        self.driver_error: type[Exception] = self.engine.dialect.loaded_dbapi.Error
        self.database_errors = (SQLAlchemyError, self.driver_error)  # what translated() turns
        # SQLite files: one connection kept for every write transaction (they are serial
        # anyway): a pool check-out and its reset cost more than a small write itself.
        self._writer: Connection | None = None
        # In-process writers queue here instead of spinning on SQLite's busy handler.
        self._write_lock = threading.RLock()
        # One shared in-memory connection: every use must be serialised.
        self._read_lock: AbstractContextManager[Any] = (
            self._write_lock if self.is_memory else nullcontext()
        )
        self._set_up = False
        # Revision bumps committed by this process: a change signal read without a query
        # (changes by other processes show in revision() only).
        self.local_changes = 0

    # -- lifecycle -------------------------------------------------------------------------

    def setup(self) -> None:
        """Create the tables if needed and check the schema version. Idempotent."""
        if self._set_up:
            return
        with self._write_lock, translated(self):
            if self.sqlite_path is not None and not self.sqlite_path.parent.is_dir():
                raise StorageError(
                    f"cannot open SQLite database {self.sqlite_path}: "
                    f"directory {self.sqlite_path.parent} does not exist"
                )
            if self.is_sqlite:
                metadata.create_all(self.engine)
            with self.engine.connect() as conn:
                conn.execution_options(immediate=True)
                with conn.begin():
                    if not self.is_sqlite:
                        create_tables(conn)
                    schema = conn.execute(
                        select(meta_table.c.value).where(meta_table.c.key == "schema")
                    ).scalar()
                    if schema is None:
                        insert_ignore(conn, "schema", SCHEMA_VERSION)
                        insert_ignore(conn, "revision", 0)
                    elif schema > SCHEMA_VERSION:
                        raise StorageError(
                            f"database {self.display_url} has schema version {schema}, "
                            f"written by a newer version of this package (this one reads "
                            f"{SCHEMA_VERSION}); upgrade the package"
                        )
                    elif schema < SCHEMA_VERSION:
                        migrate(conn, schema)
        self._set_up = True

    def close(self) -> None:
        """Close every pooled connection (reopened on next use). An in-memory database
        is its one connection: it stays open, so what it holds can still be read (a test
        reading the runs after ``clocked_scheduler``), until the store is dropped."""
        with self._write_lock:
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.close()
        if not self.is_memory:
            self.engine.dispose()

    # -- transactions ---------------------------------------------------------------------

    @contextmanager
    def transaction(
        self, check: Callable[[Transaction], None] | None = None, *, wait: bool = True
    ) -> Iterator[Transaction]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success;
        ``check`` runs first in it (a fence: it raises to refuse the transaction).

        With ``wait=False`` (the dispatcher's claim, on the event loop) it raises
        :class:`~scheduler.exceptions.DatabaseBusyError` at once if another connection
        holds SQLite's write lock, or if a write of this process is still going (it may
        itself be waiting for SQLite's lock)."""
        self.setup()
        if not self._write_lock.acquire(blocking=wait):
            raise DatabaseBusyError("a write of this process is still going")
        try:
            with translated(self):
                yield from self._transaction(check, wait)
        finally:
            self._write_lock.release()

    def _transaction(
        self, check: Callable[[Transaction], None] | None, wait: bool
    ) -> Iterator[Transaction]:
        if self._writer is not None and self._writer.in_transaction():
            # only this thread can hold the lock inside a transaction: a nested one
            raise RuntimeError("Store.transaction() inside another one on the same thread")
        conn = self._write_connection()
        broken = False
        try:
            with conn.begin() if wait else begin_without_waiting(conn, self.busy_timeout):
                tx = Transaction(conn, lock_rows=not self.is_sqlite)
                if check is not None:
                    check(tx)
                yield tx
        except (SQLAlchemyError, self.driver_error):
            broken = True  # the next transaction starts on a fresh connection
            raise
        finally:
            if broken or conn is not self._writer:
                if conn is self._writer:
                    self._writer = None
                conn.close()
        if tx.bumped:
            self.local_changes += 1

    def _write_connection(self) -> Connection:
        """The kept writer (SQLite files), else a connection of the pool (a PostgreSQL one is
        checked by the pool's ping; an in-memory database has one connection for all)."""
        conn = self._writer
        if conn is None:
            conn = self.engine.connect()
            conn.execution_options(immediate=True)
            if self.is_sqlite and not self.is_memory:
                self._writer = conn
        return conn

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        self.setup()
        with self._read_lock, translated(self), self.engine.connect() as conn:
            yield conn

    # -- reads ----------------------------------------------------------------------------

    def revision(self) -> int:
        """The change counter; it grows with every change to tasks or requested runs."""
        with self._reading() as conn:
            return int(conn.execute(REVISION).scalar() or 0)

    def database_time(self) -> float:
        """The database server's UNIX time (PostgreSQL only)."""
        with self._reading() as conn:
            return float(conn.execute(DATABASE_TIME).scalar_one())

    def leader_epoch(self) -> int:
        """The last leader epoch taken (:meth:`Transaction.take_epoch`), 0 if none."""
        with self._reading() as conn:
            return int(conn.execute(EPOCH).scalar() or 0)

    def get_task(self, task_id: str) -> TaskRow | None:
        with self._reading() as conn:
            row = conn.execute(SELECT_TASK, {"task_id": task_id}).first()
            return task_row(row) if row is not None else None

    def list_tasks(self) -> list[TaskRow]:
        return list(self.iter_tasks())

    def iter_tasks(self, *, page: int = 1000, source: str | None = None) -> Iterator[TaskRow]:
        """Every task by id, read ``page`` rows at a time (each page its own short read), so
        a caller that converts rows as they come never holds them all at once. ``source``
        keeps the tasks of that source and of the sources under it (``agent`` keeps
        ``agent:thread:t-1``), letter case as written: ``FILE`` is not ``file:tasks.yaml``'s
        (SQLite's ``LIKE`` ignores case, and so took ``remove --source FILE`` for ``file``)."""
        after: str | None = None
        under = f"{source}:"
        while True:
            query = select(tasks_table).order_by(tasks_table.c.id).limit(page)
            if source is not None:
                query = query.where(
                    or_(
                        tasks_table.c.source == source,
                        func.substr(tasks_table.c.source, 1, len(under)) == under,
                    )
                )
            if after is not None:
                query = query.where(tasks_table.c.id > after)
            with self._reading() as conn:
                rows = [task_row(row) for row in conn.execute(query)]
            yield from rows
            if len(rows) < page:
                return
            after = rows[-1].id

    def task_stats(self, task_id: str | Collection[str] | None = None) -> dict[str, TaskStats]:
        """Run count and last outcome per task (of one task, or of the tasks of a collection,
        when ``task_id`` is given): the newest run that finished after running (not one
        skipped by the overlap policy while another ran, nor one still queued or running),
        else the newest run; and whether a run of it is not final yet."""
        ids = [task_id] if isinstance(task_id, str) else task_id
        mine = runs_table.c.task_id.in_(list(ids)) if ids is not None else true()
        query = STATS_OF_TASK if isinstance(task_id, str) else stats_query(COUNTS.where(mine))
        with self._reading() as conn:
            stats = dict(task_stats(row) for row in conn.execute(query, {"task_id": task_id}))
            for (open_id,) in conn.execute(OPEN_TASKS.where(mine)):
                if open_id in stats:
                    stats[open_id].open_runs = True
        return stats

    def next_run_time(self, exclude: Collection[str] = ()) -> float | None:
        """The earliest stored next run time, skipping the task ids in ``exclude``."""
        query = select(func.min(tasks_table.c.next_run_time))
        if exclude:
            query = query.where(tasks_table.c.id.not_in(list(exclude)))
        with self._reading() as conn:
            value = conn.execute(query).scalar()
        if not isinstance(value, int | float) or value != value:
            return None  # no rows (or only unusable values: those rows never come due)
        return max(0.0, float(value))

    def get_run(self, run_id: str) -> RunRow | None:
        with self._reading() as conn:
            row = conn.execute(SELECT_RUN, {"run_id": run_id}).first()
            return run_row(row) if row is not None else None

    def list_runs(
        self,
        *,
        task_id: str | None = None,
        statuses: Collection[str] = (),
        limit: int | None = 50,
        offset: int = 0,
    ) -> list[RunRow]:
        """Runs, newest first, the first ``offset`` skipped."""
        query = runs_query(
            task=task_id is not None, statuses=bool(statuses), limit=limit is not None
        )
        params = {"task_id": task_id, "statuses": list(statuses), "limit": limit, "offset": offset}
        with self._reading() as conn:
            return [run_row(row) for row in conn.execute(query, params)]

    def thread_runs(self, thread_id: str, *, limit: int, offset: int = 0) -> list[RunRow]:
        """The runs on one thread, newest first."""
        params = {"thread_id": thread_id, "limit": limit, "offset": offset}
        with self._reading() as conn:
            return [run_row(row) for row in conn.execute(THREAD_RUNS, params)]

    def add_delivery(self, values: dict[str, Any]) -> None:
        """Record one webhook delivery attempt."""
        with self.transaction() as tx:
            tx.add_delivery(values)

    def request_cancel(self, run_id: str, now: float) -> bool:
        """Record a cancel request for a run another process runs (or holds waiting for
        an answer), and bump the revision so that process looks; False unless the run is
        recorded running, or waiting and not answered."""
        with self.transaction() as tx:
            asked = tx.request_cancel(run_id, now)
            if asked:
                tx.bump_revision()
            return asked

    def cancel_requests(self, worker: str | None) -> list[str]:
        """The running and waiting runs of ``worker`` (None: of the active scheduler's own
        process) that another process asked to cancel."""
        query = CANCELS_HERE if worker is None else CANCELS_OF
        with self._reading() as conn:
            return [str(run_id) for (run_id,) in conn.execute(query, {"worker": worker})]

    def deliveries(self, run_id: str) -> list[dict[str, Any]]:
        """A run's webhook delivery attempts, in order."""
        with self._reading() as conn:
            return [dict(row._mapping) for row in conn.execute(DELIVERIES, {"run_id": run_id})]

    def upstream_ids(self) -> set[str]:
        """The tasks that other tasks run after (``after``)."""
        with self._reading() as conn:
            return set(conn.execute(select(links_table.c.upstream_id).distinct()).scalars())

    def downstream_tasks(self) -> list[TaskRow]:
        """The tasks that run after other tasks."""
        query = select(tasks_table).where(
            tasks_table.c.id.in_(select(links_table.c.downstream_id).distinct())
        )
        with self._reading() as conn:
            return [task_row(row) for row in conn.execute(query)]

    def links(self) -> list[tuple[str, str]]:
        """Every (downstream, upstream) pair of ``after`` links."""
        query = select(links_table.c.downstream_id, links_table.c.upstream_id)
        with self._reading() as conn:
            return [(d, u) for d, u in conn.execute(query)]

    def count_tasks(self) -> int:
        """Number of task rows."""
        with self._reading() as conn:
            return int(conn.execute(COUNT_TASKS).scalar() or 0)

    def count_runs(self) -> dict[str, int]:
        """Number of run records per status."""
        query = select(runs_table.c.status, func.count()).group_by(runs_table.c.status)
        with self._reading() as conn:
            return {row[0]: int(row[1]) for row in conn.execute(query)}

    def notices(self) -> list[tuple[str, str, float]]:
        """``(key, message, since)`` of every notice, by key (unreadable ones skipped)."""
        query = select(notices_table).order_by(notices_table.c.key)
        with self._reading() as conn:
            return [
                (key, message, float(since))
                for key, message, since in conn.execute(query)
                if isinstance(key, str)
                and isinstance(message, str)
                and isinstance(since, int | float)
                and 0 <= since <= MAX_TIMESTAMP
            ]

    # -- writes outside a caller's transaction ----------------------------------------------

    def set_notice(self, key: str, message: str | None, *, now: float) -> None:
        """Record (or, with ``message`` None, clear) the notice ``key``; a notice that is
        already there keeps the time it was first recorded."""
        with self.transaction() as tx:
            tx.set_notice(key, message, now=now)

    def update_runs(self, changes: Sequence[dict[str, Any]]) -> None:
        """Apply run updates (each a dict with ``id`` and the columns to set) in one commit."""
        if changes:
            with self.transaction() as tx:
                tx.update_runs(changes)
