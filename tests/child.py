"""A scheduler process for tests that need a real second process (restarts, kill -9,
two processes on one file).

DB is a SQLite file, or a SQLAlchemy URL (``postgresql+psycopg://...``).

    python -m tests.child DB add JSON      add task definitions (a JSON list), then exit
    python -m tests.child DB pause ID      pause a task, then exit
    python -m tests.child DB list          print list_tasks() as JSON, then exit
    python -m tests.child DB serve SECONDS run the scheduler (graph: tests.prompt_graphs:graph)

``serve`` prints ``active`` or ``standby`` once started, then runs until SECONDS pass or
SIGTERM arrives, then stops gracefully and prints ``stopped``. Settings come from
``SCHEDULER_*`` variables, as in production. With ``TEST_KILL_AFTER_WAITING_TIMEOUT=1`` it
kills itself (SIGKILL) as soon as a waiting run's timeout is committed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from typing import Any

from scheduler import Settings, TaskDefinition, TaskScheduler
from scheduler.runlog import RunLog
from tests import prompt_graphs


async def serve(scheduler: TaskScheduler, seconds: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    scheduler.start()
    print("active" if scheduler.active else "standby", flush=True)
    reported = scheduler.active
    deadline = loop.time() + seconds
    while not stop.is_set() and loop.time() < deadline:
        await asyncio.sleep(0.05)
        if scheduler.active and not reported:
            print("active", flush=True)
            reported = True
    await scheduler.stop()
    print("stopped", flush=True)


def _kill_after_waiting_timeouts() -> None:
    """Die as soon as a waiting run's timeout commits, before this process does anything
    after it (starts what it queued, or writes what it buffered)."""
    settle = RunLog.settle_unanswered

    def die(*_: Any) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def settle_then_die(self: RunLog, *args: Any) -> Any:
        self.deliver = die  # (told of what it queued, once committed)
        stored = settle(self, *args)
        if stored is None:  # written
            die()
        return stored

    RunLog.settle_unanswered = settle_then_die  # type: ignore[method-assign]


def main() -> None:
    if os.environ.get("TEST_KILL_AFTER_WAITING_TIMEOUT") == "1":
        _kill_after_waiting_timeouts()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    db, command, *rest = sys.argv[1:]
    settings = Settings(_env_file=None)
    if "://" in db:
        scheduler = TaskScheduler(database_url=db, graph=prompt_graphs.graph, settings=settings)
    else:
        scheduler = TaskScheduler(db_path=db, graph=prompt_graphs.graph, settings=settings)
    if command == "add":
        scheduler.add_tasks(TaskDefinition.model_validate(d) for d in json.loads(rest[0]))
    elif command == "pause":
        scheduler.pause_task(rest[0])
    elif command == "list":
        print(json.dumps([t.to_dict() for t in scheduler.list_tasks()]))
    elif command == "serve":
        asyncio.run(serve(scheduler, float(rest[0])))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
