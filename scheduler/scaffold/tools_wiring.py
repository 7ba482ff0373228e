"""``scaffold --agent-tools``: give the project's agent the scheduling tools.

The agent's tools are a module-level list (``TOOLS = [search]`` in the ReAct template's
``tools.py``, ``tools = [...]`` in many graphs), in the graph's module or in the module it
imports them from. A marked block right after that list adds the scheduling tools to it,
so the model binding and the ``ToolNode`` built from the list get them too::

    # >>> scheduler (added by python -m scheduler scaffold; it updates this block)
    from scheduler.agent_tools import scheduling_tools

    TOOLS = [*TOOLS, *scheduling_tools()]
    # <<< scheduler

A project without such a list is refused with what to write by hand; nothing is written.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from scheduler.exceptions import ScaffoldError
from scheduler.scaffold.wiring import BEGIN, END

__all__ = ["ToolsList", "find_tools_list", "tools_block", "with_tools_block"]

_NAMES = ("TOOLS", "tools", "ALL_TOOLS", "all_tools")
_ABOUT = "added by python -m scheduler scaffold --agent-tools; it updates this block"
BY_HAND = (
    "add the scheduling tools by hand: `from scheduler.agent_tools import scheduling_tools`, "
    "then pass `[*your_tools, *scheduling_tools()]` where the agent gets its tools"
)


@dataclass(frozen=True)
class ToolsList:
    """A module-level list of tools: the file, the name, the line its statement ends on."""

    file: Path
    name: str
    end_line: int


def _list_in(path: Path, names: tuple[str, ...]) -> ToolsList | None:
    """The first top-level ``NAME = [...]`` (or ``NAME: T = [...]``) of ``path``."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name) and target.id in names and isinstance(value, ast.List):
            return ToolsList(path, target.id, node.end_lineno or node.lineno)
    return None


def _imported_from(graph_file: Path, import_root: Path) -> list[tuple[Path, str]]:
    """The project files the graph module imports a tools list from, with the name."""
    try:
        tree = ast.parse(graph_file.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return []
    found = []
    for node in tree.body:
        if not isinstance(node, ast.ImportFrom):
            continue
        names = [alias.name for alias in node.names if alias.name in _NAMES]
        if not names:
            continue
        if node.level:
            base = graph_file.parent
            for _ in range(node.level - 1):
                base = base.parent
            parts = (node.module or "").split(".") if node.module else []
            module_path = base.joinpath(*parts)
        else:
            module_path = import_root.joinpath(*(node.module or "").split("."))
        for candidate in (module_path.with_suffix(".py"), module_path / "__init__.py"):
            if candidate.is_file() and candidate.resolve().is_relative_to(import_root.resolve()):
                found += [(candidate, name) for name in names]
    return found


def find_tools_list(graph_file: Path, import_root: Path) -> ToolsList:
    """Where the agent's tools list is: in the graph's module, or in a project module the
    graph imports it from.

    Raises:
        ScaffoldError: No such list.
    """
    here = _list_in(graph_file, _NAMES)
    if here is not None:
        return here
    for path, name in _imported_from(graph_file, import_root):
        there = _list_in(path, (name,))
        if there is not None:
            return there
    raise ScaffoldError(
        f"--agent-tools: {graph_file.name} has no module-level list of tools "
        f"({' / '.join(_NAMES[:2])} = [...]), nor imports one from the project; {BY_HAND} "
        "(nothing was written)"
    )


def tools_block(name: str, newline: str = "\n") -> str:
    """The marked block that adds the scheduling tools to the list ``name``."""
    lines = [
        f"{BEGIN} ({_ABOUT})",
        "# The agent schedules, lists and cancels its own follow-ups (scheduler.agent_tools).",
        "from scheduler.agent_tools import scheduling_tools  # noqa: E402",
        "",
        f"{name} = [*{name}, *scheduling_tools()]",
        END,
    ]
    return newline.join(lines) + newline


def with_tools_block(text: str, found: ToolsList, block: str) -> str:
    """``text`` (the file of ``found``) with ``block`` right after the list's statement."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        lines[-1] += "\n"
    before, after = "".join(lines[: found.end_line]), "".join(lines[found.end_line :])
    return before + block + after
