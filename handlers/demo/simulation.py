"""The demo: the bundled sample emails through the real pipeline, then a simulated month.

Everything is the code `privacy-desk run` uses — intake (parse, classify, deadline, store,
acknowledge), the outbox's Slack senders (each message rendered from the database when it is
sent), the staff's use cases and the daily deadline job — on a SQLite file the caller provides.
Only the outside world is replaced: Slack by `OfflineSlack`, a slack-sdk client whose every call
is answered here (nothing is sent; what the bot posts is recorded), the mailbox by the files in
`samples/` (each arrived at its `Date`), the mail server by nobody (acknowledgements are queued
and read back from the database), the clock by a fixed one. The output is the same on every run.

The story: on Monday 2 March 2026 at 10:00 (Europe/Brussels) the bot starts for the first time,
with the last two weeks' mail in the privacy mailbox. Then the clock jumps to 09:00 of each working
day until Tuesday 7 April (Easter Monday is a public holiday), the deadline job runs, and two staff
members claim, resolve and extend a few cases in between.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from email import policy
from email.parser import BytesParser
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from core.vocabulary import kind_label
from handlers.cases.acknowledgement import NOT_SENT, Acknowledgements
from handlers.cases.actions import claim, extend, resolve, verify_identity
from handlers.cases.deadlines import Calendar
from handlers.cases.intake import IncomingMessage, IntakeOutcome, IntakeRules, take_in
from handlers.cases.inventory import load_inventory
from handlers.demo.transcript import Entry, Heading, Letter, Narration, Posted, Transcript
from handlers.jobs.deadlines import DeadlineRules, deadline_job
from handlers.mail_out.compose import build_message
from handlers.mail_out.letters import Writer
from handlers.mail_out.templates import Templates
from handlers.slack.links import Permalinks
from handlers.slack.posting import SlackSender
from handlers.slack.scheduled import ScheduledSender
from handlers.slack.staff import StaffDirectory
from storage.models import Case
from storage.store import Store

__all__ = ["CHANNEL", "START", "USERS", "OfflineSlack", "Sample", "demo_transcript", "load_samples"]

CALENDAR = Calendar()  # Europe/Brussels, Belgian public holidays, complaints in 30 days
TZ = CALENDAR.tz
#: The bot starts: Monday 2 March 2026, 10:00 in Brussels.
START = datetime(2026, 3, 2, 10, 0, tzinfo=TZ)
#: The last day simulated: the Tuesday after Easter Monday (the week's first working day).
LAST_DAY = date(2026, 4, 7)
REMINDER_HOUR = 9
MAIL_FROM = "privacy@imal.example"
WORKSPACE = "iMAL"
CHANNEL, CHANNEL_NAME = "C0PRIVACY", "privacy-requests"
APP_NAME = "Privacy Desk"
ALICE, BOB, MORGAN = "UALICE", "UBOB", "UMANAGER1"
STAFF = (ALICE, BOB)
MANAGERS = (MORGAN,)
#: The display names of the demo's people, as Slack would show their mentions.
USERS = {ALICE: "alice", BOB: "bob", MORGAN: "morgan", "UPRIVACYDESK": "privacy-desk"}
_PERMALINK = "https://imal.slack.example/archives/{channel}/p{digits}"


# --- the outside world, offline -------------------------------------------------------------------


class DemoClock:
    """The demo's clock: it stands where the demo puts it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class OfflineSlack(AsyncWebClient):
    """A slack-sdk client that sends nothing: every Web API call is answered here, as Slack would
    answer the few the bot makes (`chat.postMessage`, `chat.update`, `chat.getPermalink`,
    `conversations.open`, …), and every message posted or edited is recorded as `Posted`. Message
    timestamps come from the demo's clock and a counter, so they are the same on every run."""

    def __init__(self, clock: DemoClock, *, tz: ZoneInfo) -> None:
        super().__init__(token="xoxb-offline-demo", base_url="https://slack.invalid/api/")
        self.clock = clock
        self.tz = tz
        self.posted: list[Posted] = []
        self.permalinks: dict[str, str] = {}  # permalink → ts
        self._serial = itertools.count(1)
        self._roots: dict[str, str] = {}  # ts → case_ref

    def take(self) -> list[Posted]:
        """The messages posted or edited since the last call."""
        taken, self.posted = self.posted, []
        return taken

    async def api_call(
        self,
        api_method: str,
        *,
        http_verb: str = "POST",
        files: dict[str, Any] | None = None,
        data: dict[str, Any] | Any | None = None,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> AsyncSlackResponse:
        args: dict[str, Any] = {**(params or {}), **(data if isinstance(data, dict) else {}), **(json or {})}
        answer = self._answer(api_method, args)
        return AsyncSlackResponse(
            client=self,
            http_verb=http_verb,
            api_url=f"{self.base_url}{api_method}",
            req_args={},
            data={"ok": True, **answer},
            headers={},
            status_code=200,
        )

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "chat.postMessage":
            ts = f"{int(self.clock().timestamp())}.{next(self._serial):06d}"
            self._record(ts, args, edited=False)
            return {"ts": ts, "channel": args["channel"]}
        if method == "chat.update":
            self._record(str(args["ts"]), args, edited=True)
            return {"ts": args["ts"], "channel": args["channel"]}
        if method == "chat.getPermalink":
            ts = str(args["message_ts"])
            link = _PERMALINK.format(channel=args["channel"], digits=ts.replace(".", ""))
            self.permalinks[link] = ts
            return {"permalink": link, "channel": args["channel"]}
        if method == "conversations.open":
            return {"channel": {"id": f"D{str(args['users']).split(',')[0]}"}}
        if method == "auth.test":
            return {"user_id": "UPRIVACYDESK", "bot_id": "BPRIVACYDESK"}
        if method in ("conversations.history", "conversations.replies"):
            return {"messages": [], "has_more": False}
        if method in ("views.publish", "chat.delete"):
            return {}
        raise NotImplementedError(f"the offline Slack does not answer {method}")

    def _record(self, ts: str, args: dict[str, Any], *, edited: bool) -> None:
        blocks = args.get("blocks") or []
        metadata = args.get("metadata") or {}
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        payload = metadata.get("event_payload") or {}
        event_type = str(metadata.get("event_type") or "")
        thread_ts = args.get("thread_ts")
        case_ref = payload.get("case_ref") or (self._roots.get(str(thread_ts)) if thread_ts else None)
        if event_type == "privacy_case" and not edited:
            self._roots[ts] = str(case_ref)
        self.posted.append(
            Posted(
                ts=ts,
                at=self.clock().astimezone(self.tz),
                channel=str(args["channel"]),
                text=str(args.get("text") or ""),
                blocks=tuple(blocks),
                event_type=event_type,
                case_ref=str(case_ref) if case_ref else None,
                thread_ts=str(thread_ts) if thread_ts else None,
                edited=edited,
            )
        )


# --- the mailbox ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """A bundled sample email: its file name, its bytes and when it reached the mailbox."""

    name: str
    raw: bytes
    arrived_at: datetime


def load_samples() -> list[Sample]:
    """The bundled samples in the order they arrived (each arrived at its `Date` header)."""
    folder = resources.files("handlers.demo") / "samples"
    samples = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".eml"):
            continue
        raw = entry.read_bytes()
        headers = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
        samples.append(Sample(entry.name, raw, headers["Date"].datetime))
    return sorted(samples, key=lambda s: (s.arrived_at, s.name))


