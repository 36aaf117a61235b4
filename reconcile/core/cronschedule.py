"""CronJob schedules: the standard five-field cron syntax (and its `@hourly`-style macros) in a time zone.

The one seam of `croniter`: the API server validates `spec.schedule` / `spec.timeZone` here and the
CronJob controller asks it for schedule times, so both read a schedule the same way. Upstream parses
with robfig/cron's standard parser: exactly five fields or a macro, day-of-month and day-of-week
OR-ed when both are restricted (croniter's default too). Messages follow upstream's where kubectl
users see them (`expected exactly 5 fields, found 1: [bad]`, `unknown time zone Mars/Base`).
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Iterator

import croniter

MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
UTC = datetime.UTC


def check(schedule: str) -> None:
    """Raise ValueError (its text is the 422's message) unless `schedule` is a standard cron schedule."""
    if not isinstance(schedule, str) or not schedule.strip():
        raise ValueError("empty spec string")
    fields = schedule.split()
    if fields[0].startswith("TZ=") or fields[0].startswith("CRON_TZ="):
        raise ValueError("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    if fields[0].startswith("@"):
        if len(fields) != 1 or fields[0].lower() not in MACROS:
            raise ValueError(f"unrecognized descriptor: {schedule}")
        return
    if len(fields) != 5:
        raise ValueError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    try:
        croniter.croniter(schedule, datetime.datetime(2000, 1, 1, tzinfo=UTC))
    except (croniter.CroniterError, ValueError, KeyError) as exc:
        raise ValueError(f"failed to parse schedule: {exc}") from None


def zone(name: str | None) -> datetime.tzinfo:
    """The time zone a schedule runs in (UTC when unset, as our controller's local zone is); ValueError
    with upstream's message for a name that is not an explicit IANA zone."""
    if name is None:
        return UTC
    if not name:
        raise ValueError("timeZone must be nil or non-empty string")
    if name.lower() == "local":
        raise ValueError("timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name}") from None


def times_after(schedule: str, tz: datetime.tzinfo, after: datetime.datetime) -> Iterator[datetime.datetime]:
    """Schedule times strictly after `after`, in order, as aware UTC datetimes (ends only for a schedule
    that never fires, such as `0 0 30 2 *`)."""
    start = after.astimezone(tz)
    walker = croniter.croniter(schedule.lower() if schedule.startswith("@") else schedule, start)
    while True:
        try:
            found = walker.get_next(datetime.datetime)
        except croniter.CroniterError:
            return
        yield found.astimezone(UTC)
