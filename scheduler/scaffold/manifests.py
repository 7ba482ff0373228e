"""The project's own dependency manifest, as the scaffolder edits it.

The scheduler's runtime dependencies (read from this package's distribution metadata) go
where the project keeps its own: ``[project].dependencies`` of ``pyproject.toml``,
Poetry's ``[tool.poetry.dependencies]`` table, or ``requirements.txt``. Requirements the
project already lists (by name, whatever the version) are left as they are, and the rest
of the file keeps its formatting. When the scheduler package goes beside the graph's
package in a src layout, the build configuration is told to include it too.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Literal

from scheduler.exceptions import ScaffoldError
from scheduler.scaffold.changes import read_text
from scheduler.scaffold.discovery import flat_packages, found_by_itself, names_its_packages
from scheduler.scaffold.projects import NOT_FOUND
from scheduler.scaffold.tomltext import TomlText, TomlTextError, toml_key, toml_string
from scheduler.scaffold.versions import canonical, clashes

__all__ = ["DISTRIBUTION", "ManifestEdit", "is_installable", "plan_manifest", "requirements"]

DISTRIBUTION = "langgraph-task-scheduler"
PACKAGE = "scheduler"
SOURCE = Path(__file__).resolve().parent.parent  # the scheduler package, copied
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_REQUIREMENT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?P<extras>\[[^\]]*\])?\s*"
    r"\(?(?P<spec>[^;()]*)\)?\s*(?:;\s*(?P<marker>.*))?$"
)
Kind = Literal["pyproject", "poetry", "requirements"]


def requirements() -> list[str]:
    """The scheduler's runtime requirements (extras left out), from the installed
    distribution's metadata, or from ``pyproject.toml`` beside a source checkout.

    Raises:
        ScaffoldError: Neither is there.
    """
    try:
        listed = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        source = Path(__file__).resolve().parents[2] / "pyproject.toml"
        try:
            project = tomllib.loads(source.read_text(encoding="utf-8")).get("project", {})
        except (OSError, tomllib.TOMLDecodeError):
            project = {}
        if project.get("name") != DISTRIBUTION:
            raise ScaffoldError(
                f"cannot find the dependencies of {DISTRIBUTION}: run the scaffolder with a "
                "Python where it is installed (pip install -e <its repository>)",
                NOT_FOUND,
            ) from None
        listed = list(project.get("dependencies", []))
    kept = []
    for line in listed:
        marker = line.partition(";")[2]
        if not re.search(r"\bextra\s*==", marker):
            kept.append(line.strip())
    return kept


def _poetry_value(requirement: str) -> str:
    """A PEP 508 requirement as the value of a Poetry dependency."""
    match = _REQUIREMENT.match(requirement)
    if match is None:
        return toml_string("*")
    spec = match["spec"].strip() or "*"
    extras = [e.strip() for e in (match["extras"] or "").strip("[]").split(",") if e.strip()]
    if not extras and not match["marker"]:
        return toml_string(spec)
    parts = [f"version = {toml_string(spec)}"]
    if extras:
        parts.append(f"extras = [{', '.join(toml_string(e) for e in extras)}]")
    if match["marker"]:
        parts.append(f"markers = {toml_string(match['marker'].strip())}")
    return "{ " + ", ".join(parts) + " }"


def _requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement)
    return canonical(match[1]) if match else requirement


@dataclass
class ManifestEdit:
    """What the scaffolder does to the manifest.

    Attributes:
        path: The manifest's name in the project (``pyproject.toml``, ``requirements.txt``).
        kind: Where the dependencies go.
        old: Its text now (``None``: it does not exist yet).
        new: Its text afterwards.
        added: Names of the requirements added.
        included: The build configuration now includes the scheduler package.
        notes: Things the user must check by hand.
    """

    path: str
    kind: Kind
    old: str | None
    new: str
    added: list[str] = field(default_factory=list)
    included: bool = False
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """What changes, for people: ``dependencies: +apscheduler, ...; build: +...``."""
        parts = []
        if self.added:
            parts.append("dependencies: " + ", ".join(f"+{name}" for name in self.added))
        if self.included:
            parts.append(f"build: +{PACKAGE} package")
        return "; ".join(parts)


def _read_pyproject(project: Path) -> tuple[str, dict[str, Any]] | None:
    path = project / "pyproject.toml"
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScaffoldError(f"{path}: not valid TOML: {exc}") from None


def _kind(data: dict[str, Any] | None) -> Kind:
    if data is None:
        return "requirements"
    project = data.get("project")
    if isinstance(project, dict) and "dependencies" not in project.get("dynamic", []):
        return "pyproject"
    if isinstance(data.get("tool", {}).get("poetry"), dict):
        return "poetry"
    return "requirements"


def is_installable(project: Path) -> bool:
    """The project has a ``pyproject.toml`` that ``pip install`` builds (a ``[project]``
    or Poetry table)."""
    found = _read_pyproject(project)
    return found is not None and _kind(found[1]) != "requirements"


def _requirement_lines(text: str) -> list[str]:
    """The requirements of a ``requirements.txt`` (not options, URLs or comments)."""
    found = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith(("#", "-")) and "://" not in line:
            found.append(line)
    return found


def _add_requirements_txt(text: str | None, wanted: list[str]) -> tuple[str, list[str]]:
    text = text or ""
    present = {_requirement_name(line) for line in _requirement_lines(text)}
    missing = [req for req in wanted if _requirement_name(req) not in present]
    if not missing:
        return text, []
    nl = "\r\n" if "\r\n" in text else "\n"
    if text and not text.endswith("\n"):
        text += nl
    block = f"# the task scheduler (added by python -m scheduler scaffold){nl}"
    block += "".join(f"{req}{nl}" for req in missing)
    return text + (nl if text.strip() else "") + block, [_name_of(req) for req in missing]


def _name_of(requirement: str) -> str:
    match = _NAME.match(requirement)
    return match[1] if match else requirement


def _add_pyproject(text: str, data: dict[str, Any], wanted: list[str]) -> tuple[str, list[str]]:
    deps = data["project"].get("dependencies", [])
    present = {_requirement_name(req) for req in deps}
    missing = [req for req in wanted if _requirement_name(req) not in present]
    if not missing:
        return text, []
    doc = TomlText(text)
    entry = doc.entry("project", "dependencies")
    values = [toml_string(req) for req in missing]
    if entry is None:
        nl = doc.newline
        array = "[" + nl + "".join(f"    {value},{nl}" for value in values) + "]"
        text = doc.add_key(("project",), "dependencies", array)
    else:
        text = doc.append_items(entry, values)
    return text, [_name_of(req) for req in missing]


def _add_poetry(text: str, data: dict[str, Any], wanted: list[str]) -> tuple[str, list[str]]:
    present = {canonical(name) for name in data["tool"]["poetry"].get("dependencies", {})}
    missing = [req for req in wanted if _requirement_name(req) not in present]
    for req in missing:
        text = TomlText(text).add_key(
            ("tool", "poetry", "dependencies"), toml_key(_name_of(req)), _poetry_value(req)
        )
    return text, [_name_of(req) for req in missing]


def _include(
    text: str, data: dict[str, Any], package_dir: str, project: Path
) -> tuple[str, bool, list[str]]:
    """Make the build include the package at ``package_dir`` (``src/scheduler``)."""
    parent = package_dir.rpartition("/")[0]
    tool = data.get("tool", {})
    backend = data.get("build-system", {}).get("build-backend", "setuptools")
    doc = TomlText(text)
    manual = [f"make sure the project's build includes {package_dir} (imported as {PACKAGE})"]
    if "poetry" in backend:
        packages = tool.get("poetry", {}).get("packages")
        entry = doc.entry("tool", "poetry", "packages")
        if packages is None and (own := found_by_itself(project, data, parent)):
            source = f", from = {toml_string(parent)}" if parent else ""
            value = ", ".join(f"{{ include = {toml_string(n)}{source} }}" for n in (own, PACKAGE))
            return doc.add_key(("tool", "poetry"), "packages", f"[{value}]"), True, []
        if not isinstance(packages, list) or entry is None:
            return text, False, manual
        if any(isinstance(p, dict) and p.get("include") == PACKAGE for p in packages):
            return text, False, []
        source = f", from = {toml_string(parent)}" if parent else ""
        return (
            doc.append_items(entry, [f"{{ include = {toml_string(PACKAGE)}{source} }}"]),
            True,
            [],
        )
    if "hatchling" in backend:
        wheel = tool.get("hatch", {}).get("build", {}).get("targets", {}).get("wheel", {})
        entry = doc.entry("tool", "hatch", "build", "targets", "wheel", "packages")
        if not isinstance(wheel.get("packages"), list) or entry is None:
            build = tool.get("hatch", {}).get("build", {})
            chosen = ("packages", "include", "only-include", "sources", "force-include")
            own = found_by_itself(project, data, parent)
            if own is None or any(key in part for part in (build, wheel) for key in chosen):
                return text, False, manual
            own_dir = f"{parent}/{own}" if parent else own
            value = f"[{toml_string(own_dir)}, {toml_string(package_dir)}]"
            table = ("tool", "hatch", "build", "targets", "wheel")
            return doc.add_key(table, "packages", value), True, []
        if package_dir in wheel["packages"]:
            return text, False, []
        return doc.append_items(entry, [toml_string(package_dir)]), True, []
    if "setuptools" not in backend:
        return text, False, manual
    setuptools = tool.get("setuptools", {})
    packages = setuptools.get("packages")
    if isinstance(packages, list):
        entry = doc.entry("tool", "setuptools", "packages")
        if entry is None:
            return text, False, manual
        # a list names every package: the subpackages too, or a built wheel lacks them
        missing = [name for name in scheduler_packages() if name not in packages]
        changed = bool(missing)
        if changed:
            text = doc.append_items(entry, [toml_string(name) for name in missing])
        text, data_added = _with_package_data(text, setuptools.get("package-data"))
        changed = changed or data_added
        mapping = setuptools.get("package-dir", {})
        if mapping and PACKAGE not in mapping and mapping.get("", None) != parent:
            doc = TomlText(text)
            inline = doc.entry("tool", "setuptools", "package-dir")
            key, value = toml_string(PACKAGE), toml_string(package_dir)
            if inline is not None:
                text = doc.add_inline_item(inline, key, value)
            else:
                text = doc.add_key(("tool", "setuptools", "package-dir"), key, value)
            changed = True
        return text, changed, []
    find = packages.get("find") if isinstance(packages, dict) else None
    if isinstance(find, dict):
        where = [str(w).strip("./") for w in find.get("where", ["."])]
        notes = [] if parent in where else manual
        include = find.get("include")
        entry = doc.entry("tool", "setuptools", "packages", "find", "include")
        listed = False
        if include and not any(fnmatch(PACKAGE, pattern) for pattern in include):
            if entry is None:
                return text, False, manual
            text, listed = doc.append_items(entry, [toml_string(f"{PACKAGE}*")]), True
        text, data_added = _with_package_data(text, setuptools.get("package-data"))
        return text, listed or data_added, notes
    if "py-modules" in setuptools and not parent:  # modules only: the package list added
        names = ", ".join(toml_string(name) for name in scheduler_packages())
        text = doc.add_key(("tool", "setuptools"), "packages", f"[{names}]")
        return _with_package_data(text, setuptools.get("package-data"))[0], True, []
    if "py-modules" in setuptools or parent != "src":
        return text, False, manual
    # discovery finds src/scheduler by itself, not the files that are not modules
    text, data_added = _with_package_data(text, setuptools.get("package-data"))
    return text, data_added, []


def scheduler_packages() -> list[str]:
    """The scheduler package and its subpackages, as a scaffolded copy has them (not the
    scaffolder's own)."""
    found = [PACKAGE]
    for init in sorted(SOURCE.rglob("__init__.py")):
        parts = init.parent.relative_to(SOURCE).parts
        if parts and parts[0] != "scaffold" and "__pycache__" not in parts:
            found.append(".".join((PACKAGE, *parts)))
    return found


def _with_package_data(text: str, package_data: Any) -> tuple[str, bool]:
    """``text`` with setuptools' ``package-data`` naming the files of the package that are
    not modules (``py.typed``, the dashboard's templates), unless it names some already."""
    if isinstance(package_data, dict) and PACKAGE in package_data:
        return text, False
    value = '["py.typed", "server/templates/*.html"]'
    doc = TomlText(text)
    inline = doc.entry("tool", "setuptools", "package-data")
    if inline is not None:
        return doc.add_inline_item(inline, toml_string(PACKAGE), value), True
    return doc.add_key(("tool", "setuptools", "package-data"), toml_string(PACKAGE), value), True


def _requirements_file(project: Path) -> str:
    """The project's ``requirements.txt``: the root's, else the first of the directories
    ``langgraph.json`` lists as dependencies (LangGraph's ``./my_agent/requirements.txt``
    layout, where the agent's own requirements are), else a new one at the root."""
    if (project / "requirements.txt").is_file():
        return "requirements.txt"
    try:
        listed = json.loads((project / "langgraph.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "requirements.txt"
    dependencies = listed.get("dependencies") if isinstance(listed, dict) else None
    for entry in dependencies if isinstance(dependencies, list) else []:
        if not isinstance(entry, str):
            continue
        candidate = (project / entry / "requirements.txt").resolve()
        if candidate.is_file() and candidate.is_relative_to(project.resolve()):
            return candidate.relative_to(project.resolve()).as_posix()
    return "requirements.txt"


def plan_manifest(project: Path, wanted: list[str], package_dir: str | None) -> ManifestEdit:
    """What to change in the project's manifest.

    Args:
        project: The project's directory.
        wanted: The requirements to make sure of.
        package_dir: Where the scheduler package goes (``src/scheduler``), when that is not
            the project root: the build must then include it.

    Raises:
        ScaffoldError: The manifest cannot be read or edited safely.
    """
    found = _read_pyproject(project)
    kind = _kind(found[1] if found else None)
    if kind == "requirements":
        rel = _requirements_file(project) if found is None else "requirements.txt"
        old = read_text(project / rel)
        new, added = _add_requirements_txt(_lf(old), wanted)
        edit = ManifestEdit(rel, kind, old, _in_style_of(new, old), added)
        edit.notes += clashes(_requirement_lines(old or ""), wanted)
        if package_dir is not None and found is not None:
            edit.notes.append(f"make sure the project's build includes {package_dir}")
        return edit
    assert found is not None
    old, data = found
    try:
        if kind == "pyproject":
            new, added = _add_pyproject(old, data, wanted)
        else:
            new, added = _add_poetry(old, data, wanted)
        included, notes = False, list[str]()
        if kind == "pyproject":
            notes += clashes(data["project"].get("dependencies", []), wanted)
        if package_dir is not None or names_its_packages(project, data):
            where = package_dir if package_dir is not None else PACKAGE  # (at the root)
            new, included, more = _include(new, tomllib.loads(new), where, project)
            notes += more
        elif own := flat_packages(project, data, PACKAGE):  # (discovery takes only one)
            names = ", ".join(toml_string(f"{name}*") for name in (*own, PACKAGE))
            table = ("tool", "setuptools", "packages", "find")
            new, _ = _with_package_data(TomlText(new).add_key(table, "include", f"[{names}]"), {})
            included = True
        tomllib.loads(new)
    except (TomlTextError, tomllib.TOMLDecodeError) as exc:
        raise ScaffoldError(
            f"pyproject.toml: cannot add the dependencies without reformatting it ({exc}); "
            f"add them yourself: {', '.join(wanted)}"
        ) from None
    raw = read_text(project / "pyproject.toml") or ""
    return ManifestEdit("pyproject.toml", kind, raw, _in_style_of(new, raw), added, included, notes)


def _lf(text: str | None) -> str | None:
    return None if text is None else text.replace("\r\n", "\n")


def _in_style_of(new: str, old: str | None) -> str:
    """``new`` (edited with ``\\n`` line ends) with the ``\\r\\n`` line ends of ``old``, when
    it has them; ``old`` itself when nothing was edited."""
    if old is None or "\r\n" not in old:
        return new
    if new == _lf(old):
        return old
    return re.sub(r"(?<!\r)\n", "\r\n", new)
