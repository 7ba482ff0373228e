"""The CLI's workflow parts: the ``--after`` flags of ``add`` / ``edit``, the ``graph``
command (the dependency graph as text), and who runs after whom, for ``show``."""

from __future__ import annotations

import argparse
from typing import Any

from scheduler.dependencies.graph import draw
from scheduler.exceptions import UsageError
from scheduler.render import Output
from scheduler.task_scheduler import TaskScheduler
from scheduler.wording import describe_task

__all__ = ["add_after_flags", "after_given", "apply_after_flags", "cmd_graph", "neighbours"]


def add_after_flags(parser: argparse.ArgumentParser, *, editing: bool = False) -> None:
    """``--after IDS``, ``--after-on OUTCOME``, ``--after-any`` / ``--after-all`` (and
    ``--no-after``)."""
    parser.add_argument(
        "--after",
        metavar="IDS",
        help="run after these tasks (comma-separated), e.g. fetch-sales,fetch-costs: once all "
        "of them have succeeded since this task last ran on them",
    )
    parser.add_argument(
        "--after-on",
        choices=["succeeded", "failed", "finished"],
        help="the upstream outcome that counts (default succeeded; failed makes a fallback)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--after-any",
        action="store_const",
        const="any",
        dest="after_mode",
        help="run after any one of them ends so, not after all of them",
    )
    mode.add_argument(
        "--after-all",
        action="store_const",
        const="all",
        dest="after_mode",
        help="run once all of them have ended so (the default; edit: undoes --after-any)",
    )
    if editing:
        parser.add_argument(
            "--no-after", action="store_true", help="stop running after other tasks"
        )


def after_given(args: argparse.Namespace) -> bool:
    """Some ``--after`` flag was given."""
    flags = (args.after, args.after_on, args.after_mode, getattr(args, "no_after", False))
    return any(value not in (None, False) for value in flags)


def apply_after_flags(args: argparse.Namespace, data: dict[str, Any]) -> None:
    """Set (or drop) ``after`` in the task fields ``data`` from the flags; on ``edit``,
    ``--after-on`` / ``--after-any`` / ``--after-all`` alone change the task's own ``after``."""
    if getattr(args, "no_after", False):
        if args.after or args.after_on or args.after_mode:
            raise UsageError(
                "--no-after cannot go with --after, --after-on, --after-any or --after-all"
            )
        data.pop("after", None)
        if data.get("task_type") == "after":  # (a schedule given with it has set another)
            raise UsageError(
                "--no-after: the task runs only after others; give it a schedule with it "
                "(--schedule)"
            )
        return
    if not after_given(args):
        return
    current = data.get("after")
    if args.after is None and not current:
        raise UsageError("--after-on, --after-any and --after-all need --after IDS")
    after: dict[str, Any] = dict(current or {})
    if args.after is not None:
        after["tasks"] = [part.strip() for part in args.after.split(",") if part.strip()]
    if args.after_on is not None:
        after["on"] = args.after_on
    if args.after_mode is not None:
        after["mode"] = args.after_mode
    data["after"] = after


def neighbours(scheduler: TaskScheduler, task_id: str) -> tuple[list[str], list[str]]:
    """The tasks ``task_id`` runs after, and the tasks that run after it."""
    links = scheduler.dependencies()
    return (
        [upstream for task, upstream in links if task == task_id],
        [task for task, upstream in links if upstream == task_id],
    )


def cmd_graph(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    """Print which tasks run after which, as a tree from the tasks that start chains."""
    links = scheduler.dependencies()
    words = {
        task.id: describe_task(task.definition) if task.definition else "(cannot be loaded)"
        for task in scheduler.list_tasks()
    }
    if not links:
        out.line("no task runs after another (give one an 'after', e.g. add --after ID)")
    for line in draw(links, words):
        out.line(line)
    out.result(
        {
            "links": [{"task": task, "after": upstream} for task, upstream in links],
            "tasks": {
                task: words.get(task) for task in sorted({t for link in links for t in link})
            },
        }
    )
    return 0
