"""The earlier attempts of a retry on a LangGraph server, found there before the retry
starts a run of its own: a run the server still runs for them is adopted, not run twice.

A process that dies while a server run goes on (``kill -9``, a power cut, a host that
vanished) leaves that run going on the server (the stream asks ``on_disconnect=
"continue"``): the next start records the attempt ``interrupted`` and queues its retry.
That retry would start a second server run, queued behind the first on its thread (or
beside it, on a fresh thread): the graph would run twice. So a retry first looks up, on
the threads of the attempts it follows, the server runs whose metadata names one of
them (``scheduler_run_id``; the SDK's ``runs.list`` pages, newest first: the server
filters runs by status only, not by metadata) back to the first run made before the
earliest of those attempts started (less :data:`CLOCK_SKEW` seconds: the server's clock
is not this one), however many runs the thread holds; and takes the newest of them all:

* still ``pending`` or ``running`` (and its attempt did not time out here: its deadline
  is past), or ``success`` with its attempt ``interrupted`` (it ended after the process
  that watched it died): **adopted**. The retry waits for it (``runs.join``) and records
  its end as its own, on its thread; no new run is started;
* anything else (it failed, was cancelled or timed out there; no run was made before the
  process died): a new run starts, as a retry does. A run watched again (no retry left)
  adopts a run that ended so too: its end there is the run's (``failed``).

Other runs of those attempts still going (a cancel that did not reach the server) are
cancelled first. A look-up the server does not answer fails the attempt without starting
a run, so its retry looks again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from langgraph_sdk.errors import NotFoundError

from scheduler.enums import RunStatus
from scheduler.records import RunRecord

__all__ = ["CLOCK_SKEW", "Adoption", "find_adoption", "going_runs_of"]

#: How far the server's clock may be behind this one's, in seconds: the look-up of a
#: thread's runs goes back to runs made this long before the earliest attempt started.
CLOCK_SKEW = 900.0
_PAGE = 100  # runs per look-up
_PAGES = 1000  # at most (a server that never ends its pages): 100,000 runs of a thread
_GOING = ("pending", "running")
_FIELDS = ["run_id", "thread_id", "status", "metadata", "created_at"]


@dataclass(frozen=True, slots=True)
class Adoption:
    """What a retry does with the server runs of the attempts it follows."""

    run: dict[str, Any] | None  # the server run it adopts (None: it starts one)
    thread: str  # the scheduler's thread of that run's attempt: the retry's now
    stale: list[dict[str, Any]]  # other runs of those attempts still going: cancelled first


async def find_adoption(
    client: Any, attempts: Sequence[RunRecord], threads: dict[str, str], *, ended: bool = False
) -> Adoption:
    """Look up the server runs of ``attempts`` (newest first) on their threads
    (``threads``: the scheduler's thread id to the server's) and decide. ``ended``: the
    newest is adopted however it ended (a run watched again, which no retry follows: a
    server run that failed is its failure).

    Raises:
        httpx.HTTPError, LangGraphError: The server did not answer the look-up.
    """
    of = {a.id: a for a in attempts}
    starts = [a.started_at for a in attempts if a.started_at is not None]
    since = min(starts) - timedelta(seconds=CLOCK_SKEW) if starts else None
    found: list[tuple[dict[str, Any], RunRecord]] = []  # each run with its attempt
    seen: set[Any] = set()  # (a run made meanwhile shifts the pages: one is listed twice)
    for thread in dict.fromkeys(threads.values()):
        for page in range(_PAGES if since is not None else 0):  # (none started: no run)
            try:
                runs = await client.runs.list(
                    thread, limit=_PAGE, offset=page * _PAGE, select=_FIELDS
                )
            except NotFoundError:  # no run was ever made on it
                break
            runs = [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []
            new = [r for r in runs if r.get("run_id") not in seen]
            seen.update(r.get("run_id") for r in new)
            found += [(r, of[a]) for r in new if (a := _attempt_of(r)) is not None and a in of]
            if len(runs) < _PAGE or not new or _made_before(runs[-1], since):
                break
    found.sort(key=lambda pair: str(pair[0].get("created_at")), reverse=True)
    if found:
        (newest, attempt), status = found[0], found[0][0].get("status")
        going = status in _GOING and attempt.status is not RunStatus.TIMED_OUT
        if going or ended or (status == "success" and attempt.status is RunStatus.INTERRUPTED):
            stale = [r for r, _ in found[1:] if r.get("status") in _GOING]
            return Adoption(newest, attempt.thread_id or "", stale)
    return Adoption(None, "", [r for r, _ in found if r.get("status") in _GOING])


async def going_runs_of(client: Any, thread: str, metadata: dict[str, Any]) -> list[Any]:
    """The runs on the server's ``thread`` that were made for the scheduler's run of
    ``metadata`` (its ``scheduler_run_id``) and are still pending or running, among the
    newest :data:`_PAGE`: a run cut short before the server said which run it made (which
    the server made, or is making, all the same). Shielded from a cancel, best effort:
    ``[]`` when the server does not answer within 5 s."""
    run_id = metadata.get("scheduler_run_id")

    async def look_up() -> list[Any]:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                runs = await client.runs.list(thread, limit=_PAGE, select=_FIELDS)
                return [r for r in runs if _attempt_of(r) == run_id and r.get("status") in _GOING]
        return []

    return await asyncio.shield(look_up())


def _made_before(run: dict[str, Any], since: datetime | None) -> bool:
    """The listed run was made before ``since`` (one whose time cannot be read: no)."""
    try:
        made = datetime.fromisoformat(str(run.get("created_at")))
        return since is not None and made.tzinfo is not None and made < since
    except ValueError:
        return False


def _attempt_of(run: Any) -> str | None:
    """The scheduler's run id a server run was started for (its metadata's)."""
    metadata = run.get("metadata") if isinstance(run, dict) else None
    found = metadata.get("scheduler_run_id") if isinstance(metadata, dict) else None
    return found if isinstance(found, str) else None
