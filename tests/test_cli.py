"""The real CLI (``python -m scheduler``) in subprocesses against a real SQLite file:
every command, ``--json`` parsed, exit codes, and one-line errors that change nothing."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYTHON, ROOT

pytestmark = pytest.mark.slow


class Cli:
    """Runs ``python -m scheduler`` in ``workdir`` against ``workdir/scheduler.db``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.db = workdir / "scheduler.db"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SCHEDULER_DB_PATH": str(self.db),
            "SCHEDULER_GRAPH": "tests.prompt_graphs:graph",
            "SCHEDULER_TASKS_FILE": "none",
        }

    def __call__(
        self, *args: str, status: int = 0, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [PYTHON, "-m", "scheduler", *args],
            cwd=self.workdir,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == status, (args, done.returncode, done.stdout, done.stderr)
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def fails(self, *args: str, status: int = 2) -> str:
        """Run a command that must fail; return its one-line error."""
        done = self(*args, status=status)
        lines = done.stderr.strip().splitlines()
        assert lines[-1].startswith("error: "), done.stderr
        return lines[-1]

    def snapshot(self) -> list[tuple[Any, ...]]:
        if not self.db.exists():
            return []
        connection = sqlite3.connect(self.db)
        try:
            tasks = connection.execute("SELECT * FROM scheduler_tasks ORDER BY id").fetchall()
            runs = connection.execute("SELECT * FROM scheduler_runs ORDER BY id").fetchall()
        finally:
            connection.close()
        return [*tasks, *runs]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def test_add_list_show_edit_pause_resume_remove(cli: Cli) -> None:
    out = cli(
        "add",
        "--id",
        "report",
        "--name",
        "Daily report",
        "--schedule",
        "weekdays at 09:00",
        "--tz",
        "Europe/Paris",
        "--prompt",
        "Write the report.",
    )
    assert "added report: At 09:00, Monday through Friday (Europe/Paris)" in out.stdout
    cli("add", "--id", "ping", "--schedule", "every 90s", "--prompt", "ping")
    [ping, report] = cli.json("list")
    assert report["definition"]["cron_expression"] == "0 9 * * 1-5"
    assert report["definition"]["timezone"] == "Europe/Paris"
    assert report["schedule"] == "At 09:00, Monday through Friday (Europe/Paris)"
    assert report["state"] == "active" and report["source"] == "cli"
    assert ping["definition"]["interval_seconds"] == 90

    shown = cli.json("show", "report")
    assert len(shown["next_runs"]) == 5
    assert all("T09:00:00+01:00" in t or "T09:00:00+02:00" in t for t in shown["next_runs"])
    assert shown["runs"] == []

    cli("edit", "report", "--schedule", "every monday at 8:30", "--prompt", "Weekly report.")
    edited = cli.json("show", "report")
    assert edited["definition"]["cron_expression"] == "30 8 * * 1"
    assert edited["definition"]["prompt"] == "Weekly report."
    assert edited["definition"]["name"] == "Daily report"  # untouched fields stay

    assert "report is paused" in cli("pause", "report").stdout
    assert cli.json("show", "report")["state"] == "paused"
    assert "report is active" in cli("resume", "report").stdout

    error = cli.fails("remove", "report")  # stdin is not a terminal: refuses without --yes
    assert "pass --yes" in error
    assert "removed report" in cli("remove", "report", "--yes").stdout
    assert [t["id"] for t in cli.json("list")] == ["ping"]


def test_plain_table_when_piped(cli: Cli) -> None:
    cli("add", "--id", "ping", "--schedule", "every 5 minutes", "--prompt", "ping")
    lines = cli("list").stdout.splitlines()
    assert lines[0].split("\t") == [
        "ID",
        "NAME",
        "SCHEDULE",
        "NEXT RUN",
        "STATE",
        "LAST STATUS",
        "SOURCE",
    ]
    assert lines[1].split("\t")[:3] == ["ping", "ping", "Every 5 minutes"]
    assert "\x1b[" not in cli("list").stdout  # no colour codes in a pipe


def test_add_from_file_and_run_now(cli: Cli, tmp_path: Path) -> None:
    tasks = tmp_path / "more.yaml"
    tasks.write_text(
        "- id: one\n  schedule: every 10 minutes\n  prompt: first\n"
        "- id: two\n  cron_expression: '0 0 * * 0'\n  prompt: second\n"
    )
    cli("add", "--file", str(tasks))
    assert [t["id"] for t in cli.json("list")] == ["one", "two"]
    queued = cli("run", "one")
    assert "no scheduler is running on this database" in queued.stdout
    [run] = cli.json("runs", "--task", "one")
    assert (run["status"], run["trigger"]) == ("queued", "manual")
    done = cli("run", "two", "--wait", "--timeout", "30")
    assert "succeeded" in done.stdout
    succeeded = {r["task_id"]: r for r in cli.json("runs", "--status", "succeeded")}
    assert json.loads(succeeded["two"]["output"])["prompt"] == "second"
    # Only "two" ran here: the queued run of "one" waits for a scheduler to start.
    [still] = cli.json("runs", "--task", "one")
    assert still["status"] == "queued"
    assert len(cli.json("runs", "--limit", "1")) == 1


@pytest.mark.parametrize(
    ("args", "message", "status"),
    [
        (("show", "nope"), "error: no task with id 'nope'", 1),
        (("pause", "nope"), "error: no task with id 'nope'", 1),
        (("resume", "nope"), "error: no task with id 'nope'", 1),
        (("run", "nope"), "error: no task with id 'nope'", 1),
        (("remove", "nope", "--yes"), "error: no task with id 'nope'", 1),
        (("edit", "nope", "--prompt", "x"), "error: no task with id 'nope'", 1),
        (("runs", "--task", "nope"), "error: no task with id 'nope'", 1),
        (
            ("add", "--id", "x", "--schedule", "every 5 parsecs", "--prompt", "p"),
            "unit 'parsecs'",
            2,
        ),
        (
            ("add", "--id", "x", "--schedule", "0 25 * * *", "--prompt", "p"),
            "hour 25 is out of range 0-23",
            2,
        ),
        (
            ("add", "--id", "x", "--schedule", "every 5 minutes", "--prompt", "  "),
            "prompt: prompt is empty",
            2,
        ),
        (
            ("add", "--id", "bad id", "--schedule", "every 5 minutes", "--prompt", "p"),
            "id: id must be",
            2,
        ),
        (
            (
                "add",
                "--id",
                "x",
                "--schedule",
                "every 5 minutes",
                "--prompt",
                "p",
                "--tz",
                "Mars/Base",
            ),
            "error: timezone: unknown time zone 'Mars/Base'",  # (not the schedule's)
            2,
        ),
        (("add", "--id", "x", "--prompt", "p"), "--schedule is required", 2),
        (
            ("add", "--id", "x", "--schedule", "every minute", "--input", "[1]", "--prompt", "p"),
            "must be a JSON object",
            2,
        ),
        (
            (
                "add",
                "--id",
                "x",
                "--schedule",
                "every minute",
                "--prompt",
                "p",
                "--result-callback",
                "nowhere.module:fn",
            ),
            "result_callback 'nowhere.module:fn'",
            2,
        ),
        (
            ("add", "--id", "existing", "--schedule", "every minute", "--prompt", "p"),
            "a task with id 'existing' already exists",
            2,
        ),
        (("next", "every"), "accepted forms:", 2),
        (("next", "every 5 minutes", "--tz", "Nowhere/City"), "unknown time zone", 2),
        (("edit", "existing"), "nothing to change", 2),
        (("validate", "missing.yaml"), "cannot read", 2),
        (("answer", "some-run", "null"), "the answer must not be null", 2),
        # a run was started, cancelled at once and recorded: "did not finish within nan s"
        (("run", "existing", "--wait", "--timeout", "0"), "--timeout: 0 is not above 0", 2),
        (("run", "existing", "--wait", "--timeout", "-1"), "--timeout: -1 is not above 0", 2),
        (("run", "existing", "--wait", "--timeout", "nan"), "--timeout: nan is not above 0", 2),
        (("run", "existing", "--timeout", "5"), "--timeout needs --wait", 2),  # was ignored
        (("answer", "some-run", '"yes"', "--timeout", "5"), "--timeout needs --wait", 2),
    ],
)
def test_bad_input_and_unknown_ids_change_nothing(
    cli: Cli, args: tuple[str, ...], message: str, status: int
) -> None:
    cli("add", "--id", "existing", "--schedule", "every 5 minutes", "--prompt", "p")
    before = cli.snapshot()
    error = (
        cli.fails(*args, status=status)
        if args[0] != "validate"
        else cli(*args, status=status).stderr
    )
    assert message in error, error
    assert len(error.strip().splitlines()[-1]) < 400
    assert cli.snapshot() == before


def test_run_here_of_an_unknown_task_says_nothing_before_its_error(cli: Cli) -> None:
    """It printed "running nope in this process ..." and then the error."""
    done = cli("run", "nope", "--wait", status=1)
    assert done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == "error: no task with id 'nope'"


def test_workers_on_sqlite_says_there_are_none_and_why(cli: Cli) -> None:
    """It said "SCHEDULER_ROLE=worker needs PostgreSQL", a setting nobody had given."""
    done = cli("workers")
    assert done.stdout.startswith("no workers: they need PostgreSQL, and the database is sqlite")
    assert "SCHEDULER_ROLE=worker" not in done.stdout + done.stderr
    assert cli.json("workers") == []


def test_output_cut_short_by_its_reader_ends_without_a_traceback(cli: Cli) -> None:
    """``next ... | head -1``: the reader goes away, and the command ended in a
    BrokenPipeError traceback."""
    with subprocess.Popen(
        [PYTHON, "-m", "scheduler", "next", "every minute", "--count", "1000"],
        cwd=cli.workdir, env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as process:  # fmt: skip
        assert process.stdout is not None and process.stderr is not None
        assert process.stdout.readline().strip() == b"Every minute"
        process.stdout.close()
        error = process.stderr.read().decode()
        assert process.wait(timeout=60) == 1
    assert "Traceback" not in error and "BrokenPipeError" not in error, error


ADD = ("add", "--id", "x", "--prompt", "p")
BILLION_LAUGHS = "\n".join(
    ["- id: x", "  interval_seconds: 5", "  prompt: p", "  input:", "    l0: &l0 [lol, lol]"]
    + [f"    l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 10)]
)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((*ADD, "--schedule", "every 99999999999999999999 hours"), "the interval must be from"),
        ((*ADD, "--schedule", "every 0.0000001 seconds"), "the interval must be from"),
        ((*ADD, "--schedule", "in 99999999999 days"), "too far in the future"),
        ((*ADD, "--schedule", "every " + "9" * 5000 + " s"), "characters long"),
        ((*ADD, "--schedule", "every 5 minutes", "--input", "[" * 30_000), "levels deep"),
        ((*ADD, "--schedule", "every 5 minutes", "--input", '{"a":' * 50 + "1" + "}" * 50), "deep"),
        ((*ADD, "--schedule", "every 5 minutes", "--timeout", "nan"), "a finite number"),
        ((*ADD, "--schedule", "every 5 minutes", "--timeout", "inf"), "a finite number"),
        ((*ADD, "--schedule", "every 5 minutes", "--timeout", "1e20"), "timeout_seconds: Input"),
        ((*ADD, "--schedule", "every 5 minutes", "--max-retries", "1000"), "max_retries: Input"),
        ((*ADD, "--schedule", "at 9999-12-31 23:00"), "outside the supported years"),
        ((*ADD, "--schedule", "at 9999-12-31 23:59", "--tz", "Etc/GMT+5"), "supported years"),
        (("next", "at 0001-01-01 00:00", "--tz", "Europe/Paris"), "outside the supported years"),
        (("next", "every day at 9:00", "--count", "0"), "not between 1 and 1,000"),
        (("runs", "--limit", "9" * 23), "not between 0 and 1,000,000"),
        (("show", "x", "--runs", "-5"), "not between 0 and 1,000,000"),
        (("next", "@daily", "--tz", ""), "argument --tz: must not be empty"),
        (("--db", "", "list"), "argument --db: must not be empty"),
        (("--database-url", " ", "list"), "argument --database-url: must not be empty"),
        (("--database-url", "not a url", "list"), "the database URL is not one SQLAlchemy"),
        (("--database-url", "nope://u:secret@h/d", "list"), "database URL nope://u:***@h/d"),
    ],
)  # fmt: skip
def test_hostile_numbers_and_documents_are_one_line_errors(
    cli: Cli, args: tuple[str, ...], message: str
) -> None:
    done = cli(*args, status=2)
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert message in line, line
    assert len(line) < 600
    assert cli.snapshot() == []


@pytest.mark.parametrize("command", ["validate", "apply", "add --file"])
def test_a_zone_that_is_not_text_is_a_problem_of_the_entry(
    cli: Cli, tmp_path: Path, command: str
) -> None:
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(
        "tasks:\n  - id: standup\n    schedule: every day at 09:00\n    timezone: 1\n"
        "    prompt: Standup!\n"
    )
    done = cli(*command.split(), str(tasks), status=2)
    assert "Traceback" not in done.stderr
    assert "timezone must be a string" in done.stderr, done.stderr
    assert cli.snapshot() == []


def test_an_empty_thread_id_is_a_fresh_thread_per_run_and_edit_can_set_it_back(cli: Cli) -> None:
    """``--thread-id ""`` (an unset shell variable) was stored as the thread "": each run
    got a fresh thread, yet every task with it took turns with the others, as runs of one
    thread do."""
    cli("add", "--id", "a", "--schedule", "every 5 minutes", "--prompt", "p", "--thread-id", "")
    assert "thread_id" not in cli.json("show", "a")["definition"]
    cli("add", "--id", "b", "--schedule", "every 5 minutes", "--prompt", "p", "--thread-id", "t")
    assert cli.json("show", "b")["definition"]["thread_id"] == "t"
    cli("edit", "b", "--thread-id", "")
    assert "thread_id" not in cli.json("show", "b")["definition"]


def test_edit_tz_keeps_a_repeating_tasks_wall_time_and_a_one_time_tasks_instant(
    cli: Cli,
) -> None:
    """As README says of ``edit ID --tz``: 08:30 in Paris becomes 08:30 in Tokyo for a
    daily task, and stays the same instant (16:30 in Tokyo) for a one-time one."""
    for task_id, schedule in (("daily", "every day at 08:30"), ("once", "at 2037-03-02 08:30")):
        cli("add", "--id", task_id, "--schedule", schedule, "--tz", "Europe/Paris", "--prompt", "p")
        cli("edit", task_id, "--tz", "Asia/Tokyo")
    assert cli.json("show", "daily")["next_runs"][0][10:] == "T08:30:00+09:00"
    assert cli.json("show", "once")["next_runs"] == ["2037-03-02T16:30:00+09:00"]


@pytest.mark.parametrize("command", ["validate", "apply", "add --file"])
def test_an_id_given_twice_in_a_file_is_a_one_line_error_naming_both_entries(
    cli: Cli, tmp_path: Path, command: str
) -> None:
    """``add --file`` ended in a traceback (add_tasks' ValueError), exit 1."""
    tasks = tmp_path / "more.yaml"
    tasks.write_text(
        "- id: same\n  schedule: every 5 minutes\n  prompt: first\n"
        "- id: same\n  schedule: every 10 minutes\n  prompt: second\n"
    )
    done = cli(*command.split(), str(tasks), status=2)
    assert "Traceback" not in done.stderr
    assert "entry 2 (id 'same'): id 'same' is also used by entry 1" in done.stderr
    assert len(done.stderr.strip().splitlines()[-1]) < 300
    assert cli.snapshot() == []


@pytest.mark.parametrize("command", ["validate", "apply", "add --file"])
def test_a_key_beside_tasks_at_the_top_is_named(cli: Cli, tmp_path: Path, command: str) -> None:
    """A file with ``tasks:`` and another key (a place for YAML anchors) was "expected a list
    of tasks (or 'tasks:' with a list), got dict" (validate, apply), and for ``add --file``
    one task whose schedule was missing."""
    tasks = tmp_path / "more.yaml"
    tasks.write_text(
        "defaults: &defaults\n  prompt: hello\n  timezone: Europe/Berlin\n"
        "tasks:\n  - <<: *defaults\n    id: one\n    schedule: every day at 09:00\n"
    )
    done = cli(*command.split(), str(tasks), status=2)
    assert "Traceback" not in done.stderr
    assert "'tasks:' may be the only key at the top, but 'defaults' is there too" in done.stderr
    assert "got dict" not in done.stderr and "schedule is required" not in done.stderr
    assert cli.snapshot() == []


@pytest.mark.parametrize("command", ["validate", "apply", "add --file"])
def test_a_yaml_alias_bomb_inside_a_task_field_is_refused_within_a_second(
    cli: Cli, tmp_path: Path, command: str
) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BILLION_LAUGHS + "\n")
    began = time.monotonic()
    done = cli(*command.split(), str(bomb), status=2)
    assert (
        time.monotonic() - began < 10
    )  # the process start included; the refusal itself is instant
    assert "aliases expand to more than 10,000 nodes" in done.stderr
    assert "Traceback" not in done.stderr
    assert cli.snapshot() == []


