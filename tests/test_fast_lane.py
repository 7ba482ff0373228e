"""The fast lane (``scheduler/server/fast_lane.py``): the SDK's create, search and count of
crons are answered without FastAPI's router, exactly as the router answers them (errors
included), inside CORS, and are still documented; every other request reaches the router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from scheduler.server import create_app
from scheduler.server.crons import graph_id
from scheduler.server.fast_lane import FastLane
from tests.conftest import SchedulerFactory


def _client(app: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


def _without_lane(guard: Any) -> Any:
    """The same application with the lane taken out before its middleware is built."""
    inner = guard.app
    inner.user_middleware = [m for m in inner.user_middleware if m.cls is not FastLane]
    return guard


def _lane_of(guard: Any) -> FastLane:
    node = guard.app.middleware_stack  # (built by the first request)
    while not isinstance(node, FastLane):
        node = node.app
    return node


@pytest.fixture
async def two(make_scheduler: SchedulerFactory) -> AsyncIterator[tuple[Any, Any, str]]:
    """Two clients of one scheduler: through the lane, and through the router only."""
    scheduler = make_scheduler(http_rate_per_second=0)
    scheduler.start()
    lane = _client(create_app(scheduler, scheduler.settings))
    router = _client(_without_lane(create_app(scheduler, scheduler.settings)))
    async with lane, router:
        yield lane, router, graph_id(scheduler.settings.graph)


def _same_shape(answer: httpx.Response) -> Any:
    """An answer without what differs from one create to the next (the cron's id, times)."""
    try:
        body = answer.json()
    except ValueError:
        return answer.status_code, answer.text
    if isinstance(body, dict) and "cron_id" in body:
        body = {k: v for k, v in body.items() if k not in ("cron_id", "created_at", "updated_at")}
        body["payload"]["config"]["configurable"].pop("cron_id")
    return answer.status_code, answer.headers["content-type"], body


def _requests(assistant: str) -> list[tuple[str, dict[str, Any]]]:
    good = {"assistant_id": assistant, "schedule": "0 9 * * *", "input": {"n": 1}}
    return [
        ("/runs/crons", {"json": good}),
        ("/runs/crons", {"json": {**good, "metadata": {"team": "a"}, "timezone": "Asia/Tokyo"}}),
        ("/runs/crons", {"json": {"assistant_id": assistant}}),  # no schedule
        ("/runs/crons", {"json": {**good, "schedule": "0 25 * * *"}}),
        ("/runs/crons", {"json": {**good, "multitask_strategy": "interrupt"}}),
        ("/runs/crons", {"json": {**good, "assistant_id": "nope"}}),
        ("/runs/crons", {"json": [good]}),  # not an object
        ("/runs/crons", {"content": b'{"schedule": '}),  # not JSON
        ("/runs/crons", {"content": b"\xff\xfe"}),  # not UTF-8
        ("/runs/crons/search", {"json": {}}),
        ("/runs/crons/search", {"json": {"metadata": {"team": "a"}, "select": ["schedule"]}}),
        ("/runs/crons/search", {"json": {"sort_by": "schedule"}}),
        ("/runs/crons/search", {"json": {"limit": -1}}),
        ("/runs/crons/search", {"content": b""}),
        ("/runs/crons/count", {"json": {"assistant_id": assistant}}),
        ("/runs/crons/count", {"json": {"metadata": "x"}}),
    ]


async def test_the_lane_answers_as_the_router_does(two: tuple[Any, Any, str]) -> None:
    lane, router, assistant = two
    for path, sent in _requests(assistant):
        through_lane = await lane.post(path, **sent)
        through_router = await router.post(path, **sent)
        assert _same_shape(through_lane) == _same_shape(through_router), (path, sent)
    assert (await lane.post("/runs/crons/count", json={})).json() == 4  # two made by each


async def test_only_the_sdk_calls_take_the_lane(two: tuple[Any, Any, str]) -> None:
    lane, _, assistant = two
    made = await lane.post("/runs/crons", json={"assistant_id": assistant, "schedule": "0 8 * * *"})
    guard = lane._transport.app  # type: ignore[attr-defined]
    passed: list[tuple[str, str]] = []
    behind = _lane_of(guard).app

    async def counted(scope: Any, receive: Any, send: Any) -> None:
        passed.append((scope["method"], scope["path"]))
        await behind(scope, receive, send)

    _lane_of(guard).app = counted
    for path in ("/runs/crons", "/runs/crons/search", "/runs/crons/count"):
        sent = {"assistant_id": assistant, "schedule": "0 9 * * *"} if path == "/runs/crons" else {}
        assert (await lane.post(path, json=sent)).status_code == 200, path
    assert passed == []
    cron_path = f"/runs/crons/{made.json()['cron_id']}"
    answers = [
        await lane.get(cron_path),
        await lane.get("/runs/crons/search"),  # another method: the router's (a cron id)
        await lane.post("/runs/crons/search/", json={}),  # another spelling
    ]
    assert answers[0].json()["cron_id"] == made.json()["cron_id"]
    assert passed == [
        ("GET", cron_path), ("GET", "/runs/crons/search"), ("POST", "/runs/crons/search/")
    ]  # fmt: skip
    documented = (await lane.get("/openapi.json")).json()["paths"]
    for path in ("/runs/crons", "/runs/crons/search", "/runs/crons/count"):
        assert "post" in documented[path], path


async def test_cors_is_around_the_lane(make_scheduler: SchedulerFactory) -> None:
    front = "http://localhost:3000"
    scheduler = make_scheduler(http_rate_per_second=0, http_cors_origins=[front])
    scheduler.start()
    async with _client(create_app(scheduler, scheduler.settings)) as c:
        headers = {"origin": front, "sec-fetch-site": "same-site"}
        for path in ("/runs/crons/search", "/runs/crons/count"):
            answer = await c.post(path, json={}, headers=headers)
            assert answer.status_code == 200, path
            assert answer.headers["access-control-allow-origin"] == front, path
