"""Watching the privacy mailbox over IMAP, in a thread of its own.

imapclient is blocking and not thread-safe, so one dedicated thread owns the connection. It
hands new messages to the event loop a batch at a time (`take_in_all`, which commits the batch
and the cursor past its last message together) and waits for the commit before it moves on: the
cursor (UIDVALIDITY + last UID) therefore never runs ahead of what is stored. A batch that
cannot be taken in at once is taken in one message at a time, each with its own fallback.

- IDLE when the server offers it, renewed every `idle_renew_seconds` (at most 10 minutes);
  otherwise polling every `poll_seconds`. IDLE starts only after a search that found nothing
  new and was not answered with news of mail that came in meanwhile (`_announced`).
- `BODY.PEEK[]` and a read-only `EXAMINE`, so the mailbox's read state is left alone.
- Sizes first (RFC822.SIZE): small messages are fetched whole, up to `FETCH_BATCH_COUNT` or
  `FETCH_BATCH_BYTES` per round trip and batch; a message above `BIG_MESSAGE` alone and in parts
  (its structure, headers and text parts; attachments recorded from the structure, never
  downloaded: handlers/mail_in/by_parts.py), so one big message at most is held at a time.
- With a `reader` (bot/reader.py), a backlog is pipelined: while batch N is stored, batch N+1 is
  already being read (parsed and classified) in the reader's worker process, so at most two
  batches are held. Batch N+1 is stored only after batch N, so the cursor still moves in order.
- A UIDVALIDITY change re-syncs the folder from its first message; duplicates are skipped by
  Message-ID (synthetic ids are derived from the content).
- On the first start against a folder that already holds mail, messages that arrived more than
  `backfill_days` ago are recorded as historical and open no case.
- Connection loss: reconnect with exponential backoff and jitter (at most a minute apart), logged
  once per outage; every failed attempt and every success is told to `health` (the intake alarm).
- A database that cannot be written (a full disk): the message in hand is retried (at most
  `STORAGE_RETRY_CAP` seconds apart) and nothing after it is taken, so the cursor stays put;
  `on_storage` is told when writing fails and when it works again (the channel is told).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
import sqlite3
import ssl
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError
from imapclient.imapclient import SocketTimeout

from bot.backoff import Backoff, Outage
from bot.reader import MailReader
from bot.settings import ImapSettings
from core.clock import Clock, system_clock
from core.errors import MailboxError, StorageError, redacted, unwritable_storage
from handlers.cases.intake import IncomingMessage, IntakeOutcome
from handlers.cases.reading import Read
from handlers.jobs.intake_alarm import IntakeHealth
from handlers.mail_in.by_parts import (
    BIG_MESSAGE,
    TEXT_LIMIT,
    Section,
    assemble,
    outline,
    reads_as_text_header,
)
from storage.models import Cursor

__all__ = ["MailboxWatcher"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

#: at most this long between two attempts to store a message while the database cannot be written
STORAGE_RETRY_CAP = 30.0
FETCH_BATCH_BYTES = 4 * 1024 * 1024  # fetch (and take in) at most this much small mail at once
FETCH_BATCH_COUNT = 50
MIME_HEADERS_PER_FETCH = 200  # a big message's part headers are asked for this many at a time
#: From how many new messages on a sync a backlog is read in the reader's worker (fewer are read in
#: the bot's own process: starting the worker takes about half a second, which a burst of mail
#: would wait for).
READ_AHEAD_FROM = 200
IDLE_CHECK_SECONDS = 1.0  # how often the IDLE loop looks at the stop flag


class MailboxWatcher:
    """Delivers every message of the folder exactly once to `deliver`, until stopped.

    `deliver_all(messages, reads)`, `deliver(message)` and the cursor functions are coroutines run
    on `loop`; the watcher thread blocks on their result. A batch goes to `deliver_all` (when
    given; `reads` are the batch's reads by `reader`, or None: read them) and, if that raises for
    a reason other than the database, one message at a time to `deliver`.
    `fallback(message, error)` records a message whose normal intake raised (the message is stored
    raw and flagged, never dropped).
    """

    def __init__(
        self,
        settings: ImapSettings,
        *,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[[IncomingMessage], Awaitable[IntakeOutcome]],
        fallback: Callable[[IncomingMessage, BaseException], Awaitable[IntakeOutcome]],
        get_cursor: Callable[[str], Awaitable[Cursor | None]],
        reset_cursor: Callable[[str, int, int], Awaitable[None]],
        deliver_all: Callable[[list[IncomingMessage], list[Read] | None], Awaitable[list[IntakeOutcome]]]
        | None = None,
        reader: MailReader | None = None,
        on_delivered: Callable[[IntakeOutcome], None] | None = None,
        clock: Clock = system_clock,
        backoff: Backoff | None = None,
        token_provider: Callable[[], str] | None = None,
        health: IntakeHealth | None = None,
        on_health: Callable[[], None] = lambda: None,
        on_storage: Callable[[BaseException | None], None] = lambda error: None,
    ) -> None:
        self.settings = settings
        self.loop = loop
        self.deliver = deliver
        self.deliver_all = deliver_all
        self.reader = reader
        self.fallback = fallback
        self.get_cursor = get_cursor
        self.reset_cursor = reset_cursor
        self.on_delivered = on_delivered
        self.clock = clock
        self.backoff = backoff or Backoff(base=1.0, cap=60.0)
        self.token_provider = token_provider
        self.health = health or IntakeHealth(clock)
        self.on_health = on_health
        self.outage = Outage("IMAP mailbox", logger)
        self.on_storage = on_storage
        #: since when (time.monotonic()) the database cannot be written, if it cannot
        self.unwritable_since: float | None = None
        self._storage_backoff = Backoff(base=1.0, cap=STORAGE_RETRY_CAP)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self.idling = threading.Event()
        self.taken_in = 0
        self.idle_renewals = 0  # IDLE commands ended because they were due for renewal

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the watcher thread."""
        self._thread = threading.Thread(target=self._run, name="imap-watcher", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop after the batch in hand."""
        self._stop.set()

    async def stop(self, timeout: float = 20.0) -> None:
        """Stop and wait for the thread to finish (the batch in hand is finished first). A
        thread stuck in a connection attempt is left behind after `timeout` (it is a daemon)."""
        self.request_stop()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, timeout)
        if self.reader is not None:
            self.reader.release()

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested."""
        return self._stop.is_set()

    # --- thread side ------------------------------------------------------------------------------
    def _call(self, coro: Awaitable[T]) -> T:
        """Run a coroutine on the event loop and wait for its result (from the watcher thread)."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]
        return future.result()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self._connect() as client:
                    self._session(client)
            except (IMAPClientError, OSError, ssl.SSLError, MailboxError, EOFError) as e:
                self._failed(e)
            except Exception as e:  # e.g. the database went away: keep trying, never die silently
                self._failed(e)
                logger.error("mailbox watcher error: %s", redacted(e))
            finally:
                self.connected.clear()
                self.idling.clear()
            if not self._stop.is_set():
                self._stop.wait(self.backoff.next_delay())
        logger.info("mailbox watcher stopped")

    def _failed(self, error: BaseException) -> None:
        self.outage.failed(error)
        self.health.failed(error)
        self.on_health()

    def _connect(self) -> IMAPClient:
        return connect_imap(self.settings, token_provider=self.token_provider)

    def _session(self, client: IMAPClient) -> None:
        folder = self.settings.folder
        try:
            info = client.select_folder(folder, readonly=True)
        except IMAPClientError as e:
            raise MailboxError(f"cannot open folder {folder!r}") from e
        # only now is the mailbox really usable: a login that succeeds into a missing folder is
        # the same outage, not a recovery followed by a new failure
        self.outage.recovered()
        self.backoff.reset()
        was_down = self.health.snapshot().down_since is not None
        self.health.reached()
        if was_down:
            self.on_health()
        self.connected.set()
        uidvalidity = int(info[b"UIDVALIDITY"])
        uidnext = int(info.get(b"UIDNEXT") or 0) or (max(client.search(["ALL"]) or [0]) + 1)
        cursor = self._call(self.get_cursor(folder))
        if cursor is None:
            logger.info("first start on this folder: %d message(s) already there", uidnext - 1)
            self._call(self.reset_cursor(folder, uidvalidity, uidnext))
        elif cursor.uidvalidity != uidvalidity:
            logger.warning(
                "UIDVALIDITY changed (%d -> %d): re-syncing, duplicates skipped by Message-ID",
                cursor.uidvalidity,
                uidvalidity,
            )
            self._call(self.reset_cursor(folder, uidvalidity, uidnext))
        self._sync(client)
        if client.has_capability("IDLE"):
            self._idle_loop(client)
        else:
            self._poll_loop(client)

    def _sync(self, client: IMAPClient) -> None:
        """Take in every message above the cursor, in UID order."""
        folder = self.settings.folder
        while not self._stop.is_set():
            cursor = self._call(self.get_cursor(folder))
            assert cursor is not None
            _announced(client)  # what earlier commands announced, this search sees
            uids = sorted(
                u for u in client.search(["UID", f"{cursor.last_uid + 1}:*"]) if u > cursor.last_uid
            )
            if not uids:
                if _announced(client):
                    continue  # mail came in as it searched: not in its result, and IDLE won't tell
                if self.reader is not None:
                    self.reader.release()  # the backlog is in
                return
            held: tuple[list[IncomingMessage], Future[list[Read]] | None] | None = None
            ahead = len(uids) >= READ_AHEAD_FROM  # a backlog: worth starting the worker for
            for batch in self._batches(client, uids):
                if self._stop.is_set():
                    return
                if len(batch) == 1 and batch[0][1] > BIG_MESSAGE:
                    uid = batch[0][0]
                    item = self._fetch_big(client, uid)
                    data = {uid: item} if item is not None else {}
                else:
                    data = client.fetch([uid for uid, _ in batch], ["BODY.PEEK[]", "INTERNALDATE"])
                messages = [
                    self._message(cursor, uid, size, data[uid])
                    for uid, size in batch
                    if b"BODY[]" in data.get(uid, {})  # else expunged meanwhile
                ]
                del data  # the batch is held once, as messages
                reading = self._read_ahead(messages) if ahead else None
                if held is not None:
                    self._take_all(*held)  # the batch before, while this one is being read
                held = (messages, reading)
            if held is not None and not self._stop.is_set():
                self._take_all(*held)

    def _read_ahead(self, messages: list[IncomingMessage]) -> Future[list[Read]] | None:
        """Start reading a batch in the reader's worker (None: read it when it is taken in)."""
        if self.reader is None or self.deliver_all is None or len(messages) < 2:
            return None
        return self.reader.submit([m.raw for m in messages])

    def _batches(self, client: IMAPClient, uids: list[int]) -> list[list[tuple[int, int]]]:
        """`uids` with their sizes, in batches to fetch and take in together: small messages up to
        `FETCH_BATCH_COUNT` or `FETCH_BATCH_BYTES`, a message above `BIG_MESSAGE` alone."""
        sizes: dict[int, Any] = {}
        for i in range(0, len(uids), 500):
            chunk = uids[i : i + 500]
            sizes.update(client.fetch(chunk, ["RFC822.SIZE"]))
        batches: list[list[tuple[int, int]]] = []
        current: list[tuple[int, int]] = []
        total = 0
        for uid in uids:
            size = int((sizes.get(uid) or {}).get(b"RFC822.SIZE", 0))
            big = size > BIG_MESSAGE
            if current and (big or total + size > FETCH_BATCH_BYTES or len(current) >= FETCH_BATCH_COUNT):
                batches.append(current)
                current, total = [], 0
            if big:
                batches.append([(uid, size)])
                continue
            current.append((uid, size))
            total += size
        if current:
            batches.append(current)
        return batches

    def _fetch_big(self, client: IMAPClient, uid: int) -> dict[bytes, Any] | None:
        """A big message without its attachments' content (see handlers/mail_in/by_parts.py):
        `{b"BODY[]": raw, b"INTERNALDATE": ...}`, or None when it was expunged meanwhile. A
        structure that cannot be read in parts (or a server refusing a part) is fetched whole."""
        try:
            head = client.fetch([uid], ["BODYSTRUCTURE", "BODY.PEEK[HEADER]", "INTERNALDATE"]).get(uid)
            if not head or b"BODY[HEADER]" not in head:
                return None
            tree = outline(head[b"BODYSTRUCTURE"])
            header = bytes(head[b"BODY[HEADER]"])
            mime = self._part_headers(client, uid, tree)
            texts: dict[str, bytes] = {}
            for leaf in tree.leaves():
                if reads_as_text_header(mime.get(leaf.path, header)):
                    got = client.fetch([uid], [f"BODY.PEEK[{leaf.path}]<0.{TEXT_LIMIT}>"]).get(uid) or {}
                    texts[leaf.path] = bytes(got.get(f"BODY[{leaf.path}]<0>".encode()) or b"")
            return {
                b"BODY[]": assemble(header, tree, mime, texts),
                b"INTERNALDATE": head.get(b"INTERNALDATE"),
            }
        except IMAPClientAbortError:
            raise  # the connection: reconnect
        except (IMAPClientError, ValueError, TypeError) as e:
            logger.warning("uid %d cannot be fetched in parts (%s); fetching it whole", uid, type(e).__name__)
            return client.fetch([uid], ["BODY.PEEK[]", "INTERNALDATE"]).get(uid)

    def _part_headers(self, client: IMAPClient, uid: int, tree: Section) -> dict[str, bytes]:
        """The MIME headers of each part of a multipart message, by section."""
        if not tree.multipart:
            return {}
        sections = []
        stack = list(tree.parts)
        while stack:
            part = stack.pop(0)
            sections.append(part.path)
            stack[:0] = part.parts
        mime: dict[str, bytes] = {}
        for i in range(0, len(sections), MIME_HEADERS_PER_FETCH):
            chunk = sections[i : i + MIME_HEADERS_PER_FETCH]
            got = client.fetch([uid], [f"BODY.PEEK[{s}.MIME]" for s in chunk]).get(uid) or {}
            mime.update({s: bytes(got.get(f"BODY[{s}.MIME]".encode()) or b"\r\n") for s in chunk})
        return mime

    def _message(self, cursor: Cursor, uid: int, size: int, item: dict[bytes, Any]) -> IncomingMessage:
        raw = bytes(item[b"BODY[]"])
        arrived = item.get(b"INTERNALDATE")
        if not isinstance(arrived, datetime):
            arrived = self.clock()
        elif arrived.tzinfo is None:
            arrived = arrived.replace(tzinfo=UTC)
        historical = uid < cursor.backfill_before_uid and arrived < self.clock() - timedelta(
            days=self.settings.backfill_days
        )
        return IncomingMessage(
            raw=raw,
            folder=cursor.folder,
            uidvalidity=cursor.uidvalidity,
            uid=uid,
            arrived_at=arrived,
            historical=historical,
            size=size,
        )

    def _take_all(self, messages: list[IncomingMessage], reading: Future[list[Read]] | None = None) -> None:
        """Take a batch in at once (with its `reading` when it was read ahead); if that fails
        for a reason of the mail's own (not the database), one message at a time, so that only
        the offending one falls back."""
        if self.deliver_all is None or len(messages) < 2:
            for message in messages:
                if not self._take(message):
                    return  # stopped while the database could not be written
            return
        reads: list[Read] | None = None
        if reading is not None:
            try:
                reads = reading.result()
            except Exception as e:  # the worker's trouble, whatever it is: read it here instead
                logger.warning(
                    "uids %d-%d could not be read in the worker (%s); reading them here",
                    messages[0].uid,
                    messages[-1].uid,
                    type(e).__name__,
                )
                assert self.reader is not None
                self.reader.failed(e)
        try:
            outcomes = self._call(self.deliver_all(messages, reads))
        except Exception as e:
            if _is_storage_outage(e) and unwritable_storage(e) is None:
                raise  # the database (a lock held too long): reconnect, retry
            # the mail's own fault, or a database that cannot be written: one at a time, which
            # waits for the database with the first message in hand
            logger.warning(
                "a batch of %d could not be taken in at once (%s); one at a time",
                len(messages),
                type(e).__name__,
            )
            for message in messages:
                if not self._take(message):
                    return  # stopped while the database could not be written
            return
        for outcome in outcomes:
            self.taken_in += 1
            if self.on_delivered is not None:
                self.on_delivered(outcome)

    def _take(self, message: IncomingMessage) -> bool:
        """Take one message in; False if stopped while the database could not be written (the
        cursor did not move)."""
        outcome = self._stored(message)
        if outcome is None:
            return False
        self.taken_in += 1
        if self.on_delivered is not None:
            self.on_delivered(outcome)
        return True

    def _stored(self, message: IncomingMessage) -> IntakeOutcome | None:
        """Take the message in, waiting while the database cannot be written (a full disk): the
        message stays in hand and the cursor where it is, so nothing is skipped, and `on_storage`
        is told when writing fails and when it works again. None if stopped meanwhile."""
        while True:
            try:
                outcome = self._deliver_or_flag(message)
            except Exception as e:
                reason = unwritable_storage(e)
                if reason is None:
                    raise  # another database failure (a lock held too long): reconnect, retry
                if self.unwritable_since is None:
                    self.unwritable_since = time.monotonic()
                    logger.error(
                        "%s: not taking mail; uid %d and what follows wait in the mailbox",
                        reason,
                        message.uid,
                    )
                self.on_storage(e)
                if self._stop.wait(self._storage_backoff.next_delay()):
                    return None
                continue
            if self.unwritable_since is not None:
                logger.warning(
                    "the database can be written again after %.0f s: taking mail in again",
                    time.monotonic() - self.unwritable_since,
                )
                self.unwritable_since = None
                self.on_storage(None)
            self._storage_backoff.reset()
            return outcome

    def _deliver_or_flag(self, message: IncomingMessage) -> IntakeOutcome:
        # Error boundary: one bad email must not stop the mailbox. Its intake failed for a reason
        # of its own (not the database: that raises out of `fallback` too and we retry later),
        # so it is stored raw and flagged instead.
        try:
            return self._call(self.deliver(message))
        except Exception as e:
            if _is_storage_outage(e):
                raise
            logger.error(
                "uid %d could not be taken in normally; storing it raw and flagged: %s",
                message.uid,
                redacted(e),
            )
            return self._call(self.fallback(message, e))

    def _idle_loop(self, client: IMAPClient) -> None:
        renew = min(self.settings.idle_renew_seconds, 600)
        while not self._stop.is_set():
            client.idle()
            self.idling.set()
            started = time.monotonic()
            try:
                while not self._stop.is_set():
                    if time.monotonic() - started >= renew:
                        self.idle_renewals += 1
                        break
                    t0 = time.monotonic()
                    responses = client.idle_check(timeout=IDLE_CHECK_SECONDS)
                    if any(_is_news(r) for r in responses):
                        break
                    if not responses and time.monotonic() - t0 < IDLE_CHECK_SECONDS / 4:
                        break  # readable but nothing read: the connection was closed (EOF)
            finally:
                self.idling.clear()
            client.idle_done()  # raises on a dead connection -> reconnect
            self._sync(client)

    def _poll_loop(self, client: IMAPClient) -> None:
        while not self._stop.wait(self.settings.poll_seconds):
            client.noop()
            self._sync(client)


def _announced(client: IMAPClient) -> bool:
    """Whether the server announced new mail (an untagged EXISTS) since this was last asked.

    A server announces mail that arrived during a command at the end of that command's response:
    a SEARCH announces it without finding it (the search ran on the mailbox as it was), and IDLE
    started afterwards announces only what comes later. Such mail would wait for the next one, or
    for IDLE's renewal. imapclient keeps those announcements in imaplib's `untagged_responses`;
    `response()` is imaplib's documented way to take them (and forget them)."""
    _, data = client._imap.response("EXISTS")
    return data != [None]


def _is_news(response: Any) -> bool:
    """EXISTS/EXPUNGE/FETCH or BYE in an IDLE response ("OK Still here" is not news)."""
    if not isinstance(response, tuple) or len(response) < 2:
        return False
    if response[0] == b"BYE":
        return True
    return response[1] in (b"EXISTS", b"EXPUNGE", b"RECENT", b"FETCH")


def _is_storage_outage(error: BaseException) -> bool:
    return isinstance(error, (sqlite3.OperationalError, StorageError))


def connect_imap(s: ImapSettings, *, token_provider: Callable[[], str] | None = None) -> IMAPClient:
    """A logged-in IMAP client (blocking): TLS as IMAP_TLS says, LOGIN or XOAUTH2 as IMAP_AUTH
    says (the token from `token_provider`, else `IMAP_OAUTH2_TOKEN_COMMAND`, else IMAP_PASSWORD)."""
    timeout = SocketTimeout(connect=15.0, read=float(s.timeout_seconds))
    context = ssl.create_default_context()
    if s.tls == "ssl":
        client = IMAPClient(s.host, port=s.port, ssl=True, ssl_context=context, timeout=timeout)
    else:
        client = IMAPClient(s.host, port=s.port, ssl=False, timeout=timeout)
        if s.tls == "starttls":
            try:
                client.starttls(context)
            except BaseException:
                _close(client)
                raise
    try:
        client.normalise_times = False  # INTERNALDATE as aware datetimes
        if s.auth == "oauth2":
            if token_provider is not None:
                token = token_provider()
            elif s.token_command:
                token = command_token(s.token_command)
            else:
                token = s.password.reveal()
            client.oauth2_login(s.username, token)
        else:
            client.login(s.username, s.password.reveal())
    except BaseException:
        _close(client)
        raise
    return client


def probe_imap(s: ImapSettings) -> str:
    """Connect, log in and open the folder once, then leave (blocking; for the start of `run`).
    Returns how the folder will be watched ("IDLE" or "polling every N s"). Raises what the
    connection raised, or `MailboxError` when the folder cannot be opened."""
    with connect_imap(s) as client:
        try:
            client.select_folder(s.folder, readonly=True)
        except IMAPClientError as e:
            raise MailboxError(f"cannot open folder {s.folder!r}") from e
        idle = client.has_capability("IDLE")
    return "IDLE" if idle else f"polling every {s.poll_seconds} s"


def command_token(command: str, *, timeout: float = 30.0) -> str:
    """A fresh OAuth2 access token: the last line `command` prints (`IMAP_OAUTH2_TOKEN_COMMAND`,
    run without a shell at every connection, so an expired token is replaced). Raises
    `MailboxError` (an outage: retried) when it fails; its output is never logged."""
    try:
        done = subprocess.run(
            shlex.split(command), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        raise MailboxError(f"IMAP_OAUTH2_TOKEN_COMMAND could not be run ({type(e).__name__})") from None
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise MailboxError(f"IMAP_OAUTH2_TOKEN_COMMAND printed no token (exit {done.returncode})")
    return lines[-1].strip()


def _close(client: IMAPClient) -> None:
    with contextlib.suppress(OSError, IMAPClientError):
        client.shutdown()
