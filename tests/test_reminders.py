"""Reminders, the daily digest and the weekly summary (handlers/jobs/deadlines.py), seen from Slack.

Cases come in through the real intake into a real SQLite file; the runtime's jobs (`bot.runtime.jobs`)
run under the real scheduler at instants set on an injected clock — every day of a walk, at several
hours around `REMINDER_HOUR` — and the real outbox worker (`bot.runtime.build_outbox`: the case
publisher and the ScheduledSender) delivers to the Slack stand-in. What is asserted is what reached
Slack: the `privacy_reminder` metadata in each case's thread, the `privacy_digest` and
`privacy_summary` messages in the channel and the managers' direct messages.

Expected days are counted by hand in each test against the Belgian calendar of 2026 (weekends, and
Easter Monday 6 April, Labour Day 1 May, Ascension 14 May, Whit Monday 25 May), never with the
product's own date functions. Also proved: nothing is sent twice across restarts between days, a
crash after the job decided and a crash between Slack storing a reminder and the bot recording it;
and `privacy-desk run` itself (PRIVACY_DESK_FAKE_NOW) killed with SIGKILL on a reminder day and
started again sends each (case, milestone, day) exactly once.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.app import build_client
from bot.outbox import OutboxWorker
from bot.runtime import build_outbox, jobs
from bot.scheduler import Scheduler
from bot.settings import Settings
from handlers.cases import actions
from handlers.cases.intake import IncomingMessage, IntakeRules, take_in
from handlers.cases.inventory import load_inventory
from handlers.jobs.intake_alarm import IntakeHealth
from storage.store import Store
from tests.conftest import CHANNEL, ROOT, wait_until
from tests.support.slack_standin import SlackStandIn

BRUSSELS = ZoneInfo("Europe/Brussels")
ALICE, BOB, MALLORY = "UALICE01", "UBOB0001", "UMALLORY"

#: What a requester writes, by the kind the classifier gives it.
REQUESTS = {
    "access": ("My data", "Hello, please send me a copy of all the personal data you hold about me."),
    "erasure": ("Delete my account", "Hello, please delete all my personal data and close my account."),
    "rectification": (
        "Wrong address",
        "Hello, my address in your records is wrong, please correct my personal data.",
    ),
    "objection": ("Marketing", "Hello, I object to the processing of my personal data for direct marketing."),
    "portability": (
        "Export",
        "Hello, under the right to data portability please send my data in a machine-readable format.",
    ),
    "restriction": (
        "Restrict",
        "Hello, please restrict the processing of my personal data while you check its accuracy.",
    ),
    "complaint": (
        "Complaint",
        "Hello, I want to file a complaint about how you handled my personal data, I am very unhappy.",
    ),
}


def at(day: str, clock_time: str = "09:00:00") -> datetime:
    """A local instant in Brussels: at("2026-04-07", "10:00")."""
    return datetime.combine(date.fromisoformat(day), time.fromisoformat(clock_time), BRUSSELS)


def label(day: date) -> str:
    """ "Tue 2026-04-07": the weekday written next to each expected day, so that it is checked too."""
    return f"{day:%a} {day.isoformat()}"


def days(first: str, last: str) -> Iterator[date]:
    day, end = date.fromisoformat(first), date.fromisoformat(last)
    while day <= end:
        yield day
        day += timedelta(days=1)


def email(kind: str, sender: str) -> bytes:
    subject, body = REQUESTS[kind]
    m = EmailMessage()
    m["From"] = f"Requester <{sender}>"
    m["To"] = "privacy@imal.example"
    m["Subject"] = subject
    m["Message-ID"] = make_msgid(domain="example.org")
    m.set_content(f"{body}\nRegards")
    return m.as_bytes()


@dataclass
class Clock:
    """The bot's clock, moved by the tests."""

    now: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Seen:
    """A reminder that reached its case's thread, and the step of the walk after which it was there."""

    at: datetime
    case: str
    milestone: str
    due_date: str

    @property
    def row(self) -> tuple[str, str, str]:
        return label(self.at.date()), self.milestone, self.due_date


