"""JSON responses encoded by pydantic-core (in Rust): several times faster than
``json.dumps``, and what every endpoint answers with (the app's default response class)."""

from __future__ import annotations

import base64
from typing import Any

import pydantic_core
from fastapi.responses import JSONResponse

__all__ = ["JsonReply", "StateReply", "encode", "encode_state"]


def encode(content: Any) -> bytes:
    """``content`` as compact JSON (datetimes as ISO 8601)."""
    return pydantic_core.to_json(content)


class JsonReply(JSONResponse):
    """A ``JSONResponse`` that encodes with :func:`encode`."""

    def render(self, content: Any) -> bytes:
        return encode(content)


def encode_state(content: Any) -> bytes:
    """A graph's values as the LangGraph server encodes them (its serde's ``default``):
    bytes as standard base64 (not UTF-8 text: bytes that are not failed the whole answer),
    NaN and the infinities as ``null`` (not JSON's missing ``NaN``, which the SDK cannot
    read), a timedelta as its seconds, a message (any pydantic model) as its
    ``model_dump()``, any other value JSON has no form for as its ``str()``."""
    return pydantic_core.to_json(
        _bytes_as_base64(content), fallback=str, inf_nan_mode="null", timedelta_mode="float"
    )


def _bytes_as_base64(value: Any) -> Any:
    """``value`` with the bytes in its dicts, lists and tuples as base64 text."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {key: _bytes_as_base64(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_bytes_as_base64(item) for item in value]
    return value


class StateReply(JsonReply):
    """A reply that holds a graph's values (:func:`encode_state`)."""

    def render(self, content: Any) -> bytes:
        return encode_state(content)
