"""Statements run on the driver's own cursor, for the few written on every change (a task
added, a run recorded): SQLAlchemy's execution of a small statement (its events, result
objects and per-row parameter processing) costs several times the SQL itself.

Each statement is still built with SQLAlchemy, compiled once per dialect, and run inside the
SQLAlchemy connection's transaction. Only for values that need no type conversion (numbers,
strings, booleans, None); rows come back as the driver gives them, to be checked by the
caller (:func:`~scheduler.storage.schema.task_row` does).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from typing import Any

from sqlalchemy import BindParameter, Connection, Insert, Select, Update, bindparam, null

__all__ = ["IN_MOST", "copy_rows", "execute_many", "execute_rows", "fetch_in", "fetch_one"]

IN_MOST = 500  # values of one IN (...) list
_NAMES = [f"v{i}" for i in range(IN_MOST)]  # its parameters

Build = Callable[[], Insert | Update | Select[Any]]
BuildIn = Callable[[list[BindParameter[Any]]], Select[Any]]  # a select of an IN list


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


def fetch_in(conn: Connection, key: str, build: BuildIn, values: list[str]) -> list[Any]:
    """The rows of ``build(params)``, a select whose ``IN`` list is ``params``, for each of
    ``values``: up to :data:`IN_MOST` a statement, each list made up to a power of two with
    its last value again (the same rows), so that a few statements serve every length."""
    found: list[Any] = []
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        for start in range(0, len(values), IN_MOST):
            part = values[start : start + IN_MOST]
            size = min(IN_MOST, 1 << (len(part) - 1).bit_length())
            statement = _compiled(conn, f"{key}:{size}", partial(_with_list, build, size), None)
            given = dict(zip(_NAMES, part + part[-1:] * (size - len(part)), strict=False))
            cursor.execute(statement.sql, statement.parameters(given))
            found += cursor.fetchall()
    finally:
        cursor.close()
    return found


def _with_list(build: BuildIn, size: int) -> Select[Any]:
    return build([bindparam(name) for name in _NAMES[:size]])


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
    conn: Connection,
    key: str,
    build: Callable[[], Insert],
    columns: tuple[str, ...],
    rows: list[tuple[Any, ...]],
) -> None:
    """:func:`execute_many` of an insert with each parameter set a tuple of ``columns``'
    values, in that order: a thousand runs inserted at once (a fan-out, a burst) skip a
    dict per row. On a driver with positional parameters (SQLite) a None is written as a
    ``NULL`` in the statement instead of a parameter: Python's ``sqlite3`` binds a None
    through its adapter lookup, several times the cost of a number or a text, and a queued
    run's row is mostly None (rows are grouped by where their Nones are)."""
    statement = _compiled(conn, key, build, list(columns))
    if statement.literals or statement.order is None:  # (named parameters: PostgreSQL)
        execute_many(conn, key, build, [dict(zip(columns, row, strict=True)) for row in rows])
        return
    groups: dict[tuple[bool, ...], list[tuple[Any, ...]]] = {}
    for row in rows:
        groups.setdefault(tuple(map(operator.is_not, row, repeat(None))), []).append(row)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        for given, group in groups.items():
            cursor.executemany(*_without_nones(conn, key, build, columns, given, group))
    finally:
        cursor.close()


def _without_nones(
    conn: Connection,
    key: str,
    build: Callable[[], Insert],
    columns: tuple[str, ...],
    given: tuple[bool, ...],
    rows: list[tuple[Any, ...]],
) -> tuple[str, list[tuple[Any, ...]]]:
    """The insert of ``rows`` (whose values are None where ``given`` is False) with
    ``NULL`` for those columns, and its parameters: the others' values, in its order."""
    names = [name for name, value in zip(columns, given, strict=True) if value]
    absent = [name for name, value in zip(columns, given, strict=True) if not value]
    mask = "".join("1" if value else "0" for value in given)
    statement = _compiled(  # (built the first time only)
        conn, f"{key}:{mask}", lambda: build().values({name: null() for name in absent}), names
    )
    assert statement.order is not None
    assert not statement.literals
    where = [columns.index(name) for name in statement.order]
    if len(where) < 2:  # (itemgetter of one index gives the value, not a tuple)
        return statement.sql, [tuple(row[i] for i in where) for row in rows]
    return statement.sql, list(map(operator.itemgetter(*where), rows))


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
