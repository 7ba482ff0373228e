"""Statements about the links between tasks (which run after which) and the outcomes
recorded toward a downstream's next run (``scheduler_waits``), inside one write
transaction: the part of :class:`~scheduler.storage.transaction.Transaction` that
workflows use."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator

from sqlalchemy import Column, Connection, Table, delete, insert, select, text

from scheduler.storage.driver import IN_MOST, fetch_in
from scheduler.storage.schema import links_table, tasks_table, waits_table

__all__ = ["LinkStatements", "chunks"]

# Two keys (what, schema): a key space apart from one-key locks (the leader's, any other)
_LOCK_LINKS = text(
    "SELECT pg_advisory_xact_lock(hashtext('scheduler-links'), hashtext(current_schema()))"
)


def chunks(items: list[str]) -> Iterator[list[str]]:
    """``items`` in lists short enough for one ``IN (...)``."""
    for start in range(0, len(items), IN_MOST):
        yield items[start : start + IN_MOST]


class LinkStatements:
    """The links' statements of a transaction on ``_conn``."""

    _conn: Connection

    def lock_links(self) -> None:
        """Take turns with other writers of tasks until this transaction ends (first thing,
        before any row lock), so that the links a check reads stay as they are until its
        own are written: two processes each adding one link of a cycle, or one removing a
        task while another makes a task run after it, would each pass the check. SQLite
        writers take turns already (``BEGIN IMMEDIATE``); PostgreSQL takes a
        transaction-level advisory lock."""
        if self._conn.dialect.name == "postgresql":
            self._conn.execute(_LOCK_LINKS)

    def set_links(self, downstream_ids: Collection[str], links: Iterable[tuple[str, str]]) -> None:
        """Replace the links of ``downstream_ids`` with ``links`` (downstream, upstream), and
        drop their waits on upstreams they no longer name."""
        ids = list(downstream_ids)
        links = list(links)
        for chunk in chunks(ids):
            self._conn.execute(delete(links_table).where(links_table.c.downstream_id.in_(chunk)))
        if links:
            self._conn.execute(
                insert(links_table), [{"downstream_id": d, "upstream_id": u} for d, u in links]
            )
        kept = set(links)
        for downstream, upstream in self.waits(ids):
            if (downstream, upstream) not in kept:
                self.clear_waits(downstream, upstream)

    def all_links(self) -> list[tuple[str, str]]:
        """Every (downstream, upstream) pair."""
        query = select(links_table.c.downstream_id, links_table.c.upstream_id)
        return [(d, u) for d, u in self._conn.execute(query)]

    def links_from(self, upstream_ids: Collection[str]) -> list[tuple[str, str]]:
        """The (downstream, upstream) pairs whose upstream is one of ``upstream_ids``."""
        return self._pairs(links_table, links_table.c.upstream_id, upstream_ids)

    def _pairs(self, table: Table, key: Column[str], ids: Collection[str]) -> list[tuple[str, str]]:
        """The (downstream, upstream) pairs of ``table`` whose ``key`` is one of ``ids``."""
        columns = table.c.downstream_id, table.c.upstream_id
        rows = fetch_in(
            self._conn,
            f"pairs:{table.name}:{key.name}",
            lambda params: select(*columns).where(key.in_(params)),
            list(ids),
        )
        return [(d, u) for d, u in rows]

    def delete_links_of(self, downstream_ids: Collection[str]) -> None:
        """Forget the links and waits of removed downstream tasks."""
        for chunk in chunks(list(downstream_ids)):
            self._conn.execute(delete(links_table).where(links_table.c.downstream_id.in_(chunk)))
            self._conn.execute(delete(waits_table).where(waits_table.c.downstream_id.in_(chunk)))

    def put_wait(
        self, downstream: str, upstream: str, *, run_id: str, status: str, finished_at: float
    ) -> None:
        """Record ``upstream``'s outcome toward ``downstream``'s next run (the latest wins)."""
        self.clear_waits(downstream, upstream)
        self._conn.execute(
            insert(waits_table),
            {
                "downstream_id": downstream,
                "upstream_id": upstream,
                "run_id": run_id,
                "status": status,
                "finished_at": finished_at,
            },
        )

    def waits(self, downstream_ids: Collection[str]) -> list[tuple[str, str]]:
        """The (downstream, upstream) pairs with a recorded outcome."""
        return self._pairs(waits_table, waits_table.c.downstream_id, downstream_ids)

    def waits_of(self, downstream: str) -> dict[str, tuple[str, str, float]]:
        """The recorded outcomes toward ``downstream``: upstream -> (run id, status, time)."""
        query = select(
            waits_table.c.upstream_id,
            waits_table.c.run_id,
            waits_table.c.status,
            waits_table.c.finished_at,
        ).where(waits_table.c.downstream_id == downstream)
        return {u: (r, s, f) for u, r, s, f in self._conn.execute(query)}

    def clear_waits(self, downstream: str, upstream: str | None = None) -> None:
        """Forget the outcomes recorded toward ``downstream`` (only ``upstream``'s, if given)."""
        condition = waits_table.c.downstream_id == downstream
        if upstream is not None:
            condition = condition & (waits_table.c.upstream_id == upstream)
        self._conn.execute(delete(waits_table).where(condition))

    def existing_tasks(self, task_ids: Collection[str]) -> set[str]:
        """Which of ``task_ids`` exist (read, not locked)."""
        found: set[str] = set()
        for chunk in chunks(list(task_ids)):
            found.update(
                self._conn.execute(
                    select(tasks_table.c.id).where(tasks_table.c.id.in_(chunk))
                ).scalars()
            )
        return found