# --- the staff ---------------------------------------------------------------------------------------


Act = Callable[[Store, Case, datetime], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class StaffAction:
    """A click in Slack, done through the use case its listener calls."""

    at: datetime
    ref: str
    words: str
    act: Act


def _at(day: int, month: int, hour: int, minute: int) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=TZ)


def _claims(actor: str) -> Act:
    async def act(store: Store, case: Case, now: datetime) -> object:
        return await claim(store, case_id=case.id, actor=actor, assignee=actor, now=now)

    return act


def _resolves(actor: str, outcome: str, note: str, recipients: tuple[str, ...] = ()) -> Act:
    async def act(store: Store, case: Case, now: datetime) -> object:
        return await resolve(
            store,
            case_id=case.id,
            actor=actor,
            outcome=outcome,
            note=note,
            recipients=recipients,
            now=now,
            calendar=CALENDAR,
        )

    return act


def _verifies(actor: str, method: str, note: str) -> Act:
    async def act(store: Store, case: Case, now: datetime) -> object:
        return await verify_identity(store, case_id=case.id, actor=actor, method=method, note=note, now=now)

    return act


def _extends(actor: str, reason: str) -> Act:
    async def act(store: Store, case: Case, now: datetime) -> object:
        return await extend(store, case_id=case.id, actor=actor, reason=reason, now=now, calendar=CALENDAR)

    return act


