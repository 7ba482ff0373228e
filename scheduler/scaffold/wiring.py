"""What the scaffolder writes into a project besides the package: ``main.py`` (or a marked
block in an existing one), ``tasks.yaml``, and a marked section of ``.env.example``.

A marked block starts with a ``# >>> scheduler`` line and ends with ``# <<< scheduler``; a
later run finds it and updates it in place instead of adding another.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from scheduler.documents import DocumentError, load_yaml
from scheduler.exceptions import ScaffoldError
from scheduler.settings import Settings

__all__ = [
    "BEGIN",
    "END",
    "OWN_TASKS",
    "TASKS",
    "env_section",
    "find_block",
    "keeps_running",
    "main_block",
    "main_module",
    "place_main_block",
    "replace_block",
    "tasks_file_name",
    "tasks_yaml",
]

BEGIN = "# >>> scheduler"
END = "# <<< scheduler"
_ABOUT = "added by python -m scheduler scaffold; it updates this block"
TASKS = "tasks.yaml"  # the tasks file main.py applies (SCHEDULER_TASKS_FILE's default)
OWN_TASKS = "scheduler-tasks.yaml"  # the scheduler's, when the project's tasks.yaml is not


def tasks_file_name(project: Path, recorded: object, scaffolded: bool) -> str:
    """The project's tasks file: ``tasks.yaml``, or ``scheduler-tasks.yaml`` when the
    project's ``tasks.yaml`` (not ``scaffolded``) is another program's (a name clash), or
    as ``recorded`` at an earlier run."""
    if recorded in (TASKS, OWN_TASKS):
        return str(recorded)
    path = project / TASKS
    if scaffolded or not path.is_file():
        return TASKS
    return OWN_TASKS if _foreign(path.read_text(encoding="utf-8", errors="replace")) else TASKS


def _foreign(text: str) -> bool:
    """``text`` (a ``tasks.yaml`` the scaffolder did not write) is some other program's
    file, not a tasks file of the scheduler with mistakes: YAML whose top is neither a list
    nor ``tasks:``, or a list without one entry that has an ``id``. Text that does not parse
    or holds nothing may be the scheduler's, half-written: not foreign."""
    try:
        data = load_yaml(text, what=TASKS)
    except DocumentError:
        return False
    if isinstance(data, dict) and "tasks" in data:
        data = data["tasks"]
    if data is None:
        return False
    if not isinstance(data, list):
        return True
    return bool(data) and not any(isinstance(item, dict) and "id" in item for item in data)


def _call(function: str, defaults: dict[str, str]) -> str:
    arguments = ", ".join(f"{name}={json.dumps(value)}" for name, value in defaults.items())
    return f"{function}({arguments})"


def main_module(defaults: dict[str, str]) -> str:
    """A new ``main.py``: the scheduler as the program, with ``defaults`` (settings the
    environment and ``.env`` do not set)."""
    return (
        '"""Run the agent\'s scheduler: python main.py (stop with Ctrl+C)."""\n'
        "\n"
        "from scheduler import main\n"
        "\n"
        'if __name__ == "__main__":\n'
        f"    raise SystemExit({_call('main', defaults)})\n"
    )


def main_block(defaults: dict[str, str], newline: str = "\n") -> str:
    """The block for an existing ``main.py``: the scheduler on a background thread, started
    before the program's own entry point and stopped gracefully when the program ends.

    ``start_in_background`` registers the graceful stop to run when the program ends.
    """
    lines = [
        f"{BEGIN} ({_ABOUT})",
        "# The scheduler runs on a thread beside the program and stops gracefully when the",
        "# program ends.",
        'if __name__ == "__main__":',
        "    from scheduler import start_in_background",
        "",
        f"    _scheduler_service = {_call('start_in_background', defaults)}",
        END,
    ]
    return newline.join(lines) + newline


def find_block(text: str) -> tuple[int, int] | None:
    """The span of the marked block in ``text`` (from the start of its first line to after
    its last), or ``None``.

    Raises:
        ScaffoldError: A begin marker without an end marker, or several blocks.
    """
    starts = [i for i in _line_starts(text) if text.startswith(BEGIN, i)]
    if not starts:
        return None
    if len(starts) > 1:
        raise ScaffoldError(f"several '{BEGIN}' blocks; keep one")
    start = starts[0]
    for i in _line_starts(text):
        if i > start and text.startswith(END, i):
            end = text.find("\n", i)
            return start, len(text) if end < 0 else end + 1
    raise ScaffoldError(f"a '{BEGIN}' line without its '{END}' line; restore it or remove both")


def _line_starts(text: str) -> list[int]:
    starts = [0]
    index = text.find("\n")
    while index >= 0:
        starts.append(index + 1)
        index = text.find("\n", index + 1)
    return [s for s in starts if s < len(text)]


def replace_block(text: str, span: tuple[int, int], block: str) -> str:
    """``text`` with the block at ``span`` (from :func:`find_block`) replaced by ``block``."""
    return text[: span[0]] + block + text[span[1] :]


