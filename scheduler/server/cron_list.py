"""The Cron shape of a cron's task, and :class:`CronList`: every cron kept in memory, so
that searches and counts are answered on the event loop without a database read.

The list is read again (on a worker thread) after any task change this process commits
(the store's ``local_changes``), when the earliest next run comes (a firing moves it
without a change), and at least every ``poll_interval_seconds`` to see changes other
processes made, as the scheduler itself sees them; a cron the crons API itself creates or
deletes is applied to the list in place (:meth:`CronList.follow`), so a search right after
it reads nothing. Each cron's JSON is encoded once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scheduler.current import Definitions
from scheduler.enums import OverlapPolicy
from scheduler.exceptions import DefinitionError
from scheduler.models import TaskDefinition
from scheduler.server.replies import encode
from scheduler.task_scheduler import TaskScheduler

__all__ = [
    "CronList", "Crons", "cron_of", "cron_request", "end_time_of", "order_by", "schedule_of",
    "strategy_of",
]  # fmt: skip

# a task's overlap policy as the crons API's multitask_strategy (no name for "allow")
_STRATEGY_OF = {OverlapPolicy.SKIP: "reject", OverlapPolicy.QUEUE: "enqueue"}
_UNITS = (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60))


def cron_request(task: TaskDefinition) -> dict[str, Any] | None:
    """What the crons API keeps in the task of one of its crons (``task.request``); None
    when ``task`` is not such a cron: a task of another kind, or one whose request lacks
    a key or holds one of the wrong type (a row changed in the database, say). Whatever
    its schedule: REST or the CLI may have made it an interval or a one-time task since."""
    request = task.request
    if (
        request is None
        or request.get("kind") != "cron"
        or not isinstance(request.get("assistant_id"), str)
        or not isinstance(request.get("payload"), dict)
        or not isinstance(request.get("fields"), dict)
        or not isinstance(request.get("timezone"), str | None)
        or request.get("on_run_completed") not in (None, "delete", "keep")
    ):
        return None
    return request


def cron_of(
    task: TaskDefinition, next_run: float | None, paused: bool, created: float, updated: float
) -> dict[str, Any]:
    """The LangGraph SDK's Cron of a cron's task (see :func:`cron_request`)."""
    request = cron_request(task)
    assert request is not None
    zone = request.get("timezone")
    if task.timezone != (zone or "UTC"):  # changed through REST or the CLI since
        zone = task.timezone
    return {
        "cron_id": task.id,
        "assistant_id": request["assistant_id"],
        "thread_id": task.thread_id,
        "user_id": "",
        "end_time": end_time_of(task),
        "schedule": schedule_of(task),
        "timezone": zone,
        "payload": _payload_now(request["payload"], task, zone),
        "next_run_date": _utc(next_run),
        "metadata": task.metadata,
        "on_run_completed": request.get("on_run_completed"),
        "enabled": task.enabled and not paused,
        "created_at": _utc(created),
        "updated_at": _utc(updated),
    }


def _payload_now(payload: dict[str, Any], task: TaskDefinition, zone: str | None) -> dict[str, Any]:
    """The payload the crons API kept, with the fields as the task has them now (the REST
    API, the CLI may have changed them since); ``zone``: the cron's time zone now."""
    now = {**payload, "schedule": schedule_of(task)}
    if zone is not None or "timezone" in now:
        now["timezone"] = zone
    if "enabled" in now:
        now["enabled"] = task.enabled
    for key, value in (("input", task.input), ("context", task.context),
                       ("metadata", task.metadata), ("webhook", task.webhook)):  # fmt: skip
        if value is None or (value == {} and key not in now):  # an {} sent is kept
            now.pop(key, None)
        else:
            now[key] = value
    end = end_time_of(task)
    if end is None:
        now.pop("end_time", None)
    else:
        now["end_time"] = end
    strategy = strategy_of(task)
    if strategy is None:  # (REST set a policy the crons API has no name for)
        now.pop("multitask_strategy", None)
    elif "multitask_strategy" in now or strategy != "enqueue":  # (enqueue: the default)
        now["multitask_strategy"] = strategy
    return now


