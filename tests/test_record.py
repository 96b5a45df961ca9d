"""The record: the anonymised report, the register, a case's history, the online backup and
retention that really erases — with a real SQLite file, the real intake and case use cases, the
Slack stand-in and `privacy-desk` as a subprocess."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.settings import Settings
from handlers.cases import actions
from handlers.cases.deadlines import Calendar
from handlers.cases.intake import IncomingMessage, take_in
from handlers.classify.models_on_disk import trained_model_file
from handlers.record.register import history_text
from handlers.record.report import render_report
from handlers.record.retention import purge
from storage.db import backup_file
from storage.store import Store
from tests.conftest import wait_until
from tests.support.slack_standin import SlackStandIn
from tests.support.smtp_sink import Sink
from tests.test_case_handling import ALICE, Harness
from tests.test_replies import _desk

TZ = ZoneInfo("Europe/Brussels")
CALENDAR = Calendar()
ROOT = Path(__file__).resolve().parents[1]


def local(y: int, m: int, d: int, h: int = 10, mi: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=TZ)


def mail(sender: str, subject: str, body: str) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, "privacy@imal.example", subject
    m["Message-ID"] = make_msgid(domain="example.org")
    m.set_content(body)
    return m.as_bytes()


A = mail(
    "Olivia Marchetti <olivia.marchetti@example.org>",
    "Access request zebra-sapphire",
    "Hello, please send me a copy of all my personal data. Code word zebra-sapphire-lantern. Olivia Marchetti",
)
B = mail(
    "Étienne Lambrechts <etienne.lambrechts@example.be>",
    "Suppression",
    "Bonjour, merci de supprimer toutes mes données personnelles, mot repère cobalt-heron. Étienne Lambrechts",
)
C = mail(
    "Jonas Weber <jonas.weber@example.net>",
    "Auskunft",
    "Guten Tag, bitte senden Sie mir eine Kopie aller personenbezogenen Daten, die Sie über mich speichern. "
    "Kennwort quartz-falke. Jonas Weber",
)
D = mail(
    "Femke Verhoeven <femke.verhoeven@example.be>",
    "Klacht",
    "Ik dien een klacht in: jullie hebben mijn gegevens gedeeld zonder toestemming, sleutel amber-otter. Femke",
)
ERASED_WORDS = ["olivia.marchetti", "Marchetti", "zebra-sapphire", "etienne.lambrechts", "Lambrechts", "cobalt-heron",
                "jonas.weber", "quartz-falke", "Copy sent by secure link"]  # fmt: skip
KEPT_WORDS = ["femke.verhoeven", "amber-otter"]


class World:
    """Four cases with known histories, through the real intake and use cases."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.uid = 0
        self.refs: dict[str, str] = {}

    async def intake(self, raw: bytes, at: datetime) -> str:
        self.uid += 1
        outcome = await take_in(
            self.store, IncomingMessage(raw, "INBOX", 1, self.uid, at), calendar=CALENDAR, now=at
        )
        assert outcome.case_ref is not None
        return outcome.case_ref

    async def case_id(self, ref: str) -> int:
        case = await self.store.cases.by_ref(ref)
        assert case is not None
        return case.id

    async def build(self) -> None:
        s = self.store
        # A: access, English, received 2 March, identity checked, fulfilled 12 March: 10 days, on time
        a = self.refs["A"] = await self.intake(A, local(2026, 3, 2))
        await actions.verify_identity(s, case_id=await self.case_id(a), actor=ALICE, method="id_document",
                                      note="passport seen", now=local(2026, 3, 3))  # fmt: skip
        await actions.resolve(s, case_id=await self.case_id(a), actor=ALICE, outcome="fulfilled",
                              note="Copy sent by secure link", recipients=[], now=local(2026, 3, 12),
                              calendar=CALENDAR)  # fmt: skip
        # B: erasure, French, 31 March 22:30 UTC = 1 April 00:30 in Brussels: April's
        b = self.refs["B"] = await self.intake(B, datetime(2026, 3, 31, 22, 30, tzinfo=UTC))
        await actions.resolve(s, case_id=await self.case_id(b), actor=ALICE, outcome="withdrawn",
                              note="The requester withdrew", recipients=[], now=local(2026, 4, 2),
                              calendar=CALENDAR)  # fmt: skip
        # C: access, German, received 5 March, extended, resolved 15 May (71 days, on time)
        c = self.refs["C"] = await self.intake(C, local(2026, 3, 5))
        await actions.extend(s, case_id=await self.case_id(c), actor=ALICE, reason="archives on tape",
                             now=local(2026, 3, 20), calendar=CALENDAR)  # fmt: skip
        await actions.verify_identity(s, case_id=await self.case_id(c), actor=ALICE, method="known_contact",
                                      note="", now=local(2026, 3, 21))  # fmt: skip
        await actions.resolve(s, case_id=await self.case_id(c), actor=ALICE, outcome="fulfilled",
                              note="", recipients=[], now=local(2026, 5, 15), calendar=CALENDAR)  # fmt: skip
        # D: complaint, Dutch, received 20 March, still open
        self.refs["D"] = await self.intake(D, local(2026, 3, 20))
        for key, kind in (("A", "access"), ("B", "erasure"), ("C", "access"), ("D", "complaint")):
            case = await s.cases.by_ref(self.refs[key])
            assert case is not None and case.kind == kind, (key, case and case.kind)