def place_main_block(text: str, block: str, path: Path) -> str:
    """Insert ``block`` into an existing ``main.py``: just before its ``if __name__ ==
    "__main__":`` statement, or, without one, after its leading imports.

    Raises:
        ScaffoldError: The file does not parse.
    """
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise ScaffoldError(
            f"{path}: cannot add the scheduler: line {exc.lineno}: {exc.msg}"
        ) from None
    line = None
    for node in tree.body:
        if isinstance(node, ast.If) and _is_main_guard(node.test):
            line = node.lineno - 1
            break
    if line is None:
        line = 0
        for node in tree.body:
            docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            if not (isinstance(node, ast.Import | ast.ImportFrom) or docstring):
                break
            line = node.end_lineno or node.lineno
    nl = "\r\n" if "\r\n" in text else "\n"  # the file's own line ends, kept
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += nl
    before, after = "".join(lines[:line]), "".join(lines[line:])
    if before.strip():
        before = before.rstrip("\r\n") + nl * 3
    return before + block + (nl * 2 + after.lstrip("\r\n") if after.strip() else "")


# calls that keep a program running: servers, event loops, bots, GUIs
_SERVING = {"run", "serve", "serve_forever", "run_forever", "run_polling", "start_polling"}
_SERVING |= {"infinity_polling", "mainloop", "launch", "run_app", "start_server", "input"}


def keeps_running(text: str) -> bool:
    """``main.py`` looks like a program that runs until stopped (a loop, ``input()``, a
    server's or a bot's ``run``), so a scheduler started beside it gets time to fire; not
    a script that runs the graph once and exits, nor a module a server imports
    (``uvicorn main:app``), where a block under ``__main__`` never runs."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return True  # (place_main_block says what is wrong)
    for node in ast.walk(tree):
        if isinstance(node, ast.While):
            return True
        if isinstance(node, ast.For | ast.AsyncFor) and "stdin" in ast.unparse(node.iter):
            return True
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value if isinstance(func, ast.Attribute) else None
            if name in _SERVING and not (isinstance(owner, ast.Name) and owner.id == "asyncio"):
                return True
    return False


def _is_main_guard(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and len(test.comparators) == 1
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def _setting_value(value: Any) -> str:
    """A setting's value as its variable takes it (a list comma-separated)."""
    if value is None:
        return ""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(_setting_value(item) for item in value)
    return str(value)


def env_section(values: dict[str, str], skip: Sequence[str] = (), newline: str = "\n") -> str:
    """The ``.env.example`` section: every ``SCHEDULER_*`` setting with its description and
    default, ``values`` (e.g. ``{"graph": "agent.graph:graph"}``) instead of the defaults,
    leaving out the variables in ``skip`` (set elsewhere in the file)."""
    lines = [
        f"{BEGIN} ({_ABOUT})",
        "# The task scheduler's settings (SCHEDULER_*, also read from .env); values shown are the",
        "# defaults, except those the scaffolder chose.",
    ]
    for name, info in Settings.model_fields.items():
        variable = f"SCHEDULER_{name.upper()}"
        if variable in skip:
            continue
        default = info.get_default(call_default_factory=True)  # (a list's is a factory)
        value = values[name] if name in values else _setting_value(default)
        if info.description:
            lines.append(f"# {info.description}")
        lines.append(f"{variable}={value}")
    lines.append(END)
    return newline.join(lines) + newline


def dotenv_block(values: dict[str, str], newline: str = "\n") -> str:
    """The block of ``.env`` with the settings the scaffolder chose (``values``)."""
    lines = [
        f"{BEGIN} ({_ABOUT})",
        "# Chosen when the scheduler was scaffolded; main.py passes the same defaults, and",
        "# python -m scheduler (the CLI) reads them here.",
        *(f"SCHEDULER_{name.upper()}={value}" for name, value in values.items()),
        END,
    ]
    return newline.join(lines) + newline


def tasks_yaml(
    tasks: Sequence[dict[str, Any]], *, uses_messages: bool, example: bool, name: str = TASKS
) -> str:
    """The text of the tasks file ``name`` for ``tasks`` (each as the user gave it)."""
    head = [
        f"# Tasks that main.py applies at every start (python -m scheduler apply {name} does it",
        "# on demand). Same id = update; an entry removed from this file removes its task. Tasks",
        "# added through the CLI (python -m scheduler add ...) or the API are not touched by it.",
        "#",
        "# Each entry is a TaskDefinition: an id, one schedule, and what to send to the graph:",
        '#   schedule: "0 9 * * 1-5"          standard cron (1-5 = Monday to Friday)',
        '#   schedule: "every 5 minutes"      or "weekdays at 18:00", "at 2030-03-15 14:00"',
    ]
    if uses_messages:
        head.append("#   prompt: ...                      the user message the graph receives")
    else:
        head += [
            "#   input: {...}                     the graph's input (it has no messages key, so",
            "#                                    tasks give input instead of a prompt)",
        ]
    head.append(
        "#   context: {...}                   the run context, for a graph's context_schema"
    )
    if example:
        head.append(
            "# The entry below is an example that fits this graph's input: edit or replace it."
        )
    entries = [
        yaml.safe_dump([task], sort_keys=False, allow_unicode=True, width=88) for task in tasks
    ]
    return "\n".join(head) + "\n\n" + "\n".join(entries)
