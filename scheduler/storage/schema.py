"""The tables and their rows: ``scheduler_tasks`` (the job store: one row per task, the
definition as JSON text, never a pickle), ``scheduler_runs`` (run history) and
``scheduler_notices`` (what ``list`` should say about a source, such as a tasks file that
could not be applied) and ``scheduler_meta`` (schema version and the change counter).

What is read back is untrusted: anyone with write access to the database (or a disk fault)
can put any value in any column, and SQLite keeps a text in a REAL column as text. Each
value read is checked against its column's type and range; one that fails is replaced by a
harmless placeholder and the row's ``problem`` says which column held what. Callers never
fire, resume or convert such a row as if it were sound: a task row with a problem loads as
an error (``state="error"``), a run row is listed with its problem.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Boolean, Column, Float, Index, Integer, MetaData, String, Table, Text

__all__ = [
    "DEFINITION_FORMAT",
    "SCHEMA_VERSION",
    "RunRow",
    "TaskRow",
    "TaskStats",
    "deliveries_table",
    "links_table",
    "meta_table",
    "metadata",
    "notices_table",
    "run_row",
    "runs_table",
    "task_row",
    "task_stats",
    "tasks_table",
    "threads_table",
    "waits_table",
    "workers_table",
]

SCHEMA_VERSION = 9
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
    Column("source", String(255), nullable=False, index=True),
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
    # Schema 2: human in the loop.
    Column("interrupts", Text),  # JSON: what interrupt() asked, while waiting
    Column("answer", Text),  # JSON: the answer given, until the run resumes with it
    Column("waiting_since", Float),
    # Schema 4: workflows.
    Column("upstream", Text),  # JSON: the upstream runs a dependency run was started by
    # Schema 6: workers. NULL: run by the active scheduler's process (role ``all``); "*":
    # queued for any worker to claim; else the id of the worker that holds it.
    Column("worker", String(255)),
    Column("max_running", Integer),  # a worker claims it only below this many of its task's
    Column("priority_rank", Integer),  # claim order (0 = critical), then scheduled_for
    # Schema 7: when a process that does not run it asked to cancel it (the process or
    # worker that runs it cancels it when it next looks).
    Column("cancel_requested", Float),
    # Schema 9: the attempt a retry retries (its outcome is the retry's, wait_for_outcome)
    Column("retry_of", String(32)),
    Index("ix_scheduler_runs_task", "task_id", "id"),
    Index("ix_scheduler_runs_status", "status"),
    Index("ix_scheduler_runs_thread", "thread_id", "id"),  # schema 5: runs of a thread
)

# Schema 4: workflows. Which tasks run after which (one row per ``after`` entry), and the
# upstream outcomes that count toward each downstream's next run (cleared when it fires).
links_table = Table(
    "scheduler_task_links",
    metadata,
    Column("downstream_id", String(128), primary_key=True),
    Column("upstream_id", String(128), primary_key=True, index=True),
)

waits_table = Table(
    "scheduler_waits",
    metadata,
    Column("downstream_id", String(128), primary_key=True),
    Column("upstream_id", String(128), primary_key=True),
    Column("run_id", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("finished_at", Float, nullable=False),
)

# Schema 5: the threads made through the LangGraph SDK's threads.create (the HTTP server's
# crons API); the threads that runs used are read from the runs themselves.
threads_table = Table(
    "scheduler_threads",
    metadata,
    Column("thread_id", String(255), primary_key=True),
    Column("metadata", Text, nullable=False),  # JSON object
    Column("created_at", Float, nullable=False),
)

# Schema 5: webhook deliveries, one row per attempt.
deliveries_table = Table(
    "scheduler_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False, index=True),
    Column("url", Text, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
)

# Schema 6: worker processes and their heartbeats (database time, UNIX seconds).
workers_table = Table(
    "scheduler_workers",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("lease_seconds", Float),  # schema 8: the worker's own lease (None: the leader's)
)

notices_table = Table(
    "scheduler_notices",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("message", Text, nullable=False),
    Column("created_at", Float, nullable=False),
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
    problem: str | None = None  # why a stored value cannot be used (not a column)


@dataclass(slots=True)
class TaskStats:
    """Run counts and the latest run of one task."""

    run_count: int = 0
    last_run_id: str | None = None
    last_run_at: float | None = None
    last_status: str | None = None
    last_error: str | None = None
    open_runs: bool = False  # a run of it is queued, running or waiting for an answer


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
    interrupts: str | None = None
    answer: str | None = None
    waiting_since: float | None = None
    upstream: str | None = None
    worker: str | None = None
    max_running: int | None = None
    priority_rank: int | None = None
    cancel_requested: float | None = None
    retry_of: str | None = None
    problem: str | None = None  # why a stored value cannot be used (not a column)

    def as_values(self) -> tuple[Any, ...]:
        """The row's values of :data:`RUN_FIELDS`, in that order (insert parameters)."""
        return _run_values(self)


