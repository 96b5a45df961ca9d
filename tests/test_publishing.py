"""Posting cases to the Slack stand-in: roots with metadata, thread replies, escaping, 429s,
outages and the crash between "Slack stored it" and "we saved the ts"."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import build_client
from bot.backoff import Backoff
from bot.outbox import IN_FLIGHT, OutboxWorker
from bot.settings import Settings
from handlers.cases.deadlines import Calendar
from handlers.cases.intake import IncomingMessage, take_in
from handlers.jobs.days_left import DAYS_LEFT
from handlers.slack.posting import SlackSender
from storage.models import OutboxRow
from storage.store import Store
from tests.conftest import CHANNEL, FIXTURES, wait_until
from tests.support.slack_standin import SlackStandIn

CALENDAR = Calendar()
NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


async def seed(store: Store, *names: str) -> None:
    """Take fixture emails in, as the mailbox would deliver them."""
    async with store.transaction() as tx:
        if await tx.cursors.get("INBOX") is None:
            await tx.cursors.reset("INBOX", uidvalidity=1, backfill_before_uid=1)
    cursor = await store.cursors.get("INBOX")
    assert cursor is not None
    for uid, name in enumerate(names, start=cursor.last_uid + 1):
        raw = (FIXTURES / "emails" / name).read_bytes()
        await take_in(store, IncomingMessage(raw, "INBOX", 1, uid, NOW), calendar=CALENDAR, now=NOW)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncWebClient]:
    yield build_client(settings)


def publisher(store: Store, client: AsyncWebClient, *, now: datetime = NOW) -> OutboxWorker:
    """The outbox worker with the Slack sender, its clock fixed at `now`."""
    sender = SlackSender(store, client, channel=CHANNEL, calendar=CALENDAR, clock=lambda: now)
    return OutboxWorker(
        store,
        [sender],
        clock=lambda: now,
        idle_interval=0.05,
        destination_backoff=Backoff(base=0.05, cap=0.2),
    )


async def publish_pending(pub: OutboxWorker) -> None:
    """Rounds until nothing is left to do."""
    while await pub.work_once():
        pass


@contextlib.asynccontextmanager
async def running(pub: OutboxWorker) -> AsyncIterator[asyncio.Event]:
    stop = asyncio.Event()
    task = asyncio.create_task(pub.run(stop))
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_each_case_gets_one_root_with_metadata_and_a_thread_reply(
    store: Store, client: AsyncWebClient, slack: SlackStandIn
) -> None:
    await seed(store, "access-short-en.eml", "erasure-fr-qp.eml", "followup-reply.eml", "bounce-dsn.eml")
    pub = publisher(store, client)
    await publish_pending(pub)
    roots = slack.roots(CHANNEL)
    assert [r["metadata"] for r in roots] == [
        {
            "event_type": "privacy_case",
            "event_payload": {
                "case_ref": "PRIV-2026-0001",
                "message_id": "<short-access-1@example.org>",
                "kind": "access",
                "status": "new",
                "due_date": "2026-12-28",
                "assignee": "",
            },
        },
        {
            "event_type": "privacy_case",
            "event_payload": {
                "case_ref": "PRIV-2026-0002",
                "message_id": "<erasure-fr-1@example.net>",
                "kind": "erasure",
                "status": "new",
                "due_date": "2026-12-28",
                "assignee": "",
            },
        },
    ]
    assert [len(slack.replies(r["ts"])) for r in roots] == [2, 1]  # opening email + follow-up; one email
    for call in slack.calls_to("chat.postMessage"):
        assert call["args"]["unfurl_links"] in (False, "false", "0", 0)
        assert call["args"]["unfurl_media"] in (False, "false", "0", 0)
    root_text = json.dumps(roots[0]["blocks"])
    for shown in (
        "PRIV-2026-0001",
        "Marie Dubois",
        "marie.dubois@example.org",
        "28 Dec 2026 (33 days left)",
        "New",
        "Unassigned",
        "Access (art. 15)",
    ):
        assert shown in root_text
    case = await store.cases.by_ref("PRIV-2026-0001")
    assert case is not None
    root = await store.outbox.message("root", case.id)
    assert root is not None and root.result == roots[0]["ts"] and root.channel == CHANNEL


async def test_sender_text_cannot_inject_mentions_links_or_formatting(
    store: Store, client: AsyncWebClient, slack: SlackStandIn
) -> None:
    await seed(store, "injection-html.eml")
    pub = publisher(store, client)
    await publish_pending(pub)
    messages = [m for m in slack.messages if m["channel"] == CHANNEL]
    assert len(messages) == 2
    for m in messages:
        everything = json.dumps([m["text"], m["blocks"]], ensure_ascii=False)
        for forbidden in ("<!channel>", "<!here>", "<@U0ADMIN>", "<https://evil.example|"):
            assert forbidden not in everything
        assert "&lt;!channel&gt;" in everything or "&lt;!here&gt;" in everything or m is messages[0]
    reply = json.dumps(messages[1]["blocks"], ensure_ascii=False)
    assert "&lt;!here&gt; Please delete my data &amp; account" in reply
    assert "alert(1)" not in reply  # scripts dropped from the HTML


async def test_rate_limits_delay_posts_but_never_duplicate_them(
    store: Store, client: AsyncWebClient, slack: SlackStandIn
) -> None:
    slack.faults(rate_limit_every=2, retry_after=0)
    await seed(store, "access-short-en.eml", "erasure-fr-qp.eml", "no-message-id.eml", "injection-html.eml")
    async with running(publisher(store, client)):
        await wait_until(
            lambda: (
                len(slack.roots(CHANNEL)) == 4 and all(slack.replies(r["ts"]) for r in slack.roots(CHANNEL))
            ),
            20,
        )
        await asyncio.sleep(0.2)
    assert any(c["fault"] == 429 for c in slack.calls)
    refs = [r["metadata"]["event_payload"]["case_ref"] for r in slack.roots(CHANNEL)]
    assert sorted(refs) == ["PRIV-2026-0001", "PRIV-2026-0002", "PRIV-2026-0003", "PRIV-2026-0004"]
    assert all(len(slack.replies(r["ts"])) == 1 for r in slack.roots(CHANNEL))


async def test_an_outage_delays_posting_and_is_logged_once(
    store: Store, client: AsyncWebClient, slack: SlackStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="handlers.slack.posting")
    await seed(store, "access-short-en.eml")
    slack.faults(down=True)
    pub = publisher(store, client)
    async with running(pub):
        await wait_until(lambda: pub.outage("slack").failures >= 3, 20)
        assert slack.roots(CHANNEL) == []
        slack.faults(down=False)
        await wait_until(lambda: len(slack.roots(CHANNEL)) == 1, 20)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Slack unavailable" in m for m in messages) == 1
    assert sum("available again" in m for m in messages) == 1


async def test_a_root_posted_just_before_a_crash_is_found_not_reposted(
    store: Store, client: AsyncWebClient, slack: SlackStandIn
) -> None:
    await seed(store, "access-short-en.eml")
    now = datetime.now(UTC)  # the history search compares our clock with Slack's timestamps
    first = publisher(store, client, now=now)

    crashed = asyncio.Event()

    def crash(message: dict[str, object]) -> None:
        # Slack has stored the root; the process dies before the answer arrives
        crashed.set()
        raise_in.cancel()

    slack.on_message_posted = crash
    raise_in = asyncio.create_task(first.work_once())
    with contextlib.suppress(asyncio.CancelledError):
        await raise_in
    assert crashed.is_set()
    slack.on_message_posted = None
    case = await store.cases.by_ref("PRIV-2026-0001")
    assert case is not None
    root = await store.outbox.message("root", case.id)
    assert root is not None and root.result is None and root.started_at is not None

    second = publisher(store, client, now=now)  # "after the restart"
    await publish_pending(second)
    roots = slack.roots(CHANNEL)
    assert len(roots) == 1
    root = await store.outbox.message("root", case.id)
    assert root is not None and root.result == roots[0]["ts"]
    assert len(slack.replies(roots[0]["ts"])) == 1
    history = slack.calls_to("conversations.history")
    assert history and history[-1]["args"].get("include_all_metadata") in (True, "true", "1", 1)


async def test_a_crash_after_a_round_marked_its_roots_started_posts_each_root_once(
    store: Store, client: AsyncWebClient, slack: SlackStandIn
) -> None:
    await seed(store, "access-short-en.eml", "erasure-fr-qp.eml", "no-message-id.eml", "injection-html.eml")
    now = datetime.now(UTC)  # the history search compares our clock with Slack's timestamps

    def crash(message: dict[str, object]) -> None:
        # the round marked its four roots started in one commit; Slack stores the first (and
        # any sent side by side with it), and the process dies before the answer arrives: the
        # others were never sent at all
        attempt.cancel()

    slack.on_message_posted = crash
    attempt = asyncio.create_task(publisher(store, client, now=now).work_once())
    with contextlib.suppress(asyncio.CancelledError):
        await attempt
    slack.on_message_posted = None
    rows = [r for r in await store.outbox.due(now=now) if r.kind == "root"]
    assert len(rows) == 4 and all(r.started_at is not None and r.result is None for r in rows)
    assert 1 <= len(slack.roots(CHANNEL)) <= IN_FLIGHT

    await publish_pending(publisher(store, client, now=now))  # "after the restart"
    refs = [r["metadata"]["event_payload"]["case_ref"] for r in slack.roots(CHANNEL)]
    assert sorted(refs) == ["PRIV-2026-0001", "PRIV-2026-0002", "PRIV-2026-0003", "PRIV-2026-0004"]
    assert len(slack.calls_to("conversations.history")) == 4  # each looked for once, then posted
    for root in slack.roots(CHANNEL):
        assert len(slack.replies(root["ts"])) == 1


async def test_a_thread_reply_posted_just_before_a_crash_is_found_not_reposted(
    store: Store, client: AsyncWebClient, slack: SlackStandIn
) -> None:
    await seed(store, "access-short-en.eml")
    pub = publisher(store, client)
    await pub.work_once()  # the root: its thread reply waits for it

    def crash(message: dict[str, object]) -> None:
        if message.get("thread_ts"):
            attempt.cancel()

    slack.on_message_posted = crash
    attempt = asyncio.create_task(pub.work_once())
    with contextlib.suppress(asyncio.CancelledError):
        await attempt
    slack.on_message_posted = None
    await publish_pending(publisher(store, client))
    root = slack.roots(CHANNEL)[0]
    assert len(slack.replies(root["ts"])) == 1


async def test_roots_are_rerendered_when_a_case_changes_and_each_day(
    store: Store, client: AsyncWebClient, slack: SlackStandIn
) -> None:
    await seed(store, "access-short-en.eml")
    pub = publisher(store, client)
    await publish_pending(pub)
    assert slack.calls_to("chat.update") == []
    case = await store.cases.by_ref("PRIV-2026-0001")
    assert case is not None
    async with store.transaction() as tx:  # something the root shows changed
        await tx.cases.touch(case.id)
        await tx.outbox.update_root(case.id)
    await publish_pending(pub)
    assert len(slack.calls_to("chat.update")) == 1
    tomorrow = NOW + timedelta(days=1)
    assert await DAYS_LEFT.run(store, CALENDAR.local_date(tomorrow).isoformat(), tomorrow) == 1
    assert await DAYS_LEFT.run(store, CALENDAR.local_date(tomorrow).isoformat(), tomorrow) == 0  # once a day
    await publish_pending(publisher(store, client, now=tomorrow))
    updates = slack.calls_to("chat.update")
    assert len(updates) == 2
    root = slack.roots(CHANNEL)[0]
    assert "32 days left" in json.dumps(root["blocks"])
    assert root["metadata"]["event_payload"]["case_ref"] == "PRIV-2026-0001"


async def test_long_and_odd_emails_still_fit_slack_limits(
    store: Store, client: AsyncWebClient, slack: SlackStandIn
) -> None:
    from email.message import EmailMessage

    m = EmailMessage()
    m["From"] = "Long Writer <long@example.org>"
    m["To"] = "privacy@imal.example"
    m["Subject"] = "Please delete " + "very " * 100 + "long subject"
    m["Message-ID"] = "<long-1@example.org>"
    m.set_content(("<" * 10 + " please delete my data & account " + "`" * 6 + "\n") * 3000)
    for n in range(120):
        m.add_attachment(b"x" * n, maintype="application", subtype="pdf", filename=f"doc-{n}-<b>.pdf")
    async with store.transaction() as tx:
        await tx.cursors.reset("INBOX", uidvalidity=1, backfill_before_uid=1)
    await take_in(store, IncomingMessage(m.as_bytes(), "INBOX", 1, 1, NOW), calendar=CALENDAR, now=NOW)
    pub = publisher(store, client)
    await publish_pending(pub)
    root = slack.roots(CHANNEL)[0]
    [reply] = slack.replies(root["ts"])
    assert not [c for c in slack.calls if c["error"]]
    text = json.dumps(reply["blocks"])
    assert "more characters are stored with the case" in text
    assert "and 100 more" in text


async def test_a_reply_into_a_thread_deleted_in_slack_fails_alone(
    store: Store, client: AsyncWebClient, slack: SlackStandIn
) -> None:
    await seed(store, "access-short-en.eml", "erasure-fr-qp.eml")
    pub = publisher(store, client)
    await pub.work_once()  # both roots
    first, second = slack.roots(CHANNEL)
    await client.chat_delete(channel=CHANNEL, ts=first["ts"])  # someone deleted the first root
    await publish_pending(pub)
    assert not pub.destinations["slack"].paused  # one thread gone is no Slack outage
    assert len(slack.replies(second["ts"])) == 1  # the other case's thread still gets its email
    case = await store.cases.by_ref(first["metadata"]["event_payload"]["case_ref"])
    assert case is not None
    [reply] = [r for r in await store.outbox.of_case(case.id) if r.kind == "email_reply"]
    assert reply.failed_at is not None and "thread_not_found" in reply.last_error


async def test_a_note_of_schema_3_posted_just_before_a_crash_is_found_by_its_words(
    store: Store, client: AsyncWebClient, slack: SlackStandIn
) -> None:
    await seed(store, "access-short-en.eml")
    pub = publisher(store, client)
    await publish_pending(pub)
    [root] = slack.roots(CHANNEL)
    case = await store.cases.by_ref(root["metadata"]["event_payload"]["case_ref"])
    assert case is not None
    words = "<@UALICE01> claimed the case."
    await client.chat_postMessage(  # what schema 3 posted: its own note id in the metadata
        channel=CHANNEL,
        thread_ts=root["ts"],
        text=words,
        metadata={"event_type": "privacy_case_note", "event_payload": {"case_ref": case.ref, "note_id": 25}},
    )
    async with store.transaction(now=NOW) as tx:  # as migration 0004 carried it over, started
        text_id = await tx.cases.add_text(case.id, "thread_note", words)
        root_row = await tx.outbox.message("root", case.id)
        assert root_row is not None
    import sqlite3

    with sqlite3.connect(store.path) as conn:
        conn.execute(
            "INSERT INTO outbox (kind, case_id, parent_id, text_id, created_at, started_at) "
            "VALUES ('note', ?, ?, ?, ?, ?)",
            (case.id, root_row.id, text_id, NOW.isoformat(), NOW.isoformat()),
        )
    posts = len(slack.calls_to("chat.postMessage"))
    await publish_pending(pub)
    assert len(slack.calls_to("chat.postMessage")) == posts  # found, not posted again
    assert [m["text"] for m in slack.replies(root["ts"])].count(words) == 1


class OneByOne(SlackSender):
    """The Slack sender without its batch reads: each row reads what it shows when it is sent."""

    async def prepare(self, rows: Sequence[OutboxRow]) -> None:
        pass


async def test_a_batch_read_in_a_few_queries_posts_what_rows_read_one_by_one_post(
    tmp_path: Path, migrated_database: Path, client: AsyncWebClient, slack: SlackStandIn
) -> None:
    posted: list[list[tuple[str, str, str]]] = []
    queries: list[int] = []
    for sender_class in (SlackSender, OneByOne):
        path = tmp_path / f"{sender_class.__name__}.sqlite3"
        shutil.copyfile(migrated_database, path)
        path.chmod(0o600)
        async with await Store.open(path) as store:
            await seed(
                store,
                "access-short-en.eml",
                "erasure-fr-qp.eml",
                "followup-reply.eml",
                "flowed-signature.eml",
            )
            async with store.transaction(now=NOW) as tx:
                first, split = [await tx.cases.by_ref(f"PRIV-2026-000{n}") for n in (1, 3)]
                assert first is not None and split is not None
                await tx.cases.update(split, {"split_from_case_id": first.id})
                await tx.cases.replace_checklist(first.id, [("crm", "CRM", "export", "Export the record")])
                await tx.outbox.post_checklist(first.id)
            statements: list[str] = []
            await store._db._reader.set_trace_callback(statements.append)
            sender = sender_class(store, client, channel=CHANNEL, calendar=CALENDAR, clock=lambda: NOW)
            pub = OutboxWorker(store, [sender], clock=lambda: NOW)
            calls = len(slack.calls_to("chat.postMessage"))
            await publish_pending(pub)
            made = slack.calls_to("chat.postMessage")[calls:]
            posted.append(
                sorted(
                    (
                        json.dumps(c["args"].get("metadata"), sort_keys=True),
                        c["args"]["text"],
                        c["args"]["blocks"],
                    )
                    for c in made
                )
            )
            queries.append(sum(s.lstrip().upper().startswith("SELECT") for s in statements))
    batched, one_by_one = posted
    assert len(batched) == 8  # 3 roots, 4 emails, 1 checklist
    assert batched == one_by_one
    # two rounds (the roots, then their threads' messages), each reading cases, checklists, links
    # and emails at most once; one by one, each row reads its own
    assert queries[0] <= 2 * 4 < queries[1], queries
