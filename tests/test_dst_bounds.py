"""``start_date`` and ``end_date`` given without an offset follow ``run_at``'s rule: a wall
time that does not exist in the task's zone (inside a spring-forward gap) is refused,
naming the field, on every path that sets them (Python, the tasks file, the CLI, REST and
the crons API); a repeated one (fall-back) means its first pass, ``fold=1`` its second.
A row read back keeps loading."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from scheduler import TaskDefinition
from scheduler.cli import main as cli_main
from scheduler.exceptions import TasksFileError
from scheduler.models import STORED_CONTEXT_KEY
from scheduler.server import create_app
from scheduler.server.crons import graph_id
from scheduler.tasksfile import apply_tasks_file
from scheduler.testing import clocked_scheduler
from tests.conftest import SchedulerFactory
from tests.prompt_graphs import graph

# 02:00 -> 03:00 in Berlin on 2030-03-31, in New York on 2030-03-10
GAPS = [("Europe/Berlin", "2030-03-31T02:30"), ("America/New_York", "2030-03-10T02:30")]
BOUNDS = ("start_date", "end_date")


def gap_message(field: str, zone: str, wall: str) -> str:
    return re.escape(f"{field} {wall.replace('T', ' ')} does not exist in {zone} (DST gap)")


def bounded(field: str, wall: Any, **more: Any) -> dict[str, Any]:
    return {"id": "bounded", "cron_expression": "*/30 * * * *", "prompt": "x", field: wall, **more}


@pytest.mark.parametrize("field", BOUNDS)
@pytest.mark.parametrize(("zone", "wall"), GAPS)
def test_a_bound_in_a_dst_gap_is_refused_in_the_zone_it_is_read_in(
    field: str, zone: str, wall: str
) -> None:
    """It was moved by the gap (02:30 read as 03:30, an hour's firings moved or lost),
    while ``run_at`` at the same wall time was refused."""
    message = gap_message(field, zone, wall)
    for value in (wall, datetime.fromisoformat(wall)):
        with pytest.raises(ValidationError, match=message) as refused:
            TaskDefinition(**bounded(field, value, timezone=zone))  # the task's zone
        assert [e["loc"] for e in refused.value.errors()] == [(field,)]
        with pytest.raises(ValidationError, match=message):  # the file's, the CLI's, the API's
            TaskDefinition.model_validate(bounded(field, value), context={"timezone": zone})
        unset = TaskDefinition(**bounded(field, value))  # no zone yet: the one it gets
        with pytest.raises(ValidationError, match=message):
            unset.with_timezone(zone)
        in_tokyo = getattr(unset.with_timezone("Asia/Tokyo"), field)  # (no gap there)
        assert in_tokyo.isoformat() == f"{wall}:00+09:00"
    with pytest.raises(ValidationError, match=gap_message("run_at", zone, wall)):  # as run_at
        TaskDefinition(id="once", run_at=wall, timezone=zone, prompt="x")
    stored = TaskDefinition.model_validate(  # a row read back keeps loading
        bounded(field, wall, timezone=zone), context={STORED_CONTEXT_KEY: True}
    )
    assert getattr(stored, field) is not None


@pytest.mark.parametrize("field", ["run_at", *BOUNDS])
def test_a_repeated_wall_time_is_its_first_pass_for_every_datetime_field(field: str) -> None:
    """01:30 comes twice in New York on 2030-11-03 (EDT, then EST): each of the three
    fields reads it as ``run_at`` does, in the task's zone or the one it gets (this held
    before; kept)."""
    extra = {} if field == "run_at" else {"cron_expression": "*/30 * * * *"}
    for wall, offset in (("2030-11-03T01:30", -4), (datetime(2030, 11, 3, 1, 30, fold=1), -5)):
        fields = {"id": "f", "prompt": "x", field: wall, **extra}
        for task in (
            TaskDefinition(**fields, timezone="America/New_York").with_timezone("UTC"),
            TaskDefinition(**fields).with_timezone("America/New_York"),
        ):
            value = getattr(task, field)
            assert value.utcoffset().total_seconds() == offset * 3600, (field, wall)


async def test_python_and_tasks_file_bounds_in_a_gap_are_refused_and_nothing_written(
    tmp_path: Path,
) -> None:
    """On the test clock, a task without ``timezone`` added to a New York scheduler and a
    tasks file's entry: both were written with the start moved to 03:30."""
    zone, wall = GAPS[1]
    path = tmp_path / "tasks.yaml"
    path.write_text(
        f"- id: filed\n  prompt: x\n  schedule: every 30 minutes\n  start_date: '{wall}'\n"
    )
    async with clocked_scheduler(
        graph=graph, start="2030-03-09T12:00:00Z", timezone=zone, db_path=tmp_path / "s.db"
    ) as (scheduler, clock):
        message = gap_message("start_date", zone, wall)
        unzoned = TaskDefinition(**bounded("start_date", datetime.fromisoformat(wall)))
        with pytest.raises(ValidationError, match=message):  # in the zone it gets
            scheduler.add_task(unzoned)
        with pytest.raises(TasksFileError, match=rf"tasks.yaml:4: .*: start_date: {message}"):
            apply_tasks_file(scheduler, path)
        scheduler.add_task(TaskDefinition(**bounded("end_date", "2030-03-10T04:00")))
        with pytest.raises(ValidationError, match=gap_message("end_date", zone, wall)):
            scheduler.edit_task("bounded", lambda t: t.model_copy(update={"end_date": wall}))
        assert [task.id for task in scheduler.list_tasks()] == ["bounded"]
        runs = await clock.advance(days=2)
    assert runs[-1].scheduled_for == datetime(2030, 3, 10, 8, 0, tzinfo=UTC)  # 04:00 EDT


