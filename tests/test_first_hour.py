"""What a new user hit in the first hour, tried as a new user would: on the README, the CLI
and ``python main.py``, with real processes and a real SQLite file."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from scheduler import ScheduleError, TaskDefinition
from scheduler.schedules import parse_schedule
from tests.conftest import PYTHON, ROOT, Output, SchedulerFactory, default_sigint, eventually
from tests.test_cli import Cli

pytestmark = pytest.mark.slow


class MainPy:
    """``python main.py`` in ``workdir``, its output collected line by line."""

    def __init__(self, cli: Cli, workdir: Path, **env: str) -> None:
        self.process = subprocess.Popen(
            [PYTHON, str(ROOT / "main.py")],
            cwd=workdir,
            env={**cli.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = Output(self.process, self.process.stdout)

    @property
    def lines(self) -> list[str]:
        return self.output.lines

    def wait_for(self, pattern: str, timeout: float = 30) -> str:
        return self.output.wait_for(pattern, timeout)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self.output.close()
        return code


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def tasks_file(path: Path, *entries: str) -> Path:
    path.write_text("".join(entries))
    return path


GOOD = "- id: good\n  schedule: every 1 second\n  prompt: fine\n"
BAD_FIELD = "- id: bad-cron\n  cron_expression: '0 25 * * *'\n  prompt: p\n"
BAD_CALLBACK = (
    "- id: bad-callback\n  schedule: every 5 minutes\n  prompt: p\n"
    "  result_callback: tests.callbacks:nothing_here\n"
)


# -- validate ------------------------------------------------------------------------------


def test_validate_reports_callback_errors_beside_other_errors_each_with_its_line(
    tmp_path: Path,
) -> None:
    cli = Cli(tmp_path)
    cli.workdir = ROOT  # tests.callbacks is a module of the project
    path = tasks_file(tmp_path / "tasks.yaml", GOOD, BAD_FIELD, BAD_CALLBACK)
    done = cli("validate", str(path), status=2)
    problems = done.stderr.strip().splitlines()
    assert any(f"{path}:5:" in p and "hour 25" in p for p in problems), problems
    [callback] = [p for p in problems if "nothing_here" in p]
    assert callback.startswith(f"{path}:10: entry 3 (id 'bad-callback'): result_callback")


# -- run --wait ------------------------------------------------------------------------------


def test_run_wait_without_a_scheduler_runs_only_that_task(cli: Cli) -> None:
    cli("add", "--id", "wanted", "--schedule", "every 1 second", "--prompt", "p")
    cli("add", "--id", "other", "--schedule", "every 1 second", "--prompt", "p")
    time.sleep(1.5)  # both are due now
    done = cli("run", "wanted", "--wait")
    assert "succeeded" in done.stdout
    connection = sqlite3.connect(cli.db)
    try:
        rows = connection.execute("SELECT task_id, status, trigger FROM scheduler_runs").fetchall()
    finally:
        connection.close()
    assert rows == [("wanted", "succeeded", "manual")]


def test_run_wait_exits_1_when_the_run_fails(cli: Cli) -> None:
    cli("add", "--id", "broken", "--schedule", "every 5 minutes", "--prompt", "fail")
    done = cli("run", "broken", "--wait", status=1)
    assert "failed" in done.stdout


# -- main.py and a bad tasks file ------------------------------------------------------------


def test_main_py_keeps_running_on_the_last_good_tasks_and_says_so(cli: Cli, tmp_path: Path) -> None:
    path = tasks_file(tmp_path / "tasks.yaml", GOOD)
    service = MainPy(cli, tmp_path, SCHEDULER_TASKS_FILE=str(path))
    service.wait_for(r"task good run \w+ succeeded")
    assert service.stop() == 0
    tasks_file(path, GOOD, BAD_FIELD)
    service = MainPy(cli, tmp_path, SCHEDULER_TASKS_FILE=str(path))
    service.wait_for(r"ERROR .*hour 25 is out of range")
    service.wait_for(r"ERROR .*was not applied \(1 problem")
    after = len(service.lines)
    eventually_sync(
        lambda: any("task good run" in line for line in service.lines[after:]),
        "the good task firing after the file was refused",
    )
    listed = cli("list").stdout
    assert "tasks.yaml was not applied" in listed
    assert "tasks.yaml was not applied" in cli("show", "good").stdout
    assert service.stop() == 0
    tasks_file(path, GOOD)
    cli("apply", str(path))
    assert "was not applied" not in cli("list").stdout


def test_an_empty_tasks_file_is_refused_and_main_py_runs_its_tasks_on(
    cli: Cli, tmp_path: Path
) -> None:
    """An editor caught half-way (the file truncated, not yet written) when main.py starts:
    it removed every task the file had made."""
    path = tasks_file(tmp_path / "tasks.yaml", GOOD)
    cli("apply", str(path))
    path.write_text("")
    service = MainPy(cli, tmp_path, SCHEDULER_TASKS_FILE=str(path))
    service.wait_for(rf"ERROR .*{re.escape(str(path))}: holds nothing \(empty, or only comments\)")
    service.wait_for(r"task good run \w+ succeeded")
    assert service.stop() == 0
    done = cli("apply", str(path), status=2)
    assert f"{path}: holds nothing" in done.stderr and "write 'tasks: []'" in done.stderr
    assert [t["id"] for t in cli.json("list")] == ["good"]
    tasks_file(path, "tasks: []\n")
    cli("apply", str(path))
    assert cli.json("list") == []


def test_a_tasks_file_that_is_not_utf8_is_refused_and_main_py_runs_on(
    cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "tasks.yaml"
    path.write_bytes(b'- id: a\n  interval_seconds: 60\n  prompt: "caf\xe9"\n')
    service = MainPy(cli, tmp_path, SCHEDULER_TASKS_FILE=str(path))
    service.wait_for(r"ERROR .*not UTF-8 text \(byte 0xe9 on line 3\)")
    service.wait_for(r"ERROR .*was not applied \(1 problem")
    assert service.stop() == 0
    assert "Traceback" not in "".join(service.lines)
    for args in (("validate", str(path)), ("add", "--file", str(path))):
        done = cli(*args, status=2)
        assert "not UTF-8 text" in done.stderr and "Traceback" not in done.stderr


def test_a_second_ctrl_c_cancels_the_runs_at_once(cli: Cli, tmp_path: Path) -> None:
    """The first Ctrl+C lets the run finish within the grace (60 s here); the second
    cancels it at once, as main.py's log says it does."""
    cli("add", "--id", "long", "--schedule", "every 1 second", "--prompt", "sleep:60")
    service = MainPy(cli, tmp_path, SCHEDULER_STOP_GRACE_SECONDS="60")
    service.wait_for(r"task long run \w+ started")
    service.process.send_signal(signal.SIGINT)
    service.wait_for(r"stopping gracefully")
    began = time.monotonic()
    service.process.send_signal(signal.SIGINT)
    assert service.process.wait(timeout=30) == 0
    assert time.monotonic() - began < 15, "the second Ctrl+C did not cancel the run"
    service.stop()
    runs = cli.json("runs", "--task", "long")  # (occurrences due meanwhile: skipped)
    [run] = [r for r in runs if r["status"] not in ("queued", "skipped")]
    assert run["status"] == "cancelled", runs


