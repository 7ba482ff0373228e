"""Running the scheduler as a service: ``python main.py`` (or ``python -m scheduler
serve``), and in a background thread of a program that is not asyncio."""

from __future__ import annotations

import asyncio
import atexit
import logging
import signal
import sys
import threading
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from scheduler.exceptions import SchedulerError, SettingError, describe_errors
from scheduler.exiting import leave, run_to_exit
from scheduler.logs import configure_logging, log_until_the_program_does
from scheduler.settings import Settings, read_settings
from scheduler.stall import StallWatch
from scheduler.task_scheduler import TaskScheduler
from scheduler.tasksfile import TasksFileError, apply_tasks_file, drop_note_if_gone

__all__ = ["BackgroundService", "main", "serve", "start_in_background"]

logger = logging.getLogger("scheduler")


# What the HTTP server needs (the ``server`` extra of this repository; a project the
# scaffolder set up has no such extra, so the message names the packages)
SERVER_PACKAGES = "fastapi uvicorn httptools prometheus-client jinja2"


def _start(scheduler: TaskScheduler, settings: Settings) -> None:
    """Start ``scheduler`` and apply the tasks file; log what is scheduled.

    A tasks file with problems is logged (an ERROR line per problem) and noted for ``list``;
    the scheduler goes on with the tasks of the file's last good version, unless
    ``tasks_file_strict`` asks to refuse to start.

    Raises:
        TasksFileError: The tasks file has problems and ``tasks_file_strict`` is set.
    """
    scheduler.start()
    if _tasks_file_found(scheduler, settings):
        assert settings.tasks_file is not None
        try:
            apply_tasks_file(scheduler, settings.tasks_file, removed=settings.tasks_file_removed)
        except TasksFileError as exc:
            if settings.tasks_file_strict:
                raise
            for problem in exc.problems:
                logger.error("%s", problem)
            logger.error(
                "%s was not applied (%d problem(s) above); the scheduler runs the tasks of its "
                "last good version. Fix the file and restart, or run 'python -m scheduler "
                "apply %s'",
                exc.path,
                len(exc.problems),
                exc.path,
            )
    tasks = scheduler.list_tasks()
    if not scheduler.active:
        logger.info(
            "standing by with %d task(s): another scheduler is active on this database; this "
            "process takes over when it stops",
            len(tasks),
        )
        return
    upcoming = sorted((t.next_run, t.id) for t in tasks if t.next_run is not None)
    first = ""
    if upcoming:
        moment, task_id = upcoming[0]
        due = "due now" if moment <= datetime.now(UTC) else f"at {moment:%H:%M:%S} UTC"
        first = f"; next: {task_id} {due}"
    logger.info("scheduler running with %d task(s)%s", len(tasks), first)


def _tasks_file_found(scheduler: TaskScheduler, settings: Settings) -> bool:
    """Whether the tasks file is there to apply. A file named by ``SCHEDULER_TASKS_FILE``
    that is missing is a warning (a problem under ``tasks_file_strict``), as is a missing
    default file whose tasks are in the database (main.py started from another directory);
    the tasks it added before are kept either way.

    Raises:
        TasksFileError: The named file is missing and ``tasks_file_strict`` is set.
    """
    path = settings.tasks_file
    if path is None or path.is_file():
        return path is not None
    named = "tasks_file" in settings.model_fields_set
    kept = len(drop_note_if_gone(scheduler, path))  # (by source: a start with many tasks)
    if not named and not kept:
        return False  # no tasks file in this project: nothing to say
    where = path if path.is_absolute() else f"{path} (from {Path.cwd()})"
    problem = f"tasks file {where}: {'not a file' if path.exists() else 'no such file'}"
    if named and settings.tasks_file_strict:
        raise TasksFileError(path, [problem])
    logger.warning(
        "%s; not applied%s. Set SCHEDULER_TASKS_FILE to its path, or to 'none' for no tasks file",
        problem,
        f" (the {kept} task(s) it added before are kept)" if kept else "",
    )
    return False


