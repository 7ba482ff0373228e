"""What the scaffolder says and does once its plan is made: the plan printed, the tasks of
``tasks.yaml`` applied to the project's database, the command that starts the project."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from scheduler.exceptions import SchedulerError
from scheduler.models import CALLBACK_FIELDS
from scheduler.scaffold.changes import RECORD, read_text
from scheduler.scaffold.manifests import SOURCE
from scheduler.scaffold.task_checks import in_the_project
from scheduler.settings import Settings
from scheduler.task_scheduler import TaskScheduler
from scheduler.tasksfile import apply_tasks_file, check_tasks_file

if TYPE_CHECKING:
    from scheduler.scaffold.plan import Plan

__all__ = ["apply_tasks", "next_command", "print_plan"]

# the project's .env picks another database: tasks written to ./scheduler.db would be lost
_DATABASE_IN_DOTENV = re.compile(
    r"^\s*(?:export\s+)?SCHEDULER_(?:DB_PATH|DATABASE_URL)\s*=\s*\S", re.MULTILINE
)


def next_command(plan: Plan) -> str:
    """The command that sets the project up on a fresh machine and starts it."""
    where = shlex.quote(str(plan.project))
    run = plan.run
    if plan.manifest.kind == "poetry":
        return f"cd {where} && poetry install && poetry run python {run}"
    install = (
        f"-r {shlex.quote(plan.manifest.path)}" if plan.manifest.kind == "requirements" else "-e ."
    )
    return (
        f"cd {where} && python3 -m venv .venv && .venv/bin/pip install {install} && "
        f".venv/bin/python {run}"
    )


def apply_tasks(plan: Plan, persist: bool) -> str:
    """Write the scaffolded tasks into the project's database now (so ``list`` shows them
    before the first start); returns what to print."""
    name = plan.tasks_file
    starts = "main.py" if plan.run == "main.py" else f"python {plan.run}"  # (main.py left)
    if not persist or not (plan.project / name).is_file():
        return f"the tasks of {name} are applied when {starts} starts"
    if _DATABASE_IN_DOTENV.search(read_text(plan.project / ".env") or ""):
        return f"the tasks of {name} are applied when {starts} starts (to the .env's database)"
    settings = Settings(_env_file=None, graph=plan.target, tasks_file=None)  # type: ignore[call-arg]
    settings = settings.model_copy(update={"timezone": plan.zone or settings.timezone})
    scheduler = TaskScheduler(db_path=plan.project / "scheduler.db", settings=settings)
    try:
        with in_the_project(plan):  # (its source file:tasks.yaml, as main.py's)
            tasks = check_tasks_file(scheduler, Path(name))  # (no project code runs)
            if any(getattr(task, field) for task in tasks for field in CALLBACK_FIELDS):
                # adding it imports the callbacks' modules: the project's code, not run here
                return f"the tasks of {name} are applied when {starts} starts (with callbacks)"
            report = apply_tasks_file(scheduler, Path(name))
    except SchedulerError as exc:
        return f"{name} not applied yet ({exc}); {starts} applies it at start"
    finally:
        scheduler.close()
    return f"tasks in scheduler.db: {report.summary()} (python -m scheduler list)"


def print_plan(plan: Plan, *, dry_run: bool) -> None:
    out, changes = sys.stdout, plan.changes.changes
    out.write(
        f"{'Would scaffold' if dry_run else 'Scaffolding'} the scheduler into {plan.project}\n"
    )
    out.write(
        f"  graph    {plan.location.name}: {plan.location.spec} (SCHEDULER_GRAPH={plan.target})\n"
    )
    out.write(f"  input    {plan.shape.describe()}\n")
    copied = [c for c in changes if c.copied and c.path != RECORD]
    for action in ("create", "update", "delete"):
        count = sum(1 for c in copied if c.action == action)
        if count:
            out.write(f"  {action:<8} {plan.package_dir} ({count} file(s), from {SOURCE})\n")
    for change in changes:
        if not change.copied or change.path == RECORD:
            note = f": {change.note}" if change.note else ""
            out.write(f"  {change.action:<8} {change.path}{note}\n")
    for note in plan.notes:
        out.write(f"  note     {note}\n")
