"""Occurrences that will not run, and their one ``missed`` record.

A run of due occurrences that will not run becomes one record (:func:`missed_record`), whose
``occurrences`` says how many it stands for and whose message says from when to when, in the
task's zone. The dispatcher makes one for those older than the catch-up window; a change of
a task (a pause, an edit of its schedule) for those that were due and had not run yet
(:func:`due_occurrences`), so that every due occurrence runs or is recorded.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, tzinfo

from scheduler.enums import RunStatus
from scheduler.logs import run_fields
from scheduler.models import TaskDefinition
from scheduler.pending import new_run_id
from scheduler.rows import missed_run
from scheduler.storage import RunRow, TaskRow
from scheduler.triggers import Backlog, backlog

__all__ = ["due_occurrences", "missed_record"]

logger = logging.getLogger(__name__)


def missed_record(
    task: TaskDefinition, found: Backlog, *, zone: tzinfo, now: float, why: str
) -> RunRow:
    """The one ``missed`` record of the occurrences ``found`` counts missed, logged as a
    warning: ``3 occurrence(s) from <first> to <last> <why>``, the times in ``zone``."""
    first, last = found.first_missed, found.last_missed
    assert first is not None
    assert last is not None
    more = " or more" if found.truncated else ""
    message = (
        f"{found.missed}{more} occurrence(s) from {first.astimezone(zone).isoformat()} to "
        f"{last.astimezone(zone).isoformat()} {why}"
    )
    run_id = new_run_id()
    logger.warning(
        "task %s: %s",
        task.id,
        message,
        extra=run_fields(task_id=task.id, run_id=run_id, status=RunStatus.MISSED),
    )
    return missed_run(
        run_id, task.id, first=first.timestamp(), count=found.missed, now=now, message=message
    )


def due_occurrences(
    task: TaskDefinition, row: TaskRow, *, now: float, default_timezone: str
) -> Backlog:
    """The occurrences of ``task`` (``row``'s definition) from ``row``'s next run time up to
    ``now``, every one of them counted missed (none, if that time is later or unset)."""
    now_dt = datetime.fromtimestamp(now, UTC)
    if row.next_run_time is None or row.next_run_time > now:
        return Backlog()
    trigger = task.build_trigger(
        anchor=datetime.fromtimestamp(row.anchor, UTC), default_timezone=default_timezone
    )
    first = datetime.fromtimestamp(row.next_run_time, UTC)
    # a cutoff after now: the catch-up window does not apply, nothing is due to run
    return backlog(trigger, first=first, now=now_dt, cutoff=now_dt + timedelta(seconds=1))
