"""The dashboard: server-rendered HTML pages for an operator's browser, on the scheduler's
async API (so a page never blocks the event loop on the database).

* ``/``: the tasks, their schedule in words, next run, state and last status (failing ones
  stand out), with Pause / Resume and Run now buttons; the table refreshes itself every
  2 s from ``/fragments/tasks``;
* ``/tasks/{task_id}``: a task's definition, next fire times and recent runs (the id
  percent-encoded, ``/`` included, as the links write it);
* ``/runs/{run_id}``: a run's status, times, error and output;
* ``/login?key=KEY``: when an API key is set, keeps it in an HttpOnly, SameSite=Strict
  cookie (``scheduler_key``) that the :class:`~scheduler.server.guard.Guard` accepts.

Everything read from the database is escaped (Jinja2 autoescape). A button is a form
POSTed to this origin: a POST whose ``Origin`` (or ``Referer``) is another site is refused
(403), and without an API key, a request whose ``Host`` is not a loopback name is refused
too (DNS rebinding). Pages carry a Content-Security-Policy with a nonce for their one
inline script and style, and cannot be framed.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from scheduler.enums import RunStatus
from scheduler.exceptions import RunNotFoundError, SchedulerError, TaskNotFoundError
from scheduler.records import RunRecord, TaskInfo
from scheduler.render import schedule_text, task_zone, when
from scheduler.server.guard import COOKIE, cookie_of_key, loopback_host, same_origin
from scheduler.task_scheduler import TaskScheduler
from scheduler.weburls import redacted

__all__ = ["FAILING", "router"]

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

FAILING = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.INTERRUPTED})
MAX_ROWS = 500  # tasks shown on /; the REST API pages through more
NEXT_TIMES = 5
RECENT_RUNS = 20

_TEMPLATES = Path(__file__).with_name("templates")


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["segment"] = lambda value: quote(str(value), safe="")
    env.filters["when"] = when
    env.filters["pretty"] = _pretty
    env.globals["schedule_text"] = schedule_text
    env.globals["task_zone"] = task_zone
    env.globals["failing"] = lambda status: status in FAILING
    return env


def _pretty(value: Any) -> str:
    """A definition's value as text: strings as they are, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


_ENV = _environment()


def _scheduler(request: Request) -> TaskScheduler:
    scheduler: TaskScheduler = request.app.state.scheduler
    return scheduler


def _api_key(request: Request) -> str | None:
    key: str | None = request.app.state.settings.api_key
    return key


def _render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    html = _ENV.get_template(name).render(nonce=nonce, **context)
    response = HTMLResponse(html, status_code=status)
    response.headers["content-security-policy"] = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
    response.headers["x-frame-options"] = "DENY"
    response.headers["x-content-type-options"] = "nosniff"
    response.headers["referrer-policy"] = "same-origin"
    response.headers["cache-control"] = "no-store"
    return response


def _message(request: Request, status: int, title: str, text: str) -> HTMLResponse:
    return _render(request, "message.html", status, title=title, text=text)


def _refusal(request: Request, *, write: bool) -> HTMLResponse | None:
    """A 403 page for a request the dashboard must not answer, else None.

    Without an API key the server listens on loopback only, so its ``Host`` is a loopback
    name: another one is a page elsewhere that rebound its DNS name to this address. A
    write must come from a page of this origin (``Origin``, else ``Referer``)."""
    host = request.headers.get("host", "")
    if _api_key(request) is None and not loopback_host(host):
        return _message(request, 403, "Forbidden", f"host {host!r} is not this server")
    if not write:
        return None
    source = request.headers.get("origin") or request.headers.get("referer") or ""
    if not source or not same_origin(source, host):
        logger.warning("dashboard: refused a POST to %s from %r", request.url.path, source)
        return _message(request, 403, "Forbidden", "this form must be sent from the dashboard")
    return None


# -- pages --------------------------------------------------------------------------------


async def _task_rows(request: Request) -> dict[str, Any]:
    tasks = await _scheduler(request).alist_tasks()
    return {"tasks": tasks[:MAX_ROWS], "total": len(tasks), "shown": min(len(tasks), MAX_ROWS)}


@router.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def tasks_page(request: Request) -> Response:
    refused = _refusal(request, write=False)
    if refused is not None:
        return refused
    return _render(request, "tasks.html", **await _task_rows(request))


