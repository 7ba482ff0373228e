"""Result and failure callbacks the tests name by dotted path."""

from __future__ import annotations

import asyncio
import os
import threading
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


async def on_failure_after_a_moment(task: TaskDefinition, run: RunRecord) -> None:
    """An alert that takes a moment (a request to a chat service)."""
    await asyncio.sleep(0.2)
    failures.append((task.id, run))


not_callable = 42


def block_forever(task: TaskDefinition, result: Any) -> None:
    """A sync callback that never returns (it would stall a loop it ran on)."""
    threading.Event().wait()


getcwd = os.getcwd  # a function of the standard library, re-exported by a project module


waited: list[tuple[str, RunRecord]] = []


async def on_waiting(task: TaskDefinition, run: RunRecord) -> None:
    waited.append((task.id, run))


def record_failure(task: TaskDefinition, run: RunRecord) -> None:
    """A failure alert another process can see: appends ``RUN STATUS ERROR_TYPE`` to the
    file the task's metadata ``failures`` names."""
    with open(str(task.metadata["failures"]), "a", encoding="utf-8") as file:
        file.write(f"{run.id} {run.status.value} {run.error_type}\n")


def record_result(task: TaskDefinition, result: Any) -> None:
    """A result callback another process can see: appends ``TASK result PID`` to the file
    the task's metadata ``log`` names."""
    with open(str(task.metadata["log"]), "a", encoding="utf-8") as file:
        file.write(f"{task.id} result {os.getpid()}\n")
        file.flush()
        os.fsync(file.fileno())