HUGE = "9" * 5000  # Python refuses to read an int of more than 4,300 digits


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("tasks.yaml", f"- id: a\n  schedule: daily\n  prompt: hi\n  max_retries: {HUGE}\n"),
        (
            "tasks.json",
            f'[{{"id": "a", "schedule": "daily", "prompt": "hi", "metadata": {{"n": {HUGE}}}}}]',
        ),
    ],
)
@pytest.mark.parametrize("command", ["validate", "apply", "add --file"])
def test_a_number_too_long_to_read_is_a_problem_of_the_file(
    cli: Cli, tmp_path: Path, command: str, name: str, text: str
) -> None:
    """It was a traceback (Python's ValueError of int(), escaping the loaders)."""
    tasks = tmp_path / name
    tasks.write_text(text)
    done = cli(*command.split(), str(tasks), status=2)
    assert "Traceback" not in done.stderr
    assert "a number of more than 4,300 digits" in done.stderr, done.stderr
    assert cli.snapshot() == []
    flag = cli(
        "add",
        "--id",
        "b",
        "--schedule",
        "daily",
        "--prompt",
        "hi",
        "--input",
        f'{{"n": {HUGE}}}',
        status=2,
    )
    assert "--input: the value: a number of more than 4,300 digits" in flag.stderr
    assert len(flag.stderr) < 300