@router.api_route("/fragments/tasks", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def tasks_fragment(request: Request) -> Response:
    """The rows of the tasks table, for the page's refresh."""
    refused = _refusal(request, write=False)
    if refused is not None:
        return refused
    return _render(request, "_task_rows.html", **await _task_rows(request))


@router.api_route("/tasks/{task_id:path}", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def task_page(request: Request, task_id: str) -> Response:
    refused = _refusal(request, write=False)
    if refused is not None:
        return refused
    scheduler = _scheduler(request)
    try:
        task = await scheduler.aget_task(task_id)
    except TaskNotFoundError:
        return _message(request, 404, "Not found", f"no task with id {task_id!r}")
    upcoming: list[Any] = []
    upcoming_error = None
    try:
        upcoming = await scheduler.anext_run_times(task_id, NEXT_TIMES)
    except SchedulerError as exc:  # a definition that cannot be loaded: shown, not hidden
        upcoming_error = str(exc)
    runs = await scheduler.alist_runs(task_id, limit=RECENT_RUNS)
    definition = (
        task.definition.model_dump(mode="json", exclude_none=True) if task.definition else {}
    )
    if "webhook" in definition:  # (a password in it shown as the run's deliveries show it)
        definition["webhook"] = redacted(definition["webhook"])
    return _render(
        request,
        "task.html",
        task=task,
        definition=definition,
        upcoming=upcoming,
        upcoming_error=upcoming_error,
        runs=runs,
        zone=_zone(scheduler, task),
    )


@router.api_route("/runs/{run_id}", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def run_page(request: Request, run_id: str) -> Response:
    refused = _refusal(request, write=False)
    if refused is not None:
        return refused
    scheduler = _scheduler(request)
    try:
        run: RunRecord = await scheduler.aget_run(run_id)
    except RunNotFoundError:
        return _message(request, 404, "Not found", f"no run with id {run_id!r}")
    interrupts = _pretty(run.interrupts) if run.interrupts else None
    upstream = _pretty(run.upstream) if run.upstream else None
    return _render(
        request,
        "run.html",
        run=run,
        interrupts=interrupts,
        upstream=upstream,
        zone=_zone(scheduler, None),
    )


def _zone(scheduler: TaskScheduler, task: TaskInfo | None) -> Any:
    zone = task_zone(task) if task is not None else None
    return zone if zone is not None else ZoneInfo(scheduler.settings.timezone)


# -- buttons ------------------------------------------------------------------------------


async def _act(request: Request, task_id: str, back: str | None, action: str) -> Response:
    refused = _refusal(request, write=True)
    if refused is not None:
        return refused
    scheduler = _scheduler(request)
    try:
        if action == "pause":
            await scheduler.apause_task(task_id)
        elif action == "resume":
            await scheduler.aresume_task(task_id)
        else:
            run_id = await scheduler.arun_task_now(task_id)
            logger.info("dashboard: task %s run %s requested", task_id, run_id)
    except TaskNotFoundError:
        return _message(request, 404, "Not found", f"no task with id {task_id!r}")
    except SchedulerError as exc:
        return _message(request, 409, f"Cannot {action} {task_id}", str(exc))
    target = f"/tasks/{quote(task_id, safe='')}" if back == "task" else "/"
    return RedirectResponse(target, status_code=303)


@router.post("/tasks/{task_id:path}/pause")
async def pause(request: Request, task_id: str, back: str | None = None) -> Response:
    return await _act(request, task_id, back, "pause")


@router.post("/tasks/{task_id:path}/resume")
async def resume(request: Request, task_id: str, back: str | None = None) -> Response:
    return await _act(request, task_id, back, "resume")


@router.post("/tasks/{task_id:path}/run")
async def run_now(request: Request, task_id: str, back: str | None = None) -> Response:
    return await _act(request, task_id, back, "run")


# -- login --------------------------------------------------------------------------------


@router.get("/login")
async def login(request: Request, key: str = "") -> Response:
    """Keep the API key in the dashboard's cookie, then go to ``/``.

    The Guard lets ``/login`` through without a key, so the key is checked here."""
    expected = _api_key(request)
    if expected is None:
        return RedirectResponse("/", status_code=303)
    if not hmac.compare_digest(key.encode(), expected.encode()):
        logger.warning("dashboard: a login with a wrong key")
        return _message(request, 403, "Forbidden", "the API key is not valid")
    response = RedirectResponse("/", status_code=303)
    response.headers["cache-control"] = "no-store"
    response.set_cookie(
        COOKIE,
        cookie_of_key(key),
        httponly=True,
        samesite="strict",
        path="/",
        secure=request.url.scheme == "https",
    )
    return response
