"""What a graph is given, as the LangGraph server gives it: a checkpointer and a store.

The server compiles every graph with its own checkpointer (threads survive between runs,
``interrupt()`` can be resumed) and its own long-term store (``runtime.store``), configured
by ``langgraph.json``'s ``store`` section. Graphs written for it (every template) are
compiled without either. :func:`prepare_graph` does the same for a compiled graph that has
none: it returns ``graph.copy(update={"checkpointer": ..., "store": ...})``, on the
scheduler's own database:

* SQLite file: LangGraph's ``SqliteSaver`` and ``SqliteStore`` on that file (their own
  tables beside the scheduler's);
* in-memory SQLite: ``InMemorySaver`` and ``InMemoryStore``;
* PostgreSQL: ``PostgresSaver`` and ``PostgresStore`` (``langgraph-checkpoint-postgres``,
  the ``postgres`` extra) on a connection pool of that database;
* or what ``langgraph.json`` names: ``{"checkpointer": {"path": "./cp.py:make"}}``,
  ``{"store": {"path": "./store.py:make"}}`` (a function returning one, or the object).

The store honours ``store.index`` (``dims``, ``fields``, and ``embed``: a
``provider:model`` name for ``langchain``'s ``init_embeddings``, or a
``path/to/file.py:function`` / ``module:function`` of the project) where the library can
(the in-memory store; SQLite with a Python whose ``sqlite3`` loads extensions; PostgreSQL
with ``pgvector``), and ``store.ttl`` (``default_ttl``, ``refresh_on_read``,
``sweep_interval_minutes``) on SQLite and PostgreSQL. The synchronous savers
and stores run on worker threads when a graph awaits them. A graph that brings its own
checkpointer or store keeps it; ``SCHEDULER_INJECT_CHECKPOINTER=false`` and
``SCHEDULER_INJECT_STORE=false`` turn the injection off.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.base import BaseStore, Op, Result
from langgraph.store.memory import InMemoryStore
from sqlalchemy.engine import make_url

from scheduler.checkpoint import SqliteCheckpointer
from scheduler.exceptions import GraphLoadError
from scheduler.langgraph_json import LangGraphConfig
from scheduler.loader import load_target
from scheduler.pools import GRAPH

__all__ = ["Persistence", "ThreadedStore", "prepare_graph"]

logger = logging.getLogger(__name__)


class ThreadedStore(BaseStore):
    """A synchronous store (``SqliteStore``, ``PostgresStore``) whose async methods run its
    synchronous ones on a worker thread, so ``await runtime.store.asearch(...)`` works."""

    def __init__(self, inner: BaseStore) -> None:
        self.inner = inner
        # (BaseStore.put reads them: without, an explicit ttl was refused and the configured
        # default_ttl never reached the inner store)
        self.supports_ttl = bool(getattr(inner, "supports_ttl", False))
        self.ttl_config = getattr(inner, "ttl_config", None)

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        return self.inner.batch(ops)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await GRAPH.run(self.inner.batch, list(ops))


@dataclass
class Persistence:
    """A graph prepared for runs, with what was injected into it (to close at the end)."""

    graph: Any
    checkpointer: Any = None
    store: Any = None
    _closers: list[Any] = field(default_factory=list)

    @property
    def injected(self) -> list[str]:
        return [name for name in ("checkpointer", "store") if getattr(self, name) is not None]

    def close(self) -> None:
        """Close the connections opened for the injected checkpointer and store."""
        for close in reversed(self._closers):
            try:
                close()
            except Exception:  # closing must not hide the reason for the stop
                logger.exception("could not close the graph's injected persistence")
        self._closers.clear()


def prepare_graph(
    graph: Any,
    *,
    database_url: str,
    config: LangGraphConfig,
    checkpointer: bool = True,
    store: bool = True,
    sqlite_synchronous: str = "normal",
) -> Persistence:
    """``graph`` with a checkpointer and a store where it has none (see the module doc).

    Args:
        graph: The loaded graph; anything but a compiled LangGraph graph is left alone.
        database_url: The scheduler's database (SQLAlchemy URL).
        config: The project's ``langgraph.json``.
        checkpointer: Inject a checkpointer into a graph that has none.
        store: Inject a store into a graph that has none.
        sqlite_synchronous: The synchronous mode of the checkpointer injected on a SQLite
            file (``SCHEDULER_SQLITE_SYNCHRONOUS``).

    Raises:
        GraphLoadError: The configured checkpointer or store cannot be made.
    """
    prepared = Persistence(graph)
    if not (callable(getattr(graph, "copy", None)) and hasattr(graph, "checkpointer")):
        return prepared  # a RemoteGraph, or another object with ainvoke
    update: dict[str, Any] = {}
    if checkpointer and graph.checkpointer is None:
        prepared.checkpointer = update["checkpointer"] = _checkpointer(
            database_url, config, prepared, sqlite_synchronous
        )
    if store and getattr(graph, "store", None) is None:
        prepared.store = update["store"] = _store(database_url, config, prepared)
    if update:
        prepared.graph = graph.copy(update=update)
        logger.info(
            "the graph has no %s of its own: using %s",
            " and no ".join(update),
            ", ".join(f"{name} {type(value).__name__}" for name, value in update.items()),
        )
    return prepared


def _custom(section: dict[str, Any], config: LangGraphConfig) -> Any:
    """The checkpointer or store ``section["path"]`` names: the object, or what the
    function there returns."""
    target = section.get("path")
    if not target:
        return None
    file, _, attribute = str(target).rpartition(":")
    if file.endswith(".py") or "/" in file:
        target = f"{(config.directory / file).resolve()}:{attribute}"
    made = load_target(str(target))
    if isinstance(made, BaseCheckpointSaver | BaseStore) or not callable(made):
        return made
    return made()


def _one_at_a_time(pool: Any, setup: Callable[[], Any]) -> None:
    """Run a PostgreSQL saver's ``setup`` (its migrations) under an advisory lock: workers
    starting together would otherwise race to create the same tables and types. The lock is
    polled, never waited for inside a statement: a waiting statement would hold up the
    ``CREATE INDEX CONCURRENTLY`` of the process that holds the lock (a deadlock)."""
    import psycopg

    with psycopg.connect(pool.conninfo, autocommit=True) as conn:
        while not conn.execute(_TRY_SETUP_LOCK).fetchone()[0]:  # type: ignore[index]
            time.sleep(0.1)
        try:
            setup()
        finally:
            conn.execute(f"SELECT pg_advisory_unlock({_SETUP_KEYS})")


# two keys: apart from the leader's lock (one key), which never lets go while it leads
_SETUP_KEYS = "hashtext('langgraph-scheduler'), hashtext('setup')"
_TRY_SETUP_LOCK = f"SELECT pg_try_advisory_lock({_SETUP_KEYS})"


def _checkpointer(
    url: str, config: LangGraphConfig, prepared: Persistence, synchronous: str
) -> Any:
    custom = _custom(config.checkpointer, config)
    if custom is not None:
        return custom
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            return InMemorySaver()
        saver = SqliteCheckpointer(Path(str(parsed.database)), synchronous=synchronous)
        prepared._closers.append(_closer(saver.lock, saver.conn))
        return saver
    if backend == "postgresql":
        saver_class, pool = _postgres_pool(url, "checkpointer")
        prepared._closers.append(pool.close)
        saver = _threaded_saver(saver_class)(pool)
        _one_at_a_time(pool, saver.setup)
        return saver
    raise GraphLoadError(url, f"no checkpointer for {backend} databases; set one in langgraph.json")


def _store(url: str, config: LangGraphConfig, prepared: Persistence) -> Any:
    custom = _custom(config.store, config)
    if custom is not None:
        return custom
    index = _index(config.store.get("index"), config)
    ttl = config.store.get("ttl") if isinstance(config.store.get("ttl"), dict) else None
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        return InMemoryStore(index=index) if index else InMemoryStore()
    if backend == "sqlite":
        from langgraph.store.sqlite import SqliteStore

        if index and not hasattr(sqlite3.Connection, "enable_load_extension"):
            logger.warning(
                "langgraph.json's store.index needs SQLite extensions (sqlite-vec), which this "
                "Python's sqlite3 cannot load; the store works without semantic search"
            )
            index = None
        conn = sqlite3.connect(str(parsed.database), check_same_thread=False, isolation_level=None)
        inner: Any = SqliteStore(conn, index=index, ttl=ttl)
        prepared._closers.append(_closer(inner.lock, conn))
    elif backend == "postgresql":
        store_class, pool = _postgres_pool(url, "store")
        prepared._closers.append(pool.close)
        inner = store_class(pool, index=index, ttl=ttl)
        try:
            _one_at_a_time(pool, inner.setup)
        except Exception as exc:
            if not index or "vector" not in str(exc):
                raise
            logger.warning(
                "langgraph.json's store.index needs the pgvector extension, which this "
                "PostgreSQL does not have (%s); the store works without semantic search",
                str(exc).splitlines()[0],
            )
            inner = store_class(pool, ttl=ttl)
            _one_at_a_time(pool, inner.setup)
    else:
        raise GraphLoadError(url, f"no store for {backend} databases; set one in langgraph.json")
    if backend == "sqlite":
        inner.setup()
    if ttl and ttl.get("sweep_interval_minutes"):
        inner.start_ttl_sweeper()
        prepared._closers.append(inner.stop_ttl_sweeper)
    return ThreadedStore(inner)


def _closer(lock: Any, conn: sqlite3.Connection) -> Callable[[], None]:
    """Close ``conn`` once the saver or store that guards it with ``lock`` is not using it: a
    graph thread still writing a checkpoint while the connection closes crashes the
    interpreter (sqlite3 is not safe against that); after the close it gets an error instead."""

    def close() -> None:
        with lock:
            conn.close()

    return close


def _index(index: Any, config: LangGraphConfig) -> Any:
    """``store.index`` with ``embed`` resolved to an embeddings object or function."""
    if not isinstance(index, dict):
        return None
    resolved = dict(index)
    embed = resolved.get("embed")
    if isinstance(embed, str):
        file, _, attribute = embed.rpartition(":")
        if file.endswith(".py") or "/" in file:
            resolved["embed"] = load_target(f"{(config.directory / file).resolve()}:{attribute}")
        elif file and attribute and "." in file:
            resolved["embed"] = load_target(embed)
        else:
            try:
                from langchain.embeddings import (  # type: ignore[import-not-found]
                    init_embeddings,
                )
            except ImportError as exc:
                raise GraphLoadError(
                    embed, "store.index.embed names a provider model: pip install langchain"
                ) from exc
            resolved["embed"] = init_embeddings(embed)
    return resolved


def _postgres_pool(url: str, what: str) -> tuple[Any, Any]:
    """LangGraph's synchronous PostgreSQL saver or store class and a pool for ``url``."""
    try:
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        made: type
        if what == "checkpointer":
            from langgraph.checkpoint.postgres import PostgresSaver

            made = PostgresSaver
        else:
            from langgraph.store.postgres import PostgresStore

            made = PostgresStore
    except ImportError as exc:
        raise GraphLoadError(
            url,
            f"a PostgreSQL {what} needs langgraph-checkpoint-postgres: pip install "
            "'psycopg[binary]' psycopg-pool langgraph-checkpoint-postgres (in the scheduler's "
            "own repository: pip install -e '.[postgres]')",
        ) from exc
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    pool = ConnectionPool(
        dsn,
        min_size=1,
        max_size=8,
        check=ConnectionPool.check_connection,  # one lost meanwhile is replaced, not used
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=True,
    )
    return made, pool


def _threaded_saver(saver_class: type) -> type:
    """``saver_class`` (synchronous) with async methods that run it on a worker thread."""

    class ThreadedSaver(saver_class):  # type: ignore[misc]
        async def aget_tuple(self, config: Any) -> Any:
            return await GRAPH.run(self.get_tuple, config)

        async def alist(self, config: Any, **kwargs: Any) -> Any:
            for item in await GRAPH.run(lambda: list(self.list(config, **kwargs))):
                yield item

        async def aput(self, config: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
            return await GRAPH.run(self.put, config, checkpoint, metadata, versions)

        async def aput_writes(
            self, config: Any, writes: Any, task_id: str, task_path: str = ""
        ) -> None:
            await GRAPH.run(self.put_writes, config, writes, task_id, task_path)

        async def adelete_thread(self, thread_id: str) -> None:
            await GRAPH.run(self.delete_thread, thread_id)

    ThreadedSaver.__name__ = ThreadedSaver.__qualname__ = f"Threaded{saver_class.__name__}"
    return ThreadedSaver
