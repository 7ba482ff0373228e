"""One invocation of the graph for a run: what a firing sends to the graph (input and
config, the LangGraph / LangSmith conventions; the context built from the graph's
``context_schema`` defaults when the task gives none, as the LangGraph server does), the
timeout, the output kept, the result callback; every way it can end is turned into an
:class:`Outcome`. A graph that stops at ``interrupt()`` (or at a static breakpoint) ends
``waiting``, with what it asked; :func:`invoke` with ``resume=`` continues it with
``Command(resume=...)``."""

from __future__ import annotations

import asyncio
import hashlib
import json
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, datetime
from typing import Any

from scheduler.callbacks import CallbackPolicy, call_callback
from scheduler.enums import RunStatus
from scheduler.models import TaskDefinition
from scheduler.records import RunRecord

__all__ = [
    "CANCEL_ASKED",
    "NO_RESUME",
    "Outcome",
    "breakpoint_of",
    "build_config",
    "build_input",
    "context_for",
    "failure",
    "interrupts_of",
    "invoke",
    "output_text",
    "question_gone",
    "upstream_text",
]

#: What a run's task is cancelled with by ``cancel_run`` (and ``cancel_running_runs``): the
#: run records that it was cancelled, not that the scheduler stopped
CANCEL_ASKED = "cancel_run"

_TRACEBACK_CHARS = 4000


@dataclass(slots=True)
class Outcome:
    """How a run ended, with what it produced or why it failed."""

    status: RunStatus
    output: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    error_traceback: str | None = None
    interrupts: str | None = None  # JSON list of {"id", "value"}: what the graph asked
    thread_id: str | None = None  # the thread it ended on, when not the run's own: that of
    # an earlier attempt whose run on a LangGraph server it adopted


#: ``resume=`` default of :func:`invoke`: start the run from its input.
NO_RESUME: Any = object()
_INTERRUPTS_CHARS = 64_000
_MAX_INTERRUPTS = 20
_MESSAGE_CHARS = 4000


