"""A graph on a LangGraph server as the execution engine: each firing becomes a run on the
server (``langgraph dev``, LangGraph Platform, any server of the LangGraph API), through
the official SDK's runs API.

``SCHEDULER_GRAPH=http://127.0.0.1:2024#agent`` names the server and the assistant (or
graph id; the part after ``#``, default ``agent``). For each run the scheduler:

* runs on the server thread of the run's thread: a task's ``thread_id`` that is not a UUID
  (the server wants one) maps to a stable UUID (``uuid5``), so every firing of the task
  continues the same server thread; a fresh run gets a fresh thread (created if missing);
* sends the input (or, to answer an ``interrupt()``, ``command={"resume": ...}``, once
  :meth:`ServerGraph.aget_state` shows the thread still waits at the run's question; at a
  static breakpoint, no input and no command, as the server's docs resume one), the
  context, the ``run_name`` and ``tags`` in the config and the run metadata (task id,
  scheduled time, attempt; the scheduler's run id as ``scheduler_run_id``, since the
  server keeps ``run_id`` for its own) as the server run's ``metadata``;
* streams the run's values; once the stream ends, reads how the server's run ended (one
  ``GET``, asked again for a few seconds while the server cannot answer): only a run the
  server records ``success`` succeeds here, with its last values as the result, or is
  ``waiting`` when they hold an ``__interrupt__`` (the graph stopped for a human), or when
  its last checkpoint still has nodes to run (a static breakpoint, ``interrupt_before`` /
  ``interrupt_after``: :func:`scheduler.remote_outcomes.with_breakpoint`); a run
  the server records otherwise (``interrupted``: cancelled there, by another client or
  because the stream was cut short; ``error``, ``timeout``) fails the attempt, so the
  task's retry policy applies;
* cancels the server's run when the run here is cancelled (a timeout, a stop; one cut
  short before the server said which run it made is looked up by its metadata), but not
  when it is let go of because another process owns it now (:mod:`scheduler.handover`);
* fails the run on a connection error or a server error (an HTTP error status), so the
  task's retry policy applies (and cancels the server's run: nothing here watches it);
* leaves the server's run going when this process dies (``on_disconnect="continue"``):
  the retry of the attempt adopts it instead of starting another (:meth:`ServerGraph.aadopt`,
  :mod:`scheduler.remote_attempts`), so the graph runs once.

The API key, if the server needs one, comes from ``LANGGRAPH_API_KEY`` (the SDK's own
variable); a ``user:password@`` in the URL is sent as HTTP basic auth, and kept out of
the URL that log lines and errors show (also the error that refuses the URL:
:func:`scheduler.weburls.server_target`). What the server sends is bounded: one streamed
event (or one answer that is not a stream) of more than :data:`MAX_EVENT_BYTES` fails the
run, where the SDK would hold it all in memory; its error texts (an ``error`` event, the
body of an HTTP error) are kept at most 2,000 characters, control characters escaped.

The SDK client (its ``httpx`` connections) belongs to the event loop that made it: each
event loop that runs the graph gets its own (``aclose`` closes the current loop's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import uuid
import weakref
from collections.abc import AsyncIterator, Sequence
from types import SimpleNamespace
from typing import Any

import httpx
from langgraph.types import Command
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import LangGraphError

from scheduler.handover import handed_over
from scheduler.records import RunRecord
from scheduler.remote_attempts import find_adoption, going_runs_of
from scheduler.remote_outcomes import (
    NOTHING,
    ServerRunError,
    error_text,
    final_status,
    http_error_text,
    ids_of,
    result_of,
    with_breakpoint,
)
from scheduler.weburls import server_target

__all__ = ["MAX_EVENT_BYTES", "ServerGraph", "ServerRunError", "server_thread_id"]

logger = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("6f1d5f0a-8b1e-4bb6-9d1a-5c2f2f6d7a10")

#: The most one server-sent event (or one answer that is not a stream) may hold, in bytes.
MAX_EVENT_BYTES = 32 * 1024 * 1024
# an SSE event ends at an empty line; a line ends with \r\n, \r or \n (atomic groups: a
# \r\n is one line end, not an \r and an empty line)
_EVENT_END = re.compile(rb"(?>\r\n|\r|\n)(?>\r\n|\r|\n)")


def server_thread_id(thread_id: str) -> str:
    """The server thread for a scheduler thread id: itself if a UUID, else one made of it."""
    try:
        return str(uuid.UUID(thread_id))
    except ValueError:
        return str(uuid.uuid5(_NAMESPACE, thread_id))


class ServerGraph:
    """A LangGraph server's assistant, invoked like a compiled graph (``ainvoke``).

    Args:
        target: ``http(s)://host:port#assistant``.
    """

    context_schema = None  # the server builds the context from its own schema defaults

    def __init__(self, target: str) -> None:
        url, self.assistant_id = server_target(target)
        # user:password@ (a proxy's basic auth) is sent as a header, never kept in the URL:
        # httpx logs every request's URL, and an error names the server
        self._auth = httpx.BasicAuth(url.username, url.password) if url.userinfo else None
        self.url = str(url.copy_with(userinfo=b""))
        # one client per event loop: its connections are the loop's (a second asyncio.run()
        # would otherwise use those of the first, closed loop: "Event loop is closed")
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def client(self) -> Any:
        """The SDK client of the running event loop (made on first use in it)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            # the key is LANGGRAPH_API_KEY's only: the SDK would otherwise send a LangSmith
            # key set for tracing (LANGSMITH_API_KEY, LANGCHAIN_API_KEY) to this server
            key = os.environ.get("LANGGRAPH_API_KEY") or None
            made = get_client(url=self.url, api_key=key).http.client  # its headers, timeouts
            client = self._clients[loop] = LangGraphClient(
                httpx.AsyncClient(
                    base_url=made.base_url,
                    headers=made.headers,
                    timeout=made.timeout,
                    auth=self._auth,
                    transport=_Bounded(httpx.AsyncHTTPTransport(retries=5)),  # the SDK's own
                )
            )
        return client

    async def aclose(self) -> None:
        """Close the running event loop's client (a later run opens new connections)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def __repr__(self) -> str:
        return f"<ServerGraph {self.url}#{self.assistant_id}>"

    async def ainvoke(
        self, input: Any, config: dict[str, Any] | None = None, *, context: Any = None
    ) -> Any:
        """Run on the server and return the run's last values (see the module doc)."""
        config = dict(config or {})
        configurable = dict(config.get("configurable") or {})
        thread_id = server_thread_id(str(configurable.pop("thread_id", uuid.uuid4())))
        command: dict[str, Any] | None = None
        payload: Any = input
        if isinstance(input, Command):
            command, payload = {"resume": input.resume}, None
            state = await self.aget_state(config)
            if state.next and not state.interrupts:  # a static breakpoint: resumed with
                command = None  # no input, as the server's docs resume one
        server_config: dict[str, Any] = {
            key: config[key] for key in ("run_name", "tags", "recursion_limit") if key in config
        }
        if configurable:
            server_config["configurable"] = configurable
        metadata = dict(config.get("metadata") or {})
        if "run_id" in metadata:  # the server keeps "run_id" for its own run's id
            metadata["scheduler_run_id"] = metadata["run_id"]
        created: dict[str, Any] = {}
        values: Any = NOTHING
        try:
            async for part in self.client.runs.stream(
                thread_id,
                self.assistant_id,
                input=payload,
                command=command,
                stream_mode="values",
                metadata=metadata,
                config=server_config,
                context=context,
                if_not_exists="create",
                # the run outlives a process that dies while it goes on (the server would
                # cancel it half-way): the retry adopts it (scheduler.remote_attempts)
                on_disconnect="continue",
                on_run_created=created.update,
            ):
                if part.event == "values":
                    values = part.data
                elif part.event == "metadata" and isinstance(part.data, dict):
                    created.setdefault("run_id", part.data.get("run_id"))
                elif part.event == "error":
                    raise ServerRunError(error_text(part.data))
            run_id = error_text(str(created.get("run_id") or ""))[:100]
            if not run_id:
                raise ServerRunError(
                    f"the server did not say which run it made (thread {thread_id}), so how "
                    "the run ended is not known"
                )
            status = await final_status(
                self.client, thread_id, run_id, cancel=self._cancel, url=self.url
            )
            if status == "success":  # (stopped at a static breakpoint: waiting)
                values = await with_breakpoint(self.client, thread_id, run_id, values)
        except BaseException as exc:
            # alive, this process no longer watches the run: cancelled (a timeout, a stop,
            # a stream that failed), as the server cancelled it on a disconnect before;
            # unless another process owns the run now: its retry adopts the server's run
            found = created.get("run_id") and [created]  # (else: cut short before the
            # server said which run it made, which it made all the same: looked up)
            for run in found or await going_runs_of(self.client, thread_id, metadata):
                await self._let_go(thread_id, ids_of(run)[1], config)
            if isinstance(exc, httpx.HTTPError | LangGraphError):  # (the server's text)
                raise ServerRunError(http_error_text(exc, self.url)) from None
            raise
        return result_of(status, values, run_id, thread_id)

    async def aadopt(
        self, earlier: Sequence[RunRecord], config: dict[str, Any], *, ended: bool = False
    ) -> Any:
        """For a retry (``earlier``: the attempts it follows, newest first): the server run
        of one of them that it adopts instead of starting one, waited for, as ``(values,
        thread)`` (the thread of that attempt, where the run is); None when a run is to be
        started. ``ended``: one that ended in failure there is adopted too (its error
        raised). See :mod:`scheduler.remote_attempts`."""
        threads = {a.thread_id: server_thread_id(a.thread_id) for a in earlier if a.thread_id}
        thread_id = run_id = ""
        try:
            found = await find_adoption(self.client, earlier, threads, ended=ended)
            for run in found.stale:
                await self._cancel(*ids_of(run))
            if found.run is None:
                return None
            thread_id, run_id = ids_of(found.run)
            metadata = config.get("metadata") or {}
            logger.info(
                "task %s run %s adopts the server's run %s (thread %s, %s) of an earlier "
                "attempt instead of starting one",
                metadata.get("task_id"),
                metadata.get("run_id"),
                run_id,
                thread_id,
                error_text(found.run.get("status"))[:100],
            )
            values = await self.client.runs.join(thread_id, run_id)
            status = await final_status(
                self.client, thread_id, run_id, cancel=self._cancel, url=self.url
            )
            if status == "success" and isinstance(values, dict) and "__error__" not in values:
                values = await with_breakpoint(self.client, thread_id, run_id, values)
        except BaseException as exc:
            if run_id:  # no longer watched here: cancelled, as a run of its own would be
                await self._let_go(thread_id, run_id, config)
            if isinstance(exc, httpx.HTTPError | LangGraphError):
                raise ServerRunError(http_error_text(exc, self.url)) from None
            raise
        values = values if isinstance(values, dict) and "__error__" not in values else NOTHING
        return result_of(status, values, run_id, thread_id), found.thread

    async def aget_state(self, config: dict[str, Any]) -> Any:
        """The server thread's state, as far as an answer needs it: ``interrupts``, the
        questions it waits at (each with its ``id``), so that an answer never goes to
        another run's question (:func:`scheduler.invocation.question_gone`); ``next``, the
        nodes still to run (with no question: stopped at a static breakpoint)."""
        thread = str((config.get("configurable") or {}).get("thread_id"))
        try:
            state = await self.client.threads.get_state(server_thread_id(thread))
        except (httpx.HTTPError, LangGraphError) as exc:
            raise ServerRunError(http_error_text(exc, self.url)) from None
        state = state if isinstance(state, dict) else {}
        asked = [i.get("id") for i in state.get("interrupts") or () if isinstance(i, dict)]
        following = state.get("next") if isinstance(state.get("next"), list) else []
        where = state.get("checkpoint") if isinstance(state.get("checkpoint"), dict) else {}
        return SimpleNamespace(
            interrupts=[SimpleNamespace(id=i) for i in asked if i],
            next=following,
            config={"configurable": where},  # (a static breakpoint's question id)
        )

    async def _let_go(self, thread_id: str, run_id: str, config: dict[str, Any]) -> None:
        """This process stops watching the server's run ``run_id``: cancelled there, unless
        the run here is let go of because another process owns it now (a lost lead, a lost
        lease: :mod:`scheduler.handover`), whose retry adopts it or cancels it."""
        if not handed_over():
            await asyncio.shield(self._cancel(thread_id, run_id))
            return
        metadata = config.get("metadata") or {}
        logger.warning(
            "task %s run %s: another process owns the run now; the server's run %s (thread "
            "%s) is left going for its retry to adopt",
            metadata.get("task_id"),
            metadata.get("run_id"),
            run_id,
            thread_id,
        )

    async def _cancel(self, thread_id: str, run_id: str) -> None:
        with contextlib.suppress(Exception):  # best effort (a retry cancels a run still
            async with asyncio.timeout(5):  # going that it does not adopt)
                await self.client.runs.cancel(thread_id, run_id)
                logger.info("cancelled run %s on %s (thread %s)", run_id, self.url, thread_id)


