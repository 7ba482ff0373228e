"""What follows a run's end: the log line, the retry it earns, and the run callbacks
(``on_failure_callback``, ``on_waiting_callback``)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from scheduler.callbacks import CallbackPolicy, call_callback
from scheduler.enums import RunStatus, RunTrigger
from scheduler.invocation import Outcome
from scheduler.logs import run_fields
from scheduler.models import TaskDefinition
from scheduler.pending import PendingRun, new_run_id, retry_delay
from scheduler.records import RunRecord
from scheduler.rows import finished_run
from scheduler.settings import Settings

__all__ = [
    "call_run_callback",
    "call_task_callback",
    "preview",
    "report",
    "report_started",
    "retry_of",
]

logger = logging.getLogger("scheduler.runner")


def report_started(pending: PendingRun, thread_id: str) -> None:
    """The log line of a run's start."""
    if not logger.isEnabledFor(logging.INFO):
        return
    logger.info(
        "task %s run %s started (scheduled for %s, attempt %d)",
        pending.task.id,
        pending.run_id,
        datetime.fromtimestamp(pending.scheduled_for, UTC).isoformat(),
        pending.attempt,
        extra=run_fields(
            task_id=pending.task.id,
            run_id=pending.run_id,
            status=RunStatus.RUNNING,
            attempt=pending.attempt,
            thread_id=thread_id,
        ),
    )


def report(pending: PendingRun, outcome: Outcome, seconds: float) -> None:
    """One log line for how a run ended, with its task and run ids."""
    task_id, run_id = pending.task.id, pending.run_id
    if outcome.status is RunStatus.SUCCEEDED and not logger.isEnabledFor(logging.INFO):
        return
    extra = run_fields(
        task_id=task_id,
        run_id=run_id,
        status=outcome.status,
        attempt=pending.attempt,
        duration=round(seconds, 6),
        error_type=outcome.error_type,
        thread_id=pending.thread_id,
    )
    if outcome.status is RunStatus.SUCCEEDED:
        logger.info(
            "task %s run %s succeeded in %.2f s: %s",
            task_id,
            run_id,
            seconds,
            preview(outcome.output),
            extra=extra,
        )
    elif outcome.status is RunStatus.CANCELLED:
        logger.info(
            "task %s run %s cancelled: %s", task_id, run_id, outcome.error_message, extra=extra
        )
    else:
        logger.warning(
            "task %s run %s %s after %.2f s: %s: %s",
            task_id,
            run_id,
            outcome.status.value.replace("_", " "),
            seconds,
            outcome.error_type,
            outcome.error_message,
            extra=extra,
        )


def retry_of(
    pending: PendingRun, outcome: Outcome, settings: Settings, *, now: float
) -> PendingRun | None:
    """The next attempt of a failed or timed-out run, when its retry policy allows one."""
    if outcome.status not in (RunStatus.FAILED, RunStatus.TIMED_OUT):
        return None
    task = pending.task
    max_retries = task.max_retries if task.max_retries is not None else settings.max_retries
    if pending.attempt > max_retries:
        return None
    delay = retry_delay(
        pending.attempt,
        base=task.retry_delay_seconds or settings.retry_delay_seconds,
        cap=settings.retry_max_delay_seconds,
    )
    retry = PendingRun(
        run_id=new_run_id(),
        task=task,
        scheduled_for=pending.scheduled_for,
        attempt=pending.attempt + 1,
        trigger=RunTrigger.RETRY,
        not_before=now + delay,
        queued_at=now,
        upstream=pending.upstream,  # a retry of a dependency run gets the same input
        retry_of=pending.run_id,
    )
    logger.info(
        "task %s run %s will be retried in %.1f s as run %s (attempt %d of %d)",
        task.id,
        pending.run_id,
        delay,
        retry.run_id,
        retry.attempt,
        max_retries + 1,
        extra=run_fields(task_id=task.id, run_id=retry.run_id, attempt=retry.attempt),
    )
    return retry


async def call_run_callback(
    pending: PendingRun,
    outcome: Outcome,
    field: str,
    thread_id: str,
    started: float | None,
    finished: float,
    *,
    policy: CallbackPolicy,
    settings: Settings,
) -> None:
    """Call the task's ``field`` callback (``on_failure_callback``,
    ``on_waiting_callback``) with ``(task, run_record)``, bounded by the run's timeout; an
    error is logged with the ids, never raised."""
    if not getattr(pending.task, field):
        return
    record = finished_run(pending, outcome, thread_id=thread_id, started=started, finished=finished)
    await call_task_callback(pending.task, record, field, policy=policy, settings=settings)


async def call_task_callback(
    task: TaskDefinition,
    record: RunRecord,
    field: str,
    *,
    policy: CallbackPolicy,
    settings: Settings,
) -> None:
    """Call ``task``'s ``field`` callback with ``(task, record)`` (see
    :func:`call_run_callback`): also for a run settled at a start, after a crash."""
    path = getattr(task, field)
    if not path:
        return
    timeout = task.timeout_seconds or settings.timeout_seconds
    try:
        callback = policy.resolve(path, field=field)
        async with asyncio.timeout(timeout):
            await call_callback(callback, task, record)
    except Exception:
        logger.exception("task %s run %s: %s %s raised", task.id, record.id, field, path)


def preview(text: str | None, limit: int = 120) -> str:
    """``text`` on one line, shortened to ``limit`` characters."""
    if not text:
        return "(no output)"
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
