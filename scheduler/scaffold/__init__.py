"""The scaffolder: ``python -m scheduler scaffold PROJECT`` adds this scheduler to another
LangGraph project (copies the runtime package, wires ``main.py``, the manifest, the tasks
file and the settings). Entered only from the CLI; the runtime never imports it, and it is
not copied into the projects it scaffolds.

Modules: :mod:`~scheduler.scaffold.plan` (the command: plan, check, write),
:mod:`~scheduler.scaffold.projects` (what a project looks like),
:mod:`~scheduler.scaffold.manifests` (its dependencies and build),
:mod:`~scheduler.scaffold.discovery` (setuptools' own package discovery at its root),
:mod:`~scheduler.scaffold.wiring` (the generated code and marked blocks),
:mod:`~scheduler.scaffold.changes` (the change set and its record),
:mod:`~scheduler.scaffold.tomltext` (editing TOML text in place).
"""

from scheduler.scaffold.plan import add_scaffold_arguments, run_scaffold

__all__ = ["add_scaffold_arguments", "run_scaffold"]