def test_the_alias_budget_refuses_in_milliseconds() -> None:
    from scheduler.documents import DocumentError, load_yaml

    began = time.monotonic()
    with pytest.raises(DocumentError, match="aliases expand"):
        load_yaml(BILLION_LAUGHS)
    assert time.monotonic() - began < 1
    assert load_yaml("base: &b {a: 1}\nother:\n  <<: *b\n  c: 2\n")["other"] == {"a": 1, "c": 2}


@pytest.mark.parametrize(
    "text",
    [
        "input: &a {k0: *a, k1: *a}",  # 81 bytes that once walked 2**32 values
        "input: &a [1, [2, *a]]",
        "outer: &o {inner: &i {deep: [*o]}}",
    ],
)
def test_a_value_that_contains_itself_is_refused_at_once(text: str) -> None:
    from scheduler.documents import DocumentError, load_yaml

    began = time.monotonic()
    with pytest.raises(DocumentError, match="refers to a value that contains it"):
        load_yaml(text)
    assert time.monotonic() - began < 1
    # an alias to a finished value is fine, inside another anchored value too
    again = load_yaml("a: &x [2, [3]]\nc: &c {x: *x}\nd: &y {e: 1}\nf: [*y, *c]\n")
    assert again["c"] == {"x": [2, [3]]} and again["f"] == [{"e": 1}, {"x": [2, [3]]}]


