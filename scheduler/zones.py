"""IANA time zones: checking a name, suggesting the name that was meant, and whether a wall
time exists in a zone."""

from __future__ import annotations

import difflib
import functools
import zoneinfo
from datetime import UTC, datetime

__all__ = ["skipped_wall_time", "unknown_zone_message", "zone_exists", "zone_or_none"]


@functools.cache
def _names() -> dict[str, str]:
    """Every available zone name, by its lowercase form."""
    return {name.lower(): name for name in zoneinfo.available_timezones() if zone_or_none(name)}


def zone_exists(name: str, *, stored: bool = False) -> bool:
    """``name`` is an IANA zone this machine knows; ``stored``: read back from a task that
    was written before the files that are no zone were refused (they go on working)."""
    if stored and isinstance(name, str) and _not_a_zone(name):
        try:
            return zoneinfo.ZoneInfo(name) is not None
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            return False
    return zone_or_none(name) is not None


# Files of a zone database that are no zone a task can mean: the machine's own setting
# (``localtime``, so one task would fire at other instants on other machines), copies kept
# for old programs (``posixrules``, ``posix/...``), ``Factory``, and clocks that count leap
# seconds (``right/...``: 27 s off UTC)
_NOT_ZONES = frozenset({"localtime", "posixrules", "factory"})
_NOT_ZONE_FOLDERS = ("posix/", "right/")


def _not_a_zone(name: str) -> bool:
    lowered = name.lower()
    return lowered in _NOT_ZONES or lowered.startswith(_NOT_ZONE_FOLDERS)


def zone_or_none(name: str) -> zoneinfo.ZoneInfo | None:
    """The IANA zone ``name``, or None when there is none: not only an unknown name, but
    one ``zoneinfo`` trips over with another error (a folder of the zone database such as
    ``Europe``, a name too long to be a file name, a NUL character), and the files of the
    database that are no zone (``localtime``, ``right/UTC``: see ``_NOT_ZONES``)."""
    if not isinstance(name, str) or _not_a_zone(name):
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError, TypeError):
        return None


def suggest(name: str) -> str | None:
    """The zone probably meant by ``name``: the same name in other case (``europe/paris``),
    or a close spelling (``Europe/Pari``); None when nothing is close."""
    names = _names()
    exact = names.get(name.strip().lower())
    if exact is not None:
        return exact
    close = difflib.get_close_matches(name.strip().lower(), list(names), n=1, cutoff=0.8)
    return names[close[0]] if close else None


def unknown_zone_message(name: str) -> str:
    """``unknown time zone 'Europe/Pari'; did you mean 'Europe/Paris'?`` (or how to find
    the name when nothing is close)."""
    if _not_a_zone(name):
        return (
            f"time zone {name!r} is a file of the zone database but no zone a task can mean "
            "(the machine's own setting, leap seconds, or an alias kept for old programs); use "
            "an IANA name such as 'UTC' or 'Europe/Paris'"
        )
    guess = suggest(name) if len(name) <= 64 else None
    if guess is not None:
        return f"unknown time zone {name!r}; did you mean {guess!r}?"
    return f"unknown time zone {name!r}; use an IANA name such as 'UTC' or 'Europe/Paris'"


def skipped_wall_time(wall: datetime, zone: zoneinfo.ZoneInfo) -> str | None:
    """Why the naive ``wall`` is no time in ``zone``: ``2026-03-08 02:30 does not exist in
    America/New_York (DST gap)``, the clocks skip it when they move forward; None when it is
    one (a repeated wall time, in a fall-back hour, is one: its first pass). The one check
    of a wall time given without an offset, as a schedule's text or as a ``run_at``."""
    if wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return None
    shown = f"{wall:%Y-%m-%d %H:%M}" if not (wall.second or wall.microsecond) else str(wall)
    return f"{shown} does not exist in {zone.key} (DST gap)"
