"""What a cron's fields make of its task: :func:`cron_task` for a creation (the task of the
fields sent), :func:`patched_task` for a ``PATCH`` (the fields sent over the task as it is
now, REST's and the CLI's changes kept), and the run payload the crons API keeps in the
task's ``request`` to answer back (:func:`cron_payload`).

A cron's ``schedule`` is a cron expression. A task REST or the CLI made an interval or a
one-time task stays a cron (:func:`scheduler.server.cron_list.schedule_of` says its
schedule); a ``PATCH`` that does not send a ``schedule`` keeps that schedule, one that
sends a cron expression makes it a cron again.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from pydantic import ValidationError

from scheduler.enums import OverlapPolicy, TaskType
from scheduler.exceptions import describe_errors
from scheduler.limits import TEXT_LIMITS
from scheduler.models import TaskDefinition
from scheduler.server.cron_list import cron_request, end_time_of, schedule_of

__all__ = ["STRATEGIES", "cron_name", "cron_payload", "cron_task", "patched_task"]

STRATEGIES: dict[str, OverlapPolicy] = {
    "reject": OverlapPolicy.SKIP,
    "enqueue": OverlapPolicy.QUEUE,
}

# what a cron's fields set in its task: the rest (its thread, a timeout, retries, a name
# given through REST) a PATCH keeps as it is
_CRON_FIELDS = frozenset({"timezone", "input", "context", "metadata", "enabled", "end_date",
                          "webhook", "request"})  # fmt: skip
# a task's schedule: a PATCH's task carries it (the one sent, or the task's own) whole
_TIMING = frozenset({"task_type", "cron_expression", "interval_seconds", "run_at"})
_FIELD_NAMES = {
    "cron_expression": "schedule",
    "end_date": "end_time",
    "overlap": "multitask_strategy",
}
Over = tuple[TaskDefinition, set[str]]


def cron_task(
    cron_id: str,
    fields: dict[str, Any],
    request: dict[str, Any],
    over: Over | None = None,
    timing: dict[str, Any] | None = None,
) -> TaskDefinition:
    """The task of a cron from its (merged) fields; for a PATCH, ``over`` the task as it
    was, whose fields other than those named it keeps (REST or the CLI set them), and
    ``timing`` its schedule fields when the PATCH keeps them (else the fields' ``schedule``
    is the cron expression)."""
    if not fields.get("schedule"):
        raise HTTPException(422, "schedule: required, a cron expression such as '*/5 * * * *'")
    strategy = fields.get("multitask_strategy")
    if strategy is not None and strategy not in STRATEGIES:
        raise HTTPException(
            422,
            f"multitask_strategy: {strategy!r} is not supported here (use reject or enqueue)",
        )
    timing = timing or {"cron_expression": fields["schedule"]}
    try:
        task = _validated(cron_id, fields, request, strategy, timing)
        merged = {**over[0].model_dump(), **task.model_dump(include=over[1])} if over else None
        return task if merged is None else TaskDefinition.model_validate(merged)
    except ValidationError as exc:  # named as the SDK names them
        text = describe_errors(exc, whole="schedule")  # (one-time: no end_time, say)
        for ours, theirs in _FIELD_NAMES.items():
            text = text.replace(f"{ours}:", f"{theirs}:")
        text = text.replace("end_date", "end_time")
        raise HTTPException(422, text) from None


def _validated(
    cron_id: str,
    fields: dict[str, Any],
    request: dict[str, Any],
    strategy: str | None,
    timing: dict[str, Any],
) -> TaskDefinition:
    return TaskDefinition.model_validate(
        {
            "id": cron_id,
            "name": cron_name(fields["schedule"]),
            **timing,
            "timezone": fields.get("timezone") or "UTC",  # the LangGraph server's default
            "input": fields.get("input") or {},
            "context": fields.get("context"),
            "metadata": fields.get("metadata") or {},
            "thread_id": fields.get("thread_id"),
            "enabled": fields.get("enabled", True),
            "end_date": fields.get("end_time"),
            "overlap": STRATEGIES[strategy or "enqueue"],  # the LangGraph server's default
            "webhook": fields.get("webhook"),
            "request": _lean(request),
        }
    )


# The task's own fields, which a cron's kept payload and fields name again: kept there by
# name only, as the value is always read from the task (``cron_list._payload_now`` and
# :func:`_fields_now`; another API may have changed it since), so that an input is stored,
# checked and encoded once, not three times. (Rows written before hold the values: unread.)
_THE_TASKS = ("input", "metadata", "context", "webhook")
_SAME = "(the task's)"


def _lean(request: dict[str, Any]) -> dict[str, Any]:
    lean = dict(request)
    for part in ("payload", "fields"):
        lean[part] = {
            key: _SAME if key in _THE_TASKS and value is not None else value
            for key, value in request[part].items()
        }
    return lean


def cron_name(schedule: str) -> str:
    """The name of a cron's task: ``cron`` and its schedule, cut to a name's length (a
    schedule may be longer); just ``cron`` for a schedule a name could not hold (its own
    check names what is wrong with it: the SDK sends no name)."""
    name = f"cron {schedule.strip()}"
    if not name.isprintable():
        return "cron"
    limit = TEXT_LIMITS["name"]
    return name if len(name) <= limit else name[: limit - 3] + "..."


def cron_payload(
    sent: dict[str, Any], assistant: str, cron_id: str, before: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The run payload the LangGraph server keeps: the request's fields as sent (a PATCH's
    over the payload ``before``, shallow), the assistant's UUID, the cron's id in
    ``config.configurable``."""
    payload = {**(before or {}), **sent}
    payload.pop("thread_id", None)
    payload["assistant_id"] = assistant
    config = dict(payload.get("config") or {})
    config["configurable"] = {**(config.get("configurable") or {}), "cron_id": cron_id}
    payload["config"] = config
    return payload