def _hanging_task(cli: Cli, tmp_path: Path, *, timeout: str) -> Path:
    """Add task ``hangs``, whose synchronous node (``blocking_graph``) holds its thread for
    600 s between a start and an end line in the log it returns."""
    log = tmp_path / "node.log"
    metadata = json.dumps({"log": str(log)})
    cli("add", "--id", "hangs", "--schedule", "every 1 hour", "--prompt", "block:600",
        "--timeout", timeout, "--max-retries", "0", "--metadata", metadata)  # fmt: skip
    return log


def test_main_py_exits_on_ctrl_c_while_a_sync_node_outlives_its_timeout(
    cli: Cli, tmp_path: Path
) -> None:
    """A synchronous node cannot be stopped: its run is recorded timed out, and the thread
    goes on. Python waits for such threads before it exits: main.py stayed up after
    "scheduler stopped" until the node returned (never, for a hung one)."""
    log = _hanging_task(cli, tmp_path, timeout="1")
    service = MainPy(cli, tmp_path, SCHEDULER_GRAPH="tests.prompt_graphs:blocking_graph")
    service.wait_for(r"scheduler running")
    cli("run", "hangs")
    service.wait_for(r"task hangs run \w+ timed out")
    assert "start" in log.read_text()
    service.process.send_signal(signal.SIGINT)
    assert service.process.wait(timeout=30) == 0
    service.stop()
    assert "1 synchronous call(s) still going" in "".join(service.lines)
    [run] = cli.json("runs", "--task", "hangs")
    assert run["status"] == "timed_out", run
    assert "end" not in log.read_text()


