"""Replying to the requester from Slack: the Reply modal, the outbox, a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.app import build_client, create_app
from bot.backoff import Backoff
from bot.settings import Settings, SmtpSettings
from handlers.cases.inventory import load_inventory
from handlers.mail_out.smtp import SmtpSender
from storage.store import Store
from tests.conftest import wait_until
from tests.support.dovecot import free_port
from tests.support.factory import case_record
from tests.support.slack_standin import SlackStandIn
from tests.test_case_handling import ACCESS_AND_ERASURE, ALICE, Clock, Harness, buttons, outbox_for

MAIL_FROM = "privacy@imal.example"


class Sink:
    """An SMTP server in the test process; refuses recipients in `refuse` with 550."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.refuse: set[str] = set()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    def restart(self) -> None:
        """Start again on the same port after `controller.stop()` (a stopped Controller cannot restart)."""
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted"


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink()
    server.controller.start()
    try:
        yield server
    finally:
        server.controller.stop()


ReplyHarness = Harness


@pytest.fixture
async def desk(settings: Settings, slack: SlackStandIn, store: Store, sink: Sink) -> AsyncIterator[Harness]:
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
    assert sent["To"] == "ana.lopez@example.org"
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
    from handlers.cases.notices import reply_subject

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
    body = next(b for b in modal["blocks"] if b.get("block_id") == "body")
    assert "two months" in body["element"]["initial_value"]
    assert "several archives must be searched" in body["element"]["initial_value"]
    await desk.submit(modal, user=ALICE, values={"body": body["element"]["initial_value"]})
    await wait_until(lambda: sink.messages, 10)
    assert "extending the time to answer by two months" in sink.messages[0].get_content()
