"""How a run on a LangGraph server ended, as :class:`scheduler.remote.ServerGraph` reads
it once the run's stream ends: the status the server recorded (asked again while the
server cannot answer for a moment), the run's values if that is a success, where it
stopped for a human, and what the server said, as bounded, printable text (what the
server sends is not trusted).

A graph stopped at a static breakpoint (``interrupt_before`` / ``interrupt_after``, its
own or a subgraph's) ends its server run ``success``, with values that hold no
``__interrupt__`` (as ``ainvoke`` returns them in-process); the thread's state still names
the nodes to run (``next``; the thread's status is ``interrupted``).
:func:`with_breakpoint` reads the run's last checkpoint for that and returns its values
as a graph that called ``interrupt()`` does: ``Command(resume=...)`` goes on from there, on
the server as in this process (LangGraph 1.2).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from langgraph_sdk.errors import InternalServerError, RateLimitError

from scheduler.invocation import checkpoint_question_id

__all__ = [
    "NOTHING",
    "ServerRunError",
    "error_text",
    "final_status",
    "http_error_text",
    "ids_of",
    "result_of",
    "with_breakpoint",
]

NOTHING: Any = object()  # no values streamed yet
# a run still pending or running once its stream ended is asked again after these pauses (s)
_STATUS_PAUSES = (0.05, 0.1, 0.25, 0.5, 1.0, 1.0, 2.0)
# what a server restarting (or a proxy in front of it) answers for a moment
_TRANSIENT = (httpx.TransportError, RateLimitError, InternalServerError)
_MAX_NODES = 20  # breakpoint nodes kept (as many as interrupts)
_WHY = {
    "interrupted": "cancelled on the server (by another client, or its stream was cut short)",
    "error": "failed on the server",
    "timeout": "timed out on the server",
    "pending": "still not finished on the server after its stream ended (it was cancelled)",
    "running": "still running on the server after its stream ended (it was cancelled)",
}


class ServerRunError(RuntimeError):
    """The server reported an error for the run, answered with an HTTP error, could not be
    reached, or recorded the run other than ``success`` (the message says which; the
    server's own text in it is bounded and escaped)."""


async def final_status(
    client: Any,
    thread_id: str,
    run_id: str,
    *,
    cancel: Callable[[str, str], Awaitable[None]],
    url: str,
) -> str:
    """How the server (at ``url``) recorded the run whose stream ended (one ``GET``, more
    only while the server has not recorded it yet, or cannot answer for a moment: a
    restart, a proxy's 502; failing a run that succeeded there would have its retry run
    the graph again); a run still going on is cancelled (``cancel``)."""
    status, unread = "", None
    for pause in (0.0, *_STATUS_PAUSES):
        await asyncio.sleep(pause)
        try:
            run = await client.runs.get(thread_id, run_id)
        except _TRANSIENT as exc:
            unread = exc
            continue
        status = error_text(run.get("status") if isinstance(run, dict) else None)[:100]
        unread = None
        if status not in ("pending", "running"):
            return status
    await cancel(thread_id, run_id)  # its stream ended: nothing here awaits it
    if unread is not None:  # the last GET failed too: how the run ended is not known
        raise ServerRunError(
            f"how the server's run {run_id!r} (thread {thread_id}) ended could not be "
            f"read: {http_error_text(unread, url)}"
        )
    return status


def result_of(status: str, values: Any, run_id: str, thread_id: str) -> Any:
    """The values of the server's run ``run_id`` that ended ``status``, if a success."""
    if status != "success":
        raise ServerRunError(
            f"the server's run {run_id!r} (thread {thread_id}) ended {status!r}, not "
            f"'success': {_WHY.get(status, 'the server did not record it as a success')}"
        )
    if values is NOTHING:  # a run always streams its state at least once: cut short
        raise ServerRunError(
            f"the server's stream ended without the run's values (server run "
            f"{run_id!r}, thread {thread_id})"
        )
    return values


async def with_breakpoint(client: Any, thread_id: str, run_id: str, values: Any) -> Any:
    """The values of the server's run ``run_id`` that succeeded, with what it stopped at as
    an ``interrupt()`` puts it (``__interrupt__``) when it stopped before its end without
    one: at a static breakpoint, one question, ``{"breakpoint": [nodes still to run]}``,
    its id from the checkpoint (as :func:`scheduler.invocation.breakpoint_of` records it
    in-process).

    Its last checkpoint is read (the thread's newest of the run's: one ``POST`` of the
    thread's history filtered by the run id, asked again while the server cannot answer
    for a moment), not the thread's state, which a later run on the thread may have
    moved on since.

    Raises:
        httpx.HTTPError, LangGraphError: The server did not answer.
    """
    if not isinstance(values, dict) or values.get("__interrupt__"):
        return values
    pauses = (0.0, *_STATUS_PAUSES)
    for asked, pause in enumerate(pauses, 1):
        await asyncio.sleep(pause)
        try:
            found = await client.threads.get_history(
                thread_id, limit=1, metadata={"run_id": run_id}
            )
        except _TRANSIENT:
            if asked == len(pauses):
                raise
        else:
            break
    last = found[0] if isinstance(found, list) and found and isinstance(found[0], dict) else {}
    following = last.get("next")
    if not isinstance(following, list) or not following:
        return values
    questions = [i for i in last.get("interrupts") or () if isinstance(i, dict)]
    nodes = [error_text(node)[:200] for node in following[:_MAX_NODES]]
    where = last.get("checkpoint")
    where = where if isinstance(where, dict) else {}
    stopped = checkpoint_question_id(where.get("checkpoint_ns"), where.get("checkpoint_id"))
    at_breakpoint = [{"id": stopped, "value": {"breakpoint": nodes}}]
    return {**values, "__interrupt__": questions or at_breakpoint}


def http_error_text(exc: BaseException, url: str) -> str:
    """An SDK or ``httpx`` error of the server at ``url`` as bounded, printable text (its
    message may be the body of the server's answer)."""
    response = getattr(exc, "response", None)  # (None for the SDK's connection errors)
    if isinstance(exc, httpx.HTTPStatusError) and response is not None:
        message = getattr(exc, "message", None) or str(exc)
        text = f"the server answered HTTP {response.status_code}: {message}"
    else:
        text = f"{type(exc).__name__} from the server at {url}: {exc}"
    return error_text(text)


def ids_of(run: dict[str, Any]) -> tuple[str, str]:
    """A listed server run's thread and run ids, as text safe to log."""
    return error_text(str(run.get("thread_id")))[:100], error_text(str(run.get("run_id")))[:100]


def error_text(data: Any) -> str:
    """The server's error, as text that is safe to log and store: at most 2,000
    characters, control characters escaped (no forged log lines, no terminal codes)."""
    text = str(data)
    if isinstance(data, dict):
        kind, message = data.get("error"), data.get("message")
        text = ": ".join(str(p) for p in (kind, message) if p) or text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:2000])[:2000]
