"""What a graph takes, as the scaffolder reads it (:class:`GraphShape`): the JSON schemas
of its input and context, read by importing the graph in a subprocess
(:func:`scheduler.scaffold.projects.inspect_graph`), and the example task that fits it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["GraphShape"]


def _schema(schema: dict[str, Any] | None) -> dict[str, Any]:
    """A JSON schema, its one top-level ``$ref`` followed."""
    if not schema:
        return {}
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        schema = schema.get("$defs", {}).get(ref.rsplit("/", 1)[1], {})
    return schema if isinstance(schema, dict) else {}


def _properties(schema: dict[str, Any] | None) -> dict[str, Any]:
    """The ``properties`` of a JSON schema, following one top-level ``$ref``."""
    props = _schema(schema).get("properties")
    return props if isinstance(props, dict) else {}


def _example_value(prop: dict[str, Any], name: str) -> Any:
    """A value that fits one property's schema: its default, else a made-up one."""
    if "default" in prop and prop["default"] not in (None, ""):
        return prop["default"]
    if prop.get("enum"):
        return prop["enum"][0]
    for option in prop.get("anyOf", []):
        if isinstance(option, dict) and option.get("type") != "null":
            return _example_value(option, name)
    values: dict[str, Any] = {
        "integer": 1,
        "number": 1.0,
        "boolean": True,
        "array": [],
        "object": {},
    }
    return values.get(str(prop.get("type")), f"{name.replace('_', ' ')} for the scheduled run")


def _example(schema: dict[str, Any] | None, *, all_if_none: bool = True) -> dict[str, Any]:
    """Example values for a schema's required properties (all of them when none are
    required, unless ``all_if_none`` is false)."""
    props = _properties(schema)
    required = [key for key in (schema or {}).get("required", []) if key in props]
    keys = required or (list(props) if all_if_none else [])
    return {key: _example_value(props[key], key) for key in keys}


@dataclass(frozen=True)
class GraphShape:
    """What a graph takes, as far as importing it could tell.

    Attributes:
        input_schema: JSON schema of the graph's input (``None`` if unknown).
        context_schema: JSON schema of its ``context_schema`` (``None`` if it has none).
        problem: Why the graph could not be inspected (``None`` when it could).
    """

    input_schema: dict[str, Any] | None = None
    context_schema: dict[str, Any] | None = None
    problem: str | None = None

    @property
    def uses_messages(self) -> bool:
        """The input has a ``messages`` key (assumed when it could not be inspected)."""
        props = _properties(self.input_schema)
        return not props or "messages" in props

    @property
    def input_fields(self) -> list[str]:
        """The keys of the graph's input."""
        return list(_properties(self.input_schema))

    def foreign_keys(self, given: Any) -> list[str]:
        """The keys of ``given`` (a task's input) that the graph's input does not have
        (LangGraph drops them); none when its schema is unknown or takes any key."""
        fields, extra = self.input_fields, (self.input_schema or {}).get("additionalProperties")
        if not isinstance(given, dict) or not fields or extra not in (None, False):
            return []
        return sorted(set(given) - set(fields))

    @property
    def context_fields(self) -> list[str]:
        """The keys of the graph's context (none without a context schema)."""
        return list(_properties(self.context_schema))

    @property
    def required_context(self) -> list[str]:
        """The keys of the graph's context that have no default."""
        required = _schema(self.context_schema).get("required", [])
        return [key for key in required if isinstance(key, str)]

    def example_task(self) -> dict[str, Any]:
        """A task that fits the graph: a prompt for a messages graph, else an ``input``
        with the input's fields; a ``context`` with the context schema's required fields
        (the others get their defaults at every run, as on the LangGraph server: pinned
        in ``tasks.yaml`` they would no longer follow the code)."""
        if self.uses_messages:
            task: dict[str, Any] = {"id": "weekday-summary", "name": "Weekday summary"}
            task["schedule"] = "0 9 * * 1-5"
            task["prompt"] = "Summarise what happened since yesterday."
        else:
            task = {"id": "weekday-run", "name": "Weekday run", "schedule": "0 9 * * 1-5"}
            task["input"] = _example(self.input_schema)
        if context := _example(self.context_schema, all_if_none=False):
            task["context"] = context
        return task

    def describe(self) -> str:
        """One line for people: what tasks give this graph."""
        if self.problem is not None:
            return f"could not import the graph ({self.problem}); assuming a messages graph"
        if self.uses_messages:
            text = 'has "messages": tasks give a prompt'
        else:
            text = (
                f'has no "messages" key: tasks give input ({", ".join(self.input_fields)}) '
                "instead of a prompt"
            )
        if self.context_fields:
            text += f"; context: {', '.join(self.context_fields)}"
        return text
