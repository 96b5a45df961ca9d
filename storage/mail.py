"""Mail: the emails received (facts apart from their contents) and the emails we write."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

from core.clock import Clock
from storage.db import Session, dumps, iso, json_tuple
from storage.models import OutboundEmail, StoredEmail

__all__ = ["Mail"]

#: What an email says, kept apart from the facts about it (retention erases these).
_CONTENTS = (
    "from_name", "from_addr", "reply_to", "to_addrs", "cc_addrs", "subject", "headers", "body_text",
    "new_text", "quoted_text", "signature", "attachments", "reasons", "raw",
)  # fmt: skip
_FACTS = (
    "message_id", "synthetic_id", "case_id", "disposition", "folder", "uidvalidity", "uid", "received_at",
    "sent_at", "in_reply_to", "references_ids", "kind", "labels", "confidence", "language", "automated",
    "problems", "unreadable", "html_only", "attachment_count", "size", "sender_check", "sender_check_detail",
    "created_at",
)  # fmt: skip
_JSON = {
    "to_addrs", "cc_addrs", "headers", "attachments", "reasons", "labels", "problems", "in_reply_to",
    "references_ids",
}  # fmt: skip

_SELECT = (
    "SELECT e.*, m.from_name, m.from_addr, m.reply_to, m.subject, m.body_text, m.new_text, m.quoted_text, "
    "m.signature, m.attachments, m.reasons FROM emails e LEFT JOIN email_contents m ON m.email_id = e.id"
)
_SELECT_OUTBOUND = (
    'SELECT o.*, o.references_ids AS "references", c.to_addr, c.subject, c.body, x.done_at AS sent_at, x.failed_at, '
    "x.attempts, x.last_error "
    "FROM outbound_emails o LEFT JOIN outbound_contents c ON c.outbound_id = o.id "
    "LEFT JOIN outbox x ON x.kind = 'email' AND x.outbound_id = o.id"
)


class Mail:
    """The mail aggregate on one session."""

    def __init__(self, db: Session, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    # --- received ----------------------------------------------------------------------------------
    async def exists(self, message_id: str) -> bool:
        """Whether an email with this Message-ID is already stored."""
        return await self._db.one("SELECT 1 FROM emails WHERE message_id = ?", (message_id,)) is not None

    async def stored_of(self, message_ids: Sequence[str]) -> set[str]:
        """Those of these Message-IDs whose email is already stored (one query for a batch)."""
        ids = list(dict.fromkeys(message_ids))
        found: set[str] = set()
        for i in range(0, len(ids), 500):  # well under SQLite's limit of variables
            chunk = ids[i : i + 500]
            rows = await self._db.all(
                f"SELECT message_id FROM emails WHERE message_id IN ({','.join('?' * len(chunk))})", chunk
            )
            found.update(row[0] for row in rows)
        return found

    async def id_of(self, message_id: str) -> int | None:
        """The id of the stored email with this Message-ID, if any."""
        row = await self._db.one("SELECT id FROM emails WHERE message_id = ?", (message_id,))
        return int(row[0]) if row is not None else None

    async def known(self, message_ids: Iterable[str]) -> set[str]:
        """Those of `message_ids` that are already stored."""
        ids = list(dict.fromkeys(message_ids))
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            rows = await self._db.all(
                f"SELECT message_id FROM emails WHERE message_id IN ({','.join('?' * len(chunk))})", chunk
            )
            found.update(r[0] for r in rows)
        return found

    async def add(self, **fields: object) -> int:
        """Store a received email: its facts in `emails`, what it says in `email_contents`.
        JSON-typed fields are given as Python lists."""
        unknown = set(fields) - set(_FACTS) - set(_CONTENTS)
        if unknown:
            raise ValueError(f"unknown email fields: {sorted(unknown)}")
        values = {k: dumps(v) if k in _JSON else v for k, v in fields.items()}
        values.setdefault("created_at", iso(self._clock()))
        facts = {k: v for k, v in values.items() if k in _FACTS}
        contents = {k: v for k, v in values.items() if k in _CONTENTS}
        _, email_id = await self._db.run(
            f"INSERT INTO emails ({', '.join(facts)}) VALUES ({', '.join('?' * len(facts))})",
            tuple(facts.values()),
        )
        contents["email_id"] = email_id
        await self._db.run(
            f"INSERT INTO email_contents ({', '.join(contents)}) VALUES ({', '.join('?' * len(contents))})",
            tuple(contents.values()),
        )
        return email_id

    async def get(self, email_id: int) -> StoredEmail | None:
        """One stored email."""
        return await self._db.fetch(StoredEmail, f"{_SELECT} WHERE e.id = ?", (email_id,))

    async def get_many(self, email_ids: Collection[int]) -> dict[int, StoredEmail]:
        """The stored emails with these ids, by id (those that exist)."""
        ids = list(dict.fromkeys(email_ids))
        if not ids:
            return {}
        emails = await self._db.fetch_all(
            StoredEmail, f"{_SELECT} WHERE e.id IN ({','.join('?' * len(ids))})", ids
        )
        return {email.id: email for email in emails}

    async def of_case(self, case_id: int) -> list[StoredEmail]:
        """The emails stored on a case, in arrival order."""
        return await self._db.fetch_all(
            StoredEmail, f"{_SELECT} WHERE e.case_id = ? ORDER BY e.id", (case_id,)
        )

    async def mark_split(self, email_id: int, case_id: int) -> None:
        """Remember that an email was split off into `case_id`."""
        await self._db.run("UPDATE emails SET split_case_id = ? WHERE id = ?", (case_id, email_id))

    async def counts(self) -> dict[str, int]:
        """How many stored emails per disposition."""
        rows = await self._db.all("SELECT disposition, COUNT(*) FROM emails GROUP BY disposition")
        return {r[0]: r[1] for r in rows}

    async def raw(self, email_id: int) -> bytes | None:
        """The stored raw message (without attachment content)."""
        row = await self._db.one("SELECT raw FROM email_contents WHERE email_id = ?", (email_id,))
        return bytes(row[0]) if row and row[0] is not None else None

    async def replace_raw(self, email_id: int, raw: bytes) -> None:
        """Store a new raw message for an email (e.g. with attachment content removed)."""
        await self._db.run("UPDATE email_contents SET raw = ? WHERE email_id = ?", (raw, email_id))

    async def ids_with_raw(self, *, after_id: int = 0, limit: int = 200) -> list[int]:
        """Ids of emails whose raw message is stored, in id order, from `after_id` on."""
        rows = await self._db.all(
            "SELECT email_id FROM email_contents WHERE raw IS NOT NULL AND email_id > ? ORDER BY email_id LIMIT ?",
            (after_id, limit),
        )
        return [r[0] for r in rows]

    async def thread_ids(self, case_id: int) -> tuple[str, tuple[str, ...]]:
        """The Message-ID to answer (the newest email from the requester, else the newest we sent)
        and its References, for threading an email to the requester."""
        row = await self._db.one(
            "SELECT message_id, references_ids FROM emails WHERE case_id = ? AND disposition != 'automated' "
            "AND synthetic_id = 0 ORDER BY id DESC LIMIT 1",
            (case_id,),
        )
        if row is None:
            row = await self._db.one(
                "SELECT message_id, references_ids FROM outbound_emails WHERE case_id = ? ORDER BY id DESC LIMIT 1",
                (case_id,),
            )
        if row is None:
            return "", ()
        return str(row["message_id"]), json_tuple(row["references_ids"])

    # --- written by us -----------------------------------------------------------------------------
    async def outbound(self, outbound_id: int) -> OutboundEmail | None:
        """One email we wrote, with where its sending stands."""
        return await self._db.fetch(OutboundEmail, f"{_SELECT_OUTBOUND} WHERE o.id = ?", (outbound_id,))

    async def outbound_of_case(self, case_id: int) -> list[OutboundEmail]:
        """The emails written on a case, oldest first."""
        return await self._db.fetch_all(
            OutboundEmail, f"{_SELECT_OUTBOUND} WHERE o.case_id = ? ORDER BY o.id", (case_id,)
        )

    async def acknowledged_since(self, address: str, since: datetime) -> bool:
        """Whether an acknowledgement went (or is queued) to `address` at or after `since`."""
        row = await self._db.one(
            "SELECT 1 FROM outbound_emails o JOIN outbound_contents c ON c.outbound_id = o.id "
            "WHERE o.purpose IN ('acknowledgement', 'acknowledgement_review') AND o.created_at >= ? "
            "AND lower(c.to_addr) = lower(?) LIMIT 1",
            (iso(since), address),
        )
        return row is not None

    async def add_outbound(
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
        purpose: str = "reply",
    ) -> int:
        """Record an email to the requester (the outbox sends it); returns its id."""
        _, outbound_id = await self._db.run(
            "INSERT INTO outbound_emails (case_id, message_id, purpose, language, in_reply_to, references_ids, "
            "author, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                case_id,
                message_id,
                purpose,
                language,
                in_reply_to,
                dumps(list(references)),
                author,
                iso(self._clock()),
            ),
        )
        await self._db.run(
            "INSERT INTO outbound_contents (outbound_id, to_addr, subject, body) VALUES (?, ?, ?, ?)",
            (outbound_id, to_addr, subject, body),
        )
        return outbound_id
