"""The one notion of "now": an injectable clock returning aware instants."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["Clock", "running_from", "system_clock"]

#: A function giving the current instant (timezone-aware). Tests and rehearsals inject their own.
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The real current instant, in UTC."""
    return datetime.now(UTC)


def running_from(start: datetime) -> Clock:
    """A clock that reads `start` now and runs on from there at the real pace (for rehearsals and
    black-box tests: `PRIVACY_DESK_FAKE_NOW`)."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    origin = time.monotonic()
    start = start.astimezone(UTC)

    def now() -> datetime:
        return start + timedelta(seconds=time.monotonic() - origin)

    return now