@pytest.fixture
async def world(store: Store) -> AsyncIterator[World]:
    async with store.transaction() as tx:
        await tx.cursors.reset("INBOX", uidvalidity=1, backfill_before_uid=1)
    w = World(store)
    await w.build()
    yield w


async def test_the_report_figures_by_hand(world: World) -> None:
    march = await world.store.stats.received(date(2026, 3, 1), date(2026, 3, 31), tz=TZ)
    assert march.cases == 3  # B arrived on 1 April, Brussels time
    assert march.by_kind == {"access": 2, "complaint": 1}
    assert march.by_language == {"de": 1, "en": 1, "nl": 1}
    assert march.by_outcome == {"fulfilled": 2}
    assert (march.resolved, march.on_time, march.on_time_rate) == (2, 2, 1.0)
    assert (march.median_days_to_answer, march.p90_days_to_answer) == (40.5, 71.0)
    assert (march.extended, march.complaints) == (1, 1)
    april = await world.store.stats.received(date(2026, 4, 1), date(2026, 4, 30), tz=TZ)
    assert (april.cases, april.by_kind, april.by_outcome) == (1, {"erasure": 1}, {"withdrawn": 1})
    every = await world.store.stats.received(None, None, tz=TZ)
    assert every.cases == 4 and every.resolved == 3

    text = render_report(march, first=date(2026, 3, 1), last=date(2026, 3, 31), fmt="text")
    assert "Cases received          3" in text and "median 40.5 days, 90th percentile 71 days" in text
    as_json = json.loads(render_report(march, first=date(2026, 3, 1), last=date(2026, 3, 31), fmt="json"))
    assert as_json["from"] == "2026-03-01" and as_json["by_kind"] == {"access": 2, "complaint": 1}
    assert set(as_json) == {"from", "to", "cases", "by_kind", "by_outcome", "by_language", "resolved", "on_time",
                            "on_time_rate", "median_days_to_answer", "p90_days_to_answer", "extended",
                            "complaints"}  # fmt: skip
    rows = list(csv.reader(io.StringIO(render_report(march, first=None, last=None, fmt="csv"))))
    assert ["by_kind", "access", "2"] in rows and ["resolved", "", "2"] in rows
    for report in (text, json.dumps(as_json), str(rows)):
        assert not any(w.lower() in report.lower() for w in ERASED_WORDS + KEPT_WORDS)


