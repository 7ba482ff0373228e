"""Result and failure callbacks the tests name by dotted path."""

from __future__ import annotations

from typing import Any

from scheduler import RunRecord, TaskDefinition

received: list[tuple[str, Any]] = []
failures: list[tuple[str, RunRecord]] = []


async def collect(task: TaskDefinition, result: Any) -> None:
    received.append((task.id, result))


def collect_sync(task: TaskDefinition, result: Any) -> None:
    received.append((task.id, result))


def explode(task: TaskDefinition, result: Any) -> None:
    raise RuntimeError("callback exploded")


async def on_failure(task: TaskDefinition, run: RunRecord) -> None:
    failures.append((task.id, run))


not_callable = 42
