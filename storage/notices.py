"""Notices: the scheduled messages the bot has decided to send, each decided once.

A reminder is keyed by (case, milestone, local day), a digest by its day, a weekly summary by the
Monday of its week, an intake alarm by its state and the instant the outage began. Adding one that
exists already does nothing, so a job repeated after a restart or a crash decides nothing twice.
"""

from __future__ import annotations

from core.clock import Clock
from storage.db import Session, dumps, iso
from storage.models import Notice

__all__ = ["NOTICE_KINDS", "Notices"]

NOTICE_KINDS = ("reminder", "digest", "summary", "intake_alarm")


class Notices:
    """The notices on one session."""

    def __init__(self, db: Session, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def add(
        self, kind: str, *, day: str, key: str = "", case_id: int | None = None, payload: dict[str, object]
    ) -> Notice | None:
        """Decide a notice; None when that one was decided before."""
        if kind not in NOTICE_KINDS:
            raise ValueError(f"not a kind of notice: {kind!r}")
        changed, notice_id = await self._db.run(
            "INSERT OR IGNORE INTO notices (kind, case_id, key, day, payload, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (kind, case_id, key, day, dumps(payload), iso(self._clock())),
        )
        return await self.get(notice_id) if changed else None

    async def get(self, notice_id: int) -> Notice | None:
        """One notice."""
        return await self._db.fetch(Notice, "SELECT * FROM notices WHERE id = ?", (notice_id,))

    async def last(self, kind: str, *, case_id: int | None = None, key: str | None = None) -> Notice | None:
        """The most recent notice of a kind (for a case, with a key), if any."""
        where: list[str] = ["kind = ?"]
        params: list[object] = [kind]
        if case_id is not None:
            where.append("case_id = ?")
            params.append(case_id)
        if key is not None:
            where.append("key = ?")
            params.append(key)
        return await self._db.fetch(
            Notice, f"SELECT * FROM notices WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT 1", params
        )

    async def of_case(self, case_id: int, kind: str = "reminder") -> list[Notice]:
        """A case's notices of a kind, oldest first."""
        return await self._db.fetch_all(
            Notice, "SELECT * FROM notices WHERE case_id = ? AND kind = ? ORDER BY id", (case_id, kind)
        )

    async def of_kind(self, kind: str) -> list[Notice]:
        """Every notice of a kind, oldest first."""
        return await self._db.fetch_all(Notice, "SELECT * FROM notices WHERE kind = ? ORDER BY id", (kind,))
