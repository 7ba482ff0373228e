"""How a task definition is kept in its row: JSON text plus a format number.

Rows hold ``TaskDefinition.model_dump(mode="json")`` as text, never a pickle, so a row stays
readable by people, by other tools and by later versions. A row this version cannot read (a
newer format, corrupted JSON, a field this version does not know) raises
:class:`DefinitionError`; callers keep such rows and report them instead of deleting them.
"""

from __future__ import annotations

from pydantic import ValidationError

from scheduler.models import STORED_CONTEXT_KEY, TaskDefinition, describe_errors
from scheduler.storage import DEFINITION_FORMAT, TaskRow

__all__ = ["DefinitionError", "decode", "encode"]


class DefinitionError(ValueError):
    """A stored definition that this version cannot load."""


def encode(task: TaskDefinition) -> str:
    """The definition as stored: compact JSON without unset (None) fields."""
    return task.model_dump_json(exclude_none=True)


def decode(row: TaskRow) -> TaskDefinition:
    """Load the definition stored in ``row``.

    Raises:
        DefinitionError: The row was written by a newer version or does not validate.
    """
    if row.problem is not None:
        raise DefinitionError(f"its stored row cannot be used: {row.problem}")
    if row.format > DEFINITION_FORMAT:
        raise DefinitionError(
            f"stored in format {row.format} by a newer version of this package "
            f"(this one reads format {DEFINITION_FORMAT}); upgrade to load it"
        )
    try:
        return TaskDefinition.model_validate_json(
            row.definition, context={STORED_CONTEXT_KEY: True}
        )
    except ValidationError as exc:
        problems = describe_errors(exc, whole="definition")
        raise DefinitionError(f"stored definition does not load: {problems}") from exc