async def test_the_register_and_a_case_history(world: World) -> None:
    rows = [r async for r in world.store.register.rows()]
    assert [r["case_ref"] for r in rows] == [world.refs[k] for k in "ABCD"]
    a, b, c, d = rows
    assert (
        a["requester_email"] == "olivia.marchetti@example.org" and a["requester_name"] == "Olivia Marchetti"
    )
    assert (a["kind"], a["status"], a["outcome"], a["on_time"], a["extended"]) == (
        "access", "resolved", "fulfilled", True, False)  # fmt: skip
    assert a["identity"] == "verified: id_document" and a["language"] == "en"
    assert a["resolved_at"].startswith("2026-03-12")
    assert (c["extended"], c["due_date"]) == (True, "2026-06-05")
    assert (d["status"], d["outcome"], d["on_time"], d["resolved_at"]) == ("new", "", None, "")
    assert b["received_at"].startswith("2026-03-31T22:30")

    case = await world.store.cases.by_ref(world.refs["A"])
    assert case is not None
    text = history_text(case, await world.store.register.history(case.id), tz=TZ)
    lines = text.splitlines()
    assert lines[0].startswith(f"{world.refs['A']} · Access (art. 15) · received 2026-03-02")
    actions_in_order = [line.split()[4] for line in lines[2:]]
    assert actions_in_order == ["case.opened", "case.identity_recorded", "case.resolved"]
    assert "identity_status: unverified → verified" in lines[3] and 'text: "passport seen"' in lines[3]
    assert lines[2].startswith("2026-03-02 10:00 CET  system")
    assert "status: new → resolved" in lines[4] and "outcome: — → fulfilled" in lines[4]


def _file_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


async def test_purge_erases_personal_data_from_the_files_and_keeps_the_statistics(
    world: World, store: Store
) -> None:
    before = await store.stats.received(None, None, tz=TZ)
    # a staff correction of case A, and a model trained with it beside the database
    a = await world.case_id(world.refs["A"])
    async with store.transaction(now=local(2026, 3, 12)) as tx:
        email_id = await tx.mail.id_of((await tx.cases.get(a)).message_id)  # type: ignore[union-attr]
        assert email_id is not None
        await tx.corrections.add(case_id=a, email_id=email_id, labels=["access"], actor=ALICE)
    model = trained_model_file(store.path)
    model.write_bytes(b"a model that learnt zebra-sapphire")
    raw = _file_bytes(store.path)
    for word in ERASED_WORDS + KEPT_WORDS:
        assert word.lower().encode() in raw.lower(), word

    dry = await purge(store, retention_days=0, now=local(2026, 6, 1), dry_run=True, trained_model=model)
    assert dry.refs == [world.refs[k] for k in "ABC"] and model.exists()
    assert (await store.cases.by_ref(world.refs["A"])).requester_email  # type: ignore[union-attr]

    # 30 days: only A and B were resolved long enough ago
    done = await purge(store, retention_days=30, now=local(2026, 5, 20), trained_model=model)
    assert done.refs == [world.refs["A"], world.refs["B"]] and done.model_removed and not model.exists()
    done = await purge(store, retention_days=0, now=local(2026, 6, 1), trained_model=model)
    assert done.refs == [world.refs["C"]]
    assert (await purge(store, retention_days=0, now=local(2026, 6, 2))).refs == []  # nothing twice

    raw = _file_bytes(store.path)
    left = [w for w in ERASED_WORDS if w.lower().encode() in raw.lower()]
    assert left == [], f"still in the database files: {left}"
    for word in KEPT_WORDS:  # the open case is untouched
        assert word.lower().encode() in raw.lower()
    after = await store.stats.received(None, None, tz=TZ)
    assert after == before
    case = await store.cases.by_ref(world.refs["A"])
    assert case is not None and case.erased_at is not None and case.requester_email == ""
    assert (case.status, case.outcome, case.kind) == ("resolved", "fulfilled", "access")
    history = await store.register.history(case.id)
    assert history[-1].action == "case.erased" and history[-1].after == {"retention_days": 30}
    assert all(not e.text for e in history)
    rows = {r["case_ref"]: r async for r in store.register.rows()}
    assert rows[world.refs["A"]]["requester_email"] == "" and rows[world.refs["A"]]["erased_at"]
    assert rows[world.refs["D"]]["requester_email"] == "femke.verhoeven@example.be"


