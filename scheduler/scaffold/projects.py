"""A LangGraph project as the scaffolder sees it: where its graph is, and what it takes.

The graph is a ``graphs`` entry of ``langgraph.json`` (``"agent":
"./src/agent/graph.py:graph"``, or ``module:attribute``), or, without that file, a
``graph.py`` at the project root that defines ``graph``. What the graph takes (its input
and context schemas) is read by importing it in a subprocess of the current interpreter,
so the project's code never runs inside the scaffolder.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from scheduler.exceptions import ScaffoldError
from scheduler.scaffold.shapes import GraphShape

__all__ = [
    "BAD_INPUT",
    "NOT_FOUND",
    "GraphLocation",
    "GraphShape",
    "find_graph",
    "inspect_graph",
]

NOT_FOUND, BAD_INPUT = 1, 2
_INSPECT_TIMEOUT_SECONDS = 120
_MARK = "@@scheduler-scaffold@@"


@dataclass(frozen=True)
class GraphLocation:
    """Where a project's graph is.

    Attributes:
        name: Its name in ``langgraph.json`` (``graph`` for a root ``graph.py``).
        spec: What ``langgraph.json`` says (``./src/agent/graph.py:graph``).
        file: The graph's source file (absolute).
        attribute: The attribute of the module that holds the compiled graph.
        import_root: The directory from which ``module`` imports (the project root, or
            ``src`` for a package in a src layout).
        module: The dotted module name, relative to ``import_root``.
    """

    name: str
    spec: str
    file: Path
    attribute: str
    import_root: Path
    module: str

    @property
    def in_package(self) -> bool:
        """The graph's module belongs to a package (``agent.graph``, not ``graph``)."""
        return "." in self.module


def _graph_entries(path: Path) -> dict[str, str]:
    """The ``graphs`` of a ``langgraph.json``, as ``name -> spec``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ScaffoldError(f"{path}: not valid JSON: {exc}") from None
    graphs = data.get("graphs") if isinstance(data, dict) else None
    if not isinstance(graphs, dict):
        return {}
    entries: dict[str, str] = {}
    for name, spec in graphs.items():
        if isinstance(spec, dict):  # {"path": "./graph.py:graph", "description": ...}
            spec = spec.get("path")
        if isinstance(spec, str) and ":" in spec:
            entries[str(name)] = spec
    return entries


def _module_file(project: Path, module: str) -> Path | None:
    """The source file of ``module`` in the project's root or ``src`` directory."""
    parts = module.split(".")
    for root in (project, project / "src"):
        module_py = root.joinpath(*parts).with_suffix(".py")
        for candidate in (module_py, root.joinpath(*parts, "__init__.py")):
            if candidate.is_file():
                return candidate
    return None


def _locate(project: Path, name: str, spec: str) -> GraphLocation:
    """Resolve one ``langgraph.json`` spec (a file path or a module) to a location."""
    where, _, attribute = spec.rpartition(":")
    if where.endswith(".py") or "/" in where or "\\" in where:
        file = (project / where).resolve()
        if not file.is_file():
            raise ScaffoldError(
                f"langgraph.json graph {name!r} points at {where}, which does not exist", NOT_FOUND
            )
    else:
        found = _module_file(project, where)
        if found is None:
            raise ScaffoldError(
                f"langgraph.json graph {name!r} names module {where!r}, which is neither in "
                f"{project} nor in {project / 'src'}",
                NOT_FOUND,
            )
        file = found.resolve()
    parts = [] if file.name == "__init__.py" else [file.stem]
    root = file.parent
    while (root / "__init__.py").is_file() and root != project:
        parts.insert(0, root.name)
        root = root.parent
    return GraphLocation(name, spec, file, attribute, root, ".".join(parts))


def _defines(path: Path, name: str) -> bool:
    """``path`` assigns, defines or imports ``name`` at module level."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return False
    return name in {defined for node in tree.body for defined in _names(node)}


def _names(node: ast.stmt) -> list[str]:
    """The module-level names a statement binds."""
    if isinstance(node, ast.Assign):
        return [target.id for target in node.targets if isinstance(target, ast.Name)]
    if isinstance(node, ast.AnnAssign):
        return [node.target.id] if isinstance(node.target, ast.Name) else []
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.Import | ast.ImportFrom):
        return [(alias.asname or alias.name).split(".")[0] for alias in node.names]
    return []


def find_graph(project: Path, name: str | None = None) -> GraphLocation:
    """Find the project's graph.

    Args:
        project: The project's directory.
        name: The ``langgraph.json`` graph to use when it has several.

    Raises:
        ScaffoldError: No graph (status 1), an unknown ``name`` (1), or several graphs and
            no ``name`` (2); the message lists what there is.
    """
    config = project / "langgraph.json"
    if config.is_file():
        entries = _graph_entries(config)
        listing = ", ".join(f"{key} ({spec})" for key, spec in entries.items())
        if name is not None:
            if name not in entries:
                known = f"its graphs are: {listing}" if entries else "it has no graphs"
                raise ScaffoldError(f"no graph {name!r} in {config}; {known}", NOT_FOUND)
            return _locate(project, name, entries[name])
        if len(entries) > 1:
            raise ScaffoldError(
                f"{config} has {len(entries)} graphs; choose one with --graph NAME: {listing}"
            )
        if entries:
            ((only, spec),) = entries.items()
            return _locate(project, only, spec)
    elif name is not None:
        raise ScaffoldError(
            f"--graph {name} chooses among the graphs of langgraph.json, and {project} has none"
        )
    root_graph = project / "graph.py"
    if root_graph.is_file():
        if not _defines(root_graph, "graph"):
            raise ScaffoldError(
                f"{root_graph} does not define 'graph' at module level; expose the compiled "
                "graph as `graph = builder.compile()`",
                NOT_FOUND,
            )
        return _locate(project, "graph", "./graph.py:graph")
    raise ScaffoldError(
        f'no LangGraph graph found in {project}: expected langgraph.json with a "graphs" '
        'entry (e.g. "agent": "./src/agent/graph.py:graph") or a graph.py at the root '
        "exposing `graph`; nothing was written",
        NOT_FOUND,
    )


# -- what the graph takes ---------------------------------------------------------------

_INSPECT = """
import importlib, inspect, json, sys
roots, module, attribute, mark = json.loads(sys.argv[1])
class Unsupported(Exception):
    pass
