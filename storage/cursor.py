"""Where the mailbox watcher stands, per folder: the next message to take is the first UID above
`last_uid` under this `uidvalidity`. Messages below `backfill_before_uid` were already in the
folder when the watcher first saw it (or re-synced after a UIDVALIDITY change)."""

from __future__ import annotations

from core.clock import Clock
from core.errors import StorageError
from storage.db import Session, iso
from storage.models import Cursor

__all__ = ["Cursors"]


class Cursors:
    """The mailbox cursors on one session."""

    def __init__(self, db: Session, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def get(self, folder: str) -> Cursor | None:
        """The stored cursor of a folder, if the watcher has seen it before."""
        return await self._db.fetch(Cursor, "SELECT * FROM mailbox_cursor WHERE folder = ?", (folder,))

    async def reset(self, folder: str, *, uidvalidity: int, backfill_before_uid: int) -> None:
        """Start (or restart, after a UIDVALIDITY change) a folder from its first message."""
        await self._db.run(
            "INSERT INTO mailbox_cursor (folder, uidvalidity, last_uid, backfill_before_uid, updated_at) "
            "VALUES (?, ?, 0, ?, ?) ON CONFLICT (folder) DO UPDATE SET uidvalidity = excluded.uidvalidity, "
            "last_uid = 0, backfill_before_uid = excluded.backfill_before_uid, updated_at = excluded.updated_at",
            (folder, uidvalidity, backfill_before_uid, iso(self._clock())),
        )

    async def advance(self, folder: str, *, uidvalidity: int, uid: int) -> None:
        """Record that every message up to `uid` has been taken in (never moves backwards)."""
        changed, _ = await self._db.run(
            "UPDATE mailbox_cursor SET last_uid = MAX(last_uid, ?), updated_at = ? "
            "WHERE folder = ? AND uidvalidity = ?",
            (uid, iso(self._clock()), folder, uidvalidity),
        )
        if changed != 1:
            raise StorageError(f"no cursor for folder under uidvalidity {uidvalidity}")