TASK_COLUMNS = [c.name for c in tasks_table.columns]
RUN_COLUMNS = [c.name for c in runs_table.columns]
_ROW_FIELDS = {f.name for f in fields(RunRow)}
RUN_FIELDS = tuple(c for c in RUN_COLUMNS if c in _ROW_FIELDS)  # (the table's order)
_run_values = operator.attrgetter(*RUN_FIELDS)

#: Stored times must lie in 1970-2999 (UNIX seconds), as every time the package writes does.
MAX_TIMESTAMP = 32_503_680_000.0
#: A run of these statuses is not final yet.
OPEN_STATUSES = ("queued", "running", "waiting")
RUN_STATUSES = frozenset(
    (
        *OPEN_STATUSES,
        "succeeded",
        "failed",
        "timed_out",
        "cancelled",
        "interrupted",
        "skipped",
        "missed",
    )
)
RUN_TRIGGERS = frozenset(("schedule", "manual", "retry", "dependency"))


class _Checker:
    """Checks the values of one row read from the database; collects what is wrong."""

    __slots__ = ("problems",)

    def __init__(self) -> None:
        self.problems: list[str] = []

    def _bad(self, column: str, value: Any, expected: str) -> None:
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        self.problems.append(f"column {column} holds {shown}, not {expected}")

    def time(self, column: str, value: Any, *, optional: bool = False) -> Any:
        if value is None and optional:
            return None
        is_number = type(value) is float or type(value) is int
        if is_number and 0.0 <= value <= MAX_TIMESTAMP:  # NaN fails this too
            return float(value)
        self._bad(column, value, "a time in 1970-2999 (UNIX seconds)")
        return None if optional else 0.0

    def text(self, column: str, value: Any, *, optional: bool = False, default: str = "") -> Any:
        if type(value) is str or (value is None and optional):
            return value
        self._bad(column, value, "text")
        return None if optional else default

    def count(self, column: str, value: Any, *, low: int = 0, optional: bool = False) -> Any:
        if value is None and optional:
            return None
        if type(value) is int and low <= value <= 2**31:
            return value
        if type(value) is float and value.is_integer() and low <= value <= 2**31:
            return int(value)
        self._bad(column, value, f"a whole number from {low}")
        return max(low, 1)

    def flag(self, column: str, value: Any) -> bool:
        if value in (0, 1) and type(value) in (bool, int):
            return bool(value)
        self._bad(column, value, "a boolean")
        return True

    def choice(self, column: str, value: Any, choices: frozenset[str], default: str) -> str:
        if type(value) is str and value in choices:
            return value
        self._bad(column, value, "one of " + ", ".join(sorted(choices)))
        return default

    @property
    def problem(self) -> str | None:
        return "; ".join(self.problems) if self.problems else None


