"""The SQLite file: created private, migrated, and reached through two connections.

- the **writer**: one `aiosqlite` connection (its own thread, so no sqlite call blocks the event
  loop); an `asyncio.Lock` keeps transactions of different tasks from interleaving on it;
- the **reader**: a second, read-only connection for long reads (reports, digests, listings), so
  they never wait for — or hold up — a Slack listener's transaction (WAL lets readers and the
  writer work at once).

Both are wrapped in a `Session`: `one`, `all` and `run` for one statement each. Instants are stored
as ISO-8601 UTC strings, calendar dates as `YYYY-MM-DD`.

Durability by need. A commit is durable (`synchronous = FULL`: the WAL is synced before COMMIT
returns) unless its transaction says it need not be (`transaction(durable=False)`: `NORMAL`, the
WAL synced only at checkpoints). A power loss (not a crash of the process: the OS has the pages)
can then take back the last non-durable commits, and only those made since the last sync: the WAL
is written in order and replayed in order up to its first incomplete frame, so what is lost is
always the latest commits, never one in the middle, and a durable commit, syncing the WAL, makes
every commit before it durable too. A transaction may be non-durable when losing it is the same as
never having made it, because nothing outside the database was done on its strength before a
later durable commit:

- an intake batch with its cursor: lost, the cursor is back before the batch and the mail is
  fetched again; and before anything is sent about its cases (an acknowledgement, a root in
  Slack), the outbox's "started" mark is committed durably, which makes the batch durable too;
- the record that a Slack message was posted: lost, the row still has its durable "started" mark,
  so the next attempt looks for the message in Slack before posting and finds it.

Staff's actions, answered to a person, and the "started" marks themselves are durable. Single
statements outside a transaction (the outbox's bookkeeping: a retry's time, a deleted reply) are
at least `NORMAL`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext, suppress
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiosqlite

from core.errors import StorageError
from storage.migrations import LATEST, apply_migrations

__all__ = ["Database", "Session", "dumps", "iso", "json_tuple", "parse_date", "parse_instant", "record"]

logger = logging.getLogger(__name__)


def iso(instant: datetime) -> str:
    """An aware instant as an ISO-8601 UTC string (the storage format)."""
    if instant.tzinfo is None:
        raise ValueError("instant must be timezone-aware")
    return instant.astimezone(UTC).isoformat(timespec="seconds")


def parse_instant(value: str | None) -> datetime | None:
    """The inverse of `iso` (None stays None)."""
    return datetime.fromisoformat(value) if value else None


def parse_date(value: str | None) -> date | None:
    """A stored calendar date (None stays None)."""
    return date.fromisoformat(value) if value else None


def json_tuple(value: str | None) -> tuple[Any, ...]:
    """A stored JSON list as a tuple."""
    return tuple(json.loads(value)) if value else ()


def dumps(value: object) -> str:
    """Compact JSON for a column (lists are stored as JSON arrays)."""
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


R = TypeVar("R")

_FULL, _NORMAL = "FULL", "NORMAL"

#: How a column's stored value becomes a record field's value, by the field's declared type.
_READERS: dict[str, Callable[[Any], object]] = {
    "datetime": datetime.fromisoformat,
    "datetime | None": parse_instant,
    "date": date.fromisoformat,
    "date | None": parse_date,
    "bool": bool,
    "bool | None": lambda v: None if v is None else bool(v),
    "tuple[str, ...]": json_tuple,
    "tuple[dict[str, object], ...]": json_tuple,
    "dict[str, object] | None": lambda v: json.loads(v) if v else None,
}


@functools.cache
def _fields(cls: Any) -> tuple[tuple[str, Callable[[Any], object] | None, object], ...]:
    """Each field of a record class: its name, how to read its column, and its default."""
    out = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        out.append((f.name, _READERS.get(str(f.type)), default))
    return tuple(out)


def record(cls: type[R], row: sqlite3.Row) -> R:
    """A row as the record `cls` (a dataclass of storage.models): each field from the column of
    its name, read by the field's declared type; NULL (an erased or absent joined column) gives the
    field's default."""
    columns = set(row.keys())
    values: dict[str, object] = {}
    for name, read, default in _fields(cls):  # type: ignore[arg-type]  # classes are hashable
        value = row[name] if name in columns else None
        values[name] = default if value is None else read(value) if read is not None else value
    return cls(**values)


class _Connection(Protocol):
    """What a `Session` uses of a connection: aiosqlite's, or `_Direct`."""

    @property
    def total_changes(self) -> int: ...

    async def execute_fetchall(self, sql: str, parameters: Sequence[object]) -> Any: ...

    async def execute_insert(self, sql: str, parameters: Sequence[object]) -> Any: ...


