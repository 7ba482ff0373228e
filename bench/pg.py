"""The PostgreSQL database of the scenarios that run on one: its URL (from
``SCHEDULER_BENCH_POSTGRES_URL``, else ``SCHEDULER_TEST_POSTGRES_URL``, else the local
server), in a schema of its own that seeding makes afresh."""

from __future__ import annotations

import os

__all__ = ["SCHEMA", "fresh_schema", "postgres_url", "with_schema"]

SCHEMA = "bench_scale"
_LOCAL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_url() -> str:
    return (
        os.environ.get("SCHEDULER_BENCH_POSTGRES_URL")
        or os.environ.get("SCHEDULER_TEST_POSTGRES_URL")
        or _LOCAL
    )


def with_schema(url: str, schema: str = SCHEMA) -> str:
    """``url`` with the bench schema first on the search path."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options=-csearch_path%3D{schema}"


def fresh_schema(url: str, schema: str = SCHEMA) -> str:
    """Drop and create the bench schema; ``url`` pointing into it."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    finally:
        engine.dispose()
    return with_schema(url, schema)
