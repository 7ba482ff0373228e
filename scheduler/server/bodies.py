"""Request bodies read as pydantic models straight from their bytes, for the endpoints the
LangGraph SDK calls most: pydantic validates the JSON in one pass (in Rust), where FastAPI's
own body handling decodes it with ``json.loads`` and then validates the dict (about 15 us
more a request). A body that does not validate is a ``ValidationError``, answered 422 with
the field named by the app's handler; :func:`documented` keeps the body in the OpenAPI docs.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import HTTPException, Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from scheduler.limits import MAX_JSON_DEPTH, MAX_OFFSET, json_depth

__all__ = ["CronIn", "CronPatch", "CronSearch", "documented", "not_json", "read_body"]

M = TypeVar("M", bound=BaseModel)


async def read_body(request: Request, model: type[M]) -> M:
    """The request's JSON body as ``model`` (an empty body is ``{}``). A body pydantic's
    parser refuses but ``json`` reads (nested deeper than the parser goes, half of a UTF-16
    pair, NaN) is validated from what ``json`` reads, so that the error names the field
    (the model's own checks refuse those values).

    Raises:
        pydantic.ValidationError: Not JSON, or not a valid ``model``.
    """
    raw = await request.body() or b"{}"
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if not any(error["type"] == "json_invalid" for error in exc.errors()):
            raise _of_body(exc) from None
        try:
            decoded = json.loads(raw)
        except (ValueError, RecursionError):
            raise _of_body(exc) from None
    for key, value in decoded.items() if isinstance(decoded, dict) else ():
        try:  # pydantic would pass such text on, and replace it when it writes JSON
            json.dumps({key: value}, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise HTTPException(422, f"{key}: holds text that is not valid Unicode") from None
        except (ValueError, TypeError, RecursionError):
            pass  # the model's checks name what is wrong with it
    try:
        return model.model_validate(decoded)
    except ValidationError as exc:
        raise _of_body(exc) from None


def _of_body(exc: ValidationError) -> Exception:
    """``exc``; or a 422 naming ``body`` when the body as a whole is wrong (not JSON, or
    JSON but no object), which pydantic places nowhere."""
    for error in exc.errors():
        if not error["loc"]:
            message = str(error["msg"])
            if error["type"] == "json_invalid":
                return HTTPException(422, not_json(message.removeprefix("Invalid JSON: ")))
            return HTTPException(422, f"body: {message}")
    return exc


def not_json(why: str) -> str:
    """The answer to a body that is no JSON this server reads (``why``: the parser's word)."""
    return f"body: not JSON this server can read: {why}"


def documented(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its body with :func:`read_body`."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


# -- the LangGraph crons API (scheduler.server.crons) -------------------------------------


class CronConfig(BaseModel):
    """A cron's ``config``: any keys, and ``configurable`` an object."""

    model_config = ConfigDict(extra="allow")

    configurable: dict[str, Any] | None = None


def _shallow(value: Any) -> Any:
    """A cron's field nested no deeper than its task keeps a value (pydantic's own JSON
    goes deeper than its serializer, which a cron's payload is written with: a 500)."""
    if json_depth(value, limit=MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep")
    return value


# the fields a creation may leave out but not send as null (the LangGraph server's schema)
_NOT_NULL = ("schedule", "input", "metadata", "config", "context", "webhook", "end_time",
             "enabled", "timezone", "on_run_completed")  # fmt: skip


class CronPatch(BaseModel):
    """``PATCH /runs/crons/{cron_id}``: the fields to change (a creation's fields too)."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Annotated[Any, AfterValidator(_shallow)]]

    schedule: str | None = None
    input: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    config: CronConfig | None = None
    context: dict[str, Any] | None = None
    webhook: str | None = None
    end_time: datetime | None = None
    enabled: bool | None = Field(default=None, strict=True)  # not 1, not "yes"
    timezone: str | None = None
    on_run_completed: Literal["delete", "keep"] | None = None
    multitask_strategy: str | None = None

    _bounded = field_validator("input", "metadata", "config", "context", mode="before")(_shallow)

    @field_validator("end_time", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:  # (pydantic reads a number as seconds since 1970)
        if value is not None and not isinstance(value, str | datetime):
            raise ValueError("a date and time as text, such as '2030-01-01T00:00:00+00:00'")
        return value

    @field_validator("timezone")
    @classmethod
    def _named(cls, value: str | None) -> str | None:  # ("" fired in UTC, and read back "")
        if value is not None and not value.strip():
            raise ValueError("no time zone named; give an IANA name such as 'UTC', or none")
        return value


class CronIn(CronPatch):
    """``POST /runs/crons`` (and for a thread): the SDK's fields. One sent as null is a
    422, as the LangGraph server answers (the SDK leaves out a field it has no value for;
    ``multitask_strategy`` null is its default, as there)."""

    assistant_id: str

    @field_validator(*_NOT_NULL, mode="before")
    @classmethod
    def _given(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("null is no value here: leave the field out")
        return value


# the fields a search may select: a Cron's (the SDK's CronSelectField also has "now", which
# no Cron has and the LangGraph server refuses)
CronField = Literal[
    "cron_id", "assistant_id", "thread_id", "end_time", "schedule", "timezone", "created_at",
    "updated_at", "user_id", "payload", "next_run_date", "metadata", "on_run_completed",
    "enabled",
]  # fmt: skip


class CronSearch(BaseModel):
    """``POST /runs/crons/search`` and ``/count``."""

    model_config = ConfigDict(extra="allow")

    assistant_id: str | None = None
    thread_id: str | None = None
    enabled: bool | None = Field(default=None, strict=True)
    metadata: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=1, le=1000, strict=True)  # not "5", not true
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET, strict=True)
    sort_by: str | None = None
    sort_order: Literal["asc", "desc"] | None = None
    select: list[CronField] | None = None
