"""Cases: their facts, their personal data (kept apart, so retention can erase it), the free text
staff typed about them, and their data-system checklists."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import date, datetime

from core.clock import Clock
from core.refs import case_ref
from storage.db import Session, dumps, iso
from storage.models import Case, ChecklistItem

__all__ = ["CASE_FACTS", "Cases"]

#: Columns of `cases` that a change may set (the others are fixed when the case opens).
CASE_FACTS = frozenset(
    {
        "kind", "labels", "confidence", "needs_review", "language", "status", "due_date", "assignee",
        "identity_status", "identity_method", "identity_by", "identity_at", "sender_check",
        "sender_check_detail", "extended_at", "extension_text_id", "waiting_since", "waiting_for",
        "status_before_wait", "paused_days", "outcome", "outcome_text_id", "recipients_informed",
        "resolved_on_time", "split_from_case_id", "closed_at",
    }
)  # fmt: skip

_SELECT = (
    "SELECT c.*, p.requester_email, p.requester_name, p.subject, p.reasons, "
    "xt.body AS extension_reason, ot.body AS outcome_note "
    "FROM cases c LEFT JOIN case_personal p ON p.case_id = c.id "
    "LEFT JOIN free_texts xt ON xt.id = c.extension_text_id "
    "LEFT JOIN free_texts ot ON ot.id = c.outcome_text_id"
)


def _jsonable(value: object) -> object:
    """A value as the audit trail records it (JSON types)."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, date):
        return value.isoformat()
    return list(value) if isinstance(value, tuple) else value


def _column(value: object) -> object:
    """A value as its column stores it."""
    value = _jsonable(value)
    if isinstance(value, (list, dict)):
        return dumps(value)
    return int(value) if isinstance(value, bool) else value


