"""Listings of cases for the people who watch deadlines: reminders, the digest, `/privacy`, the App
Home. Facts only (reference, kind, status, dates, assignee) and where each case's thread is in
Slack; the requester is reached only to find a case by address."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from core.clock import Clock
from storage.db import Session, record

__all__ = ["CaseLine", "Overview", "Which"]


@dataclass(frozen=True, slots=True)
class CaseLine:
    """A case as a listing shows it."""

    id: int
    ref: str
    kind: str
    status: str
    received_at: datetime
    received_date: date
    due_date: date
    assignee: str
    created_at: datetime
    extended_at: datetime | None = None
    waiting_since: datetime | None = None
    closed_at: datetime | None = None
    #: when it last became unassigned: opened, or an assignee removed (None while assigned)
    unassigned_since: datetime | None = None
    root_ts: str | None = None
    root_channel: str | None = None
    #: the outbox row of its root (posted or not): a thread reply can be queued under it
    root_row: int | None = None

    @property
    def is_open(self) -> bool:
        return self.status != "resolved"

    def item(self, today: date) -> dict[str, object]:
        """The facts a listing, a digest or a summary names about it (no personal data)."""
        return {
            "case_id": self.id,
            "case_ref": self.ref,
            "kind": self.kind,
            "status": self.status,
            "due_date": self.due_date.isoformat(),
            "days_left": (self.due_date - today).days,
            "assignee": self.assignee,
        }


_SELECT = (
    "SELECT c.id, c.ref, c.kind, c.status, c.received_at, c.received_date, c.due_date, c.assignee, "
    "c.created_at, c.extended_at, c.waiting_since, c.closed_at, r.result AS root_ts, r.channel AS root_channel, "
    "(SELECT q.id FROM outbox q WHERE q.kind = 'root' AND q.case_id = c.id) AS root_row, "
    "CASE WHEN c.assignee = '' THEN COALESCE((SELECT MAX(a.at) FROM audit_events a WHERE a.case_id = c.id "
    "AND json_extract(a.after, '$.assignee') = ''), c.created_at) END AS unassigned_since "
    "FROM cases c LEFT JOIN outbox r ON r.kind = 'root' AND r.case_id = c.id AND r.done_at IS NOT NULL"
)
_OPEN = "c.status != 'resolved'"


@dataclass(frozen=True, slots=True)
class Which:
    """Which open cases a listing shows: due on or after `due_from`, on or before `due_by`, or
    before `due_before`; assigned to `assignee`, or `unassigned` only; with `skip_paused`, not those
    waiting for the requester while their legal clock stands still (CLOCK_PAUSE_ON_WAIT)."""

    due_from: date | None = None
    due_by: date | None = None
    due_before: date | None = None
    assignee: str | None = None
    unassigned: bool = False
    skip_paused: bool = False

    def where(self) -> tuple[list[str], list[object]]:
        """The SQL conditions (on `cases c`) and their parameters."""
        where: list[str] = [_OPEN]
        params: list[object] = []
        for condition, value in (
            ("c.due_date >= ?", self.due_from),
            ("c.due_date <= ?", self.due_by),
            ("c.due_date < ?", self.due_before),
        ):
            if value is not None:
                where.append(condition)
                params.append(value.isoformat())
        if self.assignee is not None:
            where.append("c.assignee = ?")
            params.append(self.assignee)
        if self.unassigned:
            where.append("c.assignee = ''")
        if self.skip_paused:
            where.append("c.waiting_since IS NULL")
        return where, params


class Overview:
    """Case listings on one session (use the store's read-only connection for long ones)."""

    def __init__(self, db: Session, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def open_cases(self, which: Which | None = None, *, limit: int | None = None) -> list[CaseLine]:
        """Open cases, soonest due first (those `which` names: by default all)."""
        where, params = (which or Which()).where()
        sql = f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY c.due_date, c.id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [record(CaseLine, row) for row in await self._db.all(sql, params)]

    async def listing(self, which: Which, *, limit: int) -> tuple[list[CaseLine], int]:
        """The first `limit` open cases `which` names, soonest due first, and how many it names."""
        where, params = which.where()
        row = await self._db.one(f"SELECT COUNT(*) FROM cases c WHERE {' AND '.join(where)}", params)
        return await self.open_cases(which, limit=limit), int(row[0]) if row else 0

    async def line(self, case_id: int) -> CaseLine | None:
        """One case as a listing shows it."""
        row = await self._db.one(f"{_SELECT} WHERE c.id = ?", (case_id,))
        return record(CaseLine, row) if row else None

    async def lines(self, case_ids: list[int]) -> list[CaseLine]:
        """Several cases as a listing shows them (in no particular order)."""
        ids = list(dict.fromkeys(case_ids))[:500]
        if not ids:
            return []
        rows = await self._db.all(f"{_SELECT} WHERE c.id IN ({','.join('?' * len(ids))})", ids)
        return [record(CaseLine, row) for row in rows]

    async def find(self, ref_or_email: str, *, limit: int = 20) -> list[CaseLine]:
        """Cases with this reference, or asked for from this address (case-insensitive), newest
        first, open or not."""
        needle = ref_or_email.strip()
        rows = await self._db.all(
            f"{_SELECT} WHERE c.ref = ? OR c.id IN (SELECT p.case_id FROM case_personal p "
            "WHERE p.requester_email = ? COLLATE NOCASE AND p.requester_email != '') "
            "ORDER BY c.received_at DESC, c.id DESC LIMIT ?",
            (needle.upper(), needle, limit),
        )
        return [record(CaseLine, row) for row in rows]
