"""PostgreSQL advisory locks, for one active scheduler per database."""

from __future__ import annotations

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from scheduler.storage.store import Store, translated

__all__ = ["AdvisoryLock", "try_advisory_lock"]


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
    with translated(store):
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