class Cases:
    """The cases aggregate on one session (a transaction's, or one statement at a time)."""

    def __init__(self, db: Session, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    # --- reading ---------------------------------------------------------------------------------
    async def get(self, case_id: int) -> Case | None:
        """The case with this id, if any."""
        return await self._db.fetch(Case, f"{_SELECT} WHERE c.id = ?", (case_id,))

    async def get_many(self, case_ids: Collection[int]) -> dict[int, Case]:
        """The cases with these ids, by id (those that exist)."""
        ids = list(dict.fromkeys(case_ids))
        if not ids:
            return {}
        cases = await self._db.fetch_all(Case, f"{_SELECT} WHERE c.id IN ({','.join('?' * len(ids))})", ids)
        return {case.id: case for case in cases}

    async def by_ref(self, ref: str) -> Case | None:
        """The case with this reference (case-insensitive), if any."""
        return await self._db.fetch(Case, f"{_SELECT} WHERE c.ref = ?", (ref.upper(),))

    async def by_thread(self, message_ids: Iterable[str]) -> Case | None:
        """The case of the most recent stored email among `message_ids`: one we received, or one
        we sent (so the requester's answer to our email finds its case)."""
        ids = list(dict.fromkeys(message_ids))[-100:]
        if not ids:
            return None
        marks = ",".join("?" * len(ids))
        case = await self._db.fetch(
            Case,
            f"{_SELECT} WHERE c.id = (SELECT e.case_id FROM emails e WHERE e.message_id IN ({marks}) "
            "AND e.case_id IS NOT NULL ORDER BY e.id DESC LIMIT 1)",
            ids,
        )
        return case or await self._db.fetch(
            Case,
            f"{_SELECT} WHERE c.id = (SELECT o.case_id FROM outbound_emails o "
            f"WHERE o.message_id IN ({marks}) ORDER BY o.id DESC LIMIT 1)",
            ids,
        )

    async def select(self, *, statuses: Sequence[str] | None = None, limit: int = 1000) -> list[Case]:
        """Cases, oldest first, optionally only those in `statuses`."""
        where = f"WHERE c.status IN ({','.join('?' * len(statuses))}) " if statuses else ""
        return await self._db.fetch_all(
            Case, f"{_SELECT} {where}ORDER BY c.id LIMIT ?", (*(statuses or ()), limit)
        )

    async def linked(self, case: Case) -> list[Case]:
        """Cases split off from this one, and the case it was split from."""
        return (await self.linked_of([case]))[case.id]

    async def linked_of(self, cases: Collection[Case]) -> dict[int, list[Case]]:
        """`linked` for several cases in one query, by case id."""
        ids = list({case.id for case in cases})
        parents = list({case.split_from_case_id for case in cases if case.split_from_case_id is not None})
        if not ids:
            return {}
        found = await self._db.fetch_all(
            Case,
            f"{_SELECT} WHERE c.split_from_case_id IN ({','.join('?' * len(ids))}) "
            f"OR c.id IN ({','.join('?' * len(parents)) or 'NULL'}) ORDER BY c.id",
            (*ids, *parents),
        )
        return {
            case.id: [o for o in found if o.split_from_case_id == case.id or o.id == case.split_from_case_id]
            for case in cases
        }

    async def text(self, text_id: int | None) -> str:
        """A free text typed by staff ("" when there is none, or it was erased)."""
        if text_id is None:
            return ""
        row = await self._db.one("SELECT body FROM free_texts WHERE id = ?", (text_id,))
        return str(row[0]) if row else ""

    # --- changing ------------------------------------------------------------------------------
    async def open(
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
        row = await self._db.one(
            "INSERT INTO case_counters (year, last_seq) VALUES (?, 1) "
            "ON CONFLICT (year) DO UPDATE SET last_seq = last_seq + 1 RETURNING last_seq",
            (year,),
        )
        assert row is not None
        now = iso(self._clock())
        _, case_id = await self._db.run(
            "INSERT INTO cases (ref, kind, labels, confidence, needs_review, language, message_id, received_at, "
            "received_date, due_date, unreadable, sender_check, sender_check_detail, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                case_ref(year, row["last_seq"]),
                kind,
                dumps(list(labels)),
                confidence,
                int(needs_review),
                language,
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
        await self._db.run(
            "INSERT INTO case_personal (case_id, requester_email, requester_name, subject, reasons) "
            "VALUES (?, ?, ?, ?, ?)",
            (case_id, requester_email, requester_name, subject, dumps(list(reasons))),
        )
        case = await self.get(case_id)
        assert case is not None
        return case

    async def update(
        self, case: Case, changes: dict[str, object]
    ) -> tuple[Case, dict[str, object], dict[str, object]]:
        """Apply `changes` (fact column -> value) to a case read in this transaction and bump its
        version; returns the case as it is now, and the changed fields before and after (as the
        audit trail records them)."""
        unknown = set(changes) - CASE_FACTS
        if unknown:
            raise ValueError(f"not changeable: {sorted(unknown)}")
        before = {c: _jsonable(getattr(case, c)) for c in changes}
        after = {c: _jsonable(v) for c, v in changes.items()}
        sets = "".join(f"{c} = ?, " for c in changes)
        await self._db.run(
            f"UPDATE cases SET {sets}version = version + 1, updated_at = ? WHERE id = ?",
            (*(_column(v) for v in changes.values()), iso(self._clock()), case.id),
        )
        updated = await self.get(case.id)
        assert updated is not None
        return updated, before, after

    async def touch(self, case_id: int) -> None:
        """Mark a case changed (its version and update time)."""
        await self._db.run(
            "UPDATE cases SET version = version + 1, updated_at = ? WHERE id = ?",
            (iso(self._clock()), case_id),
        )

    async def add_text(self, case_id: int, purpose: str, body: str) -> int:
        """Keep a free text typed by staff (a reason, a note) about a case; returns its id."""
        _, text_id = await self._db.run(
            "INSERT INTO free_texts (case_id, purpose, body, created_at) VALUES (?, ?, ?, ?)",
            (case_id, purpose, body, iso(self._clock())),
        )
        return text_id

    # --- checklist -------------------------------------------------------------------------------
    async def checklist(self, case_id: int) -> list[ChecklistItem]:
        """The checklist of a case, in display order."""
        return (await self.checklists([case_id]))[case_id]

    async def checklists(self, case_ids: Collection[int]) -> dict[int, list[ChecklistItem]]:
        """`checklist` for several cases in one query, by case id (an empty list for none)."""
        ids = list(dict.fromkeys(case_ids))
        if not ids:
            return {}
        items = await self._db.fetch_all(
            ChecklistItem,
            f"SELECT * FROM checklist_items WHERE case_id IN ({','.join('?' * len(ids))}) "
            "ORDER BY case_id, position",
            ids,
        )
        by_case: dict[int, list[ChecklistItem]] = {case_id: [] for case_id in ids}
        for item in items:
            by_case[item.case_id].append(item)
        return by_case

    async def replace_checklist(self, case_id: int, items: Sequence[tuple[str, str, str, str]]) -> None:
        """Set the checklist to `items` (system key, name, action, what to do); an item whose
        system and action stay the same keeps its done state."""
        old = {(i.system, i.action): i for i in await self.checklist(case_id)}
        await self._db.run("DELETE FROM checklist_items WHERE case_id = ?", (case_id,))
        for position, (system, name, action, label) in enumerate(items):
            kept = old.get((system, action))
            await self._db.run(
                "INSERT INTO checklist_items (case_id, position, system, name, action, label, done, done_by, "
                "done_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        now = iso(self._clock())
        for item in await self.checklist(case_id):
            want = item.id in done_ids
            if want == item.done:
                continue
            await self._db.run(
                "UPDATE checklist_items SET done = ?, done_by = ?, done_at = ? WHERE id = ?",
                (int(want), actor if want else "", now if want else None, item.id),
            )
            changed.append(item)
        return changed
