"""Legal deadlines of a privacy request (GDPR art. 12(3)), as `../shared/notes/deadlines.md` §0 counts them.

- The receipt date is the controller's local calendar date of the instant the request arrived
  (the mailbox's INTERNALDATE), never the UTC date and never the sender's Date header.
- One month: the same day number next month, clamped to that month's last day, then moved past
  Saturdays, Sundays and public holidays (the `holidays` package, PUBLIC category only).
- Extended: receipt plus three months in one step, same clamp and roll-forward.
- Complaints (an internal service level, not GDPR): receipt date plus N calendar days, not moved.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import holidays
from dateutil.relativedelta import relativedelta

__all__ = ["Calendar", "days_left"]


@dataclass(frozen=True, slots=True)
class Calendar:
    """The controller's calendar: time zone, public holidays and the complaint response time."""

    timezone: str = "Europe/Brussels"
    holidays_country: str = "BE"
    complaint_days: int = 30

    @property
    def tz(self) -> ZoneInfo:
        """The time zone as a `ZoneInfo`."""
        return _zone(self.timezone)

    def local_date(self, instant: datetime) -> date:
        """The calendar date of an aware instant in the controller's time zone."""
        if instant.tzinfo is None:
            raise ValueError("instant must be timezone-aware")
        return instant.astimezone(self.tz).date()

    def is_working_day(self, day: date) -> bool:
        """False on Saturdays, Sundays and public holidays of `holidays_country`."""
        return day.weekday() < 5 and day not in _public_holidays(self.holidays_country, day.year)

    def next_working_day(self, day: date) -> date:
        """`day` itself when it is a working day, else the first working day after it."""
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    def due_date(
        self, received_at: datetime, *, kind: str = "gdpr", extended: bool = False, paused_days: int = 0
    ) -> date:
        """The last day to answer a request received at the aware instant `received_at`.

        `kind="complaint"` gives receipt + `complaint_days` calendar days, not moved;
        any other kind gives the GDPR art. 12(3) month (three months when `extended`).
        `paused_days` (days the clock stood still while waiting for the requester) are added
        before the weekend/holiday roll-forward.
        """
        received = self.local_date(received_at)
        if kind == "complaint":
            return received + timedelta(days=self.complaint_days + paused_days)
        months = 3 if extended else 1
        return self.next_working_day(received + relativedelta(months=months) + timedelta(days=paused_days))

    def extension_allowed_until(self, received_at: datetime) -> date:
        """Last day on which an extension may still be decided and notified: the one-month due date."""
        return self.due_date(received_at)


def days_left(due: date, today: date) -> int:
    """Calendar days from `today` to `due` (negative when overdue)."""
    return (due - today).days


@functools.cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@functools.cache
def _public_holidays(country: str, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, years=year, categories=(holidays.PUBLIC,)).keys())
