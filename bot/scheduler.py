"""Runs the scheduled jobs (`handlers.jobs`) at their time, persisted in SQLite, restart-safe.

At start and then every `interval` seconds, each job is asked which run is due at the local time
of the controller's calendar; a run not yet recorded is done (it records itself in its own
transaction). Earlier runs that a stopped bot missed are not caught up: a job names only the run
due now.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Sequence

from bot.backoff import sleep_until
from core.clock import Clock, system_clock
from core.errors import StorageError, redacted
from handlers.cases.deadlines import Calendar
from handlers.jobs import Job
from storage.store import Store

__all__ = ["Scheduler"]

logger = logging.getLogger(__name__)


class Scheduler:
    """Asks each job every `interval` seconds for the run due now, and does it once."""

    def __init__(
        self,
        store: Store,
        jobs: Sequence[Job],
        *,
        calendar: Calendar,
        clock: Clock = system_clock,
        interval: float = 60.0,
        on_done: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.jobs = tuple(jobs)
        self.calendar = calendar
        self.clock = clock
        self.interval = interval
        self.on_done = on_done

    async def run(self, stop: asyncio.Event) -> None:
        """Run due jobs until `stop` is set."""
        while not stop.is_set():
            await self.run_due()
            await sleep_until(stop, None, self.interval)

    async def run_due(self) -> int:
        """Do every run due now that is not recorded yet; returns how many things they did."""
        now = self.clock()
        local = now.astimezone(self.calendar.tz)
        total = 0
        for job in self.jobs:
            key = job.run_key(local)
            if key is None:
                continue
            try:
                if await self.store.jobs.done(job.name, key):
                    continue
                done = await job.run(self.store, key, now)
            except (sqlite3.OperationalError, StorageError) as e:  # the database: try again next round
                logger.warning("job %s (%s) could not run: %s", job.name, key, type(e).__name__)
                continue
            except Exception as e:
                logger.error("job %s (%s) failed: %s", job.name, key, redacted(e))
                raise
            logger.info("job %s ran for %s (%d)", job.name, key, done)
            total += done
        if total:
            self.on_done()
        return total
