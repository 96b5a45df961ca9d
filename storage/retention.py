"""Erasing a closed case's personal data (retention), on one session.

What is personal lives in rows of its own (`case_personal`, `email_contents`, `outbound_contents`,
`free_texts`, `corrections`), so erasing it leaves every fact `report` counts in place: the case,
its emails' and our emails' facts, the audit trail. A few fact rows carry free words from outside
(what our mail server said about a sender, a delivery error): those are blanked too. Outbox rows
of the case not yet sent are cancelled, so nothing personal is posted or mailed after the erasure.

With `secure_delete` on (every connection, `storage.db`), deleted and replaced content is
overwritten in the file; the caller checkpoints the WAL afterwards (`Store.compact`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from storage.db import Session, iso

__all__ = ["Erased", "Retention"]

_BATCH = 400  # ids per statement (SQLite allows many more parameters; this keeps statements small)


@dataclass(frozen=True, slots=True)
class Erased:
    """What an erasure removed (counts only)."""

    cases: int = 0
    emails: int = 0
    our_emails: int = 0
    texts: int = 0
    corrections: int = 0
    loose_emails: int = 0

    def __add__(self, other: Erased) -> Erased:
        return Erased(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))


def _marks(ids: Sequence[int]) -> str:
    return ",".join("?" * len(ids))


class Retention:
    """Finding and erasing what retention is due to erase."""

    def __init__(self, db: Session) -> None:
        self._db = db

    async def due(self, closed_before: datetime, *, limit: int | None = None) -> list[tuple[int, str]]:
        """(id, reference) of resolved cases closed at or before `closed_before` whose personal
        data is still there, oldest first."""
        rows = await self._db.all(
            "SELECT id, ref FROM cases WHERE status = 'resolved' AND closed_at IS NOT NULL AND closed_at <= ? "
            "AND erased_at IS NULL ORDER BY closed_at, id" + (" LIMIT ?" if limit else ""),
            (iso(closed_before), limit) if limit else (iso(closed_before),),
        )
        return [(int(r[0]), str(r[1])) for r in rows]

    async def loose_emails_due(self, received_before: datetime) -> int:
        """How many emails on no case (machine mail, our own, mail older than the first start)
        received at or before `received_before` still have their contents."""
        row = await self._db.one(
            "SELECT count(*) FROM emails e JOIN email_contents c ON c.email_id = e.id "
            "WHERE e.case_id IS NULL AND e.received_at <= ?",
            (iso(received_before),),
        )
        return int(row[0]) if row else 0

    async def erase_cases(self, case_ids: Sequence[int], *, now: datetime) -> Erased:
        """Erase the personal data of these cases (a batch of at most a few hundred)."""
        total = Erased()
        for start in range(0, len(case_ids), _BATCH):
            total += await self._erase(list(case_ids[start : start + _BATCH]), now)
        return total

    async def _erase(self, ids: list[int], now: datetime) -> Erased:
        m = _marks(ids)
        # an email split off into a case that is still kept stays with that case
        emails = [
            int(r[0])
            for r in await self._db.all(
                f"SELECT e.id FROM emails e LEFT JOIN cases s ON s.id = e.split_case_id "
                f"WHERE e.case_id IN ({m}) AND (e.split_case_id IS NULL OR s.erased_at IS NOT NULL "
                f"OR e.split_case_id IN ({m})) "
                f"UNION SELECT e.id FROM emails e JOIN cases o ON o.id = e.case_id "
                f"WHERE e.split_case_id IN ({m}) AND o.erased_at IS NOT NULL",
                (*ids, *ids, *ids),
            )
        ]
        erased_emails = 0
        for start in range(0, len(emails), _BATCH):
            chunk = emails[start : start + _BATCH]
            changed, _ = await self._db.run(
                f"DELETE FROM email_contents WHERE email_id IN ({_marks(chunk)})", chunk
            )
            erased_emails += changed
            await self._db.run(
                f"UPDATE emails SET sender_check_detail = '' WHERE id IN ({_marks(chunk)})", chunk
            )
        ours, _ = await self._db.run(
            "DELETE FROM outbound_contents WHERE outbound_id IN "
            f"(SELECT id FROM outbound_emails WHERE case_id IN ({m}))",
            ids,
        )
        texts, _ = await self._db.run(
            f"UPDATE free_texts SET body = '' WHERE case_id IN ({m}) AND body != ''", ids
        )
        corrections, _ = await self._db.run(f"DELETE FROM corrections WHERE case_id IN ({m})", ids)
        await self._db.run(
            f"UPDATE case_personal SET requester_email = '', requester_name = '', subject = '', reasons = '[]' "
            f"WHERE case_id IN ({m})",
            ids,
        )
        await self._db.run(
            f"UPDATE cases SET sender_check_detail = '', erased_at = ? WHERE id IN ({m})", (iso(now), *ids)
        )
        # free words from outside in facts: a delivery error, a wait that did not end and why
        await self._db.run(
            f"UPDATE audit_events SET after = json_remove(after, '$.error', '$.detail') "
            f"WHERE case_id IN ({m}) AND after IS NOT NULL AND (json_extract(after, '$.error') IS NOT NULL "
            f"OR json_extract(after, '$.detail') IS NOT NULL)",
            ids,
        )
        # nothing of these cases is posted or mailed any more; what was sent keeps its result
        await self._db.run(
            f"UPDATE outbox SET failed_at = ?, last_error = 'erased under retention' "
            f"WHERE case_id IN ({m}) AND done_at IS NULL AND failed_at IS NULL",
            (iso(now), *ids),
        )
        await self._db.run(
            f"UPDATE outbox SET last_error = '' WHERE case_id IN ({m}) AND last_error != ''", ids
        )
        return Erased(
            cases=len(ids), emails=erased_emails, our_emails=ours, texts=texts, corrections=corrections
        )

    async def erase_loose_emails(self, received_before: datetime) -> int:
        """Erase the contents of emails on no case received at or before `received_before`."""
        changed, _ = await self._db.run(
            "DELETE FROM email_contents WHERE email_id IN "
            "(SELECT id FROM emails WHERE case_id IS NULL AND received_at <= ?)",
            (iso(received_before),),
        )
        return changed
