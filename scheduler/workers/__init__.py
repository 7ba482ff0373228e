"""Several processes on PostgreSQL: one scheduling leader (role ``scheduler``) queues the
runs, any number of workers (role ``worker``, ``python -m scheduler worker``) on any number
of machines claim and execute them. See the README's "Running on several machines"."""

from scheduler.workers.admission import SharedAdmission
from scheduler.workers.worker import Worker, require_postgres

__all__ = ["SharedAdmission", "Worker", "require_postgres"]
