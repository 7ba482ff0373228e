"""The package's shape: imports only point one way (no cycles, not even through imports
inside functions), the core never imports the CLI, the service or the scaffolder, the
scaffolder is a subpackage, and modules stay small enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "scheduler"
CORE = {
    "scheduler.enums",
    "scheduler.models",
    "scheduler.schedules",
    "scheduler.cron",
    "scheduler.rows",
    "scheduler.dispatcher",
    "scheduler.runner",
    "scheduler.invocation",
    "scheduler.supervisor",
    "scheduler.storage.store",
}
OUTER = (
    "scheduler.cli",
    "scheduler.commands",
    "scheduler.service",
    "scheduler.scaffold",
    "scheduler.server",
)
MAX_LINES = 420


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Every ``scheduler`` module ``path`` imports, anywhere in the file, except under
    ``if TYPE_CHECKING:`` (no import at run time)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for child in ast.walk(node))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("scheduler"))
        elif (
            isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("scheduler")
        ):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {t for t in imports(path) if t in modules and t != name}
        # Importing a submodule runs its package's __init__ too.
        edges[name] = {t for t in targets if not name.startswith(t + ".")}
    return edges


def test_no_import_cycles() -> None:
    edges = graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges[node]):
            if target == "scheduler":
                continue  # the package's re-exports: imported by nothing inside it
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_nothing_inside_the_package_imports_its_re_exports() -> None:
    importers = [name for name, targets in graph().items() if "scheduler" in targets]
    assert importers == [], importers


def test_the_core_does_not_know_the_cli_the_service_or_the_scaffolder() -> None:
    edges = graph()
    reached: set[str] = set()
    pending = list(CORE)
    while pending:
        name = pending.pop()
        for target in edges.get(name, ()):
            if target not in reached:
                reached.add(target)
                pending.append(target)
    assert not [t for t in reached if t.startswith(OUTER)], sorted(reached)


def test_the_scaffolder_is_a_subpackage() -> None:
    assert (PACKAGE / "scaffold" / "__init__.py").is_file()
    flat = {"scaffold.py", "wiring.py", "changes.py", "manifests.py", "projects.py", "tomltext.py"}
    assert not flat & {p.name for p in PACKAGE.glob("*.py")}


def test_modules_stay_under_about_400_lines() -> None:
    long = {
        module_name(p): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, long