@pytest.fixture
async def desk(settings: Settings, slack: SlackStandIn, store: Store, sink: Sink) -> AsyncIterator[Harness]:
    async with _desk(settings, slack, store, sink) as harness:  # a reply went by email too
        yield harness


async def test_the_bots_slack_messages_about_an_erased_case_are_deleted_or_rerendered(desk: Harness) -> None:
    keep = await desk.deliver(D)
    gone = await desk.deliver(A)
    assert keep and gone
    case = await desk.case(gone)
    await actions.verify_identity(desk.store, case_id=case.id, actor=ALICE, method="id_document",
                                  note="passport of Olivia Marchetti seen", now=desk.clock())  # fmt: skip
    await actions.reply_to_requester(desk.store, case_id=case.id, actor=ALICE, body="Dear Olivia Marchetti, done.",
                                     wait_for="", now=desk.clock(), pause_clock=False,
                                     mail_from="privacy@imal.example")  # fmt: skip
    await actions.resolve(desk.store, case_id=case.id, actor=ALICE, outcome="fulfilled",
                          note="Copy sent by secure link", recipients=[], now=desk.clock(),
                          calendar=CALENDAR)  # fmt: skip
    desk.outbox.notify()
    await desk.settle()
    thread = desk.thread(gone)
    assert len(thread) >= 3 and any("Marchetti" in json.dumps(m) for m in [desk.root(gone), *thread])
    kept_before = json.dumps([desk.root(keep), *desk.thread(keep)])
    thread[0]["deleted"] = True  # someone deleted one reply by hand: Slack says message_not_found for it

    report = await purge(desk.store, retention_days=0, now=desk.clock())
    assert report.refs == [gone]
    desk.outbox.notify()
    await desk.settle()
    await wait_until(lambda: desk.thread(gone) == [], 10)
    root = desk.root(gone)
    shown = json.dumps(root, ensure_ascii=False)
    assert not any(w.lower() in shown.lower() for w in ERASED_WORDS), shown
    assert gone in shown and "Erased on" in shown and "Personal data erased on" in shown
    assert root["metadata"]["event_payload"]["status"] == "resolved"
    assert not [b for b in root["blocks"] if b["type"] == "actions"]  # nothing left to act on
    assert json.dumps([desk.root(keep), *desk.thread(keep)]) == kept_before
    shown_now = [m for m in desk.slack.messages if not m["deleted"]]
    everything = json.dumps(shown_now, ensure_ascii=False).lower()
    assert not any(w.lower() in everything for w in ERASED_WORDS)


async def test_a_backup_while_the_bot_writes_is_consistent_and_private(world: World, tmp_path: Path) -> None:
    store = world.store

    async def keep_writing() -> None:
        for i in range(40):
            await world.intake(mail(f"P{i} <p{i}@example.org>", "data", "Please delete my data."),
                               local(2026, 4, 1) + timedelta(minutes=i))  # fmt: skip
            await asyncio.sleep(0)

    writer = asyncio.create_task(keep_writing())
    counts = []
    for n in range(5):
        target = tmp_path / f"backup-{n}.sqlite3"
        await store.backup(target)
        assert target.stat().st_mode & 0o777 == 0o600
        with sqlite3.connect(target) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            cases = conn.execute("SELECT count(*) FROM cases").fetchone()[0]
            people = conn.execute("SELECT count(*) FROM case_personal").fetchone()[0]
            assert cases == people  # never half a case
            counts.append(cases)
        await asyncio.sleep(0.01)
    await writer
    assert counts == sorted(counts) and counts[0] >= 4


# --- the commands ------------------------------------------------------------------------------------