async def serve(settings: Settings) -> int:
    """Start the scheduler, apply the tasks file, and run until SIGINT or SIGTERM; then stop
    gracefully. A second signal cancels the runs still going."""
    scheduler = TaskScheduler.from_settings(settings)
    stopping = asyncio.Event()
    signals = 0

    def on_signal(signum: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            logger.info("%s received: stopping gracefully", signal.Signals(signum).name)
            stopping.set()
        else:
            logger.warning("second signal: cancelling the runs still going")
            scheduler.cancel_running_runs()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    if settings.role == "worker":
        return await _work(scheduler, settings, stopping)
    http: Any = None
    try:
        if settings.http_address:
            http = _http_server(scheduler, settings)
        _start(scheduler, settings)
        if http is not None:
            await http.start()
        logger.info("press Ctrl+C to stop")
        await stopping.wait()
    finally:
        if http is not None:
            await http.stop()
        await scheduler.stop()
    return 0


async def _work(scheduler: TaskScheduler, settings: Settings, stopping: asyncio.Event) -> int:
    """Role ``worker``: execute queued runs until a signal (or until the lease is lost:
    then exit 1, for the service manager to start a fresh worker)."""
    from scheduler.workers import Worker

    scheduler.store.setup()
    scheduler.graph()  # fail now, not at the first run
    worker = Worker(store=scheduler.store, settings=settings, graph=scheduler.graph)
    stall = StallWatch(settings.loop_stall_seconds)
    stall.start()
    worker.start()
    logger.info("press Ctrl+C to stop")
    waits = [asyncio.ensure_future(stopping.wait()), asyncio.ensure_future(worker.done.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        if not worker.done.is_set():
            await worker.stop(settings.stop_grace_seconds)
        await worker.done.wait()
        stall.stop()
        scheduler.close()
    return 1 if worker.failed else 0


def _http_server(scheduler: TaskScheduler, settings: Settings) -> Any:
    """The HTTP server of ``SCHEDULER_HTTP_ADDRESS`` (checked before anything starts)."""
    assert settings.http_address is not None
    try:
        from scheduler.server import HttpServer
    except ImportError as exc:
        raise SchedulerError(
            f"SCHEDULER_HTTP_ADDRESS is set but the server is not installed ({exc}): "
            f"pip install {SERVER_PACKAGES} (in the scheduler's own repository: pip install "
            "-e '.[server]')"
        ) from None
    return HttpServer(scheduler, settings, settings.http_address)


def load_settings(**defaults: Any) -> Settings:
    """Settings from the environment and ``.env``; ``defaults`` (e.g. ``graph=
    "agent.graph:graph"``, written by the scaffolder into ``main.py``) apply to the
    settings that neither sets.

    Raises:
        SettingError: A variable's value is bad (named: ``SCHEDULER_TIMEZONE``).
        ValidationError: A default's value is bad (named as the keyword: ``timezone``).
    """
    settings = read_settings()
    for name, value in defaults.items():
        if name not in Settings.model_fields:
            raise TypeError(f"unknown setting {name!r}")
        if name not in settings.model_fields_set:
            settings = settings.model_copy(update={name: value})
    # validated again for the defaults' sake; what was not set stays unset
    return Settings.model_validate(settings.model_dump(include=settings.model_fields_set))


def main(**defaults: Any) -> int:
    """Entry point of ``main.py``: exit status 0, 1 on a scheduler error, 2 on a bad setting
    or on a bad tasks file with ``SCHEDULER_TASKS_FILE_STRICT`` set (otherwise its problems
    are logged and the scheduler runs on). ``defaults`` apply to settings the environment
    does not set (see :func:`load_settings`)."""
    try:
        settings = load_settings(**defaults)
    except SettingError as exc:  # a bad SCHEDULER_* variable or .env line: one line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:  # a bad default given to main()
        print(f"error: {describe_errors(exc)}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    try:
        status = run_to_exit(lambda: serve(settings))
    except (TasksFileError, SettingError) as exc:  # (SCHEDULER_ROLE=worker on SQLite)
        logger.error("%s", exc)
        status = 2
    except SchedulerError as exc:
        logger.error("%s", exc)
        status = 1
    return leave(status)


class BackgroundService:
    """The scheduler on a thread of its own, with its own event loop, for programs that
    are not asyncio (a CLI chat loop, a Flask app). ``start()`` returns once the scheduler
    is running (or raises why it could not start); ``stop()`` stops it gracefully.

    Args:
        settings: Settings (default: read from the environment and ``.env``).
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self.scheduler = TaskScheduler.from_settings(self.settings)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ended = threading.Event()  # the thread's loop has ended

    def start(self) -> None:
        started: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="scheduler", daemon=True
        )
        self._thread.start()
        started.result()

    def _run(self, started: Future[None]) -> None:
        try:
            asyncio.run(self._main(started))
        finally:
            self._ended.set()

    async def _main(self, started: Future[None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            _start(self.scheduler, self.settings)
        except BaseException as exc:
            await self.scheduler.stop()
            started.set_exception(exc)
            return
        started.set_result(None)
        try:
            await self._stopping.wait()
        finally:
            await self.scheduler.stop()

    def stop(self) -> None:
        """Stop gracefully (``SCHEDULER_STOP_GRACE_SECONDS``) and wait for the thread. A
        Ctrl+C meanwhile (a second one, when the program stops at exit after the first)
        cancels the runs still going, as ``serve``'s second signal does, and waits on; a
        third one is raised."""
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if loop is None or stopping is None or thread is None or not thread.is_alive():
            return
        loop.call_soon_threadsafe(stopping.set)
        try:  # (not thread.join(): one that a Ctrl+C cuts short takes the thread for ended)
            self._ended.wait()
        except KeyboardInterrupt:
            logger.warning("interrupted while stopping: cancelling the runs still going")
            self.scheduler.cancel_running_runs()
            self._ended.wait()
        thread.join()


def start_in_background(settings: Settings | None = None, **defaults: Any) -> BackgroundService:
    """Start the scheduler (with the tasks file) in a background thread and return it;
    call ``.stop()`` at exit. Until the program configures logging, the scheduler's lines
    go to stderr (the root logger is left to the program). ``defaults`` apply to settings
    the environment does not set."""
    service = BackgroundService(settings if settings is not None else load_settings(**defaults))
    if not logging.getLogger().handlers:
        log_until_the_program_does(service.settings.log_level, service.settings.log_format)
    service.start()
    _stop_at_exit(service)
    return service


def _stop_at_exit(service: BackgroundService) -> None:
    """Stop ``service`` gracefully when the program ends.

    ``atexit`` is too late: by then Python has shut its thread pools down and a run (or the
    history flush) that needs one fails. ``threading._register_atexit`` is the CPython hook
    that runs before that (``concurrent.futures`` uses it); plain ``atexit`` is the fallback.
    """
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        register(service.stop)
    else:  # pragma: no cover - other Python implementations
        atexit.register(service.stop)
