"""The HTTP server (``pip install -e '.[server]'``): the scheduler as a service that the
LangGraph SDK, programs and an operator's browser can use, in the scheduler's own process
and event loop.

* :mod:`~scheduler.server.crons`: the LangGraph server's crons contract
  (``langgraph_sdk.get_client(url=...).crons``) and the threads / runs endpoints the SDK
  needs to see what a cron did;
* :mod:`~scheduler.server.rest`: the native REST API (``/api/...``) for what the Python API
  does;
* :mod:`~scheduler.server.ops`: ``/healthz`` and ``/metrics`` (Prometheus);
* :mod:`~scheduler.server.guard`: the API key, request size and rate bounds;
* :mod:`~scheduler.server.http`: the app, and uvicorn in the scheduler's loop.
"""

from scheduler.server.http import HttpServer, check_address, create_app

__all__ = ["HttpServer", "check_address", "create_app"]
