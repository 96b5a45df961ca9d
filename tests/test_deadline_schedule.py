"""When each reminder falls (handlers/jobs/deadlines.py) and what the figures mean (storage/stats.py),
as pure functions, against dates counted by hand on the Belgian calendar of 2026."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from handlers.cases.deadlines import Calendar
from handlers.jobs.deadlines import (
    DeadlineRules,
    deadline_milestone,
    first_working_day_of_week,
    last_working_day_on_or_before,
    unassigned_due_on,
)
from storage.stats import figures_of

BE = Calendar()
BXL = ZoneInfo("Europe/Brussels")


def milestones(due: date, first: date, last: date) -> dict[str, list[str]]:
    """Every working day from `first` to `last` with its milestone, as the daily job sees them."""
    out: dict[str, list[str]] = {}
    day = first
    while day <= last:
        if BE.is_working_day(day) and (m := deadline_milestone(BE, due, day)):
            out.setdefault(m, []).append(day.isoformat())
        day = date.fromordinal(day.toordinal() + 1)
    return out


def test_a_case_due_on_monday_2_march() -> None:
    got = milestones(date(2026, 3, 2), date(2026, 2, 2), date(2026, 3, 6))
    assert got == {
        "due_in_7": ["2026-02-23"],  # Monday 23 February
        "due_in_2": ["2026-02-27"],  # 28 February is a Saturday: the Friday before
        "due_today": ["2026-03-02"],
        "overdue": ["2026-03-03", "2026-03-04", "2026-03-05", "2026-03-06"],
    }


def test_holidays_move_the_reminders_to_the_working_day_before() -> None:
    # due Thursday 9 April 2026: 7 days before is Thursday 2 April; 2 days before is Tuesday 7 April;
    # Easter Monday 6 April is a holiday and sends nothing
    got = milestones(date(2026, 4, 9), date(2026, 3, 20), date(2026, 4, 14))
    assert got == {
        "due_in_7": ["2026-04-02"],
        "due_in_2": ["2026-04-07"],
        "due_today": ["2026-04-09"],
        "overdue": ["2026-04-10", "2026-04-13", "2026-04-14"],
    }
    # due Friday 8 May 2026: 7 days before is Friday 1 May (Labour Day): Thursday 30 April
    assert milestones(date(2026, 5, 8), date(2026, 4, 20), date(2026, 5, 8))["due_in_7"] == ["2026-04-30"]


def test_a_complaint_due_on_a_sunday_is_due_today_on_the_friday() -> None:
    # due Sunday 1 March 2026: 2 days before is Friday 27 February, the same day as "due today":
    # only the more urgent one is sent
    got = milestones(date(2026, 3, 1), date(2026, 2, 16), date(2026, 3, 3))
    assert got == {
        "due_in_7": ["2026-02-20"],
        "due_today": ["2026-02-27"],
        "overdue": ["2026-03-02", "2026-03-03"],
    }


def test_unassigned_after_two_working_days() -> None:
    assert unassigned_due_on(BE, date(2026, 2, 2)) == date(2026, 2, 4)  # Monday → Wednesday
    assert unassigned_due_on(BE, date(2026, 2, 5)) == date(2026, 2, 9)  # Thursday → Monday
    assert unassigned_due_on(BE, date(2026, 4, 2)) == date(2026, 4, 7)  # Thursday → Tuesday (Easter Monday)


def test_the_first_working_day_of_a_week() -> None:
    assert first_working_day_of_week(BE, date(2026, 2, 4)) == date(2026, 2, 2)
    assert first_working_day_of_week(BE, date(2026, 4, 8)) == date(2026, 4, 7)  # Easter Monday
    assert first_working_day_of_week(BE, date(2026, 5, 27)) == date(2026, 5, 26)  # Whit Monday
    assert last_working_day_on_or_before(BE, date(2026, 2, 28)) == date(2026, 2, 27)


@pytest.mark.parametrize(
    ("local", "key"),
    [
        (datetime(2026, 3, 3, 8, 59, tzinfo=BXL), None),  # before REMINDER_HOUR
        (datetime(2026, 3, 3, 9, 0, tzinfo=BXL), "2026-03-03"),
        (datetime(2026, 3, 3, 17, 0, tzinfo=BXL), "2026-03-03"),  # a late start sends them at start
        (datetime(2026, 2, 28, 10, 0, tzinfo=BXL), None),  # Saturday
        (datetime(2026, 4, 6, 10, 0, tzinfo=BXL), None),  # Easter Monday
    ],
)
def test_the_daily_run_is_due_from_reminder_hour_on_working_days(local: datetime, key: str | None) -> None:
    assert DeadlineRules(calendar=BE, reminder_hour=9).run_key(local) == key


def _row(kind: str, received: str, closed: str | None, on_time: bool | None, *, extended: bool = False,
         labels: tuple[str, ...] = ()) -> tuple[object, ...]:  # fmt: skip
    return (kind, json.dumps(list(labels or (kind,))), "en", "resolved" if closed else "new",
            "fulfilled" if closed else None, received, closed, on_time, "x" if extended else None)  # fmt: skip


def test_figures_count_as_the_definitions_say() -> None:
    rows = [
        _row("access", "2026-02-02", "2026-02-12T10:00:00+00:00", True),  # 10 days
        _row(
            "erasure", "2026-02-02", "2026-02-22T23:30:00+00:00", True
        ),  # 21 days: 00:30 on the 23rd in Brussels
        _row("objection", "2026-02-02", "2026-03-10T10:00:00+00:00", False, extended=True),  # 36 days
        _row("complaint", "2026-02-03", None, None),
        _row("access", "2026-02-04", None, None, labels=("access", "complaint")),
    ]
    f = figures_of(rows, BXL)
    assert (f.cases, f.resolved, f.on_time, f.on_time_rate) == (5, 3, 2, 0.6667)
    assert (f.median_days_to_answer, f.p90_days_to_answer) == (21.0, 36.0)
    assert (f.extended, f.complaints) == (1, 2)
    assert f.by_kind == {"access": 2, "complaint": 1, "erasure": 1, "objection": 1}
    assert figures_of([], BXL).on_time_rate is None
    assert datetime(2026, 2, 22, 23, 30, tzinfo=UTC).astimezone(BXL).day == 23
