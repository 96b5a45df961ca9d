"""Scheduled jobs: work the bot does at a time of day rather than in answer to mail or a click.

A `Job` says which run is due at a local instant (`run_key`, e.g. the date for a daily job, or None
when none is due) and does it; each run records itself (`tx.jobs.claim`) in the transaction that
does its work, so it happens once across restarts and crashes. The scheduler (`bot.scheduler`)
asks every job at start and then every minute.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from storage.store import Store

__all__ = ["Job"]


@dataclass(frozen=True, slots=True)
class Job:
    """A named job: `run_key(local_now)` names the run due now (or None); `run(store, run_key, now)`
    does it and returns how many things it queued or changed."""

    name: str
    run_key: Callable[[datetime], str | None]
    run: Callable[[Store, str, datetime], Awaitable[int]]