class Desk:
    """The bot's scheduled side on one database file, as `privacy-desk run` wires it: the store, the
    runtime's jobs under the scheduler, the outbox worker with both Slack senders. `restart()` drops
    them all and opens new ones on the same file. Staff act through the use cases."""

    def __init__(self, settings: Settings, path: Path, slack: SlackStandIn) -> None:
        self.settings = settings
        self.path = path
        self.slack = slack
        self.clock = Clock()
        self.ids: dict[str, int] = {}
        self.refs: dict[str, str] = {}
        self.uid = 0
        self._store: Store | None = None
        self._outbox: OutboxWorker | None = None
        self._scheduler: Scheduler | None = None
        self._looked_at = 0
        #: the instant of the walk's step after which each message (by ts) was first seen in Slack
        self.posted_at: dict[str, datetime] = {}

    @property
    def store(self) -> Store:
        assert self._store is not None, "the desk is stopped"
        return self._store

    @property
    def outbox(self) -> OutboxWorker:
        assert self._outbox is not None, "the desk is stopped"
        return self._outbox

    async def start(self) -> None:
        store = await Store.open(self.path, clock=self.clock)
        self._store = store
        client = build_client(self.settings)
        self._outbox = build_outbox(self.settings, store, client, clock=self.clock)
        self._scheduler = Scheduler(
            store,
            jobs(self.settings, IntakeHealth(self.clock)),
            calendar=self.settings.calendar,
            clock=self.clock,
        )

    async def stop(self) -> None:
        if self._store is not None:
            await self._store.close()
        self._store = self._outbox = self._scheduler = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    # --- what the bot does ------------------------------------------------------------------------
    async def decide(self) -> int:
        """One scheduler round at the clock's instant."""
        assert self._scheduler is not None, "the desk is stopped"
        return await self._scheduler.run_due()

    async def deliver(self) -> None:
        """Work the outbox until nothing it can send waits."""
        for _ in range(100):
            if await self.outbox.drained():
                return
            await self.outbox.work_once()
        raise AssertionError("the outbox did not drain")

    async def tick(self) -> None:
        await self.decide()
        await self.deliver()

    # --- what happens to the cases ------------------------------------------------------------------
    async def arrive(self, name: str, kind: str) -> None:
        """A request of `kind` reaches the mailbox now and is taken in."""
        self.uid += 1
        if self.uid == 1:
            async with self.store.transaction() as tx:
                await tx.cursors.reset("INBOX", uidvalidity=1, backfill_before_uid=1)
        raw = email(kind, f"requester.{name.lower()}@example.org")
        rules = IntakeRules(inventory=load_inventory(), pause_clock=self.settings.clock_pause_on_wait)
        outcome = await take_in(
            self.store,
            IncomingMessage(raw, "INBOX", 1, self.uid, self.clock()),
            calendar=self.settings.calendar,
            rules=rules,
            now=self.clock(),
        )
        assert outcome.case_ref is not None
        case = await self.store.cases.by_ref(outcome.case_ref)
        assert case is not None and case.kind == kind, (name, case and case.kind)
        self.ids[name], self.refs[name] = case.id, case.ref

    async def claim(self, name: str, user: str) -> None:
        await actions.claim(self.store, case_id=self.ids[name], actor=user, assignee=user, now=self.clock())

    async def extend(self, name: str) -> None:
        await actions.extend(
            self.store,
            case_id=self.ids[name],
            actor=ALICE,
            reason="ten years of records in three systems",
            now=self.clock(),
            calendar=self.settings.calendar,
        )

    async def start_wait(self, name: str) -> None:
        await actions.start_wait(
            self.store,
            case_id=self.ids[name],
            actor=ALICE,
            waiting_for="identity",
            note="asked for a copy of an identity document",
            now=self.clock(),
            pause_clock=self.settings.clock_pause_on_wait,
        )

    async def stop_waiting(self, name: str) -> None:
        await actions.stop_waiting(
            self.store,
            case_id=self.ids[name],
            actor=ALICE,
            now=self.clock(),
            calendar=self.settings.calendar,
            pause_clock=self.settings.clock_pause_on_wait,
        )

    async def resolve(self, name: str) -> None:
        await actions.resolve(
            self.store,
            case_id=self.ids[name],
            actor=ALICE,
            outcome="withdrawn",
            note="",
            recipients=(),
            now=self.clock(),
            calendar=self.settings.calendar,
        )

    # --- what Slack shows -----------------------------------------------------------------------------
    def root(self, name: str) -> dict[str, Any]:
        ref = self.refs[name]
        return next(r for r in self.slack.roots(CHANNEL) if r["metadata"]["event_payload"]["case_ref"] == ref)

    def look(self, when: datetime) -> list[Seen]:
        """Note when the messages posted since the last look were seen; returns the reminders among
        them, each checked to be in its case's thread."""
        fresh = self.slack.messages[self._looked_at :]
        self._looked_at = len(self.slack.messages)
        names = {ref: name for name, ref in self.refs.items()}
        seen = []
        for m in fresh:
            self.posted_at.setdefault(m["ts"], when.astimezone(BRUSSELS))
            metadata = m["metadata"] or {}
            if metadata.get("event_type") != "privacy_reminder":
                continue
            payload = metadata["event_payload"]
            assert set(payload) == {"case_ref", "milestone", "due_date"}
            name = names[payload["case_ref"]]
            assert m["channel"] == CHANNEL and m["thread_ts"] == self.root(name)["ts"], "in the case's thread"
            seen.append(Seen(when.astimezone(BRUSSELS), name, payload["milestone"], payload["due_date"]))
        return seen

    def reminders(self, name: str) -> list[dict[str, Any]]:
        """The reminders in a case's thread, oldest first."""
        return [
            m
            for m in self.slack.replies(self.root(name)["ts"])
            if (m["metadata"] or {}).get("event_type") == "privacy_reminder"
        ]

    def failed_rows(self) -> list[tuple[str, str]]:
        with sqlite3.connect(self.path) as db:
            return db.execute("SELECT kind, last_error FROM outbox WHERE failed_at IS NOT NULL").fetchall()


Event = tuple[datetime, Callable[[], Awaitable[None]]]
Step = Callable[[Desk, datetime], Awaitable[None]]


def steps_of(day: date, reminder_hour: int) -> list[datetime]:
    """The instants of a day at which the scheduler is asked: midnight, the last second before
    REMINDER_HOUR, the hour itself and half a minute later, the afternoon, the day's last second."""
    times = [time(0), time(reminder_hour - 1, 59, 59), time(reminder_hour), time(reminder_hour, 0, 30)]
    times += [time(13), time(23, 59, 59)]
    return [datetime.combine(day, t, BRUSSELS) for t in times]


async def tick(desk: Desk, when: datetime) -> None:
    await desk.tick()


async def walk(desk: Desk, first: str, last: str, events: list[Event], *, step: Step = tick) -> list[Seen]:
    """Walk the days from `first` to `last`: at each step of each day, first what happens to the
    cases up to that instant (each at its own instant), then `step` (a scheduler round and the
    outbox's delivery); returns the reminders that reached Slack, with the step they came at."""
    pending = sorted(events, key=lambda e: e[0])
    seen: list[Seen] = []
    for day in days(first, last):
        for when in steps_of(day, desk.settings.reminder_hour):
            while pending and pending[0][0] <= when:
                instant, happen = pending.pop(0)
                desk.clock.now = instant.astimezone(UTC)
                await happen()
                await desk.deliver()
            desk.clock.now = when.astimezone(UTC)
            await step(desk, when)
            seen += desk.look(when)
    assert not pending, "every event happened within the walk"
    return seen


