"""Writing many APScheduler jobs to a ``SQLAlchemyJobStore`` table quickly (set-up only).

``SQLAlchemyJobStore.add_job`` commits once per job, so 100,000 ``add_job`` calls take
minutes on SQLite. Set-up (never a measured part) writes the **same rows** in bulk instead:
each job is built by a real ``add_job`` call, with the same function, trigger, id and kwargs
and the scheduler's default job settings, on a paused scheduler whose job store is in
memory; its pickled state (``job.__getstate__()`` at the store's pickle protocol, as
``SQLAlchemyJobStore.add_job`` writes it) and next run time are then inserted in one
transaction into the ``apscheduler_jobs`` table the job store itself creates.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.util import datetime_to_utc_timestamp

__all__ = ["JobSpec", "write_jobs"]

JobSpec = tuple[str, Callable[..., Any], str, dict[str, Any]]
"""``(id, func, trigger alias, trigger arguments)``; kwargs are ``{"prompt": "hi"}``."""

_CHUNK = 5000


def write_jobs(db: Path, jobs: Sequence[JobSpec], *, prompt: str = "hi") -> None:
    """Add ``jobs`` to the SQLite job store ``db`` as ``add_job`` would, in bulk."""
    store = SQLAlchemyJobStore(url=f"sqlite:///{db}")
    builder = BackgroundScheduler(jobstores={"default": store, "memory": MemoryJobStore()})
    builder.start(paused=True)  # creates the job table; fires nothing
    try:
        for first in range(0, len(jobs), _CHUNK):
            rows = []
            for job_id, func, trigger, trigger_args in jobs[first : first + _CHUNK]:
                job = builder.add_job(
                    func,
                    trigger,
                    id=job_id,
                    kwargs={"prompt": prompt},
                    jobstore="memory",
                    **trigger_args,
                )
                rows.append(
                    {
                        "id": job.id,
                        "next_run_time": datetime_to_utc_timestamp(job.next_run_time),
                        "job_state": pickle.dumps(job.__getstate__(), store.pickle_protocol),
                    }
                )
            with store.engine.begin() as conn:
                conn.execute(store.jobs_t.insert(), rows)
            builder.remove_all_jobs(jobstore="memory")
    finally:
        builder.shutdown(wait=False)
        store.engine.dispose()
