"""``Dispatcher`` subclasses APScheduler's ``AsyncIOScheduler`` and relies on private parts
of it. An upgrade that renames or reshapes one of them would leave an override dead (or a
base method running that drops runs) without any error: these tests make such an upgrade
fail in CI instead."""

from __future__ import annotations

import importlib.metadata
import inspect

from apscheduler.schedulers import base as base_module
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import BaseScheduler

from scheduler.dispatcher import Dispatcher

# Each method Dispatcher overrides, with the parameters of the base method it replaces.
OVERRIDDEN = {
    "_process_jobs": ["self"],
    "_start_timer": ["self", "wait_seconds"],
    "wakeup": ["self"],
    "shutdown": ["self", "wait"],
}


def test_apscheduler_is_the_3_x_line_the_dispatcher_was_written_for() -> None:
    version = importlib.metadata.version("apscheduler")
    assert version.split(".")[:2] == ["3", "11"], version


def test_every_overridden_hook_exists_in_the_base_with_the_same_parameters() -> None:
    for name, parameters in OVERRIDDEN.items():
        base = getattr(AsyncIOScheduler, name, None)
        assert base is not None, f"AsyncIOScheduler.{name} is gone"
        assert list(inspect.signature(base).parameters) == parameters, name
        ours = getattr(Dispatcher, name)
        assert ours is not base and ours.__qualname__ == f"Dispatcher.{name}", name
        assert list(inspect.signature(ours).parameters) == parameters, name


def test_the_private_state_the_dispatcher_reads_is_still_there() -> None:
    # The event loop and the timer handle live on these class attributes.
    assert "_eventloop" in vars(AsyncIOScheduler)
    assert "_timeout" in vars(AsyncIOScheduler)
    start = inspect.getsource(AsyncIOScheduler.start)
    assert "self._eventloop = asyncio.get_running_loop()" in start
    # BaseScheduler.start ends by waking the scheduler up: the dispatcher's first pass.
    assert "self.wakeup()" in inspect.getsource(BaseScheduler.start)
    # The stop timer is what our _start_timer re-arms; it cancels self._timeout.
    assert "self._timeout.cancel()" in inspect.getsource(AsyncIOScheduler._stop_timer)
    # Our shutdown calls BaseScheduler.shutdown directly (synchronously).
    assert list(inspect.signature(BaseScheduler.shutdown).parameters) == ["self", "wait"]
    assert {"STATE_RUNNING", "STATE_STOPPED"} <= set(vars(base_module))


def test_the_base_process_jobs_is_never_reached() -> None:
    """APScheduler's own _process_jobs commits per job and drops late runs; the dispatcher
    must never fall through to it."""
    source = inspect.getsource(Dispatcher)
    assert "super()._process_jobs" not in source
    assert "BaseScheduler._process_jobs" not in source