def staff_actions() -> list[StaffAction]:
    """What alice and bob do during the month, through the use cases their clicks call."""
    return [
        StaffAction(
            _at(3, 3, 10, 30), "PRIV-2026-0001", "alice clicks Claim on PRIV-2026-0001", _claims(ALICE)
        ),
        StaffAction(
            _at(3, 3, 11, 0),
            "PRIV-2026-0009",
            "bob resolves PRIV-2026-0009 as not a privacy request (Resolve)",
            _resolves(
                BOB, "not_a_request", "Asked about the Easter opening hours; passed on to the front desk."
            ),
        ),
        StaffAction(
            _at(4, 3, 9, 40), "PRIV-2026-0002", "bob claims PRIV-2026-0002 after the reminder", _claims(BOB)
        ),
        StaffAction(
            _at(10, 3, 14, 0),
            "PRIV-2026-0001",
            "alice records how the requester of PRIV-2026-0001 was identified (Verify identity)",
            _verifies(ALICE, "same_address", "Same address as her FabLab membership."),
        ),
        StaffAction(
            _at(10, 3, 14, 5),
            "PRIV-2026-0001",
            "alice resolves PRIV-2026-0001: fulfilled",
            _resolves(
                ALICE,
                "fulfilled",
                "Export of her membership, workshop bookings and newsletter record sent by email.",
            ),
        ),
        StaffAction(
            _at(12, 3, 11, 0),
            "PRIV-2026-0002",
            "bob extends the deadline of PRIV-2026-0002 (Extend), giving the reason",
            _extends(
                BOB, "vos inscriptions de 2014 à 2019 sont dans nos archives papier, à parcourir à la main"
            ),
        ),
        StaffAction(
            _at(12, 3, 11, 30), "PRIV-2026-0003", "bob claims PRIV-2026-0003 after the reminder", _claims(BOB)
        ),
        StaffAction(_at(16, 3, 9, 30), "PRIV-2026-0005", "alice claims PRIV-2026-0005", _claims(ALICE)),
        StaffAction(
            _at(18, 3, 15, 0),
            "PRIV-2026-0003",
            "bob resolves PRIV-2026-0003: fulfilled, saying whom the correction was passed on to (art. 19)",
            _resolves(
                BOB,
                "fulfilled",
                "New address and spelling corrected in the member file and the newsletter.",
                ("Newsletter (hosting provider)", "Workshop leaders"),
            ),
        ),
        StaffAction(
            _at(20, 3, 11, 0),
            "PRIV-2026-0005",
            "alice resolves PRIV-2026-0005: fulfilled",
            _resolves(
                ALICE, "fulfilled", "Marked as no marketing in the website database and the newsletter."
            ),
        ),
    ]


# --- the demo --------------------------------------------------------------------------------------


