"""One invocation of the graph for a run: input and config, timeout, output, result
callback; every way it can end is turned into an :class:`Outcome`."""

from __future__ import annotations

import asyncio
import inspect
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scheduler.graphs import build_config, build_input, output_text, resolve_callback
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
) -> Outcome:
    """Invoke the graph for one run of ``task``, then its result callback.

    Args:
        task: The task.
        graph: Returns the graph (loaded on first call).
        run_id, thread_id, scheduled_for, attempt: Go into the run config and metadata.
        timeout: Seconds before the run is cancelled and recorded ``timed_out``.
        output_max_chars: How much of the output to keep.
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
    try:
        async with deadline:
            result = await graph().ainvoke(build_input(task), config, **kwargs)
    except asyncio.CancelledError:
        return Outcome(
            RunStatus.CANCELLED,
            error_type="Cancelled",
            error_message="the scheduler stopped before the run finished",
        )
    except TimeoutError as exc:
        if deadline.expired():
            return Outcome(
                RunStatus.TIMED_OUT,
                error_type="TimeoutError",
                error_message=f"the run exceeded its timeout of {timeout:g} s",
            )
        return failure(exc)
    except Exception as exc:
        return failure(exc)
    output = output_text(result, output_max_chars)
    if task.result_callback:
        try:
            callback = resolve_callback(task.result_callback)
            value = callback(task, result)
            if inspect.isawaitable(value):
                await value
        except asyncio.CancelledError:
            return Outcome(RunStatus.CANCELLED, output, "Cancelled", "stopped in the callback")
        except Exception as exc:
            failed = failure(exc, f"result_callback {task.result_callback} failed: ")
            failed.output = output
            return failed
    return Outcome(RunStatus.SUCCEEDED, output=output)


def failure(exc: BaseException, prefix: str = "") -> Outcome:
    """A failed outcome with the exception's type, message and the end of its traceback."""
    text = "".join(traceback.format_exception(exc))
    return Outcome(
        RunStatus.FAILED,
        error_type=type(exc).__name__,
        error_message=prefix + (str(exc) or type(exc).__name__),
        error_traceback=text[-_TRACEBACK_CHARS:],
    )