def of_case(seen: list[Seen], name: str) -> list[tuple[str, str, str]]:
    return [s.row for s in seen if s.case == name]


def show(title: str, seen: list[Seen]) -> None:
    print(f"\n{title}")
    for s in seen:
        print(f"  {label(s.at.date())} {s.at:%H:%M:%S}  {s.case}  {s.milestone:<10}  due {s.due_date}")


WEEKEND = {"Sat", "Sun"}
HOLIDAYS_2026 = {"2026-04-06", "2026-05-01", "2026-05-14", "2026-05-25"}


def assert_working_days_at(seen: list[Seen], hour: int) -> None:
    """Every reminder came at the first step at or after REMINDER_HOUR, on a working day."""
    for s in seen:
        assert s.at.time() == time(hour), f"{s} came at another hour than {hour}:00"
        assert f"{s.at:%a}" not in WEEKEND and s.at.date().isoformat() not in HOLIDAYS_2026, s


@pytest.fixture
def database(tmp_path: Path, migrated_database: Path) -> Path:
    path = tmp_path / "desk.sqlite3"
    shutil.copyfile(migrated_database, path)
    path.chmod(0o600)
    return path


@asynccontextmanager
async def desk_on(settings: Settings, database: Path, slack: SlackStandIn) -> AsyncIterator[Desk]:
    desk = Desk(settings, database, slack)
    await desk.start()
    try:
        yield desk
    finally:
        await desk.stop()
    assert desk.failed_rows() == [], "no message was refused"


# --- 1. a month of reminders -------------------------------------------------------------------


async def test_an_unclaimed_case_is_reminded_once_per_milestone_on_working_days_until_it_is_resolved(
    settings: Settings, database: Path, slack: SlackStandIn
) -> None:
    # A: received Thu 2 April 10:00; one month: Sat 2 May -> Sun 3 -> due Mon 4 May.
    async with desk_on(settings, database, slack) as desk:
        seen = await walk(
            desk,
            "2026-04-01",
            "2026-05-29",
            [
                (at("2026-04-02", "10:00"), lambda: desk.arrive("A", "access")),
                (at("2026-05-15", "10:00"), lambda: desk.resolve("A")),
            ],
        )
    show("Walk 1 (unclaimed case A, resolved Fri 15 May 10:00):", seen)
    due = "2026-05-04"
    assert of_case(seen, "A") == [
        # 2 working days without an assignee: Fri 3 April, (Easter Monday 6 April), Tue 7 April
        ("Tue 2026-04-07", "unassigned", due),
        ("Mon 2026-04-27", "due_in_7", due),  # 4 May - 7 days
        ("Thu 2026-04-30", "due_in_2", due),  # 2 May is a Saturday, 1 May Labour Day
        ("Mon 2026-05-04", "due_today", due),
        ("Tue 2026-05-05", "overdue", due),
        ("Wed 2026-05-06", "overdue", due),
        ("Thu 2026-05-07", "overdue", due),
        ("Fri 2026-05-08", "overdue", due),
        ("Mon 2026-05-11", "overdue", due),
        ("Tue 2026-05-12", "overdue", due),
        ("Wed 2026-05-13", "overdue", due),  # not Thu 14 May: Ascension
        ("Fri 2026-05-15", "overdue", due),  # at 09:00, before it was resolved at 10:00; then none
    ]
    assert_working_days_at(seen, 9)
    assert len(desk.reminders("A")) == len(seen), "nothing else in the thread is a reminder"
    assert not slack.roots(CHANNEL, event_type="privacy_reminder"), "no reminder outside a thread"


async def test_a_claimed_case_is_never_unassigned_and_its_reminders_follow_an_extension(
    settings: Settings, database: Path, slack: SlackStandIn
) -> None:
    # B and B2: received Mon 2 March; one month: due Thu 2 April. Both claimed before the morning
    # they would have gone 2 working days unassigned (Wed 4 March): B on Tue 3, B2 at 08:30 on Wed 4.
    # B is extended on Fri 27 March: receipt + 3 months = due Tue 2 June. B2 is resolved on its due date.
    async with desk_on(settings, database, slack) as desk:
        seen = await walk(
            desk,
            "2026-03-02",
            "2026-06-05",
            [
                (at("2026-03-02", "10:00"), lambda: desk.arrive("B", "access")),
                (at("2026-03-02", "10:05"), lambda: desk.arrive("B2", "erasure")),
                (at("2026-03-03", "11:00"), lambda: desk.claim("B", ALICE)),
                (at("2026-03-04", "08:30"), lambda: desk.claim("B2", BOB)),
                (at("2026-03-27", "15:00"), lambda: desk.extend("B")),
                (at("2026-04-02", "16:00"), lambda: desk.resolve("B2")),
            ],
        )
        b_root = desk.root("B")["metadata"]["event_payload"]
        b2_due_today = desk.reminders("B2")[-1]["text"]
    show("Walk 2 (claimed cases: B extended Fri 27 March, B2 resolved Thu 2 April):", seen)
    assert of_case(seen, "B2") == [
        ("Thu 2026-03-26", "due_in_7", "2026-04-02"),
        ("Tue 2026-03-31", "due_in_2", "2026-04-02"),
        ("Thu 2026-04-02", "due_today", "2026-04-02"),
    ]
    assert of_case(seen, "B") == [
        ("Thu 2026-03-26", "due_in_7", "2026-04-02"),  # before the extension
        # none on 31 March, 2 April, 3 April: the due date moved to Tue 2 June
        ("Tue 2026-05-26", "due_in_7", "2026-06-02"),  # the day after Whit Monday
        ("Fri 2026-05-29", "due_in_2", "2026-06-02"),  # 31 May is a Sunday
        ("Tue 2026-06-02", "due_today", "2026-06-02"),
        ("Wed 2026-06-03", "overdue", "2026-06-02"),
        ("Thu 2026-06-04", "overdue", "2026-06-02"),
        ("Fri 2026-06-05", "overdue", "2026-06-02"),
    ]
    assert_working_days_at(seen, 9)
    assert not [s for s in seen if s.milestone == "unassigned"]
    assert b_root["due_date"] == "2026-06-02" and b_root["status"] == "extended"
    assert "last day to notify the requester of an extension" in b2_due_today


