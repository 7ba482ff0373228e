"""The CLI's run commands: ``run`` a task now, ``answer`` or ``cancel`` a run, ``runs`` (the
history); see :mod:`scheduler.cli` for the parser and the exit statuses."""

from __future__ import annotations

import argparse

from scheduler.documents import load_json
from scheduler.enums import RunStatus
from scheduler.exceptions import UsageError
from scheduler.exiting import run_to_exit
from scheduler.render import Output
from scheduler.run_writes import check_answer
from scheduler.task_scheduler import TaskScheduler

__all__ = ["cmd_answer", "cmd_cancel", "cmd_run", "cmd_runs"]


def cmd_run(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    active_elsewhere = scheduler.is_active_elsewhere()
    if args.wait and not active_elsewhere:
        return run_to_exit(lambda: _run_here(scheduler, args, out))
    run_id = scheduler.run_task_now(args.id)
    if active_elsewhere:
        out.line(f"queued run {run_id} of {args.id}; the running scheduler starts it")
    else:
        out.line(
            f"queued run {run_id} of {args.id}; no scheduler is running on this database, so "
            "it starts when one starts (or use: run --wait)"
        )
    if args.wait:
        return run_to_exit(lambda: _wait(scheduler, run_id, args, out))
    out.result({**scheduler.get_run(run_id).to_dict(), "active_elsewhere": active_elsewhere})
    return 0


async def _run_here(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    """Run only this task here (no other fires; an unknown id fails first), print its record."""
    out.line(f"running {scheduler.get_task(args.id).id} here (no scheduler runs on this database)")
    try:
        run = await scheduler.run_task_here(args.id, timeout=args.timeout)
    except TimeoutError:
        raise UsageError(
            f"the run of {args.id} did not finish within {args.timeout:g} s; it was cancelled"
        ) from None
    out.run(run)
    return 0 if run.status in (RunStatus.SUCCEEDED, RunStatus.WAITING) else 1


async def _wait(
    scheduler: TaskScheduler, run_id: str, args: argparse.Namespace, out: Output
) -> int:
    try:
        run = await scheduler.wait_for_outcome(run_id, timeout=args.timeout)
    except TimeoutError:
        raise UsageError(f"run {run_id} did not finish within {args.timeout:g} s") from None
    out.run(run)
    return 0 if run.status in (RunStatus.SUCCEEDED, RunStatus.WAITING) else 1


def cmd_answer(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    """Answer a waiting run (its graph called ``interrupt()``)."""
    try:
        value = load_json(args.value, what="VALUE", unique=True)  # (a key twice: refused)
        check_answer(value)  # not null, not too large
    except ValueError as exc:  # (a DocumentError is one)
        raise UsageError(
            f"{exc} (give the answer as JSON, e.g. '\"yes\"' or '{{\"ok\": true}}')"
        ) from None
    active_elsewhere = scheduler.is_active_elsewhere()
    if args.wait and not active_elsewhere:
        out.line(f"resuming {args.run_id} in this process (no scheduler is running on it)")

        async def resume() -> int:
            run = await scheduler.resume_run_here(args.run_id, value, timeout=args.timeout)
            out.run(run)
            return 0 if run.status in (RunStatus.SUCCEEDED, RunStatus.WAITING) else 1

        try:
            return run_to_exit(resume)
        except TimeoutError:
            raise UsageError(f"run {args.run_id} did not end within {args.timeout:g} s") from None
    scheduler.resume_run(args.run_id, value)
    if active_elsewhere:
        out.line(f"answered {args.run_id}; the running scheduler resumes it")
    else:
        out.line(
            f"answered {args.run_id}; no scheduler is running on this database, so it "
            "resumes when one starts (or use: answer --wait)"
        )
    if args.wait:
        return run_to_exit(lambda: _wait(scheduler, args.run_id, args, out))
    out.result({**scheduler.get_run(args.run_id).to_dict(), "active_elsewhere": active_elsewhere})
    return 0


def cmd_runs(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    runs = scheduler.list_runs(args.task, status=args.status, limit=args.limit or None)
    if args.task is not None and not runs and not scheduler.list_runs(args.task, limit=1):
        scheduler.get_task(args.task)  # no such task, nor runs of a removed one: exit 1
    out.runs(runs)
    return 0


def cmd_cancel(scheduler: TaskScheduler, args: argparse.Namespace, out: Output) -> int:
    """Cancel a running run, or one waiting for an answer (in this or another process)."""
    run = scheduler.get_run(args.run_id)  # no such run: exit 1
    active_elsewhere = scheduler.is_active_elsewhere()
    if not scheduler.cancel_run(args.run_id):
        raise UsageError(
            f"run {args.run_id} is {run.status.value}: only a running run, or one waiting "
            "for an answer (not answered yet), can be cancelled"
        )
    if run.status is RunStatus.WAITING and not active_elsewhere:
        out.line(
            f"asked to cancel {args.run_id}; no scheduler is running on this database, so it "
            "ends cancelled when one starts (an answer is refused meanwhile)"
        )
    else:
        out.line(f"asked to cancel {args.run_id}; the process that holds it ends it cancelled")
    out.result({"id": args.run_id, "cancelling": True, "active_elsewhere": active_elsewhere})
    return 0
