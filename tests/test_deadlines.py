"""Deadlines by the rule of ../shared/notes/deadlines.md §0, with the regulators' worked examples."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from handlers.cases.deadlines import Calendar, days_left

BRUSSELS = Calendar()


def at(text: str) -> datetime:
    """An aware instant from ISO text (Z allowed)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (
            "2026-03-05T10:00:00+01:00",
            "2026-04-07",
        ),  # EDPB ex. 32 shape; 5 Apr 2026 is Easter Sunday, 6 Easter Monday
        ("2027-03-05T10:00:00+01:00", "2027-04-05"),  # EDPB ex. 32: 5 Mar -> 5 Apr (a Monday in 2027)
        ("2025-08-31T10:00:00+02:00", "2025-09-30"),  # EDPB ex. 33: no 31 Sep -> 30 Sep
        ("2025-09-03T09:00:00+02:00", "2025-10-03"),  # ICO SME checklist: 3 Sep -> 3 Oct
        ("2025-01-31T12:00:00+01:00", "2025-02-28"),  # short month, a Friday
        ("2026-01-31T12:00:00+01:00", "2026-03-02"),  # 28 Feb 2026 is a Saturday -> Monday 2 Mar
        ("2028-01-31T12:00:00+01:00", "2028-02-29"),  # leap year: 29 Feb 2028 (a Tuesday)
        ("2024-01-29T12:00:00+01:00", "2024-02-29"),  # leap year, day exists
        ("2024-11-25T12:00:00+01:00", "2024-12-26"),  # ICO's 25 Nov example, Belgian holidays: 25 Dec only
        ("2026-04-21T12:00:00+02:00", "2026-05-21"),  # ordinary Thursday
        ("2026-06-21T12:00:00+02:00", "2026-07-22"),  # 21 Jul national day (Tue) -> 22 Jul
        ("2026-10-11T12:00:00+02:00", "2026-11-12"),  # 11 Nov Armistice (Wed) -> 12 Nov
        ("2026-04-14T12:00:00+02:00", "2026-05-15"),  # 14 May 2026 Ascension (Thu) -> Fri 15 May
        ("2026-04-25T12:00:00+02:00", "2026-05-26"),  # 25 May 2026 Whit Monday -> Tue 26 May
        ("2026-11-25T12:00:00+01:00", "2026-12-28"),  # 25 Dec (Fri) holiday, then the weekend
        ("2026-11-30T12:00:00+01:00", "2026-12-30"),
        ("2027-04-01T12:00:00+02:00", "2027-05-03"),  # 1 May 2027 Saturday (holiday+weekend) -> Mon 3 May
    ],
)
def test_one_month_deadline(received: str, due: str) -> None:
    assert BRUSSELS.due_date(at(received)).isoformat() == due


def test_receipt_date_is_the_local_date_not_the_utc_date() -> None:
    # 22:30 UTC on 14 Jun is 00:30 on 15 Jun in Brussels: the month runs from 15 Jun, not 14 Jun
    late = at("2026-06-14T22:30:00Z")
    assert BRUSSELS.local_date(late) == date(2026, 6, 15)
    assert BRUSSELS.due_date(late).isoformat() == "2026-07-15"
    assert BRUSSELS.due_date(at("2026-06-14T21:30:00Z")).isoformat() == "2026-07-14"
    # winter time: 23:30 UTC on 5 Mar is 00:30 on 6 Mar
    assert BRUSSELS.due_date(at("2026-03-05T23:30:00Z")).isoformat() == "2026-04-07"  # 6 Apr is Easter Monday


def test_received_on_a_sunday_holiday_still_counts_from_that_day() -> None:
    # Sunday 1 Nov 2026 is All Saints' Day; the month still runs from 1 Nov -> Tue 1 Dec
    assert BRUSSELS.due_date(at("2026-11-01T23:59:59+01:00")).isoformat() == "2026-12-01"


def test_dst_boundary_receipt_dates() -> None:
    # 29 Mar 2026 02:30 local does not exist; an instant just after the switch is still 29 Mar
    assert BRUSSELS.local_date(at("2026-03-29T01:30:00Z")) == date(2026, 3, 29)
    assert BRUSSELS.local_date(at("2026-10-24T22:30:00Z")) == date(2026, 10, 25)


