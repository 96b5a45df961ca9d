"""The SQLite store (storage/*.py, storage/migrations/) on real files:
permissions, pragmas, migrations, case references, constraints, transactions, the mailbox cursor
and the outbox."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from core.errors import StorageError
from storage.db import iso, parse_instant
from storage.migrations import LATEST
from storage.models import CASE_STATUSES, Case, StoredEmail
from storage.store import Store, Tx
from tests.support.factory import NOW, add_email, new_case, open_case

LATEST_SCHEMA = LATEST


@contextlib.contextmanager
def raw_db(path: Path) -> Iterator[sqlite3.Connection]:
    """A second, plain sqlite3 connection to the same file (to look behind the store's back)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


insert_email = add_email
new_case_with_email = new_case


# --- the file -------------------------------------------------------------------------------------


async def test_a_new_database_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "nested" / "privacy-desk.sqlite3"
    async with await Store.open(path) as store:
        await new_case_with_email(store, "<m1@example.org>")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        for sidecar in (Path(f"{path}-wal"), Path(f"{path}-shm")):
            if sidecar.exists():
                assert stat.S_IMODE(sidecar.stat().st_mode) == 0o600, sidecar.name


async def test_an_existing_world_readable_database_is_tightened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "privacy-desk.sqlite3"
    path.touch()
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="storage.db"):
        store = await Store.open(path)
    await store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "644" in caplog.text


async def test_leftover_wal_files_of_a_world_readable_database_are_tightened(tmp_path: Path) -> None:
    path = tmp_path / "privacy-desk.sqlite3"
    path.touch()
    os.chmod(path, 0o644)
    with raw_db(path) as other:  # another process left a WAL behind (crashed, or still running)
        other.execute("PRAGMA journal_mode = WAL")
        other.execute("CREATE TABLE personal (x TEXT)")
        other.execute("INSERT INTO personal VALUES ('marie.dubois@example.org')")
        sidecars = [Path(f"{path}-wal"), Path(f"{path}-shm")]
        for sidecar in sidecars:  # as the old file's mode made them, whatever this process's umask
            os.chmod(sidecar, 0o644)
        store = await Store.open(path)
        await store.close()
        assert [oct(stat.S_IMODE(s.stat().st_mode)) for s in sidecars] == [oct(0o600)] * 2


async def test_wal_and_foreign_keys_are_on(store: Store) -> None:
    with raw_db(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # foreign keys are a per-connection setting: check the store's own connection by behaviour
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        async with store.transaction(now=NOW) as tx:
            await insert_email(tx, "<orphan@example.org>", case_id=999, disposition="follow_up")
    assert await store.mail.known(["<orphan@example.org>"]) == set()


# --- migrations -----------------------------------------------------------------------------------


async def test_migrations_set_the_schema_version(store: Store) -> None:
    assert await store.schema_version == LATEST_SCHEMA
    with raw_db(store.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_SCHEMA
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"cases", "emails", "audit_events", "mailbox_cursor", "case_counters"} <= tables


async def test_reopening_is_idempotent_and_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "privacy-desk.sqlite3"
    async with await Store.open(path) as store:
        case = await new_case_with_email(store, "<m1@example.org>")
    for _ in range(2):
        async with await Store.open(path) as store:
            assert await store.schema_version == LATEST_SCHEMA
            assert await store.cases.by_ref(case.ref) == case
            assert await store.mail.known(["<m1@example.org>"]) == {"<m1@example.org>"}


async def test_a_database_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "privacy-desk.sqlite3"
    async with await Store.open(path):
        pass
    with raw_db(path) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST_SCHEMA + 1}")
    with pytest.raises(StorageError, match="newer"):
        await Store.open(path)
    with raw_db(path) as conn:  # left as it was
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST_SCHEMA + 1


async def test_store_works_as_the_documented_async_context_manager(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "privacy-desk.sqlite3") as store:
        assert await store.schema_version == LATEST_SCHEMA
    with pytest.raises(ValueError):  # closed on leaving the block
        await store.schema_version


# --- case references ------------------------------------------------------------------------------


