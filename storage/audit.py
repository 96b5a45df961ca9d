"""The audit trail: append-only, ids, enums and dates only.

Who did what to which case, when, with the changed facts before and after. Free text (a reason, a
note) is not copied here: the event points to it (`text_id`), so retention can erase the text and
keep the event. Triggers refuse UPDATE and DELETE.
"""

from __future__ import annotations

from core.clock import Clock
from storage.db import Session, dumps, iso
from storage.models import AuditEvent

__all__ = ["Audit"]


class Audit:
    """The audit trail on one session."""

    def __init__(self, db: Session, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def append(
        self,
        *,
        case_id: int | None,
        actor: str,
        action: str,
        before: dict[str, object] | None = None,
        after: dict[str, object] | None = None,
        text_id: int | None = None,
        email_id: int | None = None,
        outbound_id: int | None = None,
    ) -> int:
        """Append an event (no personal data: ids, kinds, statuses, dates); returns its id."""
        _, event_id = await self._db.run(
            "INSERT INTO audit_events (case_id, at, actor, action, before, after, text_id, email_id, outbound_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                case_id,
                iso(self._clock()),
                actor,
                action,
                dumps(before) if before is not None else None,
                dumps(after) if after is not None else None,
                text_id,
                email_id,
                outbound_id,
            ),
        )
        return event_id

    async def get(self, event_id: int) -> AuditEvent | None:
        """One event."""
        return await self._db.fetch(AuditEvent, "SELECT * FROM audit_events WHERE id = ?", (event_id,))

    async def of_outbound(self, outbound_id: int) -> list[AuditEvent]:
        """The events about an email we wrote, oldest first."""
        return await self._db.fetch_all(
            AuditEvent, "SELECT * FROM audit_events WHERE outbound_id = ? ORDER BY id", (outbound_id,)
        )

    async def trail(self, case_id: int) -> list[AuditEvent]:
        """The events of a case, oldest first."""
        return await self._db.fetch_all(
            AuditEvent, "SELECT * FROM audit_events WHERE case_id = ? ORDER BY id", (case_id,)
        )
