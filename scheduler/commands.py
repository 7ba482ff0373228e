"""The CLI's commands: each parses its arguments into a call of the public API and prints
the result (see :mod:`scheduler.cli` for the parser and the exit statuses)."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from scheduler.control_characters import shown
from scheduler.documents import DocumentError, load_json, load_yaml, read_document
from scheduler.exceptions import (
    ScheduleError,
    TaskNotRunnableError,
    TasksFileError,
    UsageError,
    describe_errors,
)
from scheduler.models import TaskDefinition
from scheduler.preview import preview
from scheduler.records import TaskInfo
from scheduler.render import Output, schedule_text, task_zone, when
from scheduler.schedules import validation_now
from scheduler.settings import Settings
from scheduler.task_scheduler import TaskScheduler
from scheduler.tasksfile import apply_tasks_file, check_tasks_file, tasks_listed
from scheduler.workflow_commands import after_given, apply_after_flags, neighbours

CLI_SOURCE = "cli"
BAD_INPUT = 2


# -- building tasks from flags ------------------------------------------------------------

_TASK_FLAGS: list[tuple[str, str, dict[str, Any]]] = [
    ("--name", "name", {"help": "human-readable name"}),
    ("--description", "description", {}),
    (
        "--schedule",
        "schedule",
        {
            "help": "'0 9 * * 1-5', '@daily', 'every 5 minutes', 'weekdays at 18:00', "
            "'in 30 minutes', 'at 2030-03-15 14:00', ISO 8601"
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
        value = load_json(text, what="the value", unique=True)  # (as a tasks file: refused)
    except DocumentError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object ({...})")
    return value


def add_task_flags(parser: argparse.ArgumentParser) -> None:
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
    out.tasks(scheduler.list_tasks(source=args.source))
    out.notices(scheduler.notices())
    return 0


def cmd_show(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    task = scheduler.get_task(args.id)
    upcoming = scheduler.next_run_times(args.id, 5) if task.definition is not None else []
    upstream, downstream = neighbours(scheduler, args.id)
    runs = scheduler.list_runs(args.id, limit=args.runs)
    out.task_detail(task, upcoming, runs, upstream=upstream, downstream=downstream)
    out.notices([n for n in scheduler.notices() if n.source == task.source])
    return 0


def _tasks_from_file(path: Path, settings: Settings) -> list[TaskDefinition]:
    """One task (a mapping) or several (a list, or ``tasks:`` with a list) from YAML/JSON."""
    try:
        data = load_yaml(read_document(path), what=str(path))
        if isinstance(data, dict):
            data = tasks_listed(data, path) if "tasks" in data else [data]
    except OSError as exc:
        raise UsageError(f"--file {path}: {exc}") from None
    except DocumentError as exc:
        raise UsageError(f"--file {exc}") from None
    if not isinstance(data, list):
        raise UsageError(f"--file {path}: expected a task (mapping) or a list of tasks")
    tasks, problems = [], []
    seen: dict[str, int] = {}  # the entry of each id
    for index, entry in enumerate(data, start=1):
        if not isinstance(entry, dict):
            problems.append(f"entry {index}: expected a mapping of task fields")
            continue
        try:
            task = _validate(entry, settings)
        except ValidationError as exc:
            problems.append(f"entry {index}: {describe_errors(exc)}")
            continue
        if (first := seen.setdefault(task.id, index)) != index:
            problems.append(
                f"entry {index} (id {task.id!r}): id {task.id!r} is also used by entry {first}"
            )
        tasks.append(task)
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
        if "schedule" not in flags and not after_given(args):
            raise UsageError(
                "--schedule is required (or --after IDS), e.g. --schedule 'every 5 minutes'"
            )
        data = {"id": args.id, **flags}
        apply_after_flags(args, data)
        tasks = [_validate(data, scheduler.settings)]
    scheduler.add_tasks(tasks, replace_existing=args.replace, source=CLI_SOURCE)
    added = [scheduler.get_task(task.id) for task in tasks]
    for info in added:
        out.line(f"added {info.id}: {_summary(info)}")
    out.result([_task_json(info) for info in added])
    return 0


def _task_json(info: TaskInfo) -> dict[str, Any]:
    return {**info.to_dict(), "schedule": schedule_text(info)}


def _summary(info: TaskInfo) -> str:
    if info.next_run:
        next_run = when(info.next_run, task_zone(info))
    elif info.state.value == "active" and info.definition and info.definition.after:
        next_run = "on the outcome of the tasks it runs after"
    elif info.state.value == "active":  # (no next time, its run not ended yet)
        next_run = "none: its run has not ended yet"
    else:
        next_run = info.state.value
    return f"{schedule_text(info)}; next run {next_run}"


def cmd_edit(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    flags = _flag_values(args)
    if not flags and not after_given(args):
        raise UsageError("nothing to change: give at least one flag (--schedule, --prompt, ...)")

    def edit(before: TaskDefinition) -> TaskDefinition:  # in the write's transaction
        data = before.model_dump(mode="json", exclude_none=True)
        if "schedule" in flags:
            for field in _SCHEDULE_FIELDS:
                data.pop(field, None)
        data.update(flags)
        apply_after_flags(args, data)
        return _validate(data, scheduler.settings)

    try:  # one transaction: a change made in between is not lost, a removal stays
        edited = scheduler.edit_task(args.id, edit)
    except TaskNotRunnableError as exc:
        raise UsageError(
            f"task {args.id!r} cannot be loaded ({exc.reason}); remove it and add it again"
        ) from None
    out.line(f"edited {edited.id}: {_summary(edited)}")
    out.result(_task_json(edited))
    if edited.source.startswith("file:"):
        out.line(
            f"note: {edited.id} comes from {edited.source[5:]}; applying that file again "
            "puts its definition back"
        )
    return 0


def cmd_pause(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    info = scheduler.pause_task(args.id)
    out.line(f"{info.id} is {info.state.value}")
    out.result(_task_json(info))
    return 0


def cmd_resume(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    info = scheduler.resume_task(args.id)
    out.line(f"{info.id} is {info.state.value}: {_summary(info)}")
    out.result(_task_json(info))
    return 0


def cmd_remove(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    if (args.id is None) == (args.source is None):
        raise UsageError("remove: give a task id, or --source SOURCE")
    if args.source is not None:
        return _remove_source(scheduler, args, out)
    info = scheduler.get_task(args.id)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"not removing {args.id!r} without confirmation; pass --yes")
        question = f"Remove task {info.id!r} ({shown(info.name)})? Its run history is kept."
        answer = input(f"{question} [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            out.line("not removed")
            out.result({"id": args.id, "removed": False})
            return 0
    scheduler.remove_task(args.id, force=args.force)
    out.line(f"removed {args.id}")
    out.result({"id": args.id, "removed": True})
    return 0


def _remove_source(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    ids = [task.id for task in scheduler.list_tasks(source=args.source)]
    if ids and not args.yes:
        if not sys.stdin.isatty():
            raise UsageError(f"not removing {len(ids)} task(s) without confirmation; pass --yes")
        answer = input(f"Remove {len(ids)} task(s) of {args.source}? History is kept. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            out.line("not removed")
            out.result({"source": args.source, "removed": []})
            return 0
    scheduler.remove_tasks(ids, force=args.force)
    out.line(f"removed {len(ids)} task(s) of {args.source}")
    out.result({"source": args.source, "removed": ids})
    return 0


def cmd_validate(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    try:
        tasks = check_tasks_file(scheduler, args.file)
    except TasksFileError as exc:
        if out.as_json:
            out.json({"file": args.file, "valid": False, "problems": exc.problems})
        else:
            for problem in exc.problems:
                print(shown(problem), file=sys.stderr)
        return BAD_INPUT
    if out.as_json:
        out.json({"file": args.file, "valid": True, "problems": [], "tasks": [t.id for t in tasks]})
    else:
        out.line(f"{args.file}: {len(tasks)} task(s), no problems")
    return 0


def cmd_apply(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    removed = args.removed or scheduler.settings.tasks_file_removed
    try:
        report = apply_tasks_file(scheduler, args.file, removed=removed)
    except TasksFileError as exc:
        if not out.as_json:
            raise  # (each problem on a line of its own, then the error)
        out.json({"file": args.file, "applied": False, "problems": exc.problems})
        count = f"{len(exc.problems)} problem(s) in {exc.path}"  # (as cli.py says it)
        print(f"error: {shown(count)}; nothing was applied", file=sys.stderr)
        return BAD_INPUT
    if out.as_json:
        out.json({"file": args.file, **report.__dict__})
    else:
        out.line(f"{args.file}: {report.summary()}")
    return 0


def cmd_next(settings: Settings, args: argparse.Namespace, out: Output) -> int:
    zone = settings.timezone if args.tz is None else args.tz
    now = validation_now()  # (the now ``add`` reads the schedule against)
    shown = preview(args.schedule, timezone=zone, now=now, count=args.count)
    parsed, words, times = shown.parsed, shown.description, shown.times
    if shown.passed:  # a preview of a task add would refuse: said, not listed
        [moment] = times
        there = now.astimezone(moment.tzinfo)
        raise ScheduleError(
            args.schedule,
            f"{_minute(moment)} has passed in {zone} (it is {_minute(there)} there now); "
            "add refuses a one-time time that is not after now",
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


def _minute(moment: datetime) -> str:
    """``2030-01-01 09:00+01:00``: with its offset (the two passes of a repeated hour)."""
    return moment.isoformat(" ", "seconds" if moment.second else "minutes")


def cmd_serve(settings: Settings, args: argparse.Namespace, out: Output) -> int:
    from scheduler.service import main as serve_main

    if args.http:  # the flag wins over SCHEDULER_HTTP_ADDRESS and .env
        os.environ["SCHEDULER_HTTP_ADDRESS"] = args.http
    database_flags_to_settings(args)
    return serve_main()


def database_flags_to_settings(args: argparse.Namespace) -> None:
    """``--db`` / ``--database-url`` for the commands that read their settings again
    (``serve``, ``worker``): as the settings they stand for, winning over ``.env``, as
    for the other commands (``--db`` also over a ``SCHEDULER_DATABASE_URL``)."""
    if args.database_url:
        os.environ["SCHEDULER_DATABASE_URL"] = args.database_url
    elif args.db:
        os.environ["SCHEDULER_DB_PATH"] = args.db
        os.environ["SCHEDULER_DATABASE_URL"] = ""  # (empty: none)
