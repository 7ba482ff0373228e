"""``backlog``: which occurrences between a stored next run time and now are due (one
coalesced run) and which fell before the catch-up cutoff (missed). Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler.triggers import backlog, cron_trigger, interval_trigger

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def every(seconds: float) -> object:
    return interval_trigger(seconds, timezone=UTC, anchor=T0 - timedelta(seconds=seconds))


def test_nothing_due_before_the_stored_time() -> None:
    found = backlog(every(60), first=T0, now=T0 - timedelta(seconds=1), cutoff=T0)
    assert (found.due, found.missed, found.next_time) == (0, 0, T0)


@pytest.mark.parametrize(
    ("down_for", "grace", "due", "missed"),
    [
        (0, 3600, 1, 0),  # exactly on time
        (59, 3600, 1, 0),
        (60, 3600, 2, 0),  # two occurrences came due: coalesced into one run
        (3600, 3600, 61, 0),
        (7200, 3600, 61, 60),  # the first hour fell before the catch-up window
        (86_400 * 365, 60, 2, 525_599),  # a year down: counted, not walked
    ],
)
def test_interval_occurrences_are_counted_arithmetically(
    down_for: int, grace: int, due: int, missed: int
) -> None:
    now = T0 + timedelta(seconds=down_for)
    found = backlog(every(60), first=T0, now=now, cutoff=now - timedelta(seconds=grace))
    assert (found.due, found.missed) == (due, missed)
    assert found.last_due is not None and found.last_due <= now
    assert found.next_time is not None and found.next_time > now
    if missed:
        assert found.first_missed == T0


def test_cron_occurrences_are_walked_and_classified() -> None:
    trigger = cron_trigger("0 * * * *", timezone=UTC)
    now = T0 + timedelta(hours=5, minutes=30)
    found = backlog(trigger, first=T0, now=now, cutoff=now - timedelta(hours=2))
    assert found.missed == 4  # 12:00 .. 15:00
    assert found.due == 2  # 16:00, 17:00
    assert found.last_due == T0 + timedelta(hours=5)
    assert found.next_time == T0 + timedelta(hours=6)


def test_a_walk_beyond_its_limit_is_marked_truncated() -> None:
    trigger = cron_trigger("* * * * *", timezone=UTC)
    now = T0 + timedelta(days=10)
    found = backlog(trigger, first=T0, now=now, cutoff=now, limit=100)
    assert found.truncated
    assert found.missed == 100
    assert found.next_time is not None and found.next_time > now


@pytest.mark.parametrize(
    ("down_for", "grace", "due", "missed"),
    [
        (1800, 3600, 11, 0),  # the end (10 minutes in) came during the downtime
        (7200, 600, 0, 11),  # all of them before the catch-up window
        (300, 3600, 6, 0),  # not yet at the end
    ],
)
def test_an_interval_counts_nothing_after_its_end(
    down_for: int, grace: int, due: int, missed: int
) -> None:
    end = T0 + timedelta(minutes=10)
    trigger = interval_trigger(60, timezone=UTC, anchor=T0 - timedelta(seconds=60), end_date=end)
    now = T0 + timedelta(seconds=down_for)
    found = backlog(trigger, first=T0, now=now, cutoff=now - timedelta(seconds=grace))
    assert (found.due, found.missed) == (due, missed)
    assert found.last_due is None or found.last_due <= end
    assert found.last_missed is None or found.last_missed <= end
    assert (found.next_time is None) == (now >= end)


@pytest.mark.parametrize(
    "trigger",
    [
        cron_trigger("* * * * *", timezone=UTC),
        interval_trigger(60, timezone=UTC, anchor=T0 - timedelta(seconds=60), jitter=30),
    ],
    ids=["cron", "jittered interval"],
)
def test_a_walk_beyond_its_limit_among_the_missed_still_finds_the_due_ones(
    trigger: object,
) -> None:
    """Walked occurrences are counted from the oldest: past the limit while still before
    the catch-up cutoff, the rest of the missed ones are skipped uncounted, and the walk
    goes on from the cutoff, so those inside the window still make their one run. It
    stopped there: the occurrences inside the window (the last 10 minutes, 10 of them)
    were neither run nor recorded."""
    now = T0 + timedelta(days=10)
    found = backlog(trigger, first=T0, now=now, cutoff=now - timedelta(minutes=10), limit=100)
    assert found.truncated
    assert found.missed == 100
    assert found.last_missed is not None and found.last_missed < now - timedelta(minutes=10)
    assert found.due in (10, 11)  # (11: cron's occurrence at now itself, on time)
    assert found.last_due is not None and now - timedelta(minutes=1) <= found.last_due <= now
    assert found.next_time is not None and now < found.next_time <= now + timedelta(minutes=2)
