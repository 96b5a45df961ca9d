"""The daily deadline job: reminders in each case's thread, the daily digest, the weekly summary.

It runs once per working day, at `REMINDER_HOUR` (local time of `TIMEZONE`) or, for a bot that
starts later that day, at start; a day that has passed is never caught up. Each run decides
its notices (`storage.notices`: each (case, milestone, day), digest and summary at most once) and
queues them in the outbox, in one transaction with the record of the run.

Reminder schedule (INTERFACE.md), for every open case:

- `due_in_7` / `due_in_2`: on the working day 7 / 2 calendar days before the due date, or the
  last working day before that day;
- `due_today`: on the due date, or the last working day before it (a complaint due on a weekend);
- `overdue`: every working day after the due date;
- `unassigned`: once, at the first run after the case has gone 2 working days without an assignee
  (again only if it becomes unassigned anew).

When two deadline milestones fall on the same day, the more urgent one is sent. While the legal
clock is paused (`CLOCK_PAUSE_ON_WAIT`, waiting for the requester) the deadline milestones wait:
the due date moves when the wait ends, and the milestones with it. An extension moves the due
date, so the milestones follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from handlers.cases.deadlines import Calendar
from handlers.jobs import Job
from storage.overview import CaseLine
from storage.store import Store, Tx

__all__ = [
    "DIGEST_DAYS",
    "MILESTONES",
    "deadline_job",
    "deadline_milestone",
    "first_working_day_of_week",
    "last_working_day_on_or_before",
    "unassigned_due_on",
]

MILESTONES = ("due_in_7", "due_in_2", "due_today", "overdue", "unassigned")
#: The digest lists what is due within this many days.
DIGEST_DAYS = 7
#: How many cases a digest or summary names per group (the rest are counted).
LISTED = 15


def last_working_day_on_or_before(calendar: Calendar, day: date) -> date:
    """`day` when it is a working day, else the last working day before it."""
    while not calendar.is_working_day(day):
        day -= timedelta(days=1)
    return day


def deadline_milestone(calendar: Calendar, due: date, today: date) -> str | None:
    """The deadline milestone of a case due on `due` that falls on the working day `today`."""
    if today > due:
        return "overdue"
    for milestone, before in (("due_today", 0), ("due_in_2", 2), ("due_in_7", 7)):
        if today == last_working_day_on_or_before(calendar, due - timedelta(days=before)):
            return milestone
    return None


def unassigned_due_on(calendar: Calendar, since: date) -> date:
    """The day a case unassigned since `since` has gone 2 working days without an assignee."""
    day, counted = since, 0
    while counted < 2:
        day += timedelta(days=1)
        counted += calendar.is_working_day(day)
    return day


def first_working_day_of_week(calendar: Calendar, day: date) -> date | None:
    """The first working day of `day`'s week (Monday to Sunday), if it has one."""
    monday = day - timedelta(days=day.weekday())
    first = calendar.next_working_day(monday)
    return first if first - monday < timedelta(days=7) else None


@dataclass(frozen=True, slots=True)
class DeadlineRules:
    """What the job needs to know: the calendar, the hour, whether waiting pauses the clock, and
    who gets the weekly summary by direct message."""

    calendar: Calendar
    reminder_hour: int = 9
    pause_clock: bool = False
    managers: Sequence[str] = ()

    def run_key(self, local: datetime) -> str | None:
        """Today's run (its date) once `REMINDER_HOUR` has come on a working day, else None."""
        today = local.date()
        if local.hour < self.reminder_hour or not self.calendar.is_working_day(today):
            return None
        return today.isoformat()

    def paused(self, line: CaseLine) -> bool:
        return self.pause_clock and line.waiting_since is not None


def deadline_job(rules: DeadlineRules) -> Job:
    """The daily job with its rules."""

    async def run(store: Store, run_key: str, now: datetime) -> int:
        today = date.fromisoformat(run_key)
        async with store.transaction(now=now) as tx:
            if not await tx.jobs.claim("deadlines", run_key):
                return 0
            lines = await tx.overview.open_cases()
            queued = await _reminders(tx, rules, lines, today)
            queued += await _digest(tx, rules, lines, today)
            queued += await _summary(tx, rules, lines, today)
            return queued

    return Job("deadlines", rules.run_key, run)


