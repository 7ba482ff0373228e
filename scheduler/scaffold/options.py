"""The scaffolder's ``--task`` options: each a JSON object, validated as a tasks-file entry."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from scheduler.exceptions import ScaffoldError, describe_errors
from scheduler.models import TaskDefinition

__all__ = ["TASK_EXAMPLE", "parse_tasks"]

TASK_EXAMPLE = '{"id": "heartbeat", "schedule": "every 1 minute", "prompt": "Say hello"}'


def parse_tasks(texts: list[str], zone: str) -> list[dict[str, Any]]:
    """The ``--task`` options, each validated as a tasks-file entry."""
    tasks: list[dict[str, Any]] = []
    for number, text in enumerate(texts, start=1):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScaffoldError(f"--task {number}: not JSON ({exc}): {text}") from None
        if not isinstance(data, dict):
            raise ScaffoldError(f"--task {number}: expected a JSON object, e.g. {TASK_EXAMPLE}")
        label = f"--task {data['id']!r}" if isinstance(data.get("id"), str) else f"--task {number}"
        context = {"timezone": zone, "allow_past": True, "allow_relative": False}
        try:
            task = TaskDefinition.model_validate(data, context=context)
        except ValidationError as exc:
            raise ScaffoldError(f"{label}: {describe_errors(exc)}") from None
        if any(other["id"] == task.id for other in tasks):
            raise ScaffoldError(f"{label}: two tasks with this id")
        tasks.append(data)
    return tasks
