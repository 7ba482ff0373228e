"""The example agent: a compiled LangGraph graph that the scheduler invokes.

By default it is an offline agent: no API key, no network. It answers deterministically,
saying what it received, when, and how long the conversation (thread) is. Set ``LLM_MODEL``
(e.g. ``openai:gpt-4o-mini``) to use a real chat model through ``init_chat_model``; that
needs ``pip install -e '.[llm]'`` plus the provider's package (``langchain-openai``) and key.

Conversations are checkpointed in a SQLite file (``AGENT_CHECKPOINT_DB``, default
``checkpoints.db``), so a task with a ``thread_id`` continues the same conversation across
runs and restarts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from pydantic_settings import BaseSettings, SettingsConfigDict

from scheduler import SqliteCheckpointer


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


def build_graph(settings: AgentSettings | None = None) -> CompiledStateGraph[Any, Any, Any, Any]:
    """Build the agent: offline, or with the chat model named by ``LLM_MODEL``."""
    settings = settings or AgentSettings()
    builder = StateGraph(MessagesState)
    if settings.llm_model:
        try:
            from langchain.chat_models import init_chat_model
        except ImportError as exc:
            raise RuntimeError(
                f"LLM_MODEL={settings.llm_model!r} needs the 'langchain' package: "
                "pip install -e '.[llm]' plus the provider's package (e.g. langchain-openai)"
            ) from exc
        model = init_chat_model(settings.llm_model)

        async def call_model(state: MessagesState) -> dict[str, Any]:
            return {"messages": [await model.ainvoke(state["messages"])]}

        builder.add_node("agent", call_model)
    else:
        builder.add_node("agent", offline_agent)
    builder.add_edge(START, "agent")
    return builder.compile(checkpointer=SqliteCheckpointer(settings.agent_checkpoint_db))


graph = build_graph()
