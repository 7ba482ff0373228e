"""``runs.join``: wait for a run on a thread to end, then answer what the LangGraph server
answers: the thread's values; ``{"__interrupt__": [...]}`` for a run that waits at
``interrupt()``; ``{"__error__": {"error": ..., "message": ...}}`` for one that failed,
timed out or was interrupted (its process died). As the server does, the connection is
kept open meanwhile with a blank line every few seconds (JSON readers skip the leading
whitespace; the SDK reads for 300 s at most between two bytes). When the HTTP server
stops, a join still waiting closes its connection (the stop is not held up until the run
ends): the SDK then asks again at the answer's ``Location``, this join, once the server
is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from scheduler.enums import RunStatus
from scheduler.exceptions import RunNotFoundError
from scheduler.records import RunRecord
from scheduler.server.crons import scheduler_of
from scheduler.server.replies import encode_state
from scheduler.server.thread_state import read_values
from scheduler.storage.threads import spellings
from scheduler.task_scheduler import TaskScheduler

__all__ = ["KEEP_ALIVE_SECONDS", "QuietStops", "ServerStoppingError", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["LangGraph threads and runs (SDK)"])

#: Seconds between two blank lines sent while a joined run goes on (the server's 5 s).
KEEP_ALIVE_SECONDS = 5.0
_FAILED = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.INTERRUPTED})
_POLL_SECONDS = (0.05, 1.0)  # the run's record is read again at first soon, then each second


class ServerStoppingError(ConnectionAbortedError):
    """Raised in a join's answer when the HTTP server stops before the run ends: its
    connection is closed, so the client knows it has no answer and asks again."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"runs.join of run {run_id}: the HTTP server stopped before the run ended; "
            "the connection is closed (the SDK asks again at its Location)"
        )


class QuietStops(logging.Filter):
    """For uvicorn's error log: a join closed by :class:`ServerStoppingError` is no error
    of the application (uvicorn logs it with its traceback); the join logs it itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, ServerStoppingError)


async def _ended(scheduler: TaskScheduler, run_id: str) -> RunRecord | None:
    """The run's record once it has ended (or waits, unanswered, at ``interrupt()``);
    read from the database, so a run another process runs is seen too. None: its record
    is gone meanwhile (pruned)."""
    pause = _POLL_SECONDS[0]
    while True:
        try:
            run = await scheduler.aget_run(run_id)
        except RunNotFoundError:
            return None
        if run.status.is_final or (run.status is RunStatus.WAITING and not run.answered):
            return run
        await asyncio.sleep(pause)
        pause = min(pause * 2, _POLL_SECONDS[1])


async def _result(scheduler: TaskScheduler, run: RunRecord | None, thread_id: str) -> Any:
    """What ``runs.join`` answers for ``run``, ended (None: its record is gone)."""
    if run is not None and run.status in _FAILED:
        return {
            "__error__": {
                "error": run.error_type or run.status.value,
                "message": run.error_message or "",
            }
        }
    if run is not None and run.status is RunStatus.WAITING and run.interrupts:
        return {"__interrupt__": run.interrupts}
    values = await read_values(scheduler, thread_id)
    return values if values else {}


@router.get(
    "/threads/{thread_id:path}/runs/{run_id}/join",
    summary="Wait for a run on a thread to end; the thread's values (runs.join)",
)
async def join_thread_run(request: Request, thread_id: str, run_id: str) -> StreamingResponse:
    scheduler = scheduler_of(request)
    run = await scheduler.aget_run(run_id)  # (404: no such run)
    if run.thread_id is None or run.thread_id not in spellings(thread_id):
        raise HTTPException(404, f"no run {run_id!r} on thread {thread_id!r}")
    thread = run.thread_id
    stopping: asyncio.Event = request.app.state.stopping

    async def body() -> AsyncIterator[bytes]:
        waited = asyncio.ensure_future(_ended(scheduler, run_id))
        stop = asyncio.ensure_future(stopping.wait())
        try:
            while not waited.done():
                await asyncio.wait({waited, stop}, timeout=KEEP_ALIVE_SECONDS,
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                if stop.done() and not waited.done():
                    logger.info("runs.join of run %s: closed, the HTTP server stops", run_id)
                    raise ServerStoppingError(run_id)
                if not waited.done():
                    yield b"\n"
            result = await _result(scheduler, waited.result(), thread)
            yield encode_state(result)  # (as StateReply)
        finally:
            waited.cancel()  # (the client went away: stop reading the run)
            stop.cancel()

    # as the server answers: where to ask again, and the run (percent-encoded: a header
    # is Latin-1, a thread id need not be)
    path = quote(request.url.path, safe="/")
    headers = {"Location": path, "Content-Location": path.removesuffix("/join")}
    return StreamingResponse(body(), media_type="application/json", headers=headers)
