"""Where tasks and runs meet their rows: the one mapping between definitions and runs and
the rows of ``scheduler_tasks`` / ``scheduler_runs``.

* A definition is stored as ``TaskDefinition.model_dump(mode="json")`` text plus a format
  number, never a pickle (:func:`encode`, :func:`decode`); a row this version cannot load
  raises :class:`~scheduler.exceptions.DefinitionError`, and callers keep such rows.
* :func:`task_row_for` builds a task's row (next run time, interval anchor, and what a
  replaced row keeps); :func:`task_info` and :func:`run_record` turn rows into what the
  scheduler reports.
* Run rows are made by the named builders :func:`queued_run`, :func:`skipped_run`,
  :func:`missed_run` (and :func:`finished_run` for the record of a run that just ended),
  and changed by :func:`settled` (a final status with its reason).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from scheduler.documents import DocumentError, load_json
from scheduler.enums import OverlapPolicy, RunStatus, RunTrigger, TaskState, TaskType
from scheduler.exceptions import DefinitionError, TaskNotRunnableError, describe_errors
from scheduler.invocation import Outcome
from scheduler.models import TaskDefinition
from scheduler.pending import PendingRun, upstream_of
from scheduler.records import RunRecord, TaskInfo, from_timestamp
from scheduler.schedule_fields import same_grid
from scheduler.settings import Settings
from scheduler.storage import DEFINITION_FORMAT, MAX_TIMESTAMP, RunRow, TaskRow, TaskStats
from scheduler.stored_definitions import read_stored
from scheduler.triggers.preview import fire_times

__all__ = [
    "decode",
    "decode_or_raise",
    "encode",
    "finished_run",
    "first_run_time",
    "is_completed",
    "missed_run",
    "queued_run",
    "run_record",
    "run_time_after",
    "settled",
    "skipped_run",
    "task_info",
    "task_row_for",
]

logger = logging.getLogger(__name__)


# -- definitions ------------------------------------------------------------------------------


def encode(task: TaskDefinition) -> str:
    """The definition as stored: compact JSON without unset (None) fields."""
    return task.model_dump_json(exclude_none=True)


def decode(row: TaskRow) -> TaskDefinition:
    """Load the definition stored in ``row``.

    Raises:
        DefinitionError: The row was written by a newer version or does not validate.
    """
    if row.problem is not None:
        raise DefinitionError(f"its stored row cannot be used: {row.problem}")
    if row.format > DEFINITION_FORMAT:
        raise DefinitionError(
            f"stored in format {row.format} by a newer version of this package "
            f"(this one reads format {DEFINITION_FORMAT}); upgrade to load it"
        )
    try:
        return read_stored(row.definition)
    except ValidationError as exc:
        problems = describe_errors(exc, whole="definition")
        raise DefinitionError(f"stored definition does not load: {problems}") from exc
    except Exception as exc:  # a value a validator trips over: still a row that cannot load
        raise DefinitionError(f"stored definition does not load: {exc!r}") from exc


# -- task rows ----------------------------------------------------------------------------------


def decode_or_raise(row: TaskRow) -> TaskDefinition:
    """The definition stored in ``row``, for an operation that needs it.

    Raises:
        TaskNotRunnableError: It cannot be loaded (the reason is in the message).
    """
    try:
        return decode(row)
    except DefinitionError as exc:
        raise TaskNotRunnableError(row.id, str(exc)) from exc


def first_run_time(
    task: TaskDefinition, *, anchor: float, now: float, default_timezone: str
) -> float | None:
    """The first fire time of ``task`` at or after ``now`` (a one-time task's own time,
    even if past: the dispatcher then runs it or records it missed). A cron schedule with
    no ``start_date`` starts after ``now``, as every preview of it shows: set at 09:00:00
    sharp (a test clock), ``0 9 * * *`` first fires tomorrow, not the moment it is set."""
    trigger = task.build_trigger(
        anchor=datetime.fromtimestamp(anchor, UTC), default_timezone=default_timezone
    )
    moment: datetime | None
    if task.task_type is TaskType.CRON and task.start_date is None:
        found = fire_times(trigger, after=datetime.fromtimestamp(now, UTC), count=1)
        moment = found[0] if found else None
    else:
        moment = trigger.get_next_fire_time(None, datetime.fromtimestamp(now, UTC))
    if moment is None:
        return None
    timestamp: float = moment.timestamp()
    return timestamp if timestamp <= MAX_TIMESTAMP else None  # past the supported years


def run_time_after(
    task: TaskDefinition, *, anchor: float, after: float, default_timezone: str
) -> float | None:
    """The first fire time of ``task`` strictly after ``after`` (None: there is none)."""
    trigger = task.build_trigger(
        anchor=datetime.fromtimestamp(anchor, UTC), default_timezone=default_timezone
    )
    found = fire_times(trigger, after=datetime.fromtimestamp(after, UTC), count=1)
    timestamp = found[0].timestamp() if found else None
    return timestamp if timestamp is not None and timestamp <= MAX_TIMESTAMP else None


def task_row_for(
    task: TaskDefinition, old: TaskRow | None, *, now: float, source: str, settings: Settings
) -> TaskRow:
    """The row for ``task``, replacing ``old`` (if any).

    Replacing keeps the paused state and creation time, and keeps the next run time and
    interval anchor unless the schedule (or ``enabled``) changed (the anchor, an interval's
    grid, while its interval and ``start_date`` stay: an end or a zone moves no time).
    """
    previous: TaskDefinition | None = None
    if old is not None:
        try:
            previous = decode(old)
        except DefinitionError:
            previous = None
    paused = old.paused if old is not None else False
    if (
        old is not None
        and previous is not None
        and (previous.schedule_key() == task.schedule_key() and previous.enabled == task.enabled)
    ):
        anchor, next_run = old.anchor, old.next_run_time
    else:
        anchor = old.anchor if old is not None and same_grid(previous, task) else now
        next_run = None
        if task.enabled and not paused:
            next_run = first_run_time(
                task, anchor=anchor, now=now, default_timezone=settings.timezone
            )
        _warn_if_past(task, next_run, now, settings)
    return TaskRow(
        id=task.id,
        definition=encode(task),
        format=DEFINITION_FORMAT,
        next_run_time=next_run,
        paused=paused,
        anchor=anchor,
        source=source,
        created_at=old.created_at if old is not None else now,
        updated_at=now,
    )


def _warn_if_past(
    task: TaskDefinition, next_run: float | None, now: float, settings: Settings
) -> None:
    if task.task_type is not TaskType.ONE_TIME or next_run is None:
        return
    grace = task.misfire_grace_seconds
    if grace is None:
        grace = settings.misfire_grace_seconds
    if now - next_run > grace:
        logger.warning(
            "task %s: run_at %s is older than the catch-up window (%g s); it will be "
            "recorded as missed",
            task.id,
            from_timestamp(next_run),
            grace,
        )


def is_completed(row: TaskRow) -> bool:
    """An enabled, unpaused task with no next run: a one-time task that fired, or a
    schedule past its end date (from the row alone: its last run may not be final yet)."""
    if row.paused or row.next_run_time is not None:
        return False
    try:
        task = decode(row)
    except DefinitionError:
        return False
    return task.enabled and task.after is None  # one that runs after others never ends


def task_info(row: TaskRow, stats: TaskStats, *, keep: bool = True) -> TaskInfo:
    """The record of ``row``; ``keep`` False: its definition is checked, then dropped, and
    read again from the JSON if asked for (a long list holds strings, not models)."""
    definition: TaskDefinition | None = None
    error: str | None = None
    try:
        definition = decode(row)
    except DefinitionError as exc:
        error = str(exc)
    if definition is None:
        state = TaskState.ERROR
    elif row.paused:
        state = TaskState.PAUSED
    elif not definition.enabled:
        state = TaskState.DISABLED
    elif row.next_run_time is None and definition.after is None and not stats.open_runs:
        state = TaskState.COMPLETED  # (its last run ended: it is active while one is going)
    else:
        state = TaskState.ACTIVE
    name = definition.name if definition is not None else row.id
    info = TaskInfo(
        id=row.id,
        name=name,
        state=state,
        next_run=from_timestamp(row.next_run_time) if state is TaskState.ACTIVE else None,
        paused=row.paused,
        source=row.source,
        created_at=datetime.fromtimestamp(row.created_at, UTC),
        updated_at=datetime.fromtimestamp(row.updated_at, UTC),
        last_run=from_timestamp(stats.last_run_at),
        last_status=RunStatus(stats.last_status) if stats.last_status else None,
        last_error=stats.last_error,
        run_count=stats.run_count,
        error=error,
        stored=row.definition if definition is not None else None,
    )
    if keep and definition is not None:
        info._model = definition
    return info


def run_record(row: RunRow) -> RunRecord:
    """What the scheduler reports about a run row (its stored JSON read within bounds)."""
    problem = row.problem
    interrupts: list[Any] | None = None
    if row.interrupts is not None:
        try:
            value = load_json(row.interrupts, what="interrupts")
        except DocumentError as exc:
            problem = "; ".join(p for p in (problem, str(exc)) if p)
        else:
            interrupts = value if isinstance(value, list) else [value]
    upstream, bad = upstream_of(row)
    if bad:
        problem = "; ".join(p for p in (problem, bad) if p)
    return RunRecord(
        id=row.id,
        task_id=row.task_id,
        status=RunStatus(row.status),
        scheduled_for=datetime.fromtimestamp(row.scheduled_for, UTC),
        queued_at=datetime.fromtimestamp(row.queued_at, UTC),
        started_at=from_timestamp(row.started_at),
        finished_at=from_timestamp(row.finished_at),
        attempt=row.attempt,
        occurrences=row.occurrences,
        trigger=RunTrigger(row.trigger),
        thread_id=row.thread_id,
        error_type=row.error_type,
        error_message=row.error_message,
        error_traceback=row.error_traceback,
        output=row.output,
        problem=problem,
        interrupts=interrupts,
        waiting_since=from_timestamp(row.waiting_since),
        answered=row.answer is not None,
        upstream=upstream,
        retry_of=row.retry_of,
    )


# -- run rows ---------------------------------------------------------------------------------


def queued_run(
    run_id: str,
    task_id: str,
    *,
    scheduled_for: float,
    queued_at: float,
    trigger: RunTrigger = RunTrigger.SCHEDULE,
    attempt: int = 1,
    occurrences: int = 1,
    not_before: float | None = None,
    upstream: dict[str, Any] | str | None = None,
    thread_id: str | None = None,
    retry_of: str | None = None,
) -> RunRow:
    """A run waiting to start: a due occurrence (or several, coalesced), a manual run, a
    retry, or a dependency run (with its ``upstream`` runs' outcomes, or their JSON text,
    encoded once for the many runs of a fan-out); ``thread_id``: the thread it is to run
    on, when known (its task's)."""
    return RunRow(
        id=run_id,
        task_id=task_id,
        scheduled_for=scheduled_for,
        queued_at=queued_at,
        status=RunStatus.QUEUED,
        trigger=trigger,
        attempt=attempt,
        occurrences=occurrences,
        not_before=not_before,
        upstream=json.dumps(upstream) if isinstance(upstream, dict) else upstream,
        thread_id=thread_id,
        retry_of=retry_of,
    )


def skipped_run(
    run_id: str,
    task_id: str,
    *,
    scheduled_for: float,
    now: float,
    occurrences: int,
    policy: OverlapPolicy,
) -> RunRow:
    """An occurrence that came while the task's previous run was going (overlap policy)."""
    return RunRow(
        id=run_id,
        task_id=task_id,
        scheduled_for=scheduled_for,
        queued_at=now,
        finished_at=now,
        status=RunStatus.SKIPPED,
        trigger=RunTrigger.SCHEDULE,
        occurrences=occurrences,
        error_type="Overlap",
        error_message=f"the previous run was still going (overlap policy {policy.value!r})",
    )


def missed_run(
    run_id: str, task_id: str, *, first: float, count: int, now: float, message: str
) -> RunRow:
    """``count`` occurrences, the first at ``first``, that fell outside the catch-up window."""
    return RunRow(
        id=run_id,
        task_id=task_id,
        scheduled_for=first,
        queued_at=now,
        finished_at=now,
        status=RunStatus.MISSED,
        trigger=RunTrigger.SCHEDULE,
        occurrences=count,
        error_type="Missed",
        error_message=message,
    )


def finished_run(
    pending: PendingRun,
    outcome: Outcome,
    *,
    thread_id: str,
    started: float | None,
    finished: float | None,
) -> RunRecord:
    """The record of a run that just started (``finished`` None), ended or stopped to wait
    (``finished``: when it did; as stored, it has no end then, only ``waiting_since``):
    what an ``on_failure_callback`` or ``on_waiting_callback`` receives, and what run
    events carry; ``started`` None: settled without starting here."""
    waiting = outcome.status is RunStatus.WAITING
    return run_record(
        RunRow(
            id=pending.run_id,
            task_id=pending.task.id,
            scheduled_for=pending.scheduled_for,
            queued_at=pending.queued_at or started or pending.scheduled_for,
            status=outcome.status,
            trigger=pending.trigger,
            attempt=pending.attempt,
            occurrences=pending.occurrences,
            started_at=started,
            finished_at=None if waiting else finished,
            thread_id=thread_id,
            error_type=outcome.error_type,
            error_message=outcome.error_message,
            error_traceback=outcome.error_traceback,
            output=outcome.output,
            interrupts=outcome.interrupts,
            waiting_since=finished if waiting else None,
            answer=None,
        )
    )


def settled(
    run_id: str, status: RunStatus, *, now: float, kind: str, message: str
) -> dict[str, Any]:
    """The change that gives a run its final ``status``, with why (``kind``, ``message``)."""
    return {
        "id": run_id,
        "status": status,
        "finished_at": now,
        "error_type": kind,
        "error_message": message,
    }
