"""The one loop that works the outbox: everything the bot sends on its own initiative.

Each round takes, for each destination, the rows that are due (roots first, updates last,
otherwise oldest first), marks those it will try started — `START_BATCH` at a time, in one durable
commit, before any is sent — lets their sender read ahead what they need (`Prepares`), and hands
each to the sender of its kind (Slack or SMTP), then records what came of it. The rows of a batch
for different cases go side by side (`_chains`: each case's own messages in order, at most
`IN_FLIGHT` calls at once), so that our work on one overlaps Slack's on another:

- delivered → done, with its result (the Slack ts, the accepted Message-ID), and whatever follows
  in the case (the sender's `sent`), in one transaction: for Slack posts, one for the batch and
  not durable (a sender that `finds_deliveries` finds a post whose record a power loss took back:
  storage.db), for an email one each and durable;
- not tried after all (its destination paused, or its lane answered 429, earlier in the batch) →
  its started mark and attempt are taken back;
- the destination unavailable (`Unavailable`) → that destination pauses, with backoff, logged
  once per outage; its other rows wait too, the other destination's rows go on;
- Slack asking us to slow down (`RateLimited`, a 429) → that row's lane (`Sender.lane`: the
  channel it posts in) is paced, below;
- this message turned away for now (`TryLater`) → it alone waits, with its own capped backoff;
- refused for good (`Refused`), or failing for a reason of its own → failed, and staff are told
  (the sender's `refused`); the rest go on.

Pacing. Slack allows about one message per second per channel, with short bursts, and answers
429 with `Retry-After` beyond that. The outbox posts at full speed while Slack accepts. Once a
lane has answered 429, every row bound for it waits out `Retry-After` (not only the row that got
the 429), then goes at one post per `PACED_INTERVAL`, until Slack has not answered 429 there for
`QUIET_PERIOD`; then full speed again, but one call in flight at a time there (the rows of a
batch otherwise go side by side, and would spend Slack's burst at once). The other lanes and
destinations go on meanwhile: the rows of a lane that must wait are left out of the query
(`Outbox.due(held=...)`), so a long backlog in one channel does not hide the rows of another
behind it, and within a lane the order stays that of `due` (new cases' roots before older
threads' replies and notes).

For this the outbox's Slack client must not retry 429s itself: slack-sdk's
`AsyncRateLimitErrorRetryHandler` sleeps `Retry-After` inside the call and retries just that call,
which holds the one loop (every destination waits) while the rest of the channel's rows are sent
again at full speed the moment it returns, each earning its own 429. So the outbox gets its own
client without that handler (`bot.app.outbox_client`), keeping slack-sdk's handlers for connection
errors and 5xx, which are about one call; the client Bolt uses to answer people (acks, modals,
ephemeral messages: sent directly, never through here, so never behind a backlog) keeps them all.

A 429 means Slack did not carry out the call, and a row makes at most one call that posts: a row
answered 429 on its first attempt counts as not started, so its retry posts at once instead of
searching the channel for it first.

A database that cannot be written (a full disk) is told here by intake and by this loop itself
(`storage_changed`): the channel gets one alarm when it starts and one when it ends. Those two
cannot wait in the outbox table, since the database is what fails; they wait in memory and go out
before anything else in each round.

Answers to a person's own action (acks, modals, ephemeral messages) do not come through here.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    RateLimited,
    Refused,
    StorageError,
    TryLater,
    Unavailable,
    redacted,
    unwritable_storage,
)
from storage.db import iso
from storage.models import OutboxRow
from storage.outbox import POSTS, Delivered
from storage.store import Store, Tx

__all__ = [
    "IN_FLIGHT",
    "PACED_INTERVAL",
    "QUIET_PERIOD",
    "START_BATCH",
    "MessageBackoff",
    "OutboxWorker",
    "Pace",
    "Prepares",
    "Sender",
    "StorageAlarmSender",
]

logger = logging.getLogger(__name__)

#: Seconds between posts in a lane Slack has rate-limited: Slack allows about one message per
#: second per channel; the margin keeps a post that arrives a little early from earning a 429.
PACED_INTERVAL = 1.05
#: Seconds without a 429 after which a paced lane goes back to full speed.
QUIET_PERIOD = 60.0
#: How many of a round's rows are marked started together, in one transaction, before they are
#: sent: one commit for them all instead of one each (while a backlog is taken in, each commit
#: waits for the intake batch in progress). A crash after the mark costs each of them a look in
#: Slack before it is sent (it is found there or posted once).
START_BATCH = 100
#: How many due rows a round takes at most, for each destination.
ROUND_LIMIT = 100
#: How many calls may be in flight at once: a batch's rows for different cases are sent side by
#: side (`_chains`), so that our work on one overlaps with Slack's on another.
IN_FLIGHT = 4


class Sender(Protocol):
    """Delivers the outbox rows of some kinds to one destination."""

    destination: str
    kinds: frozenset[str]

    async def send(self, row: OutboxRow) -> Delivered:
        """Deliver the row; raises a `DeliveryError` when it was not delivered."""
        ...

    async def sent(self, tx: Tx, row: OutboxRow, delivered: Delivered) -> None:
        """What follows, in the case, from the row being delivered (inside the transaction,
        which may run in the database's thread: it awaits nothing but `tx`)."""
        ...

    async def refused(self, tx: Tx, row: OutboxRow, reason: str) -> None:
        """What follows from the row being refused for good (inside the transaction)."""
        ...

    def lane(self, row: OutboxRow) -> str:
        """Where the row goes, as far as pacing is concerned (a Slack channel; for mail, the
        server): the same for every row that counts against the same limit."""
        ...

    #: Whether a retry of a row marked started first looks for what an earlier attempt may have
    #: delivered (Slack: the message with the row's metadata), so that the record of a delivery
    #: may be lost to a power loss without the message being delivered twice.
    finds_deliveries: bool


@runtime_checkable
class Prepares(Protocol):
    """A sender that reads ahead, at once, what a batch of its rows needs to be sent."""

    async def prepare(self, rows: Sequence[OutboxRow]) -> None:
        """These rows are about to be sent (each at most once)."""
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


class Pace:
    """A lane Slack has rate-limited: nothing goes there before `held_until` (its `Retry-After`),
    then one post per `PACED_INTERVAL`, until `QUIET_PERIOD` has passed since the last 429.
    Times are the worker's monotonic seconds."""

    def __init__(self, now: float) -> None:
        self.since = now
        self.limited_at = now
        self.held_until = now
        self.next_post = now
        self.limits = 0

    def limited(self, now: float, retry_after: float) -> None:
        """Slack answered 429 with `Retry-After`: the whole lane waits that long."""
        self.limits += 1
        self.limited_at = now
        self.held_until = max(self.held_until, now + retry_after)
        self.next_post = max(self.next_post, self.held_until)

    def posting(self, now: float) -> None:
        """A post goes out now: the next one waits `PACED_INTERVAL`."""
        self.next_post = max(self.next_post, now + PACED_INTERVAL)

    def quiet(self, now: float) -> bool:
        """Whether Slack has not answered 429 here for `QUIET_PERIOD`: full speed again."""
        return now - self.limited_at >= QUIET_PERIOD


class _Destination:
    def __init__(self, name: str, backoff: Backoff, monotonic: Callable[[], float]) -> None:
        self.backoff = backoff
        self.outage = Outage(name, logger)
        self.paused_until = 0.0  # monotonic()
        self._monotonic = monotonic

    @property
    def paused(self) -> bool:
        return self._monotonic() < self.paused_until


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
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.clock = clock
        self.monotonic = monotonic
        self.idle_interval = idle_interval
        self.message_backoff = message_backoff or MessageBackoff()
        self._senders = {kind: sender for sender in senders for kind in sender.kinds}
        self._kinds: dict[str, list[str]] = {}
        for sender in senders:
            self._kinds.setdefault(sender.destination, []).extend(sorted(sender.kinds))
        template = destination_backoff or Backoff(base=1.0, cap=120.0)
        self.destinations = {
            s.destination: _Destination(
                _NAMES.get(s.destination, s.destination),
                Backoff(base=template.base, cap=template.cap),
                monotonic,
            )
            for s in senders
        }
        #: (destination, lane) → its pace, for the lanes Slack has rate-limited lately
        self.paces: dict[tuple[str, str], Pace] = {}
        #: (destination, `OutboxRow.lane`) → the sender's lane of such rows, as seen so far: how
        #: the rows of a waiting lane are left out of the query
        self._lanes: dict[tuple[str, str | None], str] = {}
        self.database = Outage("the database (outbox)", logger)
        #: the destination of each call in flight (at most `IN_FLIGHT` at once; a stop waits for
        #: an email: `sending`)
        self._sending: list[str] = []
        self._in_flight = asyncio.Semaphore(IN_FLIGHT)
        #: lanes that have answered 429: one call in flight there at a time from then on
        self._lane_slots: dict[tuple[str, str], asyncio.Semaphore] = {}
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
        """How long to sleep when nothing is due: until a paused destination, a paced lane or a
        held-back row may be tried again, at most `idle_interval`."""
        waits = [self.idle_interval]
        now = self.monotonic()
        waits += [d.paused_until - now for d in self.destinations.values() if d.paused_until > now]
        waits += [p.next_post - now for p in self.paces.values() if p.next_post > now]
        retry = await self.store.outbox.next_attempt_at(after=self.clock())
        if retry is not None:
            waits.append((retry - self.clock()).total_seconds())
        return max(0.01, min(waits))

    async def work_once(self) -> bool:
        """One round over the rows due now, destination by destination; returns whether any was
        attempted."""
        for orphan in await self.store.outbox.orphans():
            await self._fail(orphan, "the message it belongs to could not be posted")
        attempted = False
        for name, kinds in self._kinds.items():
            destination = self.destinations[name]
            if destination.paused:
                continue
            held = self._waiting_lanes(name, lambda pace, now: now < pace.next_post)
            chosen: list[tuple[OutboxRow, Sender, str]] = []
            for row in await self.store.outbox.due(
                now=self.clock(), kinds=kinds, held=held, limit=ROUND_LIMIT
            ):
                sender = self._senders[row.kind]
                lane = sender.lane(row)
                self._lanes[(name, row.lane)] = lane
                if self._may_post(name, lane):  # else its lane waits: the others go on
                    chosen.append((row, sender, lane))
            for start in range(0, len(chosen), START_BATCH):
                batch = chosen[start : start + START_BATCH]
                async with self.store.transaction(now=self.clock()) as tx:  # durable: before sending
                    await tx.outbox.mark_started([row.id for row, _, _ in batch], at=tx.now)
                for sender in {id(sender): sender for _, sender, _ in batch}.values():
                    if isinstance(sender, Prepares):
                        await sender.prepare([row for row, s, _ in batch if s is sender])
                posted: list[tuple[OutboxRow, Sender, Delivered]] = []
                outcomes = await asyncio.gather(
                    *(self._send_chain(name, chain, posted) for chain in _chains(batch)),
                    return_exceptions=True,
                )
                attempted = attempted or any(outcome is True for outcome in outcomes)
                for outcome in outcomes:
                    if isinstance(outcome, BaseException):
                        raise outcome  # the database itself: the loop waits and retries
                await self._record_posted(posted)
        return attempted

    async def _send_chain(
        self,
        name: str,
        chain: list[tuple[OutboxRow, Sender, str]],
        posted: list[tuple[OutboxRow, Sender, Delivered]],
    ) -> bool:
        """Send a chain's rows one after the other (see `_chains`); Slack posts delivered are
        added to `posted` (recorded for the batch together), anything else is recorded at once.
        Returns whether any was attempted."""
        destination = self.destinations[name]
        attempted = False
        for row, sender, lane in chain:
            # a slot first (a 429 may come in while waiting for it); a lane that has answered 429
            # gets one call at a time, even at full speed again, so that a burst is not four
            async with self._in_flight, self._lane_slots.get((name, lane)) or contextlib.nullcontext():
                if destination.paused or self._held(name, lane):  # paused, or a 429, since
                    await self.store.outbox.not_attempted(row.id, started=row.started_at is not None)
                    continue
                if row.kind == "erase":  # it deletes the thread's replies: those posted too
                    await self._record_posted(posted)
                delivered = await self._attempt(row, sender, lane)
            attempted = True
            if delivered is not None and sender.finds_deliveries and row.kind in POSTS:
                posted.append((row, sender, delivered))
            elif delivered is not None:
                await self._record_sent(row, sender, delivered)
        return attempted

    @property
    def sending(self) -> str | None:
        """The destination of a call in flight now, if any (SMTP first: shutdown waits for it)."""
        if "smtp" in self._sending:
            return "smtp"
        return self._sending[0] if self._sending else None

    async def _record_posted(self, posted: list[tuple[OutboxRow, Sender, Delivered]]) -> None:
        """Record the messages of a batch that were posted, in one transaction (not durable: each
        would be found in Slack again); if that fails for a reason of one message's own, each is
        recorded alone. Empties `posted`."""
        if not posted:
            return

        async def record(tx: Tx) -> None:
            for row, sender, delivered in posted:
                await tx.outbox.mark_done(row.id, result=delivered.result, channel=delivered.channel)
                await sender.sent(tx, row, delivered)

        try:
            # a hundred rows' statements: run where the database is, not one trip each
            await self.store.in_thread(record, now=self.clock(), durable=False)
            self.storage_changed(None)
        except (sqlite3.OperationalError, StorageError):
            raise  # the database itself: the loop waits and retries (the rows are found in Slack)
        except Exception:
            # what follows one delivery failed: each is recorded alone, that one without it
            for row, sender, delivered in posted:
                await self._record_sent(row, sender, delivered)
        posted.clear()

    def _held(self, destination: str, lane: str) -> bool:
        """Whether the lane is waiting out a `Retry-After` now."""
        pace = self.paces.get((destination, lane))
        return pace is not None and self.monotonic() < pace.held_until

    def _waiting_lanes(self, destination: str, waiting: Callable[[Pace, float], bool]) -> list[str | None]:
        """The `OutboxRow.lane`s of the destination's rows whose lane is `waiting` now."""
        now = self.monotonic()
        return [
            row_lane
            for (name, row_lane), lane in self._lanes.items()
            if name == destination and (pace := self.paces.get((name, lane))) and waiting(pace, now)
        ]

    def _may_post(self, destination: str, lane: str) -> bool:
        """Whether a row may go to the lane now; a paced lane quiet for long enough is at full
        speed again."""
        pace = self.paces.get((destination, lane))
        if pace is None:
            return True
        now = self.monotonic()
        if pace.quiet(now):
            del self.paces[(destination, lane)]
            logger.info(
                "Slack: full speed again in %s after %.0f s paced (%d rate limits)",
                lane,
                now - pace.since,
                pace.limits,
            )
            return True
        if now < pace.next_post:
            return False
        pace.posting(now)
        return True

    def _rate_limited(self, destination: str, lane: str, retry_after: float) -> None:
        now = self.monotonic()
        self._lane_slots.setdefault((destination, lane), asyncio.Semaphore(1))
        pace = self.paces.get((destination, lane))
        if pace is None:
            pace = self.paces[(destination, lane)] = Pace(now)
            logger.info(
                "Slack: rate limited in %s; waiting %.0f s, then one post per %.2f s there until "
                "it has been quiet for %.0f s",
                lane,
                retry_after,
                PACED_INTERVAL,
                QUIET_PERIOD,
            )
        pace.limited(now, retry_after)

    async def _attempt(self, row: OutboxRow, sender: Sender, lane: str) -> Delivered | None:
        """Send the row; returns what came of it when it was delivered (not yet recorded), else
        records why not and returns None."""
        destination = self.destinations[sender.destination]
        self._sending.append(sender.destination)
        try:
            delivered = await sender.send(row)
        except RateLimited as e:
            destination.outage.recovered()  # Slack answers: only slower
            destination.backoff.reset()
            self._rate_limited(sender.destination, lane, e.retry_after)
            await self.store.outbox.retry_later(
                row.id, not_before=None, error=e.reason, started=row.started_at is not None
            )
            return None
        except Unavailable as e:
            destination.outage.failed(e)
            delay = max(destination.backoff.next_delay(), e.retry_after or 0.0)
            destination.paused_until = self.monotonic() + delay
            await self.store.outbox.retry_later(row.id, not_before=None, error=e.reason)  # with them all
            return None
        except TryLater as e:
            wait = self.message_backoff.delay(row.attempts + 1)
            logger.info("outbox row %d (%s) turned away for now; retrying in %.0f s", row.id, row.kind, wait)
            await self.store.outbox.retry_later(
                row.id, not_before=self.clock() + timedelta(seconds=wait), error=e.reason
            )
            return None
        except Refused as e:
            await self._fail(row, e.reason, sender)
            return None
        except (sqlite3.OperationalError, StorageError):
            raise  # the database itself: the loop waits and retries
        except Exception as e:
            # Error boundary: one message that cannot be built or sent for a reason of its own (a
            # malformed record, a bug) must fail alone and visibly, and let the others go.
            logger.error("outbox row %d (%s) failed: %s", row.id, row.kind, redacted(e))
            await self._fail(row, f"it could not be sent ({type(e).__name__})", sender)
            return None
        finally:
            self._sending.remove(sender.destination)
        destination.outage.recovered()
        destination.backoff.reset()
        return delivered

    async def _record_sent(self, row: OutboxRow, sender: Sender, delivered: Delivered) -> None:
        """Record one delivery and what follows from it (durable unless its sender would find it
        again)."""

        async def done(tx: Tx) -> None:
            await tx.outbox.mark_done(row.id, result=delivered.result, channel=delivered.channel)

        await self._record(
            row, "sent", done, lambda tx: sender.sent(tx, row, delivered), durable=not sender.finds_deliveries
        )

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
        *,
        durable: bool = True,
    ) -> None:
        """Record a message's fate and what follows from it in its case (an audit event, a note)
        in one transaction; if what follows fails, the fate is recorded alone. Not `durable`: a
        delivery its sender would find again if a power loss took the record back."""
        try:
            async with self.store.transaction(now=self.clock(), durable=durable) as tx:
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
            async with self.store.transaction(now=self.clock(), durable=durable) as tx:
                await fate(tx)

    async def drained(self) -> bool:
        """Whether nothing waits that could be sent now: rows held back by their backoff, or for a
        destination waiting out an outage or a lane its `Retry-After`, do not count; rows waiting
        for their turn in a paced lane do (for tests and benchmarks)."""
        for name, kinds in self._kinds.items():
            if self.destinations[name].paused:
                continue
            held = self._waiting_lanes(name, lambda pace, now: now < pace.held_until)
            if await self.store.outbox.due(now=self.clock(), kinds=kinds, held=held, limit=1):
                return False
        return True


_NAMES = {"slack": "Slack", "smtp": "SMTP server"}


def _chains(batch: list[tuple[OutboxRow, Sender, str]]) -> list[list[tuple[OutboxRow, Sender, str]]]:
    """A batch's rows in the chains that may be sent side by side, each in the batch's order:
    each case's Slack posts (its root before its thread, the thread in order; roots of cases
    sent side by side may reach the channel a few places out of order), and everything else
    (updates, the App Home, email) as one chain. A batch with an erase (which deletes a thread's
    replies) is one chain."""
    if any(row.kind == "erase" for row, _, _ in batch):
        return [batch]
    chains: dict[object, list[tuple[OutboxRow, Sender, str]]] = {}
    for item in batch:
        row, sender, _ = item
        key: object = "others"
        if row.kind in POSTS and sender.finds_deliveries and row.case_id is not None:
            key = ("case", row.case_id)
        chains.setdefault(key, []).append(item)
    return list(chains.values())