async def test_a_paused_clock_holds_the_deadline_reminders_while_waiting_and_moves_them_by_the_days_waited(
    slack_env: dict[str, str], database: Path, slack: SlackStandIn
) -> None:
    settings = Settings.from_env({**slack_env, "CLOCK_PAUSE_ON_WAIT": "true", "REMINDER_HOUR": "8"})
    # C: received Tue 14 April; one month: Thu 14 May is Ascension -> due Fri 15 May (due_in_7 would
    # be Fri 8 May). It waits for the requester from Mon 4 May 14:00 to Mon 11 May 15:00: 7 days,
    # so the due date becomes 14 May + 7 = Thu 21 May.
    async with desk_on(settings, database, slack) as desk:
        seen = await walk(
            desk,
            "2026-04-13",
            "2026-05-29",
            [
                (at("2026-04-14", "10:00"), lambda: desk.arrive("C", "access")),
                (at("2026-05-04", "14:00"), lambda: desk.start_wait("C")),
                (at("2026-05-11", "15:00"), lambda: desk.stop_waiting("C")),
                (at("2026-05-27", "12:00"), lambda: desk.resolve("C")),
            ],
        )
        c_root = desk.root("C")["metadata"]["event_payload"]
    show("Walk 3 (CLOCK_PAUSE_ON_WAIT, REMINDER_HOUR=8: C waits 4-11 May):", seen)
    assert of_case(seen, "C") == [
        ("Thu 2026-04-16", "unassigned", "2026-05-15"),  # Wed 15, Thu 16 April
        # nothing on Fri 8 May (waiting), nor on Mon 11 May at 08:00 (still waiting)
        ("Wed 2026-05-13", "due_in_7", "2026-05-21"),  # 21 - 7 = Thu 14 May, Ascension
        ("Tue 2026-05-19", "due_in_2", "2026-05-21"),
        ("Thu 2026-05-21", "due_today", "2026-05-21"),
        ("Fri 2026-05-22", "overdue", "2026-05-21"),
        ("Tue 2026-05-26", "overdue", "2026-05-21"),  # Mon 25 May: Whit Monday
        ("Wed 2026-05-27", "overdue", "2026-05-21"),  # 08:00, before it was resolved at noon
    ]
    assert_working_days_at(seen, 8)
    assert c_root["due_date"] == "2026-05-21"


async def test_a_reminder_decided_before_its_case_was_resolved_is_not_posted(
    settings: Settings, database: Path, slack: SlackStandIn
) -> None:
    async with desk_on(settings, database, slack) as desk:
        desk.clock.now = at("2026-04-02", "10:00").astimezone(UTC)
        await desk.arrive("A", "access")  # due Mon 4 May
        await desk.deliver()
        desk.clock.now = at("2026-05-04", "09:00").astimezone(UTC)
        assert await desk.decide() > 0  # the due_today reminder (and the digest) are decided
        desk.clock.now += timedelta(seconds=20)
        await desk.resolve("A")  # before the outbox got to them
        await desk.deliver()
        assert desk.reminders("A") == []
        digests = slack.roots(CHANNEL, event_type="privacy_digest")
        assert [d["metadata"]["event_payload"]["due_soon"] for d in digests] == [[desk.refs["A"]]]


# --- 2. restarts and crashes --------------------------------------------------------------------


async def test_restarts_between_days_and_crashes_in_a_run_send_nothing_twice(
    settings: Settings, database: Path, slack: SlackStandIn
) -> None:
    cut: list[str] = []

    async def step(desk: Desk, when: datetime) -> None:
        day = when.date().isoformat()
        if day == "2026-05-05" or (day == "2026-05-07" and when.hour < 13):
            return  # the bot is down all of Tue 5 May, and on Thu 7 May until 13:00
        if when.time() in (time(0), time(13)) or (day == "2026-05-07" and when.hour == 13):
            await desk.restart()  # new Store, Scheduler and outbox on the same file
        if day == "2026-04-27" and when.time() == time(9):
            await desk.decide()
            await desk.restart()  # a crash after the job decided, before anything was posted
            await desk.deliver()
        elif day == "2026-04-30" and when.time() == time(9):
            await desk.decide()
            await deliver_until_a_reminder_is_in_slack(desk, cut)
            await desk.restart()  # a crash between Slack storing the reminder and the bot recording it
            await desk.deliver()
        else:
            await desk.tick()

    async with desk_on(settings, database, slack) as desk:
        seen = await walk(
            desk,
            "2026-04-01",
            "2026-05-29",
            [
                (at("2026-04-02", "10:00"), lambda: desk.arrive("A", "access")),
                (at("2026-05-15", "10:00"), lambda: desk.resolve("A")),
            ],
            step=step,
        )
        due_in_2 = [
            m["ts"] for m in desk.reminders("A") if m["metadata"]["event_payload"]["milestone"] == "due_in_2"
        ]
    show(
        "Walk 1 again, restarted twice a day, crashes on 27 and 30 April, down on 5 May and 7 May a.m.:", seen
    )
    due = "2026-05-04"
    assert of_case(seen, "A") == [
        ("Tue 2026-04-07", "unassigned", due),
        ("Mon 2026-04-27", "due_in_7", due),
        ("Thu 2026-04-30", "due_in_2", due),
        ("Mon 2026-05-04", "due_today", due),
        # none for Tue 5 May: the bot was down all day, and earlier days are never caught up
        ("Wed 2026-05-06", "overdue", due),
        ("Thu 2026-05-07", "overdue", due),  # when it started at 13:00
        ("Fri 2026-05-08", "overdue", due),
        ("Mon 2026-05-11", "overdue", due),
        ("Tue 2026-05-12", "overdue", due),
        ("Wed 2026-05-13", "overdue", due),
        ("Fri 2026-05-15", "overdue", due),
    ]
    assert [s.at.hour for s in seen] == [9] * 5 + [13] + [9] * 5
    assert due_in_2 == cut, "the reminder Slack had was found, not posted again"
    digest_days = [d["metadata"]["event_payload"]["date"] for d in slack.roots(CHANNEL, "privacy_digest")]
    assert len(digest_days) == len(set(digest_days)), "at most one digest a day"


