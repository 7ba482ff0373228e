"""The graphs every side invokes: one node that answers with an ``AIMessage``.

``graph`` answers at once (a trivial graph: what is measured is what surrounds it);
``sleepy_graph`` first awaits ``asyncio.sleep`` (I/O-bound, like an LLM call) for scenario 6:
1 second, or what :func:`set_sleep` says (``--quick`` uses a shorter sleep); ``cpu_graph``
burns CPU (scenario 13, workers).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph

__all__ = ["cpu_graph", "graph", "graph_named", "set_sleep", "sleepy_graph"]

_sleep_seconds = 1.0


def set_sleep(seconds: float) -> None:
    """Make ``sleepy_graph``'s node await ``seconds`` (for this process)."""
    global _sleep_seconds
    _sleep_seconds = seconds


def answer(state: MessagesState) -> dict[str, Any]:
    """Answer the prompt at once."""
    return {"messages": [AIMessage("done")]}


async def answer_later(state: MessagesState) -> dict[str, Any]:
    """Answer after the sleep, without using the CPU meanwhile."""
    await asyncio.sleep(_sleep_seconds)
    return {"messages": [AIMessage("done")]}


def _build(node: Any) -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("answer", node)
    builder.add_edge(START, "answer")
    return builder.compile()


def burn(state: MessagesState) -> dict[str, Any]:
    """Answer after about ``BENCH_CPU_MS`` (20) ms of CPU time, holding the GIL (a CPU-bound
    tool): a sync node, which LangGraph runs on a thread of the process."""
    seconds = float(os.environ.get("BENCH_CPU_MS", "20")) / 1000
    until = time.thread_time() + seconds
    spins = 0
    while time.thread_time() < until:
        spins += sum(range(200))
    return {"messages": [AIMessage(f"done {spins > 0}")]}


graph = _build(answer)
sleepy_graph = _build(answer_later)
cpu_graph = _build(burn)


def graph_named(name: str) -> Any:
    """The graph called ``name``: ``"trivial"`` or ``"sleepy"``."""
    graphs = {"trivial": graph, "sleepy": sleepy_graph}
    if name not in graphs:
        raise ValueError(f"unknown graph {name!r}; expected one of {sorted(graphs)}")
    return graphs[name]
