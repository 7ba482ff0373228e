"""``python -m scheduler`` (also ``langgraph-scheduler``): manage tasks without writing
Python, against the configured database, whether or not ``main.py`` is running.

Exit status: 0 on success, 1 when the thing asked for does not exist (or the database
fails), 2 on bad input. Errors go to stderr in one line naming the field or argument.
Changes reach a running scheduler (in this or another process) within
``SCHEDULER_POLL_INTERVAL_SECONDS``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from pydantic import ValidationError

from scheduler import commands, run_commands
from scheduler.control_characters import shown
from scheduler.enums import RunStatus
from scheduler.exceptions import (
    RunNotFoundError,
    ScheduleError,
    SchedulerError,
    StorageError,
    TaskExistsError,
    TaskNotFoundError,
    TasksFileError,
    UsageError,
    describe_errors,
)
from scheduler.exiting import leave
from scheduler.logs import TextFormatter
from scheduler.render import Output
from scheduler.settings import Settings, read_settings
from scheduler.task_scheduler import TaskScheduler
from scheduler.workers import commands as worker_commands
from scheduler.workflow_commands import add_after_flags, cmd_graph

__all__ = ["main"]

NOT_FOUND, BAD_INPUT = 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(BAD_INPUT, f"error: {message} (see: {self.prog} --help)\n")


# -- parser and dispatch --------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m scheduler",
        description="Manage scheduled tasks of a LangGraph agent (same database as main.py).",
    )
    parser.add_argument(
        "--db", type=_given, metavar="PATH", help="SQLite file (default: SCHEDULER_DB_PATH)"
    )
    parser.add_argument(
        "--database-url", type=_given, metavar="URL", help="SQLAlchemy URL (wins over --db)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, handler: Callable[..., int], help_text: str, *, json: bool = True
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        if json:  # every command that reports a result can report it as JSON
            p.add_argument(
                "--json", action="store_true", help="print the result as JSON (for scripts)"
            )
        return p

    p = command("list", commands.cmd_list, "list tasks")
    p.add_argument(
        "--source",
        type=_given,
        metavar="SOURCE",
        help="only the tasks of SOURCE and the sources under it: api, cli, file:tasks.yaml, "
        "agent (every task an agent's tool made), agent:thread:ID",
    )
    p = command(
        "show",
        commands.cmd_show,
        "show a task: definition, next 5 fire times, recent runs",
    )
    p.add_argument("id")
    p.add_argument("--runs", type=_count, default=10, metavar="N", help="recent runs to show")
    p = command("add", commands.cmd_add, "add a task from flags or from a YAML/JSON file")
    p.add_argument("--id")
    p.add_argument("--file", metavar="FILE", help="a YAML/JSON task, or list of tasks")
    p.add_argument("--replace", action="store_true", help="replace a task with the same id")
    commands.add_task_flags(p)
    add_after_flags(p)
    p = command("edit", commands.cmd_edit, "change a task (same flags as add)")
    p.add_argument("id")
    commands.add_task_flags(p)
    add_after_flags(p, editing=True)
    for name, handler, text in (
        ("pause", commands.cmd_pause, "pause a task"),
        ("resume", commands.cmd_resume, "resume a paused or disabled task"),
    ):
        command(name, handler, text).add_argument("id")
    p = command("remove", commands.cmd_remove, "remove a task (asks first, unless --yes)")
    p.add_argument("id", nargs="?")
    p.add_argument(
        "--source",
        type=_given,
        metavar="SOURCE",
        help="remove every task of SOURCE instead (e.g. agent)",
    )
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    p.add_argument(
        "--force", action="store_true", help="remove it even if other tasks run after it"
    )
    command("graph", cmd_graph, "print which tasks run after which (the dependency graph)")
    p = command("run", run_commands.cmd_run, "run a task now")
    p.add_argument("id")
    p.add_argument(
        "--wait",
        action="store_true",
        help="wait for the run (runs it here if no scheduler is running)",
    )
    p.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS")
    p = command(
        "answer", run_commands.cmd_answer, "answer a run waiting at interrupt() (resumes it)"
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("value", metavar="VALUE_JSON", help="the answer, as JSON")
    p.add_argument("--wait", action="store_true", help="wait until it ends (or waits again)")
    p.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS")
    p = command(
        "cancel",
        run_commands.cmd_cancel,
        "cancel a running run, or one waiting for an answer (also in another process)",
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p = command("runs", run_commands.cmd_runs, "run history, newest first")
    p.add_argument("--task", metavar="ID")
    p.add_argument("--status", choices=[s.value for s in RunStatus])
    p.add_argument("--limit", type=_count, default=20, metavar="N", help="at most N runs (0: all)")
    p = command("validate", commands.cmd_validate, "check a tasks file; changes nothing")
    p.add_argument("file")
    p = command(
        "apply",
        commands.cmd_apply,
        "apply a tasks file (add, update, remove its tasks)",
    )
    p.add_argument("file")
    p.add_argument("--removed", choices=["remove", "keep"], help="tasks gone from the file")
    p = command("next", commands.cmd_next, "preview the fire times of a schedule")
    p.add_argument("schedule")
    p.add_argument("--tz", type=_given, metavar="ZONE")
    p.add_argument("--count", type=_counts(1, 1000), default=5, metavar="N")
    p = command(
        "serve", commands.cmd_serve, "run the scheduler (what python main.py does)", json=False
    )
    p.add_argument(
        "--http",
        type=_given,
        metavar="HOST:PORT",
        help="also serve the HTTP API, the LangGraph crons API and the dashboard "
        "(SCHEDULER_HTTP_ADDRESS)",
    )
    command(
        "worker",
        worker_commands.cmd_worker,
        "execute queued runs, schedule nothing (PostgreSQL; SCHEDULER_ROLE=worker)",
        json=False,
    )
    command("workers", worker_commands.cmd_workers, "list the worker processes and their leases")
    p = command("scaffold", cmd_scaffold, "add the scheduler to a LangGraph project", json=False)
    try:
        from scheduler.scaffold import add_scaffold_arguments
    except ImportError:  # a scaffolded project's copy of the package has no scaffolder
        p.add_argument("given", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    else:
        add_scaffold_arguments(p)
    return parser


_WITHOUT_DATABASE = {"next", "serve", "worker", "scaffold"}


def cmd_scaffold(settings: Settings, args: argparse.Namespace, out: Output) -> int:
    try:
        from scheduler.scaffold import run_scaffold
    except ImportError:
        raise UsageError(
            "this copy of the scheduler (scaffolded into a project) has no scaffolder: run "
            "`python -m scheduler scaffold PROJECT_DIR` from the langgraph-scheduler "
            "repository (with --force to update a project scaffolded before)"
        ) from None

    return run_scaffold(args)


def _given(text: str) -> str:
    """The type of a flag whose empty value would quietly mean its default."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _counts(least: int, most: int) -> Callable[[str], int]:
    """The type of a count flag (``--limit``, ``--runs``, ``--count``): a whole number from
    ``least`` to ``most`` (else argparse's usage error, exit 2)."""

    def count(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not least <= value <= most:
            raise argparse.ArgumentTypeError(f"{value} is not between {least} and {most:,}")
        return value

    return count


_count = _counts(0, 1_000_000)


def _seconds(text: str) -> float:
    """The type of ``--timeout`` (of ``run --wait`` and ``answer --wait``): seconds above 0
    (0, a negative number or NaN started a run only to cancel it)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not above 0")
    return value


def _fail(message: str, status: int) -> NoReturn:
    print(f"error: {shown(message)}", file=sys.stderr)
    raise SystemExit(status)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status. A command that ran the event loop (``run
    --wait``, ``serve``) and left synchronous calls going ends the process here, once it
    has said how it ended (:func:`scheduler.exiting.leave`)."""
    try:
        status = _command(argv)
    except SystemExit as exc:
        leave(exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1)
        raise
    except BrokenPipeError:  # the reader went away (| head): no traceback, as Python advises
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (the exit's flush)
        return leave(1)
    return leave(status)


def _command(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "timeout", None) is not None and not args.wait:  # (run, answer)
        parser.error(f"{args.command}: --timeout needs --wait (it bounds the wait)")
    stderr = logging.StreamHandler()  # (stored text in a warning: shown escaped)
    stderr.setFormatter(TextFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[stderr])
    out = Output(as_json=getattr(args, "json", False))
    try:
        settings = read_settings()  # (a bad variable: a SettingError, named)
        if args.command in _WITHOUT_DATABASE:
            handler: Callable[..., int] = args.handler
            return handler(settings, args, out)
        scheduler = TaskScheduler(
            db_path=args.db or settings.db_path,
            database_url=args.database_url or (None if args.db else settings.database_url),
            settings=settings,
        )
        try:
            return int(args.handler(scheduler, args, out))
        finally:
            scheduler.close()
    except (TaskNotFoundError, RunNotFoundError) as exc:
        _fail(str(exc), NOT_FOUND)
    except ValidationError as exc:
        _fail(describe_errors(exc), BAD_INPUT)
    except TasksFileError as exc:
        for problem in exc.problems:
            print(shown(problem), file=sys.stderr)
        _fail(f"{len(exc.problems)} problem(s) in {exc.path}; nothing was applied", BAD_INPUT)
    except TaskExistsError as exc:
        _fail(exc.for_the_cli(), BAD_INPUT)
    except (UsageError, ScheduleError) as exc:
        _fail(str(exc), BAD_INPUT)
    except StorageError as exc:
        _fail(str(exc), NOT_FOUND)
    except SchedulerError as exc:
        _fail(str(exc), BAD_INPUT)
    except KeyboardInterrupt:
        return 130