def _when(instant: datetime) -> str:
    local = instant.astimezone(TZ)
    return f"{local:%a} {local.day} {local:%b %Y %H:%M}"


def _day_title(day: date) -> str:
    return f"{day:%A} {day.day} {day:%B %Y}"


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


class _Demo:
    def __init__(self, store: Store, clock: DemoClock) -> None:
        self.store = store
        self.clock = clock
        self.slack = OfflineSlack(clock, tz=TZ)
        client: AsyncWebClient = self.slack
        writer = Writer(Templates.load(), country=CALENDAR.holidays_country, mail_from=MAIL_FROM)
        # as bot/runtime.py `intake_rules` builds them with ACKNOWLEDGE on and SMTP configured
        self.rules = IntakeRules(
            inventory=load_inventory(), mail_from=MAIL_FROM, acknowledgements=Acknowledgements(writer)
        )
        staff = StaffDirectory(client, channel=CHANNEL, fixed=STAFF)
        self.senders: list[SlackSender | ScheduledSender] = [
            SlackSender(store, client, channel=CHANNEL, calendar=CALENDAR, clock=clock, writer=writer),
            ScheduledSender(
                store,
                client,
                channel=CHANNEL,
                calendar=CALENDAR,
                staff=staff,
                permalinks=Permalinks(client),
                clock=clock,
            ),
        ]
        self.kinds = sorted(kind for sender in self.senders for kind in sender.kinds)

    async def deliver(self) -> list[Posted]:
        """Work the outbox's Slack rows as the outbox worker would (roots first, each reply once
        its root is posted), offline; returns what was posted or edited. Emails to requesters
        stay queued: the demo has no mail server."""
        while rows := await self.store.outbox.due(now=self.clock(), kinds=self.kinds):
            for row in rows:
                sender = next(s for s in self.senders if row.kind in s.kinds)
                delivered = await sender.send(row)
                async with self.store.transaction(now=self.clock()) as tx:
                    await tx.outbox.mark_done(row.id, result=delivered.result, channel=delivered.channel)
                    await sender.sent(tx, row, delivered)
        return self.slack.take()

    # --- the mailbox, at start -----------------------------------------------------------------------
    async def intake(self, samples: list[Sample]) -> list[Entry]:
        async with self.store.transaction(now=self.clock()) as tx:
            await tx.cursors.reset("INBOX", uidvalidity=1, backfill_before_uid=1)
        outcomes: list[tuple[Sample, IntakeOutcome]] = []
        for uid, sample in enumerate(samples, start=1):
            message = IncomingMessage(sample.raw, "INBOX", 1, uid, sample.arrived_at)
            outcome = await take_in(
                self.store, message, calendar=CALENDAR, rules=self.rules, now=self.clock()
            )
            outcomes.append((sample, outcome))
        posted = await self.deliver()

        opened = [(s, o) for s, o in outcomes if o.action == "opened_case" and o.case_ref]
        entries: list[Entry] = []
        acknowledged = 0
        for n, (sample, outcome) in enumerate(opened, start=1):
            ref = str(outcome.case_ref)
            detail = f"{sample.name} · arrived {_when(sample.arrived_at)}"
            for other, later in outcomes:
                if later.action == "follow_up" and later.case_ref == ref:
                    detail += f" · then {other.name}, a follow-up, arrived {_when(other.arrived_at)}"
            entries.append(Heading(f"Case {n} of {len(opened)}: {ref}", detail))
            root = next(p for p in posted if p.event_type == "privacy_case" and p.case_ref == ref)
            entries.append(root)
            entries.extend(p for p in posted if p.thread_ts == root.ts)
            letter = await self._acknowledgement(ref)
            if isinstance(letter, Letter):
                acknowledged += 1
            entries.append(letter)

        machine = [(s, o) for s, o in outcomes if o.action == "automated"]
        if machine:
            entries.append(Heading("Not a case", "mail that opens no case and is not posted"))
        for sample, outcome in machine:
            email_id = await self.store.mail.id_of(outcome.message_id)
            email = await self.store.mail.get(email_id or 0)
            assert email is not None
            entries.append(
                Narration(
                    f"{sample.name} (arrived {_when(sample.arrived_at)}): {kind_label(email.kind)}, recognised "
                    f"by {'; '.join(email.reasons)}. Recorded in the database; no case, nothing posted, "
                    "no acknowledgement."
                )
            )
        follow_ups = sum(o.action == "follow_up" for _, o in outcomes)
        entries.append(
            Narration(
                f"In all: {_plural(len(samples), 'email')} taken in, {_plural(len(opened), 'case')} opened, "
                f"{_plural(follow_ups, 'follow-up')} filed in its case's thread, "
                f"{_plural(len(machine), 'automatic message')} recorded without a case, "
                f"{_plural(acknowledged, 'acknowledgement')} queued for the mail server."
            )
        )
        return entries

    async def _acknowledgement(self, ref: str) -> Letter | Narration:
        """The acknowledgement queued for the case's requester, or why there is none."""
        case = await self.store.cases.by_ref(ref)
        assert case is not None
        for outbound in await self.store.mail.outbound_of_case(case.id):
            if not outbound.purpose.startswith("acknowledgement"):
                continue
            message = build_message(outbound, mail_from=MAIL_FROM, case_ref=ref, to_name=case.requester_name)
            body = str(message.get_content()).rstrip("\n").split("\n")
            lines, written = [], 0
            for line in body:
                if written == 6:
                    break
                lines.append(line)
                written += bool(line.strip())
            return Letter(
                case_ref=ref,
                to=str(message["To"]),
                subject=str(message["Subject"]),
                language=str(message["Content-Language"] or outbound.language),
                lines=tuple(lines),
                more=len(body) - len(lines),
            )
        for event in await self.store.audit.trail(case.id):
            if event.action == "case.not_acknowledged":
                reason = str((event.after or {}).get("reason", ""))
                return Narration(f"No acknowledgement for {ref}: {NOT_SENT.get(reason, reason)}.")
        return Narration(f"No acknowledgement for {ref}.")

    # --- the month --------------------------------------------------------------------------------
    async def month(self) -> list[Entry]:
        job = deadline_job(DeadlineRules(calendar=CALENDAR, reminder_hour=REMINDER_HOUR, managers=MANAGERS))
        actions = staff_actions()
        names = holidays.country_holidays(CALENDAR.holidays_country, years=LAST_DAY.year, language="en_US")
        entries: list[Entry] = [
            Heading(
                "Five weeks of deadlines",
                f"the daily deadline job of `privacy-desk run` at {REMINDER_HOUR:02d}:00 on each working day "
                "(reminders in the cases' threads, the daily digest, the weekly summary for managers), "
                "with a few staff actions in between",
                level=1,
            )
        ]
        day = START.date()
        while day <= LAST_DAY:
            today, day = day, day + timedelta(days=1)
            if today.weekday() >= 5:
                continue
            entries.append(Heading(_day_title(today)))
            if not CALENDAR.is_working_day(today):
                entries.append(
                    Narration(
                        f"{names.get(today, 'A public holiday')}: a public holiday in Belgium, not a working "
                        "day. No reminders, no digest; deadlines that fall today move to the next working day."
                    )
                )
                continue
            at = START if today == START.date() else datetime.combine(today, time(REMINDER_HOUR), tzinfo=TZ)
            self.clock.now = at
            key = job.run_key(at)
            if key is not None and not await self.store.jobs.done(job.name, key):
                await job.run(self.store, key, at)
            posted = await self.deliver()
            started = (
                " (the bot started after 09:00: a working day's run happens at start)" if at == START else ""
            )
            if not posted:
                entries.append(Narration(f"{at:%H:%M} · the deadline job runs{started}: nothing to say.", at))
            else:
                entries.append(
                    Narration(f"{at:%H:%M} · the deadline job runs{started}: {_said(posted)}.", at)
                )
                entries.extend(self._shown(posted))
            for action in (a for a in actions if a.at.date() == today):
                self.clock.now = action.at
                entries.append(Narration(f"{action.at:%H:%M} · {action.words}", action.at))
                case = await self.store.cases.by_ref(action.ref)
                assert case is not None
                await action.act(self.store, case, action.at)
                entries.extend(self._shown(await self.deliver()))
        entries.extend(await self._the_end())
        return entries

    def _shown(self, posted: list[Posted]) -> list[Entry]:
        """Posted messages as the transcript shows them: a direct message repeating the weekly
        summary is one line."""
        shown: list[Entry] = []
        for message in posted:
            if message.channel.startswith("D"):
                who = USERS.get(message.channel[1:], message.channel[1:])
                shown.append(Narration(f"The same summary went to @{who} by direct message.", message.at))
            else:
                shown.append(message)
        return shown

    async def _the_end(self) -> list[Entry]:
        counts = {
            kind: len(await self.store.notices.of_kind(kind)) for kind in ("reminder", "digest", "summary")
        }
        lines = await self.store.overview.open_cases()
        overdue = [line.ref for line in lines if line.due_date < LAST_DAY]
        return [
            Heading("The end", f"{_day_title(LAST_DAY)}, after the morning's run", level=1),
            Narration(
                f"In five weeks the job decided {_plural(counts['reminder'], 'reminder')}, "
                f"{_plural(counts['digest'], 'daily digest')} and "
                f"{_plural(counts['summary'], 'weekly summary', 'weekly summaries')} "
                f"(each also sent to @{USERS[MORGAN]} by direct message). {_plural(len(lines), 'case')} still open, "
                f"{len(overdue)} of them overdue{': ' + ', '.join(overdue) if overdue else ''}."
            ),
            Narration(
                "Everything above was produced by the code `privacy-desk run` uses: intake, classifier, deadlines, "
                "the SQLite store, the Slack messages as rendered for sending, the daily job. Only Slack, the "
                "mailbox and the mail server were left out, and the clock was moved by hand."
            ),
        ]


