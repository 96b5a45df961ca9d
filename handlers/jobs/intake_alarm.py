"""The intake alarm: the channel is told once when the mailbox has not been reached for
`IMAP_ALERT_MINUTES`, and once when it can be read again — not once per retry.

`IntakeHealth` is told by the mailbox watcher (from its thread) of every failed attempt and every
success. The outage counts from the first failed attempt of this process (a restart does not
inherit an old one). The alarm job looks at it on every scheduler round; what was said last is in
the database, so a restart during an outage neither repeats the alarm nor forgets to give the
all-clear.
"""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.clock import Clock
from core.errors import MailboxError
from handlers.jobs import Job
from storage.db import iso
from storage.store import Store

__all__ = ["IntakeHealth", "intake_alarm_job", "plain_reason"]


def plain_reason(error: BaseException) -> str:
    """What went wrong, in words a non-technical reader understands (no server text: it may
    hold data)."""
    text = str(error).lower()
    name = type(error).__name__
    if isinstance(error, MailboxError) or "folder" in text:
        return "the mail server no longer has the folder the bot watches"
    if isinstance(error, ssl.SSLError):
        return "the secure connection to the mail server failed (its certificate or settings changed)"
    if "login" in text or "authentic" in text or "credentials" in text or name == "LoginError":
        return "the mail server refused the bot's login (the password or token may have changed)"
    if isinstance(error, socket.gaierror):
        return "the mail server's name cannot be found (network or DNS problem)"
    if isinstance(error, (TimeoutError, socket.timeout)):
        return "the mail server does not answer in time"
    if isinstance(error, ConnectionError | OSError | EOFError):
        return "the mail server cannot be reached (it may be down, or the network is)"
    return "the mailbox could not be read"


@dataclass(frozen=True, slots=True)
class Health:
    """A snapshot: since when the mailbox has failed (None: reachable), why, and when it was last
    reached."""

    down_since: datetime | None
    reason: str
    reached_at: datetime | None


class IntakeHealth:
    """Whether this process can reach the mailbox (thread-safe: the watcher runs in a thread)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._down_since: datetime | None = None
        self._reason = ""
        self._reached_at: datetime | None = None

    def failed(self, error: BaseException) -> None:
        """An attempt to reach the mailbox failed."""
        with self._lock:
            if self._down_since is None:
                self._down_since = self._clock()
            self._reason = plain_reason(error)

    def reached(self) -> None:
        """The mailbox was reached (logged in, folder open)."""
        with self._lock:
            self._down_since = None
            self._reached_at = self._clock()

    def snapshot(self) -> Health:
        with self._lock:
            return Health(self._down_since, self._reason, self._reached_at)


def intake_alarm_job(health: IntakeHealth, *, alert_after: timedelta, folder: str) -> Job:
    """A job looked at on every scheduler round (its run is never recorded as done: the notices
    it adds are what keeps it from repeating itself)."""

    async def run(store: Store, run_key: str, now: datetime) -> int:
        state = health.snapshot()
        last = await store.notices.last("intake_alarm")
        alarm_up = last is not None and last.key == "down"
        payload: dict[str, object]
        if state.down_since is not None and now - state.down_since >= alert_after and not alarm_up:
            payload = {
                "state": "down",
                "since": iso(state.down_since),
                "reason": state.reason,
                "folder": folder,
            }
            key, day = "down", iso(state.down_since)
        elif state.down_since is None and state.reached_at is not None and alarm_up:
            assert last is not None
            down_since = (last.payload or {}).get("since")
            payload = {
                "state": "up",
                "since": iso(state.reached_at),
                "down_since": down_since,
                "folder": folder,
            }
            key, day = "up", iso(state.reached_at)
        else:
            return 0
        async with store.transaction(now=now) as tx:
            notice = await tx.notices.add("intake_alarm", key=key, day=day, payload=payload)
            if notice is None:
                return 0
            await tx.outbox.post_notice("intake_alarm", notice.id)
        return 1

    return Job("intake_alarm", lambda local: "watch", run)