def _cli(args: list[str], db: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "IMAP_", "SMTP_"))}
    environ.update({"DATABASE_PATH": str(db), "PYTHONPATH": str(ROOT), **env})
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=db.parent, env=environ,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


async def test_the_commands(world: World, tmp_path: Path) -> None:
    db = world.store.path
    out = _cli(["report", "--from", "2026-03-01", "--to", "2026-03-31", "--format", "json"], db)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["cases"] == 3
    out = _cli(["report"], db)
    assert out.returncode == 0 and "Cases received          4" in out.stdout
    assert _cli(["report", "--format", "csv"], db).stdout.startswith("measure,key,value\n")
    bad = _cli(["report", "--from", "March"], db)
    assert bad.returncode == 2 and "--from" in bad.stderr
    bad = _cli(["report", "--from", "2026-04-01", "--to", "2026-03-01"], db)
    assert bad.returncode == 2

    out = _cli(["export"], db)
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert out.returncode == 0 and len(rows) == 4
    assert list(rows[0])[:15] == ["case_ref", "kind", "labels", "received_at", "due_date", "extended", "status",
                                  "outcome", "resolved_at", "on_time", "assignee", "identity", "requester_name",
                                  "requester_email", "language"]  # fmt: skip
    assert rows[0]["on_time"] == "true" and rows[3]["on_time"] == ""
    as_json = json.loads(_cli(["export", "--format", "json"], db).stdout)
    assert [r["case_ref"] for r in as_json] == [r["case_ref"] for r in rows]
    out = _cli(["export", "--audit", world.refs["C"].lower()], db)
    assert out.returncode == 0 and "case.extended" in out.stdout and "archives on tape" in out.stdout
    assert _cli(["export", "--audit", "PRIV-2020-9999"], db).returncode == 1

    target = tmp_path / "copy.sqlite3"
    assert _cli(["backup", str(target)], db).returncode == 0 and target.exists()
    refused = _cli(["backup", str(target)], db)
    assert refused.returncode == 1 and "--force" in refused.stderr
    assert _cli(["backup", "--force", str(target)], db).returncode == 0

    dump = sqlite3.connect(db).execute("SELECT * FROM case_personal ORDER BY case_id").fetchall()
    out = _cli(["purge", "--dry-run"], db, RETENTION_DAYS="0")
    assert out.returncode == 0 and "would erase" in out.stdout and world.refs["A"] in out.stdout
    assert sqlite3.connect(db).execute("SELECT * FROM case_personal ORDER BY case_id").fetchall() == dump
    out = _cli(["purge"], db, RETENTION_DAYS="0")
    assert out.returncode == 0 and "3 case(s)" in out.stdout
    assert _cli(["report"], db).stdout == _cli(["report"], target).stdout  # the report is unchanged

    missing = _cli(["report"], tmp_path / "nothing.sqlite3")
    assert missing.returncode == 2 and "DATABASE_PATH" in missing.stderr
    assert not (tmp_path / "nothing.sqlite3").exists()


def test_backup_file_refuses_nothing_and_replaces_leftovers(tmp_path: Path) -> None:
    source = tmp_path / "db.sqlite3"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
    target = tmp_path / "b.sqlite3"
    target.write_bytes(b"old")
    (tmp_path / "b.sqlite3-wal").write_bytes(b"stale")
    backup_file(source, target)
    assert sqlite3.connect(target).execute("SELECT x FROM t").fetchall() == [(1,)]
    assert not (tmp_path / "b.sqlite3-wal").exists()


async def test_the_daily_job_purges_once_a_day(world: World, store: Store) -> None:
    from handlers.jobs.retention import retention_job

    job = retention_job(0)
    key = job.run_key(local(2026, 6, 1, 0, 5))
    assert key == "2026-06-01"
    assert await job.run(store, key, local(2026, 6, 1, 0, 5)) == 3
    assert await job.run(store, key, local(2026, 6, 1, 0, 6)) == 0  # once a day
    case = await store.cases.by_ref(world.refs["D"])
    assert case is not None and case.erased_at is None and case.requester_email
