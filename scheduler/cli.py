"""``python -m scheduler`` (also ``langgraph-scheduler``): manage tasks without writing
Python, against the configured database, whether or not ``main.py`` is running.

Exit status: 0 on success, 1 when the thing asked for does not exist (or the database
fails), 2 on bad input. Errors go to stderr in one line naming the field or argument.
Changes reach a running scheduler (in this or another process) within
``SCHEDULER_POLL_INTERVAL_SECONDS``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from scheduler.documents import DocumentError, load_json, load_yaml
from scheduler.exceptions import (
    RunNotFoundError,
    ScheduleError,
    SchedulerError,
    StorageError,
    TaskExistsError,
    TaskNotFoundError,
    TasksFileError,
)
from scheduler.leader import scheduler_is_active
from scheduler.models import RunStatus, TaskDefinition, describe_errors
from scheduler.render import Output
from scheduler.schedules import parse_schedule
from scheduler.settings import Settings
from scheduler.task_scheduler import TaskScheduler
from scheduler.tasksfile import apply_tasks_file, check_tasks_file
from scheduler.triggers import fire_times
from scheduler.wording import describe

__all__ = ["main"]

CLI_SOURCE = "cli"
NOT_FOUND, BAD_INPUT = 1, 2


class UsageError(Exception):
    """Bad input found by a command; exits with status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (and status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(BAD_INPUT, f"error: {message} (see: {self.prog} --help)\n")


# -- building tasks from flags ------------------------------------------------------------

_TASK_FLAGS: list[tuple[str, str, dict[str, Any]]] = [
    ("--name", "name", {"help": "human-readable name"}),
    ("--description", "description", {}),
    (
        "--schedule",
        "schedule",
        {
            "help": "'0 9 * * 1-5', '@daily', 'every 5 minutes', 'weekdays at 18:00', "
            "'in 30 minutes', 'at 2026-03-15 14:00', ISO 8601"
        },
    ),
    ("--tz", "timezone", {"help": "IANA time zone of the schedule"}),
    ("--prompt", "prompt", {"help": "the message sent to the graph"}),
    ("--input", "input", {"help": "graph input as a JSON object", "type": "json"}),
    ("--context", "context", {"help": "graph context as a JSON object", "type": "json"}),
    ("--metadata", "metadata", {"help": "run metadata as a JSON object", "type": "json"}),
    ("--thread-id", "thread_id", {"help": "conversation to continue (default: fresh per run)"}),
    ("--priority", "priority", {"choices": ["urgent", "high", "medium", "low"]}),
    ("--overlap", "overlap", {"choices": ["skip", "queue", "allow"]}),
    ("--timeout", "timeout_seconds", {"type": float, "metavar": "SECONDS"}),
    ("--max-retries", "max_retries", {"type": int, "metavar": "N"}),
    ("--result-callback", "result_callback", {"metavar": "PATH"}),
    ("--on-failure-callback", "on_failure_callback", {"metavar": "PATH"}),
]
_SCHEDULE_FIELDS = ("task_type", "cron_expression", "interval_seconds", "run_at")


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = load_json(text, what="the value")
    except DocumentError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object ({...})")
    return value


def _add_task_flags(parser: argparse.ArgumentParser) -> None:
    for flag, dest, options in _TASK_FLAGS:
        options = dict(options)
        if options.get("type") == "json":
            options["type"] = _json_object
            options.setdefault("metavar", "JSON")
        parser.add_argument(flag, dest=dest, default=None, **options)
    enabled = parser.add_mutually_exclusive_group()
    enabled.add_argument("--enabled", dest="enabled", action="store_const", const=True)
    enabled.add_argument("--disabled", dest="enabled", action="store_const", const=False)


def _flag_values(args: argparse.Namespace) -> dict[str, Any]:
    values = {dest: getattr(args, dest) for _, dest, _ in _TASK_FLAGS}
    values["enabled"] = args.enabled
    return {key: value for key, value in values.items() if value is not None}


def _validate(data: dict[str, Any], settings: Settings) -> TaskDefinition:
    return TaskDefinition.model_validate(data, context={"timezone": settings.timezone})


# -- commands -----------------------------------------------------------------------------


def cmd_list(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    out.tasks(scheduler.list_tasks())
    return 0


def cmd_show(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    task = scheduler.get_task(args.id)
    upcoming = scheduler.next_run_times(args.id, 5) if task.definition is not None else []
    out.task_detail(task, upcoming, scheduler.list_runs(args.id, limit=args.runs))
    return 0


def _tasks_from_file(path: Path, settings: Settings) -> list[TaskDefinition]:
    """One task (a mapping) or several (a list, or ``tasks:`` with a list) from YAML/JSON."""
    try:
        data = load_yaml(path.read_text(encoding="utf-8"), what=str(path))
    except OSError as exc:
        raise UsageError(f"--file {path}: {exc}") from None
    except DocumentError as exc:
        raise UsageError(f"--file {exc}") from None
    if isinstance(data, dict):
        data = data["tasks"] if set(data) == {"tasks"} else [data]
    if not isinstance(data, list):
        raise UsageError(f"--file {path}: expected a task (mapping) or a list of tasks")
    tasks, problems = [], []
    for index, entry in enumerate(data, start=1):
        if not isinstance(entry, dict):
            problems.append(f"entry {index}: expected a mapping of task fields")
            continue
        try:
            tasks.append(_validate(entry, settings))
        except ValidationError as exc:
            problems.append(f"entry {index}: {describe_errors(exc)}")
    if problems:
        raise UsageError(f"--file {path}: " + "; ".join(problems))
    return tasks


def cmd_add(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    flags = _flag_values(args)
    if args.file is not None:
        if args.id is not None or flags:
            raise UsageError("give either --file or task flags (--id, --schedule, ...), not both")
        tasks = _tasks_from_file(Path(args.file), scheduler.settings)
    else:
        if args.id is None:
            raise UsageError("--id is required (or --file)")
        if "schedule" not in flags:
            raise UsageError("--schedule is required, e.g. --schedule 'every 5 minutes'")
        tasks = [_validate({"id": args.id, **flags}, scheduler.settings)]
    prepared = [scheduler.prepare_task(task) for task in tasks]
    with scheduler.store.transaction() as tx:
        scheduler.put_tasks(tx, prepared, source=CLI_SOURCE, replace_existing=args.replace)
        tx.bump_revision()
    scheduler.notify_changed()
    for task in prepared:
        info = scheduler.get_task(task.id)
        out.line(f"added {info.id}: {_summary(info)}")
    return 0


def _summary(info: Any) -> str:
    from scheduler.render import schedule_text, task_zone, when

    next_run = when(info.next_run, task_zone(info)) if info.next_run else info.state.value
    return f"{schedule_text(info)}; next run {next_run}"


def cmd_edit(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    info = scheduler.get_task(args.id)
    if info.definition is None:
        raise UsageError(
            f"task {args.id!r} cannot be loaded ({info.error}); remove it and add it again"
        )
    flags = _flag_values(args)
    if not flags:
        raise UsageError("nothing to change: give at least one flag (--schedule, --prompt, ...)")
    data = info.definition.model_dump(mode="json", exclude_none=True)
    if "schedule" in flags:
        for field in _SCHEDULE_FIELDS:
            data.pop(field, None)
    data.update(flags)
    task = scheduler.prepare_task(_validate(data, scheduler.settings))
    with scheduler.store.transaction() as tx:
        scheduler.put_tasks(tx, [task], source=None)
        tx.bump_revision()
    scheduler.notify_changed()
    edited = scheduler.get_task(args.id)
    out.line(f"edited {edited.id}: {_summary(edited)}")
    if edited.source.startswith("file:"):
        out.line(
            f"note: {edited.id} comes from {edited.source[5:]}; applying that file again "
            "puts its definition back"
        )
    return 0


def cmd_pause(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    info = scheduler.pause_task(args.id)
    out.line(f"{info.id} is {info.state.value}")
    return 0


def cmd_resume(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    info = scheduler.resume_task(args.id)
    out.line(f"{info.id} is {info.state.value}: {_summary(info)}")
    return 0


def cmd_remove(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    info = scheduler.get_task(args.id)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"not removing {args.id!r} without confirmation; pass --yes")
        answer = input(f"Remove task {info.id!r} ({info.name})? Its run history is kept. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            out.line("not removed")
            return 0
    scheduler.remove_task(args.id)
    out.line(f"removed {args.id}")
    return 0


def cmd_run(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    active_elsewhere = scheduler_is_active(scheduler.store)
    if args.wait and not active_elsewhere:
        return asyncio.run(_run_here(scheduler, args, out))
    run_id = scheduler.run_task_now(args.id)
    if active_elsewhere:
        out.line(f"queued run {run_id} of {args.id}; the running scheduler starts it")
    else:
        out.line(
            f"queued run {run_id} of {args.id}; no scheduler is running on this database, so "
            "it starts when one starts (or use: run --wait)"
        )
    if args.wait:
        return asyncio.run(_wait(scheduler, run_id, args, out))
    return 0


async def _run_here(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    scheduler.start()
    try:
        run_id = scheduler.run_task_now(args.id)
        out.line(f"running {run_id} of {args.id} in this process")
        return await _wait(scheduler, run_id, args, out)
    finally:
        await scheduler.stop()


async def _wait(
    scheduler: TaskScheduler, run_id: str, args: argparse.Namespace, out: Output
) -> int:
    try:
        run = await scheduler.wait_for_run(run_id, timeout=args.timeout)
    except TimeoutError:
        raise UsageError(f"run {run_id} did not finish within {args.timeout:g} s") from None
    out.runs([run])
    return 0 if run.status is RunStatus.SUCCEEDED else 1


def cmd_runs(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    if args.task is not None:
        scheduler.get_task(args.task)  # not found -> exit 1
    out.runs(scheduler.list_runs(args.task, status=args.status, limit=args.limit))
    return 0


def cmd_validate(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    try:
        tasks = check_tasks_file(scheduler, args.file)
    except TasksFileError as exc:
        if out.as_json:
            out.json({"file": args.file, "valid": False, "problems": exc.problems})
        else:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
        return BAD_INPUT
    if out.as_json:
        out.json({"file": args.file, "valid": True, "problems": [], "tasks": [t.id for t in tasks]})
    else:
        out.line(f"{args.file}: {len(tasks)} task(s), no problems")
    return 0


def cmd_apply(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    removed = args.removed or scheduler.settings.tasks_file_removed
    report = apply_tasks_file(scheduler, args.file, removed=removed)
    if out.as_json:
        out.json({"file": args.file, **report.__dict__})
    else:
        out.line(f"{args.file}: {report.summary()}")
    return 0


def cmd_next(settings: Settings, args: argparse.Namespace, out: Output) -> int:
    zone = args.tz or settings.timezone
    now = datetime.now(UTC)
    parsed = parse_schedule(args.schedule, now=now, timezone=zone, allow_past=True)
    task = TaskDefinition(id="preview", prompt="preview", timezone=zone, **parsed.fields())
    trigger = task.build_trigger(anchor=now)
    times = [t.astimezone(task.zone()) for t in fire_times(trigger, after=now, count=args.count)]
    if parsed.run_at is not None and parsed.run_at <= now:
        times = [parsed.run_at]
    words = describe(
        parsed.task_type,
        cron_expression=parsed.cron_expression,
        interval_seconds=parsed.interval_seconds,
        run_at=parsed.run_at,
        timezone=zone,
    )
    if out.as_json:
        explicit = {
            k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in parsed.fields().items()
        }
        explicit["task_type"] = parsed.task_type.value
        out.json(
            {
                "schedule": args.schedule,
                "timezone": zone,
                "description": words,
                "explicit": explicit,
                "times": [t.isoformat() for t in times],
            }
        )
        return 0
    out.line(words)
    for moment in times:
        out.line(f"  {moment:%Y-%m-%d %H:%M:%S %Z}  ({moment:%a})")
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace, out: Output) -> int:
    from scheduler.app import main as serve_main

    return serve_main()


def cmd_scaffold(settings: Settings, args: argparse.Namespace, out: Output) -> int:
    from scheduler.scaffold import run_scaffold

    return run_scaffold(args)


# -- parser and dispatch --------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m scheduler",
        description="Manage scheduled tasks of a LangGraph agent (same database as main.py).",
    )
    parser.add_argument("--db", metavar="PATH", help="SQLite file (default: SCHEDULER_DB_PATH)")
    parser.add_argument("--database-url", metavar="URL", help="SQLAlchemy URL (wins over --db)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, handler: Callable[..., int], help_text: str, *, reads: bool = False
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        if reads:
            p.add_argument("--json", action="store_true", help="print JSON for scripts")
        return p

    command("list", cmd_list, "list tasks", reads=True)
    p = command(
        "show", cmd_show, "show a task: definition, next 5 fire times, recent runs", reads=True
    )
    p.add_argument("id")
    p.add_argument("--runs", type=int, default=10, metavar="N", help="recent runs to show")
    p = command("add", cmd_add, "add a task from flags or from a YAML/JSON file")
    p.add_argument("--id")
    p.add_argument("--file", metavar="FILE", help="a YAML/JSON task, or list of tasks")
    p.add_argument("--replace", action="store_true", help="replace a task with the same id")
    _add_task_flags(p)
    p = command("edit", cmd_edit, "change a task (same flags as add)")
    p.add_argument("id")
    _add_task_flags(p)
    for name, handler, text in (
        ("pause", cmd_pause, "pause a task"),
        ("resume", cmd_resume, "resume a paused or disabled task"),
    ):
        command(name, handler, text).add_argument("id")
    p = command("remove", cmd_remove, "remove a task (asks first, unless --yes)")
    p.add_argument("id")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    p = command("run", cmd_run, "run a task now")
    p.add_argument("id")
    p.add_argument(
        "--wait",
        action="store_true",
        help="wait for the run (runs it here if no scheduler is running)",
    )
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS")
    p = command("runs", cmd_runs, "run history, newest first", reads=True)
    p.add_argument("--task", metavar="ID")
    p.add_argument("--status", choices=[s.value for s in RunStatus])
    p.add_argument("--limit", type=int, default=20, metavar="N")
    p = command("validate", cmd_validate, "check a tasks file; changes nothing", reads=True)
    p.add_argument("file")
    p = command(
        "apply", cmd_apply, "apply a tasks file (add, update, remove its tasks)", reads=True
    )
    p.add_argument("file")
    p.add_argument("--removed", choices=["remove", "keep"], help="tasks gone from the file")
    p = command("next", cmd_next, "preview the fire times of a schedule", reads=True)
    p.add_argument("schedule")
    p.add_argument("--tz", metavar="ZONE")
    p.add_argument("--count", type=int, default=5, metavar="N")
    command("serve", cmd_serve, "run the scheduler (what python main.py does)")
    p = command("scaffold", cmd_scaffold, "add the scheduler to a LangGraph project")
    try:
        from scheduler.scaffold import add_scaffold_arguments
    except ImportError:  # pragma: no cover - the scaffolder ships with the package
        pass
    else:
        add_scaffold_arguments(p)
    return parser


_WITHOUT_DATABASE = {"next", "serve", "scaffold"}


def _fail(message: str, status: int) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(status)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    out = Output(as_json=getattr(args, "json", False))
    try:
        settings = Settings()
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
            print(problem, file=sys.stderr)
        _fail(f"{len(exc.problems)} problem(s) in {exc.path}; nothing was applied", BAD_INPUT)
    except (UsageError, ScheduleError, TaskExistsError) as exc:
        _fail(str(exc), BAD_INPUT)
    except StorageError as exc:
        _fail(str(exc), NOT_FOUND)
    except SchedulerError as exc:
        _fail(str(exc), BAD_INPUT)
    except KeyboardInterrupt:
        return 130