def task_row(row: Any) -> TaskRow:
    """A :class:`TaskRow` from a database row, every value checked (see the module doc)."""
    id_, definition, format_, next_run, paused, anchor, source, created, updated = row
    if (
        type(id_) is str
        and type(definition) is str
        and type(format_) is int
        and (paused is True or paused is False or (type(paused) is int and 0 <= paused <= 1))
        and type(source) is str
        and type(anchor) is float
        and type(created) is float
        and type(updated) is float
        and (next_run is None or (type(next_run) is float and 0.0 <= next_run <= MAX_TIMESTAMP))
        and 0.0 <= anchor <= MAX_TIMESTAMP  # NaN fails these comparisons, infinities the bounds
        and 0.0 <= created <= MAX_TIMESTAMP
        and 0.0 <= updated <= MAX_TIMESTAMP
    ):
        flag = paused is True or paused == 1  # SQLite's own cursor gives 0 / 1
        return TaskRow(id_, definition, format_, next_run, flag, anchor, source, created, updated)
    check = _Checker()
    result = TaskRow(
        id=id_ if type(id_) is str else repr(id_),
        definition=check.text("definition", definition),
        format=check.count("format", format_),
        next_run_time=check.time("next_run_time", next_run, optional=True),
        paused=check.flag("paused", paused),
        anchor=check.time("anchor", anchor),
        source=check.text("source", source, default="unknown"),
        created_at=check.time("created_at", created),
        updated_at=check.time("updated_at", updated),
    )
    if type(id_) is not str:
        check.problems.insert(0, f"column id holds {id_!r}, not text")
    result.problem = check.problem
    if result.problem is not None:
        result.next_run_time = None  # a row that cannot be trusted never comes due
    return result


def run_row(row: Any) -> RunRow:
    """A :class:`RunRow` from a database row, every value checked (see the module doc)."""
    values = dict(zip(RUN_COLUMNS, row, strict=True))
    check = _Checker()
    result = RunRow(
        id=values["id"] if type(values["id"]) is str else repr(values["id"]),
        task_id=check.text("task_id", values["task_id"], default="?"),
        scheduled_for=check.time("scheduled_for", values["scheduled_for"]),
        queued_at=check.time("queued_at", values["queued_at"]),
        status=check.choice("status", values["status"], RUN_STATUSES, "unknown"),
        trigger=check.choice("trigger", values["trigger"], RUN_TRIGGERS, "schedule"),
        attempt=check.count("attempt", values["attempt"], low=1),
        occurrences=check.count("occurrences", values["occurrences"], low=0),
        started_at=check.time("started_at", values["started_at"], optional=True),
        finished_at=check.time("finished_at", values["finished_at"], optional=True),
        not_before=check.time("not_before", values["not_before"], optional=True),
        thread_id=check.text("thread_id", values["thread_id"], optional=True),
        error_type=check.text("error_type", values["error_type"], optional=True),
        error_message=check.text("error_message", values["error_message"], optional=True),
        error_traceback=check.text("error_traceback", values["error_traceback"], optional=True),
        output=check.text("output", values["output"], optional=True),
        interrupts=check.text("interrupts", values["interrupts"], optional=True),
        answer=check.text("answer", values["answer"], optional=True),
        waiting_since=check.time("waiting_since", values["waiting_since"], optional=True),
        upstream=check.text("upstream", values["upstream"], optional=True),
        worker=check.text("worker", values["worker"], optional=True),
        max_running=check.count("max_running", values["max_running"], low=1, optional=True),
        priority_rank=check.count("priority_rank", values["priority_rank"], optional=True),
        cancel_requested=check.time("cancel_requested", values["cancel_requested"], optional=True),
        retry_of=check.text("retry_of", values["retry_of"], optional=True),
    )
    if type(values["id"]) is not str:
        check.problems.insert(0, f"column id holds {values['id']!r}, not text")
    result.problem = check.problem
    return result


def task_stats(row: Any) -> tuple[str, TaskStats]:
    """Per-task run statistics from ``Store.task_stats``'s query, every value checked."""
    task_id, count, last_id, queued_at, status, error = row
    check = _Checker()
    stats = TaskStats(
        run_count=check.count("count", count),
        last_run_id=check.text("id", last_id, optional=True),
        last_run_at=check.time("queued_at", queued_at, optional=True),
        last_status=check.choice("status", status, RUN_STATUSES, "unknown"),
        last_error=check.text("error_message", error, optional=True),
    )
    if check.problem and not stats.last_error:
        stats.last_error = f"the latest run record cannot be read: {check.problem}"
    return str(task_id), stats
