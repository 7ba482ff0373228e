"""The declarative tasks file, in process: what an apply adds, updates, removes or keeps."""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from scheduler import TaskDefinition, TaskState
from scheduler.exceptions import TasksFileError
from scheduler.tasksfile import apply_tasks_file, load_tasks_file
from tests.conftest import SchedulerFactory


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


async def test_apply_keeps_paused_state_and_removed_keep_leaves_tasks(
    make_scheduler: SchedulerFactory, tmp_path: Path
) -> None:
    scheduler = make_scheduler()
    tasks = write(
        tmp_path / "tasks.yaml",
        "tasks:\n  - id: a\n    schedule: every 5 minutes\n    prompt: a\n"
        "  - id: b\n    interval_seconds: 60\n    prompt: b\n",
    )
    assert apply_tasks_file(scheduler, tasks).added == ["a", "b"]
    scheduler.pause_task("a")
    write(tasks, "- id: a\n  schedule: every 10 minutes\n  prompt: changed\n")
    report = apply_tasks_file(scheduler, tasks, removed="keep")
    assert (report.updated, report.kept, report.removed) == (["a"], ["b"], [])
    a = scheduler.get_task("a")
    assert a.state is TaskState.PAUSED  # an apply never resumes what an operator paused
    assert a.definition is not None and a.definition.interval_seconds == 600
    assert scheduler.get_task("b").state is TaskState.ACTIVE


async def test_file_schedules_use_the_default_timezone_and_allow_past_times(
    make_scheduler: SchedulerFactory, tmp_path: Path
) -> None:
    scheduler = make_scheduler(timezone="Europe/Paris")
    tasks = write(
        tmp_path / "tasks.yaml",
        "- id: morning\n  schedule: every day at 07:00\n  prompt: p\n"
        "- id: old\n  schedule: at 2020-01-01 10:00\n  prompt: p\n",
    )
    apply_tasks_file(scheduler, tasks)
    morning = scheduler.get_task("morning").definition
    assert morning is not None
    assert (morning.cron_expression, morning.timezone) == ("0 7 * * *", "Europe/Paris")
    old = scheduler.get_task("old").definition
    assert old is not None and old.run_at is not None
    assert old.run_at.isoformat() == "2020-01-01T10:00:00+01:00"


def test_problems_are_reported_with_line_entry_and_field(tmp_path: Path) -> None:
    tasks = write(
        tmp_path / "tasks.yaml",
        "- id: good\n  interval_seconds: 5\n  prompt: p\n"
        "- id: bad\n  interval_seconds: 5\n  prompt: p\n  timezone: Nowhere/City\n"
        "- just a string\n",
    )
    with pytest.raises(TasksFileError) as caught:
        load_tasks_file(tasks)
    problems = caught.value.problems
    assert problems[0].startswith(f"{tasks}:7: entry 2 (id 'bad'): timezone: unknown time zone")
    assert problems[1] == f"{tasks}:8: entry 3: expected a mapping of task fields"
    assert "2 problems in" in str(caught.value)


def test_an_unquoted_date_and_time_is_a_schedule_as_its_text_is(tmp_path: Path) -> None:
    """YAML reads ``schedule: 2030-03-15 14:00:00`` (and the README's ISO form, unquoted) as
    a timestamp, not text: it was refused, "schedule must be a string, got datetime"."""
    tasks = write(
        tmp_path / "tasks.yaml",
        "- id: wall\n  schedule: 2030-03-15 14:00:00\n  timezone: Europe/Berlin\n  prompt: p\n"
        "- id: offset\n  schedule: 2030-03-15T14:00:00+05:00\n  prompt: p\n"
        "- id: zulu\n  schedule: 2030-03-15T14:00:00.25Z\n  prompt: p\n",
    )
    wall, offset, zulu = load_tasks_file(tasks, timezone="America/New_York")
    assert wall.run_at is not None and wall.run_at.isoformat() == "2030-03-15T14:00:00+01:00"
    assert offset.run_at is not None and offset.run_at.isoformat() == "2030-03-15T14:00:00+05:00"
    assert zulu.run_at is not None and zulu.run_at.isoformat() == "2030-03-15T14:00:00.250000+00:00"
    date_alone = write(tmp_path / "date.yaml", "- id: d\n  schedule: 2030-03-15\n  prompt: p\n")
    with pytest.raises(TasksFileError) as caught:
        load_tasks_file(date_alone)
    [problem] = caught.value.problems
    assert "schedule '2030-03-15': a date alone is ambiguous; give a time" in problem