async def test_case_references_are_sequential_per_receipt_year(store: Store) -> None:
    refs = []
    async with store.transaction(now=NOW) as tx:
        for i, received in enumerate(
            [
                datetime(2026, 3, 1, tzinfo=UTC),
                datetime(2026, 3, 2, tzinfo=UTC),
                datetime(2027, 1, 4, tzinfo=UTC),
                datetime(2026, 12, 30, tzinfo=UTC),
                datetime(2027, 1, 5, tzinfo=UTC),
            ]
        ):
            refs.append((await open_case(tx, f"<m{i}@example.org>", received_at=received)).ref)
    assert refs == ["PRIV-2026-0001", "PRIV-2026-0002", "PRIV-2027-0001", "PRIV-2026-0003", "PRIV-2027-0002"]


async def test_the_reference_year_is_the_local_receipt_date_not_the_utc_instant(store: Store) -> None:
    # 23:30 UTC on 31 Dec is already 1 Jan in Brussels: the request belongs to the new year
    async with store.transaction(now=NOW) as tx:
        case = await open_case(
            tx,
            "<nye@example.org>",
            received_at=datetime(2026, 12, 31, 23, 30, tzinfo=UTC),
            received_date=date(2027, 1, 1),
        )
    assert case.ref == "PRIV-2027-0001"
    assert case.received_at == datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    assert case.received_date == date(2027, 1, 1)


async def test_references_run_past_9999_without_colliding(store: Store) -> None:
    with raw_db(store.path) as conn:
        conn.execute("INSERT INTO case_counters (year, last_seq) VALUES (2026, 9999)")
    async with store.transaction(now=NOW) as tx:
        assert (await open_case(tx, "<big@example.org>")).ref == "PRIV-2026-10000"


async def test_concurrent_tasks_get_distinct_sequential_references(store: Store) -> None:
    async def one(i: int) -> str:
        async with store.transaction(now=NOW) as tx:
            case = await open_case(tx, f"<c{i}@example.org>")
            await insert_email(tx, f"<c{i}@example.org>", case_id=case.id)
            await asyncio.sleep(0)  # let the other tasks run in the middle of the transaction
            return case.ref

    refs = await asyncio.gather(*(one(i) for i in range(25)))
    assert sorted(refs) == [f"PRIV-2026-{n:04d}" for n in range(1, 26)]


async def test_two_stores_on_one_file_get_distinct_references(tmp_path: Path) -> None:
    path = tmp_path / "privacy-desk.sqlite3"
    async with await Store.open(path) as first, await Store.open(path) as second:

        async def one(store: Store, i: int) -> str:
            async with store.transaction(now=NOW) as tx:
                return (await open_case(tx, f"<s{i}@example.org>")).ref

        refs = await asyncio.gather(*(one(first if i % 2 else second, i) for i in range(12)))
    assert sorted(refs) == [f"PRIV-2026-{n:04d}" for n in range(1, 13)]


async def test_an_opened_case_reads_back_as_stored(store: Store) -> None:
    received = datetime(2026, 11, 24, 20, 14, 3, tzinfo=UTC)
    async with store.transaction(now=NOW) as tx:
        case = await tx.cases.open(
            kind="erasure",
            labels=["erasure", "access"],
            confidence=0.75,
            needs_review=True,
            reasons=["supprimer", "mes données"],
            language="fr",
            requester_email="jerome@example.net",
            requester_name="Jérôme Lefèvre",
            subject="Suppression de mes données",
            message_id="<e1@example.net>",
            received_at=received,
            received_date=date(2026, 11, 24),
            due_date=date(2026, 12, 24),
            unreadable=True,
        )
    assert case == Case(
        id=case.id,
        ref="PRIV-2026-0001",
        kind="erasure",
        labels=("erasure", "access"),
        confidence=0.75,
        needs_review=True,
        reasons=("supprimer", "mes données"),
        language="fr",
        status="new",
        requester_email="jerome@example.net",
        requester_name="Jérôme Lefèvre",
        subject="Suppression de mes données",
        message_id="<e1@example.net>",
        received_at=received,
        received_date=date(2026, 11, 24),
        due_date=date(2026, 12, 24),
        unreadable=True,
        assignee="",
        version=1,
        created_at=NOW,
        updated_at=NOW,
        closed_at=None,
    )
    assert case.status in CASE_STATUSES
    assert await store.cases.get(case.id) == case
    assert await store.cases.by_ref("priv-2026-0001") == case  # references are case-insensitive
    async with store.transaction(now=NOW) as tx:
        assert await tx.cases.by_ref("priv-2026-0001") == case
        assert await tx.cases.get(case.id) == case
        assert await tx.cases.by_ref("PRIV-2026-0002") is None
    assert await store.cases.by_ref("PRIV-1999-0001") is None
    with pytest.raises(TypeError):
        await store.cases.get()  # type: ignore[call-arg]


