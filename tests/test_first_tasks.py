"""``first_tasks``: the task of each thread's first run (whose metadata a thread a run made
shows), asked for a few threads (an ``IN`` list per 500) or for many (one walk of the
thread index, kept to the threads asked for): the same answer either way."""

from __future__ import annotations

import random
import time

import pytest

from scheduler import TaskDefinition, TaskScheduler
from scheduler.pending import new_run_id
from scheduler.rows import queued_run
from scheduler.storage import threads


def test_each_thread_gets_its_first_runs_task_asked_one_way_or_the_other(
    store_scheduler: TaskScheduler, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(7)
    tasks = [f"t{i}" for i in range(6)]
    store_scheduler.add_tasks(
        [TaskDefinition(id=t, cron_expression="0 9 * * *", prompt="x") for t in tasks]
    )
    thread_ids = [f"thread-{i}" for i in range(300)]
    first: dict[str, str] = {}
    rows = []
    now = time.time()
    for _ in range(400):  # in creation order: run ids sort by it
        thread = rng.choice([*thread_ids, None])
        task = rng.choice(tasks)
        if thread is not None:
            first.setdefault(thread, task)
        rows.append(
            queued_run(new_run_id(), task, scheduled_for=now, queued_at=now, thread_id=thread)
        )
    with store_scheduler.store.transaction() as tx:
        tx.insert_runs(rows)
    asked = [*rng.sample(thread_ids, 200), "never-used"]
    expected = {t: first[t] for t in asked if t in first}
    assert 100 < len(expected) < 200  # (some threads asked for had no run, some not asked)
    assert threads.first_tasks(store_scheduler.store, asked) == expected  # IN lists
    monkeypatch.setattr(threads, "_ONE_WALK", 0)
    assert threads.first_tasks(store_scheduler.store, asked) == expected  # one walk
