"""The store: the database behind a small async interface, one repository per aggregate.

    store = await Store.open(path)                 # or: async with await Store.open(path) as store
    async with store.transaction(now=now) as tx:   # one atomic change
        case = await tx.cases.get(case_id)
        event = await tx.audit.append(case_id=case.id, actor=user, action="case.claimed", ...)
        await tx.outbox.post_note(case.id, event)
    await store.cases.by_ref("PRIV-2026-0042")     # one statement, outside a transaction
    await store.read.cases.select(statuses=...)    # long reads: the read-only connection

Aggregates: `cases` (facts, personal data, free texts, checklists), `mail` (received and written
emails), `corrections` (staff's "Change type", kept as labelled examples), `outbox`, `audit`,
`cursors` (the mailbox), `jobs` (scheduled job runs), `notices`
(scheduled messages decided), `retention` (erasing closed cases' personal data), and three read
models: `overview` (case listings), `stats` (the figures of summaries and reports) and `register`
(the register of requests and case histories).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from core.clock import Clock, system_clock
from storage.audit import Audit
from storage.cases import Cases
from storage.corrections import Corrections
from storage.cursor import Cursors
from storage.db import Database, Session
from storage.jobs import JobRuns
from storage.mail import Mail
from storage.notices import Notices
from storage.outbox import Outbox
from storage.overview import Overview
from storage.register import Register
from storage.retention import Retention
from storage.stats import Stats

__all__ = ["Repositories", "Store", "Tx"]

R = TypeVar("R")


class Repositories:
    """Every aggregate's repository on one session."""

    def __init__(self, session: Session, clock: Clock) -> None:
        self.cases = Cases(session, clock)
        self.mail = Mail(session, clock)
        self.corrections = Corrections(session, clock, self.mail)
        self.outbox = Outbox(session, clock)
        self.audit = Audit(session, clock)
        self.cursors = Cursors(session, clock)
        self.jobs = JobRuns(session, clock)
        self.notices = Notices(session, clock)
        self.overview = Overview(session, clock)
        self.stats = Stats(session, clock)
        self.register = Register(session, clock)
        self.retention = Retention(session)


class Tx(Repositories):
    """The repositories inside one transaction; `now` is the instant it records."""

    def __init__(self, session: Session, now: datetime) -> None:
        super().__init__(session, lambda: now)
        self.now = now


class Store(Repositories):
    """The database: `store = await Store.open(path)`."""

    def __init__(self, db: Database, *, clock: Clock = system_clock) -> None:
        super().__init__(db.session, clock)
        self._db = db
        self._clock = clock
        #: the same repositories on the read-only connection, for long reads
        self.read = Repositories(db.reader, clock)

    @classmethod
    async def open(cls, path: Path | str, *, clock: Clock = system_clock) -> Store:
        """Open (creating with mode 0600) and migrate the database at `path`."""
        return cls(await Database.open(path), clock=clock)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._db.path

    @property
    async def schema_version(self) -> int:
        """The applied migration number."""
        return await self._db.schema_version

    async def close(self) -> None:
        """Close the connections (waits for the statement in progress)."""
        await self._db.close()

    async def compact(self, *, vacuum_ratio: float = 0.25) -> bool:
        """After an erasure: copy the WAL into the file and truncate it, and VACUUM when at least
        `vacuum_ratio` of the file is free pages; returns whether it vacuumed."""
        return await self._db.compact(vacuum_ratio=vacuum_ratio)

    async def backup(self, target: Path) -> None:
        """A consistent copy of the database at `target` (SQLite's online backup), mode 0600."""
        await self._db.backup(target)

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def transaction(self, *, now: datetime | None = None, durable: bool = True) -> AsyncIterator[Tx]:
        """One atomic change, recorded at `now` (the store's clock by default): commits when the
        block ends, rolls back if it raises. `durable=False` when a power loss taking it back is
        harmless (storage.db says when)."""
        async with self._db.transaction(durable=durable) as session:
            yield Tx(session, now or self._clock())

    async def in_thread(
        self,
        body: Callable[[Tx], Coroutine[Any, Any, R]],
        *,
        now: datetime | None = None,
        durable: bool = True,
    ) -> R:
        """`await body(tx)` as one transaction, run in the database's own thread (for a batch of
        hundreds of statements: storage.db `Database.in_thread`); `body` awaits nothing but `tx`."""
        instant = now or self._clock()
        return await self._db.in_thread(lambda session: body(Tx(session, instant)), durable=durable)

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Repositories]:
        """Several reads on the read-only connection that see one consistent state."""
        async with self._db.snapshot() as session:
            yield Repositories(session, self._clock)
