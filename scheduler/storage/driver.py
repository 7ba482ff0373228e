"""Statements run on the driver's own cursor, for the few written on every change (a task
added, a run recorded): SQLAlchemy's execution of a small statement (its events, result
objects and per-row parameter processing) costs several times the SQL itself.

Each statement is still built with SQLAlchemy, compiled once per dialect, and run inside the
SQLAlchemy connection's transaction. Only for values that need no type conversion (numbers,
strings, booleans, None); rows come back as the driver gives them, to be checked by the
caller (:func:`~scheduler.storage.schema.task_row` does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Insert, Select, Update

__all__ = ["copy_rows", "execute_many", "execute_rows", "fetch_one"]

Build = Callable[[], Insert | Update | Select[Any]]


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A statement compiled for one driver: its text, the parameter order if the driver's
    parameters are positional, and the values of the statement's own literals."""

    sql: str
    order: tuple[str, ...] | None
    literals: dict[str, Any]

    def parameters(self, given: dict[str, Any]) -> Any:
        values = {**self.literals, **given} if self.literals else given
        return values if self.order is None else tuple(values[k] for k in self.order)


# by dialect class, parameter style and statement key
_COMPILED: dict[tuple[type, str, str], _Compiled] = {}


def _compiled(conn: Connection, key: str, build: Build, columns: list[str] | None) -> _Compiled:
    dialect = conn.dialect
    cache_key = (type(dialect), dialect.paramstyle, key)
    entry = _COMPILED.get(cache_key)
    if entry is None:
        compiled = build().compile(dialect=dialect, column_keys=columns)
        order = tuple(compiled.positiontup or ()) if compiled.positional else None
        literals = {  # the statement's own values (a bindparam without one is the caller's)
            k: value
            for k, value in compiled.params.items()
            if k not in (columns or ()) and not compiled.binds[k].required
        }
        entry = _COMPILED[cache_key] = _Compiled(str(compiled), order, literals)
    return entry


def fetch_one(conn: Connection, key: str, build: Build, params: dict[str, Any]) -> Any:
    """The first row of ``build()`` (compiled once for ``key``), or None."""
    statement = _compiled(conn, key, build, None)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(statement.sql, statement.parameters(params))
        return cursor.fetchone()
    finally:
        cursor.close()


def execute_many(conn: Connection, key: str, build: Build, params: list[dict[str, Any]]) -> None:
    """``build()`` (compiled once for ``key``) once per parameter set; every set has the
    same keys."""
    statement = _compiled(conn, key, build, list(params[0]))
    rows = [statement.parameters(p) for p in params]
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if len(rows) == 1:
            cursor.execute(statement.sql, rows[0])
        else:
            cursor.executemany(statement.sql, rows)
    finally:
        cursor.close()


def execute_rows(
    conn: Connection, key: str, build: Build, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """:func:`execute_many` with each parameter set a tuple of ``columns``' values, in that
    order: a thousand runs inserted at once (a fan-out, a burst) skip a dict per row."""
    statement = _compiled(conn, key, build, list(columns))
    if statement.literals or statement.order is None:  # (named parameters: PostgreSQL)
        execute_many(conn, key, build, [dict(zip(columns, row, strict=True)) for row in rows])
        return
    if statement.order != columns:
        where = [columns.index(name) for name in statement.order]
        rows = [tuple(row[i] for i in where) for row in rows]
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(statement.sql, rows)
    finally:
        cursor.close()


def copy_rows(
    conn: Connection, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """Insert ``rows`` (tuples of ``columns``' values) with PostgreSQL's ``COPY``: about
    twice as fast as a pipelined ``executemany`` (10,000 runs due at once)."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    finally:
        cursor.close()
