"""The SQLite store: cases, emails, the audit trail and the mailbox cursor.

One `aiosqlite` connection (its own thread, so no sqlite call blocks the event loop), WAL,
foreign keys on, versioned migrations applied at open, the file created with mode 0600.
Every state change runs in one `transaction()`; an `asyncio.Lock` keeps transactions of
different tasks from interleaving on the shared connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.errors import StorageError
from storage.models import AuditEvent, Case, ChecklistItem, Cursor, OutboundEmail, StoredEmail, ThreadNote

__all__ = ["Store", "Tx", "iso", "parse_instant"]

logger = logging.getLogger(__name__)
_R = TypeVar("_R")


def iso(instant: datetime) -> str:
    """An aware instant as an ISO-8601 UTC string (the storage format)."""
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    return instant.astimezone(UTC).isoformat(timespec="seconds")


def parse_instant(value: str | None) -> datetime | None:
    """The inverse of `iso` (None stays None)."""
    return datetime.fromisoformat(value) if value else None


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def _json_tuple(value: str | None) -> tuple[Any, ...]:
    return tuple(json.loads(value)) if value else ()


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("storage") / "migrations"
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def _case(row: sqlite3.Row) -> Case:
    return Case(
        id=row["id"],
        ref=row["ref"],
        kind=row["kind"],
        labels=_json_tuple(row["labels"]),
        confidence=row["confidence"],
        needs_review=bool(row["needs_review"]),
        reasons=_json_tuple(row["reasons"]),
        language=row["language"],
        status=row["status"],
        requester_email=row["requester_email"],
        requester_name=row["requester_name"],
        subject=row["subject"],
        message_id=row["message_id"],
        received_at=datetime.fromisoformat(row["received_at"]),
        received_date=date.fromisoformat(row["received_date"]),
        due_date=date.fromisoformat(row["due_date"]),
        unreadable=bool(row["unreadable"]),
        assignee=row["assignee"],
        slack_channel=row["slack_channel"],
        slack_root_ts=row["slack_root_ts"],
        root_post_started_at=parse_instant(row["root_post_started_at"]),
        version=row["version"],
        rendered_version=row["rendered_version"],
        rendered_on=_date(row["rendered_on"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        closed_at=parse_instant(row["closed_at"]),
        identity_status=row["identity_status"],
        identity_method=row["identity_method"],
        identity_by=row["identity_by"],
        identity_at=parse_instant(row["identity_at"]),
        sender_check=row["sender_check"],
        sender_check_detail=row["sender_check_detail"],
        extended_at=parse_instant(row["extended_at"]),
        extension_reason=row["extension_reason"],
        waiting_since=parse_instant(row["waiting_since"]),
        waiting_for=row["waiting_for"],
        status_before_wait=row["status_before_wait"],
        paused_days=row["paused_days"],
        outcome=row["outcome"],
        outcome_note=row["outcome_note"],
        recipients_informed=_json_tuple(row["recipients_informed"]),
        resolved_on_time=None if row["resolved_on_time"] is None else bool(row["resolved_on_time"]),
        split_from_case_id=row["split_from_case_id"],
        checklist_ts=row["checklist_ts"],
        checklist_post_started_at=parse_instant(row["checklist_post_started_at"]),
        checklist_version=row["checklist_version"],
        checklist_rendered_version=row["checklist_rendered_version"],
    )


def _email(row: sqlite3.Row) -> StoredEmail:
    return StoredEmail(
        id=row["id"],
        message_id=row["message_id"],
        case_id=row["case_id"],
        disposition=row["disposition"],
        received_at=datetime.fromisoformat(row["received_at"]),
        from_name=row["from_name"],
        from_addr=row["from_addr"],
        reply_to=row["reply_to"],
        subject=row["subject"],
        body_text=row["body_text"],
        new_text=row["new_text"],
        quoted_text=row["quoted_text"],
        signature=row["signature"],
        attachments=_json_tuple(row["attachments"]),
        kind=row["kind"],
        labels=_json_tuple(row["labels"]),
        confidence=row["confidence"],
        language=row["language"],
        automated=bool(row["automated"]),
        reasons=_json_tuple(row["reasons"]),
        problems=_json_tuple(row["problems"]),
        unreadable=bool(row["unreadable"]),
        html_only=bool(row["html_only"]),
        slack_ts=row["slack_ts"],
        slack_post_started_at=parse_instant(row["slack_post_started_at"]),
        split_case_id=row["split_case_id"],
    )


_EMAIL_COLUMNS = (
    "id, message_id, case_id, disposition, received_at, from_name, from_addr, reply_to, subject, body_text, "
    "new_text, quoted_text, signature, attachments, kind, labels, confidence, language, automated, reasons, "
    "problems, unreadable, html_only, slack_ts, slack_post_started_at, split_case_id"
)

#: Case columns that actions never change directly.
_CASE_FIXED = frozenset({"id", "ref", "message_id", "received_at", "version", "created_at", "updated_at"})


def _jsonable(value: object) -> object:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def _column_value(value: object) -> object:
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple, dict)):
        return _dumps(value if not isinstance(value, tuple) else list(value))
    if isinstance(value, bool):
        return int(value)
    return value


def _item(row: sqlite3.Row) -> ChecklistItem:
    return ChecklistItem(
        id=row["id"],
        case_id=row["case_id"],
        position=row["position"],
        system=row["system"],
        name=row["name"],
        action=row["action"],
        label=row["label"],
        done=bool(row["done"]),
        done_by=row["done_by"],
        done_at=parse_instant(row["done_at"]),
    )


def _outbound(row: sqlite3.Row) -> OutboundEmail:
    return OutboundEmail(
        id=row["id"],
        case_id=row["case_id"],
        message_id=row["message_id"],
        to_addr=row["to_addr"],
        subject=row["subject"],
        body=row["body"],
        language=row["language"],
        in_reply_to=row["in_reply_to"],
        references=_json_tuple(row["references_ids"]),
        author=row["author"],
        created_at=datetime.fromisoformat(row["created_at"]),
        sent_at=parse_instant(row["sent_at"]),
        failed_at=parse_instant(row["failed_at"]),
        attempts=row["attempts"],
        last_error=row["last_error"],
    )


def _cursor(row: sqlite3.Row) -> Cursor:
    return Cursor(row["folder"], row["uidvalidity"], row["last_uid"], row["backfill_before_uid"])


def _note(row: sqlite3.Row) -> ThreadNote:
    return ThreadNote(
        id=row["id"],
        case_id=row["case_id"],
        text=row["text"],
        blocks=tuple(json.loads(row["blocks"])) if row["blocks"] else None,
        slack_ts=row["slack_ts"],
        post_started_at=parse_instant(row["post_started_at"]),
    )


class Tx:
    """The operations available inside one transaction (see `Store.transaction`)."""

    def __init__(self, conn: aiosqlite.Connection, now: datetime) -> None:
        self._conn = conn
        self.now = now

    async def _one(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Row | None:
        async with self._conn.execute(sql, params) as cur:
            return await cur.fetchone()

    # --- emails -----------------------------------------------------------------------------
    async def email_exists(self, message_id: str) -> bool:
        """Whether an email with this Message-ID is already stored."""
        return await self._one("SELECT 1 FROM emails WHERE message_id = ?", (message_id,)) is not None

    async def case_for_message_ids(self, message_ids: Iterable[str]) -> Case | None:
        """The case of the most recent stored email among `message_ids`: one we received, or a
        reply we sent (so the requester's answer to our reply finds its case)."""
        ids = list(dict.fromkeys(message_ids))[-100:]
        if not ids:
            return None
        marks = ",".join("?" * len(ids))
        row = await self._one(
            f"SELECT c.* FROM emails e JOIN cases c ON c.id = e.case_id "
            f"WHERE e.message_id IN ({marks}) ORDER BY e.id DESC LIMIT 1",
            ids,
        )
        if row is None:
            row = await self._one(
                f"SELECT c.* FROM outbound_emails o JOIN cases c ON c.id = o.case_id "
                f"WHERE o.message_id IN ({marks}) ORDER BY o.id DESC LIMIT 1",
                ids,
            )
        return _case(row) if row else None

    async def insert_email(self, **fields: object) -> int:
        """Store an inbound email; JSON-typed fields are given as Python lists/dicts."""
        fields = dict(fields)
        for key in (
            "to_addrs",
            "cc_addrs",
            "in_reply_to",
            "references_ids",
            "headers",
            "attachments",
            "labels",
            "reasons",
            "problems",
        ):
            if key in fields:
                fields[key] = _dumps(fields[key])
        fields.setdefault("created_at", iso(self.now))
        cols = ", ".join(fields)
        marks = ", ".join("?" * len(fields))
        cur = await self._conn.execute(
            f"INSERT INTO emails ({cols}) VALUES ({marks})", tuple(fields.values())
        )
        return int(cur.lastrowid or 0)

    # --- cases ------------------------------------------------------------------------------
    async def case_by_ref(self, ref: str) -> Case | None:
        """The case with this reference, if any."""
        row = await self._one("SELECT * FROM cases WHERE ref = ?", (ref.upper(),))
        return _case(row) if row else None

    async def case_by_id(self, case_id: int) -> Case | None:
        """The case with this id, if any."""
        row = await self._one("SELECT * FROM cases WHERE id = ?", (case_id,))
        return _case(row) if row else None

    async def open_case(
        self,
        *,
        kind: str,
        labels: Sequence[str],
        confidence: float,
        needs_review: bool,
        reasons: Sequence[str],
        language: str,
        requester_email: str,
        requester_name: str,
        subject: str,
        message_id: str,
        received_at: datetime,
        received_date: date,
        due_date: date,
        unreadable: bool,
        sender_check: str = "unknown",
        sender_check_detail: str = "",
    ) -> Case:
        """Open a case with the next reference of its receipt year (PRIV-YYYY-NNNN)."""
        year = received_date.year
        await self._conn.execute(
            "INSERT INTO case_counters (year, last_seq) VALUES (?, 1) "
            "ON CONFLICT (year) DO UPDATE SET last_seq = last_seq + 1",
            (year,),
        )
        row = await self._one("SELECT last_seq FROM case_counters WHERE year = ?", (year,))
        assert row is not None
        ref = f"PRIV-{year}-{row['last_seq']:04d}"
        now = iso(self.now)
        cur = await self._conn.execute(
            "INSERT INTO cases (ref, kind, labels, confidence, needs_review, reasons, language, requester_email, "
            "requester_name, subject, message_id, received_at, received_date, due_date, unreadable, sender_check, "
            "sender_check_detail, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ref,
                kind,
                _dumps(list(labels)),
                confidence,
                int(needs_review),
                _dumps(list(reasons)),
                language,
                requester_email,
                requester_name,
                subject,
                message_id,
                iso(received_at),
                received_date.isoformat(),
                due_date.isoformat(),
                int(unreadable),
                sender_check,
                sender_check_detail,
                now,
                now,
            ),
        )
        case = await self.case_by_id(int(cur.lastrowid or 0))
        assert case is not None
        return case

    async def touch_case(self, case_id: int) -> None:
        """Mark a case changed, so its Slack root is rendered again."""
        await self._conn.execute(
            "UPDATE cases SET version = version + 1, updated_at = ? WHERE id = ?", (iso(self.now), case_id)
        )

    async def update_case(
        self,
        case: Case,
        *,
        actor: str,
        action: str,
        changes: dict[str, object],
        note: str | None = None,
        note_blocks: list[dict[str, object]] | None = None,
        audit_note: str = "",
        checklist_changed: bool = False,
    ) -> Case:
        """Apply `changes` (column -> value) to a case read in this transaction, bump its version,
        append the audit event (before/after of the changed fields) and the thread note."""
        columns = [c for c in changes if c not in _CASE_FIXED]
        if len(columns) != len(changes):
            raise ValueError(f"not changeable: {sorted(set(changes) - set(columns))}")
        before = {c: _jsonable(getattr(case, c)) for c in columns}
        after = {c: _jsonable(v) for c, v in changes.items()}
        sets = "".join(f"{c} = ?, " for c in columns)
        params = [_column_value(v) for v in changes.values()]
        bump = ", checklist_version = checklist_version + 1" if checklist_changed else ""
        await self._conn.execute(
            f"UPDATE cases SET {sets}version = version + 1, updated_at = ?{bump} WHERE id = ?",
            (*params, iso(self.now), case.id),
        )
        await self.audit(
            case_id=case.id, actor=actor, action=action, before=before, after=after, note=audit_note
        )
        if note is not None:
            await self.add_note(case.id, note, blocks=note_blocks)
        updated = await self.case_by_id(case.id)
        assert updated is not None
        return updated

    async def add_note(
        self, case_id: int, text: str, *, blocks: list[dict[str, object]] | None = None
    ) -> None:
        """Queue a note for the case thread (the publisher posts it)."""
        await self._conn.execute(
            "INSERT INTO thread_notes (case_id, text, blocks, created_at) VALUES (?, ?, ?, ?)",
            (case_id, text, _dumps(blocks) if blocks is not None else None, iso(self.now)),
        )

    async def email_by_id(self, email_id: int) -> StoredEmail | None:
        """One stored email."""
        row = await self._one(f"SELECT {_EMAIL_COLUMNS} FROM emails WHERE id = ?", (email_id,))
        return _email(row) if row else None

    async def mark_email_split(self, email_id: int, case_id: int) -> None:
        """Remember that an email was split off into `case_id`."""
        await self._conn.execute("UPDATE emails SET split_case_id = ? WHERE id = ?", (case_id, email_id))

    async def queue_outbound(
        self,
        *,
        case_id: int,
        message_id: str,
        to_addr: str,
        subject: str,
        body: str,
        language: str,
        in_reply_to: str,
        references: Sequence[str],
        author: str,
    ) -> int:
        """Commit a reply for the mailer to send."""
        cur = await self._conn.execute(
            "INSERT INTO outbound_emails (case_id, message_id, to_addr, subject, body, language, in_reply_to, "
            "references_ids, author, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                case_id,
                message_id,
                to_addr,
                subject,
                body,
                language,
                in_reply_to,
                _dumps(list(references)),
                author,
                iso(self.now),
            ),
        )
        return int(cur.lastrowid or 0)

    async def latest_thread_ids(self, case_id: int) -> tuple[str, tuple[str, ...]]:
        """The Message-ID to answer (the newest email from the requester, else the newest we sent)
        and its References, for threading a reply."""
        row = await self._one(
            "SELECT message_id, references_ids FROM emails WHERE case_id = ? AND disposition != 'automated' "
            "AND synthetic_id = 0 ORDER BY id DESC LIMIT 1",
            (case_id,),
        )
        if row is None:
            row = await self._one(
                "SELECT message_id, references_ids FROM outbound_emails WHERE case_id = ? ORDER BY id DESC LIMIT 1",
                (case_id,),
            )
        if row is None:
            return "", ()
        return str(row["message_id"]), _json_tuple(row["references_ids"])

    async def mark_outbound(self, outbound_id: int, *, sent: bool, error: str = "") -> None:
        """Record that a reply was sent, or refused for good."""
        column = "sent_at" if sent else "failed_at"
        await self._conn.execute(
            f"UPDATE outbound_emails SET {column} = ?, last_error = ? WHERE id = ?",
            (iso(self.now), error, outbound_id),
        )

    # --- checklist ------------------------------------------------------------------------------
    async def checklist(self, case_id: int) -> list[ChecklistItem]:
        """The checklist of a case, in display order."""
        async with self._conn.execute(
            "SELECT * FROM checklist_items WHERE case_id = ? ORDER BY position", (case_id,)
        ) as cur:
            return [_item(r) for r in await cur.fetchall()]

    async def replace_checklist(self, case_id: int, items: Sequence[tuple[str, str, str, str]]) -> None:
        """Set the checklist to `items` (system key, name, action, what to do); an item whose
        system and action stay the same keeps its done state."""
        old = {(i.system, i.action): i for i in await self.checklist(case_id)}
        await self._conn.execute("DELETE FROM checklist_items WHERE case_id = ?", (case_id,))
        for position, (system, name, action, label) in enumerate(items):
            kept = old.get((system, action))
            await self._conn.execute(
                "INSERT INTO checklist_items (case_id, position, system, name, action, label, done, done_by, done_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    case_id,
                    position,
                    system,
                    name,
                    action,
                    label,
                    int(bool(kept and kept.done)),
                    kept.done_by if kept else "",
                    iso(kept.done_at) if kept and kept.done_at else None,
                ),
            )

    async def set_checklist_done(
        self, case_id: int, done_ids: set[int], *, actor: str
    ) -> list[ChecklistItem]:
        """Mark exactly the items in `done_ids` done; returns the items whose state changed."""
        changed = []
        for item in await self.checklist(case_id):
            want = item.id in done_ids
            if want == item.done:
                continue
            await self._conn.execute(
                "UPDATE checklist_items SET done = ?, done_by = ?, done_at = ? WHERE id = ?",
                (int(want), actor if want else "", iso(self.now) if want else None, item.id),
            )
            changed.append(item)
        return changed

    # --- audit --------------------------------------------------------------------------------
    async def audit(
        self,
        *,
        case_id: int | None,
        actor: str,
        action: str,
        before: dict[str, object] | None = None,
        after: dict[str, object] | None = None,
        note: str = "",
    ) -> None:
        """Append an audit event (no personal data: ids, kinds, statuses, dates)."""
        await self._conn.execute(
            "INSERT INTO audit_events (case_id, at, actor, action, before, after, note) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                case_id,
                iso(self.now),
                actor,
                action,
                _dumps(before) if before is not None else None,
                _dumps(after) if after is not None else None,
                note,
            ),
        )

    # --- mailbox cursor -----------------------------------------------------------------------
    async def cursor(self, folder: str) -> Cursor | None:
        """The stored cursor of a folder, if the watcher has seen it before."""
        row = await self._one("SELECT * FROM mailbox_cursor WHERE folder = ?", (folder,))
        return _cursor(row) if row else None

    async def reset_cursor(self, folder: str, *, uidvalidity: int, backfill_before_uid: int) -> None:
        """Start (or restart, after a UIDVALIDITY change) a folder from its first message."""
        await self._conn.execute(
            "INSERT INTO mailbox_cursor (folder, uidvalidity, last_uid, backfill_before_uid, updated_at) "
            "VALUES (?, ?, 0, ?, ?) ON CONFLICT (folder) DO UPDATE SET uidvalidity = excluded.uidvalidity, "
            "last_uid = 0, backfill_before_uid = excluded.backfill_before_uid, updated_at = excluded.updated_at",
            (folder, uidvalidity, backfill_before_uid, iso(self.now)),
        )

    async def advance_cursor(self, folder: str, *, uidvalidity: int, uid: int) -> None:
        """Record that every message up to `uid` has been taken in (never moves backwards)."""
        cur = await self._conn.execute(
            "UPDATE mailbox_cursor SET last_uid = MAX(last_uid, ?), updated_at = ? "
            "WHERE folder = ? AND uidvalidity = ?",
            (uid, iso(self.now), folder, uidvalidity),
        )
        if cur.rowcount != 1:
            raise StorageError(f"no cursor for folder under uidvalidity {uidvalidity}")