async def invoke(
    task: TaskDefinition,
    *,
    graph: Callable[[], Any],
    run_id: str,
    thread_id: str,
    scheduled_for: float,
    attempt: int,
    timeout: float | None,
    output_max_chars: int,
    policy: CallbackPolicy,
    resume: Any = NO_RESUME,
    asked: str | None = None,
    upstream: dict[str, Any] | None = None,
    earlier: Callable[[], Awaitable[list[RunRecord]]] | None = None,
    adopt_only: bool = False,
    before_callback: Callable[[], Awaitable[None]] | None = None,
) -> Outcome:
    """Invoke the graph for one run of ``task``, then its result callback.

    Args:
        task: The task.
        graph: Returns the graph (loaded on first call).
        run_id, thread_id, scheduled_for, attempt: Go into the run config and metadata.
        timeout: Seconds before the run (graph and result callback together) is
            cancelled and recorded ``timed_out``.
        output_max_chars: How much of the output to keep.
        policy: Which callbacks may be called (checked again here, at every call).
        resume: The answer to the interrupt the run is waiting at: the graph is invoked
            with ``Command(resume=resume)`` on the run's thread instead of the input;
            unless the thread no longer waits at the question the run asked (``asked``,
            its recorded interrupts: another run used the thread since), when the run ends
            ``cancelled`` with the answer not applied (it would answer another question).
        upstream: A dependency run's upstream outcomes, for its input (:func:`build_input`).
        earlier: A retry's earlier attempts (newest first), read when the graph can adopt
            a run of one of them still going on a LangGraph server instead of starting
            one (``aadopt``, :mod:`scheduler.remote_attempts`): a run is never run twice.
        adopt_only: Only adopt a run of ``earlier``'s, however it ended (a run watched
            again after its process died, with no retry left): with none to adopt, the run
            ends ``interrupted``, and the graph is not called.
        before_callback: Awaited before the result callback (a worker's lease check).
    """
    config = build_config(
        task,
        run_id=run_id,
        thread_id=thread_id,
        scheduled_for=datetime.fromtimestamp(scheduled_for, UTC).isoformat(),
        attempt=attempt,
    )
    deadline = asyncio.timeout(timeout)
    output: str | None = None
    in_callback = False
    thread: str | None = None  # an adopted run's (that of the attempt it was started for)
    try:
        async with deadline:
            target = graph()
            kwargs: dict[str, Any] = {}
            context = context_for(task, target)
            if context is not None:
                kwargs["context"] = context
            if resume is NO_RESUME:
                payload: Any = build_input(task, upstream)
            else:
                from langgraph.types import Command  # lazily: CLI start-up

                gone = await question_gone(target, config, asked)
                if gone is not None:
                    return Outcome(
                        RunStatus.CANCELLED,
                        error_type="AnswerNotApplied",
                        error_message=f"the answer was not applied: {gone}",
                    )
                payload = Command(resume=resume)
            adopted = None
            if earlier is not None and callable(getattr(target, "aadopt", None)):
                adopted = await target.aadopt(await earlier(), config, ended=adopt_only)
            if adopted is not None:
                result, thread = adopted
            elif adopt_only:
                return Outcome(
                    RunStatus.INTERRUPTED,
                    error_type="Interrupted",
                    error_message="the scheduler process ended while this run was in flight "
                    "(crash, kill or power loss), and no run of it goes on or succeeded on "
                    "the LangGraph server; it is not run again",
                )
            else:
                result = await target.ainvoke(payload, config, **kwargs)
            output = output_text(result, output_max_chars)
            asked = interrupts_of(result) or await breakpoint_of(target, config)
            if asked is not None:
                return Outcome(RunStatus.WAITING, output, interrupts=asked, thread_id=thread)
            if task.result_callback:
                in_callback = True
                if before_callback is not None:
                    await before_callback()
                callback = policy.resolve(task.result_callback)
                await call_callback(callback, task, result)
    except asyncio.CancelledError as cancelled:
        if CANCEL_ASKED in cancelled.args:  # cancel_run: the user's, not the scheduler's stop
            message = (
                "cancelled in the result callback" if in_callback else "cancelled while running"
            )
        else:
            where = "in the result callback" if in_callback else "before the run finished"
            message = f"the scheduler stopped {where}"
        return Outcome(RunStatus.CANCELLED, output, error_type="Cancelled", error_message=message)
    except TimeoutError as exc:
        if deadline.expired():
            where = " (in the result callback)" if in_callback else ""
            return Outcome(
                RunStatus.TIMED_OUT,
                output,
                error_type="TimeoutError",
                error_message=f"the run exceeded its timeout of {timeout:g} s{where}",
            )
        return _failed(exc, task, in_callback, output)
    except Exception as exc:
        return _failed(exc, task, in_callback, output)
    return Outcome(RunStatus.SUCCEEDED, output=output, thread_id=thread)


def context_for(task: TaskDefinition, graph: Any) -> Any:
    """The context to invoke ``graph`` with: the task's ``context``; or, when the task gives
    none and the graph declares a ``context_schema``, an empty one, which LangGraph fills
    with the schema's defaults (dataclass, pydantic; the LangGraph server does the same).
    A partial context is completed by the same defaults."""
    if task.context is not None:
        return task.context
    if getattr(graph, "context_schema", None) is not None:
        return {}
    return None