@pytest.mark.parametrize("run_at", ["2030-03-15", "'2030-03-15'", "' 2030-03-15 '"])
def test_a_run_at_of_a_date_alone_is_refused_as_a_schedule_of_one_is(
    run_at: str, tmp_path: Path
) -> None:
    """``run_at: 2030-03-15`` (a YAML date, or the text) was taken as midnight in the task's
    zone, while ``schedule: 2030-03-15`` is refused as ambiguous: the same refusal, naming
    the field; in Python and through the APIs too (a ``date``, the text)."""
    tasks = write(tmp_path / "tasks.yaml", f"- id: d\n  run_at: {run_at}\n  prompt: p\n")
    with pytest.raises(TasksFileError) as caught:
        load_tasks_file(tasks)
    [problem] = caught.value.problems
    assert "run_at '2030-03-15': a date alone is ambiguous; give a time, e.g." in problem
    for value in (date(2030, 3, 15), "2030-03-15"):
        with pytest.raises(ValidationError, match="run_at '2030-03-15': a date alone"):
            TaskDefinition(id="d", run_at=value, prompt="p")
    midnight = TaskDefinition(id="d", run_at="2030-03-15T00:00", prompt="p")  # said: kept
    assert midnight.run_at == datetime(2030, 3, 15)


def test_a_task_type_that_the_schedule_contradicts_is_a_problem(tmp_path: Path) -> None:
    """``task_type: cron`` with ``schedule: every 5 minutes`` became an interval task unseen
    (the schedule's type replaced it), while with ``interval_seconds: 300`` it is refused."""
    tasks = write(
        tmp_path / "tasks.yaml",
        "- id: a\n  task_type: cron\n  schedule: every 5 minutes\n  prompt: p\n"
        "- id: b\n  task_type: interval\n  schedule: every 5 minutes\n  prompt: p\n",
    )
    with pytest.raises(TasksFileError) as caught:
        load_tasks_file(tasks)
    assert caught.value.problems == [
        f"{tasks}:3: entry 1 (id 'a'): schedule 'every 5 minutes' makes task_type "
        "'interval', but task_type is 'cron'; leave task_type out, or make them agree"
    ]


@pytest.mark.parametrize(
    ("key", "meant"),
    [("schedul", "schedule"), ("Schedule", "schedule"), ("cron", "cron_expression"),
     ("runat", "run_at"), ("aftr", "after")],
)  # fmt: skip
def test_a_misspelt_schedule_key_is_named_with_the_one_meant(
    key: str, meant: str, tmp_path: Path
) -> None:
    """A misspelt schedule key left the entry with none: 'a schedule is required' stopped
    the validation before the unknown key's own error, so the key was never named."""
    tasks = write(tmp_path / "tasks.yaml", f"- id: a\n  prompt: p\n  {key}: hourly\n")
    with pytest.raises(TasksFileError) as caught:
        load_tasks_file(tasks)
    [problem] = caught.value.problems
    assert problem.endswith(f"; {key!r} is none of them (did you mean {meant!r}?)"), problem


def test_a_schedule_problem_has_the_line_and_name_of_its_field(tmp_path: Path) -> None:
    """A problem that the ``schedule:`` string (or a zone it is read in) makes was labelled
    ``task`` at the entry's first line, as if about the whole entry, while a bad
    ``cron_expression`` or ``timezone`` alone had its own line and name."""
    tasks = write(
        tmp_path / "tasks.yaml",
        "- id: a\n  prompt: p\n  schedule: 0 9 * * 1-9\n"
        "- id: b\n  prompt: p\n  schedule: daily\n  timezone: Mars/Base\n"
        "- id: c\n  prompt: p\n  cron_expression: 0 9 * * *\n  schedule: daily\n",
    )
    with pytest.raises(TasksFileError) as caught:
        load_tasks_file(tasks)
    assert caught.value.problems == [
        f"{tasks}:3: entry 1 (id 'a'): schedule '0 9 * * 1-9': invalid cron expression: "
        "day of week 9 is out of range 0-7",
        f"{tasks}:7: entry 2 (id 'b'): timezone: unknown time zone 'Mars/Base'; use an "
        "IANA name such as 'UTC' or 'Europe/Paris'",
        f"{tasks}:11: entry 3 (id 'c'): give either schedule or cron_expression, not both",
    ]


