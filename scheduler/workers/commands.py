"""The CLI commands of workers: ``worker`` (run one) and ``workers`` (list them)."""

from __future__ import annotations

import argparse
import os
from collections import Counter

from scheduler.render import Output
from scheduler.settings import Settings
from scheduler.storage.registry import list_workers
from scheduler.task_scheduler import TaskScheduler

__all__ = ["cmd_worker", "cmd_workers"]


def cmd_worker(settings: Settings, args: argparse.Namespace, out: Output) -> int:
    from scheduler.commands import database_flags_to_settings
    from scheduler.service import main as serve_main

    os.environ["SCHEDULER_ROLE"] = "worker"  # the command wins over the setting and .env
    database_flags_to_settings(args)
    return serve_main()


def cmd_workers(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    store = scheduler.store
    if store.engine.dialect.name != "postgresql":  # no worker can have registered
        if out.as_json:
            out.json([])
        else:
            out.line(
                f"no workers: they need PostgreSQL, and the database is {store.display_url}; "
                "on SQLite one process schedules and runs everything (SCHEDULER_ROLE=all)"
            )
        return 0
    running = Counter(r.worker for r in scheduler.store.list_runs(statuses=["running"], limit=None))
    rows = [
        {
            "id": w.id,
            "host": w.host,
            "pid": w.pid,
            "heartbeat_age_seconds": round(w.age, 1),
            "running": running.get(w.id, 0),
        }
        for w in list_workers(scheduler.store)
    ]
    if out.as_json:
        out.json(rows)
    for row in [] if out.as_json else rows:
        out.line(
            "{id}  host {host} pid {pid}  heartbeat {heartbeat_age_seconds} s ago  "
            "{running} running".format(**row)
        )
    if not rows and not out.as_json:
        out.line("no workers registered")
    return 0
