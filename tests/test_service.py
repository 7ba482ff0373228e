"""The shipped systemd unit runs main.py, stops it with SIGTERM, and waits long enough."""

from __future__ import annotations

import configparser

from scheduler import Settings
from tests.conftest import ROOT


def test_systemd_unit_runs_main_py_and_stops_it_gracefully() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "deploy" / "langgraph-scheduler.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("/.venv/bin/python main.py")
    assert service["WorkingDirectory"].startswith("%h/")
    assert service["KillSignal"] == "SIGTERM"
    grace = Settings(_env_file=None).stop_grace_seconds
    assert float(service["TimeoutStopSec"]) > grace
    assert unit["Install"]["WantedBy"] == "default.target"
    text = (ROOT / "deploy" / "langgraph-scheduler.service").read_text()
    assert text.count("# EDIT") == 3