async def test_an_unknown_status_is_refused_by_the_schema(store: Store) -> None:
    case = await new_case_with_email(store, "<m1@example.org>")
    with raw_db(store.path) as conn, pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute("UPDATE cases SET status = 'lost' WHERE id = ?", (case.id,))


async def test_touch_case_bumps_the_version_and_update_time(store: Store) -> None:
    case = await new_case_with_email(store, "<m1@example.org>")
    later = NOW + timedelta(hours=2)
    async with store.transaction(now=later) as tx:
        await tx.cases.touch(case.id)
    touched = await store.cases.get(case.id)
    assert touched is not None
    assert (touched.version, touched.updated_at, touched.created_at) == (2, later, NOW)


# --- emails -----------------------------------------------------------------------------------------


async def test_an_email_reads_back_as_stored(store: Store) -> None:
    case = await new_case_with_email(store, "<m1@example.org>")
    [stored] = await store.mail.of_case(case.id)
    assert stored == StoredEmail(
        id=stored.id,
        message_id="<m1@example.org>",
        case_id=case.id,
        disposition="opened_case",
        received_at=NOW,
        from_name="Marie Dubois",
        from_addr="marie.dubois@example.org",
        reply_to="",
        subject="my data",
        body_text="Hi, can you send me a copy?",
        new_text="Hi, can you send me a copy?",
        quoted_text="",
        signature="",
        attachments=({"filename": "id.pdf", "content_type": "application/pdf", "size": 1234},),
        kind="access",
        labels=("access",),
        confidence=0.0,
        language="und",
        automated=False,
        reasons=(),
        problems=(),
        unreadable=False,
        html_only=False,
    )
    assert await store.mail.get(stored.id) == stored
    assert await store.mail.get(stored.id + 100) is None


async def test_message_id_is_unique(store: Store) -> None:
    await new_case_with_email(store, "<m1@example.org>")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        async with store.transaction(now=NOW) as tx:
            await insert_email(tx, "<m1@example.org>", case_id=None, disposition="automated")
    async with store.transaction(now=NOW) as tx:
        assert await tx.mail.exists("<m1@example.org>")
        assert not await tx.mail.exists("<m2@example.org>")
    assert await store.mail.counts() == {"opened_case": 1}