sys.path[:0] = roots
try:
    value = importlib.import_module(module)
    for part in attribute.split("."):
        value = getattr(value, part)
    unsupported = None  # what scheduler.loader refuses to load
    if inspect.isfunction(value) and not hasattr(value, "ainvoke"):
        # a graph factory: called as the scheduler calls it (scheduler.loader)
        params = list(inspect.signature(value).parameters.values())
        if inspect.iscoroutinefunction(value) or inspect.isasyncgenfunction(value):
            unsupported = "an async graph factory"
        elif len(params) > 1 or "Runtime" in str(params[0].annotation if params else ""):
            unsupported = "a graph factory that takes a ServerRuntime"
        else:
            value = value({"configurable": {}}) if params else value()
            if inspect.isawaitable(value) or hasattr(value, "__aenter__") or (
                hasattr(value, "__enter__")
            ):
                unsupported = f"a graph factory that gives a {type(value).__name__}"
    if unsupported:
        raise Unsupported(unsupported)
    if hasattr(value, "compile") and not hasattr(value, "ainvoke"):
        value = value.compile()  # a StateGraph, as the scheduler compiles it
    shape = {"ok": True, "type": type(value).__name__}
    def hinted(kind):
        # the keys of the state (or context) class by its type hints: pydantic cannot read
        # every class (a typing.TypedDict on Python < 3.12), the graph still runs
        import dataclasses, typing
        builder = getattr(value, "builder", None)
        names = ("input_schema", "state_schema") if kind == "input" else ("context_schema",)
        cls = next((c for c in (getattr(builder, n, None) for n in names) if c), None)
        if cls is None:
            return None
        hints = typing.get_type_hints(cls)
        required = getattr(cls, "__required_keys__", None)
        if required is None and dataclasses.is_dataclass(cls):
            missing = dataclasses.MISSING
            required = {f.name for f in dataclasses.fields(cls)
                        if f.default is missing and f.default_factory is missing}
        return {"type": "object", "properties": {k: {} for k in hints},
                "required": sorted(required or ())}
    for key, method in (("input", "get_input_jsonschema"), ("context", "get_context_jsonschema")):
        get = getattr(value, method, None)
        try:
            shape[key] = get() if callable(get) else None
        except Exception:
            shape[key] = hinted(key)
    if not callable(getattr(value, "ainvoke", None)):
        shape = {"ok": False, "error": f"{attribute} is a {type(value).__name__}, not a graph"}
except Unsupported as exc:
    shape = {"ok": False, "unsupported": str(exc)}
except BaseException as exc:
    shape = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
print(mark + json.dumps(shape, default=str))
"""


def project_pythons(project: Path) -> list[str]:
    """The interpreters that may import the project's graph, best first: its own virtual
    environment's (``.venv`` or ``venv``: the graph's dependencies are there), then this
    one."""
    found = [
        str(python)
        for name in (".venv", "venv")
        for python in (project / name / "bin" / "python", project / name / "Scripts" / "python.exe")
        if python.is_file()
    ]
    return list(dict.fromkeys([*found[:1], sys.executable]))


def inspect_graph(project: Path, location: GraphLocation) -> GraphShape:
    """Import the graph in a subprocess (cwd: the project, its source directories first on
    ``sys.path``, no bytecode written) and read its input and context schemas: with the
    project's own interpreter, else this one (:func:`project_pythons`). A graph that
    cannot be imported by either gives a shape with ``problem`` set (the first one's)."""
    first, *others = project_pythons(project)
    shape = _inspect_with(first, project, location)
    for python in others if shape.problem is not None else []:
        other = _inspect_with(python, project, location)
        if other.problem is None:
            return other
    return shape


def _inspect_with(python: str, project: Path, location: GraphLocation) -> GraphShape:
    roots = [str(location.import_root), str(project)]
    argument = json.dumps([roots, location.module, location.attribute, _MARK])
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        done = subprocess.run(
            [python, "-c", _INSPECT, argument],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=_INSPECT_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return GraphShape(problem=f"importing it took over {_INSPECT_TIMEOUT_SECONDS} s")
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(_MARK):
            shape = json.loads(line[len(_MARK) :])
            break
    else:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return GraphShape(problem=f"the import exited with status {done.returncode}: {last}")
    if shape.get("unsupported"):  # it imports, and is not a graph the scheduler can load
        raise ScaffoldError(
            f"graph {location.name!r} ({location.spec}) is {shape['unsupported']}, which the "
            "scheduler cannot load: expose the compiled graph (graph = builder.compile()) or "
            "a sync factory; nothing was written"
        )
    if not shape["ok"]:
        return GraphShape(problem=str(shape["error"]))
    return GraphShape(input_schema=shape.get("input"), context_schema=shape.get("context"))
