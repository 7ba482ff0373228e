"""The tables and their rows: ``scheduler_tasks`` (the job store: one row per task, the
definition as JSON text, never a pickle), ``scheduler_runs`` (run history) and
``scheduler_meta`` (schema version and the change counter)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text

__all__ = [
    "DEFINITION_FORMAT",
    "SCHEMA_VERSION",
    "RunRow",
    "TaskRow",
    "TaskStats",
    "meta_table",
    "metadata",
    "runs_table",
    "tasks_table",
]

SCHEMA_VERSION = 1
DEFINITION_FORMAT = 1

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
        return {name: getattr(self, name) for name in _RUN_FIELDS}


_RUN_FIELDS = tuple(f.name for f in fields(RunRow))


TASK_COLUMNS = [c.name for c in tasks_table.columns]
RUN_COLUMNS = [c.name for c in runs_table.columns]


def task_row(row: Any) -> TaskRow:
    return TaskRow(*row)


def run_row(row: Any) -> RunRow:
    return RunRow(**dict(zip(RUN_COLUMNS, row, strict=True)))