async def test_an_unknown_disposition_is_refused_by_the_schema(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        async with store.transaction(now=NOW) as tx:
            await insert_email(tx, "<m1@example.org>", case_id=None, disposition="spam")


async def test_case_for_message_ids_finds_the_case_of_the_latest_known_email(store: Store) -> None:
    first = await new_case_with_email(store, "<a1@example.org>")
    second = await new_case_with_email(store, "<b1@example.org>")
    async with store.transaction(now=NOW) as tx:
        await insert_email(tx, "<a2@example.org>", case_id=first.id, disposition="follow_up")
        assert await tx.cases.by_thread([]) is None
        assert await tx.cases.by_thread(["<unknown@example.org>"]) is None
        assert await tx.cases.by_thread(["<unknown@example.org>", "<a1@example.org>"]) == first
        found = await tx.cases.by_thread(["<a1@example.org>", "<b1@example.org>", "<a2@example.org>"])
        assert found is not None
        assert found.id == first.id  # <a2> is the most recently stored of them
        assert await tx.cases.by_thread(["<b1@example.org>"]) == second


async def test_known_message_ids_handles_more_than_500_ids(store: Store) -> None:
    stored = [f"<k{i}@example.org>" for i in range(0, 1300, 3)]
    async with store.transaction(now=NOW) as tx:
        for mid in stored:
            await insert_email(tx, mid, case_id=None, disposition="historical")
    asked = [f"<k{i}@example.org>" for i in range(1300)] + ["<k0@example.org>"] * 3
    assert await store.mail.known(asked) == set(stored)
    assert await store.mail.known(iter(stored[:2])) == set(stored[:2])
    assert await store.mail.known([]) == set()
    assert await store.mail.counts() == {"historical": len(stored)}


# --- audit trail ------------------------------------------------------------------------------------


async def test_audit_events_are_appended_and_read_back(store: Store) -> None:
    case = await new_case_with_email(store, "<m1@example.org>")
    async with store.transaction(now=NOW) as tx:
        await tx.audit.append(case_id=case.id, actor="system", action="case.opened", after={"status": "new"})
    async with store.transaction(now=NOW + timedelta(minutes=5)) as tx:
        note = await tx.cases.add_text(case.id, "identity_note", "mine")
        await tx.audit.append(
            case_id=case.id,
            actor="UALICE01",
            action="case.claimed",
            before={"assignee": ""},
            after={"assignee": "UALICE01"},
            text_id=note,
        )
    first, second = await store.audit.trail(case.id)
    assert (first.actor, first.action, first.at, first.before, first.after, first.text_id) == (
        "system",
        "case.opened",
        NOW,
        None,
        {"status": "new"},
        None,
    )
    assert (second.actor, second.action, second.at, second.before, second.after) == (
        "UALICE01",
        "case.claimed",
        NOW + timedelta(minutes=5),
        {"assignee": ""},
        {"assignee": "UALICE01"},
    )
    assert await store.cases.text(second.text_id) == "mine"  # the free text lives apart, pointed to
    assert await store.audit.trail(case.id + 1) == []


@pytest.mark.parametrize(
    "statement", ["UPDATE audit_events SET actor = 'UMALLORY'", "DELETE FROM audit_events"]
)
async def test_audit_events_cannot_be_changed_or_deleted(store: Store, statement: str) -> None:
    case = await new_case_with_email(store, "<m1@example.org>")
    async with store.transaction(now=NOW) as tx:
        await tx.audit.append(case_id=case.id, actor="system", action="case.opened")
    with raw_db(store.path) as conn, pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute(statement)
    [event] = await store.audit.trail(case.id)
    assert event.actor == "system"


# --- transactions -----------------------------------------------------------------------------------


class Boom(Exception):
    pass


async def test_a_transaction_that_raises_rolls_back_everything(store: Store) -> None:
    async with store.transaction(now=NOW) as tx:
        await tx.cursors.reset("INBOX", uidvalidity=7, backfill_before_uid=1)
    with pytest.raises(Boom):
        async with store.transaction(now=NOW) as tx:
            case = await open_case(tx, "<m1@example.org>")
            await insert_email(tx, "<m1@example.org>", case_id=case.id)
            await tx.audit.append(case_id=case.id, actor="system", action="case.opened")
            await tx.cursors.advance("INBOX", uidvalidity=7, uid=42)
            raise Boom
    assert await store.cases.select() == []
    assert await store.mail.known(["<m1@example.org>"]) == set()
    cursor = await store.cursors.get("INBOX")
    assert cursor is not None
    assert cursor.last_uid == 0
    assert await store.mail.counts() == {}
    # the reference counter was rolled back too: the next case is still number 1
    case = await new_case_with_email(store, "<m2@example.org>")
    assert case.ref == "PRIV-2026-0001"
    assert await store.audit.trail(case.id) == []


async def test_a_cancelled_transaction_rolls_back_and_frees_the_store(store: Store) -> None:
    entered = asyncio.Event()

    async def stuck() -> None:
        async with store.transaction(now=NOW) as tx:
            await open_case(tx, "<m1@example.org>")
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(stuck())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await store.cases.select() == []
    assert (await new_case_with_email(store, "<m2@example.org>")).ref == "PRIV-2026-0001"


async def test_a_committed_transaction_is_visible_to_another_connection(store: Store) -> None:
    case = await new_case_with_email(store, "<m1@example.org>")
    with raw_db(store.path) as conn:
        assert conn.execute("SELECT ref FROM cases").fetchall() == [(case.ref,)]


# --- mailbox cursor -----------------------------------------------------------------------------------


async def test_cursor_reset_advance_and_never_backwards(store: Store) -> None:
    assert await store.cursors.get("INBOX") is None
    async with store.transaction(now=NOW) as tx:
        assert await tx.cursors.get("INBOX") is None
        await tx.cursors.reset("INBOX", uidvalidity=1000, backfill_before_uid=51)
        await tx.cursors.advance("INBOX", uidvalidity=1000, uid=10)
        await tx.cursors.advance("INBOX", uidvalidity=1000, uid=7)  # never moves backwards
        cursor = await tx.cursors.get("INBOX")
    assert cursor is not None
    assert (cursor.folder, cursor.uidvalidity, cursor.last_uid, cursor.backfill_before_uid) == (
        "INBOX",
        1000,
        10,
        51,
    )
    assert await store.cursors.get("INBOX") == cursor


async def test_advancing_under_another_uidvalidity_raises(store: Store) -> None:
    async with store.transaction(now=NOW) as tx:
        await tx.cursors.reset("INBOX", uidvalidity=1000, backfill_before_uid=1)
        await tx.cursors.advance("INBOX", uidvalidity=1000, uid=10)
    with pytest.raises(StorageError):
        async with store.transaction(now=NOW) as tx:
            await tx.cursors.advance("INBOX", uidvalidity=2000, uid=11)
    with pytest.raises(StorageError):
        async with store.transaction(now=NOW) as tx:
            await tx.cursors.advance("Archive", uidvalidity=1000, uid=11)
    cursor = await store.cursors.get("INBOX")
    assert cursor is not None
    assert (cursor.uidvalidity, cursor.last_uid) == (1000, 10)


async def test_resetting_after_a_uidvalidity_change_starts_the_folder_again(store: Store) -> None:
    async with store.transaction(now=NOW) as tx:
        await tx.cursors.reset("INBOX", uidvalidity=1000, backfill_before_uid=1)
        await tx.cursors.advance("INBOX", uidvalidity=1000, uid=99)
        await tx.cursors.reset("INBOX", uidvalidity=2000, backfill_before_uid=120)
        await tx.cursors.reset("Archive", uidvalidity=5, backfill_before_uid=3)
    inbox, archive = await store.cursors.get("INBOX"), await store.cursors.get("Archive")
    assert inbox is not None and archive is not None
    assert (inbox.uidvalidity, inbox.last_uid, inbox.backfill_before_uid) == (2000, 0, 120)
    assert (archive.uidvalidity, archive.last_uid, archive.backfill_before_uid) == (5, 0, 3)


# --- the outbox ---------------------------------------------------------------------------------------


async def test_roots_are_due_until_they_are_done(store: Store) -> None:
    first = await new_case_with_email(store, "<m1@example.org>")
    second = await new_case_with_email(store, "<m2@example.org>")
    due = await store.outbox.due(now=NOW)
    assert [(r.kind, r.case_id) for r in due] == [("root", first.id), ("root", second.id)]
    assert [r.case_id for r in await store.outbox.due(now=NOW, limit=1)] == [first.id]

    root = due[0]
    started = NOW + timedelta(seconds=5)
    await store.outbox.mark_started([root.id], at=started)
    marked = await store.outbox.get(root.id)
    assert marked is not None and (marked.started_at, marked.attempts) == (started, 1)
    assert [r.case_id for r in await store.outbox.due(now=NOW)] == [
        first.id,
        second.id,
    ]  # started is not done

    await store.outbox.mark_done(root.id, result="1764060000.000100", channel="C0STAFF01")
    assert [r.case_id for r in await store.outbox.due(now=NOW)] == [second.id]
    saved = await store.outbox.message("root", first.id)
    assert saved is not None
    assert (saved.channel, saved.result, saved.done_at is not None) == (
        "C0STAFF01",
        "1764060000.000100",
        True,
    )


async def test_root_updates_after_a_change_and_on_a_new_day_wait_for_the_root(store: Store) -> None:
    case = await new_case_with_email(store, "<m1@example.org>")
    unposted = await new_case_with_email(store, "<m2@example.org>")
    async with store.transaction(now=NOW) as tx:
        await tx.outbox.update_root(case.id)
    assert [r.kind for r in await store.outbox.due(now=NOW) if r.case_id == case.id] == [
        "root"
    ]  # update waits

    root = await store.outbox.message("root", case.id)
    assert root is not None
    await store.outbox.mark_done(root.id, result="1.1", channel="C0STAFF01")
    [update] = [r for r in await store.outbox.due(now=NOW) if r.case_id == case.id]
    assert (update.kind, update.parent_ts, update.parent_channel) == ("root_update", "1.1", "C0STAFF01")

    async with store.transaction(now=NOW) as tx:  # another change while one update waits: nothing more
        await tx.outbox.update_root(case.id)
        assert await tx.outbox.update_open_roots() == 0  # the day's refresh is covered by it too
    assert [r.kind for r in await store.outbox.due(now=NOW) if r.case_id == case.id] == ["root_update"]

    await store.outbox.mark_started([update.id], at=NOW)
    async with store.transaction(now=NOW) as tx:  # a change while that one is being sent: a new one
        await tx.outbox.update_root(case.id)
    await store.outbox.mark_done(update.id, result="1.1")
    assert [r.kind for r in await store.outbox.due(now=NOW) if r.case_id == case.id] == ["root_update"]
    assert unposted.id not in [r.case_id for r in await store.outbox.due(now=NOW) if r.kind == "root_update"]


async def test_a_resolved_case_is_not_refreshed_for_a_new_day(store: Store) -> None:
    case = await new_case_with_email(store, "<m1@example.org>")
    other = await new_case_with_email(store, "<m2@example.org>")
    for c in (case, other):
        root = await store.outbox.message("root", c.id)
        assert root is not None
        await store.outbox.mark_done(root.id, result=f"1.{c.id}")
    with raw_db(store.path) as conn:
        conn.execute("UPDATE cases SET status = 'resolved' WHERE id = ?", (case.id,))
    async with store.transaction(now=NOW) as tx:
        assert await tx.outbox.update_open_roots() == 1
    assert [(r.kind, r.case_id) for r in await store.outbox.due(now=NOW)] == [("root_update", other.id)]


async def test_thread_replies_wait_for_their_root_and_backoff_holds_a_row(store: Store) -> None:
    posted = await new_case_with_email(store, "<p1@example.org>")
    waiting = await new_case_with_email(store, "<w1@example.org>")
    async with store.transaction(now=NOW) as tx:
        for case in (posted, waiting):
            for email in await tx.mail.of_case(case.id):
                await tx.outbox.show_email(case.id, email.id)
        follow_up = await insert_email(tx, "<p2@example.org>", case_id=posted.id, disposition="follow_up")
        await tx.outbox.show_email(posted.id, follow_up)
        await tx.outbox.show_email(posted.id, follow_up)  # once only
        await insert_email(tx, "<auto@example.org>", case_id=None, disposition="automated")
    assert {r.kind for r in await store.outbox.due(now=NOW)} == {"root"}  # no root in Slack yet

    root = await store.outbox.message("root", posted.id)
    assert root is not None
    await store.outbox.mark_done(root.id, result="1.1", channel="C0STAFF01")
    replies = [r for r in await store.outbox.due(now=NOW) if r.kind == "email_reply"]
    emails = [await store.mail.get(r.email_id or 0) for r in replies]
    assert [
        (e.message_id if e else None, r.case_id, r.parent_ts) for e, r in zip(emails, replies, strict=True)
    ] == [
        ("<p1@example.org>", posted.id, "1.1"),
        ("<p2@example.org>", posted.id, "1.1"),
    ]
    await store.outbox.retry_later(replies[0].id, not_before=NOW + timedelta(minutes=5), error="SMTP 451")
    assert [r.id for r in await store.outbox.due(now=NOW) if r.kind == "email_reply"] == [replies[1].id]
    assert await store.outbox.next_attempt_at(after=NOW) == NOW + timedelta(minutes=5)
    assert await store.outbox.next_attempt_at(after=NOW + timedelta(minutes=5)) is None  # not one in the past
    assert replies[0].id in [r.id for r in await store.outbox.due(now=NOW + timedelta(minutes=5))]
    await store.outbox.mark_failed(replies[1].id, error="refused")
    assert replies[1].id not in [r.id for r in await store.outbox.due(now=NOW + timedelta(hours=1))]


async def test_cases_can_be_listed_by_status(store: Store) -> None:
    first = await new_case_with_email(store, "<m1@example.org>")
    second = await new_case_with_email(store, "<m2@example.org>")
    with raw_db(store.path) as conn:
        conn.execute("UPDATE cases SET status = 'in_progress' WHERE id = ?", (second.id,))
    assert [c.id for c in await store.cases.select()] == [first.id, second.id]
    assert [c.id for c in await store.cases.select(statuses=["in_progress"])] == [second.id]
    assert [c.id for c in await store.cases.select(statuses=["new", "in_progress"], limit=1)] == [first.id]
    assert await store.cases.select(statuses=["resolved"]) == []


# --- helpers of the storage format -------------------------------------------------------------------


def test_instants_are_stored_as_utc_iso_text() -> None:
    from zoneinfo import ZoneInfo

    local = datetime(2026, 11, 25, 10, 15, 30, 999, tzinfo=ZoneInfo("Europe/Brussels"))
    assert iso(local) == "2026-11-25T09:15:30+00:00"
    assert parse_instant(iso(local)) == local.replace(microsecond=0)
    assert parse_instant(None) is None
    assert parse_instant("") is None
    with pytest.raises(ValueError, match="aware"):
        iso(datetime(2026, 11, 25, 10, 15))


# --- two connections, indexes ----------------------------------------------------------------------


async def test_a_long_read_on_the_reader_never_blocks_a_change(store: Store) -> None:
    await new_case_with_email(store, "<m1@example.org>")
    async with store.snapshot() as reading:  # a report's consistent read stays open...
        before = await reading.cases.select()
        await new_case_with_email(store, "<m2@example.org>")  # ...while a listener's change commits
        assert [c.message_id for c in await reading.cases.select()] == [c.message_id for c in before]
    assert len(await store.read.cases.select()) == 2  # afterwards the reader sees it
    with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only"):
        await store.read.cases.touch(1)


@pytest.mark.parametrize(
    ("query", "index"),
    [
        ("SELECT id FROM cases WHERE status != 'resolved' ORDER BY due_date", "cases_open_due"),
        (
            "SELECT id FROM cases WHERE status != 'resolved' AND assignee = 'U1' ORDER BY due_date",
            "cases_open_assignee",
        ),
        ("SELECT id FROM cases WHERE received_date BETWEEN '2026-01-01' AND '2026-12-31'", "cases_received"),
        ("SELECT id FROM cases WHERE closed_at >= '2026-11-01'", "cases_closed"),
        ("SELECT id FROM cases WHERE split_from_case_id = 3", "cases_split_from"),
        (
            "SELECT id FROM audit_events WHERE action = 'case.resolved' AND at >= '2026-11-01'",
            "audit_action_at",
        ),
        ("SELECT id FROM outbox WHERE done_at IS NULL AND failed_at IS NULL ORDER BY id", "outbox_pending"),
    ],
)
async def test_the_queries_of_reminders_digests_and_reports_have_their_index(
    store: Store, query: str, index: str
) -> None:
    with raw_db(store.path) as conn:
        plan = " ".join(str(r[-1]) for r in conn.execute(f"EXPLAIN QUERY PLAN {query}"))
    assert index in plan, plan


async def test_personal_data_can_be_erased_without_touching_facts_or_audit(store: Store) -> None:
    case = await new_case_with_email(store, "<m1@example.org>")
    async with store.transaction(now=NOW) as tx:
        note = await tx.cases.add_text(case.id, "outcome_note", "sent Marie her data")
        await tx.audit.append(case_id=case.id, actor="UALICE01", action="case.resolved", text_id=note)
    with raw_db(store.path) as conn:  # what retention will do: the personal rows go, nothing else
        conn.execute("PRAGMA foreign_keys = ON")
        for table in ("case_personal", "email_contents", "outbound_contents"):
            conn.execute(f"DELETE FROM {table}")
        conn.execute("UPDATE free_texts SET body = ''")
    erased = await store.cases.get(case.id)
    assert erased is not None
    assert (erased.ref, erased.kind, erased.status, erased.due_date) == (
        case.ref,
        case.kind,
        case.status,
        case.due_date,
    )
    assert (erased.requester_email, erased.requester_name, erased.subject) == ("", "", "")
    [email] = await store.mail.of_case(case.id)
    assert (email.message_id, email.kind, email.from_addr, email.body_text) == (
        "<m1@example.org>",
        "access",
        "",
        "",
    )
    assert [e.action for e in await store.audit.trail(case.id)] == ["case.resolved"]


async def test_a_transaction_is_synced_unless_it_says_a_power_loss_may_take_it_back(store: Store) -> None:
    db = store._db
    levels = {1: "NORMAL", 2: "FULL"}
    async with db.transaction() as session:
        inside = await session.one("PRAGMA synchronous")
    assert inside is not None and levels[int(inside[0])] == "FULL"  # by default: staff's actions
    async with db.transaction(durable=False) as session:
        inside = await session.one("PRAGMA synchronous")
    assert inside is not None and levels[int(inside[0])] == "NORMAL"
    async with db.transaction(durable=False):
        pass
    assert levels[await db.synchronous] == "NORMAL"  # set only when it changes
    async with db.transaction(durable=True) as session:
        inside = await session.one("PRAGMA synchronous")
    assert inside is not None and levels[int(inside[0])] == "FULL"


# --- a transaction in the database's thread ----------------------------------------------------


async def test_a_transaction_in_the_database_thread_commits_what_its_body_did(store: Store) -> None:
    async def body(tx: Tx) -> str:
        case = await open_case(tx, "<m1@example.org>")
        await insert_email(tx, "<m1@example.org>", case_id=case.id)
        assert tx.now == NOW
        return case.ref

    assert await store.in_thread(body, now=NOW, durable=False) == "PRIV-2026-0001"
    assert [c.ref for c in await store.cases.select()] == ["PRIV-2026-0001"]
    assert await store.mail.known(["<m1@example.org>"]) == {"<m1@example.org>"}
    assert await store._db.synchronous == 1  # NORMAL, as asked


async def test_a_transaction_in_the_database_thread_that_raises_rolls_back(store: Store) -> None:
    async def body(tx: Tx) -> None:
        await open_case(tx, "<m1@example.org>")
        raise Boom

    with pytest.raises(Boom):
        await store.in_thread(body, now=NOW)
    assert await store.cases.select() == []
    assert (await new_case_with_email(store, "<m2@example.org>")).ref == "PRIV-2026-0001"


async def test_a_body_that_waits_for_anything_but_the_database_is_refused_and_rolled_back(
    store: Store,
) -> None:
    async def body(tx: Tx) -> None:
        await open_case(tx, "<m1@example.org>")
        await asyncio.sleep(0)  # the event loop's: it cannot be awaited in the database's thread

    with pytest.raises(RuntimeError, match="waited for something else"):
        await store.in_thread(body, now=NOW)
    assert await store.cases.select() == []


async def test_a_caller_cancelled_meanwhile_leaves_the_store_usable_and_consistent(store: Store) -> None:
    started = threading.Event()

    async def body(tx: Tx) -> None:
        started.set()
        time.sleep(0.2)  # in the database's thread: the caller is cancelled meanwhile
        await new_case_rows(tx)

    async def new_case_rows(tx: Tx) -> None:
        case = await open_case(tx, "<m1@example.org>")
        await insert_email(tx, "<m1@example.org>", case_id=case.id)

    task = asyncio.create_task(store.in_thread(body, now=NOW))
    await asyncio.to_thread(started.wait)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the body ran to its end and committed: all of it, not a part
    case = await new_case_with_email(store, "<m2@example.org>")
    assert case.ref == "PRIV-2026-0002"
    assert await store.mail.known(["<m1@example.org>", "<m2@example.org>"]) == {
        "<m1@example.org>",
        "<m2@example.org>",
    }


async def test_batch_reads_give_what_the_single_reads_give(store: Store) -> None:
    first = await new_case_with_email(store, "<m1@example.org>")
    second = await new_case_with_email(store, "<m2@example.org>")
    async with store.transaction(now=NOW) as tx:
        split = await open_case(tx, "<m3@example.org>")
        split, _, _ = await tx.cases.update(split, {"split_from_case_id": first.id})
        await tx.cases.replace_checklist(
            first.id, [("crm", "CRM", "export", "Export"), ("mail", "Mail", "find", "Find")]
        )
    cases = await store.cases.get_many([first.id, second.id, split.id])
    linked = await store.read.cases.linked_of(cases.values())
    assert linked == {c.id: await store.cases.linked(c) for c in cases.values()}
    assert [c.id for c in linked[first.id]] == [split.id] and [c.id for c in linked[split.id]] == [first.id]
    assert linked[second.id] == []
    checklists = await store.read.cases.checklists([first.id, second.id])
    assert checklists == {first.id: await store.cases.checklist(first.id), second.id: []}
    assert [i.system for i in checklists[first.id]] == ["crm", "mail"]
    emails = [e.id for c in (first, second) for e in await store.mail.of_case(c.id)]
    assert await store.read.mail.get_many([*emails, 999]) == {i: await store.mail.get(i) for i in emails}
    assert await store.read.cases.linked_of([]) == {} and await store.read.cases.checklists([]) == {}
