"""A SQLite checkpointer that a graph module can create at import time.

LangGraph's ``AsyncSqliteSaver`` must be created inside a running event loop and closed in
it, so it cannot sit in a module-level ``graph = builder.compile(checkpointer=...)``. This
saver is LangGraph's (synchronous) ``SqliteSaver`` with its async methods running the
synchronous ones in a worker thread: it can be created at import, works from any event loop
(and from several in turn), and leaves no thread behind at exit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.sqlite import SqliteSaver

from scheduler.pools import GRAPH
from scheduler.storage.engine import synchronous_pragma

__all__ = ["SqliteCheckpointer"]


class SqliteCheckpointer(SqliteSaver):
    """``SqliteSaver`` with working async methods, for ``graph.ainvoke``.

    Args:
        path: The SQLite file (created if missing); ``":memory:"`` for a private one.
        synchronous: SQLite's synchronous mode, ``normal`` (the default: in WAL mode, which
            the saver sets, a commit is not synced to the disk, so a power cut or OS crash
            may undo the last ones; a crash of the process does not) or ``full``
            (``SqliteSaver``'s own: each commit synced, several times slower to write).
    """

    def __init__(self, path: str | Path, *, synchronous: str = "normal") -> None:
        pragma = synchronous_pragma(synchronous)
        super().__init__(sqlite3.connect(str(path), check_same_thread=False))
        self.conn.execute(pragma)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await GRAPH.run(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        items = await GRAPH.run(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit))
        )
        for item in items:
            yield item

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return await GRAPH.run(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await GRAPH.run(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await GRAPH.run(self.delete_thread, thread_id)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, Any]:
        return await GRAPH.run(
            lambda: self.get_delta_channel_history(config=config, channels=channels)
        )