async def deliver_until_a_reminder_is_in_slack(desk: Desk, cut: list[str]) -> None:
    """Deliver, and cut the delivery off (as a crash would) the moment Slack has stored a reminder:
    the bot never hears Slack's answer."""
    delivery = asyncio.create_task(desk.deliver())

    def crash(message: dict[str, Any]) -> None:
        if (message["metadata"] or {}).get("event_type") == "privacy_reminder" and not cut:
            cut.append(message["ts"])
            delivery.cancel()

    desk.slack.on_message_posted = crash
    try:
        with suppress(asyncio.CancelledError):
            await delivery
    finally:
        desk.slack.on_message_posted = None
    assert cut, "a reminder was being posted"


async def test_a_reminder_cut_off_by_a_crash_in_a_long_thread_is_found_not_posted_again(
    settings: Settings, database: Path, slack: SlackStandIn
) -> None:
    # A long-running case's thread holds more than 200 messages (emails, notes, staff talk, a
    # reminder every working day while overdue): the reminder Slack already has is the newest one.
    cut: list[str] = []
    async with desk_on(settings, database, slack) as desk:
        desk.clock.now = at("2026-04-02", "10:00").astimezone(UTC)
        await desk.arrive("A", "access")  # due Mon 4 May
        await desk.claim("A", ALICE)  # so that its only reminder on 27 April is due_in_7
        await desk.deliver()
        client = build_client(settings)
        for n in range(210):
            await client.chat_postMessage(
                channel=CHANNEL, thread_ts=desk.root("A")["ts"], text=f"message {n}"
            )
        desk.clock.now = at("2026-04-27", "09:00").astimezone(UTC)  # due_in_7
        await desk.decide()
        await deliver_until_a_reminder_is_in_slack(desk, cut)
        await desk.restart()
        await desk.deliver()
        assert [m["ts"] for m in desk.reminders("A")] == cut, (
            "the reminder Slack had is kept, not posted again"
        )


# --- 2b. the product itself, killed with SIGKILL on a reminder day -------------------------------


