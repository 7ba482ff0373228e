"""The ``after`` field: which tasks a task runs after, on which of their outcomes.

Three ways to write it (the tasks file, the CLI's ``--after``, the API):

* ``after: fetch-sales`` or ``after: [fetch-sales, fetch-costs]``: once every one of them has
  succeeded since this task last ran on them (fan-in);
* ``after: {tasks: [report], on: failed}`` (``tasks: report`` alike, as above): a
  fallback, once ``report`` fails (or times out, or is interrupted), after its retries;
* ``after: {tasks: [a, b], mode: any, on: finished}``: each time any of them ends.

``on``: ``succeeded`` (the default), ``failed`` (failed, timed out or interrupted) or
``finished`` (any final outcome, cancelled included). Only final outcomes count: an attempt
that earns a retry does not; ``skipped`` and ``missed`` records are not runs that ended.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scheduler.enums import RunStatus

__all__ = ["OUTCOMES", "After"]

_ID = re.compile(r"^(?!\.+\Z)[A-Za-z0-9._:-]{1,128}\Z")  # not "." or "..": paths

#: The final statuses each ``on`` value fires on.
OUTCOMES: dict[str, frozenset[RunStatus]] = {
    "succeeded": frozenset({RunStatus.SUCCEEDED}),
    "failed": frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.INTERRUPTED}),
    "finished": frozenset(
        {
            RunStatus.SUCCEEDED,
            RunStatus.FAILED,
            RunStatus.TIMED_OUT,
            RunStatus.INTERRUPTED,
            RunStatus.CANCELLED,
        }
    ),
}


def _names(text: str) -> list[str]:
    """``"a, b"`` as ``["a", "b"]``: task ids written as one comma-separated string."""
    return [part.strip() for part in text.split(",") if part.strip()]


_VERBS = {"failed": ("fails", "fail"), "finished": ("finishes", "finish")}


class After(BaseModel):
    """Run after other tasks (see the module docstring).

    Attributes:
        tasks: The upstream task ids (1-100, each once).
        on: The outcome that counts: ``succeeded``, ``failed`` or ``finished``.
        mode: ``all`` (every one of them, since this task last ran on them) or ``any``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasks: list[str] = Field(min_length=1, max_length=100)
    on: Literal["succeeded", "failed", "finished"] = "succeeded"
    mode: Literal["all", "any"] = "all"

    @model_validator(mode="before")
    @classmethod
    def _forms(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"tasks": _names(data)}
        if isinstance(data, list | tuple):
            return {"tasks": list(data)}
        if isinstance(data, dict) and True in data and "on" not in data:
            # YAML 1.1 reads a bare ``on:`` key as the boolean true
            data = {("on" if key is True else key): value for key, value in data.items()}
        if isinstance(data, dict) and isinstance(data.get("tasks"), str):
            # ``{tasks: fetch}`` (or ``"a, b"``) as ``after: fetch`` reads it
            data = {**data, "tasks": _names(data["tasks"])}
        return data

    @field_validator("tasks")
    @classmethod
    def _check_ids(cls, value: list[str]) -> list[str]:
        for task_id in value:
            if not _ID.match(task_id):
                raise ValueError(f"{task_id!r} is not a task id")
        duplicates = sorted({t for t in value if value.count(t) > 1})
        if duplicates:
            raise ValueError(f"{', '.join(duplicates)} given more than once")
        return value

    def fires_on(self, status: RunStatus) -> bool:
        """An upstream run that ended ``status`` counts toward the next run."""
        return status in OUTCOMES[self.on]

    def words(self) -> str:
        """``after fetch-sales, fetch-costs``, ``after report fails``, ``after any of a, b
        finishes``."""
        several = len(self.tasks) > 1
        text = "after " + ("any of " if several and self.mode == "any" else "")
        text += ", ".join(self.tasks)
        if self.on in _VERBS:
            singular, plural = _VERBS[self.on]
            text += " " + (plural if several and self.mode == "all" else singular)
        return text
