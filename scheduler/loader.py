"""Loading the graph a scheduler invokes, from a target string (or a server's URL).

A graph target is ``module:attribute`` (``graph:graph``, ``agent.graph:graph``) or
``path/to/file.py:attribute`` (the form ``langgraph.json`` uses). A file inside a package
(``src/agent/graph.py`` next to ``src/agent/__init__.py``) is imported under its package name,
so its relative and sibling imports work. Anything with ``ainvoke(input, config)`` is a graph,
so a ``RemoteGraph`` pointing at a LangGraph server works too.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

from scheduler.exceptions import GraphLoadError
from scheduler.weburls import redacted

__all__ = ["default_graph_target", "load_graph", "load_target"]


def _import_module_for_path(path: Path) -> str:
    """Make the file at ``path`` importable and return its dotted module name."""
    path = path.resolve()
    parts = [path.stem]
    root = path.parent
    while (root / "__init__.py").is_file():
        parts.insert(0, root.name)
        root = root.parent
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return ".".join(parts)


def load_target(target: str) -> Any:
    """Import ``module:attribute`` or ``path/to/file.py:attribute`` and return the attribute.

    Raises:
        GraphLoadError: The target is malformed, cannot be imported, or lacks the attribute.
    """
    module_part, sep, attribute = target.rpartition(":")
    if not sep or not module_part or not attribute:
        raise GraphLoadError(target, "expected 'module:attribute' or 'path/to/file.py:attribute'")
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
        path = Path(module_part)
        if not path.is_file():
            raise GraphLoadError(target, f"file {path} does not exist (cwd: {Path.cwd()})")
        module_name = _import_module_for_path(path)
    else:
        module_name = module_part
        cwd = str(Path.cwd())
        if cwd not in sys.path and "" not in sys.path:
            sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise GraphLoadError(target, f"cannot import {module_name!r}: {exc}") from exc
    try:
        value = module
        for name in attribute.split("."):
            value = getattr(value, name)
    except AttributeError:
        raise GraphLoadError(target, f"module {module_name!r} has no {attribute!r}") from None
    return value


def default_graph_target(directory: Path) -> str:
    """The graph to use when none is configured: ``graph:graph`` when ``directory`` has a
    ``graph.py``, else the only graph listed in its ``langgraph.json``, else ``graph:graph``."""
    if (directory / "graph.py").is_file():
        return "graph:graph"
    config = directory / "langgraph.json"
    try:
        graphs = json.loads(config.read_text(encoding="utf-8")).get("graphs", {})
    except (OSError, ValueError, AttributeError):
        return "graph:graph"
    if isinstance(graphs, dict) and len(graphs) == 1:
        value = next(iter(graphs.values()))
        if isinstance(value, dict):
            value = value.get("path")
        if isinstance(value, str) and ":" in value:
            return str((directory / value.split(":")[0]).resolve()) + ":" + value.split(":")[1]
    return "graph:graph"


def is_server_target(target: str) -> bool:
    """``target`` names a LangGraph server (``http://host:port#assistant``)."""
    return target.startswith(("http://", "https://"))


def load_graph(target: str) -> Any:
    """Load the graph named by ``target`` and check it has ``ainvoke``.

    ``target`` may also name a LangGraph server's assistant (``http://host:port#agent``,
    see :mod:`scheduler.remote`); a ``StateGraph`` that was not compiled is compiled (as the
    LangGraph server does).
    """
    if is_server_target(target):
        from scheduler.remote import ServerGraph  # lazily: the SDK only when used

        try:
            return ServerGraph(target)
        except ValueError as exc:  # (its user:password@ is a secret: never shown)
            raise GraphLoadError(redacted(target), str(exc)) from None
    graph = _called_if_factory(target, load_target(target))
    from langgraph.graph import StateGraph  # lazily: loaded by the graph's module anyway

    if isinstance(graph, StateGraph):
        graph = graph.compile()
    if not callable(getattr(graph, "ainvoke", None)):
        raise GraphLoadError(
            target,
            f"{type(graph).__name__} has no ainvoke(); point it at a compiled graph "
            "(builder.compile()) or a RemoteGraph",
        )
    return graph


def _called_if_factory(target: str, value: Any) -> Any:
    """A graph factory (a function ``langgraph.json`` may name, as the LangGraph server
    accepts) called once, here: with no argument, or with an empty config if it takes
    one. The server calls it per run; a factory that is async or takes a ``ServerRuntime``
    is refused with what to do instead."""
    if not inspect.isfunction(value) or callable(getattr(value, "ainvoke", None)):
        return value
    refused = "expose the compiled graph (graph = builder.compile()) or a sync factory"
    if inspect.iscoroutinefunction(value) or inspect.isasyncgenfunction(value):
        raise GraphLoadError(target, f"an async graph factory is not supported here; {refused}")
    parameters = list(inspect.signature(value).parameters.values())
    if len(parameters) > 1 or "Runtime" in str(parameters[0].annotation if parameters else ""):
        raise GraphLoadError(
            target, f"a graph factory that takes a ServerRuntime is not supported; {refused}"
        )
    try:
        made = value({"configurable": {}}) if parameters else value()
    except Exception as exc:
        raise GraphLoadError(target, f"the graph factory failed: {exc!r}") from exc
    if inspect.isawaitable(made) or hasattr(made, "__aenter__") or hasattr(made, "__enter__"):
        raise GraphLoadError(target, f"the factory gave a {type(made).__name__}; {refused}")
    return made
