"""Once a day, the roots of open cases are re-rendered: they show the days left."""

from __future__ import annotations

from datetime import datetime

from handlers.jobs import Job
from storage.store import Store

__all__ = ["DAYS_LEFT"]


async def refresh_days_left(store: Store, run_key: str, now: datetime) -> int:
    """Queue a re-rendering of every open case's root, once for the local date `run_key`."""
    async with store.transaction(now=now) as tx:
        if not await tx.jobs.claim("days_left", run_key):
            return 0
        return await tx.outbox.update_open_roots()


#: Due from local midnight: the first run of each day.
DAYS_LEFT = Job("days_left", lambda local: local.date().isoformat(), refresh_days_left)
