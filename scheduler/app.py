"""``python main.py``: run the agent with its scheduler until Ctrl+C or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from scheduler.exceptions import SchedulerError
from scheduler.settings import Settings
from scheduler.task_scheduler import TaskScheduler
from scheduler.tasksfile import TasksFileError, apply_tasks_file

__all__ = ["main", "serve"]

logger = logging.getLogger("scheduler")


def configure_logging(level: str) -> None:
    """Log lines with time, level and source to stderr; APScheduler's chatter muted."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


async def serve(settings: Settings) -> int:
    """Start the scheduler, apply the tasks file, and run until a stop signal."""
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
            logger.warning("second signal: cancelling running runs now")
            settings.stop_grace_seconds = 0

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    scheduler.start()
    try:
        if settings.tasks_file is not None and settings.tasks_file.exists():
            apply_tasks_file(scheduler, settings.tasks_file, removed=settings.tasks_file_removed)
        tasks = scheduler.list_tasks()
        upcoming = sorted((t for t in tasks if t.next_run), key=lambda t: t.next_run)  # type: ignore[arg-type, return-value]
        first = (
            f"; next: {upcoming[0].id} at {upcoming[0].next_run:%H:%M:%S} UTC" if upcoming else ""
        )
        logger.info("scheduler running with %d task(s)%s. Press Ctrl+C to stop.", len(tasks), first)
        await stopping.wait()
    finally:
        await scheduler.stop()
    return 0


def main() -> int:
    """Entry point of ``main.py``."""
    settings = Settings()
    configure_logging(settings.log_level)
    try:
        return asyncio.run(serve(settings))
    except TasksFileError as exc:
        logger.error("%s", exc)
        return 2
    except SchedulerError as exc:
        logger.error("%s", exc)
        return 1