def schedule_of(task: TaskDefinition) -> str:
    """A cron's ``schedule``: its cron expression; for a task REST or the CLI made an
    interval or one-time one, the form the tasks file and the CLI take for it (``every 2
    hours``, ``at 2030-03-15T14:00:00+00:00``, in UTC); for one that only runs after other
    tasks, those (``after fetch-sales``)."""
    if task.cron_expression is not None:
        return task.cron_expression
    if task.interval_seconds is not None:
        seconds = task.interval_seconds
        for unit, size in _UNITS:
            if seconds >= size and seconds % size == 0:
                count = int(seconds // size)
                return f"every {count} {unit}{'s' if count != 1 else ''}"
        text = str(int(seconds)) if seconds == int(seconds) else repr(float(seconds))
        return f"every {text} second{'s' if seconds != 1 else ''}"
    if task.run_at is not None:
        return f"at {task.run_at.astimezone(UTC).isoformat()}"
    return task.after.words() if task.after is not None else task.task_type.value


def end_time_of(task: TaskDefinition) -> str | None:
    """A cron's ``end_time``, in its payload too: the task's end date in UTC, ISO 8601 (as
    the SDK sends a UTC datetime: ``+00:00``)."""
    return task.end_date.astimezone(UTC).isoformat() if task.end_date else None


def strategy_of(task: TaskDefinition) -> str | None:
    """A cron's ``multitask_strategy`` as its task's overlap policy is now (None for one
    the crons API has no name for: ``allow``, or none, the scheduler's setting)."""
    return _STRATEGY_OF.get(task.overlap) if task.overlap is not None else None


def _utc(moment: float | None) -> str | None:
    return datetime.fromtimestamp(moment, UTC).isoformat() if moment is not None else None


@dataclass(slots=True)
class Crons:
    """Every cron, newest first, with each one's JSON and their ids, as of ``revision`` and
    ``changes`` (the store's count of local changes); ``soonest``: the earliest next run
    among them; ``checked``: when the revision was last read (monotonic)."""

    revision: int
    changes: int
    soonest: float
    checked: float
    crons: list[dict[str, Any]]
    encoded: list[bytes]
    ids: set[str]


class CronList:
    """The crons of ``source`` in ``scheduler``'s database, kept (see the module doc)."""

    def __init__(self, scheduler: TaskScheduler, source: str) -> None:
        self.scheduler = scheduler
        self.source = source
        self._kept: Crons | None = None
        self._definitions = Definitions(most=None)  # pruned to the crons at each read

    def kept(self) -> Crons | None:
        """The kept list if it is still valid (no database read: safe on the event loop)."""
        kept, scheduler = self._kept, self.scheduler
        if (
            kept is None
            or kept.changes != scheduler.store.local_changes
            or time.monotonic() - kept.checked >= scheduler.settings.poll_interval_seconds
            or scheduler.now().timestamp() >= kept.soonest
        ):
            return None
        return kept

    def follow(self, before: int, *, added: dict[str, Any] | None = None,
               removed: str | None = None) -> None:  # fmt: skip
        """Bring the kept list along with a change this process just committed (a cron
        ``added``, or the id of one ``removed``), on the event loop, without a read: only if
        that change is the only one since ``before`` (the store's ``local_changes`` just
        before it) and the list was current then. Otherwise the next search reads again."""
        kept, changes = self._kept, self.scheduler.store.local_changes
        if kept is None or kept.changes != before or changes != before + 1:
            return
        crons, encoded = kept.crons, kept.encoded
        if added is not None and added["cron_id"] not in kept.ids:  # (a read may have it)
            newest = order_by("created_at")
            if crons and newest(added) < newest(crons[0]):
                return  # not the newest (a clock set back): its place needs the full sort
            crons.insert(0, added)
            encoded.insert(0, encode(added))
            kept.ids.add(added["cron_id"])
            if added["next_run_date"] is not None:
                moment = datetime.fromisoformat(added["next_run_date"]).timestamp()
                kept.soonest = min(kept.soonest, moment)
        if removed is not None and removed in kept.ids:
            kept.ids.discard(removed)
            for i, cron in enumerate(crons):
                if cron["cron_id"] == removed:
                    del crons[i], encoded[i]
                    break
        kept.changes = changes

    def read(self) -> Crons:
        """The list, read again if the database changed (reads it: off the event loop)."""
        store = self.scheduler.store
        changes = store.local_changes  # before the reads: a change meanwhile shows next time
        revision = store.revision()
        kept = self._kept
        if (
            kept is not None
            and (kept.revision, kept.changes) == (revision, changes)
            and self.scheduler.now().timestamp() < kept.soonest
        ):
            kept.checked = time.monotonic()
            return kept
        crons, soonest = self._rows()
        crons.sort(key=order_by("created_at"), reverse=True)
        encoded = [encode(c) for c in crons]
        ids = {c["cron_id"] for c in crons}
        self._kept = Crons(revision, changes, soonest, time.monotonic(), crons, encoded, ids)
        return self._kept

    def _rows(self) -> tuple[list[dict[str, Any]], float]:
        """Every cron from the rows of the source (each definition decoded once per stored
        version; no run statistics, which a Cron does not show), and the soonest next run."""
        crons = []
        seen = set()
        soonest = float("inf")
        for row in self.scheduler.store.iter_tasks(source=self.source):
            try:
                task = self._definitions.of(row)
            except DefinitionError:
                continue
            seen.add(row.id)
            if cron_request(task) is None:
                continue
            next_run = row.next_run_time if task.enabled and not row.paused else None
            if next_run is not None:
                soonest = min(soonest, next_run)
            crons.append(cron_of(task, next_run, row.paused, row.created_at, row.updated_at))
        self._definitions.keep_only(seen)
        return crons, soonest


def order_by(key: str) -> Callable[[dict[str, Any]], str]:
    """The sort key of crons by field ``key``, as the LangGraph server sorts them: an id by
    its lower-case text (no thread: ``"none"``), a date by its ISO text in UTC (none: the
    earliest)."""
    if key in ("cron_id", "assistant_id", "thread_id"):
        return lambda cron: str(cron[key]).lower()
    return lambda cron: cron[key] or ""
