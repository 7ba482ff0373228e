"""Settings: one typed object, read from ``SCHEDULER_*`` environment variables and ``.env``.

Read it at the edge (``Settings()``) and pass it in; nothing deeper reads the environment.
Every field is documented in ``.env.example`` with its default.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from scheduler.callbacks import CallbackPolicy
from scheduler.enums import OverlapPolicy, Priority
from scheduler.exceptions import SettingError
from scheduler.weburls import origin, redacted
from scheduler.zones import unknown_zone_message, zone_exists

__all__ = ["Settings", "read_settings"]

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # (a tab is header text)


class Settings(BaseSettings):
    """Scheduler settings (environment prefix ``SCHEDULER_``)."""

    model_config = SettingsConfigDict(
        env_prefix="SCHEDULER_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_ignore_empty=True,
        validate_default=True,
    )

    # Where things are.
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; wins over db_path (e.g. postgresql+psycopg://...)",
    )
    db_path: Path = Field(default=Path("scheduler.db"), description="SQLite file when no URL")
    graph: str | None = Field(
        default=None,
        description="Graph target: 'module:attribute' or 'path.py:attribute'; default: "
        "graph:graph, or the only graph of ./langgraph.json",
    )
    tasks_file: Path | None = Field(
        default=Path("tasks.yaml"),
        description="Tasks file main.py applies at start ('none': no file)",
    )
    tasks_file_strict: bool = Field(
        default=False,
        description="Refuse to start (exit 2) when the tasks file has problems, instead of "
        "running the tasks of its last good version",
    )
    tasks_file_removed: Literal["remove", "keep"] = Field(
        default="remove",
        description="What applying the tasks file does to tasks that came from it and left it",
    )
    timezone: str = Field(default="UTC", description="Default IANA zone for task schedules")

    # Run policy defaults (a task's own field wins).
    misfire_grace_seconds: float = Field(
        default=3600, ge=0, description="Catch-up window for occurrences missed while down"
    )
    max_concurrent_runs: int = Field(default=100, ge=1, description="Runs in flight at once")
    max_retries: int = Field(default=0, ge=0, description="Retries after a failed attempt")
    retry_delay_seconds: float = Field(default=10, gt=0, description="First retry delay")
    retry_max_delay_seconds: float = Field(default=600, gt=0, description="Retry delay cap")
    timeout_seconds: float | None = Field(default=None, gt=0, description="Run timeout")
    waiting_timeout_seconds: float | None = Field(
        default=None, gt=0, description="How long a run waits for an answer (none: for ever)"
    )
    overlap: OverlapPolicy = Field(default=OverlapPolicy.SKIP, description="Overlap policy")
    max_instances: int = Field(default=3, ge=1, description="Parallel runs with overlap=allow")
    priority: Priority = Field(default=Priority.MEDIUM, description="Default priority")

    # What a graph is given, as the LangGraph server gives it (see scheduler.persistence).
    inject_checkpointer: bool = Field(
        default=True,
        description="Give a compiled graph without a checkpointer one on the scheduler's "
        "database (threads persist, interrupt() can be resumed)",
    )
    inject_store: bool = Field(
        default=True,
        description="Give a compiled graph without a store one on the scheduler's database "
        "(runtime.store), configured by langgraph.json's store section",
    )

    # Safety.
    callback_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Modules (or package prefixes) outside the project that callbacks may "
        "come from, comma-separated; the project's own modules are always allowed",
    )

    # Agent tools (scheduler.agent_tools): limits per owner (a thread, or a user).
    agent_max_tasks: int = Field(
        default=20, ge=1, le=10_000, description="Tasks an agent may keep scheduled per owner"
    )
    agent_min_interval_seconds: float = Field(
        default=60, ge=1, description="Shortest time between two runs of an agent's task"
    )
    agent_max_horizon_days: float = Field(
        default=366, gt=0, le=36_600, description="How far ahead an agent's task may first run"
    )

    # History.
    history_max_runs: int = Field(
        default=1000, ge=0, description="Run records kept per task (0 = no count limit)"
    )
    history_max_age_days: float = Field(
        default=30, ge=0, description="Age after which run records are deleted (0 = never)"
    )
    output_max_chars: int = Field(default=2000, ge=0, description="Run output kept, in chars")

    # Operation.
    stop_grace_seconds: float = Field(
        default=30, ge=0, description="How long stop() lets running runs finish"
    )
    poll_interval_seconds: float = Field(
        default=0.5, gt=0, description="How often the scheduler looks for changes made elsewhere"
    )
    sqlite_busy_timeout_seconds: float = Field(
        default=5, ge=0, description="How long SQLite waits for a lock before an error"
    )
    sqlite_synchronous: Literal["normal", "full"] = Field(
        default="normal",
        description="SQLite's synchronous mode (WAL) for the scheduler's file and the "
        "checkpointer it injects: normal (a power cut or OS crash may undo the last commits) "
        "or full (each commit reaches the disk first)",
    )
    gc_freeze: bool = Field(
        default=True,
        description="Keep objects alive at start() out of garbage-collector scans until "
        "stop() (gc.freeze)",
    )
    loop_stall_seconds: float = Field(
        default=10,
        ge=0,
        description="Warn, saying where, when the event loop is blocked this long (0: off)",
    )
    # Several processes on PostgreSQL (python -m scheduler worker).
    role: Literal["all", "scheduler", "worker"] = Field(
        default="all",
        description="all: schedule and run (one process, or a standby); scheduler: only "
        "schedule, workers run (PostgreSQL); worker: only run queued runs (PostgreSQL)",
    )
    worker_lease_seconds: float = Field(
        default=30,
        ge=1,
        description="A worker silent this long is declared dead: its running runs are "
        "recorded interrupted and retried by policy; it heartbeats every lease/6 s",
    )
    # The HTTP server (python -m scheduler serve --http, or main.py with an address).
    http_address: str | None = Field(
        default=None,
        description="HOST:PORT to serve the HTTP API, the LangGraph crons API and the "
        "dashboard on (e.g. 127.0.0.1:8123); unset: no HTTP server",
    )
    api_key: str | None = Field(
        default=None,
        description="Key every HTTP request must carry (x-api-key, or Authorization: Bearer); "
        "required to listen on an address other than loopback",
    )
    http_max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest HTTP request body accepted"
    )
    http_rate_per_second: float = Field(
        default=200, ge=0, description="Requests per second per client address (0: no limit)"
    )
    http_header_timeout_seconds: float = Field(
        default=10,
        gt=0,
        le=3600,
        description="How long a request's line and headers may take to arrive, from the "
        "connection or the end of the last response (408 and closed beyond: no slowloris)",
    )
    http_body_timeout_seconds: float = Field(
        default=30,
        gt=0,
        le=3600,
        description="How long a request's body may take to arrive once its headers are in "
        "(408 beyond)",
    )
    http_max_concurrency: int = Field(
        default=1000,
        ge=1,
        description="Connections and requests served at once; a request beyond is answered "
        "503 (uvicorn's limit_concurrency)",
    )
    http_cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins allowed to call the HTTP API from a browser, comma-separated "
        "(default: none, CORS off)",
    )
    http_trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses or networks of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed, comma-separated (default: none, the headers are "
        "ignored and the rate is kept per connecting address)",
    )
    # Webhooks (a task's webhook field, a cron's webhook).
    webhook_secret: str | None = Field(
        default=None,
        description="Key of the HMAC-SHA256 signature on every webhook delivery "
        "(X-Scheduler-Signature); unset: deliveries are not signed",
    )
    webhook_allow_private: bool = Field(
        default=False,
        description="Deliver webhooks to private, loopback and link-local addresses too",
    )
    webhook_attempts: int = Field(
        default=5,
        ge=1,
        le=20,
        description="Delivery attempts per finished run (retries on 5xx, 429, errors)",
    )
    webhook_retry_seconds: float = Field(
        default=2.0, gt=0, le=3600, description="First retry delay; doubled each attempt"
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="How long one delivery attempt may take"
    )
    log_level: str = Field(default="INFO", description="Log level for main.py")
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines as text, or one JSON object per line"
    )

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"{value!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("tasks_file", mode="before")
    @classmethod
    def _no_tasks_file(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("none", "off", ""):
            return None
        return value

    @field_validator("http_cors_origins", "http_trusted_proxies", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("http_cors_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        """Each origin as a browser sends it, so that CORS and the cross-site check both
        match it (:func:`scheduler.weburls.origin`)."""
        return [origin(given) for given in value]

    @field_validator("http_trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for given in value:
            try:
                if given != "*":
                    ipaddress.ip_network(given, strict=False)
            except ValueError:
                raise ValueError(
                    f"{given!r} is not an IP address or network (e.g. 10.0.0.5, 10.0.0.0/8) or *"
                ) from None
        return value

    @field_validator("http_address")
    @classmethod
    def _check_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, _, port = value.rpartition(":")
        if not host or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
            raise ValueError(f"{value!r} is not HOST:PORT, e.g. 127.0.0.1:8123")
        return value

    @field_validator("api_key")
    @classmethod
    def _check_api_key(cls, value: str | None) -> str | None:
        # an empty key counted as set: the server listened on any address, and an empty
        # x-api-key header matched it
        if value is not None and not value.strip():
            raise ValueError("an empty or blank API key protects nothing; set a key or unset it")
        # a header's value loses the spaces at its ends and cannot hold a control character:
        # no client could send such a key (x-api-key, Authorization), every request got 403
        if value is not None and (value != value.strip(" \t") or _CONTROL.search(value)):
            raise ValueError(
                "the API key starts or ends with a space or holds a control character, which "
                "an HTTP header cannot carry; remove it"
            )
        return value

    @field_validator("callback_modules", mode="before")
    @classmethod
    def _split_modules(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("callback_modules")
    @classmethod
    def _check_modules(cls, value: list[str]) -> list[str]:
        for name in value:
            if not all(part.isidentifier() for part in name.split(".")):
                raise ValueError(f"{name!r} is not a module name such as 'myapp.notify'")
        return value

    def callback_policy(self) -> CallbackPolicy:
        """The callback policy these settings describe."""
        return CallbackPolicy(self.callback_modules)

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        if not zone_exists(value):
            raise ValueError(unknown_zone_message(value))
        return value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """The fields ``repr()`` and ``str()`` show: the URLs' passwords (``graph``, a
        server's ``user:password@``; ``database_url``) and the keys as ``***``."""
        for name, value in super().__repr_args__():
            if name in ("graph", "database_url") and isinstance(value, str):
                value = redacted(value)
            elif name in ("api_key", "webhook_secret") and value is not None:
                value = "***"
            yield name, value

    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL to use: ``database_url``, else the SQLite file ``db_path``."""
        if self.database_url:
            return self.database_url
        return sqlite_url(self.db_path)


def read_settings() -> Settings:
    """``Settings()``: from the environment and ``.env``, at the edge (the CLI, ``main.py``).

    Raises:
        SettingError: A value is bad; the error names its variable (``SCHEDULER_TIMEZONE``).
    """
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingError(
            [
                (
                    f"SCHEDULER_{str(error['loc'][0]).upper()}" if error["loc"] else "settings",
                    str(error["msg"]).removeprefix("Value error, "),  # (pydantic's wording)
                )
                for error in exc.errors()
            ]
        ) from None


def sqlite_url(path: str | PathLike[str]) -> str:
    """The SQLAlchemy URL of a SQLite file (absolute, so a ``chdir`` cannot move it)."""
    return f"sqlite:///{Path(path).expanduser().resolve()}"
