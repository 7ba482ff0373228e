"""Creating and upgrading the tables (called by ``Store.setup``)."""

from __future__ import annotations

from sqlalchemy import Connection, insert, inspect, text, update
from sqlalchemy.exc import IntegrityError

from scheduler.storage.schema import (
    SCHEMA_VERSION,
    meta_table,
    metadata,
    runs_table,
    tasks_table,
    workers_table,
)

__all__ = ["create_tables", "insert_ignore", "migrate"]


def create_tables(conn: Connection) -> None:
    """Create what is missing, in ``conn``'s transaction. On PostgreSQL processes starting
    together (a leader and its workers) take turns: the check and the creation would race."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(  # two keys: apart from the leader's lock (one key)
                "SELECT pg_advisory_xact_lock(hashtext('scheduler-schema'), "
                "hashtext(current_schema()))"
            )
        )
    metadata.create_all(conn)


def migrate(conn: Connection, schema: int) -> None:
    """Bring a database of an older schema up to :data:`SCHEMA_VERSION`: add the columns and
    indexes it lacks (every change so far only adds nullable columns and indexes), then
    record the version."""
    for table in (tasks_table, runs_table, workers_table):
        present = {column["name"] for column in inspect(conn).get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')
        indexes = {index["name"] for index in inspect(conn).get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(conn)
    conn.execute(
        update(meta_table).where(meta_table.c.key == "schema").values(value=SCHEMA_VERSION)
    )


def insert_ignore(conn: Connection, key: str, value: int) -> None:
    try:
        with conn.begin_nested():
            conn.execute(insert(meta_table).values(key=key, value=value))
    except IntegrityError:
        pass  # another process created it first
