"""What the scheduling tools say: fire times in the user's zone, a task on one line, and
the report of a failed follow-up into the thread that asked for it."""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from langchain_core.messages import HumanMessage

from scheduler.control_characters import one_line
from scheduler.enums import RunStatus, TaskState
from scheduler.models import TaskDefinition
from scheduler.records import RunRecord, TaskInfo
from scheduler.settings import Settings
from scheduler.task_scheduler import running_scheduler
from scheduler.wording import describe_task

__all__ = ["counts", "label", "line", "local_time", "report_failure"]

logger = logging.getLogger(__name__)


def label(prompt: str) -> str:
    """A task's name made from its prompt: one line (a prompt in Hebrew or Arabic may
    start with a direction mark, which a name may not hold: the task was refused, blamed
    on a ``name`` the model never gave)."""
    words = " ".join(one_line(prompt).split())
    return words if len(words) <= 60 else words[:59] + "…"


def local_time(moment: datetime, zone: str) -> str:
    return moment.astimezone(ZoneInfo(zone)).strftime("%a %d %b %Y %H:%M %Z")


def counts(task: TaskInfo) -> bool:
    """A task still counts against the owner's limit until it has nothing left to run."""
    return task.state is not TaskState.COMPLETED


def line(task: TaskInfo) -> str:
    definition = task.definition
    schedule = describe_task(definition) if definition is not None else "(cannot be loaded)"
    zone = (definition.timezone if definition is not None else None) or "UTC"
    nxt = local_time(task.next_run, zone) if task.next_run is not None else "none"
    last = f"last run {task.last_status.value}" if task.last_status is not None else "not run yet"
    return f"- {task.id} ({task.name}): {schedule}; {task.state.value}; next run {nxt}; {last}"


_LISTED = 50  # tasks a list gives the model at most


def listing(tasks: list[TaskInfo]) -> str:
    """``list_scheduled_tasks``' answer: those still to run first, soonest first, then the
    completed ones, 50 at most and how many more (by id, an active task could be left out
    unseen behind completed ones)."""
    tasks = sorted(tasks, key=lambda t: (not counts(t), t.next_run is None, t.next_run or 0, t.id))
    shown = [line(task) for task in tasks[:_LISTED]]
    if len(tasks) > _LISTED:
        done = sum(1 for task in tasks[_LISTED:] if not counts(task))
        shown.append(f"... and {len(tasks) - _LISTED} more not shown ({done} of them completed)")
    return "\n".join(shown)


def resumed(task: TaskInfo, *, now: datetime, settings: Settings) -> str:
    """``resume_scheduled_task``'s answer: when it runs, or that its time has passed (a
    one-time task paused past its time was answered with that time, as a time to come).
    ``task`` is read after the resume, which the dispatcher may have acted on already: the
    occurrence recorded missed, or its run started."""
    definition = task.definition
    zone = (definition.timezone if definition is not None else None) or "UTC"
    head = f"Resumed {task.id} ({task.name})"
    grace = definition.misfire_grace_seconds if definition is not None else None
    grace = settings.misfire_grace_seconds if grace is None else grace
    missed = f", too long ago to run (over {grace:g} s late): missed."
    due = task.next_run
    if due is None and definition is not None and task.last_status is not None:
        due = definition.run_at or task.last_run  # (its time, if that is what just happened)
        if task.last_status is RunStatus.MISSED and due is not None:
            return f"{head}; it was due {local_time(due, zone)}{missed}"
        if task.last_status in (RunStatus.QUEUED, RunStatus.RUNNING) and due is not None:
            return f"{head}; it was due {local_time(due, zone)} and runs now."
        due = None
    if due is None:
        return f"{head}; it has no run left (it is completed)."
    when = local_time(due, zone)
    late = (now - due).total_seconds()
    if late < 0:
        return f"{head}; next run {when}."
    return f"{head}; it was due {when}{missed if late > grace else ' and runs now.'}"


# -- failures, back into the thread ------------------------------------------------------------


async def report_failure(task: TaskDefinition, run: RunRecord) -> None:
    """The default ``on_failure_callback`` of the tasks the tools make: add a message about
    the failed (or timed-out) run to the thread that asked for the task, through the graph
    of the scheduler running here, so the agent sees it on its next turn."""
    if not isinstance(run, RunRecord) or run.status not in (RunStatus.FAILED, RunStatus.TIMED_OUT):
        return  # named as another kind of callback: nothing to report
    thread = task.metadata.get("requested_in_thread") or task.thread_id
    scheduler = running_scheduler()
    if not isinstance(thread, str) or not thread or scheduler is None:
        logger.warning("task %s run %s failed; no thread to report it to", task.id, run.id)
        return
    what = "timed out" if run.status is RunStatus.TIMED_OUT else "failed"
    error = f"{run.error_type}: {run.error_message}" if run.error_type else run.error_message
    text = (
        f"[scheduler] The scheduled follow-up {task.id} ({task.name}) {what} at "
        f"{local_time(run.finished_at or run.scheduled_for, task.timezone or 'UTC')} after "
        f"{run.attempt} attempt(s): {error or 'no detail'}. The user has not been told yet."
    )
    graph = scheduler.graph()
    update = getattr(graph, "aupdate_state", None)
    if update is None:
        logger.warning("task %s run %s failed; its graph cannot take a message", task.id, run.id)
        return
    try:
        await update(
            {"configurable": {"thread_id": thread}},
            {"messages": [HumanMessage(content=text, name="scheduler")]},
        )
    except Exception:
        logger.exception(
            "task %s run %s: could not report the failure to thread %s", task.id, run.id, thread
        )