class _Bounded(httpx.AsyncBaseTransport):
    """The SDK's transport, with every answer's body read through :class:`_BoundedBody`
    (the SDK's SSE decoder keeps an event's lines until the event ends, without a limit:
    a server that never ends one would fill the memory)."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # bytes are counted as they come: a compressed answer would be bounded before it is
        # inflated (408 KB of gzip were a 419 MB answer), so none is asked for or taken
        request.headers["accept-encoding"] = "identity"
        response = await self._transport.handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            await response.aclose()
            raise ServerRunError(
                f"the server sent a {encoding!r}-encoded answer, though asked for none"
            )
        streamed = "text/event-stream" in response.headers.get("content-type", "")
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_BoundedBody(response.stream, events=streamed),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._transport.aclose()


class _BoundedBody(httpx.AsyncByteStream):
    """A body that fails once :data:`MAX_EVENT_BYTES` arrive without an event's end
    (``events``), or at all."""

    def __init__(self, stream: httpx.AsyncByteStream, *, events: bool) -> None:
        self._stream, self._events = stream, events

    async def __aiter__(self) -> AsyncIterator[bytes]:
        pending, tail = 0, b""  # bytes since the last event's end; the last 3 bytes seen
        async for chunk in self._stream:
            pending += len(chunk)
            if self._events:
                seen = tail + chunk
                ends = [m.end() for m in _EVENT_END.finditer(seen)]
                if ends:
                    pending = len(seen) - ends[-1]
                tail = seen[-3:]
            if pending > MAX_EVENT_BYTES:
                what = "one event" if self._events else "an answer"
                raise ServerRunError(
                    f"the server sent {what} of more than {MAX_EVENT_BYTES:,} bytes "
                    "(scheduler.remote.MAX_EVENT_BYTES); the run is failed"
                )
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()
