"""Replying to the requester from Slack: the Reply modal, the outbox, a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import html
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from email.utils import make_msgid
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.app import build_client, create_app
from bot.backoff import Backoff
from bot.settings import Settings, SmtpSettings
from handlers.cases.inventory import load_inventory
from handlers.mail_out.smtp import SmtpSender
from storage.store import Store
from tests.conftest import wait_until
from tests.support.factory import case_record
from tests.support.slack_standin import SlackStandIn
from tests.support.smtp_sink import Sink
from tests.test_case_handling import ACCESS_AND_ERASURE, ALICE, Clock, Harness, buttons, outbox_for

MAIL_FROM = "privacy@imal.example"


ReplyHarness = Harness


@contextlib.asynccontextmanager
async def _desk(settings: Settings, slack: SlackStandIn, store: Store, sink: Sink) -> AsyncIterator[Harness]:
    settings = dataclasses.replace(
        settings, smtp=SmtpSettings(host="127.0.0.1", port=sink.port, tls="none"), mail_from=MAIL_FROM
    )
    clock = Clock()
    client = build_client(settings)
    assert settings.smtp is not None
    outbox = outbox_for(
        settings, store, client, clock, smtp=SmtpSender(store, settings.smtp, mail_from=MAIL_FROM)
    )
    outbox.destinations["smtp"].backoff = Backoff(base=0.05, cap=0.2)
    app = create_app(
        settings, store=store, client=client, inventory=load_inventory(), notify=outbox.notify, clock=clock
    )
    assert settings.slack.app_token is not None
    handler = AsyncSocketModeHandler(app, settings.slack.app_token.reveal(), web_client=client)
    await handler.connect_async()
    await slack.wait_for_socket()
    async with store.transaction() as tx:
        await tx.cursors.reset("INBOX", uidvalidity=1, backfill_before_uid=1)
    stop = asyncio.Event()
    task = asyncio.create_task(outbox.run(stop))
    harness = Harness(slack=slack, store=store, settings=settings, clock=clock, outbox=outbox)
    try:
        yield harness
    finally:
        stop.set()
        await task
        await handler.close_async()


@pytest.fixture
async def desk(settings: Settings, slack: SlackStandIn, store: Store, sink: Sink) -> AsyncIterator[Harness]:
    async with _desk(settings, slack, store, sink) as harness:
        yield harness


async def test_a_reply_is_sent_threaded_and_the_answer_comes_back_to_the_case(
    desk: ReplyHarness, sink: Sink
) -> None:
    ref = await desk.deliver(ACCESS_AND_ERASURE)
    assert ref is not None
    case = await desk.case(ref)
    assert "Reply" in buttons(desk.root(ref))
    view = await desk.open_modal(ref, "case.reply", user=ALICE)
    answer = await desk.submit(
        view,
        user=ALICE,
        values={
            "body": "Hello Ana,\nplease send us a copy of an ID document so we can confirm it is you.",
            "wait_for": "identity",
        },
    )
    assert answer == {}
    await wait_until(lambda: sink.messages, 10)
    sent = sink.messages[0]
    assert sent["From"] == MAIL_FROM
    assert sent["To"] == "Ana Lopez <ana.lopez@example.org>"
    assert sent["Subject"] == f"Re: [{ref}] My data"
    assert sent["In-Reply-To"] == case.message_id
    assert case.message_id in sent["References"]
    assert "please send us a copy of an ID document" in sent.get_content()
    assert f"Our reference: {ref}" in sent.get_content()
    assert sent["Auto-Submitted"] is None  # a person wrote it: the requester's auto-responder may answer
    case = await desk.case(ref)
    assert case.status == "awaiting_requester" and case.waiting_for == "identity"
    assert desk.notes(ref)[0].startswith("<@UALICE01> replied to the requester by email:")
    assert desk.notes(ref)[1].startswith("<@UALICE01> is waiting for the requester since")
    [outbound] = await desk.store.mail.outbound_of_case(case.id)
    assert outbound.sent_at is not None and outbound.message_id == sent["Message-ID"]

    # the requester answers our reply: In-Reply-To names the Message-ID we sent
    from tests.test_case_handling import email as make_email

    answer_mail = make_email(f"Re: [{ref}] My data", "Here is my ID.", in_reply_to=sent["Message-ID"])
    assert await desk.deliver(answer_mail) == ref
    case = await desk.case(ref)
    assert case.status == "new" and desk.notes(ref)[-1].startswith("The requester answered on")


async def test_an_smtp_outage_delays_a_reply_but_never_loses_it(desk: ReplyHarness, sink: Sink) -> None:
    ref = await desk.deliver(ACCESS_AND_ERASURE)
    assert ref is not None
    sink.controller.stop()
    view = await desk.open_modal(ref, "case.reply", user=ALICE)
    await desk.submit(view, user=ALICE, values={"body": "We are working on it."})
    await wait_until(lambda: desk.outbox.outage("smtp").failures >= 2, 10)
    assert sink.messages == []
    sink.restart()
    await wait_until(lambda: sink.messages, 15)
    await asyncio.sleep(0.3)
    assert len(sink.messages) == 1  # exactly once
    [outbound] = await desk.store.mail.outbound_of_case((await desk.case(ref)).id)
    assert outbound.sent_at is not None and outbound.attempts >= 2


async def test_a_refused_address_is_reported_in_the_thread_and_not_retried(
    desk: ReplyHarness, sink: Sink
) -> None:
    ref = await desk.deliver(ACCESS_AND_ERASURE)
    assert ref is not None
    sink.refuse.add("ana.lopez@example.org")
    view = await desk.open_modal(ref, "case.reply", user=ALICE)
    await desk.submit(view, user=ALICE, values={"body": "Hello"})
    await wait_until(lambda: any("could not be delivered" in n for n in desk.notes(ref)), 10)
    [outbound] = await desk.store.mail.outbound_of_case((await desk.case(ref)).id)
    assert outbound.failed_at is not None and outbound.sent_at is None and "550" in outbound.last_error
    assert [r for r in await desk.store.outbox.due(now=desk.clock()) if r.kind == "email"] == []


async def test_an_empty_reply_is_refused_with_a_field_error(desk: ReplyHarness, sink: Sink) -> None:
    ref = await desk.deliver(ACCESS_AND_ERASURE)
    assert ref is not None
    view = await desk.open_modal(ref, "case.reply", user=ALICE)
    answer = await desk.submit(view, user=ALICE, values={"body": "  "})
    assert answer["response_action"] == "errors" and "body" in answer["errors"]
    assert sink.messages == []


async def test_without_smtp_the_reply_button_explains_what_is_missing(
    settings: Settings, slack: SlackStandIn, store: Store
) -> None:
    assert settings.smtp is None
    clock = Clock()
    client = build_client(settings)
    outbox = outbox_for(settings, store, client, clock)
    app = create_app(settings, store=store, client=client, clock=clock, notify=outbox.notify)
    assert settings.slack.app_token is not None
    handler = AsyncSocketModeHandler(app, settings.slack.app_token.reveal(), web_client=client)
    await handler.connect_async()
    stop = asyncio.Event()
    task = asyncio.create_task(outbox.run(stop))
    try:
        await slack.wait_for_socket()
        harness = Harness(slack=slack, store=store, settings=settings, clock=clock, outbox=outbox)
        async with store.transaction() as tx:
            await tx.cursors.reset("INBOX", uidvalidity=1, backfill_before_uid=1)
        ref = await harness.deliver(ACCESS_AND_ERASURE)
        assert ref is not None
        await harness.click(ref, "case.reply", user=ALICE)
        await wait_until(lambda: slack.responses, 10)  # the ephemeral answer follows the ack
        assert "set SMTP_HOST" in str(slack.responses[-1])
        assert not slack.views
    finally:
        stop.set()
        await task
        await handler.close_async()


@pytest.mark.parametrize(
    ("subject", "language", "expected"),
    [
        ("My data", "en", "Re: [PRIV-2026-0001] My data"),
        ("Re: RE: Fwd: my data", "en", "Re: [PRIV-2026-0001] my data"),
        ("Re: [PRIV-2026-0001] my data", "en", "Re: [PRIV-2026-0001] my data"),
        ("AW: Auskunft", "de", "Re: [PRIV-2026-0001] Auskunft"),
        ("", "fr", "Re: [PRIV-2026-0001] Votre demande"),
        ("", "und", "Re: [PRIV-2026-0001] Your privacy request"),
    ],
)
def test_reply_subject(subject: str, language: str, expected: str) -> None:
    from handlers.mail_out.outgoing import reply_subject

    case = case_record(ref="PRIV-2026-0001", language=language, subject=subject)
    assert reply_subject(ref=case.ref, subject=case.subject, language=case.language) == expected


async def test_the_extension_notice_can_be_sent_from_its_note(desk: ReplyHarness, sink: Sink) -> None:
    ref = await desk.deliver(ACCESS_AND_ERASURE)
    assert ref is not None
    view = await desk.open_modal(ref, "case.extend", user=ALICE)
    await desk.submit(view, user=ALICE, values={"reason": "several archives must be searched"})
    note = next(m for m in desk.thread(ref) if "extended the deadline" in m["text"])
    before = set(desk.slack.views)
    await desk.send(desk.slack.block_actions_payload(note, "case.reply_notice", user=ALICE))
    [modal] = [v for k, v in desk.slack.views.items() if k not in before]
    body = next(b for b in modal["blocks"] if b.get("block_id") == "body~extension_notice")
    assert "two months" in body["element"]["initial_value"]
    assert "several archives must be searched" in " ".join(body["element"]["initial_value"].split())
    await desk.submit(modal, user=ALICE, values={"body": body["element"]["initial_value"]})
    await wait_until(lambda: sink.messages, 10)
    assert "by two months" in sink.messages[0].get_content() and "12(3)" in sink.messages[0].get_content()


def raw_request(
    sender: str, subject: str = "My data", body: str = "Please send me a copy of my data."
) -> bytes:
    """A request whose From header is exactly `sender` (bytes: the stdlib would rewrite it)."""
    return (
        f"From: {sender}\r\nTo: {MAIL_FROM}\r\nSubject: {subject}\r\n"
        f"Message-ID: {make_msgid(domain='example.org')}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{body}\r\n"
    ).encode()


async def reply(desk: Harness, ref: str, body: str = "Hello, we are on it.") -> None:
    view = await desk.open_modal(ref, "case.reply", user=ALICE)
    assert await desk.submit(view, user=ALICE, values={"body": body}) == {}


async def settled_emails(desk: Harness, count: int) -> list[Any]:
    """Wait until `count` emails were sent or refused for good; returns every outbox email row."""

    async def rows() -> list[Any]:
        return [
            r
            for c in await desk.store.cases.select()
            for r in await desk.store.outbox.of_case(c.id)
            if r.kind == "email"
        ]

    for _ in range(500):
        found = await rows()
        if sum(1 for r in found if r.done_at or r.failed_at) >= count:
            await desk.settle()
            return found
        await asyncio.sleep(0.02)
    raise AssertionError("the emails did not settle")


@pytest.mark.parametrize(
    ("sender", "mailbox"),
    [
        ('"a:b;"@example.org', '"a:b;"@example.org'),
        ('"a.<b"@example.org', '"a.<b"@example.org'),
        ("=?utf-8?q?Jan_=40?= <jan@example.be.>", "jan@example.be."),
        ('"<attacker@evil.example>"@example.org', '"<attacker@evil.example>"@example.org'),
        ('"attacker@evil.example, jan"@example.be', '"attacker@evil.example, jan"@example.be'),
    ],
)
async def test_an_unusual_address_gets_its_reply_at_exactly_that_mailbox_and_the_rest_still_go(
    desk: Harness, sink: Sink, sender: str, mailbox: str
) -> None:
    odd = await desk.deliver(raw_request(sender))
    plain = await desk.deliver(raw_request("Ana Lopez <ana.lopez@example.org>"))
    assert odd is not None and plain is not None
    case = await desk.case(odd)
    assert case.requester_email == mailbox  # shown in Slack as it will be used
    requester = next(
        f["text"]
        for b in desk.root(odd)["blocks"]
        for f in b.get("fields") or []
        if f["text"].startswith("Requester\n")
    )
    assert html.unescape(requester).endswith(f"{mailbox}") or f"({mailbox})" in html.unescape(requester)
    await reply(desk, odd)
    await reply(desk, plain)
    rows = await settled_emails(desk, 2)
    assert ["ana.lopez@example.org"] in sink.recipients  # the others still go
    assert all(len(r) == 1 and r[0] in (mailbox, "ana.lopez@example.org") for r in sink.recipients)
    [odd_row] = [r for r in rows if r.case_id == case.id]
    if odd_row.done_at:  # delivered: to that mailbox, written as it is in the To header
        odd_mail = next(m for m, r in zip(sink.messages, sink.recipients, strict=True) if r == [mailbox])
        assert [a.addr_spec for a in odd_mail["To"].addresses] == [mailbox]
    else:  # refused by the server (aiosmtpd refuses a domain ending in a dot): alone, and said so
        assert odd_row.failed_at is not None
        assert any("could not be delivered" in n for n in desk.notes(odd))
    assert desk.notes(odd)[0].startswith("<@UALICE01> replied to the requester by email:")


async def test_a_reply_turned_away_for_now_waits_alone_and_the_others_go(desk: Harness, sink: Sink) -> None:
    first = await desk.deliver(raw_request("Ana Lopez <ana.lopez@example.org>"))
    second = await desk.deliver(raw_request("Jo Peeters <jo.peeters@example.be>"))
    assert first is not None and second is not None
    sink.later.add("ana.lopez@example.org")
    await reply(desk, first)
    await reply(desk, second)
    await wait_until(lambda: sink.recipients == [["jo.peeters@example.be"]], 10)
    [held] = [r for r in await desk.store.outbox.of_case((await desk.case(first)).id) if r.kind == "email"]
    assert held.done_at is None and held.failed_at is None and "451" in held.last_error
    assert held.not_before is not None and held.not_before > desk.clock()  # its own backoff
    assert "Waiting to be sent" in json.dumps(desk.thread(first)[-1]["blocks"])  # not "sent" yet
    sink.later.clear()
    desk.clock.now += timedelta(hours=2)  # past the message's backoff (capped at an hour)
    desk.outbox.notify()
    await wait_until(lambda: len(sink.recipients) == 2, 10)
    await desk.settle()
    note = next(m for m in desk.thread(first) if m["text"].startswith("<@UALICE01> replied"))
    assert "Sent: the mail server accepted it" in json.dumps(note["blocks"])


async def test_an_address_needing_smtputf8_is_refused_visibly_when_the_server_lacks_it(
    desk: Harness, sink: Sink
) -> None:
    assert not sink.utf8
    utf8 = await desk.deliver(raw_request("José <josé@exämple.de>"))
    idn = await desk.deliver(raw_request("Jose <jose@exämple.de>"))
    assert utf8 is not None and idn is not None
    await reply(desk, utf8)
    await reply(desk, idn)
    rows = await settled_emails(desk, 2)
    failed = [r for r in rows if r.failed_at]
    assert len(failed) == 1 and "SMTPUTF8" in failed[0].last_error
    assert any("could not be delivered" in n and "SMTPUTF8" in n for n in desk.notes(utf8))
    assert sink.recipients == [["jose@xn--exmple-cua.de"]]  # the ASCII form of the domain needs no SMTPUTF8
    note = next(m for m in desk.thread(utf8) if m["text"].startswith("<@UALICE01> replied"))
    assert "Not delivered" in json.dumps(note["blocks"])


async def test_an_address_needing_smtputf8_is_sent_by_a_server_that_has_it(
    settings: Settings, slack: SlackStandIn, store: Store
) -> None:
    server = Sink(utf8=True)
    server.controller.start()
    try:
        async with _desk(settings, slack, store, server) as desk:
            ref = await desk.deliver(raw_request("José <josé@exämple.de>"))
            assert ref is not None
            await reply(desk, ref)
            await settled_emails(desk, 1)
        assert server.recipients == [["josé@xn--exmple-cua.de"]]
    finally:
        server.controller.stop()


async def test_a_server_without_starttls_delays_the_replies_but_refuses_none(
    settings: Settings, slack: SlackStandIn, store: Store, sink: Sink
) -> None:
    """A setup problem (STARTTLS required, the server offers none) is an outage: the replies wait
    for it to be fixed; they are not refused one by one."""
    async with _desk(settings, slack, store, sink) as desk:
        desk.outbox._senders["email"] = SmtpSender(  # type: ignore[index]
            store, SmtpSettings(host="127.0.0.1", port=sink.port, tls="starttls"), mail_from=MAIL_FROM
        )
        ref = await desk.deliver(ACCESS_AND_ERASURE)
        assert ref is not None
        view = await desk.open_modal(ref, "case.reply", user=ALICE)
        await desk.submit(view, user=ALICE, values={"body": "Hello"})
        await wait_until(lambda: desk.outbox.outage("smtp").failures >= 1, 10)
        [row] = [r for r in await store.outbox.of_case((await desk.case(ref)).id) if r.kind == "email"]
        assert row.failed_at is None and row.done_at is None and "SMTPNotSupportedError" in row.last_error
        assert not any("could not be delivered" in n for n in desk.notes(ref))