def test_problems_of_a_json_file_have_their_lines_too(tmp_path: Path) -> None:
    """The README promises each problem's line; a ``.json`` file's came without one."""
    tasks = write(
        tmp_path / "tasks.json",
        '{\n  "tasks": [\n    {"id": "good", "interval_seconds": 5, "prompt": "p"},\n'
        '    {\n      "id": "bad",\n      "prompt": "p",\n      "interval_seconds": 5,\n'
        '      "timezone": "Nowhere/City"\n    }\n  ]\n}\n',
    )
    with pytest.raises(TasksFileError) as caught:
        load_tasks_file(tasks)
    [problem] = caught.value.problems
    assert problem.startswith(f"{tasks}:8: entry 2 (id 'bad'): timezone: unknown time zone")


def test_empty_and_malformed_files(tmp_path: Path) -> None:
    assert load_tasks_file(write(tmp_path / "none.yaml", "# nothing yet\ntasks: []\n")) == []
    assert load_tasks_file(write(tmp_path / "none.json", "[]")) == []
    with pytest.raises(TasksFileError, match="not valid YAML/JSON"):
        load_tasks_file(write(tmp_path / "broken.yaml", "- id: [unclosed\n"))
    with pytest.raises(TasksFileError, match="expected a list of tasks"):
        load_tasks_file(write(tmp_path / "scalar.yaml", "42\n"))
    json_file = write(
        tmp_path / "tasks.json", '[{"id": "j", "interval_seconds": 5, "prompt": "p"}]'
    )
    assert [t.id for t in load_tasks_file(json_file)] == ["j"]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "holds nothing (empty, or only comments)"),
        ("  \n\n  \n", "holds nothing (empty, or only comments)"),
        ("# half-written by an editor\n", "holds nothing (empty, or only comments)"),
        ("---\n", "holds nothing (empty, or only comments)"),
        ("tasks:\n", "'tasks:' has no list"),
    ],
    ids=["0 bytes", "whitespace", "comments", "document marker", "tasks with nothing"],
)
async def test_an_empty_file_is_refused_and_keeps_its_tasks_until_it_says_tasks_empty(
    make_scheduler: SchedulerFactory, tmp_path: Path, text: str, says: str
) -> None:
    """An editor that truncates the file before writing it again, caught in between by a
    start or an apply: the file's tasks were all removed."""
    scheduler = make_scheduler()
    path = write(tmp_path / "tasks.yaml", GOOD_FILE)
    apply_tasks_file(scheduler, path)
    before = {t.id: t.definition for t in scheduler.list_tasks()}
    write(path, text)
    with pytest.raises(TasksFileError) as caught:
        apply_tasks_file(scheduler, path)
    [problem] = caught.value.problems
    assert problem == (
        f"{path}: {says}; an empty file is taken for one not written yet, and its tasks are "
        "kept: write 'tasks: []' to remove them all"
    )
    assert {t.id: t.definition for t in scheduler.list_tasks()} == before
    assert scheduler.notices()[0].message.endswith(
        "the tasks of its last good version are the ones that run"
    )
    for none in ("tasks: []\n", "[]\n"):
        write(path, "# no tasks\n" + none)
        assert sorted(apply_tasks_file(scheduler, path).removed) == ["a", "b"]
        assert scheduler.list_tasks() == []
        apply_tasks_file(scheduler, write(path, GOOD_FILE))


GOOD_FILE = (
    "- id: a\n  interval_seconds: 60\n  prompt: p\n"
    "- id: b\n  cron_expression: '0 9 * * *'\n  prompt: p\n"
)


