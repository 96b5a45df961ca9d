"""The one loop that works the outbox: everything the bot sends on its own initiative.

Each round takes the rows that are due (roots first, updates last, otherwise oldest first) and
hands each to the sender of its kind (Slack or SMTP), then records what came of it:

- delivered → done, with its result (the Slack ts, the accepted Message-ID), and whatever follows
  in the case (the sender's `sent`), in one transaction;
- the destination unavailable (`Unavailable`) → that destination pauses, with backoff, logged
  once per outage; its other rows wait too, the other destination's rows go on;
- this message turned away for now (`TryLater`) → it alone waits, with its own capped backoff;
- refused for good (`Refused`), or failing for a reason of its own → failed, and staff are told
  (the sender's `refused`); the rest go on.

Answers to a person's own action (acks, modals, ephemeral messages) do not come through here.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from bot.backoff import Backoff, Outage, sleep_until
from core.clock import Clock, system_clock
from core.errors import (
    DeliveryError,
    Refused,
    StorageError,
    TryLater,
    Unavailable,
    redacted,
    unwritable_storage,
)
from storage.db import iso
from storage.models import OutboxRow
from storage.outbox import Delivered
from storage.store import Store, Tx

__all__ = ["MessageBackoff", "OutboxWorker", "Sender", "StorageAlarmSender"]

logger = logging.getLogger(__name__)


class Sender(Protocol):
    """Delivers the outbox rows of some kinds to one destination."""

    destination: str
    kinds: frozenset[str]

    async def send(self, row: OutboxRow) -> Delivered:
        """Deliver the row; raises a `DeliveryError` when it was not delivered."""
        ...

    async def sent(self, tx: Tx, row: OutboxRow, delivered: Delivered) -> None:
        """What follows, in the case, from the row being delivered (inside the transaction)."""
        ...

    async def refused(self, tx: Tx, row: OutboxRow, reason: str) -> None:
        """What follows from the row being refused for good (inside the transaction)."""
        ...


@runtime_checkable
class StorageAlarmSender(Protocol):
    """A sender that can also tell the channel the database cannot be written, or can again."""

    async def post_storage_alarm(self, alarm: dict[str, str]) -> None:
        """Post the alarm (`state` "down" with `since` and `reason`, or "up" with `since` and
        `down_since`); raises a `DeliveryError` when it was not posted."""
        ...


@dataclass(frozen=True, slots=True)
class MessageBackoff:
    """The wait before retrying a message turned away for now: `base·2ⁿ` seconds, at most `cap`."""

    base: float = 60.0
    cap: float = 3600.0

    def delay(self, attempts: int) -> float:
        return min(self.cap, self.base * 2 ** max(0, min(attempts - 1, 20)))


class _Destination:
    def __init__(self, name: str, backoff: Backoff) -> None:
        self.backoff = backoff
        self.outage = Outage(name, logger)
        self.paused_until = 0.0  # time.monotonic()

    @property
    def paused(self) -> bool:
        return time.monotonic() < self.paused_until


class OutboxWorker:
    """Works the outbox until stopped; `notify()` after committing new rows."""

    def __init__(
        self,
        store: Store,
        senders: Sequence[Sender],
        *,
        clock: Clock = system_clock,
        idle_interval: float = 60.0,
        destination_backoff: Backoff | None = None,
        message_backoff: MessageBackoff | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.idle_interval = idle_interval
        self.message_backoff = message_backoff or MessageBackoff()
        self._senders = {kind: sender for sender in senders for kind in sender.kinds}
        template = destination_backoff or Backoff(base=1.0, cap=120.0)
        self.destinations = {
            s.destination: _Destination(
                _NAMES.get(s.destination, s.destination), Backoff(base=template.base, cap=template.cap)
            )
            for s in senders
        }
        self.database = Outage("the database (outbox)", logger)
        #: the destination of the message being sent right now, if any (a stop waits for an email)
        self.sending: str | None = None
        self._database_backoff = Backoff(base=1.0, cap=60.0)
        self._wake = asyncio.Event()
        self._alarm_sender = next((s for s in senders if isinstance(s, StorageAlarmSender)), None)
        self._alarms: list[dict[str, str]] = []
        self._unwritable_since: datetime | None = None

    def notify(self) -> None:
        """Ask for a round soon (called after new rows are committed)."""
        self._wake.set()

    def notify_threadsafe(self, loop: asyncio.AbstractEventLoop) -> None:
        """`notify` from another thread (the mailbox watcher)."""
        loop.call_soon_threadsafe(self._wake.set)

    def outage(self, destination: str) -> Outage:
        """The outage record of a destination ("slack", "smtp")."""
        return self.destinations[destination].outage

    def storage_changed(self, error: BaseException | None) -> None:
        """The database could not be written (`error`: a full disk), or could again (None); told
        by intake and by this loop itself. The channel is told once each way. These alarms cannot
        wait in the outbox table — the database is what fails — so they wait here, in memory, and
        are posted before anything else; a restart during the outage says it again."""
        reason = unwritable_storage(error) if error is not None else None
        if reason is not None and self._unwritable_since is None:
            self._unwritable_since = self.clock()
            self._alarms.append({"state": "down", "since": iso(self._unwritable_since), "reason": reason})
            self.notify()
        elif error is None and self._unwritable_since is not None:
            since = iso(self._unwritable_since)
            self._alarms.append({"state": "up", "since": iso(self.clock()), "down_since": since})
            self._unwritable_since = None
            self.notify()

    async def _post_alarms(self) -> None:
        """Post the storage alarms waiting in memory, in order; one Slack cannot take waits."""
        while self._alarms and self._alarm_sender is not None:
            try:
                await self._alarm_sender.post_storage_alarm(self._alarms[0])
            except DeliveryError as e:
                logger.warning("the storage alarm could not be posted yet (%s)", type(e).__name__)
                return
            self._alarms.pop(0)

    async def run(self, stop: asyncio.Event) -> None:
        """Work the outbox until `stop` is set. Nothing is dropped: what cannot be sent waits."""
        while not stop.is_set():
            self._wake.clear()
            await self._post_alarms()
            try:
                busy = await self.work_once()
            except (sqlite3.OperationalError, StorageError) as e:  # the database is unavailable: wait
                self.database.failed(e)
                self.storage_changed(e)
                await sleep_until(stop, None, self._database_backoff.next_delay())
                continue
            self.database.recovered()
            self._database_backoff.reset()
            if not busy:
                await sleep_until(stop, self._wake, await self._idle_for())

    async def _idle_for(self) -> float:
        """How long to sleep when nothing is due: until a paused destination or a held-back row
        may be tried again, at most `idle_interval`."""
        waits = [self.idle_interval]
        now = time.monotonic()
        waits += [d.paused_until - now for d in self.destinations.values() if d.paused_until > now]
        retry = await self.store.outbox.next_attempt_at(after=self.clock())
        if retry is not None:
            waits.append((retry - self.clock()).total_seconds())
        return max(0.01, min(waits))

    async def work_once(self) -> bool:
        """One round over the rows due now; returns whether any was attempted."""
        for orphan in await self.store.outbox.orphans():
            await self._fail(orphan, "the message it belongs to could not be posted")
        kinds = self._reachable_kinds()
        attempted = False
        for row in await self.store.outbox.due(now=self.clock(), kinds=kinds) if kinds else []:
            sender = self._senders[row.kind]
            if self.destinations[sender.destination].paused:
                continue  # paused during this round
            await self._attempt(row, sender)
            attempted = True
        return attempted

    async def _attempt(self, row: OutboxRow, sender: Sender) -> None:
        destination = self.destinations[sender.destination]
        await self.store.outbox.mark_started(row.id, at=self.clock())
        self.sending = sender.destination
        try:
            delivered = await sender.send(row)
        except Unavailable as e:
            destination.outage.failed(e)
            delay = max(destination.backoff.next_delay(), e.retry_after or 0.0)
            destination.paused_until = time.monotonic() + delay
            await self.store.outbox.retry_later(row.id, not_before=None, error=e.reason)  # with them all
            return
        except TryLater as e:
            wait = self.message_backoff.delay(row.attempts + 1)
            logger.info("outbox row %d (%s) turned away for now; retrying in %.0f s", row.id, row.kind, wait)
            await self.store.outbox.retry_later(
                row.id, not_before=self.clock() + timedelta(seconds=wait), error=e.reason
            )
            return
        except Refused as e:
            await self._fail(row, e.reason, sender)
            return
        except (sqlite3.OperationalError, StorageError):
            raise  # the database itself: the loop waits and retries
        except Exception as e:
            # Error boundary: one message that cannot be built or sent for a reason of its own (a
            # malformed record, a bug) must fail alone and visibly, and let the others go.
            logger.error("outbox row %d (%s) failed: %s", row.id, row.kind, redacted(e))
            await self._fail(row, f"it could not be sent ({type(e).__name__})", sender)
            return
        finally:
            self.sending = None
        destination.outage.recovered()
        destination.backoff.reset()

        async def done(tx: Tx) -> None:
            await tx.outbox.mark_done(row.id, result=delivered.result, channel=delivered.channel)

        await self._record(row, "sent", done, lambda tx: sender.sent(tx, row, delivered))

    async def _fail(self, row: OutboxRow, reason: str, sender: Sender | None = None) -> None:
        sender = sender or self._senders.get(row.kind)

        async def failed(tx: Tx) -> None:
            await tx.outbox.mark_failed(row.id, error=reason)

        async def told(tx: Tx) -> None:
            if sender is not None:
                await sender.refused(tx, row, reason)

        await self._record(row, "refused", failed, told)
        self.notify()  # what the refusal queued (a note) goes out in the next round

    async def _record(
        self,
        row: OutboxRow,
        what: str,
        fate: Callable[[Tx], Awaitable[None]],
        then: Callable[[Tx], Awaitable[None]],
    ) -> None:
        """Record a message's fate and what follows from it in its case (an audit event, a note)
        in one transaction; if what follows fails, the fate is recorded alone."""
        try:
            async with self.store.transaction(now=self.clock()) as tx:
                await fate(tx)
                await then(tx)
            self.storage_changed(None)  # written: if the database could not be, it can again
        except (sqlite3.OperationalError, StorageError):
            raise  # the database itself: the loop waits and retries
        except Exception as e:
            # Error boundary, as for sending: what follows must not undo the delivery (it would be
            # sent again), nor stop the other messages.
            logger.error(
                "outbox row %d (%s): recording that it was %s failed: %s", row.id, row.kind, what, redacted(e)
            )
            async with self.store.transaction(now=self.clock()) as tx:
                await fate(tx)

    async def drained(self) -> bool:
        """Whether nothing waits that could be sent now: rows held back by their backoff, or for a
        destination waiting out an outage, do not count (for tests and benchmarks)."""
        kinds = self._reachable_kinds()
        return not kinds or not await self.store.outbox.due(now=self.clock(), kinds=kinds, limit=1)

    def _reachable_kinds(self) -> list[str]:
        """The kinds of row whose destination is not waiting out an outage."""
        return [k for k, s in self._senders.items() if not self.destinations[s.destination].paused]


_NAMES = {"slack": "Slack", "smtp": "SMTP server"}
