"""The callback policy: callbacks come from the project's own modules (or modules the
setting lists), checked when a task is added, when a file is validated (without running
module code) and at every call; a callback that never returns does not hold up stop()."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from scheduler import CallbackError, RunStatus, TaskDefinition
from scheduler.callbacks import CallbackPolicy
from tests.conftest import ROOT, SchedulerFactory, eventually
from tests.test_cli import Cli

DANGEROUS = ["os:system", "subprocess:call", "builtins:eval", "pty:spawn", "shutil.rmtree"]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    tool = Cli(tmp_path)
    tool.workdir = ROOT  # the project: tests.callbacks lives inside it
    return tool


@pytest.mark.parametrize("path", DANGEROUS)
@pytest.mark.parametrize("field", ["result_callback", "on_failure_callback"])
async def test_standard_library_callbacks_are_refused_by_add_task(
    make_scheduler: SchedulerFactory, path: str, field: str
) -> None:
    scheduler = make_scheduler()
    task = TaskDefinition(id="t", interval_seconds=60, prompt="p", **{field: path})
    with pytest.raises(CallbackError) as caught:
        scheduler.add_task(task)
    message = str(caught.value)
    assert message.startswith(f"{field} {path!r}: module ")
    assert "SCHEDULER_CALLBACK_MODULES" in message
    assert scheduler.list_tasks() == []


def test_a_re_exported_or_reached_into_function_counts_where_it_is_defined() -> None:
    policy = CallbackPolicy()
    with pytest.raises(CallbackError, match="'asyncio' is a module"):
        policy.resolve("tests.prompt_graphs:asyncio.sleep")
    with pytest.raises(CallbackError, match="it is defined in 'posix'"):
        policy.resolve("tests.callbacks:getcwd")


def test_a_module_outside_the_project_needs_the_setting(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "outside_hooks.py").write_text("def hook(task, result):\n    return None\n")
    sys.path.insert(0, str(elsewhere))
    try:
        with pytest.raises(CallbackError, match="outside the project"):
            CallbackPolicy().resolve("outside_hooks:hook")
        with pytest.raises(CallbackError, match="outside the project"):
            CallbackPolicy().check_statically("outside_hooks:hook")
        assert callable(CallbackPolicy(["outside_hooks"]).resolve("outside_hooks:hook"))
        assert callable(CallbackPolicy(["json"]).resolve("json:dumps"))  # a listed stdlib one
    finally:
        sys.path.remove(str(elsewhere))
        sys.modules.pop("outside_hooks", None)


@pytest.mark.parametrize("path", DANGEROUS)
def test_the_cli_refuses_them_and_writes_nothing(cli: Cli, path: str) -> None:
    before = cli.snapshot()
    error = cli.fails(
        "add", "--id", "t", "--schedule", "every 5 minutes", "--prompt", "p",
        "--result-callback", path,
    )  # fmt: skip
    assert f"result_callback {path!r}" in error and "SCHEDULER_CALLBACK_MODULES" in error
    assert cli.snapshot() == before


def test_the_setting_allows_a_listed_module_from_the_cli(cli: Cli) -> None:
    cli.env["SCHEDULER_CALLBACK_MODULES"] = "json, tests"
    cli("add", "--id", "t", "--schedule", "every 5 minutes", "--prompt", "p",
        "--result-callback", "json:dumps")  # fmt: skip
    assert any(row[0] == "t" for row in cli.snapshot())


def test_the_tasks_file_refuses_them_on_validate_and_apply(cli: Cli, tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(
        "- id: shell\n  schedule: every 5 minutes\n  prompt: p\n  result_callback: os:system\n"
    )
    for command in ("validate", "apply"):
        done = cli(command, str(tasks), status=2)
        assert "result_callback 'os:system'" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert cli.snapshot() == []


def test_validate_runs_no_module_code_and_add_does(cli: Cli, tmp_path: Path) -> None:
    marker = tmp_path / "imported.txt"
    cli.env["SIDE_EFFECT_MARKER"] = str(marker)
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(
        "- id: hooked\n  schedule: every 5 minutes\n  prompt: p\n"
        "  result_callback: tests.import_side_effect:notify\n"
    )
    cli("validate", str(tasks))
    assert not marker.exists(), "validate imported the callback's module"
    missing = tmp_path / "missing.yaml"
    missing.write_text(tasks.read_text().replace(":notify", ":nothing_here"))
    done = cli("validate", str(missing), status=2)
    assert "has no 'nothing_here'" in done.stderr
    assert not marker.exists()
    cli("apply", str(tasks))
    assert marker.exists()  # applying imports, as adding does


async def test_a_callback_that_never_returns_is_bounded_by_the_timeout_and_stop(
    make_scheduler: SchedulerFactory,
) -> None:
    scheduler = make_scheduler(stop_grace_seconds=0.5)
    scheduler.start()
    scheduler.add_task(
        TaskDefinition(
            id="bounded",
            interval_seconds=3600,
            prompt="p",
            result_callback="tests.callbacks:block_forever",
            timeout_seconds=0.5,
        )
    )
    scheduler.add_task(
        TaskDefinition(
            id="unbounded",
            interval_seconds=3600,
            prompt="p",
            result_callback="tests.callbacks:block_forever",
        )
    )
    bounded = scheduler.run_task_now("bounded")
    scheduler.run_task_now("unbounded")
    record = await scheduler.wait_for_run(bounded, timeout=10)
    assert record.status is RunStatus.TIMED_OUT
    assert "in the result callback" in (record.error_message or "")
    fast = TaskDefinition(id="fast", interval_seconds=0.1, prompt="p")
    scheduler.add_task(fast)  # the loop is not blocked by the callback still running
    await eventually(lambda: len(scheduler.list_runs("fast", status="succeeded")) >= 3)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await scheduler.stop()
    assert loop.time() - began < 5
    [unbounded] = scheduler.list_runs("unbounded")
    assert unbounded.status is RunStatus.CANCELLED


@pytest.mark.parametrize(
    "path",
    [
        "bench.__main__:main",  # importing it would run the benchmark in the scheduler
        "scheduler.__main__:main",  # ... or the CLI
        "__main__:main",
        "tests.callbacks:__loader__",
        "tests.__init__:x",
    ],
)
async def test_entry_points_and_dunder_names_are_refused_before_any_import(
    make_scheduler: SchedulerFactory, path: str
) -> None:
    before = set(sys.modules)
    with pytest.raises(CallbackError, match="names such as __main__ are refused"):
        CallbackPolicy().check_statically(path)
    if not path.startswith("bench."):  # the rest would only exit, were it imported
        scheduler = make_scheduler()
        task = TaskDefinition(id="t", interval_seconds=60, prompt="p", result_callback=path)
        with pytest.raises(CallbackError, match="names such as __main__ are refused"):
            scheduler.add_task(task)
        assert scheduler.list_tasks() == []
    assert not {"bench.__main__", "scheduler.__main__"} & (set(sys.modules) - before)


@pytest.mark.parametrize(
    ("code", "said"),
    [
        ('raise RuntimeError("boom at import")\n', "raised RuntimeError: boom at import"),
        ("import sys\nsys.exit(3)\n", "raised SystemExit: 3"),
        ("def f(:\n", "raised SyntaxError"),
    ],
)
def test_a_callback_module_that_fails_at_import_is_a_bad_callback(
    tmp_path: Path, code: str, said: str
) -> None:
    """Only ImportError was caught: another error (or sys.exit) in the module's own code
    was a traceback from add and apply (exit 1, or the module's exit status), and killed
    main.py at start when the tasks file named it."""
    (tmp_path / "broken_hooks.py").write_text(code)
    cli = Cli(tmp_path)
    error = cli.fails(
        "add", "--id", "t", "--schedule", "daily", "--prompt", "p",
        "--result-callback", "broken_hooks:f",
    )  # fmt: skip
    assert f"result_callback 'broken_hooks:f': importing module 'broken_hooks' {said}" in error
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text("- {id: t, schedule: daily, prompt: p, on_failure_callback: broken_hooks:f}\n")
    done = cli("apply", str(tasks), status=2)
    assert said in done.stderr and "Traceback" not in done.stderr
    assert cli.snapshot() == []