async def test_applying_a_path_that_is_no_file_leaves_no_note(
    make_scheduler: SchedulerFactory, tmp_path: Path
) -> None:
    """``apply tasks.yml`` (a typo) left "tasks.yml was not applied (...): the tasks of its
    last good version are the ones that run" under every ``list``, for a file that never
    was, until a file of that name was applied."""
    scheduler = make_scheduler()
    for path in (tmp_path / "typo.yaml", tmp_path):
        with pytest.raises(TasksFileError, match="cannot read"):
            apply_tasks_file(scheduler, path)
    assert scheduler.notices() == []
    broken = write(tmp_path / "broken.yaml", "- id: [unclosed\n")
    with pytest.raises(TasksFileError):
        apply_tasks_file(scheduler, broken)
    [notice] = scheduler.notices()
    assert notice.source == f"file:{broken}"  # a file's problem; it never had a good version
    assert notice.message.endswith("): none of its tasks run")


async def test_a_deleted_file_takes_its_note_along_unless_tasks_of_it_run(
    make_scheduler: SchedulerFactory, tmp_path: Path
) -> None:
    """A file that never applied, then deleted, left "was not applied" under every ``list``
    with no way out but writing a file there again. Applying the missing path drops the note
    when no task came from the file; when some did, they are kept and the error says how to
    remove them (the note stays true: they are its last good version's)."""
    scheduler = make_scheduler()
    never = write(tmp_path / "never.yaml", "- id: x\n  prompt: p\n  schedule: every potato\n")
    kept = write(tmp_path / "kept.yaml", GOOD_FILE)
    apply_tasks_file(scheduler, kept)
    write(kept, "- id: a\n  prompt: p\n  interval_seconds: soon\n")
    for path in (never, kept):
        with pytest.raises(TasksFileError):
            apply_tasks_file(scheduler, path)
        path.unlink()
    assert len(scheduler.notices()) == 2
    with pytest.raises(TasksFileError) as caught:
        apply_tasks_file(scheduler, never)
    assert caught.value.problems == [f"{never}: cannot read: No such file or directory"]
    assert [n.source for n in scheduler.notices()] == [f"file:{kept}"]
    with pytest.raises(TasksFileError) as caught:
        apply_tasks_file(scheduler, kept)
    assert caught.value.problems == [
        f"{kept}: cannot read: No such file or directory; the 2 task(s) it added are kept "
        "('a', 'b'): to remove them, apply a file at this path that says 'tasks: []', or "
        "'remove' each"
    ]
    assert sorted(t.id for t in scheduler.list_tasks()) == ["a", "b"]
    assert [n.source for n in scheduler.notices()] == [f"file:{kept}"]
    scheduler.remove_task("a")
    scheduler.remove_task("b")
    with pytest.raises(TasksFileError, match=r"cannot read: No such file or directory$"):
        apply_tasks_file(scheduler, kept)
    assert scheduler.notices() == []


def test_a_file_that_is_not_utf8_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b'- id: a\n  interval_seconds: 60\n  prompt: "caf\xe9"\n')
    with pytest.raises(TasksFileError) as caught:
        load_tasks_file(latin1)
    assert caught.value.problems == [
        f"{latin1}: not UTF-8 text (byte 0xe9 on line 3); save it as UTF-8"
    ]


@pytest.mark.parametrize("character", ["\x00", "\x07", "\x1b", "\x7f", "\ufffe"])
def test_a_raw_control_character_is_a_problem_with_its_place_not_a_crash(
    tmp_path: Path, character: str
) -> None:
    """PyYAML's reader refuses such a character as it is made, before the loader's errors
    were caught: main.py, serve, validate and apply died with a traceback."""
    path = tmp_path / "tasks.yaml"
    path.write_text(f'- id: a\n  interval_seconds: 60\n  prompt: "hi{character}"\n')
    with pytest.raises(TasksFileError) as caught:
        load_tasks_file(path)
    [problem] = caught.value.problems
    code = f"U+{ord(character):04X}"
    assert problem.startswith(
        f"{path}: not valid YAML/JSON: line 3, column 14: the character {code}"
    )


