"""Graphs shaped like the LangGraph templates and the human-in-the-loop pattern, compiled
without a checkpointer or a store (as they are written for the LangGraph server), for the
tests that run them here and on a real ``langgraph dev`` (``tests/langgraph.json``).

* ``context_agent``: a ``context_schema`` whose fields all have defaults, one of them the
  model name (the ReAct template's shape); the model is a fake chat model named by it.
* ``memory_agent``: reads and writes ``runtime.store`` (the memory template's shape).
* ``asker``: stops at ``interrupt()`` and answers with what it was told.
* ``sleeper``: sleeps for the seconds in its prompt (for timeouts).
* ``counter``: says how many human messages its thread holds.
* ``reviewed``: drafts, then stops at a static breakpoint (``interrupt_before``) before it
  publishes; ``reviewed_inside``: the same graph as a subgraph, its breakpoint inside.
* ``tally``: counts its calls in the file its prompt names (``PATH SECONDS``), then sleeps
  (and fails, with ``PATH SECONDS fail``).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import interrupt


@dataclass
class AgentContext:
    """What the ReAct template's ``Context`` looks like: every field has a default."""

    model: str = "fake/echo-model"
    system_prompt: str = "You are a helpful assistant."
    user_id: str = "default-user"


def load_chat_model(name: str) -> GenericFakeChatModel:
    """The template's model loader, offline: ``fake/<text>`` answers ``<text>``."""
    provider, _, text = name.partition("/")
    if provider != "fake":
        raise ValueError(f"this test project has no provider {provider!r}")
    return GenericFakeChatModel(messages=iter([AIMessage(f"{text} says hello")]))


async def call_model(state: MessagesState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    model = load_chat_model(runtime.context.model)
    reply = await model.ainvoke(state["messages"])
    text = f"{reply.content} to {runtime.context.user_id} (prompt: {runtime.context.system_prompt})"
    return {"messages": [AIMessage(text)]}


_context = StateGraph(MessagesState, context_schema=AgentContext)
_context.add_node("call_model", call_model)
_context.add_edge(START, "call_model")
context_agent = _context.compile()


async def remember(state: MessagesState, runtime: Runtime[AgentContext]) -> dict[str, Any]:
    namespace = ("memories", runtime.context.user_id)
    assert runtime.store is not None, "no store: the graph was not given one"
    before = await runtime.store.asearch(namespace, limit=100)
    note = str(state["messages"][-1].content)
    await runtime.store.aput(namespace, f"m{len(before)}", {"note": note})
    seen = ", ".join(sorted(str(item.value["note"]) for item in before)) or "nothing"
    return {"messages": [AIMessage(f"remembered {len(before)} before: {seen}")]}


_memory = StateGraph(MessagesState, context_schema=AgentContext)
_memory.add_node("remember", remember)
_memory.add_edge(START, "remember")
memory_agent = _memory.compile()


def ask(state: MessagesState) -> dict[str, Any]:
    answer = interrupt({"question": f"approve {state['messages'][-1].content}?"})
    return {"messages": [AIMessage(f"the answer was {answer}")]}


_asker = StateGraph(MessagesState)
_asker.add_node("ask", ask)
_asker.add_edge(START, "ask")
asker = _asker.compile()


async def sleep(state: MessagesState) -> dict[str, Any]:
    await asyncio.sleep(float(str(state["messages"][-1].content)))
    return {"messages": [AIMessage("woke up")]}


_sleeper = StateGraph(MessagesState)
_sleeper.add_node("sleep", sleep)
_sleeper.add_edge(START, "sleep")
sleeper = _sleeper.compile()


def count(state: MessagesState) -> dict[str, Any]:
    turns = sum(1 for m in state["messages"] if m.type == "human")
    secret = os.environ.get("SERVER_GRAPHS_SECRET", "unset")
    return {"messages": [AIMessage(f"turn {turns} (secret {secret})")]}


_counter = StateGraph(MessagesState)
_counter.add_node("count", count)
_counter.add_edge(START, "count")
counter = _counter.compile()


async def tally(state: MessagesState) -> dict[str, Any]:
    text = str(state["messages"][-1].content)
    path, seconds = text.removesuffix(" fail").rsplit(" ", 1)

    def count() -> int:  # (off the event loop: langgraph dev refuses blocking calls)
        with open(path, "a", encoding="utf-8") as calls:
            calls.write("called\n")
        with open(path, encoding="utf-8") as calls:
            return len(calls.readlines())

    calls = await asyncio.to_thread(count)
    await asyncio.sleep(float(seconds))
    if text.endswith(" fail"):
        raise RuntimeError(f"tally failed after {calls} call(s)")
    return {"messages": [AIMessage(f"tallied {calls}")]}


_tally = StateGraph(MessagesState)
_tally.add_node("tally", tally)
_tally.add_edge(START, "tally")
tally_graph = _tally.compile()


def draft(state: MessagesState) -> dict[str, Any]:
    return {"messages": [AIMessage(f"draft of {state['messages'][0].content}")]}


def publish(state: MessagesState) -> dict[str, Any]:
    return {"messages": [AIMessage(f"published {state['messages'][-1].content}")]}


_reviewed = StateGraph(MessagesState)
_reviewed.add_node("draft", draft)
_reviewed.add_node("publish", publish)
_reviewed.add_edge(START, "draft")
_reviewed.add_edge("draft", "publish")
reviewed = _reviewed.compile(interrupt_before=["publish"])

_reviewed_inside = StateGraph(MessagesState)
_reviewed_inside.add_node("review", reviewed)
_reviewed_inside.add_edge(START, "review")
reviewed_inside = _reviewed_inside.compile()


def embed(texts: list[str]) -> list[list[float]]:
    """An offline embedding for the store's index: letters a-z counted, normalised."""
    vectors = []
    for text in texts:
        vector = [float(text.lower().count(chr(ord("a") + i))) for i in range(26)]
        norm = sum(v * v for v in vector) ** 0.5 or 1.0
        vectors.append([v / norm for v in vector])
    return vectors
