"""The one notion of "now": an injectable clock returning aware instants."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["Clock", "system_clock"]

#: A function giving the current instant (timezone-aware). Tests and rehearsals inject their own.
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """The real current instant, in UTC."""
    return datetime.now(UTC)