def test_what_is_too_large_is_read_no_further_and_a_fifo_does_not_hang(tmp_path: Path) -> None:
    """The size bound was checked once the whole file was read (``/dev/zero`` filled the
    memory) and opening a FIFO with no writer waited for ever; a pipe is still read."""
    fifo = tmp_path / "tasks.yaml"
    os.mkfifo(fifo)
    big = tmp_path / "big.yaml"
    with big.open("w") as file:
        file.write("tasks: []\n")
        file.writelines("# " + "x" * 1000 + "\n" for _ in range(34_000))
    for path, said in (
        (fifo, "holds nothing"),
        (big, "is over 33,554,432 bytes"),
        (Path("/dev/zero"), "is over 33,554,432 bytes"),
    ):
        with pytest.raises(TasksFileError) as caught:
            load_tasks_file(path)
        assert said in caught.value.problems[0], caught.value.problems
    read, write_end = os.pipe()
    os.write(write_end, b"- id: a\n  interval_seconds: 60\n  prompt: p\n")
    os.close(write_end)
    try:
        assert [t.id for t in load_tasks_file(Path(f"/dev/fd/{read}"))] == ["a"]
    finally:
        os.close(read)


def test_a_json_file_with_a_byte_order_mark_is_read_as_a_yaml_one_is(tmp_path: Path) -> None:
    """Notepad saves UTF-8 with a BOM: a ``.json`` tasks file was refused for it ("not valid
    JSON: Unexpected UTF-8 BOM"), while ``add --file`` and a YAML file read it."""
    entry = b'[{"id": "a", "interval_seconds": 60, "prompt": "p"}]\r\n'
    for name in ("tasks.json", "tasks.yaml"):
        marked = tmp_path / name
        marked.write_bytes(b"\xef\xbb\xbf" + entry)
        assert [t.id for t in load_tasks_file(marked)] == ["a"]


def test_a_key_given_twice_is_a_problem_and_yaml_errors_are_one_line(tmp_path: Path) -> None:
    twice = write(
        tmp_path / "twice.yaml",
        "- id: a\n  interval_seconds: 60\n  prompt: p\n  interval_seconds: 5\n",
    )
    with pytest.raises(TasksFileError) as caught:
        load_tasks_file(twice)
    [problem] = caught.value.problems
    assert "the key 'interval_seconds' is given twice (line 4, column 3)" in problem, problem
    twice_json = write(  # (json.loads kept the last one, unseen)
        tmp_path / "twice.json",
        '[{"id": "a", "interval_seconds": 60, "prompt": "p", "interval_seconds": 5}]',
    )
    with pytest.raises(TasksFileError) as caught:
        load_tasks_file(twice_json)
    assert caught.value.problems == [
        f"{twice_json}: not valid JSON: the key 'interval_seconds' is given twice"
    ]
    broken = write(tmp_path / "broken.yaml", "- id: a\n  prompt: [unclosed\n")
    with pytest.raises(TasksFileError) as caught:
        load_tasks_file(broken)
    [problem] = caught.value.problems
    assert "\n" not in problem and "(line 3, column 1)" in problem, problem
    merged = write(  # a key merged in with << may be overridden: that is what << is for
        tmp_path / "merged.yaml",
        "- &base\n  id: a\n  interval_seconds: 60\n  prompt: p\n"
        "- <<: *base\n  id: b\n  interval_seconds: 5\n",
    )
    assert [(t.id, t.interval_seconds) for t in load_tasks_file(merged)] == [("a", 60), ("b", 5)]


async def test_api_tasks_are_never_touched(
    make_scheduler: SchedulerFactory, tmp_path: Path
) -> None:
    scheduler = make_scheduler()
    scheduler.add_task(TaskDefinition(id="mine", interval_seconds=60, prompt="api"))
    tasks = write(tmp_path / "tasks.yaml", "- id: theirs\n  interval_seconds: 60\n  prompt: f\n")
    apply_tasks_file(scheduler, tasks)
    write(tasks, "[]\n")
    assert apply_tasks_file(scheduler, tasks).removed == ["theirs"]
    assert [t.id for t in scheduler.list_tasks()] == ["mine"]


