"""The SQLAlchemy engine of a database URL, set up as the store needs it.

SQLite files run in WAL mode with ``synchronous=NORMAL`` and a busy timeout; a transaction
begins with ``BEGIN IMMEDIATE`` when its connection asks for it (execution option
``immediate``), so a read-modify-write cannot interleave with another writer. Text that
is not valid UTF-8 (a row another program wrote) is read with U+FFFD in place of the bytes
that do not decode, as one bad value (a task's definition that then does not load, an
error message) and not a failure of every read that meets it. PostgreSQL connections are
checked by the pool before use.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, RootTransaction, create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from scheduler.exceptions import DatabaseBusyError, UsageError

__all__ = ["begin_without_waiting", "new_engine", "parse_url", "synchronous_pragma"]


def synchronous_pragma(synchronous: str) -> str:
    """The statement that sets SQLite's synchronous mode ``normal`` or ``full`` (the
    setting ``SCHEDULER_SQLITE_SYNCHRONOUS``) on a connection.

    Raises:
        ValueError: Another value.
    """
    if synchronous not in ("normal", "full"):
        raise ValueError(f"synchronous: expected normal or full, got {synchronous!r}")
    return f"PRAGMA synchronous={synchronous.upper()}"


_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def parse_url(url: str) -> URL:
    """``url`` parsed.

    Raises:
        UsageError: It is not a URL SQLAlchemy reads (the text is not repeated: it may
            hold a password).
    """
    try:
        return make_url(url)
    except ArgumentError:
        raise UsageError(
            "the database URL is not one SQLAlchemy reads, e.g. sqlite:///scheduler.db or "
            "postgresql+psycopg://user@host/db"
        ) from None


def new_engine(url: URL, *, busy_timeout: float, synchronous: str = "normal") -> Engine:
    """The engine of ``url`` (``sqlite://``: one shared in-memory connection; a SQLite
    file in WAL mode with ``synchronous``, ``normal`` or ``full``).

    Raises:
        UsageError: An unknown kind of database, or its driver is not installed.
    """
    try:
        return _engine(url, busy_timeout, synchronous)
    except (ArgumentError, ImportError) as exc:
        shown = url.render_as_string(hide_password=True)
        raise UsageError(f"database URL {shown}: {exc}") from None


def _engine(url: URL, busy_timeout: float, synchronous: str) -> Engine:
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=8)
    memory = url.database in (None, "", ":memory:")
    if memory:
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        engine = create_engine(url, connect_args={"timeout": busy_timeout}, pool_size=8)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let the "begin" event below issue BEGIN (pysqlite's own is broken).
        dbapi_connection.isolation_level = None
        dbapi_connection.text_factory = _text
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(synchronous_pragma(synchronous))
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get("immediate", False)
        # on the driver's own connection: through SQLAlchemy costs more than the BEGIN
        connection.connection.driver_connection.execute(  # type: ignore[union-attr]
            "BEGIN IMMEDIATE" if immediate else "BEGIN"
        )

    return engine


def begin_without_waiting(conn: Connection, busy_timeout: float) -> RootTransaction:
    """``conn.begin()``, on SQLite without waiting for another connection's write lock:
    the busy timeout is 0 for the ``BEGIN IMMEDIATE``, then ``busy_timeout`` seconds again
    (the transaction holds the lock from there on). PostgreSQL has no such lock.

    Raises:
        DatabaseBusyError: Another connection holds SQLite's write lock.
    """
    if conn.dialect.name != "sqlite":
        return conn.begin()
    driver = conn.connection.driver_connection
    assert driver is not None
    driver.execute("PRAGMA busy_timeout=0")
    try:
        return conn.begin()
    except Exception as exc:
        code = getattr(getattr(exc, "orig", exc), "sqlite_errorcode", None)
        if code is not None and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED):
            raise DatabaseBusyError("the database is locked by another connection") from exc
        raise
    finally:
        driver.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")


def _text(data: bytes) -> str:
    """A SQLite text value as a ``str``, the bytes that are not UTF-8 replaced (U+FFFD)."""
    return data.decode("utf-8", "replace")