def _days(due: date, today: date) -> int:
    return (due - today).days


async def _reminders(tx: Tx, rules: DeadlineRules, lines: list[CaseLine], today: date) -> int:
    calendar, queued = rules.calendar, 0
    for line in lines:
        if line.root_row is None:  # no thread to remind in (cannot happen for a case opened by intake)
            continue
        due_milestone = None if rules.paused(line) else deadline_milestone(calendar, line.due_date, today)
        milestones = [due_milestone] if due_milestone else []
        if not line.assignee and line.unassigned_since is not None:
            since = calendar.local_date(line.unassigned_since)
            last = await tx.notices.last("reminder", case_id=line.id, key="unassigned")
            if today >= unassigned_due_on(calendar, since) and (last is None or last.day < since.isoformat()):
                milestones.append("unassigned")
        for milestone in milestones:
            notice = await tx.notices.add(
                "reminder",
                case_id=line.id,
                key=milestone,
                day=today.isoformat(),
                payload={
                    "case_ref": line.ref,
                    "milestone": milestone,
                    "due_date": line.due_date.isoformat(),
                    "days_left": _days(line.due_date, today),
                    "assignee": line.assignee,
                    "extended": line.extended_at is not None,
                    "kind": line.kind,
                },
            )
            if notice is not None:
                await tx.outbox.post_notice("reminder", notice.id, case_id=line.id)
                queued += 1
    return queued


def _groups(
    rules: DeadlineRules, lines: list[CaseLine], today: date, until: date
) -> dict[str, list[CaseLine]]:
    counted = [line for line in lines if not rules.paused(line)]
    return {
        "overdue": sorted((x for x in counted if x.due_date < today), key=lambda x: (x.due_date, x.id)),
        "due_soon": [x for x in counted if today <= x.due_date <= until],
        "unassigned": [x for x in lines if not x.assignee],
    }


async def _digest(tx: Tx, rules: DeadlineRules, lines: list[CaseLine], today: date) -> int:
    groups = _groups(rules, lines, today, today + timedelta(days=DIGEST_DAYS))
    if not groups["overdue"] and not groups["due_soon"]:
        return 0
    payload: dict[str, object] = {"date": today.isoformat()}
    for name, members in groups.items():
        payload[name] = [x.ref for x in members]
        payload[f"{name}_items"] = [x.item(today) for x in members[:LISTED]]
    notice = await tx.notices.add("digest", day=today.isoformat(), payload=payload)
    if notice is None:
        return 0
    await tx.outbox.post_notice("digest", notice.id)
    return 1


async def _summary(tx: Tx, rules: DeadlineRules, lines: list[CaseLine], today: date) -> int:
    calendar = rules.calendar
    if first_working_day_of_week(calendar, today) != today:
        return 0
    monday = today - timedelta(days=today.weekday())
    sunday = monday + timedelta(days=6)
    last_week = await tx.stats.resolved(
        monday - timedelta(days=7), monday - timedelta(days=1), tz=calendar.tz
    )
    now = await tx.stats.open_now(today, due_within=(sunday - today).days, pause_clock=rules.pause_clock)
    groups = _groups(rules, lines, today, sunday)
    payload: dict[str, object] = {
        "week_of": monday.isoformat(),
        "open": now.open,
        "overdue": now.overdue,
        "resolved_last_week": last_week.resolved,
        "on_time_rate": last_week.on_time_rate,
        "on_time_last_week": last_week.on_time,
        "median_days_to_answer": last_week.median_days_to_answer,
        "extended_last_week": last_week.extended,
        "open_by_kind": now.by_kind,
        "open_by_status": now.by_status,
        "unassigned": now.unassigned,
        "due_this_week": len(groups["due_soon"]),
        "overdue_items": [x.item(today) for x in groups["overdue"][:LISTED]],
        "due_this_week_items": [x.item(today) for x in groups["due_soon"][:LISTED]],
    }
    notice = await tx.notices.add("summary", day=monday.isoformat(), payload=payload)
    if notice is None:
        return 0
    await tx.outbox.post_notice("summary", notice.id)
    for manager in rules.managers:
        await tx.outbox.post_notice("summary_dm", notice.id, recipient=manager)
    return 1 + len(rules.managers)
