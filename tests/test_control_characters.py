"""Control characters in a task's text (NUL, ESC sequences, DEL, C1): refused where a task
enters (Python, the tasks file, the CLI, the REST API, the agent tools) with the field
named; text already stored with them (a row of an older version, a run's error and output)
is shown escaped by the CLI and the logs, and its task still runs. Real SQLite files, the
real CLI and app, a real compiled graph."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from scheduler import TaskDefinition, TaskScheduler, TaskState
from scheduler.cli import main as cli_main
from scheduler.exceptions import describe_errors
from scheduler.logs import JsonFormatter, TextFormatter
from scheduler.render import Output
from scheduler.server import create_app
from tests import prompt_graphs
from tests.conftest import SchedulerFactory, make_settings
from tests.test_hostile_rows import insert, run_values, task_values

# NUL, an ESC sequence (clear the screen), BEL, DEL, the one-byte CSI (C1), NEL (C1)
CONTROLS = ["\x00", "\x1b[2J", "\x07", "\x7f", "\x9b31m", "\x85"]
# what no terminal may get raw (a line end and a tab separator are the CLI's own)
RAW = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]")


def cli(capsys: pytest.CaptureFixture[str], url: str, *args: str, status: int = 0) -> str:
    """What the command printed: stdout then stderr (stdout alone with ``--json``)."""
    capsys.readouterr()
    try:
        ended = cli_main(["--database-url", url, *args])
    except SystemExit as exc:  # (an error's exit)
        ended = exc.code
    assert ended == status
    out, err = capsys.readouterr()
    assert "Traceback" not in err and not RAW.search(err), err
    return out if "--json" in args else out + err


def refusal(**fields: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        TaskDefinition(**{"id": "t", "interval_seconds": 60, "prompt": "p", **fields})
    return describe_errors(caught.value)


# -- refused where a task enters ------------------------------------------------------------


@pytest.mark.parametrize("control", [*CONTROLS, "\n", "\r", "\t"])
@pytest.mark.parametrize("field", ["name", "thread_id"])
def test_a_name_or_thread_id_refuses_every_control_character(field: str, control: str) -> None:
    message = refusal(**{field: f"a{control}b"})
    code = f"U+{ord(control[0]):04X}"
    assert message == (
        f"{field}: {field} holds a control character ({code}, character 2): it must be one "
        "line of printable text"
    ), message


@pytest.mark.parametrize("mark", ["\u202e", "\u2067", "\u200f", "\u2028", "\u2029"])
@pytest.mark.parametrize("field", ["name", "thread_id"])
def test_a_name_or_thread_id_refuses_what_reorders_or_breaks_its_line(
    field: str, mark: str
) -> None:
    """A right-to-left override (or isolate, or mark) makes a name read as another on a
    terminal and a web page; a line separator breaks it. A prompt keeps them (right-to-left
    text uses them), shown escaped."""
    message = refusal(**{field: f"ab{mark}cd"})
    assert message == (
        f"{field}: {field} holds a bidirectional control or a line separator "
        f"(U+{ord(mark):04X}, character 3): it must be one line of printable text"
    ), message
    assert TaskDefinition(id="t", interval_seconds=60, prompt=f"ab{mark}cd").prompt[2] == mark


@pytest.mark.parametrize("control", CONTROLS)
@pytest.mark.parametrize("field", ["prompt", "description"])
def test_a_prompt_refuses_control_characters_but_line_breaks_and_tabs(
    field: str, control: str
) -> None:
    message = refusal(**{field: f"ab{control}"})
    assert message.startswith(f"{field}: {field} holds a control character (U+"), message
    assert "newline, carriage return and tab are the only ones it may hold" in message
    fields = {"prompt": "p", field: "Line 1\r\nLine 2\tend"}
    task = TaskDefinition(id="t", interval_seconds=60, **fields)
    assert getattr(task, field) == "Line 1\r\nLine 2\tend"


def test_the_tasks_file_and_the_cli_refuse_them_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(
        '- id: a\n  name: "Report\\e[2J"\n  schedule: every 5 minutes\n  prompt: "x\\0y"\n'
    )
    said = cli(capsys, url, "apply", str(tasks), status=2)
    assert f"{tasks}:2: entry 1 (id 'a'): name: name holds a control character (U+001B" in said
    assert f"{tasks}:4: entry 1 (id 'a'): prompt: prompt holds a control character (U+0000" in (
        said
    )
    said = cli(capsys, url, "add", "--id", "b", "--schedule", "every 5 minutes",
               "--prompt", "p", "--name", "x\x1b]0;pwned\x07", status=2)  # fmt: skip
    assert "error: name: name holds a control character (U+001B, character 2)" in said, said
    assert not RAW.search(said), said
    assert json.loads(cli(capsys, url, "list", "--json")) == []


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_the_rest_api_refuses_them_naming_the_field(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """A NUL in a thread id reached PostgreSQL, which cannot store it in a text."""
    url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    if database == "postgresql":
        url = request.getfixturevalue("pg_schema_url")
    settings = make_settings(http_rate_per_second=0)
    scheduler = TaskScheduler(database_url=url, graph=prompt_graphs.graph, settings=settings)
    try:
        await _refused_through_rest(scheduler)
    finally:
        await scheduler.stop(grace_seconds=0)
        scheduler.close()


async def _refused_through_rest(scheduler: TaskScheduler) -> None:
    scheduler.start()
    transport = httpx.ASGITransport(app=create_app(scheduler, scheduler.settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as api:
        task = {"id": "t", "schedule": "every 5 minutes", "prompt": "p"}
        for field, value in (("name", "a\x1b[2J"), ("prompt", "a\x00"), ("thread_id", "t\x9b")):
            answer = await api.post("/api/tasks", json={**task, field: value})
            assert answer.status_code == 422, answer.text
            assert answer.json()["detail"].startswith(f"{field}: {field} holds a control"), (
                answer.text
            )
        answer = await api.post("/threads", json={"thread_id": "t\x00"})
        assert answer.status_code == 422, answer.text
        assert answer.json()["detail"].startswith("thread_id: thread_id holds a control"), (
            answer.text
        )
        made = await api.post("/api/tasks", json={**task, "prompt": "Line 1\nLine 2\tend"})
        assert made.status_code == 201, made.text
    assert [t.id for t in scheduler.list_tasks()] == ["t"]


# -- shown escaped where stored text is printed ---------------------------------------------


HOSTILE_NAME = "\x1b[2J\x1b[31mevil\r\nforged\x9b1m\u202e"


async def test_stored_control_characters_are_printed_escaped_and_the_task_runs(
    make_scheduler: SchedulerFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A row an older version wrote (or a hand): the CLI printed it raw, and the terminal
    cleared its screen and coloured what followed."""
    url = f"sqlite:///{tmp_path / 'scheduler.db'}"
    scheduler = make_scheduler()
    scheduler.count_tasks()  # creates the tables
    definition = {"id": "old", "name": HOSTILE_NAME, "interval_seconds": 60, "prompt": "p\x1b[A"}
    insert(url, "scheduler_tasks", task_values("old", definition=json.dumps(definition)))
    insert(
        url,
        "scheduler_runs",
        run_values(
            "f" * 24,
            task_id="old",
            status="failed",
            error_type="RuntimeError",
            error_message="boom\x1b[2J\r\n2099-01-01 INFO forged\x07",
            output="\x9b2J",
        ),
    )
    [old] = scheduler.list_tasks()
    assert old.state is TaskState.ACTIVE and old.definition is not None  # not refused
    assert old.definition.name == HOSTILE_NAME
    for args in (("list",), ("show", "old"), ("runs",)):
        for as_json in ((), ("--json",)):
            printed = cli(capsys, url, *args, *as_json)
            assert not RAW.search(printed), (args, printed)
            assert "\\x1b[2J" in printed or "\\u001b[2J" in printed, printed
            if as_json:
                json.loads(printed)  # still JSON, the same values
    for as_json in (False, True):  # the JSON as scripts read it: the stored text, unchanged
        printed = cli(capsys, url, "show", "old", *(["--json"] if as_json else []))
        if as_json:
            assert json.loads(printed)["name"] == HOSTILE_NAME
    terminal = _Terminal()  # Rich's tables, as a terminal gets them
    Output(terminal).tasks(scheduler.list_tasks())
    Output(terminal).runs(scheduler.list_runs("old"))
    shown = terminal.getvalue()
    assert "\\x1b[2J\\x1b[31m" in shown and "boom\\x1b[2J" in shown, shown
    assert not RAW.search(re.sub(r"\x1b\[[0-9;]*m", "", shown)), shown  # Rich's colours only


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_lines_show_control_characters_escaped() -> None:
    try:
        raise RuntimeError("graph said \x1b[2J\n2099-01-01 INFO forged")
    except RuntimeError as exc:
        record = logging.getLogger("scheduler.runner").makeRecord(
            "scheduler.runner", logging.ERROR, __file__, 1, "run of %s failed: %s",
            (HOSTILE_NAME, exc), exc_info=(type(exc), exc, exc.__traceback__),
        )  # fmt: skip
    text = TextFormatter("%(levelname)s %(message)s").format(record)
    first, *traceback = text.split("\n")
    assert first.startswith("ERROR run of \\x1b[2J\\x1b[31mevil\\r\\nforged\\x9b1m\\u202e failed")
    assert traceback[0] == "  Traceback (most recent call last):"  # its own lines kept
    # each indented: a line break in the exception's message starts no line of its own
    assert all(line.startswith("  ") for line in traceback if line), text
    assert "\n  2099-01-01 INFO forged" in text, text
    assert not RAW.search(text) and "\\n2099-01-01" in first, text
    line = JsonFormatter().format(record)
    assert "\n" not in line and not RAW.search(line), line
    assert json.loads(line)["message"].startswith(f"run of {HOSTILE_NAME} failed")