class Store:
    """The database: `store = await Store.open(path)`, or `async with await Store.open(path) as store:`."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._lock = asyncio.Lock()

    # --- lifecycle ------------------------------------------------------------------------------
    @classmethod
    async def open(cls, path: Path | str) -> Store:
        """Open (creating with mode 0600) and migrate the database at `path`."""
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
            # SQLite gives -wal/-shm files the main file's mode, but leftovers keep their own
            for file in (
                path,
                *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")),
            ):
                if file.exists() and file.stat().st_mode & 0o077:
                    logger.warning(
                        "%s had mode %o; tightening to 600", file.name, file.stat().st_mode & 0o777
                    )
                    os.chmod(file, 0o600)
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA synchronous = FULL")
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute("PRAGMA busy_timeout = 10000")
            store = cls(conn, path)
            await store._migrate()
        except BaseException:
            await conn.close()
            raise
        return store

    async def close(self) -> None:
        """Close the connection (waits for the statement in progress)."""
        await self._conn.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _migrate(self) -> None:
        async with self._conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        current = int(row[0]) if row else 0
        migrations = _migrations()
        latest = migrations[-1][0] if migrations else 0
        if current > latest:
            raise StorageError(f"database schema version {current} is newer than this program ({latest})")
        for version, script in migrations:
            if version <= current:
                continue
            try:
                await self._conn.executescript(
                    f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;"
                )
            except sqlite3.Error:
                if self._conn.in_transaction:
                    await self._conn.rollback()
                raise
            logger.info("database migrated to schema version %d", version)

    @property
    async def schema_version(self) -> int:
        """The applied migration number."""
        async with self._conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    # --- transactions ---------------------------------------------------------------------------
    @asynccontextmanager
    async def transaction(self, *, now: datetime | None = None) -> AsyncIterator[Tx]:
        """One atomic change: commits when the block ends, rolls back if it raises."""
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield Tx(self._conn, now or datetime.now(UTC))
            except BaseException:
                await self._conn.rollback()
                raise
            await self._conn.commit()

    async def _fetchall(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        async with self._lock, self._conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def _write(self, sql: str, params: Sequence[object] = ()) -> int:
        async with self._lock:
            cur = await self._conn.execute(sql, params)
            return cur.rowcount

    # --- reads ----------------------------------------------------------------------------------
    async def cursor(self, folder: str) -> Cursor | None:
        """The stored cursor of a folder."""
        rows = await self._fetchall("SELECT * FROM mailbox_cursor WHERE folder = ?", (folder,))
        return _cursor(rows[0]) if rows else None

    async def known_message_ids(self, message_ids: Iterable[str]) -> set[str]:
        """Those of `message_ids` that are already stored."""
        ids = list(dict.fromkeys(message_ids))
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            rows = await self._fetchall(
                f"SELECT message_id FROM emails WHERE message_id IN ({','.join('?' * len(chunk))})", chunk
            )
            found.update(r[0] for r in rows)
        return found

    async def case(self, *, case_id: int | None = None, ref: str | None = None) -> Case | None:
        """A case by id or by reference."""
        if case_id is not None:
            rows = await self._fetchall("SELECT * FROM cases WHERE id = ?", (case_id,))
        elif ref is not None:
            rows = await self._fetchall("SELECT * FROM cases WHERE ref = ?", (ref.upper(),))
        else:
            raise TypeError("give case_id or ref")
        return _case(rows[0]) if rows else None

    async def cases(self, *, statuses: Sequence[str] | None = None, limit: int = 1000) -> list[Case]:
        """Cases, oldest first, optionally only those in `statuses`."""
        if statuses:
            rows = await self._fetchall(
                f"SELECT * FROM cases WHERE status IN ({','.join('?' * len(statuses))}) ORDER BY id LIMIT ?",
                (*statuses, limit),
            )
        else:
            rows = await self._fetchall("SELECT * FROM cases ORDER BY id LIMIT ?", (limit,))
        return [_case(r) for r in rows]

    async def emails_of_case(self, case_id: int) -> list[StoredEmail]:
        """The emails stored on a case, in arrival order."""
        rows = await self._fetchall(
            f"SELECT {_EMAIL_COLUMNS} FROM emails WHERE case_id = ? ORDER BY id", (case_id,)
        )
        return [_email(r) for r in rows]

    async def email(self, email_id: int) -> StoredEmail | None:
        """One stored email."""
        rows = await self._fetchall(f"SELECT {_EMAIL_COLUMNS} FROM emails WHERE id = ?", (email_id,))
        return _email(rows[0]) if rows else None

    async def audit_trail(self, case_id: int) -> list[AuditEvent]:
        """The audit events of a case, oldest first."""
        rows = await self._fetchall("SELECT * FROM audit_events WHERE case_id = ? ORDER BY id", (case_id,))
        return [
            AuditEvent(
                id=r["id"],
                case_id=r["case_id"],
                at=datetime.fromisoformat(r["at"]),
                actor=r["actor"],
                action=r["action"],
                before=json.loads(r["before"]) if r["before"] else None,
                after=json.loads(r["after"]) if r["after"] else None,
                note=r["note"],
            )
            for r in rows
        ]

    async def email_counts(self) -> dict[str, int]:
        """How many stored emails per disposition."""
        rows = await self._fetchall("SELECT disposition, COUNT(*) FROM emails GROUP BY disposition")
        return {r[0]: r[1] for r in rows}

    # --- Slack publishing -------------------------------------------------------------------------
    async def cases_without_root(self, *, limit: int = 50) -> list[Case]:
        """Cases whose root message is not yet known to be in Slack, oldest first."""
        rows = await self._fetchall(
            "SELECT * FROM cases WHERE slack_root_ts IS NULL ORDER BY id LIMIT ?", (limit,)
        )
        return [_case(r) for r in rows]

    async def mark_root_post_started(self, case_id: int, *, at: datetime) -> None:
        """Note that a root is about to be posted (so a restart looks in Slack before posting again)."""
        await self._write("UPDATE cases SET root_post_started_at = ? WHERE id = ?", (iso(at), case_id))

    async def save_root(
        self, case_id: int, *, channel: str, ts: str, version: int, rendered_on: date
    ) -> None:
        """Remember the root message of a case and which version of the case it shows."""
        await self._write(
            "UPDATE cases SET slack_channel = ?, slack_root_ts = ?, rendered_version = MAX(rendered_version, ?), "
            "rendered_on = ? WHERE id = ?",
            (channel, ts, version, rendered_on.isoformat(), case_id),
        )

    async def cases_to_rerender(self, *, today: date, limit: int = 50) -> list[Case]:
        """Posted cases whose root shows an older version, or an open case's days left of another day."""
        rows = await self._fetchall(
            "SELECT * FROM cases WHERE slack_root_ts IS NOT NULL AND (rendered_version < version OR "
            "(status != 'resolved' AND (rendered_on IS NULL OR rendered_on != ?))) ORDER BY id LIMIT ?",
            (today.isoformat(), limit),
        )
        return [_case(r) for r in rows]

    async def mark_rendered(self, case_id: int, *, version: int, rendered_on: date) -> None:
        """Record that the root now shows `version` as of `rendered_on`."""
        await self._write(
            "UPDATE cases SET rendered_version = MAX(rendered_version, ?), rendered_on = ? WHERE id = ?",
            (version, rendered_on.isoformat(), case_id),
        )

    async def emails_without_reply(self, *, limit: int = 50) -> list[tuple[StoredEmail, Case]]:
        """Emails on a posted case whose thread reply is not yet known to be in Slack, oldest first."""
        rows = await self._fetchall(
            f"SELECT {', '.join('e.' + c.strip() for c in _EMAIL_COLUMNS.split(','))} FROM emails e "
            "JOIN cases c ON c.id = e.case_id WHERE e.slack_ts IS NULL AND c.slack_root_ts IS NOT NULL "
            "ORDER BY e.id LIMIT ?",
            (limit,),
        )
        return await self._with_cases([_email(r) for r in rows], lambda e: e.case_id or 0)

    async def _with_cases(self, records: list[_R], case_id: Callable[[_R], int]) -> list[tuple[_R, Case]]:
        """Each record with its case, read in one query."""
        ids = sorted({case_id(r) for r in records})
        if not ids:
            return []
        rows = await self._fetchall(f"SELECT * FROM cases WHERE id IN ({','.join('?' * len(ids))})", ids)
        cases = {row["id"]: _case(row) for row in rows}
        return [(r, cases[case_id(r)]) for r in records]

    async def mark_email_post_started(self, email_id: int, *, at: datetime) -> None:
        """Note that an email's thread reply is about to be posted."""
        await self._write("UPDATE emails SET slack_post_started_at = ? WHERE id = ?", (iso(at), email_id))

    async def save_email_reply(self, email_id: int, *, ts: str) -> None:
        """Remember the thread reply that shows an email."""
        await self._write("UPDATE emails SET slack_ts = ? WHERE id = ?", (ts, email_id))

    # --- case handling -----------------------------------------------------------------------------
    async def checklist(self, case_id: int) -> list[ChecklistItem]:
        """The checklist of a case, in display order."""
        rows = await self._fetchall(
            "SELECT * FROM checklist_items WHERE case_id = ? ORDER BY position", (case_id,)
        )
        return [_item(r) for r in rows]

    async def notes_without_post(self, *, limit: int = 50) -> list[tuple[ThreadNote, Case]]:
        """Thread notes of posted cases not yet known to be in Slack, oldest first."""
        rows = await self._fetchall(
            "SELECT n.* FROM thread_notes n JOIN cases c ON c.id = n.case_id "
            "WHERE n.slack_ts IS NULL AND c.slack_root_ts IS NOT NULL ORDER BY n.id LIMIT ?",
            (limit,),
        )
        return await self._with_cases([_note(r) for r in rows], lambda n: n.case_id)

    async def mark_note_post_started(self, note_id: int, *, at: datetime) -> None:
        """Note that a thread note is about to be posted."""
        await self._write("UPDATE thread_notes SET post_started_at = ? WHERE id = ?", (iso(at), note_id))

    async def save_note_ts(self, note_id: int, *, ts: str) -> None:
        """Remember the Slack message of a thread note."""
        await self._write("UPDATE thread_notes SET slack_ts = ? WHERE id = ?", (ts, note_id))

    async def checklists_to_publish(self, *, limit: int = 50) -> list[Case]:
        """Posted cases with checklist items whose checklist message is missing or out of date."""
        rows = await self._fetchall(
            "SELECT * FROM cases c WHERE c.slack_root_ts IS NOT NULL AND (c.checklist_ts IS NULL OR "
            "c.checklist_rendered_version < c.checklist_version) AND EXISTS "
            "(SELECT 1 FROM checklist_items i WHERE i.case_id = c.id) ORDER BY c.id LIMIT ?",
            (limit,),
        )
        return [_case(r) for r in rows]

    async def mark_checklist_post_started(self, case_id: int, *, at: datetime) -> None:
        """Note that a case's checklist message is about to be posted."""
        await self._write("UPDATE cases SET checklist_post_started_at = ? WHERE id = ?", (iso(at), case_id))

    async def save_checklist(self, case_id: int, *, ts: str, version: int) -> None:
        """Remember the checklist message of a case and which checklist version it shows."""
        await self._write(
            "UPDATE cases SET checklist_ts = ?, checklist_rendered_version = MAX(checklist_rendered_version, ?) "
            "WHERE id = ?",
            (ts, version, case_id),
        )

    async def linked_cases(self, case: Case) -> list[Case]:
        """Cases split off from this one, and the case it was split from."""
        rows = await self._fetchall(
            "SELECT * FROM cases WHERE split_from_case_id = ? OR id = ? ORDER BY id",
            (case.id, case.split_from_case_id or -1),
        )
        return [_case(r) for r in rows]

    # --- replies to the requester -------------------------------------------------------------------
    async def outbound_to_send(self, *, limit: int = 20) -> list[OutboundEmail]:
        """Replies neither sent nor refused for good, oldest first."""
        rows = await self._fetchall(
            "SELECT * FROM outbound_emails WHERE sent_at IS NULL AND failed_at IS NULL ORDER BY id LIMIT ?",
            (limit,),
        )
        return [_outbound(r) for r in rows]

    async def outbound_of_case(self, case_id: int) -> list[OutboundEmail]:
        """The replies written on a case, oldest first."""
        rows = await self._fetchall("SELECT * FROM outbound_emails WHERE case_id = ? ORDER BY id", (case_id,))
        return [_outbound(r) for r in rows]

    async def mark_send_attempt(self, outbound_id: int, *, at: datetime, error: str = "") -> None:
        """Count an attempt to send a reply (and the error of a failed one)."""
        await self._write(
            "UPDATE outbound_emails SET send_started_at = COALESCE(send_started_at, ?), attempts = attempts + 1, "
            "last_error = ? WHERE id = ?",
            (iso(at), error, outbound_id),
        )
