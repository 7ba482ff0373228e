"""The scaffolder (``python -m scheduler scaffold``) on fixture projects shaped like real
ones: each is scaffolded, installed into a virtual environment of its own, and run, and a
one-second task must fire against that project's own graph, also after a restart. Plus
idempotency, ``--dry-run``, the ``--force`` rule, refusals, and the skill's commands."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
import tomllib
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduler.cli import main as cli_main
from scheduler.scaffold.manifests import plan_manifest, requirements
from scheduler.settings import Settings
from tests.conftest import PYTHON, ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "projects"
SKILL = ROOT / "skills" / "add-scheduler" / "SKILL.md"
FIRE_TIMEOUT = 30.0
RECORD = ".scheduler-scaffold.json"


# -- helpers --------------------------------------------------------------------------------


def copy_fixture(name: str, tmp_path: Path) -> Path:
    project = tmp_path / name
    shutil.copytree(FIXTURES / name, project)
    return project


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def scaffold(capsys: pytest.CaptureFixture[str], project: Path, *args: str) -> tuple[int, str, str]:
    """Run ``python -m scheduler scaffold`` in this process: (status, stdout, stderr)."""
    status = cli_main(["scaffold", str(project), *args])
    out, err = capsys.readouterr()
    return status, out, err


def run_the_task(project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m scheduler run ID --wait`` of the project's one task, as a user would:
    the CLI, in the project, with its ``.env``; it must succeed."""
    [task] = json.loads(
        subprocess.run(
            [PYTHON, "-m", "scheduler", "list", "--json"], cwd=project, env=env,
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout
    )  # fmt: skip
    done = subprocess.run(
        [PYTHON, "-m", "scheduler", "run", task["id"], "--wait"], cwd=project, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def clean_env(venv: Path | None = None) -> dict[str, str]:
    """The environment without this interpreter's Python and scheduler settings; with
    ``venv`` first on PATH, as if it were activated."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "SCHEDULER_", "PIP_")) and key != "VIRTUAL_ENV"
    }
    env["PYTHONUNBUFFERED"] = "1"
    if venv is not None:
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(venv)
    return env


def isolation_flags(project: Path) -> list[str]:
    """``--no-build-isolation`` when the project's build backend is importable here (works
    offline); otherwise pip fetches it from the package index."""
    pyproject = project / "pyproject.toml"
    requires = tomllib.loads(pyproject.read_text())["build-system"]["requires"]
    names = {re.split(r"[<>=!~ \[;]", req, maxsplit=1)[0].lower() for req in requires}
    if "setuptools" in names:
        names.add("wheel")  # setuptools < 70.1 builds wheels with the wheel package
    modules = {"poetry-core": "poetry", "setuptools-scm": "setuptools_scm"}
    if all(find_spec(modules.get(name, name)) is not None for name in names):
        return ["--no-build-isolation"]
    return []


def make_venv(path: Path, project: Path) -> Path:
    """A virtual environment that sees this interpreter's packages (through a ``.pth``
    file), with a ``pip`` command that builds ``project`` offline when it can."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    (site,) = path.glob("lib/python*/site-packages")
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    ours |= {entry for entry in sys.path if Path(entry).name == "site-packages"}  # .pth ones
    (site / "_test_environment.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    flags = " ".join(isolation_flags(project)) if (project / "pyproject.toml").exists() else ""
    pip = path / "bin" / "pip"
    pip.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = install ]; then set -- "$@" -q --disable-pip-version-check {flags}; fi\n'
        f'exec "{path / "bin" / "python"}" -m pip "$@"\n'
    )
    pip.chmod(0o755)
    return path


