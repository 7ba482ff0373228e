"""What the scaffolder checks of the tasks given with ``--task``, before it writes anything
(exit 2, nothing written, as for any wrong option): the callbacks, against the callback
policy, found without running the project's code; and what the graph takes, as far as
importing it could tell: a prompt for a graph without messages, an input key or a context
key the graph does not have (LangGraph drops it), a required context field left out
(every run would fail building the context).

A callback refused here was written and reported "done", then refused by ``main.py``'s
apply at every start; a context without its required field failed every run.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from scheduler.callbacks import CallbackPolicy
from scheduler.exceptions import CallbackError, ScaffoldError, SettingError
from scheduler.models import CALLBACK_FIELDS
from scheduler.settings import Settings

if TYPE_CHECKING:
    from scheduler.scaffold.plan import Plan
    from scheduler.scaffold.projects import GraphShape

__all__ = ["check_tasks", "in_the_project"]


def check_tasks(tasks: list[dict[str, Any]], plan: Plan) -> None:
    """Refuse what would not run (see the module docstring); note a context the graph
    cannot take.

    Raises:
        ScaffoldError: Names the task and the field.
    """
    _check_callbacks(tasks, plan)
    shape = plan.shape
    if shape.problem is not None:  # (the graph could not be imported here: nothing known)
        return
    for task in tasks:
        if not shape.uses_messages and task.get("prompt"):
            raise ScaffoldError(
                f"--task {task['id']!r}: prompt: the graph's input has no 'messages' key, "
                f'so a prompt would not reach it; give "input" with its fields '
                f"({', '.join(shape.input_fields)})"
            )
        if unknown := shape.foreign_keys(task.get("input")):
            raise ScaffoldError(
                f"--task {task['id']!r}: input: {', '.join(map(repr, unknown))} is not a field "
                f"of the graph's input ({', '.join(shape.input_fields)}): it would not reach it"
            )
        if task.get("context") and not shape.context_fields:
            plan.notes.append(f"task {task['id']!r} has a context; the graph has no context_schema")
        elif shape.context_fields:
            _check_context(task, shape)


def _check_context(task: dict[str, Any], shape: GraphShape) -> None:
    given = task.get("context") or {}
    fields = shape.context_fields
    if isinstance(given, dict) and (unknown := sorted(set(given) - set(fields))):
        raise ScaffoldError(
            f"--task {task['id']!r}: context: {', '.join(map(repr, unknown))} is not a field "
            f"of the graph's context_schema ({', '.join(fields)})"
        )
    if missing := [key for key in shape.required_context if key not in given]:
        raise ScaffoldError(
            f"--task {task['id']!r}: context: the graph's context_schema requires "
            f"{', '.join(map(repr, missing))} (no default): give it, as "
            f'\'"context": {{"{missing[0]}": ...}}\', or every run fails building the context'
        )


def _check_callbacks(tasks: list[dict[str, Any]], plan: Plan) -> None:
    """Each callback against the policy of the project's settings (its ``.env``), found
    from the project as ``main.py`` finds it, its module parsed, not run."""
    wanted = [(t, f) for t in tasks for f in CALLBACK_FIELDS if isinstance(t.get(f), str)]
    if not wanted:
        return
    try:
        settings = Settings(_env_file=plan.project / ".env")  # type: ignore[call-arg]
        modules = settings.callback_modules
    except (SettingError, ValueError):  # (said by main.py at start, in its own words)
        modules = []
    policy = CallbackPolicy(modules, project_dir=plan.project)
    with in_the_project(plan):
        for task, field in wanted:
            try:
                policy.check_statically(task[field], field=field)
            except CallbackError as exc:
                raise ScaffoldError(f"--task {task['id']!r}: {exc}") from None


@contextlib.contextmanager
def in_the_project(plan: Plan) -> Iterator[None]:
    """In the project's directory, its modules found first, as ``main.py`` runs there (a
    tasks file's source is ``file:tasks.yaml``, a callback's module the project's)."""
    saved = sys.path[:]
    try:
        sys.path[:0] = [str(plan.project), str(plan.location.import_root)]
        with contextlib.chdir(plan.project):
            yield
    finally:
        sys.path[:] = saved
