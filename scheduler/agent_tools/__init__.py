"""Tools an agent uses to schedule its own follow-ups, safely.

    from scheduler.agent_tools import scheduling_tools

    tools = scheduling_tools()                  # the scheduler running in this process
    agent = create_react_agent(model, tools)    # or ToolNode(tools) / model.bind_tools(tools)

Five LangChain tools: ``schedule_task``, ``list_scheduled_tasks``,
``cancel_scheduled_task``, ``pause_scheduled_task``, ``resume_scheduled_task``. What they
guarantee, whatever the model sends:

* **Time in code.** ``when`` is the user's words (``in 30 minutes``, ``tomorrow at 9:00``,
  ``every weekday at 08:00``, a cron expression, an ISO time), resolved by the tool against
  the scheduler's clock in the user's zone; the answer states the resolved fire times. A
  time in the past, a wall time that does not exist (DST gap) or an unknown form is an
  answer the model can act on, never an exception out of the graph.
* **Back into the conversation.** A task is bound to the caller's thread, read from the
  tool's injected ``RunnableConfig`` (never from a model argument), and fires into it
  with its prompt marked as a scheduled follow-up, so the agent answers in context.
  ``new_conversation=true`` makes each run start a fresh thread instead.
* **Scoped and bounded.** The owner is the caller's thread, or, with ``owner_key``, the
  value of that key in the config's ``configurable`` (e.g. a ``user_id``). The tools see,
  pause and cancel only their owner's tasks. Limits per owner (``SCHEDULER_AGENT_*``): how
  many tasks, the shortest interval, the furthest first run. The model sets no callback
  and no run policy. Each task's source is ``agent:<owner>`` (``list --source agent``).
* **Failures are not silent.** A failed or timed-out run (after its retries) is reported
  into the thread that asked, as a message the agent sees on its next turn
  (:func:`report_failure`, the tasks' ``on_failure_callback``), or to the application's
  own callback (``on_failure=``).
"""

from scheduler.agent_tools.answers import report_failure
from scheduler.agent_tools.tools import (
    AGENT_SOURCE,
    REPORT_FAILURE,
    AgentLimits,
    SchedulingTools,
    scheduling_tools,
)

__all__ = [
    "AGENT_SOURCE",
    "REPORT_FAILURE",
    "AgentLimits",
    "SchedulingTools",
    "report_failure",
    "scheduling_tools",
]
