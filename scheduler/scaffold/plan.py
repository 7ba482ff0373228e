"""``python -m scheduler scaffold PROJECT_DIR``: add the scheduler to a LangGraph project.

It finds the project's graph (:mod:`scheduler.projects`), copies this ``scheduler``
package beside the graph's package (or to the root), adds the dependencies to the
project's manifest (:mod:`scheduler.manifests`), wires ``main.py``, writes ``tasks.yaml``
and a section of ``.env.example`` (:mod:`scheduler.wiring`). It plans every change first
and writes only if the whole plan holds (:mod:`scheduler.changes`), so a refusal writes
nothing, a file the user changed since it was scaffolded is kept unless ``--force``, and
running it twice with the same options changes nothing the second time.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from scheduler.exceptions import ScaffoldError
from scheduler.loader import default_graph_target
from scheduler.scaffold.changes import ChangeSet, read_text
from scheduler.scaffold.manifests import (
    PACKAGE,
    SOURCE,
    ManifestEdit,
    is_installable,
    plan_manifest,
    requirements,
)
from scheduler.scaffold.options import TASK_EXAMPLE, parse_tasks
from scheduler.scaffold.outcome import apply_tasks, next_command, print_plan
from scheduler.scaffold.projects import (
    NOT_FOUND,
    GraphLocation,
    GraphShape,
    find_graph,
    inspect_graph,
)
from scheduler.scaffold.task_checks import check_tasks
from scheduler.scaffold.tools_wiring import find_tools_list, tools_block, with_tools_block
from scheduler.scaffold.wiring import (
    TASKS,
    dotenv_block,
    env_section,
    find_block,
    keeps_running,
    main_block,
    main_module,
    place_main_block,
    tasks_file_name,
    tasks_yaml,
)
from scheduler.zones import zone_or_none

__all__ = ["add_scaffold_arguments", "run_scaffold"]


def add_scaffold_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the scaffold command's arguments to ``parser``."""
    parser.add_argument("project_dir", metavar="PROJECT_DIR", help="the LangGraph project")
    parser.add_argument(
        "--graph", metavar="NAME", help="which graph of langgraph.json (when it has several)"
    )
    parser.add_argument(
        "--task",
        metavar="JSON",
        action="append",
        default=[],
        help=f"an initial task for tasks.yaml, as JSON (repeatable), e.g. '{TASK_EXAMPLE}'; "
        'use "input": {...} instead of "prompt" for graphs without messages, and '
        '"context": {...} for a context_schema. Without it: one example task that fits',
    )
    parser.add_argument(
        "--no-persist",
        action="store_true",
        help="keep tasks and runs in memory (gone at restart) instead of scheduler.db",
    )
    parser.add_argument("--timezone", metavar="ZONE", help="default IANA zone of schedules")
    parser.add_argument(
        "--agent-tools",
        action="store_true",
        help="give the agent the scheduling tools (schedule_task, list_scheduled_tasks, ...): "
        "a marked block after its module-level tools list (TOOLS = [...])",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the plan and a diff; write nothing"
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite files changed since they were scaffolded"
    )


@dataclass
class Plan:
    """Everything one run would do: what was found, and the changes."""

    project: Path
    location: GraphLocation
    target: str
    shape: GraphShape
    manifest: ManifestEdit
    package_dir: str
    changes: ChangeSet
    notes: list[str] = field(default_factory=list)
    zone: str | None = None  # --timezone
    run: str = "main.py"  # what python runs to run the scheduler
    tasks_file: str = TASKS  # the scheduler's tasks file, in the project


