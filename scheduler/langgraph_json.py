"""A LangGraph project's ``langgraph.json``: what the LangGraph server reads from it, read
the same way here.

Keys used: ``graphs`` (the graph targets, ``./src/agent/graph.py:graph``), ``env`` (a file
to load into the environment, or a mapping of variables), ``store`` (``index`` and ``ttl``
of the long-term store the server gives every graph), and ``checkpointer`` (``ttl``, or a
``path`` to a function returning a custom checkpointer). The file is configuration the
operator wrote, like ``SCHEDULER_GRAPH``; it is read once, when the graph is loaded.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from scheduler.exceptions import GraphLoadError

__all__ = ["LangGraphConfig", "read_langgraph_json"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LangGraphConfig:
    """What ``langgraph.json`` says (empty when there is none).

    Attributes:
        path: The file, or None.
        graphs: Graph id to target (``path/to/file.py:attribute``, relative to the file).
        env: Variables to set before the graph is imported (existing ones win).
        store: The ``store`` section (``index``, ``ttl``, ``path``), or empty.
        checkpointer: The ``checkpointer`` section (``ttl``, ``path``), or empty.
    """

    path: Path | None = None
    graphs: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    store: dict[str, Any] = field(default_factory=dict)
    checkpointer: dict[str, Any] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()

    def target(self, graph_id: str) -> str:
        """The import target of ``graph_id``, its file resolved against the project.

        Raises:
            GraphLoadError: No such graph id.
        """
        value = self.graphs.get(graph_id)
        if value is None:
            known = ", ".join(sorted(self.graphs)) or "none"
            raise GraphLoadError(graph_id, f"not a graph of {self.path} (graphs: {known})")
        file, _, attribute = value.rpartition(":")
        return f"{(self.directory / file).resolve()}:{attribute}"

    def apply_env(self) -> list[str]:
        """Set the variables of ``env`` that the environment does not set yet (as the
        server does); returns their names."""
        added = [name for name in self.env if name not in os.environ]
        for name in added:
            os.environ[name] = self.env[name]
        return added


def read_langgraph_json(directory: Path) -> LangGraphConfig:
    """Read ``directory/langgraph.json`` (an empty config when there is none).

    Raises:
        GraphLoadError: The file exists but is not a JSON object.
    """
    path = directory / "langgraph.json"
    if not path.is_file():
        return LangGraphConfig()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GraphLoadError(str(path), f"cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise GraphLoadError(str(path), "expected a JSON object")
    graphs: dict[str, str] = {}
    for graph_id, value in (data.get("graphs") or {}).items():
        if isinstance(value, dict):
            value = value.get("path")
        if isinstance(value, str) and ":" in value:
            graphs[str(graph_id)] = value
    return LangGraphConfig(
        path=path,
        graphs=graphs,
        env=_env(path.parent, data.get("env")),
        store=_section(data, "store"),
        checkpointer=_section(data, "checkpointer"),
    )


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return dict(value) if isinstance(value, dict) else {}


def _env(directory: Path, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items() if v is not None}
    if isinstance(value, str):
        file = directory / value
        if not file.is_file():  # templates name a .env the user creates from .env.example
            logger.warning("langgraph.json names the env file %s, which does not exist", file)
            return {}
        return {k: v for k, v in dotenv_values(file).items() if v is not None}
    raise GraphLoadError(str(directory / "langgraph.json"), "env must be a file name or a mapping")
