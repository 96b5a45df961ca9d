"""Runs of scheduled jobs, so that each (job, run) happens once across restarts and crashes.

A job's run is recorded in the same transaction as its work: either both are committed or
neither, and a second attempt at the same run finds it done.
"""

from __future__ import annotations

from core.clock import Clock
from storage.db import Session, iso

__all__ = ["JobRuns"]


class JobRuns:
    """The record of scheduled job runs on one session."""

    def __init__(self, db: Session, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def claim(self, job: str, run_key: str) -> bool:
        """Record the run `run_key` of `job`; False when it was already recorded (done before)."""
        changed, _ = await self._db.run(
            "INSERT OR IGNORE INTO job_runs (job, run_key, done_at) VALUES (?, ?, ?)",
            (job, run_key, iso(self._clock())),
        )
        return bool(changed)

    async def done(self, job: str, run_key: str) -> bool:
        """Whether that run is recorded."""
        return (
            await self._db.one("SELECT 1 FROM job_runs WHERE job = ? AND run_key = ?", (job, run_key))
            is not None
        )
