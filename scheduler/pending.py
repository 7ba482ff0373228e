"""Runs on their way: a run that waits to start, what admission decides for an occurrence,
run ids, and the retry delay."""

from __future__ import annotations

import itertools
import os
import random
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

from scheduler.documents import DocumentError, load_json
from scheduler.enums import RunTrigger
from scheduler.models import TaskDefinition
from scheduler.storage import RunRow

__all__ = ["Admission", "PendingRun", "new_run_id", "pending_of", "retry_delay", "upstream_of"]

_run_counter = itertools.count()
# the random bits tell apart ids that two processes make in the same microsecond: they need
# not be secret (a run id is no credential), only differ between processes, so a generator
# seeded from the OS per process (again in a forked child) instead of a system call per id
_bits = random.Random()
os.register_at_fork(after_in_child=_bits.seed)


def new_run_id() -> str:
    """A run id that sorts by creation time: microseconds, a counter, random bits."""
    micros = time.time_ns() // 1000
    return f"{micros:014x}{next(_run_counter) & 0xFFFF:04x}{_bits.getrandbits(24):06x}"


@dataclass(slots=True, eq=False)
class PendingRun:
    """A run that exists as a ``queued`` record and waits to be started."""

    run_id: str
    task: TaskDefinition
    scheduled_for: float
    attempt: int = 1
    trigger: RunTrigger = RunTrigger.SCHEDULE
    not_before: float | None = None
    occurrences: int = 1
    queued_at: float | None = None
    thread_id: str | None = None  # the thread it runs in, once known (a resume reuses it)
    resume: Any = None  # with ``resuming``: the answer to continue from interrupt() with
    resuming: bool = False
    asked: str | None = None  # waiting: what it asked (JSON; the interrupt ids the answer is for)
    upstream: dict[str, Any] | None = None  # a dependency run: the upstream runs' outcomes
    reattach: bool = False  # left running by a process that died, with no retry left: it
    # only adopts its own run still going on a LangGraph server (scheduler.recovery)
    retry_of: str | None = None  # a retry: the attempt it retries
    started_at: float | None = None  # once started: this attempt's start, as recorded


class Admission(Enum):
    """What happens to a due occurrence, given the task's runs in progress."""

    RUN = "run"
    BUFFER = "buffer"  # overlap=queue: held until the run in progress ends
    SKIP = "skip"


def retry_delay(attempt: int, *, base: float, cap: float) -> float:
    """Delay before retry number ``attempt``: ``base * 2**(attempt-1)`` capped at ``cap``,
    plus up to 25 % random jitter."""
    delay = min(cap, base * 2.0 ** (attempt - 1))
    return delay * (1 + random.uniform(0, 0.25))


def upstream_of(row: RunRow) -> tuple[dict[str, Any] | None, str | None]:
    """A dependency run's stored upstream outcomes (``{task_id: {run_id, status,
    output}}``), and what is wrong with them, if anything."""
    if row.upstream is None:
        return None, None
    try:
        value = load_json(row.upstream, what="upstream")
    except DocumentError as exc:
        return None, str(exc)
    if not isinstance(value, dict):
        return None, "upstream is not a JSON object"
    return value, None


def pending_of(run: RunRow, task: TaskDefinition, **more: Any) -> PendingRun:
    """The run to start, hold or resume of a stored record (found again after a restart,
    claimed by a worker): as it was queued, with its upstream outcomes; ``more`` sets the
    other fields (``resume=...``)."""
    return PendingRun(
        run_id=run.id,
        task=task,
        scheduled_for=run.scheduled_for,
        attempt=run.attempt,
        trigger=RunTrigger(run.trigger),
        not_before=run.not_before,
        occurrences=run.occurrences,
        queued_at=run.queued_at,
        upstream=upstream_of(run)[0],
        asked=run.interrupts,
        retry_of=run.retry_of,
        started_at=run.started_at,
        **more,
    )