def patched_task(cron_id: str, before: TaskDefinition, changes: dict[str, Any]) -> TaskDefinition:
    """The task of cron ``cron_id`` (``before``, as it is now) with a PATCH's ``changes``.

    Raises:
        HTTPException: 404, ``before`` is no cron; 422, a change that does not validate.
    """
    found = cron_request(before)
    if found is None:
        raise HTTPException(404, f"no cron {cron_id!r}")
    now = schedule_of(before)
    if before.task_type is not TaskType.CRON and changes.get("schedule") == now:
        changes = {k: v for k, v in changes.items() if k != "schedule"}  # (sent back as read)
    kept = dict(found)
    fields = {**_fields_now(before, kept), **changes}
    if changes.get("metadata") is not None:  # merged, as the LangGraph server does
        fields["metadata"] = {**before.metadata, **changes["metadata"]}
    if "timezone" in changes:
        kept["timezone"] = changes["timezone"]
    if "on_run_completed" in changes:
        kept["on_run_completed"] = changes["on_run_completed"]
    kept["fields"] = fields
    kept["payload"] = cron_payload(changes, kept["assistant_id"], cron_id, found["payload"])
    own = {*_CRON_FIELDS, *_TIMING, *(["overlap"] if "multitask_strategy" in changes else [])}
    given = {cron_name(str(s)) for s in (found["fields"].get("schedule"), now)}
    own |= {"name"} if before.name in given else set()  # the name it gave follows it
    timing = None if "schedule" in changes else before.model_dump(include={*_TIMING, "after"})
    return cron_task(cron_id, fields, kept, (before, own), timing)


def _fields_now(task: TaskDefinition, kept: dict[str, Any]) -> dict[str, Any]:
    """A cron's fields as its task is now: another API (REST, the CLI) may have changed
    the task since the crons API last wrote its request."""
    fields = dict(kept["fields"])
    fields.update(
        schedule=schedule_of(task),
        input=task.input,
        metadata=task.metadata,
        context=task.context,
        enabled=task.enabled,
        webhook=task.webhook,
        thread_id=task.thread_id,
        end_time=end_time_of(task),
    )
    if task.timezone != (fields.get("timezone") or "UTC"):
        kept["timezone"] = fields["timezone"] = task.timezone
    return fields