class _Planner:
    """Builds a :class:`Plan`: reads the project, writes nothing."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.project = Path(args.project_dir).expanduser().resolve()
        if not self.project.is_dir():
            raise ScaffoldError(f"{self.project} is not a directory", NOT_FOUND)
        self.zone: str | None = args.timezone
        if self.zone is not None and zone_or_none(self.zone) is None:
            raise ScaffoldError(f"--timezone {self.zone!r}: not an IANA time zone")
        self.tasks = parse_tasks(args.task, self.zone or "UTC")
        self.changes = ChangeSet(self.project, force=args.force)
        self.target = ""
        scaffolded = self.changes.scaffolded(TASKS)
        self.tasks_file = tasks_file_name(self.project, self.changes.tasks_file, scaffolded)

    def rel(self, path: Path) -> str:
        """``path`` relative to the project, in POSIX form."""
        return path.relative_to(self.project).as_posix()

    def build(self) -> Plan:
        location = find_graph(self.project, self.args.graph)
        if not location.file.is_relative_to(self.project):
            raise ScaffoldError(f"graph {location.name!r} is outside {self.project}")
        if location.import_root == self.project or (
            location.in_package and is_installable(self.project)
        ):  # importable as a module where main.py runs (the project installed)
            parent, self.target = location.import_root, f"{location.module}:{location.attribute}"
        else:
            parent = self.project
            self.target = f"{self.rel(location.file)}:{location.attribute}"
        package = parent / PACKAGE
        self.check_package(package, location)
        shape = inspect_graph(self.project, location)
        inside = None if parent == self.project else self.rel(package)
        manifest = plan_manifest(self.project, self.requirements(), inside)
        package_dir = f"{self.rel(package)}/"
        plan = Plan(self.project, location, self.target, shape, manifest, package_dir,
                    self.changes, zone=self.zone, tasks_file=self.tasks_file)  # fmt: skip
        plan.notes += manifest.notes
        if shape.problem is not None:
            plan.notes.append(f"could not import the graph here ({shape.problem})")
        check_tasks(self.tasks, plan)
        self.plan_package(plan, package)
        self.changes.change(manifest.path, manifest.old, manifest.new, manifest.summary())
        self.plan_main(plan)
        self.plan_tasks(plan)
        self.plan_env()
        self.plan_dotenv(location)
        self.plan_gitignore()
        if self.args.agent_tools:
            self.plan_tools(location)
        about = {"graph": self.target, "package": plan.package_dir}
        if self.tasks_file != TASKS:
            about["tasks_file"] = self.tasks_file
        self.changes.close({**about, "example": self.changes.example})
        return plan

    def requirements(self) -> list[str]:
        """The scheduler's requirements; none to add when this is the project's own copy
        of the package (scaffolded before) and the distribution is not installed."""
        try:
            return requirements()
        except ScaffoldError:
            if SOURCE.is_relative_to(self.project):
                return []
            raise

    def check_package(self, package: Path, location: GraphLocation) -> None:
        """Refuse a project that has a ``scheduler`` package or module of its own."""
        for where in {package.parent, self.project, location.import_root}:
            module, directory = where / f"{PACKAGE}.py", where / PACKAGE
            if module.is_file():
                raise ScaffoldError(
                    f"{self.rel(module)}: the project has a module of its own named {PACKAGE}; "
                    "rename it first (nothing was written)"
                )
            if directory.is_dir() and not self.ours(directory):
                raise ScaffoldError(
                    f"{self.rel(directory)}/: the project has a package of its own named "
                    f"{PACKAGE}; rename it first (nothing was written)"
                )

    def ours(self, directory: Path) -> bool:
        """``directory`` was scaffolded, or holds only copies of this package's files (a
        directory of other files, such as ``scheduler/cronjob.yaml``, is the project's)."""
        prefix = self.rel(directory) + "/"
        if any(name.startswith(prefix) for name in self.changes.files):
            return True
        return all(
            (SOURCE / path.relative_to(directory)).is_file()
            and (SOURCE / path.relative_to(directory)).read_bytes() == path.read_bytes()
            for path in directory.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        )

    def plan_package(self, plan: Plan, package: Path) -> None:
        """Copy this package's files to ``package``; drop the ones it no longer has."""
        if package.resolve() == SOURCE:
            return  # scaffolding into the scheduler's own source: nothing to copy
        wanted = set()
        for source in _package_files(SOURCE):
            rel = self.rel(package / source.relative_to(SOURCE))
            wanted.add(rel)
            self.changes.whole(rel, read_text(source) or "", copied=True)
        self.changes.remove_stale(plan.package_dir, wanted)

    def defaults(self) -> dict[str, str]:
        """Settings written into main.py and .env.example."""
        values = {"graph": self.target}
        if self.args.no_persist:
            values["database_url"] = "sqlite://"
        if self.zone is not None:
            values["timezone"] = self.zone
        if self.tasks_file != TASKS:
            values["tasks_file"] = self.tasks_file
        return values

    def plan_main(self, plan: Plan) -> None:
        """Create main.py, or add the marked block to the project's own (when its program
        keeps running; else the scheduler runs on its own: ``python -m scheduler serve``)."""
        module = main_module(self.defaults())
        old = read_text(self.project / "main.py")
        if old is None or old == module or self.changes.scaffolded("main.py"):
            self.changes.whole("main.py", module, note="runs the scheduler (python main.py)")
            return
        if not find_block(old) and not keeps_running(old):
            memory = "--database-url sqlite:// " if self.args.no_persist else ""
            plan.run = f"-m scheduler {memory}serve"
            plan.notes.append(
                "main.py has no loop or server of its own (a script that ends, or an app that a "
                "server imports), so a scheduler started in it would not fire: left as it is; "
                f"the scheduler runs on its own, beside it: python {plan.run}"
            )
            return
        block = main_block(self.defaults(), "\r\n" if "\r\n" in old else "\n")
        added = old if find_block(old) else place_main_block(old, block, self.project / "main.py")
        note = "a marked block starts the scheduler beside the existing program"
        self.changes.block("main.py", old, block, added, note)

    def plan_tasks(self, plan: Plan) -> None:
        """The tasks file from --task, or an example task when there is no file yet."""
        name = self.tasks_file
        uses_messages = plan.shape.uses_messages
        other_graph = self.changes.graph not in (None, self.target)  # a run with another --graph
        if self.tasks:
            text = tasks_yaml(self.tasks, uses_messages=uses_messages, example=False, name=name)
            ids = ", ".join(task["id"] for task in self.tasks)
            self.changes.whole(name, text, note=f"tasks: {ids}")
            self.changes.example = False
        elif not (self.project / name).exists() or (
            other_graph and self.changes.example and self.changes.unchanged(name)
        ):  # none yet, or the example of another graph (its input would not fit)
            example = plan.shape.example_task()
            text = tasks_yaml([example], uses_messages=uses_messages, example=True, name=name)
            note = f"an example task that fits the graph: {example['id']}"
            self.changes.whole(name, text, note=note)
            self.changes.example = True
        elif other_graph:
            plan.notes.append(
                f"{name} holds tasks for the input of {self.changes.graph}: check that "
                f"they fit the input of {self.target}"
            )
        elif not self.changes.scaffolded(name):
            plan.notes.append(f"{name} exists and was not scaffolded: left as it is")
        if name != TASKS:
            plan.notes.append(
                f"{TASKS} is not a tasks file of the scheduler (another program's?): left as it "
                f"is; the scheduler's tasks are in {name} (SCHEDULER_TASKS_FILE)"
            )

    def plan_tools(self, location: GraphLocation) -> None:
        """The block that adds the scheduling tools to the agent's tools list."""
        found = find_tools_list(location.file, location.import_root)
        rel = self.rel(found.file)
        old = read_text(found.file) or ""
        block = tools_block(found.name, "\r\n" if "\r\n" in old else "\n")
        added = old if find_block(old) else with_tools_block(old, found, block)
        self.changes.block(
            rel, old, block, added, f"the agent's {found.name} get the scheduling tools"
        )

    def plan_dotenv(self, location: GraphLocation) -> None:
        """A block in ``.env`` for the CLI (it reads ``.env``, not main.py's defaults): the
        graph, when the CLI would not find it by itself (``graph.py``, the only graph of
        ``langgraph.json``), and the zone of ``--timezone``."""
        found = default_graph_target(self.project)  # what the CLI loads without a setting
        path, _, attribute = found.rpartition(":")
        file = self.project / "graph.py" if found == "graph:graph" else Path(path)
        same = (file.resolve(), attribute) == (location.file.resolve(), location.attribute)
        chosen = {"timezone": self.zone} if self.zone else {}
        if self.tasks_file != TASKS:  # (serve, run beside a main.py that ends, reads .env)
            chosen["tasks_file"] = self.tasks_file
        if not chosen and same and ".env" not in self.changes.blocks:
            return  # (a block written before is brought up to date: no zone any more)
        values = {"graph": self.target, **chosen}
        old = read_text(self.project / ".env")
        newline = "\r\n" if old and "\r\n" in old else "\n"
        block = dotenv_block(values, newline)
        added = (old.rstrip("\r\n") + newline * 2 if old and old.strip() else "") + block
        self.changes.block(".env", old, block, added, "the graph (and zone), for the CLI too")

    def plan_gitignore(self) -> None:
        """``.gitignore`` gets ``scheduler.db*`` (the database and its WAL files), once."""
        old = read_text(self.project / ".gitignore")
        lines = (old or "").splitlines()
        if any(line.strip() in ("scheduler.db*", "*.db", "scheduler.db") for line in lines):
            return
        newline = "\r\n" if old and "\r\n" in old else "\n"
        entry = f"# the scheduler's database (python -m scheduler scaffold){newline}scheduler.db*"
        new = (old.rstrip("\r\n") + newline * 2 if old and old.strip() else "") + entry + newline
        self.changes.change(".gitignore", old, new, "ignore the scheduler's database")

    def plan_env(self) -> None:
        """The scheduler's section of .env.example (variables set elsewhere in it left out)."""
        old = read_text(self.project / ".env.example")
        span = find_block(old) if old else None
        outside = old[: span[0]] + old[span[1] :] if old and span else (old or "")
        skip = re.findall(r"^\s*(SCHEDULER_\w+)\s*=", outside, re.MULTILINE)
        newline = "\r\n" if old and "\r\n" in old else "\n"
        section = env_section(self.defaults(), skip, newline)
        if not old or not old.strip():
            added = section
        else:
            added = old if span else old.rstrip("\r\n") + newline * 2 + section
        self.changes.block(".env.example", old, section, added, "the scheduler's settings")


