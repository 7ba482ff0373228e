"""Real compiled LangGraph graphs for the tests, driven by the prompt.

The prompt's first line is a command (a dependency run's prompt goes on with its upstreams'
results): ``fail`` raises, ``hang`` never returns, ``sleep:1.5`` sleeps then
answers (``sleep-fail:1.5`` sleeps then raises), ``fail-until:N`` fails the first N-1 calls
of a thread-less task and then succeeds (counted in a file named by the task's metadata
``counter``), ``record`` appends the run id
and process id to the file named by the metadata ``log`` (synced to disk) and then, when
``TEST_KILL_AFTER_RECORD=1`` is set, kills its own process with SIGKILL
(``record-sleep:2`` records ``RUN start TIME``, sleeps, then records ``RUN end TIME``;
``record-sleep-fail:2`` then raises; ``ask-record-sleep:2`` first stops at ``interrupt()``;
``record-sleep-first:8`` sleeps on a run's first attempt only, not on its retries),
anything else is echoed. Each
answer says what the node saw (prompt, thread id, metadata), so tests assert on real calls.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.types import interrupt


class CommandError(RuntimeError):
    """Raised by the graph when told to fail."""


def _count_call(counter: Path) -> int:
    calls = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(calls))
    return calls


def _record(log: Path, run_id: str) -> None:
    """Append ``run_id`` and this process's id to ``log``, durably; then die if told to."""
    with log.open("a", encoding="utf-8") as file:
        file.write(f"{run_id} {os.getpid()}\n")
        file.flush()
        os.fsync(file.fileno())
    if os.environ.get("TEST_KILL_AFTER_RECORD") == "1":
        os.kill(os.getpid(), signal.SIGKILL)


async def behave(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
    prompt = str(state["messages"][-1].content)
    command = prompt.split("\n", 1)[0]  # a dependency run's prompt goes on with its upstreams
    metadata = config.get("metadata", {})
    if command == "fail":
        raise CommandError("failing on command")
    if command == "hang":
        await asyncio.Event().wait()
    if command.startswith(("sleep:", "sleep-fail:")):
        await asyncio.sleep(float(command.split(":", 1)[1]))
        if command.startswith("sleep-fail:"):
            raise CommandError("failing on command")
    if command == "record":
        _record(Path(str(metadata["log"])), str(metadata["run_id"]))
    if command.startswith("ask-record-sleep:"):  # asks first; record-sleep once answered
        interrupt({"question": "go on?"})
        command = command.removeprefix("ask-")
    if command.startswith(("record-sleep:", "record-sleep-fail:", "record-sleep-first:")):
        log, run_id = Path(str(metadata["log"])), str(metadata["run_id"])
        _record(log, f"{run_id} start {time.time():.6f}")  # a start, an end line
        retry = command.startswith("record-sleep-first:") and metadata.get("attempt", 1) > 1
        await asyncio.sleep(0 if retry else float(command.split(":", 1)[1]))
        _record(log, f"{run_id} end {time.time():.6f}")
        if command.startswith("record-sleep-fail:"):
            raise CommandError("failing on command")
    if command.startswith("fail-until:"):
        calls = _count_call(Path(str(metadata["counter"])))
        if calls < int(command.split(":", 1)[1]):
            raise CommandError(f"failing call {calls}")
    seen = {
        "prompt": prompt,
        "thread_id": config.get("configurable", {}).get("thread_id"),
        "task_id": metadata.get("task_id"),
        "run_id": metadata.get("run_id"),
        "scheduled_for": metadata.get("scheduled_for"),
        "tags": config.get("tags"),
        "turns": sum(1 for m in state["messages"] if m.type == "human"),
        "metadata": {
            k: v for k, v in metadata.items() if not k.startswith(("langgraph_", "checkpoint_"))
        },
    }
    return {"messages": [AIMessage(json.dumps(seen, sort_keys=True))]}


def build(checkpointer: Any = None) -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("behave", behave)
    builder.add_edge(START, "behave")
    return builder.compile(checkpointer=checkpointer)


graph = build()
graph_with_memory = build(InMemorySaver())


def block(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
    """A sync node (LangGraph runs it on the loop's default executor): ``block:N`` holds
    its thread N seconds, between a start and an end line in the log."""
    command = str(state["messages"][-1].content)
    log, run_id = Path(str(config["metadata"]["log"])), str(config["metadata"]["run_id"])
    _record(log, f"{run_id} start {time.time():.6f}")
    time.sleep(float(command.split(":", 1)[1]))
    _record(log, f"{run_id} end {time.time():.6f}")
    return {"messages": [AIMessage("done")]}


_blocking = StateGraph(MessagesState)
_blocking.add_node("block", block)
_blocking.add_edge(START, "block")
blocking_graph = _blocking.compile()


def make_graph(config: Any) -> Any:
    """A graph factory, as ``langgraph.json`` may name one (it takes the run's config)."""
    assert "configurable" in config
    return build()


def make_graph_plainly() -> Any:
    """A graph factory that takes nothing."""
    return build()


async def make_graph_async(config: Any) -> Any:
    """An async factory: the scheduler refuses it, saying what to do."""
    return build()
