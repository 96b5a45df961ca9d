"""A backlog and big messages through the mailbox watcher, against a real Dovecot: batches taken in
exactly once with the cursor, a batch that fails taken in one at a time, big attachments recorded
from the message's structure and never downloaded, a huge text body cut and flagged."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from email.message import EmailMessage
from pathlib import Path

import pytest

from bot.settings import Settings
from handlers.cases.intake import IncomingMessage, IntakeOutcome
from handlers.mail_in.by_parts import BIG_MESSAGE, TEXT_LIMIT, outline
from handlers.mail_in.parsing import parse_email, strip_attachments
from storage.store import Store
from tests.conftest import wait_until
from tests.support.dovecot import MailUser
from tests.support.processes import descendants
from tests.test_mailbox import request_email, watching


@pytest.fixture
def settings(mail_settings: Settings) -> Settings:
    """These tests watch a real mailbox on Dovecot."""
    return mail_settings


async def append_all(mailbox: MailUser, raws: list[bytes]) -> None:
    """Deliver many messages in one IMAP command (MULTIAPPEND)."""

    def deliver() -> None:
        client = mailbox.client()
        try:
            client.multiappend("INBOX", raws)
        finally:
            client.logout()

    await asyncio.to_thread(deliver)


async def whole(mailbox: MailUser, uid: int) -> bytes:
    """The message as the server holds it (CRLF line ends), fetched whole."""

    def fetch() -> bytes:
        client = mailbox.client()
        try:
            client.select_folder("INBOX", readonly=True)
            return bytes(client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"])
        finally:
            client.logout()

    return await asyncio.to_thread(fetch)


def request_with_attachments(size: int) -> bytes:
    m = EmailMessage()
    m["From"] = "Ana Lima <ana@example.org>"
    m["To"] = "privacy@imal.example"
    m["Subject"] = "Access request, my ID attached"
    m["Message-ID"] = "<big-attachment@example.org>"
    m.set_content("Hello, please send me a copy of my personal data.\nAna\n")
    m.add_alternative("<p>Hello, please send me a copy of my <b>personal data</b>.</p>", subtype="html")
    m.add_attachment(os.urandom(size), maintype="application", subtype="pdf", filename="id-card.pdf")
    forwarded = EmailMessage()
    forwarded["Subject"] = "an earlier email"
    forwarded.set_content("the earlier text")
    m.add_attachment(forwarded)
    m.add_attachment(b"\x89PNG" + os.urandom(3000), maintype="image", subtype="png", filename="photo.png")
    return m.as_bytes()


async def test_a_backlog_of_200_is_taken_in_in_batches_exactly_once_with_the_cursor(
    settings: Settings, store: Store, mailbox: MailUser
) -> None:
    await append_all(mailbox, [request_email(n) for n in range(200)])
    async with watching(settings, store) as (watcher, outcomes):
        await wait_until(lambda: len(outcomes) == 200, 60)
        assert watcher.reader is not None
        await wait_until(lambda: not watcher.reader.running, 10)  # stopped once the backlog is in
        assert watcher.reader.started == 1  # read in the worker process
        await asyncio.sleep(0.3)
    assert [o.action for o in outcomes] == ["opened_case"] * 200
    assert len({o.case_ref for o in outcomes}) == 200
    cursor = await store.cursors.get("INBOX")
    assert cursor is not None and cursor.last_uid == 200
    async with watching(settings, store) as (watcher, again):  # a restart takes in nothing twice
        await wait_until(watcher.idling.is_set, 10)
    assert again == []
    assert await store.mail.counts() == {"opened_case": 200}
    assert len(await store.cases.select()) == 200


async def test_a_batch_that_cannot_be_taken_in_at_once_is_taken_in_one_message_at_a_time(
    settings: Settings, store: Store, mailbox: MailUser
) -> None:
    await append_all(mailbox, [request_email(n) for n in range(5)])

    async def refused(messages: list[IncomingMessage], reads: object) -> list[IntakeOutcome]:
        raise RuntimeError("a bug in taking a batch in")

    async with watching(settings, store) as (watcher, outcomes):
        watcher.deliver_all = refused
        await wait_until(lambda: len(outcomes) == 5, 20)
    assert watcher.reader is not None and watcher.reader.started == 0  # a burst: read here
    assert [o.action for o in outcomes] == ["opened_case"] * 5
    cursor = await store.cursors.get("INBOX")
    assert cursor is not None and cursor.last_uid == 5


async def test_a_big_attachment_is_recorded_from_the_structure_and_never_downloaded(
    settings: Settings, store: Store, mailbox: MailUser
) -> None:
    raw = request_with_attachments(size=2 * BIG_MESSAGE)
    await append_all(mailbox, [raw])
    async with watching(settings, store) as (_, outcomes):
        await wait_until(lambda: outcomes, 20)
    assert outcomes[0].action == "opened_case"
    case = await store.cases.by_ref(outcomes[0].case_ref or "")
    assert case is not None and case.kind == "access"
    (email,) = await store.mail.of_case(case.id)
    names = [(a["filename"], a["content_type"]) for a in email.attachments]  # type: ignore[index]
    assert names == [
        ("id-card.pdf", "application/pdf"),
        ("attached message", "message/rfc822"),
        ("photo.png", "image/png"),
    ]
    assert abs(int(email.attachments[0]["size"]) - 2 * BIG_MESSAGE) < 0.01 * BIG_MESSAGE  # type: ignore[index]
    with sqlite3.connect(store.path) as db:  # the message's size on the server is recorded
        assert db.execute("SELECT size FROM emails WHERE id = ?", (email.id,)).fetchone()[0] > 2 * BIG_MESSAGE
    stored = await store.mail.raw(email.id)
    assert stored is not None and len(stored) < 5000
    assert b"X-Privacy-Desk-Removed: content not stored" in stored
    # what is read of it is what reading the whole message gives
    full = parse_email(await whole(mailbox, 1))
    again = parse_email(stored)
    assert (again.text, again.subject, again.from_addr, again.message_id) == (
        full.text,
        full.subject,
        full.from_addr,
        full.message_id,
    )
    assert email.body_text == full.text


async def test_a_huge_text_body_is_fetched_only_in_part_and_flagged(
    settings: Settings, store: Store, mailbox: MailUser
) -> None:
    m = EmailMessage()
    m["From"] = "bo@example.org"
    m["To"] = "privacy@imal.example"
    m["Subject"] = "Please delete my data"
    m.set_content(
        "Please delete my data.\n" + "".join(f"line {i} of a very long story\n" for i in range(120_000))
    )
    await append_all(mailbox, [m.as_bytes()])
    async with watching(settings, store) as (_, outcomes):
        await wait_until(lambda: outcomes, 20)
    case = await store.cases.by_ref(outcomes[0].case_ref or "")
    assert case is not None
    (email,) = await store.mail.of_case(case.id)
    stored = await store.mail.raw(email.id)
    assert stored is not None and TEXT_LIMIT // 2 < len(stored) <= TEXT_LIMIT + 2000
    assert any(p.startswith("body: text cut after") for p in email.problems)
    assert email.body_text.startswith("Please delete my data.")


def test_a_structure_that_cannot_be_read_in_parts_is_refused() -> None:
    """The watcher then fetches the message whole, alone."""
    text = (b"text", b"plain", (b"charset", b"utf-8"), None, None, b"7bit", 84, 3)
    assert outline(text).leaves()[0].path == "1"
    for unusable in (
        (),
        (b"text", b"plain"),
        ([text, text], b"mixed", None),
        [[text], b"mixed", (b"x", b"y")],
    ):
        with pytest.raises(ValueError):
            outline(unusable)


def test_a_stored_message_read_again_keeps_its_attachments_sizes() -> None:
    raw = request_with_attachments(size=50_000)
    stored = strip_attachments(raw)
    assert len(stored) < 3000
    before, after = parse_email(raw), parse_email(stored)
    assert [(a.filename, a.size) for a in after.attachments] == [
        (a.filename, a.size) for a in before.attachments
    ]


def _reader_workers() -> list[int]:
    """The pids of this process's children that are a reader's worker (multiprocessing's spawn)."""
    pids = []
    for pid in descendants(os.getpid()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"multiprocessing.spawn" in cmdline:
            pids.append(pid)
    return pids


async def test_a_reader_worker_killed_mid_backlog_loses_nothing_and_another_takes_over(
    settings: Settings, store: Store, mailbox: MailUser
) -> None:
    """The worker that reads a backlog is killed (as the OOM killer would): the batch it held is
    read in the bot's own process, the next batch starts a new worker, every message is taken
    in exactly once."""
    n = 600
    await append_all(mailbox, [request_email(i) for i in range(n)])
    async with watching(settings, store) as (watcher, outcomes):
        await wait_until(lambda: _reader_workers(), 30, every=0.005)
        await wait_until(lambda: outcomes, 30, every=0.005)
        for pid in _reader_workers():
            os.kill(pid, signal.SIGKILL)
        killed_at = len(outcomes)
        await wait_until(lambda: len(outcomes) == n, 120)
    assert killed_at < n, "the backlog was in before the worker could be killed"
    assert watcher.reader is not None and watcher.reader.started >= 2
    assert [o.action for o in outcomes] == ["opened_case"] * n
    assert await store.mail.counts() == {"opened_case": n}
    cursor = await store.cursors.get("INBOX")
    assert cursor is not None and cursor.last_uid == n