def test_numbers_with_an_exponent_are_numbers_as_in_yaml_1_2() -> None:
    """PyYAML (YAML 1.1) read ``1e3`` and ``1.5e3`` as text: ``interval_seconds: 1e3`` was
    refused as "must be a number, got str"."""
    from scheduler.documents import load_yaml

    read = load_yaml("a: 1e3\nb: 1.5E3\nc: -2e-1\nd: .5e1\ne: 1.0e+3\nf: 12\ng: 1e\nh: e3\n")
    assert read == {"a": 1000.0, "b": 1500.0, "c": -0.2, "d": 5.0, "e": 1000.0, "f": 12,
                    "g": "1e", "h": "e3"}  # fmt: skip
    assert type(read["f"]) is int


def test_next_previews_any_schedule(cli: Cli) -> None:
    preview = cli.json("next", "0 9 * * 1-5", "--tz", "America/New_York", "--count", "3")
    assert preview["explicit"] == {"task_type": "cron", "cron_expression": "0 9 * * 1-5"}
    assert preview["description"] == "At 09:00, Monday through Friday (America/New_York)"
    assert len(preview["times"]) == 3
    every = cli.json("next", "every 2h")
    assert every["explicit"] == {"task_type": "interval", "interval_seconds": 7200}
    text = cli("next", "@daily", "--count", "2").stdout.splitlines()
    assert text[0] == "At 00:00, every day (UTC)" and len(text) == 3


