"""Retry pacing for reconnects: exponential backoff with full jitter, and outage logging.

Slack Web API calls retry through slack-sdk's own handlers; this helper serves the loops that
must keep trying on their own (the IMAP connection, the Slack publisher between attempts).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

__all__ = ["Backoff", "Outage", "sleep_until"]


class Backoff:
    """Delays `base·2ⁿ`, capped at `cap`, each drawn uniformly from [base/2, that] (jitter)."""

    def __init__(self, *, base: float = 1.0, cap: float = 300.0, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The delay before the next attempt; each call counts one more failure."""
        ceiling = min(self.cap, self.base * (2 ** min(self.attempt, 30)))
        self.attempt += 1
        return self._rng.uniform(min(self.base / 2, ceiling), ceiling)

    def reset(self) -> None:
        """Start again from `base` (after a success)."""
        self.attempt = 0


class Outage:
    """Logs an outage once when it starts and once when it ends, not once per attempt."""

    def __init__(
        self, what: str, logger: logging.Logger, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.what = what
        self.logger = logger
        self.clock = clock
        self.since: float | None = None
        self.failures = 0

    @property
    def ongoing(self) -> bool:
        """Whether the last attempt failed."""
        return self.since is not None

    def failed(self, error: BaseException) -> None:
        """Record a failed attempt; logs a warning only for the first one of an outage."""
        self.failures += 1
        if self.since is None:
            self.since = self.clock()
            self.logger.warning("%s unavailable (%s); retrying with backoff", self.what, _describe(error))

    def recovered(self) -> None:
        """Record a success; logs the end of an outage if one was ongoing."""
        if self.since is not None:
            self.logger.warning(
                "%s available again after %.0f s and %d failed attempts",
                self.what,
                self.clock() - self.since,
                self.failures,
            )
        self.since = None
        self.failures = 0


def _describe(error: BaseException) -> str:
    """The error's type and Slack error code if any; never the message text (it may hold data)."""
    response = getattr(error, "response", None)
    code = None
    if response is not None:
        try:
            code = response.get("error")
        except Exception:
            code = None
    return f"{type(error).__name__}: {code}" if code else type(error).__name__


async def sleep_until(stop: asyncio.Event, wake: asyncio.Event | None, timeout: float) -> None:
    """Sleep until `stop` (or `wake`) is set, or `timeout` seconds pass."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
