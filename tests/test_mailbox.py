"""The mailbox watcher against a real Dovecot: IDLE, polling, cursor, UIDVALIDITY, outages, TLS, backfill."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from imapclient import IMAPClient

from bot.backoff import Backoff
from bot.mailbox import MailboxWatcher, connect_imap
from bot.runtime import build_watcher
from bot.settings import Settings
from handlers.cases.intake import IntakeOutcome
from storage.store import Store
from tests.conftest import CHANNEL, FIXTURES, wait_until
from tests.support.dovecot import Dovecot, MailUser
from tests.support.slack_standin import SlackStandIn


@pytest.fixture
def settings(mail_settings: Settings) -> Settings:
    """These tests watch a real mailbox on Dovecot."""
    return mail_settings


def request_email(n: int, *, subject: str = "Please delete my data", message_id: str | None = None) -> bytes:
    """A small, ordinary erasure request."""
    m = EmailMessage()
    m["From"] = f"Person {n} <person{n}@example.org>"
    m["To"] = "privacy@imal.example"
    m["Subject"] = f"{subject} ({n})"
    m["Message-ID"] = message_id or make_msgid(idstring=f"req{n}", domain="example.org")
    m.set_content(f"Hello, please erase the personal data you hold about me. Person {n}")
    return m.as_bytes()


@asynccontextmanager
async def watching(
    settings: Settings, store: Store
) -> AsyncIterator[tuple[MailboxWatcher, list[IntakeOutcome]]]:
    """A running watcher (fast backoff for tests) and the outcomes it delivered so far."""
    outcomes: list[IntakeOutcome] = []
    watcher = build_watcher(settings, store, loop=asyncio.get_running_loop(), on_delivered=outcomes.append)
    watcher.backoff = Backoff(base=0.05, cap=0.3)
    watcher.start()
    try:
        yield watcher, outcomes
    finally:
        await watcher.stop()


def with_imap(settings: Settings, **changes: object) -> Settings:
    return dataclasses.replace(settings, imap=dataclasses.replace(settings.imap, **changes))  # type: ignore[arg-type]


async def append(mailbox: MailUser, raw: bytes, **kw: object) -> None:
    await asyncio.to_thread(mailbox.append, raw, **kw)


async def test_idle_takes_new_mail_in_within_seconds(
    settings: Settings, store: Store, mailbox: MailUser
) -> None:
    async with watching(settings, store) as (watcher, outcomes):
        await wait_until(watcher.idling.is_set, 10)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await append(mailbox, request_email(1))
        await wait_until(lambda: outcomes, 10)
        assert loop.time() - started < 3
    assert [o.action for o in outcomes] == ["opened_case"]
    assert outcomes[0].case_ref is not None and outcomes[0].case_ref.startswith("PRIV-")
    cursor = await store.cursors.get("INBOX")
    assert cursor is not None and cursor.last_uid == 1


async def test_mail_stays_unread(settings: Settings, store: Store, mailbox: MailUser) -> None:
    await append(mailbox, request_email(1))
    await append(mailbox, request_email(2))
    async with watching(settings, store) as (_, outcomes):
        await wait_until(lambda: len(outcomes) == 2, 10)
    client = await asyncio.to_thread(mailbox.client)
    try:
        await asyncio.to_thread(client.select_folder, "INBOX")
        unseen = await asyncio.to_thread(client.search, ["UNSEEN"])
    finally:
        await asyncio.to_thread(client.logout)
    assert sorted(unseen) == [1, 2]


async def test_polls_when_the_server_has_no_idle(settings: Settings, store: Store, dovecot: Dovecot) -> None:
    mailbox = dovecot.new_user(idle=False)
    settings = with_imap(
        settings,
        username=mailbox.name,
        password=settings.imap.password.__class__(mailbox.password),
        poll_seconds=1,
    )
    async with watching(settings, store) as (watcher, outcomes):
        await wait_until(watcher.connected.is_set, 10)
        await asyncio.sleep(0.2)
        assert not watcher.idling.is_set()
        await append(mailbox, request_email(1))
        await wait_until(lambda: outcomes, 10)
    assert outcomes[0].action == "opened_case"


async def test_restart_takes_in_only_what_is_new(settings: Settings, store: Store, mailbox: MailUser) -> None:
    for n in range(3):
        await append(mailbox, request_email(n))
    async with watching(settings, store) as (_, first):
        await wait_until(lambda: len(first) == 3, 10)
    for n in range(3, 5):
        await append(mailbox, request_email(n))
    async with watching(settings, store) as (_, second):
        await wait_until(lambda: len(second) == 2, 10)
        await asyncio.sleep(0.3)
    assert len(second) == 2
    assert await store.mail.counts() == {"opened_case": 5}
    assert len({c.ref for c in await store.cases.select()}) == 5


async def test_uidvalidity_change_resyncs_without_duplicates(
    settings: Settings, store: Store, mailbox: MailUser
) -> None:
    settings = with_imap(settings, folder="Privacy")
    raws = [request_email(n) for n in range(3)]
    client = await asyncio.to_thread(mailbox.client)
    await asyncio.to_thread(client.create_folder, "Privacy")
    for raw in raws:
        await asyncio.to_thread(client.append, "Privacy", raw)
    async with watching(settings, store) as (_, first):
        await wait_until(lambda: len(first) == 3, 10)
    before = await store.cursors.get("Privacy")
    # the folder is rebuilt (as after a server migration): same messages, new UIDVALIDITY
    await asyncio.to_thread(client.delete_folder, "Privacy")
    await asyncio.sleep(1.1)  # Dovecot derives UIDVALIDITY from the clock
    await asyncio.to_thread(client.create_folder, "Privacy")
    for raw in [*raws, request_email(3)]:
        await asyncio.to_thread(client.append, "Privacy", raw)
    await asyncio.to_thread(client.logout)
    async with watching(settings, store) as (_, second):
        await wait_until(lambda: len(second) == 4, 10)
    after = await store.cursors.get("Privacy")
    assert before is not None and after is not None and after.uidvalidity != before.uidvalidity
    assert [o.action for o in second] == ["duplicate", "duplicate", "duplicate", "opened_case"]
    assert await store.mail.counts() == {"opened_case": 4}


async def test_message_without_message_id_is_not_duplicated_on_resync(
    settings: Settings, store: Store, mailbox: MailUser
) -> None:
    raw = (FIXTURES / "emails" / "no-message-id.eml").read_bytes()
    await append(mailbox, raw)
    await append(mailbox, raw)  # the same bytes delivered twice: one case
    async with watching(settings, store) as (_, outcomes):
        await wait_until(lambda: len(outcomes) == 2, 10)
    assert [o.action for o in outcomes] == ["opened_case", "duplicate"]


async def test_first_start_backfills_only_recent_mail(
    settings: Settings, store: Store, mailbox: MailUser
) -> None:
    old = datetime.now(UTC) - timedelta(days=400)
    recent = datetime.now(UTC) - timedelta(days=3)
    await append(mailbox, request_email(1, subject="Old request"), msg_time=old)
    await append(mailbox, request_email(2, subject="Recent request"), msg_time=recent)
    async with watching(settings, store) as (_, outcomes):
        await wait_until(lambda: len(outcomes) == 2, 10)
        # after the first start, even mail with an old INTERNALDATE is new mail
        await append(mailbox, request_email(3, subject="Moved here today"), msg_time=old)
        await wait_until(lambda: len(outcomes) == 3, 10)
    assert [o.action for o in outcomes] == ["historical", "opened_case", "opened_case"]
    cases = await store.cases.select()
    assert [c.subject for c in cases] == ["Recent request (2)", "Moved here today (3)"]
    assert cases[0].received_at == recent.replace(microsecond=0)  # INTERNALDATE, not the Date header


async def test_unreadable_message_is_stored_and_flagged(
    settings: Settings, store: Store, mailbox: MailUser
) -> None:
    await append(mailbox, (FIXTURES / "emails" / "outlook-binary.msg").read_bytes())
    await append(mailbox, request_email(1))
    async with watching(settings, store) as (_, outcomes):
        await wait_until(lambda: len(outcomes) == 2, 10)
    cases = await store.cases.select()
    assert [c.unreadable for c in cases] == [True, False]
    assert cases[0].needs_review


async def test_reconnects_after_an_outage_and_logs_it_once(
    settings: Settings, store: Store, mailbox: MailUser, dovecot: Dovecot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.mailbox")
    async with watching(settings, store) as (watcher, outcomes):
        await wait_until(watcher.idling.is_set, 10)
        await asyncio.to_thread(dovecot.stop_server, crash=True)
        try:
            await wait_until(lambda: watcher.outage.failures >= 3, 15)
        finally:
            await asyncio.to_thread(dovecot.restart_server)
        await append(mailbox, request_email(1))
        await wait_until(lambda: outcomes, 15)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unavailable" in m for m in messages) == 1
    assert sum("available again" in m for m in messages) == 1
    assert outcomes[0].action == "opened_case"


@pytest.mark.parametrize("tls", ["ssl", "starttls"])
async def test_tls_modes(
    tls: str,
    settings: Settings,
    store: Store,
    mailbox: MailUser,
    dovecot: Dovecot,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.cert_file))  # trust the test server's certificate
    env = mailbox.env(tls=tls)
    settings = with_imap(settings, host=env["IMAP_HOST"], port=int(env["IMAP_PORT"]), tls=tls)
    await append(mailbox, request_email(1))
    async with watching(settings, store) as (_, outcomes):
        await wait_until(lambda: outcomes, 10)
    assert outcomes[0].action == "opened_case"


async def test_untrusted_certificate_is_refused(
    settings: Settings, store: Store, mailbox: MailUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    env = mailbox.env(tls="ssl")
    settings = with_imap(settings, host=env["IMAP_HOST"], port=int(env["IMAP_PORT"]), tls="ssl")
    await append(mailbox, request_email(1))
    async with watching(settings, store) as (watcher, outcomes):
        await wait_until(lambda: watcher.outage.failures >= 2, 10)
        assert not outcomes and not watcher.connected.is_set()


async def test_wrong_password_keeps_retrying_without_crashing(
    settings: Settings, store: Store, mailbox: MailUser
) -> None:
    settings = with_imap(settings, password=settings.imap.password.__class__("wrong"))
    async with watching(settings, store) as (watcher, outcomes):
        await wait_until(lambda: watcher.outage.failures >= 1, 10)  # Dovecot delays failed logins by 2 s
        assert watcher._thread is not None and watcher._thread.is_alive()
        assert not outcomes


async def test_idle_is_renewed_and_keeps_delivering(
    settings: Settings, store: Store, mailbox: MailUser
) -> None:
    settings = with_imap(settings, idle_renew_seconds=1)  # settings allow 5 s at least; the watcher any
    async with watching(settings, store) as (watcher, outcomes):
        await wait_until(watcher.idling.is_set, 10)
        await wait_until(lambda: watcher.idle_renewals >= 1, 10)  # past one renewal: DONE, a sync, IDLE again
        await wait_until(watcher.idling.is_set, 10)
        await append(mailbox, request_email(1))
        await wait_until(lambda: outcomes, 10)
    assert outcomes[0].action == "opened_case"


async def test_mail_that_comes_in_as_the_last_search_runs_is_not_left_for_the_next_one(
    settings: Settings, store: Store, mailbox: MailUser
) -> None:
    """Mail delivered after the watcher's last command and before its last search is announced
    (EXISTS) at the end of that search without being found by it, and the IDLE that follows
    announces only what comes later: the watcher searches again instead of waiting for the next
    mail or for IDLE's renewal (540 s by default). The delivery is made at that instant from the
    watcher's own thread, on another connection to the same Dovecot."""
    delivered: list[bool] = []

    def connect() -> IMAPClient:
        client = connect_imap(settings.imap)
        search = client.search

        def search_after_a_delivery(criteria: object) -> object:
            if not delivered:  # the first search on the (empty) folder: mail arrives just before
                mailbox.append(request_email(1))
                delivered.append(True)
            return search(criteria)

        client.search = search_after_a_delivery  # type: ignore[method-assign]
        return client

    outcomes: list[IntakeOutcome] = []
    watcher = build_watcher(settings, store, loop=asyncio.get_running_loop(), on_delivered=outcomes.append)
    watcher._connect = connect  # type: ignore[method-assign]
    watcher.start()
    try:
        await wait_until(lambda: outcomes, 10)
        assert watcher.idle_renewals == 0
    finally:
        await watcher.stop()
    assert delivered and [o.action for o in outcomes] == ["opened_case"]