def _package_files(directory: Path) -> list[Path]:
    """The files of a package directory worth copying: modules, ``py.typed`` and the
    dashboard's templates; not the scaffolder itself (a scaffolded project runs the
    scheduler, it does not scaffold)."""
    return sorted(
        path
        for path in directory.rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and path.relative_to(directory).parts[0] != "scaffold"
        and (
            path.suffix in (".py", ".pyi")
            or path.name == "py.typed"
            or (path.suffix == ".html" and path.parent.name == "templates")
        )
    )


def run_scaffold(args: argparse.Namespace) -> int:
    """Run the scaffold command.

    Returns:
        0 when done (or nothing to do), 1 when something is not found (no graph), 2 on bad
        input or a refusal. Errors go to stderr as one ``error:`` line; nothing is written.
    """
    try:
        plan = _Planner(args).build()
        if plan.changes.conflicts:
            raise ScaffoldError(
                "not overwriting " + ", ".join(plan.changes.conflicts) + "; rerun with "
                "--force to overwrite (nothing was written)"
            )
    except ScaffoldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.status
    if not plan.changes.changes:
        print(f"Nothing to change: the scheduler is already scaffolded into {plan.project}.")
        print(f"next: {next_command(plan)}")
        return 0
    print_plan(plan, dry_run=args.dry_run)
    if args.dry_run:
        print("dry run: nothing was written. The changes (package files not shown):")
        for change in plan.changes.changes:
            if not change.copied:
                sys.stdout.writelines(change.diff())
        return 0
    try:
        plan.changes.write()
    except OSError as exc:
        print(
            f"error: cannot write {exc.filename}: {exc.strerror}; nothing was written",
            file=sys.stderr,
        )
        return NOT_FOUND
    print(f"done: {len(plan.changes.changes)} file(s) written.")
    print(apply_tasks(plan, persist=not args.no_persist))
    print(f"next: {next_command(plan)}")
    return 0