class Product:
    """One `privacy-desk run` process (as tests/test_e2e.py runs it)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, fake_now: datetime) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "run"],
                env={**self.env, "PRIVACY_DESK_FAKE_NOW": fake_now.isoformat()},
                cwd=self.log.parent,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        with suppress(ProcessLookupError):
            self.proc.send_signal(sig)

    async def wait(self, timeout: float = 20) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(asyncio.to_thread(self.proc.wait), timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


async def quiet(slack: SlackStandIn, seconds: float = 1.5) -> None:
    """Wait until the product has made no Slack call for `seconds`."""
    last = -1
    while len(slack.calls) != last:
        last = len(slack.calls)
        await asyncio.sleep(seconds)


@pytest.mark.slow
async def test_the_product_killed_on_a_reminder_day_sends_each_reminder_exactly_once(
    product_env: dict[str, str],
    subprocess_env: dict[str, str],
    migrated_database: Path,
    slack: SlackStandIn,
    tmp_path: Path,
) -> None:
    path = Path(product_env["DATABASE_PATH"])
    shutil.copyfile(migrated_database, path)
    path.chmod(0o600)
    settings = Settings.from_env(product_env)
    # three cases already in the database (their roots not yet in Slack):
    # D received Thu 19 March, due Mon 20 April (19 April is a Sunday): overdue;
    # A received Thu 2 April, due Mon 4 May: due in 7 days on Mon 27 April, in 2 days on Thu 30 April;
    # E received Thu 23 April, due Tue 26 May: unassigned 2 working days on Mon 27 April.
    desk = Desk(settings, path, slack)
    await desk.start()
    for name, received in (("D", "2026-03-19"), ("A", "2026-04-02"), ("E", "2026-04-23")):
        desk.clock.now = at(received, "10:00").astimezone(UTC)
        await desk.arrive(name, "access")
    await desk.stop()
    names = {ref: name for name, ref in desk.refs.items()}

    env = {**subprocess_env, **product_env, "PYTHONPATH": str(ROOT), "SLACK_MANAGER_USER_IDS": BOB}
    product = Product(env, tmp_path / "product.log")
    phases: list[tuple[str, int]] = []

    def reminders_in(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
        return [
            (names[m["metadata"]["event_payload"]["case_ref"]], m["metadata"]["event_payload"]["milestone"])
            for m in messages
            if (m["metadata"] or {}).get("event_type") == "privacy_reminder"
        ]

    def reminders_since(start: int) -> list[tuple[str, str]]:
        return reminders_in(slack.messages[start:])

    def posted(event_type: str, channel: str = CHANNEL) -> list[dict[str, Any]]:
        return [
            m
            for m in slack.messages
            if m["channel"] == channel and (m["metadata"] or {}).get("event_type") == event_type
        ]

    killed: list[str] = []

    def kill_at_the_first_reminder(message: dict[str, Any]) -> None:
        if (message["metadata"] or {}).get("event_type") == "privacy_reminder" and not killed:
            killed.append(message["ts"])
            product.signal(signal.SIGKILL)  # Slack has it; the product never hears back

    try:
        # Mon 27 April 09:00:30: killed the moment Slack has its first reminder
        phases.append(("Mon 2026-04-27", len(slack.messages)))
        slack.on_message_posted = kill_at_the_first_reminder
        product.start(at("2026-04-27", "09:00:30"))
        await wait_until(lambda: killed, 30)
        assert await product.wait() == -signal.SIGKILL
        slack.on_message_posted = None

        # started again at the same fake instant: it finishes the day's work, nothing twice
        product.start(at("2026-04-27", "09:00:30"))
        await wait_until(
            lambda: len(reminders_since(phases[0][1])) >= 5 and posted("privacy_summary", "D" + BOB[1:]), 30
        )
        await quiet(slack)
        product.signal(signal.SIGTERM)
        assert await product.wait() == 0

        # Thu 30 April 09:00:30, then again at 15:00 the same day
        phases.append(("Thu 2026-04-30", len(slack.messages)))
        product.start(at("2026-04-30", "09:00:30"))
        await wait_until(lambda: len(reminders_since(phases[1][1])) >= 2, 30)
        await quiet(slack)
        product.signal(signal.SIGTERM)
        assert await product.wait() == 0
        phases.append(("Thu 2026-04-30 15:00", len(slack.messages)))
        before = slack.connection_count
        product.start(at("2026-04-30", "15:00"))
        await slack.wait_for_socket(timeout=30, after=before)
        await quiet(slack)
        product.signal(signal.SIGTERM)
        assert await product.wait() == 0
    finally:
        slack.on_message_posted = None
        product.kill()

    bounds = [start for _, start in phases] + [len(slack.messages)]
    sent: Counter[tuple[str, str, str]] = Counter()
    for (day, start), end in zip(phases, bounds[1:], strict=False):
        for name, milestone in reminders_in(slack.messages[start:end]):
            sent[(day, name, milestone)] += 1
    print("\nThe product, killed at its first reminder on Mon 27 April and started again:")
    for (day, name, milestone), n in sent.items():
        print(f"  {day}  {name}  {milestone}  x{n}")
    assert sent == {
        ("Mon 2026-04-27", "A", "unassigned"): 1,
        ("Mon 2026-04-27", "A", "due_in_7"): 1,
        ("Mon 2026-04-27", "D", "unassigned"): 1,
        ("Mon 2026-04-27", "D", "overdue"): 1,
        ("Mon 2026-04-27", "E", "unassigned"): 1,
        ("Thu 2026-04-30", "A", "due_in_2"): 1,
        ("Thu 2026-04-30", "D", "overdue"): 1,
    }
    kept = [m["ts"] for m in posted("privacy_reminder")]
    assert killed[0] in kept, "the reminder Slack had when the product died is the one kept"
    for m in posted("privacy_reminder"):
        case = names[m["metadata"]["event_payload"]["case_ref"]]
        root = next(
            r for r in slack.roots(CHANNEL) if names[r["metadata"]["event_payload"]["case_ref"]] == case
        )
        assert m["thread_ts"] == root["ts"]
    digests = [d["metadata"]["event_payload"] for d in posted("privacy_digest")]
    assert digests == [
        {"date": "2026-04-27", "overdue": [desk.refs["D"]], "due_soon": [desk.refs["A"]]},
        {"date": "2026-04-30", "overdue": [desk.refs["D"]], "due_soon": [desk.refs["A"]]},
    ]
    summary = {
        "week_of": "2026-04-27",
        "open": 3,
        "overdue": 1,
        "resolved_last_week": 0,
        "on_time_rate": None,
    }
    assert [s["metadata"]["event_payload"] for s in posted("privacy_summary")] == [summary]
    assert [s["metadata"]["event_payload"] for s in posted("privacy_summary", "D" + BOB[1:])] == [summary]
    assert len(slack.roots(CHANNEL)) == 3


# --- 3. the digest and the summary -----------------------------------------------------------------


def plain(message: dict[str, Any]) -> str:
    """The words of a message's blocks, one block a line."""
    lines = []
    for block in message["blocks"]:
        if block["type"] in ("header", "section"):
            lines.append(block["text"]["text"])
        elif block["type"] == "context":
            lines += [e["text"] for e in block["elements"]]
    return "\n".join(lines)


def top_level(slack: SlackStandIn, event_type: str, channel: str = CHANNEL) -> list[dict[str, Any]]:
    return [
        m
        for m in slack.messages
        if m["channel"] == channel
        and not m["thread_ts"]
        and (m["metadata"] or {}).get("event_type") == event_type
    ]


def payloads(slack: SlackStandIn, event_type: str, channel: str = CHANNEL) -> list[dict[str, Any]]:
    return [m["metadata"]["event_payload"] for m in top_level(slack, event_type, channel)]