def test_runs_of_a_removed_task_are_still_listed_by_its_id(cli: Cli) -> None:
    """``remove`` keeps a task's run history, but ``runs --task ID`` refused it: "no task
    with id", exit 1."""
    cli("add", "--id", "gone", "--schedule", "every 5 minutes", "--prompt", "p")
    cli("run", "gone")
    cli("remove", "gone", "--yes")
    [run] = cli.json("runs", "--task", "gone")
    assert (run["task_id"], run["status"]) == ("gone", "cancelled")  # (it had not started)
    assert cli.json("runs", "--task", "gone", "--status", "succeeded") == []
    assert cli.fails("runs", "--task", "never", status=1) == "error: no task with id 'never'"


def test_next_stops_its_list_where_the_calendar_ends(cli: Cli) -> None:
    """1,000 times of a 3,660-day interval reach past the year 9999: it was a traceback
    ("ValueError: year 10003 is out of range"), exit 1."""
    far = cli.json("next", "every 3660 days", "--count", "1000")
    assert 700 < len(far["times"]) < 1000
    assert far["times"][-1].startswith("99") and far["times"] == sorted(far["times"])
    text = cli("next", "every 3660 days", "--count", "1000")
    assert "Traceback" not in text.stderr and len(text.stdout.splitlines()) == len(far["times"]) + 1