def test_run_wait_here_exits_while_a_sync_node_outlives_its_timeout(
    cli: Cli, tmp_path: Path
) -> None:
    """The CLI's ``run --wait`` runs the task in its own process when no scheduler runs: it
    prints the timed-out run and exits, not waiting for the node's thread."""
    log = _hanging_task(cli, tmp_path, timeout="1")
    cli.env["SCHEDULER_GRAPH"] = "tests.prompt_graphs:blocking_graph"
    began = time.monotonic()
    done = cli("run", "hangs", "--wait", status=1)  # (the helper gives up after 60 s)
    assert time.monotonic() - began < 45
    assert "timed_out" in done.stdout, done.stdout
    assert "1 synchronous call(s) still going" in done.stderr
    assert "end" not in log.read_text()


def test_run_wait_here_exits_when_its_timeout_runs_out_while_a_sync_node_hangs(
    cli: Cli, tmp_path: Path
) -> None:
    """``run --wait --timeout`` that runs out before the task's own timeout cancels the run
    and fails: the CLI says so and exits (asyncio.run waited for the node's thread before
    the error was printed: for ever, silently, for a hung node)."""
    _hanging_task(cli, tmp_path, timeout="600")
    cli.env["SCHEDULER_GRAPH"] = "tests.prompt_graphs:blocking_graph"
    began = time.monotonic()
    done = cli("run", "hangs", "--wait", "--timeout", "1", status=2)  # (gives up after 60 s)
    assert time.monotonic() - began < 45
    assert "did not finish within 1 s" in done.stderr, done.stderr
    assert "1 synchronous call(s) still going" in done.stderr
    [run] = cli.json("runs", "--task", "hangs")
    assert run["status"] == "cancelled", run


