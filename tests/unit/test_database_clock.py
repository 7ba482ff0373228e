"""The database's time (:class:`scheduler.clock.DatabaseClock`): this machine's clock plus a
measured offset, kept through the round trip's noise and through a failed read."""

from __future__ import annotations

import pytest

from scheduler.clock import DatabaseClock


class Machine:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_the_offset_is_measured_at_first_use_and_kept_through_noise() -> None:
    machine = Machine()
    database = {"ahead": 60.0, "reads": 0}

    def read() -> float:
        database["reads"] += 1
        machine.now += 0.002  # the round trip
        return machine.now - 0.001 + database["ahead"]

    clock = DatabaseClock(read, machine)
    assert clock() == pytest.approx(machine.now + 60)
    assert database["reads"] == 2 and not clock.due()  # two reads, the shorter one kept
    clock()
    clock()
    assert database["reads"] == 2  # measured once, not at every reading
    machine.now += DatabaseClock.EVERY
    assert clock.due()
    database["ahead"] = 60.004  # within the noise: the clock does not move
    clock.measure()
    assert clock.offset == pytest.approx(60.0)
    database["ahead"] = 58.0  # a real change
    clock.measure()
    assert clock.offset == pytest.approx(58.0)


def test_a_failed_read_keeps_the_last_offset_and_waits_before_asking_again() -> None:
    machine = Machine()
    failing = {"on": True}

    def read() -> float:
        if failing["on"]:
            raise OSError("database down")
        return machine.now + 5

    clock = DatabaseClock(read, machine)
    assert clock() == machine.now  # no offset yet; the error is not the reader's
    assert not clock.due()  # asked again at the supervisor's next measure, not at once
    with pytest.raises(OSError, match="database down"):
        clock.measure()
    failing["on"] = False
    clock.measure()
    assert clock() == pytest.approx(machine.now + 5)


def test_the_read_that_opened_a_connection_does_not_set_the_offset() -> None:
    machine = Machine()
    # the first read connects first (78 ms), then asks; the second is a warm round trip
    trips = iter([(0.079, 0.001), (0.001, 0.001)])

    def read() -> float:
        there, back = next(trips)
        machine.now += there
        database_now = machine.now + 30.0  # the database is 30 s ahead
        machine.now += back
        return database_now

    clock = DatabaseClock(read, machine)
    clock.measure()
    assert clock.offset == pytest.approx(30.0, abs=0.0005)  # not 30.039


def test_a_reading_with_a_long_round_trip_does_not_move_the_clock() -> None:
    """A heartbeat that waited 4 s for a lock: its reading could be 2 s off, and is not
    taken; the first reading ever is taken however slow (nothing better is known)."""
    machine = Machine()
    clock = DatabaseClock(lambda: machine.now, machine)
    clock.take(100.0, 103.5, 104.0)  # the first: offset 1.5, kept
    assert clock.offset == pytest.approx(1.5)
    clock.take(200.0, 200.0, 200.01)  # a quick one: the clocks agree
    assert clock.offset == pytest.approx(-0.005)
    clock.take(300.0, 300.0, 304.0)  # 4 s round trip (waited for a lock after the read)
    assert clock.offset == pytest.approx(-0.005)


def test_a_second_read_that_fails_keeps_the_first() -> None:
    machine = Machine()
    reads = {"n": 0}

    def read() -> float:
        reads["n"] += 1
        if reads["n"] == 2:
            raise OSError("connection reset")
        return machine.now + 30

    clock = DatabaseClock(read, machine)
    with pytest.raises(OSError, match="connection reset"):
        clock.measure()
    assert clock.offset == pytest.approx(30.0)