def _said(posted: list[Posted]) -> str:
    kinds = [p.event_type for p in posted if not p.channel.startswith("D")]
    parts = []
    for event_type, word, plural in (
        ("privacy_reminder", "reminder", "reminders"),
        ("privacy_digest", "daily digest", "daily digests"),
        ("privacy_summary", "weekly summary", "weekly summaries"),
    ):
        if n := kinds.count(event_type):
            parts.append(_plural(n, word, plural))
    return ", ".join(parts) or "nothing to say"


async def demo_transcript(database: Path) -> Transcript:
    """Run the demo on a new SQLite database at `database` (which the caller removes) and return
    what it showed. Opens no connection to anything."""
    clock = DemoClock(START)
    samples = load_samples()
    store = await Store.open(database, clock=clock)
    try:
        demo = _Demo(store, clock)
        entries = [*await demo.intake(samples), *await demo.month()]
    finally:
        await store.close()
    return Transcript(
        title=f"{APP_NAME} demo: {_plural(len(samples), 'sample email')} through the real pipeline, "
        "then five weeks of deadlines",
        subtitle=(
            f"Offline: no Slack, mailbox, mail server or settings. The bot starts on {_when(START)} "
            f"(Europe/Brussels) with the last two weeks' mail in {MAIL_FROM}; below, what it posts in "
            f"#{CHANNEL_NAME} and what it would email."
        ),
        workspace=WORKSPACE,
        channel_id=CHANNEL,
        channel_name=CHANNEL_NAME,
        app_name=APP_NAME,
        entries=tuple(entries),
        users=dict(USERS),
        permalinks=dict(demo.slack.permalinks),
    )
