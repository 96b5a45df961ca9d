"""The register of requests for the data protection officer, and one case's history (read models).

Unlike `stats`, these read personal data: the register is the controller's own record of who asked
what (GDPR art. 5(2), 30). After retention has erased a case, its personal columns are empty.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from core.clock import Clock
from storage.db import Session

__all__ = ["REGISTER_COLUMNS", "HistoryEntry", "Register"]

#: The register's columns, in order (INTERFACE.md names the first fifteen).
REGISTER_COLUMNS = (
    "case_ref", "kind", "labels", "received_at", "due_date", "extended", "status", "outcome", "resolved_at",
    "on_time", "assignee", "identity", "requester_name", "requester_email", "language", "erased_at",
)  # fmt: skip

_REGISTER = (
    "SELECT c.ref, c.kind, c.labels, c.received_at, c.due_date, c.extended_at, c.status, c.outcome, c.closed_at, "
    "c.resolved_on_time, c.assignee, c.identity_status, c.identity_method, p.requester_name, p.requester_email, "
    "c.language, c.erased_at FROM cases c LEFT JOIN case_personal p ON p.case_id = c.id ORDER BY c.id"
)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One audit event of a case, with the free text it points to (empty once erased)."""

    at: datetime
    actor: str
    action: str
    before: dict[str, object]
    after: dict[str, object]
    text: str


class Register:
    """The register and case histories, on one session (use the read-only connection)."""

    def __init__(self, db: Session, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def rows(self) -> AsyncIterator[dict[str, object]]:
        """One dict per case, `REGISTER_COLUMNS` as keys, oldest case first."""
        for row in await self._db.all(_REGISTER):
            (ref, kind, labels, received, due, extended_at, status, outcome, closed, timely, assignee,
             identity_status, identity_method, name, address, language, erased) = row  # fmt: skip
            yield {
                "case_ref": ref,
                "kind": kind,
                "labels": " ".join(json.loads(labels or "[]")),
                "received_at": received,
                "due_date": due,
                "extended": extended_at is not None,
                "status": status,
                "outcome": outcome or "",
                "resolved_at": closed or "" if status == "resolved" else "",
                "on_time": None if timely is None or status != "resolved" else bool(timely),
                "assignee": assignee,
                "identity": f"{identity_status}: {identity_method}" if identity_method else identity_status,
                "requester_name": name or "",
                "requester_email": address or "",
                "language": language,
                "erased_at": erased or "",
            }

    async def history(self, case_id: int) -> list[HistoryEntry]:
        """The case's audit events, oldest first."""
        rows = await self._db.all(
            "SELECT a.at, a.actor, a.action, a.before, a.after, COALESCE(t.body, '') FROM audit_events a "
            "LEFT JOIN free_texts t ON t.id = a.text_id WHERE a.case_id = ? ORDER BY a.id",
            (case_id,),
        )
        return [
            HistoryEntry(
                at=datetime.fromisoformat(r[0]),
                actor=r[1],
                action=r[2],
                before=json.loads(r[3]) if r[3] else {},
                after=json.loads(r[4]) if r[4] else {},
                text=r[5],
            )
            for r in rows
        ]
