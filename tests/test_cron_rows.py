"""What the crons API stores for a cron: its input, metadata and context once (the task's
own fields), not again in the payload and fields it keeps to answer the SDK; rows written
before, which hold them three times, answered the same. A real scheduler on a SQLite file,
through httpx's ASGI transport."""

from __future__ import annotations

from typing import Any

import httpx

from scheduler.server.crons import CRONS_SOURCE
from tests import test_http_edges
from tests.test_http_edges import cron

api = test_http_edges.api  # the fixture: a client of a started scheduler (``.scheduler``)


def _stored(api: httpx.AsyncClient, cron_id: str) -> str:
    """The JSON of the cron's row, as stored."""
    stored = api.scheduler.get_task(cron_id).stored  # type: ignore[attr-defined]
    assert isinstance(stored, str)
    return stored


async def test_a_crons_input_metadata_and_context_are_stored_once(api: httpx.AsyncClient) -> None:
    sent = {"input": {"q": "in-7f3a"}, "metadata": {"m": "md-7f3a"}, "context": {"c": "cx-7f3a"}}
    made = await api.post("/runs/crons", json=cron(api, **sent))
    assert made.status_code == 200, made.text
    cron_id = made.json()["cron_id"]
    for marker in ("in-7f3a", "md-7f3a", "cx-7f3a"):
        assert _stored(api, cron_id).count(marker) == 1, _stored(api, cron_id)
    got = (await api.get(f"/runs/crons/{cron_id}")).json()
    assert {key: got["payload"][key] for key in sent} == sent
    assert got["metadata"] == sent["metadata"]

    patched = await api.patch(f"/runs/crons/{cron_id}", json={"input": {"q": "in-9c1d"}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["payload"]["input"] == {"q": "in-9c1d"}
    assert patched.json()["payload"]["context"] == sent["context"]
    assert "in-7f3a" not in _stored(api, cron_id)
    assert _stored(api, cron_id).count("in-9c1d") == 1


async def test_a_cron_stored_with_its_values_three_times_answers_the_same(
    api: httpx.AsyncClient,
) -> None:
    """A row of an earlier version: its payload and fields hold the values, which may be
    older than the task's (changed through REST since); the task's are answered."""
    made = (await api.post("/runs/crons", json=cron(api, input={"q": 1}, metadata={}))).json()
    cron_id = made["cron_id"]
    scheduler = api.scheduler  # type: ignore[attr-defined]
    task = scheduler.get_task(cron_id).definition
    request: dict[str, Any] = dict(task.request)
    for part in ("payload", "fields"):
        request[part] = {**request[part], "input": {"q": "old"}, "metadata": {}}
    scheduler.add_task(
        task.model_copy(update={"request": request, "input": {"q": 2}}), source=CRONS_SOURCE
    )
    got = (await api.get(f"/runs/crons/{cron_id}")).json()
    assert (got["payload"]["input"], got["payload"]["metadata"]) == ({"q": 2}, {})
    patched = (await api.patch(f"/runs/crons/{cron_id}", json={"enabled": False})).json()
    assert patched["payload"]["input"] == {"q": 2} and patched["enabled"] is False
    assert '"old"' not in _stored(api, cron_id)  # rewritten the lean way
