"""Operations: ``/healthz`` (is the loop alive, is this process active or standing by, does
the database answer) and ``/metrics`` in the Prometheus text format (``prometheus_client``):
runs by status, start lateness, queue depth, runs in flight, tasks whose rows cannot be
loaded. The lateness histogram is fed by the run events (``started``); the rest is read
when scraped, the database part off the event loop."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import APIRouter, Request, Response

from scheduler.events import RunEvent
from scheduler.exceptions import DefinitionError
from scheduler.pools import OWN
from scheduler.rows import decode
from scheduler.server.replies import JsonReply
from scheduler.storage import TaskRow
from scheduler.task_scheduler import TaskScheduler

__all__ = ["Metrics", "router"]

router = APIRouter(tags=["operations"])
logger = logging.getLogger(__name__)

_LATENESS_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)


# HEAD apart, out of the docs: one route of both methods gave both one operationId, which
# OpenAPI forbids (client generators refuse it, FastAPI warns at each /openapi.json build)
@router.head("/healthz", include_in_schema=False)
@router.get("/healthz", summary="Liveness: loop, role, database")
async def healthz(request: Request) -> JsonReply:
    scheduler: TaskScheduler = request.app.state.scheduler
    began = time.perf_counter()
    await asyncio.sleep(0)
    loop_ms = (time.perf_counter() - began) * 1000
    try:
        # one row (the revision), not a count: cheap at any number of tasks
        await asyncio.wait_for(OWN.run(scheduler.store.revision), timeout=5)
        database = "ok"
    except Exception as exc:  # the answer is the health, not an error page; the reason
        # goes to the log only (it may name hosts and users, and /healthz needs no key)
        logger.warning("healthz: the database does not answer: %s", exc)
        database = f"failing: {type(exc).__name__}"
    role = "active" if scheduler.active else ("standby" if scheduler.running else "stopped")
    healthy = database == "ok" and scheduler.running
    return JsonReply(
        {
            "status": "ok" if healthy else "failing",
            "role": role,
            "database": database,
            "loop_lag_ms": round(loop_ms, 3),
        },
        status_code=200 if healthy else 503,
    )


class Metrics:
    """The registry of one app, its lateness histogram fed by run events."""

    def __init__(self, scheduler: TaskScheduler) -> None:
        from prometheus_client import CollectorRegistry, Histogram
        from prometheus_client.core import GaugeMetricFamily
        from prometheus_client.registry import Collector

        self.scheduler = scheduler
        self.registry = CollectorRegistry()
        self.lateness = Histogram(
            "scheduler_start_lateness_seconds",
            "Scheduled time to the graph call starting, per run",
            buckets=_LATENESS_BUCKETS,
            registry=self.registry,
        )
        self.counts: dict[str, int] = {}
        self.unloadable: set[str] = set()  # read at the revision below
        self._scanned: int | None = None
        self._known: dict[str, tuple[tuple[int, int, str | None], bool]] = {}  # id: row, loads
        metrics = self

        class Live(Collector):
            def collect(self) -> Any:
                runs = GaugeMetricFamily(
                    "scheduler_runs", "Run records kept, by status", labels=["status"]
                )
                for status, count in sorted(metrics.counts.items()):
                    runs.add_metric([status], count)
                yield runs
                supervisor = metrics.scheduler._supervisor
                running = supervisor.runner.running_count if supervisor else 0
                waiting = supervisor.runner.waiting_count if supervisor else 0
                broken = len(
                    metrics.unloadable | set(supervisor.dispatcher.broken if supervisor else ())
                )
                for name, text, value in (
                    ("scheduler_runs_in_flight", "Runs running in this process", running),
                    ("scheduler_queue_depth", "Runs accepted here, not started yet", waiting),
                    ("scheduler_unloadable_tasks", "Task rows that cannot be loaded", broken),
                    ("scheduler_active", "1 if this process fires the tasks", metrics.active()),
                ):
                    yield GaugeMetricFamily(name, text, value=value)

        self.registry.register(Live())
        scheduler.subscribe(self._on_event)

    def active(self) -> int:
        return 1 if self.scheduler.active else 0

    def _on_event(self, event: RunEvent) -> None:
        run = event.run
        if event.kind == "started" and run.started_at is not None and not event.resumed:
            self.lateness.observe(max(0.0, (run.started_at - run.scheduled_for).total_seconds()))

    async def render(self) -> bytes:
        from prometheus_client import generate_latest

        counts = await self.scheduler.acount_runs()
        self.counts = {str(status): count for status, count in counts.items()}
        self.unloadable = await OWN.run(self._unloadable)
        return generate_latest(self.registry)

    def _unloadable(self) -> set[str]:
        """The ids of the task rows that cannot be loaded (``list`` shows them in state
        ``error``), read again only when the tasks changed: the dispatcher finds a row only
        when it is due, so a broken one paused or due next year was not counted, and none
        before its time after a restart."""
        store = self.scheduler.store
        revision = store.revision()  # (read first: a change made during the scan is read next)
        if revision != self._scanned:
            found, known = set(), {}
            for row in store.iter_tasks():  # (a row seen before as it is: not decoded again)
                stored = (hash(row.definition), row.format, row.problem)  # (not a copy)
                before = self._known.get(row.id)
                loads = before[1] if before is not None and before[0] == stored else _loads(row)
                known[row.id] = (stored, loads)
                if not loads:
                    found.add(row.id)
            self.unloadable, self._known, self._scanned = found, known, revision
        return self.unloadable


def _loads(row: TaskRow) -> bool:
    try:
        decode(row)
    except DefinitionError:
        return False
    return True


def metrics_of(request: Request) -> Metrics:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is None:
        metrics = request.app.state.metrics = Metrics(request.app.state.scheduler)
    return metrics  # type: ignore[no-any-return,unused-ignore]


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(await metrics_of(request).render(), media_type=CONTENT_TYPE_LATEST)
