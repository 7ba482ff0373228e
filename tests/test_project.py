"""The project keeps its promises: every setting is documented, CI runs the README's test
command, and that command runs the lint and the strict type check."""

from __future__ import annotations

import re
import subprocess

from scheduler import Settings
from tests.conftest import ROOT


def setting_names() -> list[str]:
    return [f"SCHEDULER_{name.upper()}" for name in Settings.model_fields]


def test_every_setting_is_in_env_example_and_readme() -> None:
    example = (ROOT / ".env.example").read_text()
    readme = (ROOT / "README.md").read_text()
    for name in [*setting_names(), "LLM_MODEL", "AGENT_CHECKPOINT_DB"]:
        assert re.search(rf"^{name}=", example, re.MULTILINE), f"{name} missing in .env.example"
        assert f"`{name}`" in readme, f"{name} missing in README's settings table"


def test_ci_runs_the_readme_test_command() -> None:
    done = subprocess.run(
        [
            "awk",
            "/<!-- test-command/{found=1; next} found && /^```bash/{grab=1; next} "
            "grab && /^```/{exit} grab",
            "README.md",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    command = done.stdout.strip()
    # the whole suite: the parallel part, then the tests marked serial (two at a time)
    assert command.endswith(
        '.venv/bin/python -m pytest -n 4 --dist loadgroup -m "not serial" '
        "&& .venv/bin/python -m pytest -m serial -n 2 --dist loadgroup"
    ), command
    assert "pip install" in command
    # Lint and strict types are part of the command CI runs, not only of the suite.
    assert ".venv/bin/ruff check ." in command and ".venv/bin/ruff format --check" in command
    assert ".venv/bin/mypy &&" in command
    assert "test-command" in (ROOT / ".ci" / "run").read_text()


def test_the_server_packages_named_to_a_scaffolded_project_are_the_server_extra() -> None:
    """A scaffolded project has no ``server`` extra: the error of a missing server and the
    skill name its packages, the same as pyproject's."""
    import tomllib

    from scheduler.service import SERVER_PACKAGES

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=\[ ]", r)[0] for r in extra["optional-dependencies"]["server"]}
    assert set(SERVER_PACKAGES.split()) == names
    skill = " ".join((ROOT / "skills" / "add-scheduler" / "SKILL.md").read_text().split())
    assert f"pip install {SERVER_PACKAGES}" in skill