def test_validate_reports_every_problem_with_its_location(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "tasks.yaml"
    bad.write_text(
        "- id: ok\n  schedule: every 5 minutes\n  prompt: fine\n"
        "- id: broken-cron\n  cron_expression: '0 25 * * *'\n  prompt: p\n"
        "- id: no-prompt\n  interval_seconds: 60\n"
        "- id: ok\n  interval_seconds: 5\n  prompt: duplicate\n"
        "- id: relative\n  schedule: in 30 minutes\n  prompt: p\n"
    )
    done = cli("validate", str(bad), status=2)
    problems = done.stderr.strip().splitlines()
    assert any(f"{bad}:5:" in p and "hour 25 is out of range" in p for p in problems)
    assert any("entry 3 (id 'no-prompt')" in p and "prompt" in p for p in problems)
    assert any("id 'ok' is also used by entry 1" in p for p in problems)
    assert any("relative to now" in p for p in problems)
    report = json.loads(cli("validate", str(bad), "--json", status=2).stdout)
    assert report["valid"] is False and len(report["problems"]) == len(problems)
    assert cli.snapshot() == []
    good = tmp_path / "good.yaml"
    good.write_text("- id: ok\n  schedule: every 5 minutes\n  prompt: fine\n")
    assert "1 task(s), no problems" in cli("validate", str(good)).stdout


def test_apply_is_all_or_nothing_and_idempotent(cli: Cli, tmp_path: Path) -> None:
    cli("add", "--id", "manual", "--schedule", "every 5 minutes", "--prompt", "mine")
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(
        "- id: a\n  schedule: every 10 minutes\n  prompt: a\n"
        "- id: b\n  schedule: '@daily'\n  prompt: b\n"
    )
    first = cli.json("apply", str(tasks))
    assert (first["added"], first["unchanged"]) == (["a", "b"], [])
    before = cli.snapshot()
    again = cli.json("apply", str(tasks))
    assert (again["added"], again["updated"], again["unchanged"]) == ([], [], ["a", "b"])
    assert cli.snapshot() == before  # not even updated_at moved
    tasks.write_text(
        "- id: a\n  schedule: every 20 minutes\n  prompt: a\n"
        "- id: c\n  schedule: '0 25 * * *'\n  prompt: c\n"
    )
    cli("apply", str(tasks), status=2)
    assert cli.snapshot() == before  # one bad entry: nothing applied
    tasks.write_text("- id: a\n  schedule: every 20 minutes\n  prompt: a\n")
    changed = cli.json("apply", str(tasks))
    assert (changed["updated"], changed["removed"]) == (["a"], ["b"])
    ids = {t["id"]: t for t in cli.json("list")}
    assert set(ids) == {"a", "manual"}  # the CLI-added task is never touched
    assert ids["manual"]["source"] == "cli" and ids["a"]["source"] == "file:tasks.yaml"
    # a file's task cannot be added over from the CLI: the file is named, not 'add --replace'
    # (which is refused too: the file would fail at every apply)
    again_a = ("add", "--id", "a", "--schedule", "every minute", "--prompt", "p")
    kept = cli.snapshot()
    error = cli(*again_a, status=2).stderr
    assert "'a' already exists, defined in tasks.yaml; change it there" in error, error
    assert "--replace" not in error
    assert "another source" in cli(*again_a, "--replace", status=2).stderr
    assert cli.snapshot() == kept
    tasks.write_text("- id: manual\n  schedule: every minute\n  prompt: taken\n")
    error = cli("apply", str(tasks), status=2).stderr
    assert "already exists and was added through the API or CLI" in error


def test_edit_is_one_transaction_a_task_removed_meanwhile_stays_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``edit`` reads and writes in one transaction: another process that removes the task
    while the edit is being made waits for it and then removes the edited task. (It was a
    read, then a replace: the replace put the removed task back.)"""
    import threading

    from scheduler import TaskDefinition, TaskScheduler, commands
    from scheduler.cli import main as cli_main
    from tests.conftest import make_settings

    db = tmp_path / "scheduler.db"
    other = TaskScheduler(db_path=db, settings=make_settings())
    other.add_task(TaskDefinition(id="t", interval_seconds=60, prompt="before"))
    monkeypatch.setenv("SCHEDULER_DB_PATH", str(db))
    monkeypatch.setenv("SCHEDULER_TASKS_FILE", "none")
    validate = commands._validate
    removal = threading.Thread(target=other.remove_task, args=("t",))

    def validate_while_removed(data: dict[str, Any], settings: Any) -> TaskDefinition:
        removal.start()  # between the edit's read and its write
        removal.join(timeout=0.5)
        return validate(data, settings)

    monkeypatch.setattr(commands, "_validate", validate_while_removed)
    try:
        assert cli_main(["edit", "t", "--prompt", "after"]) == 0
        removal.join(timeout=30)
        assert not removal.is_alive()
        assert other.list_tasks() == []
    finally:
        other.close()


def test_apply_of_another_file_named_tasks_yaml_keeps_the_projects_tasks(cli: Cli) -> None:
    """``apply other/tasks.yaml`` removed the tasks of the project's ``tasks.yaml``: both had
    the source ``file:tasks.yaml``."""
    (cli.workdir / "tasks.yaml").write_text("- id: a\n  interval_seconds: 60\n  prompt: a\n")
    (cli.workdir / "other").mkdir()
    other = cli.workdir / "other" / "tasks.yaml"
    other.write_text("- id: b\n  interval_seconds: 60\n  prompt: b\n")
    assert cli.json("apply", "tasks.yaml")["added"] == ["a"]
    report = cli.json("apply", "other/tasks.yaml")
    assert (report["added"], report["removed"]) == (["b"], [])
    listed = {t["id"]: t["source"] for t in cli.json("list")}
    assert listed == {"a": "file:tasks.yaml", "b": "file:other/tasks.yaml"}
    assert [t["id"] for t in cli.json("list", "--source", "file:tasks.yaml")] == ["a"]
    for command in (["list"], ["remove", "--yes"]):  # an empty source is no source
        assert "--source: must not be empty" in cli.fails(*command, "--source", " ")
    assert len(cli.json("list")) == 2
    other.write_text("- id: a\n  interval_seconds: 5\n  prompt: mine\n")
    error = cli.fails("apply", "other/tasks.yaml")
    assert "1 problem(s) in other/tasks.yaml" in error


# Loaded only where they are used: LangGraph to run a graph, httpx and httpcore to parse and
# send a webhook, PostgreSQL's dialect on PostgreSQL. Each is a tenth of a second or more of
# every command's start-up.
_NOT_FOR_MANAGEMENT = (
    "langgraph",
    "langchain_core",
    "httpx",
    "httpcore",
    "scheduler.webhooks",
    "sqlalchemy.dialects.postgresql",
)


def test_management_commands_leave_graphs_http_and_postgresql_unloaded(cli: Cli) -> None:
    cli("add", "--id", "ping", "--schedule", "every 90s", "--prompt", "ping")
    code = (
        "import sys\nfrom scheduler.cli import main\n"
        "for argv in (['list'], ['show', 'ping'], ['pause', 'ping'], ['resume', 'ping'],"
        " ['runs'], ['next', 'every day at 9:00']):\n"
        "    assert main(argv) == 0, argv\n"
        f"print('loaded:', sorted(m for m in sys.modules if m.startswith({_NOT_FOR_MANAGEMENT!r})))"
    )
    done = subprocess.run(
        [PYTHON, "-c", code], cwd=cli.workdir, env=cli.env, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.splitlines()[-1] == "loaded: []", done.stdout
    assert "ping is paused" in done.stdout
