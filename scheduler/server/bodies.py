"""Request bodies read as pydantic models straight from their bytes, for the endpoints the
LangGraph SDK calls most: pydantic validates the JSON in one pass (in Rust), where FastAPI's
own body handling decodes it with ``json.loads`` and then validates the dict (about 15 us
more a request). A body that does not validate is a ``ValidationError``, answered 422 with
the field named by the app's handler; :func:`documented` keeps the body in the OpenAPI docs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeVar

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from scheduler.limits import MAX_OFFSET

__all__ = ["CronIn", "CronPatch", "CronSearch", "documented", "read_body"]

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, model: type[M]) -> M:
    """The request's JSON body as ``model`` (an empty body is ``{}``).

    Raises:
        pydantic.ValidationError: Not JSON, or not a valid ``model``.
    """
    return model.model_validate_json(await request.body() or b"{}")


def documented(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its body with :func:`read_body`."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


# -- the LangGraph crons API (scheduler.server.crons) -------------------------------------


class CronConfig(BaseModel):
    """A cron's ``config``: any keys, and ``configurable`` an object."""

    model_config = ConfigDict(extra="allow")

    configurable: dict[str, Any] | None = None


class CronPatch(BaseModel):
    """``PATCH /runs/crons/{cron_id}``: the fields to change (a creation's fields too)."""

    model_config = ConfigDict(extra="allow")

    schedule: str | None = None
    input: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    config: CronConfig | None = None
    context: dict[str, Any] | None = None
    webhook: str | None = None
    end_time: datetime | None = None
    enabled: bool | None = None
    timezone: str | None = None
    on_run_completed: Literal["delete", "keep"] | None = None


class CronIn(CronPatch):
    """``POST /runs/crons`` (and for a thread): the SDK's fields."""

    assistant_id: str
    multitask_strategy: str | None = None


# the fields a search may select (the SDK's CronSelectField)
CronField = Literal[
    "cron_id", "assistant_id", "thread_id", "end_time", "schedule", "timezone", "created_at",
    "updated_at", "user_id", "payload", "next_run_date", "metadata", "now",
    "on_run_completed", "enabled",
]  # fmt: skip


class CronSearch(BaseModel):
    """``POST /runs/crons/search`` and ``/count``."""

    model_config = ConfigDict(extra="allow")

    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    sort_by: str | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[CronField] | None = None