@pytest.mark.parametrize(
    ("received", "due"),
    [
        ("2025-01-31T12:00:00+01:00", "2025-04-30"),  # one step of three months, not 28 Apr
        ("2026-05-31T12:00:00+02:00", "2026-08-31"),  # chaining would give 30 Aug
        ("2026-11-25T23:30:00Z", "2027-02-26"),  # local 26 Nov -> 26 Feb 2027 (Friday)
        ("2027-10-21T12:00:00+02:00", "2028-01-21"),
        ("2026-01-25T12:00:00+01:00", "2026-04-27"),  # 25 Apr 2026 Saturday -> Mon 27 Apr
    ],
)
def test_extended_deadline_is_three_months_in_one_step(received: str, due: str) -> None:
    assert BRUSSELS.due_date(at(received), extended=True).isoformat() == due


def test_complaint_deadline_is_calendar_days_not_moved() -> None:
    # 2 Nov 2026 + 30 days = 2 Dec; 24 Nov + 30 = 24 Dec; 26 Oct + 30 = 25 Nov; 26 Nov + 30 = 26 Dec (Saturday, kept)
    assert BRUSSELS.due_date(at("2026-11-26T10:00:00+01:00"), kind="complaint").isoformat() == "2026-12-26"
    assert Calendar(complaint_days=14).due_date(at("2026-12-11T10:00:00+01:00"), kind="complaint") == date(
        2026, 12, 25
    )


def test_belgian_public_holidays_are_exactly_the_ten_legal_ones() -> None:
    expected_2026 = {
        date(2026, 1, 1),
        date(2026, 4, 6),
        date(2026, 5, 1),
        date(2026, 5, 14),
        date(2026, 5, 25),
        date(2026, 7, 21),
        date(2026, 8, 15),
        date(2026, 11, 1),
        date(2026, 11, 11),
        date(2026, 12, 25),
    }
    day = date(2026, 1, 1)
    non_working_weekdays = set()
    while day.year == 2026:
        if day.weekday() < 5 and not BRUSSELS.is_working_day(day):
            non_working_weekdays.add(day)
        day += timedelta(days=1)
    assert non_working_weekdays == {d for d in expected_2026 if d.weekday() < 5}
    # bank holidays (Good Friday, 26 Dec) and community days are not legal holidays
    assert BRUSSELS.is_working_day(date(2026, 4, 3))
    assert BRUSSELS.is_working_day(date(2028, 12, 26))
    assert BRUSSELS.is_working_day(date(2026, 5, 8))  # Iris day, Brussels region only


def test_other_time_zone_and_country() -> None:
    paris = Calendar(timezone="Europe/Paris", holidays_country="FR")
    assert (
        paris.due_date(at("2026-06-14T12:00:00+02:00")).isoformat() == "2026-07-15"
    )  # 14 Jul Fête nationale


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError):
        BRUSSELS.due_date(datetime(2026, 1, 1, 12, 0))


def test_days_left() -> None:
    assert days_left(date(2026, 12, 28), date(2026, 11, 25)) == 33
    assert days_left(date(2026, 11, 20), date(2026, 11, 25)) == -5


def test_deadline_command_prints_the_due_date() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bot", "deadline", "2026-01-31T10:00:00Z"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "TIMEZONE": "Europe/Brussels"},
    )
    assert out.stdout.strip() == "2026-03-02"
    out = subprocess.run(
        [sys.executable, "-m", "bot", "deadline", "2026-11-26T09:00:00+01:00", "--kind", "complaint"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "2026-12-26"
    bad = subprocess.run(
        [sys.executable, "-m", "bot", "deadline", "yesterday"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert bad.returncode == 2 and "RECEIVED_AT" in bad.stderr
    bad_tz = subprocess.run(
        [sys.executable, "-m", "bot", "deadline", "2026-01-01T00:00:00Z"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "TIMEZONE": "Mars/Olympus"},
    )
    assert bad_tz.returncode == 2 and "TIMEZONE" in bad_tz.stderr


def test_utc_offset_instants_equal() -> None:
    a = BRUSSELS.due_date(datetime(2026, 3, 5, 9, 0, tzinfo=UTC))
    b = BRUSSELS.due_date(datetime(2026, 3, 5, 10, 0, tzinfo=timezone(timedelta(hours=1))))
    assert a == b
