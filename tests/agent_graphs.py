"""Agents for the agent-tools tests: a fake chat model (langchain_core's
``GenericFakeChatModel``) that says what the test scripts, tool calls included, driving a
real ReAct graph (``ToolNode`` + ``tools_condition``, as ``graph.py`` builds it)."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.tools import BaseTool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition

_ids = itertools.count(1)


class Script:
    """What the model says next, in order; the test adds replies as it goes. An exception
    in the script is raised by the model (a failing run)."""

    def __init__(self, *replies: AIMessage | str | Exception) -> None:
        self.replies: deque[AIMessage | str | Exception] = deque(replies)

    def then(self, *replies: AIMessage | str | Exception) -> Script:
        self.replies.extend(replies)
        return self

    def __iter__(self) -> Script:
        return self

    def __next__(self) -> AIMessage | str:
        if not self.replies:
            raise AssertionError("the model was called more often than the test scripted")
        reply = self.replies.popleft()
        if isinstance(reply, Exception):
            raise reply
        return reply


class ScriptedModel(GenericFakeChatModel):
    """A fake chat model that accepts tools (and ignores them: the script decides)."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedModel:  # type: ignore[override]
        return self


def calls(*calls: tuple[str, dict[str, Any]]) -> AIMessage:
    """An assistant message that calls tools: ``calls(("schedule_task", {...}), ...)``."""
    return AIMessage(
        "",
        tool_calls=[
            {"name": name, "args": args, "id": f"call-{next(_ids)}", "type": "tool_call"}
            for name, args in calls
        ],
    )


def react_agent(
    script: Script, tools: Sequence[BaseTool]
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """A ReAct agent on ``tools``, with a checkpointer of its own (as a deployed agent has)."""
    model = ScriptedModel(messages=script)

    async def agent(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(list(tools)))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=InMemorySaver())
