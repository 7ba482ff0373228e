"""The example agent: a compiled LangGraph graph that the scheduler invokes.

By default it is an offline agent: no API key, no network, no tools. It answers
deterministically, saying what it received, when, and how long the conversation (thread)
is. Set ``LLM_MODEL`` (e.g. ``openai:gpt-4o-mini``) to use a real chat model through
``init_chat_model``; that needs ``pip install -e '.[llm]'`` plus the provider's package
(``langchain-openai``) and key. With a model, the agent gets the scheduling tools
(:mod:`scheduler.agent_tools`): it schedules, lists, pauses and cancels its own follow-ups,
which come back to the conversation that asked.

Conversations are checkpointed in a SQLite file (``AGENT_CHECKPOINT_DB``, default
``checkpoints.db``), so a task with a ``thread_id`` continues the same conversation across
runs and restarts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, SystemMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from pydantic_settings import BaseSettings, SettingsConfigDict

from scheduler import SqliteCheckpointer
from scheduler.agent_tools import scheduling_tools

SYSTEM_PROMPT = (
    "You are a helpful assistant. You can schedule follow-ups for yourself with "
    "schedule_task: pass the user's own words for the time ('in 30 minutes', 'every weekday "
    "at 08:00'), never a time you computed, and tell the user the times the tool answers. "
    "A message starting with [Scheduled follow-up ...] is one of those follow-ups firing; a "
    "message starting with [scheduler] reports one that failed."
)


class AgentSettings(BaseSettings):
    """The example agent's settings (environment or ``.env``)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    llm_model: str | None = None
    agent_checkpoint_db: str = "checkpoints.db"


def _text(message: AnyMessage) -> str:
    content = message.content
    return content if isinstance(content, str) else str(content)


def offline_agent(state: MessagesState) -> dict[str, Any]:
    """Answer without a model: echo the request, the time, and the thread's length."""
    request = _text(state["messages"][-1])
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    turns = sum(1 for m in state["messages"] if m.type == "human")
    reply = f"[offline agent] At {now} I received: {request!r} (request {turns} in this thread)."
    return {"messages": [AIMessage(reply)]}


def chat_model(name: str) -> BaseChatModel:
    """The chat model ``LLM_MODEL`` names, through ``init_chat_model``."""
    try:
        from langchain.chat_models import init_chat_model
    except ImportError as exc:
        raise RuntimeError(
            f"LLM_MODEL={name!r} needs the 'langchain' package: "
            "pip install -e '.[llm]' plus the provider's package (e.g. langchain-openai)"
        ) from exc
    return init_chat_model(name)


def build_graph(
    settings: AgentSettings | None = None, *, model: BaseChatModel | None = None
) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Build the agent: offline, or a ReAct agent with the scheduling tools on ``model``
    (default: the chat model named by ``LLM_MODEL``)."""
    settings = settings or AgentSettings()
    if model is None and settings.llm_model:
        model = chat_model(settings.llm_model)
    builder = StateGraph(MessagesState)
    builder.add_edge(START, "agent")
    if model is not None:
        tools = scheduling_tools()
        bound = model.bind_tools(tools)

        async def call_model(state: MessagesState) -> dict[str, Any]:
            prompt = [SystemMessage(SYSTEM_PROMPT), *state["messages"]]
            return {"messages": [await bound.ainvoke(prompt)]}

        builder.add_node("agent", call_model)
        builder.add_node("tools", ToolNode(tools))
        builder.add_conditional_edges("agent", tools_condition)
        builder.add_edge("tools", "agent")
    else:
        builder.add_node("agent", offline_agent)
    return builder.compile(checkpointer=SqliteCheckpointer(settings.agent_checkpoint_db))


graph = build_graph()
