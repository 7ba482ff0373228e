"""How a task definition becomes its stored row: next run time, interval anchor, and the
paused state, source and creation time it keeps when it is replaced."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from scheduler.codec import DefinitionError, decode, encode
from scheduler.models import TaskDefinition, TaskType
from scheduler.records import from_timestamp
from scheduler.settings import Settings
from scheduler.storage import DEFINITION_FORMAT, MAX_TIMESTAMP, TaskRow

__all__ = ["build_row", "first_run_time", "is_completed"]

logger = logging.getLogger(__name__)


def first_run_time(
    task: TaskDefinition, *, anchor: float, now: float, default_timezone: str
) -> float | None:
    """The first fire time of ``task`` at or after ``now`` (a one-time task's own time,
    even if past: the dispatcher then runs it or records it missed)."""
    trigger = task.build_trigger(
        anchor=datetime.fromtimestamp(anchor, UTC), default_timezone=default_timezone
    )
    moment = trigger.get_next_fire_time(None, datetime.fromtimestamp(now, UTC))
    if moment is None:
        return None
    timestamp: float = moment.timestamp()
    return timestamp if timestamp <= MAX_TIMESTAMP else None  # past the supported years


def build_row(
    task: TaskDefinition, old: TaskRow | None, *, now: float, source: str, settings: Settings
) -> TaskRow:
    """The row for ``task``, replacing ``old`` (if any).

    Replacing keeps the paused state and creation time, and keeps the next run time and
    interval anchor unless the schedule (or ``enabled``) changed.
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
        anchor = now
        next_run = None
        if task.enabled and not paused:
            next_run = first_run_time(task, anchor=now, now=now, default_timezone=settings.timezone)
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
    """An enabled, unpaused task with no next run: a one-time task that ran, or a schedule
    past its end date."""
    if row.paused or row.next_run_time is not None:
        return False
    try:
        return decode(row).enabled
    except DefinitionError:
        return False
