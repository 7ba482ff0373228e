"""The statements run on the driver's own cursor (``scheduler.storage.driver``): runs
inserted with their Nones written as ``NULL`` in the statement (rows grouped by where their
Nones are), and ``IN`` lists of any length made up to a few sizes. Each row read back is
the row written, on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
import random
import time

import pytest

from scheduler import TaskDefinition, TaskScheduler
from scheduler.pending import new_run_id
from scheduler.storage import RunRow

OPTIONAL = [  # RunRow's fields that may be None, with a value each may hold
    ("started_at", lambda r: r.uniform(0, 4e9)),
    ("finished_at", lambda r: r.uniform(0, 4e9)),
    ("not_before", lambda r: r.uniform(0, 4e9)),
    ("thread_id", lambda r: f"thread-{r.randrange(10)}"),
    ("error_type", lambda r: r.choice(["ValueError", "Missed"])),
    ("error_message", lambda r: r.choice(["boom", "with a NUL \x00 in it", ""])),
    ("error_traceback", lambda r: "Traceback\n" * r.randrange(1, 4)),
    ("output", lambda r: r.choice(['{"messages": []}', "é" * 50, "\x00"])),
    ("interrupts", lambda r: '[{"value": "ok?"}]'),
    ("answer", lambda r: '{"yes": true}'),
    ("waiting_since", lambda r: r.uniform(0, 4e9)),
    ("upstream", lambda r: '{"root": {"run_id": "x", "status": "succeeded"}}'),
    ("worker", lambda r: r.choice(["*", "worker-1"])),
    ("max_running", lambda r: r.randrange(1, 5)),
    ("priority_rank", lambda r: r.randrange(0, 4)),
    ("cancel_requested", lambda r: r.uniform(0, 4e9)),
    ("retry_of", lambda r: new_run_id()),
]


def _random_run(rng: random.Random, pattern: list[bool]) -> RunRow:
    now = time.time()
    row = RunRow(
        id=new_run_id(),
        task_id=f"t{rng.randrange(50)}",
        scheduled_for=now,
        queued_at=now + rng.random(),
        status=rng.choice(["queued", "running", "failed", "skipped"]),
        trigger=rng.choice(["schedule", "manual", "retry", "dependency"]),
        attempt=rng.randrange(1, 4),
        occurrences=rng.randrange(1, 3),
    )
    for (name, value), given in zip(OPTIONAL, pattern, strict=True):
        setattr(row, name, value(rng) if given else None)
    return row


@pytest.mark.parametrize("count", [1, 3, 150])  # (PostgreSQL copies 100 or more)
def test_runs_read_back_as_written_whatever_their_nones(
    store_scheduler: TaskScheduler, count: int
) -> None:
    rng = random.Random(count)
    patterns = [[rng.random() < 0.5 for _ in OPTIONAL] for _ in range(4)]
    patterns += [[True] * len(OPTIONAL), [False] * len(OPTIONAL)]
    rows = [_random_run(rng, rng.choice(patterns)) for _ in range(count)]
    with store_scheduler.store.transaction() as tx:
        tx.insert_runs(rows)
    with store_scheduler.store.transaction() as tx:
        for row in rows:
            expected = dataclasses.replace(
                row,
                **{
                    name: getattr(row, name).replace("\x00", "\ufffd")
                    for name, _ in OPTIONAL
                    if isinstance(getattr(row, name), str)
                },
            )
            assert tx.get_run(row.id) == expected


@pytest.mark.parametrize("asked", [0, 1, 2, 3, 5, 499, 500, 501, 1234])
def test_tasks_and_links_of_in_lists_of_any_length(
    store_scheduler: TaskScheduler, asked: int
) -> None:
    rng = random.Random(asked)
    ids = [f"t{i}" for i in range(1500)]
    store_scheduler.add_tasks(
        [TaskDefinition(id="root", cron_expression="0 9 * * *", prompt="x")]
        + [TaskDefinition(id=i, after="root", prompt="x") for i in ids[:1400]]
    )
    wanted = rng.sample(ids, asked) + rng.sample(ids, asked // 4)  # some twice, some absent
    with store_scheduler.store.transaction() as tx:
        found = tx.get_tasks(wanted)
        assert set(found) == {i for i in wanted if i in ids[:1400]}
        assert all(found[i].id == i and found[i].source == "api" for i in found)
        pairs = tx.links_from(set(wanted) | {"root"} if asked else set())
    assert sorted(pairs) == (sorted((d, "root") for d in ids[:1400]) if asked else [])