async def question_gone(graph: Any, config: dict[str, Any], asked: str | None) -> str | None:
    """Why an answer to the interrupts ``asked`` (JSON, as :func:`interrupts_of` records
    them) cannot be applied on the config's thread now, or None when it can (or cannot be
    told: no recorded ids, a graph without ``aget_state``; a LangGraph server's has one).

    LangGraph resumes whatever question the thread waits at: after another run used the
    thread, an answer would go to that run's question, or finish nothing."""
    try:
        ids = {str(a["id"]) for a in json.loads(asked or "[]") if a.get("id") is not None}
    except (ValueError, TypeError, AttributeError, KeyError):
        ids = set()
    if not ids or not hasattr(graph, "aget_state"):
        return None
    state = await graph.aget_state(config)
    pending = {str(i.id)[:200] for i in getattr(state, "interrupts", ()) or ()}
    if getattr(state, "next", None) and (stopped := breakpoint_id(state)) is not None:
        pending.add(stopped)  # (stopped at a static breakpoint: its question)
    if ids & pending:
        return None
    thread = config["configurable"]["thread_id"]
    if pending:
        return (
            f"thread {thread} now waits at another question (another run used the thread "
            "after this one asked)"
        )
    return f"thread {thread} no longer waits at its question (another run used the thread)"


def breakpoint_id(state: Any) -> str | None:
    """The question id of a thread stopped at a static breakpoint: 32 hex digits, as
    LangGraph's interrupt ids are, derived from the checkpoint it stopped at (the same
    for as long as the thread waits there; another run on the thread makes a new one);
    None with no checkpoint id."""
    configurable = (getattr(state, "config", None) or {}).get("configurable") or {}
    return checkpoint_question_id(
        configurable.get("checkpoint_ns"), configurable.get("checkpoint_id")
    )


def checkpoint_question_id(namespace: Any, checkpoint: Any) -> str | None:
    """:func:`breakpoint_id` of a checkpoint given by its namespace and id (a LangGraph
    server's thread state names them so too); None with no checkpoint id."""
    if not checkpoint:
        return None
    text = f"breakpoint:{namespace or ''}:{checkpoint}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


async def breakpoint_of(graph: Any, config: dict[str, Any]) -> str | None:
    """Where a graph compiled with static breakpoints (``interrupt_before`` /
    ``interrupt_after``) stopped, as :func:`interrupts_of` records a question (one, with
    the id :func:`breakpoint_id`: answered by id as an ``interrupt()``'s question is, and
    ``Command(resume=...)`` goes on from there), or None when it finished. Stopped
    there, ``ainvoke`` returns the values with no ``__interrupt__``: the thread's state
    names the nodes still to run (with no checkpointer, nothing does: None). A subgraph's
    breakpoint stops the graph at the node that runs the subgraph."""
    if getattr(graph, "checkpointer", None) is None or not hasattr(graph, "aget_state"):
        return None
    graphs = [graph]
    if callable(subgraphs := getattr(graph, "get_subgraphs", None)):
        graphs += [sub for _, sub in subgraphs(recurse=True)]
    nodes = ("interrupt_before_nodes", "interrupt_after_nodes")
    if not any(getattr(each, name, None) for each in graphs for name in nodes):
        return None
    state = await graph.aget_state(config)
    following = [str(node)[:200] for node in state.next or ()]
    if not following:
        return None
    asked = {"breakpoint": following[:_MAX_INTERRUPTS]}
    return json.dumps([{"id": breakpoint_id(state), "value": asked}])


def interrupts_of(result: Any) -> str | None:
    """What a graph stopped at ``interrupt()`` asked (JSON), or None if it finished."""
    if not isinstance(result, dict):
        return None
    raw = result.get("__interrupt__")
    if not raw:
        return None
    asked = []
    items = raw if isinstance(raw, list | tuple) else [raw]
    for item in items[:_MAX_INTERRUPTS]:  # (a remote server's answer is untrusted)
        if isinstance(item, dict):
            found, value = item.get("id"), item.get("value")
        else:
            found, value = getattr(item, "id", None), getattr(item, "value", item)
        asked.append({"id": None if found is None else str(found)[:200], "value": value})
    try:
        text = json.dumps(asked, default=str, ensure_ascii=False)
    except (TypeError, ValueError):  # keys that are not text, a value inside itself
        asked = [{"id": a["id"], "value": str(a["value"])} for a in asked]
        text = json.dumps(asked, ensure_ascii=False)
    if len(text) > _INTERRUPTS_CHARS:
        text = json.dumps([{"id": a["id"], "value": str(a["value"])[:2000]} for a in asked])
    return text


