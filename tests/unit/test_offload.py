"""The async API's thread (:class:`scheduler.offload.Offloader`): results, errors and
context variables as ``asyncio.to_thread`` gives them, a busy thread never queueing the next
call, and a caller that stops waiting."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from scheduler.offload import Offloader, call_soon_threadsafe

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")


async def test_results_errors_and_context_come_back_from_the_kept_thread() -> None:
    offload = Offloader()
    loop_thread = threading.get_ident()
    request_id.set("r-1")
    ran_on, seen = await offload.run(lambda: (threading.get_ident(), request_id.get()))
    assert ran_on != loop_thread and seen == "r-1"
    assert await offload.run(lambda: threading.get_ident()) == ran_on  # the same kept thread
    with pytest.raises(KeyError, match="missing"):
        await offload.run({}.__getitem__, "missing")
    assert await offload.run(sum, [1, 2, 3]) == 6  # an error does not end the thread
    offload.close()


async def test_a_call_while_the_kept_thread_is_busy_runs_beside_it() -> None:
    offload = Offloader()
    release = threading.Event()
    slow = asyncio.ensure_future(offload.run(release.wait, 10))
    await asyncio.sleep(0.05)  # the slow call holds the kept thread
    assert await asyncio.wait_for(offload.run(lambda: "quick"), timeout=5) == "quick"
    assert not slow.done()
    release.set()
    assert await slow is True
    offload.close()


async def test_a_caller_that_stops_waiting_leaves_the_thread_usable() -> None:
    offload = Offloader()
    release = threading.Event()
    waiting = asyncio.ensure_future(offload.run(release.wait, 10))
    await asyncio.sleep(0.05)
    waiting.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await offload.run(lambda: 1) == 1


async def test_closed_it_lets_its_thread_end_and_starts_a_new_one_when_used_again() -> None:
    name = "offload-close-test"
    offload = Offloader(name)

    def alive() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == name]

    assert await offload.run(lambda: threading.current_thread().name) == name
    offload.close()
    for _ in range(100):
        if not alive():
            break
        await asyncio.sleep(0.01)
    assert not alive()
    assert await offload.run(lambda: threading.current_thread().name) == name
    assert len(alive()) == 1
    offload.close()


async def test_used_again_right_after_close_the_closed_thread_ends() -> None:
    offload = Offloader("offload-reopen-test", spill=False)
    release = threading.Event()

    def wait() -> threading.Thread:
        release.wait(10)
        return threading.current_thread()

    busy = asyncio.ensure_future(offload.run(wait))
    await asyncio.sleep(0.1)
    offload.close()  # its end is queued behind the call it is making
    after = asyncio.ensure_future(offload.run(threading.current_thread))  # on a new thread
    await asyncio.sleep(0.1)
    release.set()
    closed, new = await busy, await after
    assert new is not closed  # the closed thread took no call after its end
    closed.join(timeout=2)
    assert not closed.is_alive()  # it took its own end: it does not wait for ever
    offload.close()


async def test_notices_to_the_loop_arrive_once_the_call_is_done_before_its_result() -> None:
    offload = Offloader()
    loop = asyncio.get_running_loop()
    seen: list[str] = []
    errors: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))

    def broken() -> None:
        raise RuntimeError("notice failed")

    def work() -> str:
        call_soon_threadsafe(loop, seen.append, "first")
        call_soon_threadsafe(loop, broken)
        call_soon_threadsafe(loop, seen.append, "second")
        time.sleep(0.05)  # a loop woken at the first notice would have run it by now
        seen.append("work done")  # this thread: before any notice ran on the loop
        return "result"

    assert await offload.run(work) == "result"
    assert seen == ["work done", "first", "second"]  # in order, and the broken one between
    assert [str(e["exception"]) for e in errors] == ["notice failed"]

    elsewhere: list[str] = []  # not on a kept thread: sent at once, as the loop's own does
    await asyncio.to_thread(call_soon_threadsafe, loop, elsewhere.append, "now")
    await asyncio.sleep(0)
    assert elsewhere == ["now"]
    offload.close()