def test_cli_add_from_a_file_refuses_a_bound_in_a_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``add --file`` reads a naive bound in SCHEDULER_TIMEZONE (``add``/``edit`` have no
    bound flags, and ``edit`` keeps a stored bound's offset)."""
    zone, wall = GAPS[0]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCHEDULER_DB_PATH", str(tmp_path / "scheduler.db"))
    monkeypatch.setenv("SCHEDULER_TASKS_FILE", "none")
    monkeypatch.setenv("SCHEDULER_TIMEZONE", zone)
    for field in BOUNDS:
        (tmp_path / "task.yaml").write_text(
            f"id: t\nprompt: x\nschedule: every 30 minutes\n{field}: '{wall}'\n"
        )
        with pytest.raises(SystemExit) as ended:
            cli_main(["add", "--file", "task.yaml"])
        assert ended.value.code == 2
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert re.search(gap_message(field, zone, wall), error), error
        assert error.startswith("error: --file task.yaml: entry 1")
    assert cli_main(["list", "--json"]) == 0 and capsys.readouterr().out.strip() == "[]"


async def test_rest_and_crons_api_refuse_a_bound_in_a_gap(
    make_scheduler: SchedulerFactory,
) -> None:
    """POST and PATCH /api/tasks read a naive bound in the task's zone (else the
    scheduler's), the crons API its ``end_time`` in the cron's: each a 422 naming it."""
    zone, wall = GAPS[1]
    scheduler = make_scheduler(http_rate_per_second=0, timezone=zone)
    scheduler.start()
    app = create_app(scheduler, scheduler.settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as api:
        made = await api.post("/api/tasks", json=bounded("start_date", wall))
        assert made.status_code == 422, made.text
        assert re.search(gap_message("start_date", zone, wall), made.json()["detail"])
        made = await api.post("/api/tasks", json=bounded("end_date", "2030-03-10T04:00"))
        assert made.status_code == 201, made.text
        patched = await api.patch("/api/tasks/bounded", json={"end_date": wall})
        assert patched.status_code == 422, patched.text
        assert re.search(gap_message("end_date", zone, wall), patched.json()["detail"])
        kept = (await api.get("/api/tasks/bounded")).json()["definition"]
        assert kept["end_date"] == "2030-03-10T04:00:00-04:00"
        body = {"assistant_id": graph_id(scheduler.settings.graph), "schedule": "0 9 * * *"}
        cron = await api.post("/runs/crons", json={**body, "timezone": zone, "end_time": wall})
        assert cron.status_code == 422, cron.text
        assert re.search(gap_message("end_time", zone, wall), cron.json()["detail"])
