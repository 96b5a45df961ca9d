"""Runs the scheduled jobs (`handlers.jobs`) at their time, persisted in SQLite, restart-safe.

At start and then at the start of every minute of the clock (so that a job due at 09:00 runs at
09:00, not up to a minute late), each job is asked which run is due at the local time of the
controller's calendar; a run not yet recorded is done (it records itself in its own
transaction). Earlier runs that a stopped bot missed are not caught up: a job names only the run
due now. `wake()` asks for a round at once (the mailbox watcher calls it when the mailbox's
reachability changes).
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
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed: set[tuple[str, str]] = set()

    def wake(self) -> None:
        """Ask for a round now (safe from any thread once `run` has started)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stop: asyncio.Event) -> None:
        """Run due jobs until `stop` is set."""
        self._loop = asyncio.get_running_loop()
        while not stop.is_set():
            self._wake.clear()
            await self.run_due()
            await sleep_until(stop, self._wake, self._until_next_round())

    def _until_next_round(self) -> float:
        """Seconds to the next round: the next start of a minute on the clock (a fraction of a
        second after it), at most `interval`."""
        now = self.clock()
        into_minute = now.second + now.microsecond / 1e6
        return max(0.05, min(self.interval, 60.0 - into_minute + 0.2))

    async def run_due(self) -> int:
        """Do every run due now that is not recorded yet; returns how many things they did."""
        now = self.clock()
        local = now.astimezone(self.calendar.tz)
        total = 0
        for job in self.jobs:
            key = job.run_key(local)
            if key is None or (job.name, key) in self._failed:
                continue
            try:
                if await self.store.jobs.done(job.name, key):
                    continue
                done = await job.run(self.store, key, now)
            except (sqlite3.OperationalError, StorageError) as e:  # the database: try again next round
                logger.warning("job %s (%s) could not run: %s", job.name, key, type(e).__name__)
                continue
            except Exception as e:
                # Error boundary: a job failing for a reason of its own (a bug, a malformed record)
                # must not stop the mailbox or the outbox. It is logged once and not tried again
                # for this run in this process (a restart tries again).
                logger.error("job %s (%s) failed: %s", job.name, key, redacted(e))
                self._failed.add((job.name, key))
                continue
            if done:
                logger.info("job %s ran for %s (%d)", job.name, key, done)
            total += done
        if total:
            self.on_done()
        return total