async def test_a_folder_that_does_not_exist_is_one_outage_retried_with_growing_waits(
    settings: Settings, store: Store, mailbox: MailUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.mailbox")
    settings = with_imap(settings, folder="No such folder")
    async with watching(settings, store) as (watcher, outcomes):
        await wait_until(lambda: watcher.outage.failures >= 3, 10)
        assert watcher.backoff.attempt >= 3  # login works, but that is no recovery: the waits grow
        assert not watcher.connected.is_set()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unavailable" in m for m in messages) == 1
    assert not any("available again" in m for m in messages)
    assert not outcomes


async def test_a_refused_transition_is_taken_in_flagged_in_the_thread_and_the_mailbox_goes_on(
    settings: Settings, store: Store, mailbox: MailUser, slack: SlackStandIn
) -> None:
    """A follow-up meeting a state that refuses the change it asks for is stored on its case and
    flagged in the thread; the watcher takes the next message in as usual."""
    from bot.app import build_client
    from bot.outbox import OutboxWorker
    from handlers.slack.posting import SlackSender

    worker = OutboxWorker(
        store,
        [SlackSender(store, build_client(settings), channel=CHANNEL, calendar=settings.calendar)],
        idle_interval=0.05,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        async with watching(settings, store) as (_, outcomes):
            first = request_email(1, message_id="<first@example.org>")
            await append(mailbox, first)
            await wait_until(lambda: outcomes, 10)
            case = await store.cases.by_ref(outcomes[0].case_ref or "")
            assert case is not None
            async with store.transaction() as tx:  # waiting, but since when is lost (a damaged record)
                await tx.cases.update(case, {"status": "awaiting_requester"})
            answer = EmailMessage()
            answer["From"] = "Person 1 <person1@example.org>"
            answer["To"] = "privacy@imal.example"
            answer["Subject"] = "Re: Please delete my data (1)"
            answer["In-Reply-To"] = "<first@example.org>"
            answer["Message-ID"] = "<answer@example.org>"
            answer.set_content("Here is my ID.")
            await append(mailbox, answer.as_bytes())
            await append(mailbox, request_email(2))
            await wait_until(lambda: len(outcomes) == 3, 15)
        assert [o.action for o in outcomes] == ["opened_case", "follow_up", "opened_case"]
        assert outcomes[1].case_ref == case.ref
        await wait_until(lambda: any("did not end the wait" in m["text"] for m in slack.messages), 10)
        root = await store.outbox.message("root", case.id)
        assert root is not None and any(
            "did not end the wait" in m["text"] for m in slack.replies(str(root.result))
        )
    finally:
        stop.set()
        await task
