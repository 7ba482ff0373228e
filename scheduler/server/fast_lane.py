"""The endpoints the LangGraph SDK calls most, served without FastAPI's routing.

A search of crons does about 0.02 ms of its own work; FastAPI's routing and request
handling around it (matching the path against every route, solving the endpoint's
dependencies, wrapping the answer) were three quarters of its time in-process. These
endpoints take only the :class:`~starlette.requests.Request` and read their own body, so
the lane calls them directly for their exact method and path, behind the same exception
handlers, the guard and any CORS middleware. They stay on FastAPI's router as well, which
documents them (``/docs``) and answers every other method or spelling of their paths.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response

from scheduler.server.guard import App, Receive, Scope, Send
from scheduler.server.replies import JsonReply

__all__ = ["FastLane", "lanes_of"]

Endpoint = Callable[[Request], Awaitable[Any]]


def lanes_of(router: APIRouter, endpoints: Iterable[Endpoint]) -> dict[tuple[str, str], Endpoint]:
    """``(method, path)`` of each of ``endpoints`` as the routes of ``router`` (included in
    the app without a prefix) declare it.

    Raises:
        ValueError: An endpoint that is not a route of ``router``, or one with path
            parameters.
    """
    wanted = set(endpoints)
    lanes: dict[tuple[str, str], Endpoint] = {}
    for route in router.routes:
        if isinstance(route, APIRoute) and route.endpoint in wanted:
            if route.param_convertors:
                raise ValueError(f"{route.path}: a fast lane takes fixed paths only")
            wanted.discard(route.endpoint)
            lanes.update({(method, route.path): route.endpoint for method in route.methods or ()})
    if wanted:
        raise ValueError(f"not routes of the router: {sorted(e.__name__ for e in wanted)}")
    return lanes


class FastLane:
    """An ASGI middleware (the innermost of the app's own, so that CORS and the error page
    stay around it) that answers ``lanes`` itself and passes every other request on.

    Args:
        app: The rest of the application.
        lanes: The endpoint of each ``(method, path)``, from :func:`lanes_of`.
        handlers: The app's exception handlers (``app.exception_handlers``): an error of an
            endpoint here is answered as it is through the router.
    """

    def __init__(
        self,
        app: App,
        *,
        lanes: Mapping[tuple[str, str], Endpoint],
        handlers: Mapping[Any, Any],
    ) -> None:
        self.app = app
        self.lanes = dict(lanes)
        # as FastAPI builds its own ExceptionMiddleware: 500 / Exception go to the error page
        kept = {k: v for k, v in handlers.items() if k not in (500, Exception)}
        self.handled = ExceptionMiddleware(self._serve, handlers=kept)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and not scope.get("root_path")
            and (scope["method"], scope["path"]) in self.lanes
        ):
            await self.handled(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.lanes[scope["method"], scope["path"]]
        answer = await endpoint(Request(scope, receive, send))
        response = answer if isinstance(answer, Response) else JsonReply(answer)
        await response(scope, receive, send)
