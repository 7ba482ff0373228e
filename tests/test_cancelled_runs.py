"""``cancel_run`` on a run that is running and on one waiting for an answer, on the test
clock (real scheduler, real SQLite file, real graph): the user's own action, not a failure.
Both end ``cancelled`` alike: the run event listeners (and the task's webhook) hear that it
finished, with its record as stored, and neither calls the task's ``on_failure_callback``."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler import RunStatus, TaskDefinition
from scheduler.events import RunEvent
from scheduler.testing import clocked_scheduler
from tests import callbacks, prompt_graphs

START = "2030-01-01T00:00:00Z"


@pytest.mark.parametrize("prompt", ["hang", "ask-record-sleep:0"], ids=["running", "waiting"])
async def test_a_cancelled_run_is_no_failure(prompt: str, tmp_path: Path) -> None:
    """A cancelled waiting run called the task's ``on_failure_callback`` (with its
    ``cancelled`` record, and a warning in the log), a cancelled running run did not. The
    README lists the failures it is called for (failed, timed out, interrupted), and a
    ``cancelled`` run counts for ``on: finished`` only, not ``failed``. And the waiting
    run's ``finished`` event (the webhook's body) carried another record than the one
    stored: started when it was cancelled, no question, no output; the running run's
    carried the stored one."""
    callbacks.failures.clear()
    events: list[RunEvent] = []
    async with clocked_scheduler(
        graph=prompt_graphs.graph, start=START, db_path=tmp_path / "s.db"
    ) as (scheduler, clock):

        def listen(event: RunEvent) -> None:
            events.append(event)
            if event.kind == "started" and prompt == "hang":  # (on the loop: at that moment)
                assert scheduler.cancel_run(event.run.id)

        scheduler.add_task(
            TaskDefinition(
                id="t",
                run_at="2099-01-01T00:00:00Z",
                prompt=prompt,
                metadata={"log": str(tmp_path / "calls.log")},
                on_failure_callback="tests.callbacks:on_failure",
            )
        )
        scheduler.subscribe(listen)
        run_id = scheduler.run_task_now("t")
        await clock.advance(minutes=5)
        if prompt != "hang":
            assert scheduler.get_run(run_id).status is RunStatus.WAITING
            assert scheduler.cancel_run(run_id)
            await clock.advance(seconds=1)
        stored = scheduler.get_run(run_id)
    assert (stored.status, stored.error_type) == (RunStatus.CANCELLED, "Cancelled")
    # what happened, not "the scheduler stopped before the run finished" (a stop's words)
    assert stored.error_message == (
        "cancelled while running" if prompt == "hang" else "cancelled while waiting for an answer"
    )
    assert [e.run for e in events if e.kind == "finished"] == [stored]  # (and the webhook's)
    assert callbacks.failures == []
