"""Models that remember a field was set after construction (:class:`Assignable`).

``validate_assignment`` checks the field set, and the model's ``after`` validators, but not
the checks one field makes of another (a prompt or an input; a schedule field against the
task's type): ``task.input = None`` on a task without a prompt, or ``task.task_type =
"cron"`` on an interval task, passed, and ``add_task`` wrote a row that could not be loaded
back, or failed with a bare ``AssertionError``. What writes a model validates a changed one
whole again (:func:`was_assigned`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, PrivateAttr

__all__ = ["Assignable", "was_assigned"]


class Assignable(BaseModel):
    """A model whose public fields, once one is set on an instance, mark it changed."""

    _assigned: bool = PrivateAttr(default=False)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if not name.startswith("_"):
            super().__setattr__("_assigned", True)


def was_assigned(model: BaseModel) -> bool:
    """A field of ``model`` was set after it was made (or after the model it was copied from)."""
    return bool(getattr(model, "_assigned", False))
