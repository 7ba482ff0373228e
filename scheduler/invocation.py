"""One invocation of the graph for a run: input and config, timeout, output, result
callback; every way it can end is turned into an :class:`Outcome`."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scheduler.callbacks import CallbackPolicy, call_callback
from scheduler.graphs import build_config, build_input, output_text
from scheduler.models import RunStatus, TaskDefinition

__all__ = ["Outcome", "failure", "invoke"]

_TRACEBACK_CHARS = 4000


@dataclass(slots=True)
class Outcome:
    """How a run ended, with what it produced or why it failed."""

    status: RunStatus
    output: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    error_traceback: str | None = None


async def invoke(
    task: TaskDefinition,
    *,
    graph: Callable[[], Any],
    run_id: str,
    thread_id: str,
    scheduled_for: float,
    attempt: int,
    timeout: float | None,
    output_max_chars: int,
    policy: CallbackPolicy,
) -> Outcome:
    """Invoke the graph for one run of ``task``, then its result callback.

    Args:
        task: The task.
        graph: Returns the graph (loaded on first call).
        run_id, thread_id, scheduled_for, attempt: Go into the run config and metadata.
        timeout: Seconds before the run (graph and result callback together) is
            cancelled and recorded ``timed_out``.
        output_max_chars: How much of the output to keep.
        policy: Which callbacks may be called (checked again here, at every call).
    """
    config = build_config(
        task,
        run_id=run_id,
        thread_id=thread_id,
        scheduled_for=datetime.fromtimestamp(scheduled_for, UTC).isoformat(),
        attempt=attempt,
    )
    kwargs: dict[str, Any] = {}
    if task.context is not None:
        kwargs["context"] = task.context
    deadline = asyncio.timeout(timeout)
    output: str | None = None
    in_callback = False
    try:
        async with deadline:
            result = await graph().ainvoke(build_input(task), config, **kwargs)
            output = output_text(result, output_max_chars)
            if task.result_callback:
                in_callback = True
                callback = policy.resolve(task.result_callback)
                await call_callback(callback, task, result)
    except asyncio.CancelledError:
        where = "in the result callback" if in_callback else "before the run finished"
        return Outcome(
            RunStatus.CANCELLED,
            output,
            error_type="Cancelled",
            error_message=f"the scheduler stopped {where}",
        )
    except TimeoutError as exc:
        if deadline.expired():
            where = " (in the result callback)" if in_callback else ""
            return Outcome(
                RunStatus.TIMED_OUT,
                output,
                error_type="TimeoutError",
                error_message=f"the run exceeded its timeout of {timeout:g} s{where}",
            )
        return _failed(exc, task, in_callback, output)
    except Exception as exc:
        return _failed(exc, task, in_callback, output)
    return Outcome(RunStatus.SUCCEEDED, output=output)


def _failed(
    exc: BaseException, task: TaskDefinition, in_callback: bool, output: str | None
) -> Outcome:
    if not in_callback:
        return failure(exc)
    failed = failure(exc, f"result_callback {task.result_callback} failed: ")
    failed.output = output  # the graph's answer is kept
    return failed


def failure(exc: BaseException, prefix: str = "") -> Outcome:
    """A failed outcome with the exception's type, message and the end of its traceback."""
    text = "".join(traceback.format_exception(exc))
    return Outcome(
        RunStatus.FAILED,
        error_type=type(exc).__name__,
        error_message=prefix + (str(exc) or type(exc).__name__),
        error_traceback=text[-_TRACEBACK_CHARS:],
    )