class _Direct:
    """The writer's own sqlite3 connection as a `Session` uses it, called in the writer's thread
    itself: each statement runs at once, and a coroutine of statements on it never suspends (see
    `Database.in_thread`). Its results are aiosqlite's."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def total_changes(self) -> int:
        return self._conn.total_changes

    async def execute_fetchall(self, sql: str, parameters: Sequence[object]) -> list[sqlite3.Row]:
        return self._conn.execute(sql, parameters).fetchall()

    async def execute_insert(self, sql: str, parameters: Sequence[object]) -> sqlite3.Row | None:
        cursor = self._conn.execute(sql, parameters)
        # as aiosqlite does: the connection's last rowid, whatever the statement was
        cursor.execute("SELECT last_insert_rowid()")
        row: sqlite3.Row | None = cursor.fetchone()
        return row


def _drive(coroutine: Coroutine[Any, Any, R]) -> R:
    """Run a coroutine that never suspends to its end, here and now."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError(
        "a transaction run in the database's thread waited for something else than the database"
    )


class Session:
    """Statements on one connection. With a lock, each statement takes it (for use outside a
    transaction); without, the caller already holds it (inside `Database.transaction` or
    `Database.in_thread`)."""

    def __init__(self, conn: _Connection, lock: asyncio.Lock | None = None) -> None:
        self._conn = conn
        self._lock = lock

    @asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        if self._lock is None:
            yield
        else:
            async with self._lock:
                yield

    async def one(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Row | None:
        """The first row of a query, or None."""
        rows = await self.all(sql, params)
        return rows[0] if rows else None

    async def all(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        """Every row of a query (one trip to the connection's thread, not three: a backlog of
        thousands of messages makes tens of thousands of these)."""
        async with self._locked():
            return list(await self._conn.execute_fetchall(sql, params))

    async def fetch(self, cls: type[R], sql: str, params: Sequence[object] = ()) -> R | None:
        """The first row of a query as a record of `cls`, or None."""
        row = await self.one(sql, params)
        return record(cls, row) if row is not None else None

    async def fetch_all(self, cls: type[R], sql: str, params: Sequence[object] = ()) -> list[R]:
        """Every row of a query as records of `cls`."""
        return [record(cls, row) for row in await self.all(sql, params)]

    async def run(self, sql: str, params: Sequence[object] = ()) -> tuple[int, int]:
        """Execute one statement; returns (rows changed, id of the last inserted row). One trip
        to the connection's thread: the rows changed are the connection's change count before
        and after (nothing else runs on it meanwhile: the lock, or the transaction, is held)."""
        async with self._locked():
            before = self._conn.total_changes
            row = await self._conn.execute_insert(sql, params)
            return self._conn.total_changes - before, int(row[0]) if row else 0


class Database:
    """`db = await Database.open(path)`: the file created with mode 0600 and migrated."""

    def __init__(self, path: Path, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()
        #: the writer's `synchronous` setting now (set before a transaction that needs another)
        self._synchronous: str | None = _NORMAL
        #: one statement at a time on the writer, outside transactions
        self.session = Session(writer, self._lock)
        #: the read-only connection, one statement at a time
        self.reader = Session(reader, self._read_lock)

    @classmethod
    async def open(cls, path: Path | str) -> Database:
        """Open (creating with mode 0600) and migrate the database at `path`.

        Raises `StorageError` when the file cannot be created or used (a folder that is a file,
        no permission, a database written by a newer program).
        """
        path = Path(path)
        try:
            await asyncio.to_thread(_prepare_file, path)
            version = await asyncio.to_thread(apply_migrations, path)
        except sqlite3.DatabaseError as e:
            raise StorageError(f"cannot use the database file: {e}") from None
        if version:
            logger.info("database migrated to schema version %d", version)
        writer = await _connect(path, readonly=False)
        try:
            reader = await _connect(path, readonly=True)
        except BaseException:
            await writer.close()
            raise
        return cls(path, writer, reader)

    async def close(self) -> None:
        """Close both connections (waits for the statement in progress)."""
        try:
            await self._reader.close()
        finally:
            await self._writer.close()

    @property
    async def schema_version(self) -> int:
        """The applied migration number."""
        row = await self.session.one("PRAGMA user_version")
        return int(row[0]) if row else 0

    async def compact(self, *, vacuum_ratio: float) -> bool:
        """Checkpoint the WAL into the file and truncate it (what it held of erased rows is gone),
        and VACUUM when much of the file is free; returns whether it vacuumed."""
        async with self._lock:
            await self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            pages = await (await self._writer.execute("PRAGMA page_count")).fetchone()
            free = await (await self._writer.execute("PRAGMA freelist_count")).fetchone()
            vacuum = bool(pages and free and pages[0] and free[0] / pages[0] >= vacuum_ratio)
            if vacuum:
                await self._writer.execute("VACUUM")
                await self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return vacuum

    async def backup(self, target: Path) -> None:
        """A consistent copy at `target` (see `backup_file`)."""
        await asyncio.to_thread(backup_file, self.path, target)

    @asynccontextmanager
    async def transaction(self, *, durable: bool = True) -> AsyncIterator[Session]:
        """One atomic change: commits when the block ends, rolls back if it raises. Durable (the
        commit survives a power loss once it returns) unless `durable=False`: see the module's
        docstring for when that is enough."""
        async with self._lock:
            await self._set_synchronous(durable)
            async with _within(self._writer, None, "BEGIN IMMEDIATE", commit=True) as session:
                yield session

    async def in_thread(
        self, body: Callable[[Session], Coroutine[Any, Any, R]], *, durable: bool = True
    ) -> R:
        """`transaction` for a body of many statements: `body(session)` runs as one transaction
        in the writer's own thread, each statement called there directly, so that the hundreds of
        statements of a batch cost no trip each between the event loop and that thread. The body
        must await nothing but the session's statements (else: RuntimeError, rolled back).

        A cancellation of the caller does not stop the body once it has started: it commits or
        rolls back as it would have (the writer's thread runs one thing at a time, so nothing
        else reaches the connection meanwhile)."""
        async with self._lock:
            await self._set_synchronous(durable)
            writer = self._writer

            def run() -> R:
                conn = writer._conn  # aiosqlite's sqlite3 connection, in aiosqlite's thread
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = _drive(body(Session(_Direct(conn))))
                    conn.commit()
                except BaseException:
                    with suppress(sqlite3.Error):
                        conn.rollback()
                    raise
                return result

            return await writer._execute(run)  # aiosqlite's queue to its thread: one trip

    async def _set_synchronous(self, durable: bool) -> None:
        """The writer's `synchronous` for the next transaction (the lock held, none in progress)."""
        synchronous = _FULL if durable else _NORMAL
        if self._synchronous != synchronous:
            self._synchronous = None  # unknown until it is done (a cancellation meanwhile)
            await self._writer.execute(f"PRAGMA synchronous = {synchronous}")
            self._synchronous = synchronous

    @property
    async def synchronous(self) -> int:
        """The writer's `synchronous` setting now (1: NORMAL, 2: FULL)."""
        row = await self.session.one("PRAGMA synchronous")
        return int(row[0]) if row else 0

    def snapshot(self) -> AbstractAsyncContextManager[Session]:
        """Several reads that see one consistent state, on the read-only connection."""
        return _within(self._reader, self._read_lock, "BEGIN", commit=False)


@asynccontextmanager
async def _within(
    conn: aiosqlite.Connection, lock: asyncio.Lock | None, begin: str, *, commit: bool
) -> AsyncIterator[Session]:
    """A transaction on `conn`, holding `lock` (None: the caller holds it): committed at the end
    of the block when `commit`, else (and whenever the block raises) rolled back."""
    async with lock or nullcontext():
        try:
            await conn.execute(begin)
            yield Session(conn)
            await (conn.commit() if commit else conn.rollback())
        except BaseException:
            # whatever failed (the block, the commit itself, a cancellation while BEGIN ran), the
            # connection must not stay inside the transaction: aiosqlite runs this after the BEGIN
            with suppress(sqlite3.Error):
                await conn.rollback()
            raise


def _prepare_file(path: Path) -> None:
    """Create the file with mode 0600 (and its folder); tighten a too-open file or leftovers."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    except OSError as e:
        raise StorageError(
            f"cannot create the database file {path}: {e.strerror or type(e).__name__}"
        ) from None
    os.close(fd)
    # SQLite gives -wal/-shm files the main file's mode, but leftovers keep their own
    for file in (path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))):
        if file.exists() and file.stat().st_mode & 0o077:
            logger.warning("%s had mode %o; tightening to 600", file.name, file.stat().st_mode & 0o777)
            os.chmod(file, 0o600)


async def _connect(path: Path, *, readonly: bool) -> aiosqlite.Connection:
    if readonly:
        conn = await aiosqlite.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    else:
        conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        if readonly:
            await conn.execute("PRAGMA query_only = ON")
        else:
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute(f"PRAGMA synchronous = {_NORMAL}")  # FULL for durable transactions
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute("PRAGMA busy_timeout = 10000")
        # what is deleted or replaced is overwritten in the file, not only unlinked (the data is
        # personal: retention must really erase it); not every SQLite build does this by default
        await conn.execute("PRAGMA secure_delete = ON")
        row = await (await conn.execute("PRAGMA user_version")).fetchone()
        if row is None or int(row[0]) != LATEST:
            raise StorageError("the database schema changed while it was being opened")
    except BaseException:
        await conn.close()
        raise
    return conn


def backup_file(source: Path, target: Path) -> None:
    """A consistent copy of the database `source` at `target` with SQLite's online backup API,
    safe while another process writes; `target` is created with mode 0600 (an existing file is
    replaced) and holds no WAL of its own. Blocking."""
    fd = os.open(target, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    os.close(fd)
    os.chmod(target, 0o600)
    for leftover in (target.with_name(target.name + s) for s in ("-wal", "-shm", "-journal")):
        leftover.unlink(missing_ok=True)
    origin = sqlite3.connect(source)
    copy_to = sqlite3.connect(target)
    try:
        origin.execute("PRAGMA busy_timeout = 10000")
        origin.backup(copy_to)  # in one step: one consistent snapshot (a WAL reader blocks no writer)
        copy_to.execute("PRAGMA journal_mode = DELETE")
    finally:
        copy_to.close()
        origin.close()