def run_in(venv: Path, project: Path, *command: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        list(command),
        cwd=project,
        env=clean_env(venv),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    return done


@dataclass
class Program:
    """A running ``python main.py`` whose merged output is read line by line."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    fresh: queue.Queue[str] = field(default_factory=queue.Queue)
    reader: threading.Thread | None = None

    @classmethod
    def start(cls, venv: Path, project: Path, *command: str) -> Program:
        process = subprocess.Popen(
            list(command or ("python", "main.py")),
            cwd=project,
            env=clean_env(venv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        program = cls(process)
        program.reader = threading.Thread(target=program._read, daemon=True)
        program.reader.start()
        return program

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                self.lines.append(line)
                self.fresh.put(line)
        self.fresh.put("")

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = FIRE_TIMEOUT) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.fresh.get(timeout=left)
            except queue.Empty:
                break
            if match := re.search(pattern, line):
                return match
            if not line:
                break
        self.kill()
        pytest.fail(f"no line matching {pattern!r} within {timeout} s; output:\n{self.output}")

    def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def finish(self, *, interrupt: bool = True) -> int:
        """Ctrl+C (or end of input), then wait for the exit; returns the status."""
        assert self.process.stdin is not None
        if interrupt:
            self.process.send_signal(signal.SIGINT)
        self.process.stdin.close()
        try:
            status = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"main.py did not exit; output:\n{self.output}")
        if self.reader is not None:
            self.reader.join(timeout=10)  # every line read
        return status

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        if self.process.stdin is not None:
            self.process.stdin.close()
        if self.reader is not None:
            self.reader.join(timeout=10)


# -- end to end: four project shapes --------------------------------------------------------


@dataclass(frozen=True)
class Case:
    fixture: str
    task: dict[str, Any]
    answer: str  # what the project's own graph says
    package: str  # where the scheduler package goes
    options: tuple[str, ...] = ()


CASES = [
    Case(
        "template_agent",
        {
            "id": "heartbeat",
            "schedule": "every 1 second",
            "input": {"request": "pulse check"},
            "context": {"audience": "the on-call team"},
        },
        "template-agent handled 'pulse check' for the on-call team",
        "src/scheduler",
    ),
    Case(
        "support_bot",
        {"id": "heartbeat", "schedule": "every 1 second", "prompt": "any news?"},
        "support-bot answering 'any news?': open orders A-1001 shipped",
        "src/scheduler",
        ("--graph", "support"),
    ),
    Case(
        "root_agent",
        {"id": "heartbeat", "schedule": "every 1 second", "prompt": "ping"},
        "root-agent echo: ping",
        "scheduler",
    ),
    Case(  # a defaulted context_schema whose model the task overrides (server-style context)
        "react_agent",
        {
            "id": "heartbeat",
            "schedule": "every 1 second",
            "prompt": "ping",
            "context": {"model": "fake/echo-model"},
        },
        "react-agent (fake/echo-model) on 'ping': echo-model at your service",
        "src/scheduler",
        ("--agent-tools",),
    ),
    Case(  # runtime.store, which the scheduler gives it (as the server does)
        "memory_agent",
        {
            "id": "heartbeat",
            "schedule": "every 1 second",
            "prompt": "remember milk",
            "context": {"user_id": "ann"},
        },
        "memory-agent for ann knew",
        "src/scheduler",
    ),
    Case(
        "poetry_agent",
        {"id": "heartbeat", "schedule": "every 1 second", "input": {"topic": "graphs"}},
        "research-bot read arxiv and the lab notebook about 'graphs'",
        "src/scheduler",
    ),
]
FIRED = r"task heartbeat run (\w+) succeeded in [\d.]+ s: (.*)"
SCHEDULING_TOOLS = [
    "schedule_task",
    "list_scheduled_tasks",
    "cancel_scheduled_task",
    "pause_scheduled_task",
    "resume_scheduled_task",
]
TOOL_NAMES = "from react_agent.graph import graph; print(*graph.nodes['tools'].bound.tools_by_name)"


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[case.fixture for case in CASES])
def test_scaffolded_project_fires_its_own_graph_and_keeps_its_task_across_a_restart(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = copy_fixture(case.fixture, tmp_path)
    status, out, err = scaffold(capsys, project, *case.options, "--task", json.dumps(case.task))
    assert status == 0, err
    assert "next: " in out
    assert (project / case.package / "service.py").is_file()
    assert not (project / case.package / "scaffold").exists()  # the scaffolder stays here
    assert "scheduler.db*" in (project / ".gitignore").read_text()
    assert "tasks in scheduler.db: 1 added" in out  # there before the first start
    last = out.strip().splitlines()[-1]  # the set-up line for a fresh machine
    assert ".venv/bin/pip install" in last or "poetry install" in last

    venv = make_venv(tmp_path / "venv", project)
    if (project / "requirements.txt").exists():
        run_in(venv, project, "pip", "install", "-r", "requirements.txt")
    else:
        run_in(venv, project, "pip", "install", "-e", ".")
    where = run_in(venv, project, "python", "-c", "import scheduler; print(scheduler.__file__)")
    assert Path(where.stdout.strip()) == project / case.package / "__init__.py"
    if "--agent-tools" in case.options:  # the graph's model and ToolNode get the tools
        names = run_in(venv, project, "python", "-c", TOOL_NAMES).stdout.split()
        assert names == ["search", *SCHEDULING_TOOLS]

    first = Program.start(venv, project)
    fired = first.wait_for(FIRED)
    assert case.answer in fired[2], fired[0]
    if case.fixture == "root_agent":  # the existing chat program keeps working beside it
        first.send("hello there\n")
        first.wait_for(r"^root-agent echo: hello there$")
        assert first.finish(interrupt=False) == 0, first.output
        assert "root-agent chat: bye" in first.output
    else:
        assert first.finish() == 0, first.output
    assert "scheduler stopped" in first.output
    assert "Traceback" not in first.output, first.output

    listed = json.loads(run_in(venv, project, "python", "-m", "scheduler", "list", "--json").stdout)
    assert [(t["id"], t["state"], t["paused"]) for t in listed] == [("heartbeat", "active", False)]
    assert (project / "scheduler.db").is_file()

    second = Program.start(venv, project)
    second.wait_for(r"applied tasks.yaml: 1 unchanged")
    again = second.wait_for(FIRED)
    assert again[1] != fired[1] and case.answer in again[2]
    if case.fixture == "memory_agent":  # what the first start stored is still there
        assert "knew 0 memories" not in again[2], again[2]
    if case.fixture == "root_agent":
        assert second.finish(interrupt=False) == 0, second.output
    else:
        assert second.finish() == 0, second.output
    runs = run_in(
        venv, project, "python", "-m", "scheduler", "runs", "--task", "heartbeat", "--json"
    )
    run_ids = {run["id"] for run in json.loads(runs.stdout)}
    assert {fired[1], again[1]} <= run_ids  # the history of both starts, in scheduler.db


# -- the command's rules --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "options"),
    [("template_agent", ()), ("support_bot", ("--graph", "support")), ("root_agent", ())],
)
def test_a_second_run_changes_nothing(
    fixture: str, options: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = copy_fixture(fixture, tmp_path)
    assert scaffold(capsys, project, *options)[0] == 0
    before = snapshot(project)
    status, out, _ = scaffold(capsys, project, *options)
    assert status == 0
    assert out.startswith("Nothing to change")
    assert snapshot(project) == before


def test_a_project_scaffolded_with_the_old_layout_is_upgraded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A project scaffolded before the package moved (``scheduler.app``, flat scaffolder
    modules) gets its copy and its generated imports upgraded, and the stale files go."""
    project = copy_fixture("template_agent", tmp_path)
    assert scaffold(capsys, project)[0] == 0
    record_path = project / RECORD
    record = json.loads(record_path.read_text())
    main = project / "main.py"
    old_main = main.read_text().replace(
        "from scheduler import main", "from scheduler.app import main"
    )
    main.write_text(old_main)
    package = next(p.parent for p in project.rglob("scheduler/__init__.py"))
    stale = {package / "app.py": "from scheduler.service import *\n", package / "codec.py": "\n"}
    for path, text in stale.items():
        path.write_text(text)
    for path in [main, *stale]:  # as the older scaffolder would have recorded them
        rel = path.relative_to(project).as_posix()
        record["files"][rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    record_path.write_text(json.dumps(record))

    status, out, err = scaffold(capsys, project)
    assert status == 0, err
    assert "from scheduler import main" in main.read_text()
    assert not [path for path in stale if path.exists()]
    assert "update   main.py" in out
    # the copy is whole: the dashboard's templates came with the modules
    templates = sorted(p.name for p in (package / "server" / "templates").glob("*.html"))
    shipped = sorted(p.name for p in (ROOT / "scheduler" / "server" / "templates").glob("*.html"))
    assert templates == shipped and shipped


def test_dry_run_prints_the_plan_and_a_diff_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = copy_fixture("template_agent", tmp_path)
    before = snapshot(project)
    status, out, _ = scaffold(capsys, project, "--dry-run")
    assert status == 0
    assert snapshot(project) == before
    assert "SCHEDULER_GRAPH=agent.graph:graph" in out
    assert 'has no "messages" key' in out
    assert "dry run: nothing was written" in out
    assert "--- a/pyproject.toml\n+++ b/pyproject.toml\n" in out
    assert '+    "apscheduler' in out
    assert (
        "+++ b/main.py\n" in out and '+    raise SystemExit(main(graph="agent.graph:graph"))' in out
    )
    assert "+  input:\n+    request: status report\n" in out  # the example task fits the input
    assert "+SCHEDULER_GRAPH=agent.graph:graph\n" in out


def test_scaffold_from_a_scaffolded_copy_says_where_the_scaffolder_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project's copy of the package has no ``scheduler/scaffold``: ``scaffold .`` run
    there names where to run it from, with any arguments, instead of argparse's error."""
    project = copy_fixture("template_agent", tmp_path)
    before = snapshot(project)
    monkeypatch.setitem(sys.modules, "scheduler.scaffold", None)  # import fails as in a copy
    for args in ([], ["--force", "--timezone", "UTC"]):
        with pytest.raises(SystemExit) as exited:
            cli_main(["scaffold", str(project), *args])
        out, err = capsys.readouterr()
        assert exited.value.code == 2 and not out
        assert err.strip().startswith("error: this copy of the scheduler"), err
        assert "python -m scheduler scaffold PROJECT_DIR" in err
    assert snapshot(project) == before


def test_a_file_changed_since_it_was_scaffolded_is_kept_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = copy_fixture("support_bot", tmp_path)
    task = '{"id": "nightly", "schedule": "every day at 02:00", "prompt": "Tidy up."}'
    assert scaffold(capsys, project, "--graph", "support")[0] == 0
    tasks_file = project / "tasks.yaml"
    tasks_file.write_text(tasks_file.read_text() + "# my own note\n")
    before = snapshot(project)

    status, _, err = scaffold(capsys, project, "--graph", "support", "--task", task)
    assert status == 2
    assert err.startswith("error: not overwriting tasks.yaml (changed since it was scaffolded)")
    assert "--force" in err and len(err.strip().splitlines()) == 1
    assert snapshot(project) == before

    status, out, err = scaffold(capsys, project, "--graph", "support", "--task", task, "--force")
    assert status == 0, err
    assert "update   tasks.yaml" in out
    assert "id: nightly" in tasks_file.read_text() and "my own note" not in tasks_file.read_text()


def test_an_existing_main_py_gets_one_marked_block_updated_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = copy_fixture("root_agent", tmp_path)
    original = (project / "main.py").read_text()
    assert scaffold(capsys, project)[0] == 0
    assert scaffold(capsys, project, "--no-persist", "--timezone", "Europe/Paris")[0] == 0
    text = (project / "main.py").read_text()
    assert text.count("# >>> scheduler") == 1 and text.count("# <<< scheduler") == 1
    assert 'start_in_background(graph="graph:graph", database_url="sqlite://", ' in text
    assert text.index("# <<< scheduler") < text.index('if __name__ == "__main__":\n    chat()')
    without_block = re.sub(r"# >>> scheduler.*?# <<< scheduler\n\n\n", "", text, flags=re.S)
    assert without_block == original  # the rest is the user's, byte for byte
    env = (project / ".env.example").read_text()
    assert "SCHEDULER_DATABASE_URL=sqlite://\n" in env and env.count("# >>> scheduler") == 1
    # copied to .env as it is (what the skill says to do), every value loads
    assert "Undefined" not in env and "SCHEDULER_CALLBACK_MODULES=\n" in env
    loaded = Settings(_env_file=project / ".env.example")  # type: ignore[call-arg]
    assert loaded.callback_modules == [] and loaded.http_cors_origins == []
    assert loaded.database_url == "sqlite://" and loaded.gc_freeze is True


def test_a_project_without_a_graph_is_refused_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = copy_fixture("no_graph", tmp_path)
    before = snapshot(project)
    status, out, err = scaffold(capsys, project)
    assert status == 1
    assert err.startswith("error: no LangGraph graph found in ") and "langgraph.json" in err
    assert len(err.strip().splitlines()) == 1 and out == ""
    assert snapshot(project) == before


def test_several_graphs_without_graph_option_lists_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = copy_fixture("support_bot", tmp_path)
    before = snapshot(project)
    status, _, err = scaffold(capsys, project)
    assert status == 2
    assert "choose one with --graph NAME" in err
    assert "support (./src/support_bot/graph.py:graph)" in err and "triage (" in err
    assert snapshot(project) == before


@pytest.mark.parametrize(
    ("fixture", "task", "message"),
    [
        (
            "root_agent",
            '{"id": "bad", "schedule": "0 25 * * *", "prompt": "x"}',
            "error: --task 'bad': schedule '0 25 * * *': invalid cron expression: hour 25",
        ),
        ("root_agent", '{"id": "bad", "interval_seconds": 0, "prompt": "x"}', "interval_seconds"),
        ("root_agent", "{not json", "error: --task 1: not JSON"),
        (
            "template_agent",
            '{"id": "chat", "schedule": "every 1 hour", "prompt": "hi"}',
            "error: --task 'chat': prompt: the graph's input has no 'messages' key",
        ),
        (  # (LangGraph drops an input key its state does not have: the run "succeeded")
            "template_agent",
            '{"id": "chat", "schedule": "every 1 hour", "input": {"request": "r", "topic": 1}}',
            "error: --task 'chat': input: 'topic' is not a field of the graph's input (request",
        ),
        (  # (every run failed: "Context.__init__() missing 1 required ... argument")
            "template_agent",
            '{"id": "chat", "schedule": "every 1 hour", "input": {"request": "r"}}',
            "error: --task 'chat': context: the graph's context_schema requires 'audience'",
        ),
        (
            "template_agent",
            '{"id": "chat", "schedule": "every 1 hour", "input": {"request": "r"}, '
            '"context": {"audience": "ops", "tone": 1}}',
            "error: --task 'chat': context: 'tone' is not a field of the graph's context_schema",
        ),
        (  # (written, "done", then refused by main.py's apply at every start)
            "root_agent",
            '{"id": "cb", "schedule": "every 1 hour", "prompt": "x", '
            '"result_callback": "os:system"}',
            "error: --task 'cb': result_callback 'os:system'",
        ),
        (
            "root_agent",
            '{"id": "cb", "schedule": "every 1 hour", "prompt": "x", '
            '"on_failure_callback": "nothere:send"}',
            "error: --task 'cb': on_failure_callback 'nothere:send'",
        ),
    ],
)
def test_a_bad_task_is_refused_naming_task_and_field(
    fixture: str, task: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = copy_fixture(fixture, tmp_path)
    before = snapshot(project)
    status, _, err = scaffold(capsys, project, "--task", task)
    assert status == 2
    assert message in err, err
    assert snapshot(project) == before


def test_a_scheduler_module_of_the_projects_own_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = copy_fixture("root_agent", tmp_path)
    (project / "scheduler.py").write_text("def every_day(): ...\n")
    before = snapshot(project)
    status, _, err = scaffold(capsys, project)
    assert status == 2
    assert "scheduler.py: the project has a module of its own named scheduler" in err
    assert snapshot(project) == before


def test_a_scheduler_directory_of_the_projects_own_files_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ``scheduler/`` directory without Python modules (deployment manifests) was taken
    for an earlier copy: 120 modules were written in among the project's files."""
    project = copy_fixture("root_agent", tmp_path)
    (project / "scheduler").mkdir()
    (project / "scheduler" / "cronjob.yaml").write_text("kind: CronJob\n")
    before = snapshot(project)
    status, _, err = scaffold(capsys, project)
    assert status == 2
    assert "scheduler/: the project has a package of its own named scheduler" in err
    assert snapshot(project) == before


@pytest.mark.parametrize("fixture", ["template_agent", "support_bot", "poetry_agent", "root_agent"])
def test_dependencies_are_added_once_and_the_rest_of_the_manifest_is_kept(
    fixture: str, tmp_path: Path
) -> None:
    project = copy_fixture(fixture, tmp_path)
    package = None if fixture == "root_agent" else "src/scheduler"
    edit = plan_manifest(project, requirements(), package)
    assert edit.added and "langgraph" not in edit.added  # the project lists it already
    diff = difflib.ndiff((edit.old or "").splitlines(), edit.new.splitlines())
    removed = [line for line in diff if line.startswith("- ")]
    assert len(removed) <= 1, removed  # at most a one-line array grew to several lines
    if edit.path == "pyproject.toml":
        assert tomllib.loads(edit.old or "").keys() == tomllib.loads(edit.new).keys()
    (project / edit.path).write_text(edit.new)
    again = plan_manifest(project, requirements(), package)
    assert (again.added, again.included, again.new) == ([], False, edit.new)


@pytest.mark.parametrize("fixture", ["template_agent", "poetry_agent", "root_agent"])
def test_a_manifest_with_crlf_line_ends_keeps_them(
    fixture: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A manifest checked out on Windows (``\\r\\n``): the dependencies are added with its
    line ends, not by rewriting every line of it; a second run changes nothing."""
    project = copy_fixture(fixture, tmp_path)
    name = "requirements.txt" if fixture == "root_agent" else "pyproject.toml"
    manifest = project / name
    manifest.write_bytes(manifest.read_bytes().replace(b"\n", b"\r\n"))
    before = manifest.read_bytes().decode().splitlines(keepends=True)
    status, _, err = scaffold(capsys, project)
    assert status == 0, err
    after = manifest.read_bytes()
    assert b"\n" not in after.replace(b"\r\n", b""), after  # every line ends \r\n
    assert b"apscheduler" in after.lower()
    lines = after.decode().splitlines(keepends=True)
    removed = [line for line in difflib.ndiff(before, lines) if line.startswith("- ")]
    assert len(removed) <= 1, removed  # the edit only adds (one array may grow)
    status, _, err = scaffold(capsys, project)
    assert status == 0, err
    assert manifest.read_bytes() == after


# -- the skill's commands -------------------------------------------------------------------


def skill_blocks() -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```", SKILL.read_text(), flags=re.M | re.S)


def test_skill_front_matter_says_when_to_use_it() -> None:
    front = re.match(r"^---\n(.*?)\n---\n", SKILL.read_text(), flags=re.S)
    assert front is not None
    fields = yaml.safe_load(front[1])
    assert fields["name"] == "add-scheduler"
    for words in (
        "add scheduler",
        "add cron",
        "scheduled tasks",
        "periodic tasks",
        "task scheduler",
    ):
        assert words in fields["description"]


@pytest.mark.slow
def test_every_command_of_the_skill_works_on_a_project(tmp_path: Path) -> None:
    project = copy_fixture("poetry_agent", tmp_path)
    venv = make_venv(tmp_path / "project-venv", project)
    repo = tmp_path / "scheduler-repo"  # stands for this repository with its .venv
    (repo / ".venv" / "bin").mkdir(parents=True)
    python = repo / ".venv" / "bin" / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH="{ROOT}" exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    env = clean_env(venv) | {"PROJECT": str(project), "SCHEDULER_REPO": str(repo)}

    blocks = skill_blocks()
    assert len(blocks) >= 5
    outputs = []
    for block in blocks:
        before = snapshot(project)
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{block}\n{output}"
        if "--dry-run" in block:
            assert snapshot(project) == before, "the dry run wrote files"
            assert "dry run: nothing was written" in output
        outputs.append(output)

    tasks = (project / "tasks.yaml").read_text()
    assert "id: weekday-summary" in tasks and "id: health-check" in tasks
    runs = [output for block, output in zip(blocks, outputs, strict=True) if "main.py" in block]
    assert len(runs) == 2  # the first start, and the restart
    fired = r"task scaffold-check run (\w+) succeeded in [\d.]+ s: research-bot read"
    ids = [re.findall(fired, output) for output in runs]
    assert all(ids), "\n".join(runs)
    assert all("scheduler stopped" in output for output in runs)
    log = "\n".join(outputs)
    assert "scaffold-check is paused" in log and "scaffold-check is active" in log
    assert re.search(r"^scaffold-check\t.*\tpaused\t", log, flags=re.M)
    assert ids[0][0] in runs[1]  # after the restart, runs lists those of the first start
    assert "removed scaffold-check" in log


# -- --agent-tools ----------------------------------------------------------------------------


def test_agent_tools_go_after_the_tools_list_once_and_the_block_is_kept_up_to_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = copy_fixture("react_agent", tmp_path)
    tools_py = project / "src" / "react_agent" / "tools.py"
    before = tools_py.read_text()
    status, out, err = scaffold(capsys, project, "--agent-tools")
    assert status == 0, err
    assert "src/react_agent/tools.py: the agent's TOOLS get the scheduling tools" in out
    after = tools_py.read_text()
    head, _, block = after.partition("TOOLS: list[Callable[..., Any]] = [search]\n")
    assert before.startswith(head)
    assert block.startswith("# >>> scheduler (added by python -m scheduler scaffold --agent-")
    assert "TOOLS = [*TOOLS, *scheduling_tools()]\n# <<< scheduler\n" in block
    status, out, _ = scaffold(capsys, project, "--agent-tools")
    assert status == 0 and out.startswith("Nothing to change")
    assert tools_py.read_text() == after
    # A block the user edited is theirs: not overwritten without --force.
    tools_py.write_text(after.replace("*scheduling_tools()]", "*scheduling_tools(owner_key='u')]"))
    status, _, err = scaffold(capsys, project, "--agent-tools")
    assert status == 2 and "src/react_agent/tools.py" in err


def test_agent_tools_in_the_graph_module_itself(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = copy_fixture("root_agent", tmp_path)
    graph_py = project / "graph.py"
    text = graph_py.read_text()
    graph_py.write_text(text + "\n\ntools = []\n")
    status, _, err = scaffold(capsys, project, "--agent-tools")
    assert status == 0, err
    assert graph_py.read_text().endswith("tools = [*tools, *scheduling_tools()]\n# <<< scheduler\n")


def test_agent_tools_without_a_tools_list_are_refused_with_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = copy_fixture("template_agent", tmp_path)
    before = snapshot(project)
    status, out, err = scaffold(capsys, project, "--agent-tools")
    assert status == 2 and out == ""
    assert err.startswith("error: --agent-tools: graph.py has no module-level list of tools")
    assert "from scheduler.agent_tools import scheduling_tools" in err
    assert snapshot(project) == before  # nothing was written


def test_a_graph_factory_is_inspected_as_the_graph_it_makes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``langgraph.json`` naming a factory (which the LangGraph server accepts): the graph
    it makes is what the scaffolder inspects, and what the scheduler loads."""
    project = copy_fixture("template_agent", tmp_path)
    graph_py = project / "src" / "agent" / "graph.py"
    graph_py.write_text(graph_py.read_text() + "\n\ndef make_graph(config):\n    return graph\n")
    spec = json.loads((project / "langgraph.json").read_text())
    spec["graphs"]["agent"] = "./src/agent/graph.py:make_graph"
    (project / "langgraph.json").write_text(json.dumps(spec))
    status, out, err = scaffold(capsys, project, "--dry-run")
    assert status == 0, err
    assert "SCHEDULER_GRAPH=agent.graph:make_graph" in out
    assert 'has no "messages" key' in out and "could not import" not in out
    status, _, err = scaffold(capsys, project, "--task", '{"id": "chat", "schedule": '
                              '"every day at 09:00", "prompt": "hi"}')  # fmt: skip
    assert status == 2 and "has no 'messages' key" in err


ASYNC_FACTORIES = {
    "async": "async def make_graph():\n    return graph\n",
    "context manager": "import contextlib\n\n\n@contextlib.asynccontextmanager\n"
    "async def make_graph():\n    yield graph\n",
    "server runtime": "def make_graph(runtime: 'ServerRuntime'):\n    return graph\n",
}


@pytest.mark.parametrize("factory", list(ASYNC_FACTORIES))
def test_a_graph_factory_the_scheduler_cannot_load_is_refused_and_nothing_written(
    factory: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An async factory (an ``asynccontextmanager`` one, as MCP examples write) was
    scaffolded with 'could not import the graph ... assuming a messages graph', and every
    run then failed to load it; now it is refused, saying what to expose instead."""
    project = copy_fixture("template_agent", tmp_path)
    graph_py = project / "src" / "agent" / "graph.py"
    graph_py.write_text(graph_py.read_text() + "\n\n" + ASYNC_FACTORIES[factory])
    spec = json.loads((project / "langgraph.json").read_text())
    spec["graphs"]["agent"] = "./src/agent/graph.py:make_graph"
    (project / "langgraph.json").write_text(json.dumps(spec))
    before = snapshot(project)
    status, _, err = scaffold(capsys, project)
    assert status == 2, err
    assert "which the scheduler cannot load: expose the compiled graph" in err, err
    assert snapshot(project) == before


def test_the_graph_is_inspected_with_the_projects_own_interpreter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The graph imports a package installed only in the project's environment: the
    scaffolder's own interpreter cannot import it, the project's ``.venv`` can, and its
    shape (no ``messages`` key) is what the plan says."""
    project = copy_fixture("template_agent", tmp_path)
    graph_py = project / "src" / "agent" / "graph.py"
    graph_py.write_text(graph_py.read_text() + "\nimport only_in_the_project  # noqa: E402\n")
    deps = tmp_path / "project-site-packages"
    deps.mkdir()
    (deps / "only_in_the_project.py").write_text("")
    python = project / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\nPYTHONPATH="{deps}" exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    status, out, err = scaffold(capsys, project, "--dry-run")
    assert status == 0, err
    assert 'has no "messages" key' in out and "could not import" not in out
    python.unlink()  # without it, only this interpreter: the import fails, and it says so
    status, out, err = scaffold(capsys, project, "--dry-run")
    assert status == 0 and "could not import the graph here" in out


def test_the_chosen_timezone_reaches_the_cli_and_the_tasks_written_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--timezone`` is in main.py's defaults, which the CLI never reads: a block in
    ``.env`` sets it for the CLI too (not the database of --no-persist)."""
    project = copy_fixture("root_agent", tmp_path)
    (project / "main.py").unlink()
    assert scaffold(capsys, project, "--timezone", "Europe/Paris")[0] == 0
    dotenv = (project / ".env").read_text()
    assert "SCHEDULER_TIMEZONE=Europe/Paris\n" in dotenv and "DATABASE_URL" not in dotenv
    env = {**clean_env(), "PYTHONPATH": str(project)}

    def cli(*args: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "scheduler", *args, "--json"], cwd=project, env=env,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    [example] = cli("list")  # written into scheduler.db by the scaffolder, in that zone
    assert example["definition"]["timezone"] == "Europe/Paris"
    [added] = cli("add", "--id", "daily", "--schedule", "every day at 09:00", "--prompt", "p")
    assert added["definition"]["timezone"] == "Europe/Paris"
    assert scaffold(capsys, project, "--timezone", "Europe/Paris")[1].startswith("Nothing")


def test_a_setuptools_package_list_gets_every_subpackage_and_the_templates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The new-langgraph-project template lists its packages by name: the scheduler's
    subpackages must be listed too, or a wheel (``pip install .``) holds only the top
    modules and ``import scheduler`` fails there (an editable install hid it)."""
    project = copy_fixture("template_agent", tmp_path)
    assert scaffold(capsys, project)[0] == 0
    names = wheel_names(project, tmp_path / "wheels")
    for module in ("scheduler/__init__.py", "scheduler/storage/__init__.py",
                   "scheduler/triggers/cron.py", "scheduler/server/templates/base.html",
                   "scheduler/py.typed", "agent/graph.py"):  # fmt: skip
        assert module in names, (module, sorted(n for n in names if n.startswith("sched"))[:20])
    assert not any(name.startswith("scheduler/scaffold") for name in names)


def wheel_names(project: Path, built: Path) -> set[str]:
    """The files of the wheel of ``project`` (built offline, as ``pip install .`` would)."""
    import zipfile

    done = subprocess.run(
        [PYTHON, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "-q", "-w", str(built), str(project)],
        capture_output=True, text=True, timeout=300, env=clean_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    [wheel] = built.glob("*.whl")
    return set(zipfile.ZipFile(wheel).namelist())


def test_a_flat_layout_that_setuptools_discovers_by_itself_gets_both_packages_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``uv init`` writes a pyproject.toml that names no packages: setuptools took the
    project's one top-level package by itself, and with the scheduler's beside it refused
    to build ('Multiple top-level packages discovered in a flat-layout'), so the
    ``pip install -e .`` of the ``next:`` line failed."""
    project = copy_fixture("root_agent", tmp_path)
    (project / "agent").mkdir()
    (project / "agent" / "__init__.py").write_text("")
    (project / "graph.py").rename(project / "agent" / "graph.py")
    (project / "langgraph.json").write_text('{"graphs": {"agent": "./agent/graph.py:graph"}}')
    (project / "pyproject.toml").write_text(
        '[project]\nname = "uvapp"\nversion = "0.1.0"\ndependencies = ["langgraph>=1.0.0"]\n'
    )
    assert scaffold(capsys, project)[0] == 0
    names = wheel_names(project, tmp_path / "wheels")
    for name in ("agent/graph.py", "scheduler/__init__.py", "scheduler/server/templates/base.html"):
        assert name in names, sorted(names)[:20]
    assert scaffold(capsys, project)[1].startswith("Nothing")


def test_the_cli_finds_the_graph_chosen_among_several(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """main.py passes the chosen graph; the CLI reads ``.env``, and without a setting it
    cannot choose among two graphs (``run`` failed: "cannot import 'graph'"). A project
    whose graph the CLI finds by itself gets no ``.env``."""
    project = copy_fixture("support_bot", tmp_path)
    assert scaffold(capsys, project, "--graph", "triage")[0] == 0
    dotenv = (project / ".env").read_text()
    assert "SCHEDULER_GRAPH=support_bot.triage:triage_graph" in dotenv, dotenv
    env = {**clean_env(), "PYTHONPATH": f"{project / 'src'}"}
    done = run_the_task(project, env)
    assert "succeeded" in done.stdout
    single = copy_fixture("template_agent", tmp_path)
    assert scaffold(capsys, single)[0] == 0
    assert not (single / ".env").exists()


def test_a_database_named_in_the_projects_env_gets_no_stray_scheduler_db(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = copy_fixture("root_agent", tmp_path)
    (project / ".env").write_text("export SCHEDULER_DB_PATH=var/app.db\n")
    status, out, _ = scaffold(capsys, project)
    assert status == 0
    assert "applied when main.py starts (to the .env's database)" in out
    assert not (project / "scheduler.db").exists()


def test_the_tasks_written_at_once_are_the_ones_main_py_applies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The scaffolder applies tasks.yaml from the project, as main.py does: the same
    source, so a problem it met is cleared when the fixed file is applied (the scaffolder,
    run from its own repository, recorded the file's absolute path, and its 'was not
    applied' note stayed under every list for good)."""
    project = copy_fixture("root_agent", tmp_path)
    (project / "tasks.yaml").write_text("- {id: daily, schedule: '0 25 * * *', prompt: p}\n")
    status, out, _ = scaffold(capsys, project)
    assert status == 0 and "tasks.yaml not applied yet" in out
    (project / "tasks.yaml").write_text("- {id: daily, schedule: '0 9 * * *', prompt: p}\n")
    env = {**clean_env(), "PYTHONPATH": str(project)}

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "scheduler", *args], cwd=project, env=env,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    cli("apply", "tasks.yaml")  # what main.py does at start
    listed = cli("list")
    assert "daily" in listed and "file:tasks.yaml" in listed
    assert "not applied" not in listed, listed


def test_a_task_with_a_callback_of_the_project_is_left_to_main_py(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A task naming a callback of the project was reported 'tasks.yaml not applied yet
    (... cannot import module ...: not found)' (the project is not on the scaffolder's
    path, and adding the task would import it there): main.py applies it, and says so."""
    project = copy_fixture("template_agent", tmp_path)
    (project / "src" / "agent" / "notify.py").write_text("def send(run):\n    return None\n")
    task = {"id": "daily", "schedule": "every day at 09:00", "input": {"request": "x"},
            "context": {"audience": "ops"}, "result_callback": "agent.notify:send"}  # fmt: skip
    status, out, err = scaffold(capsys, project, "--task", json.dumps(task))
    assert status == 0, err
    assert "tasks.yaml are applied when main.py starts (with callbacks)" in out, out
    assert "not applied" not in out and "agent.notify" not in sys.modules
    env = {**clean_env(), "PYTHONPATH": str(project / "src")}
    done = subprocess.run(
        [sys.executable, "-m", "scheduler", "apply", "tasks.yaml"], cwd=project, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    task["result_callback"] = "os:system"  # one the policy refuses: exit 2, nothing written
    before = snapshot(project)
    status, out, err = scaffold(capsys, project, "--task", json.dumps(task))
    assert status == 2 and "'os' is a built-in" in err, out + err
    assert snapshot(project) == before


def test_a_tasks_yaml_of_another_program_is_kept_and_the_tasks_go_in_a_file_of_their_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A project's own tasks.yaml (another tool's) was left as it is, yet main.py applied
    it at every start: an ERROR at each start, no task ever from the scaffolder. Now the
    scheduler's tasks go in scheduler-tasks.yaml, named in main.py and .env (for serve);
    a tasks file of the scheduler with a mistake is still the scheduler's."""
    project = copy_fixture("root_agent", tmp_path)
    theirs = "# the cleanup jobs of our ops tool\njobs:\n  - {name: cleanup, cron: 0 0 * * *}\n"
    (project / "tasks.yaml").write_text(theirs)
    status, out, _ = scaffold(capsys, project)
    assert status == 0
    assert "tasks in scheduler.db: 1 added" in out and "tasks.yaml is not a tasks file" in out
    assert (project / "tasks.yaml").read_text() == theirs
    assert "weekday-summary" in (project / "scheduler-tasks.yaml").read_text()
    assert 'tasks_file="scheduler-tasks.yaml"' in (project / "main.py").read_text()
    assert "SCHEDULER_TASKS_FILE=scheduler-tasks.yaml\n" in (project / ".env").read_text()
    assert scaffold(capsys, project)[1].startswith("Nothing")
    env = {**clean_env(), "PYTHONPATH": str(project)}
    done = subprocess.run(
        [sys.executable, "-m", "scheduler", "list"], cwd=project, env=env,
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "file:scheduler-tasks.yaml" in done.stdout and "note" not in done.stdout
    ours = copy_fixture("root_agent", tmp_path / "ours")
    (ours / "tasks.yaml").write_text("- {id: daily, schedule: '0 25 * * *', prompt: p}\n")
    assert scaffold(capsys, ours)[0] == 0
    assert not (ours / "scheduler-tasks.yaml").exists()


def test_a_crlf_main_py_keeps_its_line_ends_and_its_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The block and the blank lines around it end ``\\r\\n`` as the file's do, and the
    user's line before it keeps its ``\\r`` (it lost it: git showed it changed)."""
    project = copy_fixture("root_agent", tmp_path)
    main = project / "main.py"
    original = main.read_bytes().replace(b"\n", b"\r\n")
    main.write_bytes(original)
    assert scaffold(capsys, project)[0] == 0
    after = main.read_bytes()
    assert b"\n" not in after.replace(b"\r\n", b""), after
    without_block = re.sub(
        rb"# >>> scheduler.*?# <<< scheduler\r\n\r\n\r\n", b"", after, flags=re.S
    )
    assert without_block == original


def test_another_graph_gets_its_own_example_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run again with another ``--graph``: the example task, as scaffolded, is written
    again for the new graph's input (it was kept, and every run of it failed); an edited
    ``tasks.yaml`` is kept, with a note."""
    project = tmp_path / "two"
    project.mkdir()
    (project / "chat.py").write_text(
        "from langchain_core.messages import AIMessage\n"
        "from langgraph.graph import START, MessagesState, StateGraph\n"
        "builder = StateGraph(MessagesState)\n"
        "builder.add_node('reply', lambda s: {'messages': [AIMessage('hi')]})\n"
        "builder.add_edge(START, 'reply')\n"
        "graph = builder.compile()\n"
    )
    (project / "summarize.py").write_text(
        "from typing_extensions import TypedDict\n"
        "from langgraph.graph import START, StateGraph\n"
        "class State(TypedDict):\n"
        "    text: str\n"
        "builder = StateGraph(State)\n"
        "builder.add_node('short', lambda s: {'text': s['text'][:10]})\n"
        "builder.add_edge(START, 'short')\n"
        "graph = builder.compile()\n"
    )
    (project / "langgraph.json").write_text(
        '{"dependencies": ["."], "graphs": {"chat": "./chat.py:graph", '
        '"summarize": "./summarize.py:graph"}}'
    )
    assert scaffold(capsys, project, "--graph", "chat")[0] == 0
    first = (project / "tasks.yaml").read_text()
    status, out, _ = scaffold(capsys, project, "--graph", "summarize")
    assert status == 0 and "update   tasks.yaml" in out, out
    assert (project / "tasks.yaml").read_text() != first
    env = {**clean_env(), "PYTHONPATH": str(project)}
    run_the_task(project, env)
    with (project / "tasks.yaml").open("a") as edited:
        edited.write("# mine\n")
    status, out, _ = scaffold(capsys, project, "--graph", "chat")
    assert status == 0 and "tasks.yaml holds tasks for the input of" in out, out
    assert (project / "tasks.yaml").read_text().endswith("# mine\n")


def test_dropping_the_timezone_on_a_second_run_drops_it_from_env_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = copy_fixture("root_agent", tmp_path)
    assert scaffold(capsys, project, "--timezone", "Asia/Tokyo")[0] == 0
    assert "SCHEDULER_TIMEZONE=Asia/Tokyo" in (project / ".env").read_text()
    assert scaffold(capsys, project)[0] == 0
    dotenv = (project / ".env").read_text()
    assert "SCHEDULER_TIMEZONE" not in dotenv and dotenv.count("# >>> scheduler") == 1
    assert "timezone=" not in (project / "main.py").read_text()
    assert scaffold(capsys, project)[1].startswith("Nothing to change")


def test_a_pinned_version_the_scheduler_cannot_use_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``pip freeze`` output pins old versions: pip cannot install them with the scheduler
    (ResolutionImpossible), so the scaffolder says which and what it needs."""
    project = copy_fixture("root_agent", tmp_path)
    (project / "requirements.txt").write_text(
        "langgraph==0.6.10\nlangchain-core>=0.3,<0.4  # old\npydantic==2.11.9\n"
    )
    status, out, _ = scaffold(capsys, project)
    assert status == 0
    assert (
        "note     langgraph==0.6.10 cannot be installed with the scheduler, which needs langgraph"
        in out
    )
    assert "langchain-core>=0.3,<0.4 cannot be installed" in out
    assert "pydantic==2.11.9 cannot" not in out


def test_another_graph_keeps_the_tasks_given_with_task(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the example is written again for another graph; tasks the user gave are the
    user's (the next start would have removed them from the database)."""
    project = copy_fixture("support_bot", tmp_path)
    mine = '{"id": "mine", "schedule": "every 1 hour", "prompt": "Check the inbox"}'
    assert scaffold(capsys, project, "--graph", "support", "--task", mine)[0] == 0
    before = (project / "tasks.yaml").read_text()
    status, out, _ = scaffold(capsys, project, "--graph", "triage")
    assert status == 0 and "holds tasks for the input of" in out, out
    assert (project / "tasks.yaml").read_text() == before


def test_a_clash_is_named_only_where_no_version_fits_both(tmp_path: Path) -> None:
    from scheduler.scaffold.versions import clashes

    wanted = requirements()
    fits = ["langgraph>1.0", "langgraph!=1.0.0", "langgraph>1.0,<1.5", "langgraph==1.*",
            'langgraph==0.6.10; python_version<"3"', "pydantic==2.11.9"]  # fmt: skip
    for spec in fits:
        assert clashes([spec], wanted) == [], spec
    for spec in ("langgraph==0.6.10", "langgraph<1.0", "langgraph~=0.6", "langgraph>=2"):
        assert clashes([spec], wanted), spec
    # in a src layout too (the build's notes came after, and replaced them)
    project = copy_fixture("memory_agent", tmp_path)
    manifest = project / "pyproject.toml"
    manifest.write_text(manifest.read_text().replace('"langgraph>=1.0"', '"langgraph==0.6.10"'))
    edit = plan_manifest(project, wanted, "src/scheduler")
    assert any("langgraph==0.6.10 cannot be installed" in note for note in edit.notes), edit.notes


def test_a_state_pydantic_cannot_read_is_read_from_its_type_hints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ``typing.TypedDict`` state on Python < 3.12: the graph runs, but pydantic refuses
    to make its JSON schema; the scaffolder said it "could not import the graph", assumed
    messages, and wrote a task every run of which failed."""
    project = tmp_path / "td"
    project.mkdir()
    (project / "graph.py").write_text(
        "from typing import TypedDict\n"
        "from langgraph.graph import START, StateGraph\n"
        "class State(TypedDict):\n"
        "    changeme: str\n"
        "builder = StateGraph(State)\n"
        "builder.add_node('n', lambda s: {'changeme': s['changeme'] + '!'})\n"
        "builder.add_edge(START, 'n')\n"
        "graph = builder.compile()\n"
    )
    status, out, _ = scaffold(capsys, project)
    assert status == 0 and "tasks give input (changeme)" in out, out
    env = {**clean_env(), "PYTHONPATH": str(project)}
    done = subprocess.run(
        [PYTHON, "-m", "scheduler", "run", "weekday-run", "--wait"], cwd=project, env=env,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_agents_own_requirements_file_gets_the_requirements(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """LangGraph's requirements.txt layout keeps them in ``./my_agent/requirements.txt``
    (``langgraph.json``'s dependencies): a new root file left the agent's own out of the
    set-up command, and the deployment's file without the scheduler's."""
    project = tmp_path / "app"
    (project / "my_agent").mkdir(parents=True)
    (project / "my_agent" / "__init__.py").write_text("")
    (project / "my_agent" / "agent.py").write_text((ROOT / "graph.py").read_text())
    (project / "my_agent" / "requirements.txt").write_text("langgraph\nlangchain-core\n")
    (project / "langgraph.json").write_text(
        '{"dependencies": ["./my_agent"], "graphs": {"agent": "./my_agent/agent.py:graph"}}'
    )
    status, out, _ = scaffold(capsys, project)
    assert status == 0, out
    assert not (project / "requirements.txt").exists()
    text = (project / "my_agent" / "requirements.txt").read_text()
    assert text.startswith("langgraph\nlangchain-core\n") and "apscheduler" in text
    assert "pip install -r my_agent/requirements.txt" in out.strip().splitlines()[-1]


def test_the_example_task_leaves_the_context_defaults_to_the_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The ReAct template's context has a default for every field: the example task gives
    no context, so its runs follow the code's defaults (the model, the system prompt) as
    they change; a context field without a default is still given."""
    react = copy_fixture("react_agent", tmp_path)
    assert scaffold(capsys, react)[0] == 0
    [example] = yaml.safe_load((react / "tasks.yaml").read_text())
    assert example["prompt"] and "context" not in example, example
    template = copy_fixture("template_agent", tmp_path)
    assert scaffold(capsys, template)[0] == 0
    [example] = yaml.safe_load((template / "tasks.yaml").read_text())
    assert list(example["context"]) == ["audience"], example


UV_PYPROJECT = """\
[project]
name = "my-agent"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["langgraph>=1.0", "langchain-core>=1.0"]

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
"""


POETRY_PYPROJECT = """\
[tool.poetry]
name = "my-agent"
version = "0.1.0"
description = ""
authors = ["Ann <ann@example.com>"]

[tool.poetry.dependencies]
python = "^3.11"
langgraph = "^1.0"
langchain-core = "^1.0"

[build-system]
requires = ["poetry-core>=1.0.0"]
build-backend = "poetry.core.masonry.api"
"""


def uv_project(root: Path, pyproject: str = UV_PYPROJECT) -> Path:
    """A project as ``uv init --package`` lays it out: hatchling, ``src/my_agent``, no
    package list (hatchling finds the one named after the project, and only it; so does
    Poetry with ``poetry new --src`` and no ``packages``)."""
    package = root / "src" / "my_agent"
    package.mkdir(parents=True)
    (root / "pyproject.toml").write_text(pyproject)
    (package / "__init__.py").write_text("")
    (package / "agent.py").write_text(
        "from langchain_core.messages import AIMessage\n"
        "from langgraph.graph import START, MessagesState, StateGraph\n"
        "def reply(state: MessagesState) -> dict:\n"
        "    return {'messages': [AIMessage(f\"uv-agent on {state['messages'][-1].content}\")]}\n"
        "graph = StateGraph(MessagesState).add_node(reply).add_edge(START, 'reply').compile()\n"
    )
    (root / "langgraph.json").write_text(
        '{"dependencies": ["."], "graphs": {"agent": "./src/my_agent/agent.py:graph"}}'
    )
    return root


def test_a_src_layout_without_a_package_list_gets_one_with_the_schedulers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without a package list, hatchling's (and Poetry's) wheel holds only
    ``src/my_agent``: ``pip install .`` (or ``uv sync --no-editable``) left ``scheduler``
    out, and main.py failed to import it. The list it gets names both; one given by the
    project is appended to."""
    project = uv_project(tmp_path / "my-agent")
    status, out, err = scaffold(capsys, project)
    assert status == 0, err
    assert "make sure the project's build includes" not in out, out
    wheel = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    assert wheel["targets"]["wheel"]["packages"] == ["src/my_agent", "src/scheduler"]
    assert scaffold(capsys, project)[1].startswith("Nothing to change")

    listed = uv_project(tmp_path / "listed")
    text = UV_PYPROJECT + '\n[tool.hatch.build.targets.wheel]\npackages = ["src/my_agent"]\n'
    (listed / "pyproject.toml").write_text(text)
    assert scaffold(capsys, listed)[0] == 0
    wheel = tomllib.loads((listed / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    assert wheel["targets"]["wheel"]["packages"] == ["src/my_agent", "src/scheduler"]

    poetry = uv_project(tmp_path / "poetry", POETRY_PYPROJECT)
    status, out, err = scaffold(capsys, poetry)
    assert status == 0 and "make sure the project's build" not in out, out + err
    packages = tomllib.loads((poetry / "pyproject.toml").read_text())["tool"]["poetry"]
    assert packages["packages"] == [
        {"include": "my_agent", "from": "src"},
        {"include": "scheduler", "from": "src"},
    ]
    assert scaffold(capsys, poetry)[1].startswith("Nothing to change")


SETUPTOOLS_PYPROJECT = """\
[project]
name = "my-agent"
version = "0.1.0"
dependencies = ["langgraph>=1.0", "langchain-core>=1.0"]

[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"
"""
ROOT_MANIFESTS = {
    "setuptools packages": SETUPTOOLS_PYPROJECT + '\n[tool.setuptools]\npackages = ["my_agent"]\n',
    "setuptools py-modules": SETUPTOOLS_PYPROJECT + '\n[tool.setuptools]\npy-modules = ["agent"]\n',
    "setuptools find include": SETUPTOOLS_PYPROJECT
    + '\n[tool.setuptools.packages.find]\ninclude = ["my_agent*"]\n',
    "hatchling, none listed": UV_PYPROJECT,
    "poetry packages": POETRY_PYPROJECT.replace(
        "\n\n[tool.poetry.dependencies]",
        '\npackages = [{ include = "my_agent" }]\n\n[tool.poetry.dependencies]',
    ),
}


@pytest.mark.parametrize("manifest", ROOT_MANIFESTS)
def test_a_build_at_the_root_that_takes_only_named_packages_gets_the_schedulers_too(
    manifest: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """At the project's root, a manifest that names its packages (or hatchling and Poetry,
    which take the one named after the project by itself) built a wheel without
    ``scheduler``: ``import scheduler`` failed outside the project's directory."""
    project = uv_project(tmp_path / "my-agent", ROOT_MANIFESTS[manifest])
    (project / "src" / "my_agent").rename(project / "my_agent")
    (project / "src").rmdir()
    graph = "./my_agent/agent.py:graph"
    if "py-modules" in manifest:  # modules only: the graph in a module of its own
        (project / "my_agent" / "agent.py").rename(project / "agent.py")
        shutil.rmtree(project / "my_agent")
        graph = "./agent.py:graph"
    (project / "langgraph.json").write_text(json.dumps({"graphs": {"agent": graph}}))
    status, out, err = scaffold(capsys, project)
    assert status == 0 and "make sure the project's build" not in out, out + err
    names = wheel_names(project, tmp_path / "wheels")
    own = "agent.py" if "py-modules" in manifest else "my_agent/agent.py"
    for name in (own, "scheduler/__init__.py", "scheduler/storage/__init__.py",
                 "scheduler/server/templates/base.html"):  # fmt: skip
        assert name in names, (name, sorted(names)[:30])
    assert not any(name.startswith("scheduler/scaffold") for name in names)
    assert scaffold(capsys, project)[1].startswith("Nothing to change")


@pytest.mark.parametrize(
    "find", ["", '\n[tool.setuptools.packages.find]\nwhere = ["src"]\n'], ids=["auto", "where"]
)
def test_setuptools_discovery_in_src_gets_the_dashboards_templates_into_the_wheel(
    find: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """setuptools' discovery finds ``src/scheduler`` by itself, but not its files that are
    not modules: the wheel lacked the dashboard's templates (and ``py.typed``)."""
    project = uv_project(tmp_path / "my-agent", SETUPTOOLS_PYPROJECT + find)
    assert scaffold(capsys, project)[0] == 0
    names = wheel_names(project, tmp_path / "wheels")
    for name in ("my_agent/agent.py", "scheduler/py.typed", "scheduler/server/templates/base.html"):
        assert name in names, (name, sorted(names)[:30])
    assert scaffold(capsys, project)[1].startswith("Nothing to change")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["hatchling", "poetry"])
def test_a_src_layout_without_a_package_list_installed_as_a_wheel_runs_its_scheduler(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip(backend)
    pyproject = UV_PYPROJECT if backend == "hatchling" else POETRY_PYPROJECT
    project = uv_project(tmp_path / "my-agent", pyproject)
    task = {"id": "heartbeat", "schedule": "every 1 second", "prompt": "ping"}
    assert scaffold(capsys, project, "--task", json.dumps(task))[0] == 0
    venv = make_venv(tmp_path / "venv", project)
    run_in(venv, project, "pip", "install", ".")  # a wheel, not the source tree
    where = run_in(venv, tmp_path, "python", "-c", "import scheduler; print(scheduler.__file__)")
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout
    program = Program.start(venv, project)
    assert "uv-agent on ping" in program.wait_for(FIRED)[2]
    assert program.finish() == 0, program.output


ONE_SHOT = """\
\"\"\"Ask the agent one question, print the answer, exit.\"\"\"
import sys

from graph import graph


def main() -> None:
    result = graph.invoke({"messages": [("user", " ".join(sys.argv[1:]) or "hello")]})
    print(result["messages"][-1].content)


if __name__ == "__main__":
    main()
"""
SERVED = """\
\"\"\"The agent over HTTP: uvicorn main:app\"\"\"
from fastapi import FastAPI

from graph import graph

app = FastAPI()


@app.post("/ask")
async def ask(question: str) -> dict:
    result = await graph.ainvoke({"messages": [("user", question)]})
    return {"answer": result["messages"][-1].content}
"""


@pytest.mark.slow
@pytest.mark.parametrize("main", [ONE_SHOT, SERVED], ids=["one-shot", "served"])
def test_a_main_py_that_does_not_keep_running_is_left_alone_and_serve_runs_the_tasks(
    main: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A block in a script that runs the graph once started the scheduler and stopped it
    at once (a task due then was cut short), and in an app that ``uvicorn main:app``
    imports it never ran: no task fired. main.py is left as it is, and ``next:`` runs
    the scheduler beside it (``python -m scheduler serve``), also after a restart."""
    project = copy_fixture("root_agent", tmp_path)
    (project / "main.py").write_text(main)
    task = {"id": "heartbeat", "schedule": "every 1 second", "prompt": "ping"}
    status, out, err = scaffold(capsys, project, "--task", json.dumps(task))
    assert status == 0, err
    assert (project / "main.py").read_text() == main
    assert "main.py has no loop or server of its own" in out
    assert out.strip().splitlines()[-1].endswith(".venv/bin/python -m scheduler serve")
    assert scaffold(capsys, project, "--task", json.dumps(task))[1].startswith("Nothing")
    venv = make_venv(tmp_path / "venv", project)
    run_in(venv, project, "pip", "install", "-r", "requirements.txt")
    fired = []
    for _ in range(2):
        program = Program.start(venv, project, "python", "-m", "scheduler", "serve")
        fired.append(program.wait_for(FIRED))
        assert program.finish() == 0, program.output
    assert fired[0][1] != fired[1][1] and "root-agent echo: ping" in fired[1][2]
    status, out, _ = scaffold(capsys, project, "--no-persist")
    assert "python -m scheduler --database-url sqlite:// serve" in out.splitlines()[-1]


def test_what_applies_the_tasks_is_what_runs_the_scheduler(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With main.py left alone, serve applies the tasks, not main.py (it said 'applied
    when main.py starts', and main.py, an app, never does)."""
    project = copy_fixture("root_agent", tmp_path)
    (project / "main.py").write_text("from fastapi import FastAPI\n\napp = FastAPI()\n")
    status, out, _ = scaffold(capsys, project, "--no-persist")
    assert status == 0
    serve = "python -m scheduler --database-url sqlite:// serve"
    assert f"the tasks of tasks.yaml are applied when {serve} starts" in out, out
    assert "main.py starts" not in out


@pytest.mark.parametrize("obstacle", ["scheduler", RECORD])
def test_a_scaffold_that_cannot_write_a_file_writes_none(
    obstacle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that cannot be written (a file where the package's directory goes, a
    directory where the record goes) stops the scaffold before any file of the project
    changed; once the obstacle is gone it goes through."""
    project = copy_fixture("root_agent", tmp_path)
    if obstacle == RECORD:
        (project / RECORD).mkdir()
    else:
        (project / obstacle).write_text("in the way\n")

    def tree() -> dict[str, bytes]:
        return {
            str(p.relative_to(project)): p.read_bytes()
            for p in sorted(project.rglob("*"))
            if p.is_file()
        }

    before = tree()
    status, _, err = scaffold(capsys, project)
    assert status != 0
    assert tree() == before
    assert "nothing was written" in err and obstacle in err, err
    assert not list(project.rglob("*.scaffolding"))
    (project / obstacle).rmdir() if obstacle == RECORD else (project / obstacle).unlink()
    status, _, err = scaffold(capsys, project)
    assert status == 0, err
