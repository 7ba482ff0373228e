"""The FastAPI application, and uvicorn serving it in the scheduler's event loop.

Management calls go through the scheduler's async twins (the database work on worker
threads), so a busy API never holds up a firing. Errors are JSON: ``{"detail": ...}``,
404 for an unknown task or run, 409 for a task that exists or whose stored row cannot be
loaded, 422 naming the field for bad input.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from scheduler.exceptions import (
    RunNotFoundError,
    SchedulerError,
    StorageError,
    TaskExistsError,
    TaskNotFoundError,
    TaskNotRunnableError,
    UnstorableTextError,
    UsageError,
    describe_errors,
)
from scheduler.server.bodies import not_json
from scheduler.server.containment import FilterTooLargeError
from scheduler.server.deadlines import MAX_HEADER_BYTES, bounded_protocol
from scheduler.server.fast_lane import FastLane, lanes_of
from scheduler.server.guard import Guard, is_loopback
from scheduler.server.joins import QuietStops
from scheduler.server.replies import JsonReply
from scheduler.settings import Settings
from scheduler.task_scheduler import TaskScheduler

__all__ = ["HttpServer", "check_address", "create_app"]

logger = logging.getLogger(__name__)

_PARAMETER_KINDS = frozenset({"body", "query", "path", "header", "cookie"})


def check_address(address: str, api_key: str | None) -> tuple[str, int]:
    """``HOST:PORT`` split; refuses a non-loopback host without a key.

    Raises:
        UsageError: Not ``HOST:PORT``, or a non-loopback host and no key.
    """
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not host or not (port.isascii() and port.isdigit()):
        raise UsageError(f"HTTP address {address!r} is not HOST:PORT, e.g. 127.0.0.1:8123")
    if api_key is None and not is_loopback(host):
        raise UsageError(
            f"refusing to serve HTTP on {host} without an API key: anyone who can reach it "
            "could run the graph. Set SCHEDULER_API_KEY, or listen on 127.0.0.1"
        )
    return host, int(port)


def create_app(
    scheduler: TaskScheduler, settings: Settings, *, stopping: asyncio.Event | None = None
) -> Any:
    """The ASGI application of ``scheduler`` (FastAPI, wrapped in the :class:`Guard`);
    ``stopping``, once set, ends the responses that wait (``runs.join``)."""
    from scheduler.server import crons, joins, ops, rest, thread_state, threads

    app = FastAPI(
        title="LangGraph task scheduler",
        description="Tasks, runs and the LangGraph SDK's crons API of a task scheduler.",
        version="1",
        default_response_class=JsonReply,
    )
    app.state.scheduler = scheduler
    app.state.settings = settings
    app.state.metrics = ops.Metrics(scheduler)
    app.state.stopping = stopping or asyncio.Event()
    app.include_router(crons.router)
    app.include_router(thread_state.router)  # (before threads: its GET /threads/{id} is last)
    app.include_router(joins.router)
    app.include_router(threads.router)
    app.include_router(rest.router)
    app.include_router(ops.router)
    try:
        dashboard = importlib.import_module("scheduler.server.dashboard")
    except ModuleNotFoundError as exc:  # jinja2 missing: the API serves on without it
        logger.warning("no dashboard: %s (pip install -e '.[server]')", exc)
    else:
        app.include_router(dashboard.router)
    _errors(app)
    app.add_middleware(  # (the innermost of the app's middleware: CORS is added around it)
        FastLane, lanes=lanes_of(crons.router, crons.SDK_HOT), handlers=app.exception_handlers
    )
    if settings.http_cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.http_cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    return Guard(
        app,
        api_key=settings.api_key,
        max_body=settings.http_max_body_bytes,
        rate=settings.http_rate_per_second,
        trusted_origins=settings.http_cors_origins,
        body_seconds=settings.http_body_timeout_seconds,
    )


def _errors(app: FastAPI) -> None:
    def reply(status: int, detail: str) -> JSONResponse:
        return JSONResponse({"detail": detail}, status_code=status)

    @app.exception_handler(TaskNotFoundError)
    @app.exception_handler(RunNotFoundError)
    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return reply(404, str(exc))  # "no task with id 'x'"

    @app.exception_handler(TaskExistsError)
    async def exists(_: Request, exc: Exception) -> JSONResponse:
        task_id = exc.task_id if isinstance(exc, TaskExistsError) else "?"
        return reply(
            409,
            f"id: a task with id {task_id!r} already exists; change it with PATCH "
            f"/api/tasks/{task_id}",
        )

    @app.exception_handler(TaskNotRunnableError)  # a stored row that cannot be loaded
    async def not_runnable(_: Request, exc: Exception) -> JSONResponse:
        return reply(409, str(exc))  # (the task's state, as a PATCH of it answers)

    @app.exception_handler(FilterTooLargeError)  # a search's metadata, past its bound
    async def too_large(_: Request, exc: Exception) -> JSONResponse:
        return reply(422, str(exc))  # "metadata: too large a filter ..."

    @app.exception_handler(ValidationError)
    async def invalid(_: Request, exc: ValidationError) -> JSONResponse:
        return reply(422, describe_errors(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own checks of the query, path and body, said as the rest: "limit: ...";
        # a body that is not JSON (its error's place is an offset) or no object: "body: ..."
        for error in exc.errors():
            if error["type"] == "json_invalid":
                why = (error.get("ctx") or {}).get("error") or error["msg"]
                at = f" at character {error['loc'][-1]}" if len(error["loc"]) > 1 else ""
                return reply(422, not_json(f"{why}{at}"))
        return reply(422, describe_errors(exc, unnamed=_PARAMETER_KINDS, whole="body"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Any:
        if exc.status_code == 400 and exc.detail == _UNPARSED:
            # FastAPI's answer to a body json.loads cannot take (invalid UTF-8, nesting
            # past the recursion limit, an integer of over 4,300 digits): a 422, as the rest
            return reply(422, not_json(_why(exc.__cause__)))
        if exc.status_code == 405:  # Starlette names the methods of the first route of the
            # path only (POST /api/tasks answered "Allow: GET"): every route's, as HTTP asks
            exc = StarletteHTTPException(405, exc.detail, {"Allow": _allowed(app, request)})
        return await http_exception_handler(request, exc)

    @app.exception_handler(UnstorableTextError)  # a NUL in an id, on PostgreSQL: bad input
    async def unstorable(_: Request, exc: Exception) -> JSONResponse:
        return reply(422, str(exc))

    @app.exception_handler(StorageError)
    async def storage(_: Request, exc: Exception) -> JSONResponse:
        return reply(503, str(exc))

    @app.exception_handler(SchedulerError)
    async def refused(_: Request, exc: Exception) -> JSONResponse:
        return reply(422, str(exc))


_UNPARSED = "There was an error parsing the body"


def _allowed(app: FastAPI, request: Request) -> str:
    """The methods some route takes at the request's path (each tried: an included router
    answers for its routes)."""
    routes = app.router.routes
    allowed = [
        method
        for method in ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]
    return ", ".join(allowed)


def _why(cause: BaseException | None) -> str:
    if isinstance(cause, UnicodeDecodeError):
        return "it is not UTF-8"
    if isinstance(cause, RecursionError):
        return "it is nested too deeply"
    return str(cause) or type(cause).__name__


class HttpServer:
    """uvicorn on the running event loop, without its own signal handling (the service
    has that): :meth:`start` returns once it listens, :meth:`stop` stops it."""

    def __init__(self, scheduler: TaskScheduler, settings: Settings, address: str) -> None:
        import uvicorn
        from uvicorn.protocols.http.auto import AutoHTTPProtocol

        host, port = check_address(address, settings.api_key)

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Any:  # the service handles SIGINT / SIGTERM
                yield

        self._stopping = asyncio.Event()  # (joins waiting for a run end when it is set)
        errors = logging.getLogger("uvicorn.error")
        if not any(isinstance(f, QuietStops) for f in errors.filters):
            errors.addFilter(QuietStops())  # (a join closed as the server stops: no error)
        config = uvicorn.Config(
            create_app(scheduler, settings, stopping=self._stopping),
            host=host,
            port=port,
            lifespan="off",
            log_level="warning",
            access_log=False,
            # slow clients: a bound on the time to send a request's headers (the Guard bounds
            # the body's), and on the connections and requests served at once
            http=bounded_protocol(
                AutoHTTPProtocol, header_seconds=settings.http_header_timeout_seconds
            ),
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            timeout_keep_alive=5,
            limit_concurrency=settings.http_max_concurrency,
            # uvicorn believes X-Forwarded-For from 127.0.0.1 by default: a local process
            # could name a new client in each request and pass the per-client rate
            proxy_headers=bool(settings.http_trusted_proxies),
            forwarded_allow_ips=settings.http_trusted_proxies or None,
        )
        self.server = _Server(config)
        self.host, self.port = host, port
        self.address = f"{host}:{port}"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind (a clear error if the address is taken), then serve in the background."""
        import socket

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted connections inherit it: without it, a response written in two parts
        # waits for the client's delayed ACK (about 40 ms a request)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise UsageError(f"cannot serve HTTP on {self.address}: {exc.strerror}") from None
        sock.listen(2048)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self.address = f"{self.host}:{self.port}"
        serving = self.server.serve(sockets=[sock])
        self._task = asyncio.get_running_loop().create_task(serving, name="http")
        while not self.server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start (a port in use)
                raise UsageError(f"the HTTP server on {self.address} did not start")
            await asyncio.sleep(0.01)
        logger.info("HTTP API on http://%s (docs at /docs, dashboard at /)", self.address)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping.set()  # a runs.join would hold the stop until the run ends
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self._task, timeout=5)
