"""The registry of worker processes (PostgreSQL only): a worker registers with its lease,
renews it with heartbeats, checks it is still registered in each transaction that records
its runs (the fence of a worker), and unregisters when it stops. The leader's reaper
removes the rows of workers whose lease lapsed (:func:`scheduler.storage.workers.reap_workers`).
Times are the database's clock (``clock_timestamp()``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, text

from scheduler.storage.schema import workers_table
from scheduler.storage.store import Store
from scheduler.storage.transaction import Transaction
from scheduler.storage.workers import DATABASE_NOW, notify, release_held

__all__ = [
    "WorkerRow",
    "is_registered",
    "list_workers",
    "register_worker",
    "unregister_worker",
    "worker_heartbeat",
]


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """One registered worker; ``age`` is seconds since its last heartbeat."""

    id: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float
    age: float


def register_worker(store: Store, worker_id: str, *, host: str, pid: int, lease: float) -> float:
    """Register the worker, with the lease it renews (the reaper judges it by that, not by
    its own setting); returns the database's time."""
    with store.transaction() as tx:
        return float(
            tx._conn.execute(
                text(
                    "INSERT INTO scheduler_workers "
                    "(id, host, pid, started_at, heartbeat_at, lease_seconds) "
                    f"VALUES (:id, :host, :pid, {DATABASE_NOW}, {DATABASE_NOW}, :lease) "
                    "RETURNING heartbeat_at"
                ),
                {"id": worker_id, "host": host, "pid": pid, "lease": lease},
            ).scalar_one()
        )


def worker_heartbeat(store: Store, worker_id: str) -> float | None:
    """Renew the lease; returns the database's time, or None when the worker's row is gone
    (the reaper declared it dead)."""
    with store.transaction() as tx:
        renewed = tx._conn.execute(
            text(
                f"UPDATE scheduler_workers SET heartbeat_at = {DATABASE_NOW} WHERE id = :id "
                "RETURNING heartbeat_at"
            ),
            {"id": worker_id},
        ).scalar()
        return float(renewed) if renewed is not None else None


def unregister_worker(store: Store, worker_id: str) -> int:
    """A worker stops: the runs it holds but has not started go back to any worker."""
    with store.transaction() as tx:
        released = release_held(tx, [worker_id])
        tx._conn.execute(delete(workers_table).where(workers_table.c.id == worker_id))
        if released:
            notify(tx)
        return released


def is_registered(tx: Transaction, worker_id: str) -> bool:
    """The worker is still registered (not declared dead); its row is kept from the reaper
    until ``tx`` ends (``FOR KEY SHARE``: a heartbeat's update does not wait for it, the
    reaper's ``FOR UPDATE SKIP LOCKED`` passes it by this time)."""
    query = select(workers_table.c.id).where(workers_table.c.id == worker_id)
    return tx._conn.execute(query.with_for_update(read=True, key_share=True)).first() is not None


def list_workers(store: Store) -> list[WorkerRow]:
    """The registered workers, the oldest first."""
    with store.transaction() as tx:
        rows = tx._conn.execute(
            text(
                f"SELECT id, host, pid, started_at, heartbeat_at, {DATABASE_NOW} - heartbeat_at "
                "FROM scheduler_workers ORDER BY started_at, id"
            )
        )
        return [WorkerRow(*row) for row in rows]