def test_a_task_of_the_file_is_not_taken_over_by_add_task(
    make_scheduler: SchedulerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``add_task`` with the id of a task the file defines was a silent takeover (its source
    became ``api``), and the file then failed at every apply (an id of another source)."""
    from scheduler.exceptions import TaskSourceConflictError

    monkeypatch.chdir(tmp_path)  # the project's tasks.yaml
    scheduler = make_scheduler()
    path = tmp_path / "tasks.yaml"
    path.write_text("- id: report\n  interval_seconds: 60\n  prompt: from the file\n")
    apply_tasks_file(scheduler, path)
    with pytest.raises(TaskSourceConflictError, match=r"'report' \(file:tasks\.yaml\)"):
        scheduler.add_task(TaskDefinition(id="report", interval_seconds=30, prompt="mine"))
    [task] = scheduler.list_tasks()
    assert task.source == "file:tasks.yaml" and task.definition is not None
    assert task.definition.prompt == "from the file"
    assert apply_tasks_file(scheduler, path).unchanged == ["report"]
    # an edit keeps its source (and the next apply puts the file's definition back)
    scheduler.edit_task("report", lambda t: t.model_copy(update={"prompt": "edited"}))
    assert apply_tasks_file(scheduler, path).updated == ["report"]


async def test_files_with_the_same_name_keep_their_own_tasks(
    make_scheduler: SchedulerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source was the file's name alone: applying ``other/tasks.yaml`` removed the
    tasks of the project's ``tasks.yaml``. A source is the path in the project now."""
    monkeypatch.chdir(tmp_path)
    scheduler = make_scheduler()
    main = write(tmp_path / "tasks.yaml", "- id: a\n  interval_seconds: 60\n  prompt: a\n")
    (tmp_path / "other").mkdir()
    other = write(
        tmp_path / "other" / "tasks.yaml", "- id: b\n  interval_seconds: 60\n  prompt: b\n"
    )
    assert apply_tasks_file(scheduler, main).added == ["a"]
    report = apply_tasks_file(scheduler, Path("other/tasks.yaml"))
    assert (report.added, report.removed) == (["b"], [])
    sources = {t.id: t.source for t in scheduler.list_tasks()}
    assert sources == {"a": "file:tasks.yaml", "b": "file:other/tasks.yaml"}
    assert [t.id for t in scheduler.list_tasks(source="file:tasks.yaml")] == ["a"]
    assert apply_tasks_file(scheduler, main).unchanged == ["a"]  # (and b stays)
    assert apply_tasks_file(scheduler, tmp_path / "tasks.yaml").unchanged == ["a"]
    # an id belongs to one file: the other one's entry is refused, naming the owner
    write(other, "- id: a\n  interval_seconds: 5\n  prompt: mine\n")
    with pytest.raises(TasksFileError) as caught:
        apply_tasks_file(scheduler, other)
    [problem] = caught.value.problems
    assert "task 'a' already exists and belongs to the tasks file tasks.yaml" in problem
    assert {t.id for t in scheduler.list_tasks()} == {"a", "b"}
    # gone from the file that had it: the other one takes it (and removes its own b)
    write(main, "[]\n")
    report = apply_tasks_file(scheduler, other)
    assert (report.updated, report.removed) == (["a"], ["b"])
    assert scheduler.get_task("a").source == "file:other/tasks.yaml"


async def test_a_database_of_an_older_version_applies_cleanly(
    make_scheduler: SchedulerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Older versions recorded ``file:tasks.yaml`` for every file named tasks.yaml (here
    with ``removed=keep``: both files' tasks under it). After the upgrade each file adopts
    its own tasks, paused state kept: no conflict, nothing duplicated or lost."""
    monkeypatch.chdir(tmp_path)
    scheduler = make_scheduler()
    old = [
        TaskDefinition(id="a", interval_seconds=60, prompt="a"),
        TaskDefinition(id="b", interval_seconds=60, prompt="b"),
        TaskDefinition(id="c", interval_seconds=60, prompt="c"),
    ]
    scheduler.sync_tasks(old, source="file:tasks.yaml")
    scheduler.pause_task("b")
    scheduler.note_problem("file:tasks.yaml", "conf/tasks.yaml was not applied")
    (tmp_path / "conf").mkdir()
    other = write(
        tmp_path / "conf" / "tasks.yaml",
        "- id: b\n  interval_seconds: 60\n  prompt: b\n"
        "- id: c\n  interval_seconds: 60\n  prompt: c\n",
    )
    report = apply_tasks_file(scheduler, other)
    assert (report.added, report.updated, report.removed) == ([], ["b", "c"], [])
    assert scheduler.notices() == []  # its old note went with its old source
    write(tmp_path / "tasks.yaml", "- id: a\n  interval_seconds: 60\n  prompt: a\n")
    report = apply_tasks_file(scheduler, tmp_path / "tasks.yaml")
    assert (report.added, report.unchanged, report.removed) == ([], ["a"], [])
    tasks = {t.id: t for t in scheduler.list_tasks()}
    assert {i: t.source for i, t in tasks.items()} == {
        "a": "file:tasks.yaml",
        "b": "file:conf/tasks.yaml",
        "c": "file:conf/tasks.yaml",
    }
    assert tasks["b"].state is TaskState.PAUSED
    # a file moved: the new path adopts its tasks (the old one is not there)
    moved = tmp_path / "settings" / "tasks.yaml"
    moved.parent.mkdir()
    other.rename(moved)
    report = apply_tasks_file(scheduler, moved)
    assert (report.added, report.updated, report.removed) == ([], ["b", "c"], [])
    assert scheduler.get_task("b").source == "file:settings/tasks.yaml"
    assert scheduler.get_task("b").state is TaskState.PAUSED
    write(moved, "- id: b\n  interval_seconds: 60\n  prompt: b\n")  # the tasks are its own
    assert apply_tasks_file(scheduler, moved).removed == ["c"]
    assert {t.id for t in scheduler.list_tasks()} == {"a", "b"}


def test_thousands_of_entries_that_merge_shared_values_are_read(tmp_path: Path) -> None:
    """The README's way to share values, an anchor on one entry merged into the others
    (``<<: *defaults``), was refused past about 1,100 entries: the aliases' budget was 10,000
    nodes whatever the document's size. It now grows with the document (one node per
    character: no more than it could have written out), and a "billion laughs" padded to
    a large document is still refused at once."""
    from scheduler.documents import DocumentError, load_yaml

    shared = (
        "- &defaults\n  id: t-0\n  interval_seconds: 3600\n  timezone: Europe/Berlin\n"
        "  max_retries: 2\n  metadata: {team: data, owner: ops, tier: gold}\n  prompt: p 0\n"
    )
    entries = "".join(f"- <<: *defaults\n  id: t-{i}\n  prompt: p {i}\n" for i in range(1, 3000))
    tasks = load_tasks_file(write(tmp_path / "tasks.yaml", shared + entries))
    assert len(tasks) == 3000
    last = tasks[-1]
    assert (last.id, last.prompt, last.interval_seconds, last.max_retries) == (
        "t-2999",
        "p 2999",
        3600,
        2,
    )
    assert last.metadata == {"team": "data", "owner": "ops", "tier": "gold"}
    laughs = "\n".join(
        ["x:", "  l0: &l0 [lol, lol]"]
        + [f"  l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 10)]
    )
    padded = f"# {'.' * 1_000_000}\n{laughs}\n"
    with pytest.raises(DocumentError, match="aliases expand to more than 1,000,"):
        load_yaml(padded)


def test_a_time_written_bare_is_text_not_a_sexagesimal_number(tmp_path: Path) -> None:
    """YAML 1.1 (PyYAML) reads ``9:00`` as 540 and ``1:30`` as 90: ``schedule: 9:00`` was
    refused as "schedule must be a string, got int", and ``interval_seconds: 1:30`` was
    taken as 90 seconds without a word (an hour and a half may have been meant). They are
    text now, as in YAML 1.2 and JSON: each a problem that shows the value as written."""
    tasks = write(
        tmp_path / "tasks.yaml",
        "- id: a\n  schedule: 9:00\n  prompt: p\n"
        "- id: b\n  interval_seconds: 1:30\n  prompt: p\n"
        "- id: c\n  schedule: every day at 9:00\n  prompt: p\n  metadata: {at: 12:30}\n"
        "- id: d\n  interval_seconds: 60\n  jitter_seconds: 1:00\n  prompt: p\n",
    )
    with pytest.raises(TasksFileError) as caught:
        load_tasks_file(tasks)
    first, second, third = caught.value.problems
    assert "schedule '9:00': not a schedule this parser understands" in first
    assert second.endswith("interval_seconds: must be a number, got text '1:30'"), second
    assert third.endswith("jitter_seconds: Input should be a valid number, got '1:00'"), third
    kept = write(
        tmp_path / "kept.yaml", "- id: c\n  schedule: daily\n  prompt: p\n  metadata: {at: 12:30}\n"
    )
    [task] = load_tasks_file(kept)
    assert task.metadata == {"at": "12:30"}