async def test_the_digest_and_the_weekly_summary_count_what_a_person_counts_by_hand(
    slack_env: dict[str, str], database: Path, slack: SlackStandIn
) -> None:
    settings = Settings.from_env({**slack_env, "SLACK_MANAGER_USER_IDS": f"{BOB},{MALLORY}"})
    desk = Desk(settings, database, slack)
    # each case arrives at 10:00 on its day; its due date counted by hand
    arrivals = [
        # open on Tue 7 April (the week of Easter Monday)
        ("C1", "access", "2026-03-02"),  # due Thu 2 Apr: overdue
        ("C2", "erasure", "2026-03-05"),  # Sun 5 Apr, Easter Monday -> due Tue 7 Apr: due today
        ("C3", "complaint", "2026-03-07"),  # + 30 days = Mon 6 Apr, not moved: overdue
        ("C4", "rectification", "2026-03-13"),  # due Mon 13 Apr: due soon
        ("C5", "objection", "2026-03-14"),  # due Tue 14 Apr = today + 7: due soon
        ("C6", "portability", "2026-03-15"),  # due Wed 15 Apr: not yet
        ("C7", "access", "2026-03-20"),  # due Mon 20 Apr; waiting for the requester
        ("C8", "restriction", "2026-03-01"),  # due Wed 1 Apr, extended -> Mon 1 Jun: not overdue
        # resolved last week (Mon 30 March - Sun 5 April, by local date)
        ("C9", "access", "2026-03-02"),  # due Thu 2 Apr, resolved Tue 31 Mar: on time
        ("C10", "erasure", "2026-02-20"),  # due Fri 20 Mar, resolved Wed 1 Apr: late
        ("C11", "complaint", "2026-03-10"),  # + 30 days = Thu 9 Apr, resolved Fri 3 Apr: on time
        ("C12", "access", "2026-01-05"),  # due Thu 5 Feb, extended -> Tue 7 Apr; resolved Thu 2 Apr: on time
        ("C13", "objection", "2026-02-02"),  # due Mon 2 Mar, resolved Sun 5 Apr 23:30 (21:30 UTC): late
        ("C14", "rectification", "2026-03-09"),  # due Thu 9 Apr, resolved Mon 30 Mar 00:30 (Sun UTC): on time
        # resolved the week before, and on Easter Monday
        ("C15", "access", "2026-02-16"),  # resolved Fri 27 Mar
        ("C16", "access", "2026-03-09"),  # due Thu 9 Apr, resolved Mon 6 Apr 10:00: on time
    ]
    events: list[Event] = [
        (at(day, "10:00"), partial(desk.arrive, name, kind)) for name, kind, day in arrivals
    ]
    events += [
        (at("2026-03-06", "11:00"), partial(desk.claim, "C2", ALICE)),
        (at("2026-03-09", "11:00"), partial(desk.claim, "C3", BOB)),
        (at("2026-03-16", "11:00"), partial(desk.claim, "C4", ALICE)),
        (at("2026-03-23", "11:00"), partial(desk.claim, "C7", BOB)),
        (at("2026-03-24", "11:00"), partial(desk.start_wait, "C7")),
        (at("2026-03-25", "11:00"), partial(desk.extend, "C8")),
        (at("2026-02-02", "11:00"), partial(desk.extend, "C12")),
        (at("2026-03-27", "16:00"), partial(desk.resolve, "C15")),
        (at("2026-03-30", "00:30"), partial(desk.resolve, "C14")),
        (at("2026-03-31", "15:00"), partial(desk.resolve, "C9")),
        (at("2026-04-01", "11:00"), partial(desk.resolve, "C10")),
        (at("2026-04-02", "11:00"), partial(desk.resolve, "C12")),
        (at("2026-04-03", "11:00"), partial(desk.resolve, "C11")),
        (at("2026-04-05", "23:30"), partial(desk.resolve, "C13")),
        (at("2026-04-06", "10:00"), partial(desk.resolve, "C16")),
    ]
    pending = sorted(events, key=lambda e: e[0])

    async def run_at(day: str, clock_time: str) -> None:
        """What happened to the cases up to that instant, then a scheduler round and the delivery."""
        while pending and pending[0][0] <= at(day, clock_time):
            instant, happen = pending.pop(0)
            desk.clock.now = instant.astimezone(UTC)
            await happen()
        desk.clock.now = at(day, clock_time).astimezone(UTC)
        await desk.tick()

    await desk.start()
    try:
        await run_at("2026-04-06", "09:00")  # Easter Monday: no digest, no summary
        refs = desk.refs
        await run_at("2026-04-06", "13:00")
        await run_at("2026-04-07", "08:59:59")
        assert payloads(slack, "privacy_digest") == [] and payloads(slack, "privacy_summary") == []
        await run_at("2026-04-07", "09:00")  # the first working day of the week
        await run_at("2026-04-07", "14:00")  # nothing twice
        assert payloads(slack, "privacy_digest") == [
            {
                "date": "2026-04-07",
                "overdue": [refs["C1"], refs["C3"]],  # soonest due first
                "due_soon": [refs["C2"], refs["C4"], refs["C5"]],
            }
        ]
        week_of_6_april = {
            "week_of": "2026-04-06",
            "open": 8,  # C1-C8
            "overdue": 2,  # C1, C3
            "resolved_last_week": 6,  # C9-C14
            "on_time_rate": 0.6667,  # C9, C11, C12, C14 of 6
        }
        assert payloads(slack, "privacy_summary") == [week_of_6_april]
        for manager in (BOB, MALLORY):
            assert payloads(slack, "privacy_summary", "D" + manager[1:]) == [week_of_6_april]
        digest = top_level(slack, "privacy_digest")[0]
        summary = top_level(slack, "privacy_summary")[0]
        print(f"\nThe digest of Tue 7 April 2026:\n{plain(digest)}")
        print(f"\nThe summary of the week of Easter Monday 2026:\n{plain(summary)}")
        assert plain(digest).splitlines()[1] == "2 overdue, 3 due within 7 days, 4 unassigned"  # C1 C5 C6 C8
        assert "*By status:* In progress 3, New 3, Awaiting requester 1, Extended 1" in plain(summary)
        assert "*Overdue:* 2 · *due this week:* 1 · *unassigned:* 4" in plain(summary)  # due: C2 (7 April)
        # days from receipt to answer: 21 (C14), 24 (C11), 29 (C9), 40 (C10), 62 (C13), 87 (C12)
        assert "*Resolved last week:* 6, 4 on time (67 %), median 34.5 days to answer, 1 extended." in plain(
            summary
        )

        await run_at("2026-04-08", "09:00")  # a digest, no summary
        await run_at("2026-04-11", "09:00")  # Saturday: nothing
        await run_at("2026-04-13", "09:00")  # Monday: the next summary
        assert payloads(slack, "privacy_digest")[1:] == [
            {
                "date": "2026-04-08",
                "overdue": [refs["C1"], refs["C3"], refs["C2"]],
                "due_soon": [refs["C4"], refs["C5"], refs["C6"]],
            },
            {
                "date": "2026-04-13",
                "overdue": [refs["C1"], refs["C3"], refs["C2"]],
                "due_soon": [refs["C4"], refs["C5"], refs["C6"], refs["C7"]],
            },
        ]
        assert payloads(slack, "privacy_summary")[1:] == [
            {"week_of": "2026-04-13", "open": 8, "overdue": 3, "resolved_last_week": 1, "on_time_rate": 1.0}
        ]
    finally:
        await desk.stop()
    assert desk.failed_rows() == []