def test_serve_runs_on_the_database_its_db_flag_names(cli: Cli, tmp_path: Path) -> None:
    """``--db`` picks the database for serve too (it was dropped there: the default
    database's tasks ran instead)."""
    other = tmp_path / "other.db"
    cli("--db", str(other), "add", "--id", "mine", "--schedule", "every 1 second", "--prompt", "p")
    process = subprocess.Popen(
        [PYTHON, "-m", "scheduler", "--db", str(other), "serve"],
        cwd=tmp_path, env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    service = MainPy.__new__(MainPy)
    service.process, service.output = process, Output(process, process.stdout)
    service.wait_for(r"scheduler active on sqlite:///.*other\.db")
    service.wait_for(r"task mine run \w+ succeeded")
    assert service.stop() == 0
    assert not (tmp_path / "scheduler.db").exists()


def test_a_bad_setting_is_one_line_and_exit_2(cli: Cli, tmp_path: Path) -> None:
    service = MainPy(cli, tmp_path, SCHEDULER_LOG_LEVEL="verbose")
    assert service.process.wait(timeout=60) == 2
    service.stop()
    expected = (  # (the variable, not the field: log_level)
        "error: SCHEDULER_LOG_LEVEL: 'verbose' is not one of DEBUG, INFO, WARNING, ERROR, "
        "CRITICAL\n"
    )
    assert service.lines == [expected]
    cli.env["SCHEDULER_LOG_LEVEL"] = "verbose"
    assert cli("list", status=2).stderr == expected


@pytest.mark.parametrize("url", ["http://ops:s3cr3t@[bad", "http://ops:s3cr3t@127.0.0.1:abc"])
def test_a_server_url_that_cannot_be_used_stops_the_start_without_its_password(
    cli: Cli, tmp_path: Path, url: str
) -> None:
    """A proxy's basic auth in ``SCHEDULER_GRAPH`` is a secret, also in the error that
    refuses the URL (an unclosed ``[`` was taken for a host name, and every run failed)."""
    service = MainPy(cli, tmp_path, SCHEDULER_GRAPH=f"{url}#agent")
    assert service.process.wait(timeout=60) == 1
    service.stop()
    output = "".join(service.lines)
    shown = url.replace("s3cr3t", "***")
    assert f"graph '{shown}#agent': expected http(s)://host:port#assistant: " in output, output
    assert "s3cr3t" not in output


def test_strict_mode_refuses_to_start_on_a_bad_tasks_file(cli: Cli, tmp_path: Path) -> None:
    path = tasks_file(tmp_path / "tasks.yaml", GOOD, BAD_FIELD)
    service = MainPy(
        cli, tmp_path, SCHEDULER_TASKS_FILE=str(path), SCHEDULER_TASKS_FILE_STRICT="true"
    )
    assert service.process.wait(timeout=60) == 2
    service.stop()
    assert "hour 25" in "".join(service.lines)


def test_the_start_up_log_says_due_now_and_a_standby_says_it_stands_by(
    cli: Cli, tmp_path: Path
) -> None:
    cli("add", "--id", "late", "--schedule", "every 1 second", "--prompt", "p")
    time.sleep(1.2)  # its next run is in the past when main.py starts
    first = MainPy(cli, tmp_path, SCHEDULER_TASKS_FILE="none")
    started = first.wait_for(r"scheduler running with 1 task")
    when = re.search(r"next: late (.*)$", started)
    assert when is not None and (
        when.group(1).strip() == "due now" or not _in_the_past(when.group(1))
    ), started
    second = MainPy(cli, tmp_path, SCHEDULER_TASKS_FILE="none")
    second.wait_for(r"standing by with 1 task")
    assert not any("scheduler running" in line for line in second.lines)
    second.stop()
    first.stop()


def eventually_sync(check: object, message: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def _in_the_past(text: str) -> bool:
    match = re.match(r"at (\d\d):(\d\d):(\d\d) UTC", text.strip())
    assert match is not None, text
    now = datetime.now(UTC)
    moment = now.replace(hour=int(match[1]), minute=int(match[2]), second=int(match[3]))
    return moment < now - timedelta(seconds=1)


# -- messages ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "suggestion"),
    [
        ("europe/paris", "Europe/Paris"),
        ("Europe/Pari", "Europe/Paris"),
        ("america/new_york", "America/New_York"),
    ],
)
def test_a_time_zone_typo_gets_a_suggestion_and_no_list_of_forms(
    zone: str, suggestion: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        TaskDefinition(id="t", interval_seconds=5, prompt="p", timezone=zone)
    message = caught.value.errors()[0]["msg"]
    assert f"did you mean {suggestion!r}?" in message
    with pytest.raises(ValueError, match="did you mean") as error:
        parse_schedule("every day at 09:00", now=datetime.now(UTC), timezone=zone)
    assert "accepted forms" not in str(error.value)


def test_only_an_unrecognised_schedule_lists_the_accepted_forms() -> None:
    now = datetime.now(UTC)
    for text in ("every 0 minutes", "at 25:00 every day", "every 99999 days"):
        with pytest.raises(ScheduleError) as error:
            parse_schedule(text, now=now)
        assert "accepted forms" not in str(error.value), text
    with pytest.raises(ScheduleError, match="accepted forms"):
        parse_schedule("whenever you like", now=now)


def test_two_schedules_or_none_say_so() -> None:
    with pytest.raises(ValidationError) as caught:
        TaskDefinition(id="t", interval_seconds=60, cron_expression="* * * * *", prompt="p")
    [error] = caught.value.errors()
    assert error["msg"] == "give one schedule, not cron_expression and interval_seconds"
    with pytest.raises(ValidationError) as caught:
        TaskDefinition(id="t", prompt="p")
    assert "a schedule is required" in caught.value.errors()[0]["msg"]


def test_the_cli_says_edit_where_python_would_say_replace_existing(cli: Cli) -> None:
    cli("add", "--id", "t", "--schedule", "every 5 minutes", "--prompt", "p")
    error = cli.fails("add", "--id", "t", "--schedule", "every 5 minutes", "--prompt", "p")
    assert "replace_existing" not in error
    assert "'edit t ...'" in error and "add --replace" in error


def test_runs_limit_0_means_every_run(cli: Cli) -> None:
    cli("add", "--id", "t", "--schedule", "every 5 minutes", "--prompt", "p")
    for _ in range(3):
        cli("run", "t", "--wait")
    assert len(cli.json("runs", "--limit", "0")) == 3
    assert len(cli.json("runs", "--limit", "2")) == 2
    cli.fails("runs", "--limit", "-1")


# -- last status -------------------------------------------------------------------------------


async def test_a_skipped_occurrence_does_not_hide_the_failure_it_waited_for(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler()
    scheduler.add_task(
        TaskDefinition(id="slow-fail", interval_seconds=0.2, prompt="sleep-fail:0.5")
    )
    scheduler.start()
    await eventually(lambda: scheduler.list_runs("slow-fail", status="failed"), timeout=10)
    await eventually(lambda: scheduler.list_runs("slow-fail", status="skipped"))
    await scheduler.stop()
    latest = scheduler.list_runs("slow-fail", limit=1)[0]
    info = scheduler.get_task("slow-fail")
    assert info.last_status == "failed", (latest.status, info.last_status)
    assert info.last_error == "failing on command"


# -- the README's Python example ------------------------------------------------------------------


def test_the_readme_python_example_stops_on_ctrl_c_without_a_traceback(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Use it from Python") :]
    example = section[section.index("```python") + len("```python") : section.index("```\n", 10)]
    (tmp_path / "example.py").write_text(example)
    (tmp_path / "graph.py").write_text((ROOT / "graph.py").read_text())
    (tmp_path / "myapp").mkdir()
    (tmp_path / "myapp" / "__init__.py").write_text("")
    (tmp_path / "myapp" / "notify.py").write_text("def send(task, result):\n    return None\n")
    cli = Cli(tmp_path)
    process = subprocess.Popen(
        [PYTHON, "example.py"],
        cwd=tmp_path,
        env={
            **{k: v for k, v in cli.env.items() if k != "SCHEDULER_GRAPH"},
            "PYTHONUNBUFFERED": "1",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + 60
    out = ""
    assert process.stdout is not None
    while "RunRecord(" not in out and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        out += line
    assert "RunRecord(" in out and "status=<RunStatus.SUCCEEDED" in out, out
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "Traceback" not in err, err


# -- main.py and a missing tasks file ----------------------------------------------------------


def test_a_named_tasks_file_that_is_missing_is_a_warning_and_strict_refuses(
    cli: Cli, tmp_path: Path
) -> None:
    missing = tmp_path / "tasks.yml"
    missing.write_text("- id: a\n  prompt: p\n  schedule: every potato\n")
    cli("apply", str(missing), status=2)
    assert "tasks.yml was not applied" in cli("list").stdout
    missing.unlink()
    service = MainPy(cli, tmp_path, SCHEDULER_TASKS_FILE=str(missing))
    line = service.wait_for(r"WARNING .*tasks file .*tasks\.yml: no such file; not applied")
    service.wait_for(r"scheduler running with 0 task")
    assert "kept" not in line
    assert service.stop() == 0
    assert "not applied" not in cli("list").stdout  # (no task of it runs: its note went)
    strict = MainPy(
        cli, tmp_path, SCHEDULER_TASKS_FILE=str(missing), SCHEDULER_TASKS_FILE_STRICT="true"
    )
    assert strict.process.wait(timeout=60) == 2
    strict.stop()
    assert "tasks.yml: no such file" in "".join(strict.lines)
    assert "Traceback" not in "".join(strict.lines)


def test_main_py_started_away_from_its_tasks_file_says_so_and_keeps_its_tasks(
    cli: Cli, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    tasks_file(project / "tasks.yaml", GOOD)
    cli.workdir = project  # applied in the project, as main.py there does: file:tasks.yaml
    cli("apply", "tasks.yaml")
    cli.workdir = tmp_path
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    del cli.env["SCHEDULER_TASKS_FILE"]  # the default: tasks.yaml where main.py starts
    service = MainPy(cli, elsewhere)
    line = service.wait_for(r"WARNING .*tasks file tasks\.yaml \(from .*elsewhere\): no such")
    assert "the 1 task(s) it added before are kept" in line
    service.wait_for(r"task good run \w+ succeeded")
    assert service.stop() == 0
    # no tasks file and none of its tasks in the database: nothing to say
    quiet = MainPy(cli, elsewhere, SCHEDULER_DB_PATH=str(tmp_path / "other.db"))
    quiet.wait_for(r"scheduler running with 0 task")
    assert quiet.stop() == 0
    assert not any("WARNING" in line for line in quiet.lines), "".join(quiet.lines)
