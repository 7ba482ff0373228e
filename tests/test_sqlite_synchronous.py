"""``SCHEDULER_SQLITE_SYNCHRONOUS``: SQLite's synchronous mode on the scheduler's own
connections and on the checkpointer it injects into a graph without one (a real compiled
graph, run, on a real SQLite file), ``normal`` unless set; another value is refused with
the setting named."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from scheduler import RunStatus, Settings, SqliteCheckpointer, TaskDefinition, TaskScheduler
from tests import prompt_graphs
from tests.conftest import make_settings

MODES = {"normal": 1, "full": 2}  # what PRAGMA synchronous answers


@pytest.mark.parametrize("value", [None, "normal", "full"])
async def test_the_scheduler_and_its_checkpointer_use_the_setting(
    tmp_path: Path, value: str | None
) -> None:
    overrides = {} if value is None else {"sqlite_synchronous": value}
    scheduler = TaskScheduler(
        db_path=tmp_path / "scheduler.db",
        graph=prompt_graphs.graph,
        settings=make_settings(**overrides),
    )
    expected = MODES[value or "normal"]
    try:
        with scheduler.store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == expected
        saver = scheduler.graph().checkpointer
        assert isinstance(saver, SqliteCheckpointer)
        assert saver.conn.execute("PRAGMA synchronous").fetchone()[0] == expected
        scheduler.add_task(TaskDefinition(id="t", interval_seconds=3600, prompt="hi"))
        scheduler.start()
        run = await scheduler.wait_for_run(scheduler.run_task_now("t"), timeout=30)
        assert run.status is RunStatus.SUCCEEDED, run.error_message
        assert list(saver.list({"configurable": {"thread_id": run.thread_id}}))  # written
        await scheduler.stop()
    finally:
        scheduler.close()


def test_another_value_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCHEDULER_SQLITE_SYNCHRONOUS", "off")
    with pytest.raises(ValidationError, match="sqlite_synchronous"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="synchronous: expected normal or full, got 'off'"):
        SqliteCheckpointer(tmp_path / "checkpoints.db", synchronous="off")
    assert not (tmp_path / "checkpoints.db").exists()  # (refused before the file is made)