async def test_the_digest_goes_out_only_when_something_is_due_within_7_days_and_the_summary_once_a_week(
    slack_env: dict[str, str], database: Path, slack: SlackStandIn
) -> None:
    settings = Settings.from_env({**slack_env, "SLACK_MANAGER_USER_IDS": BOB})
    # F received Mon 16 March, due Thu 16 April (due within 7 days from Thu 9 April), resolved on
    # its due date; A received Wed 1 April, due Fri 1 May, Labour Day -> Mon 4 May.
    async with desk_on(settings, database, slack) as desk:
        await walk(
            desk,
            "2026-04-01",
            "2026-05-08",
            [
                (at("2026-03-16", "10:00"), lambda: desk.arrive("F", "access")),
                (at("2026-04-01", "10:00"), lambda: desk.arrive("A", "access")),
                (at("2026-04-16", "15:00"), lambda: desk.resolve("F")),
            ],
        )
        f, a = desk.refs["F"], desk.refs["A"]
    digests = {
        label(date.fromisoformat(d["date"])): (d["overdue"], d["due_soon"])
        for d in payloads(slack, "privacy_digest")
    }
    print("\nDigest days:", ", ".join(digests))
    assert digests == {
        "Thu 2026-04-09": ([], [f]),
        "Fri 2026-04-10": ([], [f]),
        "Mon 2026-04-13": ([], [f]),
        "Tue 2026-04-14": ([], [f]),
        "Wed 2026-04-15": ([], [f]),
        "Thu 2026-04-16": ([], [f]),
        # none from Fri 17 to Fri 24 April: F resolved, A due in more than 7 days
        "Mon 2026-04-27": ([], [a]),
        "Tue 2026-04-28": ([], [a]),
        "Wed 2026-04-29": ([], [a]),
        "Thu 2026-04-30": ([], [a]),
        "Mon 2026-05-04": ([], [a]),
        "Tue 2026-05-05": ([a], []),
        "Wed 2026-05-06": ([a], []),
        "Thu 2026-05-07": ([a], []),
        "Fri 2026-05-08": ([a], []),
    }
    assert len(payloads(slack, "privacy_digest")) == len(digests), "at most one a day"
    weeks = [s["week_of"] for s in payloads(slack, "privacy_summary")]
    # the walk starts on Wed 1 April: that week's Monday had passed (never sent late)
    assert weeks == ["2026-04-06", "2026-04-13", "2026-04-20", "2026-04-27", "2026-05-04"]
    assert [s["week_of"] for s in payloads(slack, "privacy_summary", "D" + BOB[1:])] == weeks
    posted_on = [desk.posted_at[m["ts"]] for m in top_level(slack, "privacy_summary")]
    assert [label(p.date()) for p in posted_on] == [
        "Tue 2026-04-07",  # Easter Monday moves it to Tuesday
        "Mon 2026-04-13",
        "Mon 2026-04-20",
        "Mon 2026-04-27",
        "Mon 2026-05-04",
    ]
    assert {p.time() for p in posted_on} == {time(9)}
    digest_times = {desk.posted_at[m["ts"]].time() for m in top_level(slack, "privacy_digest")}
    assert digest_times == {time(9)}


async def test_with_a_paused_clock_the_summary_counts_overdue_what_the_digest_and_the_reminders_do(
    slack_env: dict[str, str], database: Path, slack: SlackStandIn
) -> None:
    settings = Settings.from_env({**slack_env, "CLOCK_PAUSE_ON_WAIT": "true"})
    # P received Wed 1 April, due Fri 1 May, Labour Day -> Mon 4 May; waiting for the requester
    # from Tue 28 April: its clock is paused, so on Mon 11 May it is not overdue (when the wait ends
    # its due date moves by the days waited). Q received Mon 13 April, due Wed 13 May: due soon.
    async with desk_on(settings, database, slack) as desk:
        seen = await walk(
            desk,
            "2026-05-11",
            "2026-05-11",
            [
                (at("2026-04-01", "10:00"), lambda: desk.arrive("P", "access")),
                (at("2026-04-13", "10:00"), lambda: desk.arrive("Q", "erasure")),
                (at("2026-04-28", "10:00"), lambda: desk.start_wait("P")),
            ],
        )
        refs = desk.refs
    assert [(s.case, s.milestone) for s in seen if s.milestone != "unassigned"] == [("Q", "due_in_2")]
    assert payloads(slack, "privacy_digest") == [
        {"date": "2026-05-11", "overdue": [], "due_soon": [refs["Q"]]}
    ]
    summary = top_level(slack, "privacy_summary")[0]
    print(f"\nThe summary of Mon 11 May 2026 (P waiting, clock paused):\n{plain(summary)}")
    assert summary["metadata"]["event_payload"] == {
        "week_of": "2026-05-11",
        "open": 2,
        "overdue": 0,  # as in the digest and the reminders: P's clock is paused
        "resolved_last_week": 0,
        "on_time_rate": None,
    }