def _failed(
    exc: BaseException, task: TaskDefinition, in_callback: bool, output: str | None
) -> Outcome:
    if not in_callback:
        return failure(exc)
    failed = failure(exc, f"result_callback {task.result_callback} failed: ")
    failed.output = output  # the graph's answer is kept
    return failed


def failure(exc: BaseException, prefix: str = "") -> Outcome:
    """A failed outcome with the exception's type, message and the end of its traceback."""
    text = "".join(traceback.format_exception(exc))
    return Outcome(
        RunStatus.FAILED,
        error_type=type(exc).__name__,
        error_message=(prefix + (str(exc) or type(exc).__name__))[:_MESSAGE_CHARS],
        error_traceback=text[-_TRACEBACK_CHARS:],
    )


def build_input(task: TaskDefinition, upstream: dict[str, Any] | None = None) -> dict[str, Any]:
    """Graph input: the prompt as a user message, merged with the task's ``input``.

    A dependency run also gets its upstream runs' outcomes under ``upstream`` (``{task_id:
    {"run_id", "status", "output"}}``; a graph whose state has no such key does not see
    it), and, with a prompt, the same as text after the prompt."""
    graph_input: dict[str, Any] = {}
    if task.prompt is not None:
        text = task.prompt if not upstream else f"{task.prompt}\n\n{upstream_text(upstream)}"
        graph_input["messages"] = [{"role": "user", "content": text}]
    if task.input:
        graph_input.update(task.input)
    if upstream:
        graph_input["upstream"] = upstream
    return graph_input


def upstream_text(upstream: dict[str, Any]) -> str:
    """The upstream outcomes as text for a prompt: one paragraph per upstream task."""
    parts = ["Results of the tasks this one runs after:"]
    for task_id, run in upstream.items():
        info = run if isinstance(run, dict) else {}
        output = info.get("output") or "(no output)"
        parts.append(f"- {task_id} ({info.get('status', '?')}, run {info.get('run_id', '?')}):")
        parts.append(f"{output}")
    return "\n".join(parts)


def build_config(
    task: TaskDefinition, *, run_id: str, thread_id: str, scheduled_for: str, attempt: int
) -> dict[str, Any]:
    """Run config with the LangGraph / LangSmith conventions."""
    return {
        "configurable": {"thread_id": thread_id},
        "run_name": f"scheduled:{task.id}",
        "tags": ["scheduler"],
        "metadata": {
            **task.metadata,
            "task_id": task.id,
            "task_name": task.name,
            "scheduled_for": scheduled_for,
            "run_id": run_id,
            "attempt": attempt,
        },
    }


def _message_text(message: Any) -> str:
    content = (
        message.get("content")
        if isinstance(message, dict)
        else getattr(message, "content", message)
    )
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
        return "".join(parts)
    return str(content)


def output_text(result: Any, max_chars: int) -> str | None:
    """The text worth keeping from a graph result: the last message, or the state as JSON."""
    if result is None:
        return None
    if isinstance(result, dict) and "__interrupt__" in result:
        result = {k: v for k, v in result.items() if k != "__interrupt__"}
    messages = (
        result.get("messages") if isinstance(result, dict) else getattr(result, "messages", None)
    )
    if isinstance(messages, list) and messages:
        text = _message_text(messages[-1])
    else:
        if is_dataclass(result) and not isinstance(result, type):
            result = asdict(result)
        elif hasattr(result, "model_dump"):
            result = result.model_dump()
        try:
            text = json.dumps(result, default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            text = str(result)
    if len(text) > max_chars:
        return text[: max(max_chars - 1, 0)] + "…"
    return text
