"""Storage: the one package that talks SQL (SQLAlchemy), for SQLite and PostgreSQL.

One database URL holds the job store (``scheduler_tasks``), the run history
(``scheduler_runs``) and ``scheduler_meta``. Driver errors leave it as
:class:`~scheduler.exceptions.StorageError`, chained to the original.
"""

from scheduler.storage.locks import AdvisoryLock, try_advisory_lock
from scheduler.storage.schema import (
    DEFINITION_FORMAT,
    MAX_TIMESTAMP,
    SCHEMA_VERSION,
    RunRow,
    TaskRow,
    TaskStats,
)
from scheduler.storage.store import Store
from scheduler.storage.transaction import Transaction

__all__ = [
    "DEFINITION_FORMAT",
    "MAX_TIMESTAMP",
    "SCHEMA_VERSION",
    "AdvisoryLock",
    "RunRow",
    "Store",
    "TaskRow",
    "TaskStats",
    "Transaction",
    "try_advisory_lock",
]
