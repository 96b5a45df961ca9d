"""Once a day, retention: the personal data of cases resolved `RETENTION_DAYS` ago is erased."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from handlers.jobs import Job
from handlers.record.retention import purge
from storage.store import Store

__all__ = ["retention_job"]


def retention_job(retention_days: int, *, trained_model: Path | None = None) -> Job:
    """The daily purge (from local midnight: the first run of each day)."""

    async def run(store: Store, run_key: str, now: datetime) -> int:
        async with store.transaction(now=now) as tx:
            if not await tx.jobs.claim("retention", run_key):
                return 0
        report = await purge(store, retention_days=retention_days, now=now, trained_model=trained_model)
        return len(report.refs)

    return Job("retention", lambda local: local.date().isoformat(), run)
