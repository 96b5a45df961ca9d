"""Schema 3 → 4 on a database made by the code of schema 3 (tests/fixtures/db/schema-v3.sql):
every case, email, reply and audit event carried over; personal data moved apart from facts and
from the audit trail; Slack and sending state become outbox rows that finish what was under way
and never repeat what was done."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.migrations import LATEST, apply_migrations
from storage.store import Store
from tests.conftest import FIXTURES

DUMP = FIXTURES / "db" / "schema-v3.sql"


def load_v3(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.executescript(DUMP.read_text(encoding="utf-8"))
    finally:
        conn.close()


def v3_rows(path: Path, sql: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture
def v3_file(tmp_path: Path) -> Path:
    path = tmp_path / "v3.sqlite3"
    load_v3(path)
    return path


@pytest.fixture
async def migrated(v3_file: Path, tmp_path: Path) -> AsyncIterator[tuple[Store, Path]]:
    before = tmp_path / "before.sqlite3"
    load_v3(before)  # an untouched copy to compare with
    store = await Store.open(v3_file)
    try:
        yield store, before
    finally:
        await store.close()


async def test_the_fixture_is_schema_3(v3_file: Path) -> None:
    assert v3_rows(v3_file, "PRAGMA user_version")[0][0] == 3


async def test_every_case_keeps_its_facts_and_personal_data(migrated: tuple[Store, Path]) -> None:
    store, before = migrated
    assert await store.schema_version == LATEST
    old = {r["ref"]: r for r in v3_rows(before, "SELECT * FROM cases")}
    new = {c.ref: c for c in await store.cases.select()}
    assert new.keys() == old.keys() and len(new) == 11
    for ref, case in new.items():
        o = old[ref]
        assert (case.status, case.kind, list(case.labels), case.due_date.isoformat(), case.assignee) == (
            o["status"],
            o["kind"],
            json.loads(o["labels"]),
            o["due_date"],
            o["assignee"],
        )
        assert (case.requester_email, case.requester_name, case.subject) == (
            o["requester_email"],
            o["requester_name"],
            o["subject"],
        )
        assert list(case.reasons) == json.loads(o["reasons"])
        assert (case.extension_reason, case.outcome_note) == (o["extension_reason"], o["outcome_note"])
        assert (case.identity_status, case.paused_days, case.split_from_case_id) == (
            o["identity_status"],
            o["paused_days"],
            o["split_from_case_id"],
        )
    assert new["PRIV-2026-0003"].extension_reason  # the extended case
    assert new["PRIV-2026-0001"].outcome_note  # the resolved case
    case = await store.cases.by_ref("PRIV-2026-0010")
    assert case is not None and await store.cases.by_ref("PRIV-2026-0012") is None
    async with store.transaction() as tx:  # references go on from where they were
        later = await tx.cases.open(
            kind="access", labels=["access"], confidence=1, needs_review=False, reasons=[], language="en",
            requester_email="x@example.org", requester_name="", subject="", message_id="<new@example.org>",
            received_at=case.received_at, received_date=case.received_date, due_date=case.due_date,
            unreadable=False,
        )  # fmt: skip
    assert later.ref == "PRIV-2026-0012"


async def test_personal_data_is_apart_from_the_facts_and_the_audit(migrated: tuple[Store, Path]) -> None:
    store, before = migrated
    names = {r["requester_name"] for r in v3_rows(before, "SELECT requester_name FROM cases") if r[0]}
    addresses = {r[0] for r in v3_rows(before, "SELECT requester_email FROM cases") if r[0]}
    reasons = {r[0] for r in v3_rows(before, "SELECT extension_reason FROM cases") if r[0]}
    with sqlite3.connect(store.path) as conn:
        facts = {
            table: json.dumps(
                conn.execute(f"SELECT * FROM {table}").fetchall(), default=str, ensure_ascii=False
            )
            for table in ("cases", "emails", "outbound_emails", "audit_events", "outbox", "checklist_items")
        }
        case_columns = {r[1] for r in conn.execute("PRAGMA table_info(cases)")}
    for table, text in facts.items():
        for secret in names | addresses | reasons:
            assert secret not in text, f"{secret!r} is still in {table}"
    assert not case_columns & {
        "requester_email",
        "requester_name",
        "subject",
        "extension_reason",
        "outcome_note",
    }
    trail = await store.audit.trail(1)
    resolved = next(e for e in trail if e.action == "case.resolved")
    assert resolved.after is not None and "outcome_note" not in resolved.after
    assert await store.cases.text(resolved.text_id)  # the note moved to free text, pointed to
    extended = next(e for e in await store.audit.trail(3) if e.action == "case.extended")
    assert await store.cases.text(extended.text_id) == (await store.cases.get(3)).extension_reason  # type: ignore[union-attr]


async def test_every_email_and_reply_is_carried_over(migrated: tuple[Store, Path]) -> None:
    store, before = migrated
    old = v3_rows(before, "SELECT * FROM emails ORDER BY id")
    assert await store.mail.counts() == {"opened_case": 10, "follow_up": 3, "automated": 2, "historical": 1}
    for o in old:
        email = await store.mail.get(o["id"])
        assert email is not None
        assert (email.message_id, email.case_id, email.disposition, email.subject, email.new_text) == (
            o["message_id"],
            o["case_id"],
            o["disposition"],
            o["subject"],
            o["new_text"],
        )
        assert (email.from_addr, json.loads(o["attachments"])) == (o["from_addr"], list(email.attachments))
        assert await store.mail.raw(o["id"]) == (bytes(o["raw"]) if o["raw"] is not None else None)
    replies = {r["id"]: r for r in v3_rows(before, "SELECT * FROM outbound_emails")}
    for case_id in {r["case_id"] for r in replies.values()}:
        for outbound in await store.mail.outbound_of_case(case_id):
            o = replies[outbound.id]
            assert (outbound.message_id, outbound.to_addr, outbound.subject, outbound.body) == (
                o["message_id"],
                o["to_addr"],
                o["subject"],
                o["body"],
            )
            assert (outbound.sent_at is not None, outbound.failed_at is not None) == (
                o["sent_at"] is not None,
                o["failed_at"] is not None,
            )
    async with store.transaction() as tx:  # an answer to our reply still finds its case
        first = next(iter(replies.values()))
        found = await tx.cases.by_thread([first["message_id"]])
        assert found is not None and found.id == first["case_id"]


async def test_slack_and_sending_state_become_the_outbox(migrated: tuple[Store, Path]) -> None:
    store, before = migrated
    cases = {r["id"]: r for r in v3_rows(before, "SELECT * FROM cases")}
    for case_id, o in cases.items():
        root = await store.outbox.message("root", case_id)
        assert root is not None
        assert root.result == o["slack_root_ts"]
        assert (root.done_at is not None) == (o["slack_root_ts"] is not None)
        assert (root.started_at is not None) == (o["root_post_started_at"] is not None)
    crash_window = await store.outbox.message("root", 11)  # PRIV-2026-0011: started, never saved
    assert crash_window is not None and crash_window.started_at is not None and crash_window.done_at is None
    due = await store.outbox.due(now=crash_window.started_at, limit=100)
    kinds = sorted((r.kind, r.case_id) for r in due)
    # what was waiting waits: two roots, the stale roots' and checklist's updates, two notes, one reply
    assert ("root", 10) in kinds and ("root", 11) in kinds
    assert ("root_update", 3) in kinds and ("root_update", 5) in kinds and ("checklist_update", 3) in kinds
    assert ("email", 5) in kinds and ("email", 4) not in kinds  # pending reply waits; the refused one failed
    notes = [r for r in await store.outbox.of_case(3) if r.kind == "note"]
    assert [n.done_at is None for n in notes].count(True) == 1
    posted = {
        r["slack_ts"] for r in v3_rows(before, "SELECT slack_ts FROM thread_notes WHERE slack_ts IS NOT NULL")
    } | {r["slack_ts"] for r in v3_rows(before, "SELECT slack_ts FROM emails WHERE slack_ts IS NOT NULL")}
    with sqlite3.connect(store.path) as conn:
        done = {r[0] for r in conn.execute("SELECT result FROM outbox WHERE kind IN ('note', 'email_reply')")}
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert posted <= done  # every posted message keeps its ts (retention must find it in Slack)
    assert "thread_notes" not in tables


async def test_the_audit_trail_stays_append_only_and_complete(migrated: tuple[Store, Path]) -> None:
    store, before = migrated
    old = v3_rows(before, "SELECT id, case_id, action, actor, at FROM audit_events ORDER BY id")
    new = [e for case_id in sorted({r["case_id"] for r in old}) for e in await store.audit.trail(case_id)]
    assert sorted((e.id, e.case_id, e.action, e.actor) for e in new) == [
        (r["id"], r["case_id"], r["action"], r["actor"]) for r in old
    ]
    with sqlite3.connect(store.path) as conn, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit_events")


async def test_a_failed_migration_changes_nothing(v3_file: Path) -> None:
    with sqlite3.connect(v3_file) as conn:  # a case whose email points nowhere: the FK check refuses
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("UPDATE emails SET case_id = 999 WHERE id = 2")
    with pytest.raises(Exception, match="references"):
        apply_migrations(v3_file)
    assert v3_rows(v3_file, "PRAGMA user_version")[0][0] == 3
    assert v3_rows(v3_file, "SELECT COUNT(*) FROM thread_notes")[0][0] == 26


async def test_attachment_content_stored_by_schema_3_is_removed_once(migrated: tuple[Store, Path]) -> None:
    from datetime import UTC, datetime

    from handlers.jobs.maintenance import STRIP_ATTACHMENTS
    from handlers.mail_in.parsing import parse_email

    store, before = migrated
    with_attachments = [
        r["id"] for r in v3_rows(before, "SELECT id, attachments FROM emails") if json.loads(r["attachments"])
    ]
    assert with_attachments
    sizes = {i: len(await store.mail.raw(i) or b"") for i in with_attachments}
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert await STRIP_ATTACHMENTS.run(store, "schema-4", now) >= 1
    for email_id in with_attachments:
        raw = await store.mail.raw(email_id)
        assert raw is not None and len(raw) < sizes[email_id]
        again = parse_email(raw)  # still readable: headers and text are kept
        stored = await store.mail.get(email_id)
        assert stored is not None and again.new_text.strip() == stored.new_text.strip()
        assert [a.filename for a in again.attachments] == [a["filename"] for a in stored.attachments]
    assert await STRIP_ATTACHMENTS.run(store, "schema-4", now) == 0  # once


async def test_events_point_to_their_own_emails_and_checklist_changes_are_kept(
    migrated: tuple[Store, Path],
) -> None:
    store, before = migrated
    opened = {r["id"]: r["message_id"] for r in v3_rows(before, "SELECT id, message_id FROM cases")}
    for case_id, message_id in opened.items():
        for event in await store.audit.trail(case_id):
            if event.action in ("case.opened", "email.follow_up", "email.automated") and event.email_id:
                email = await store.mail.get(event.email_id)
                assert email is not None and email.case_id == case_id
                assert email.disposition == {"case.opened": "opened_case"}.get(event.action, event.action[6:])
                if event.action == "case.opened":
                    assert email.message_id == message_id
            if event.action == "case.replied":
                assert event.outbound_id is not None
    ticks = [e for e in await store.audit.trail(1) if e.action == "case.checklist"]
    assert ticks and all(e.after and e.after["changes"] for e in ticks)
    assert ["ticked", "Newsletter (hosting provider)"] in ticks[0].after["changes"]  # type: ignore[index, operator]
