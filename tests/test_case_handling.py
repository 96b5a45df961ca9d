"""Handling a case from start to finish in its Slack thread, driven through the Slack stand-in.

The Bolt app runs for real over Socket Mode against the stand-in; clicks and modal submissions are
sent as block_actions / view_submission envelopes (built from the messages and modals the app
itself posted, as Slack would); the publisher re-renders roots and posts notes from the database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.app import build_client, create_app
from bot.outbox import OutboxWorker
from bot.runtime import intake_rules
from bot.settings import Settings
from handlers.cases.actions import record, resolve
from handlers.cases.intake import IncomingMessage, IntakeRules, take_in
from handlers.cases.inventory import load_inventory
from handlers.slack.posting import SlackSender
from storage.models import Case
from storage.store import Store
from tests.conftest import CHANNEL, FIXTURES, OUTSIDER
from tests.support.slack_standin import SlackStandIn

ALICE, BOB = "UALICE01", "UBOB0001"
AUTHSERV = "mx.imal.example"


@dataclass
class Clock:
    """The app's clock, movable by the tests."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Harness:
    """The app, the outbox worker and the stand-in, with helpers to act as staff would."""

    slack: SlackStandIn
    store: Store
    settings: Settings
    clock: Clock
    outbox: OutboxWorker
    acks: list[dict[str, Any]] = field(default_factory=list)
    uid: int = 0
    acknowledging: bool = False  # take mail in as `run` does, acknowledgements included

    def intake_rules(self) -> IntakeRules:
        if self.acknowledging:
            return dataclasses.replace(intake_rules(self.settings, load_inventory()), authserv_id=AUTHSERV)
        return IntakeRules(
            authserv_id=AUTHSERV, inventory=load_inventory(), pause_clock=self.settings.clock_pause_on_wait
        )

    async def deliver(self, raw: bytes, *, arrived: datetime | None = None) -> str | None:
        """Take an email in as the mailbox would; returns its case reference."""
        self.uid += 1
        rules = self.intake_rules()
        outcome = await take_in(
            self.store,
            IncomingMessage(raw, "INBOX", 1, self.uid, arrived or self.clock()),
            calendar=self.settings.calendar,
            rules=rules,
            now=self.clock(),
        )
        await self.settle()
        return outcome.case_ref

    async def settle(self) -> None:
        """Wait until the outbox worker has brought Slack up to date with the database."""
        for _ in range(500):
            if await self.outbox.drained():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the outbox did not settle")

    async def case(self, ref: str) -> Case:
        case = await self.store.cases.by_ref(ref)
        assert case is not None
        return case

    def root(self, ref: str) -> dict[str, Any]:
        return next(r for r in self.slack.roots(CHANNEL) if r["metadata"]["event_payload"]["case_ref"] == ref)

    def thread(self, ref: str) -> list[dict[str, Any]]:
        return self.slack.replies(self.root(ref)["ts"])

    def notes(self, ref: str) -> list[str]:
        return [
            m["text"]
            for m in self.thread(ref)
            if (m["metadata"] or {}).get("event_type") == "privacy_case_note"
        ]

    async def send(self, payload: dict[str, Any]) -> dict[str, Any]:
        result = await self.slack.send_envelope("interactive", payload)
        self.acks.append(result)
        await self.settle()
        return result

    async def click(self, ref: str, action_id: str, *, user: str, **kw: Any) -> dict[str, Any]:
        """Click a button (or pick from a select) on the case's root."""
        return await self.send(self.slack.block_actions_payload(self.root(ref), action_id, user=user, **kw))

    async def open_modal(self, ref: str, action_id: str, *, user: str) -> dict[str, Any]:
        before = set(self.slack.views)
        await self.click(ref, action_id, user=user)
        # the listener opens the modal after its ack: under load that may land a moment later
        for _ in range(300):
            opened = [v for k, v in self.slack.views.items() if k not in before]
            if opened:
                break
            await asyncio.sleep(0.01)
        assert len(opened) == 1, f"no modal opened for {action_id}"
        return opened[0]

    async def submit(self, view: dict[str, Any], *, user: str, values: dict[str, Any]) -> dict[str, Any]:
        """Submit a modal; `values` maps field -> value (str, list of str, or a user id)."""
        state: dict[str, dict[str, dict[str, Any]]] = {}
        for block in view["blocks"]:
            field_name = block.get("block_id", "").split("~")[0]  # "body~template": the field "body"
            if block["type"] != "input" or field_name not in values:
                continue
            element, value = block["element"], values[field_name]
            options = {o["value"]: o for o in element.get("options") or []}
            if element["type"] in ("static_select", "radio_buttons"):
                entry = {"selected_option": options[value]}
            elif element["type"] in ("multi_static_select", "checkboxes"):
                entry = {"selected_options": [options[v] for v in value]}
            else:
                entry = {"value": value}
            state[block["block_id"]] = {element["action_id"]: entry}
        result = await self.send(self.slack.view_submission_payload(view, user=user, values=state))
        return result["ack"].get("payload") or {}


def outbox_for(settings: Settings, store: Store, client: Any, clock: Clock, **senders: Any) -> OutboxWorker:
    """The outbox worker as the runtime builds it, with short intervals for tests."""
    slack_sender = SlackSender(
        store, client, channel=CHANNEL, calendar=settings.calendar, clock=clock, writer=settings.writer()
    )
    return OutboxWorker(store, [slack_sender, *senders.values()], clock=clock, idle_interval=0.05)


@pytest.fixture
async def desk(settings: Settings, slack: SlackStandIn, store: Store) -> AsyncIterator[Harness]:
    clock = Clock()
    client = build_client(settings)
    outbox = outbox_for(settings, store, client, clock)
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
    assert all(a["ack_seconds"] < 3 for a in harness.acks), "every listener acks within Slack's 3 seconds"


def email(
    subject: str, body: str, *, sender: str = "Ana Lopez <ana.lopez@example.org>", **headers: str
) -> bytes:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = "privacy@imal.example"
    m["Subject"] = subject
    m["Message-ID"] = make_msgid(domain="example.org")
    for name, value in headers.items():
        m[name.replace("_", "-")] = value
    m.set_content(body)
    return m.as_bytes()


ACCESS_AND_ERASURE = email(
    "My data", "Hello, please send me a copy of all my personal data and then delete my account. Ana"
)


def buttons(message: dict[str, Any]) -> list[str]:
    return [
        e["text"]["text"]
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["type"] == "button"
    ]


def rendered(message: dict[str, Any]) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


async def test_full_lifecycle_from_new_to_reopened(desk: Harness) -> None:
    ref = await desk.deliver(ACCESS_AND_ERASURE)
    assert ref is not None
    root = desk.root(ref)
    assert buttons(root) == [
        "Claim",
        "Change type",
        "Verify identity",
        "Extend",
        "Reply",
        "Awaiting requester",
        "Resolve",
    ]
    checklist = next(
        m for m in desk.thread(ref) if (m["metadata"] or {}).get("event_type") == "privacy_case_checklist"
    )
    assert "0/7 done" in checklist["text"]

    await desk.click(ref, "case.claim", user=ALICE)
    case = await desk.case(ref)
    assert (case.status, case.assignee) == ("in_progress", ALICE)
    assert desk.root(ref)["metadata"]["event_payload"]["assignee"] == ALICE
    assert desk.root(ref)["metadata"]["event_payload"]["status"] == "in_progress"
    assert "<@UALICE01>" in rendered(desk.root(ref))

    view = await desk.open_modal(ref, "case.verify", user=ALICE)
    assert (
        await desk.submit(view, user=ALICE, values={"method": "id_document", "note": "passport seen"}) == {}
    )
    case = await desk.case(ref)
    assert (case.identity_status, case.identity_method, case.identity_by) == (
        "verified",
        "id_document",
        ALICE,
    )
    assert "Verified: ID document checked" in rendered(desk.root(ref))

    view = await desk.open_modal(ref, "case.extend", user=ALICE)
    await desk.submit(view, user=ALICE, values={"reason": "large archive search"})
    case = await desk.case(ref)
    expected_due = desk.settings.calendar.due_date(case.received_at, extended=True)
    assert (case.status, case.due_date) == ("extended", expected_due)
    assert desk.root(ref)["metadata"]["event_payload"]["due_date"] == expected_due.isoformat()
    assert "Extend" not in buttons(desk.root(ref))

    # tick two checklist items
    checklist = next(
        m for m in desk.thread(ref) if (m["metadata"] or {}).get("event_type") == "privacy_case_checklist"
    )
    options = checklist["blocks"][1]["elements"][0]["options"]
    await desk.send(
        desk.slack.block_actions_payload(
            checklist, "case.checklist", user=BOB, selected={"selected_options": options[:2]}
        )
    )
    assert "Checklist 2/7" in rendered(desk.root(ref))

    view = await desk.open_modal(ref, "case.resolve", user=ALICE)
    answer = await desk.submit(
        view,
        user=ALICE,
        values={"outcome": "fulfilled", "note": "Copy sent, account erased", "recipients": ["Eventbrite"]},
    )
    assert answer == {}
    case = await desk.case(ref)
    assert (case.status, case.outcome, case.resolved_on_time) == ("resolved", "fulfilled", True)
    assert case.recipients_informed == ("Eventbrite",)
    assert buttons(desk.root(ref)) == ["Reopen"]

    view = await desk.open_modal(ref, "case.reopen", user=BOB)
    await desk.submit(view, user=BOB, values={"reason": "the requester found more accounts"})
    case = await desk.case(ref)
    assert (case.status, case.outcome, case.closed_at) == ("extended", None, None)

    notes = desk.notes(ref)
    due = f"{expected_due.day} {expected_due:%B %Y}"
    assert notes[0] == "<@UALICE01> claimed the case."
    assert notes[1] == "<@UALICE01> verified the requester's identity: ID document checked. passport seen."
    assert notes[2].startswith(f"<@UALICE01> extended the deadline to {due}: large archive search")
    assert notes[2].endswith("Notice to send:")  # the notice itself is in the note's blocks, as plain text
    [extended] = [m for m in desk.thread(ref) if m["text"] == notes[2]]
    assert "two months" in extended["blocks"][1]["text"]["text"]
    assert notes[3].startswith("<@UBOB0001> ticked Website database, ticked Newsletter")
    assert notes[4].startswith("<@UALICE01> resolved the case: Fulfilled, on time")
    assert notes[5] == "<@UBOB0001> reopened the case: the requester found more accounts"

    trail = await desk.store.audit.trail(case.id)
    assert [(e.action, e.actor) for e in trail] == [
        ("case.opened", "system"),
        ("case.claimed", ALICE),
        ("case.identity_recorded", ALICE),
        ("case.extended", ALICE),
        ("case.checklist", BOB),
        ("case.resolved", ALICE),
        ("case.reopened", BOB),
    ]
    claimed = trail[1]
    assert claimed.before == {"assignee": "", "status": "new"}
    assert claimed.after == {"assignee": ALICE, "status": "in_progress"}
    _print_rendering(desk, ref)


def _print_rendering(desk: Harness, ref: str) -> None:
    """Keep a readable rendering of the case's root and thread (quoted in the closing note)."""
    out = Path(__file__).resolve().parents[1] / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    lines = ["ROOT", *_as_text(desk.root(ref)["blocks"], "  ")]
    for message in desk.thread(ref):
        kind = (message["metadata"] or {}).get("event_type", "").removeprefix("privacy_case_") or "reply"
        lines += [f"THREAD ({kind})", *_as_text(message["blocks"], "  ")]
    (out / "lifecycle-rendering.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _as_text(blocks: list[dict[str, Any]], indent: str) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        texts = [
            block.get("text") or {},
            *(block.get("fields") or []),
            *(e for e in block.get("elements") or [] if e.get("type") in ("mrkdwn", "plain_text")),
        ]
        lines += [indent + str(t.get("text", "")).replace("\n", " | ") for t in texts if t.get("text")]
        controls = [e for e in block.get("elements") or [] if e.get("type") not in ("mrkdwn", "plain_text")]
        for e in controls:
            if e["type"] == "button":
                lines.append(f"{indent}[{e['text']['text']}]")
            elif e["type"] == "checkboxes":
                ticked = {o["value"] for o in e.get("initial_options") or []}
                lines += [
                    f"{indent}[{'x' if o['value'] in ticked else ' '}] {o['text']['text']} — "
                    f"{o['description']['text']}"
                    for o in e["options"]
                ]
            else:
                lines.append(f"{indent}<{e['type']}: {e.get('placeholder', {}).get('text', '')}>")
        if block.get("accessory", {}).get("type") == "button":
            lines.append(f"{indent}[{block['accessory']['text']['text']}]")
    return lines


async def test_someone_outside_the_team_is_refused_and_nothing_changes(desk: Harness) -> None:
    ref = await desk.deliver(ACCESS_AND_ERASURE)
    assert ref is not None
    before = await desk.case(ref)
    await desk.click(ref, "case.claim", user=OUTSIDER)
    await desk.click(ref, "case.resolve", user=OUTSIDER)
    refusals = [r for r in desk.slack.responses if "Only the privacy team" in json.dumps(r)]
    assert len(refusals) == 2
    assert all(r["body"].get("response_type") == "ephemeral" for r in refusals)
    assert not desk.slack.views  # no modal opened for an outsider
    after = await desk.case(ref)
    assert (after.version, after.status, after.assignee) == (before.version, "new", "")
    assert len(await desk.store.audit.trail(after.id)) == 1


async def test_a_forged_modal_submission_from_an_outsider_is_refused(desk: Harness) -> None:
    ref = await desk.deliver(ACCESS_AND_ERASURE)
    assert ref is not None
    view = await desk.open_modal(ref, "case.resolve", user=ALICE)
    answer = await desk.submit(view, user=OUTSIDER, values={"outcome": "withdrawn", "note": "x"})
    assert answer["response_action"] == "errors" and "Only the privacy team" in answer["errors"]["outcome"]
    assert (await desk.case(ref)).is_open


async def test_an_extension_is_refused_after_the_one_month_deadline(desk: Harness) -> None:
    old = desk.clock() - timedelta(days=40)
    ref = await desk.deliver(ACCESS_AND_ERASURE, arrived=old)
    assert ref is not None
    await desk.click(ref, "case.extend", user=ALICE)
    assert not desk.slack.views
    refusal = json.dumps(desk.slack.responses[-1])
    assert "Too late to extend" in refusal and "art. 12(3)" in refusal

    # a modal opened before the deadline and submitted after it is refused with a field error
    fresh = await desk.deliver(email("Access", "Please send me a copy of my data."))
    assert fresh is not None
    view = await desk.open_modal(fresh, "case.extend", user=ALICE)
    desk.clock.now += timedelta(days=45)
    answer = await desk.submit(view, user=ALICE, values={"reason": "archive"})
    assert answer["response_action"] == "errors" and "Too late" in answer["errors"]["reason"]
    assert (await desk.case(fresh)).extended_at is None


async def test_an_extension_needs_a_reason(desk: Harness) -> None:
    ref = await desk.deliver(ACCESS_AND_ERASURE)
    assert ref is not None
    view = await desk.open_modal(ref, "case.extend", user=ALICE)
    answer = await desk.submit(view, user=ALICE, values={"reason": "   "})
    assert answer["response_action"] == "errors" and "reason" in answer["errors"]


async def test_fulfilling_needs_a_verified_identity(desk: Harness) -> None:
    ref = await desk.deliver(ACCESS_AND_ERASURE)
    assert ref is not None
    view = await desk.open_modal(ref, "case.resolve", user=ALICE)
    assert "Identity is not verified yet" in json.dumps(view)
    answer = await desk.submit(
        view,
        user=ALICE,
        values={"outcome": "fulfilled", "note": "sent", "recipients": ["No recipients to inform"]},
    )
    assert answer["response_action"] == "errors"
    assert "Verify the requester's identity" in answer["errors"]["outcome"]
    assert (await desk.case(ref)).is_open
    # refusing for lack of identity is allowed, and reminds the art. 12(4) notice
    answer = await desk.submit(view, user=ALICE, values={"outcome": "refused_identity", "note": "no answer"})
    assert answer == {}
    assert "art. 12(4)" in desk.notes(ref)[-1]


async def test_erasure_resolution_names_the_recipients_informed(desk: Harness) -> None:
    ref = await desk.deliver(email("Delete", "Please delete my account."))
    assert ref is not None
    case = await desk.case(ref)
    view = await desk.open_modal(ref, "case.verify", user=ALICE)
    await desk.submit(view, user=ALICE, values={"method": "same_address"})
    view = await desk.open_modal(ref, "case.resolve", user=ALICE)
    answer = await desk.submit(view, user=ALICE, values={"outcome": "fulfilled", "note": "done"})
    assert answer["response_action"] == "errors" and "recipients" in answer["errors"]
    answer = await desk.submit(
        view,
        user=ALICE,
        values={"outcome": "fulfilled", "note": "done", "recipients": ["No recipients to inform"]},
    )
    assert answer == {}
    assert (await desk.case(ref)).recipients_informed == (
        "No recipients to inform",
    ) and case.kind == "erasure"


async def test_a_spoofed_sender_gets_a_visible_warning(desk: Harness) -> None:
    forged = email(
        "Access request",
        "Send me all the data you hold on me.",
        authentication_results=(
            f"{AUTHSERV}; spf=fail smtp.mailfrom=example.org; dkim=none; dmarc=fail (p=reject) header.from=example.org"
        ),
    )
    ref = await desk.deliver(forged)
    assert ref is not None
    assert "failed our mail server's checks (DMARC fail)" in rendered(desk.root(ref))
    # a sender's own claim of success, under someone else's authserv-id, counts for nothing
    honest_looking = email(
        "Access request",
        "Send me my data.",
        authentication_results=("evil.example; spf=pass; dkim=pass; dmarc=pass"),
    )
    other = await desk.deliver(honest_looking)
    assert other is not None
    assert (await desk.case(other)).sender_check == "unknown"
    assert "failed our mail server" not in rendered(desk.root(other))
    passed = email(
        "Access request",
        "Send me my data.",
        authentication_results=(
            f"{AUTHSERV}; spf=pass smtp.mailfrom=example.org; dkim=pass header.d=example.org; dmarc=pass"
        ),
    )
    fine = await desk.deliver(passed)
    assert fine is not None and (await desk.case(fine)).sender_check == "pass"


async def test_a_follow_up_with_a_new_right_splits_into_a_linked_case(desk: Harness) -> None:
    first = email("Access", "Please send me a copy of my data.")
    ref = await desk.deliver(first)
    assert ref is not None
    original = await desk.case(ref)
    later = desk.clock() + timedelta(days=10)
    desk.clock.now = later
    follow_up = email(
        "Re: Access",
        "And please delete my FabLab account too.",
        in_reply_to=original.message_id,
        references=original.message_id,
    )
    assert await desk.deliver(follow_up) == ref
    reply = desk.thread(ref)[-1]
    assert "Split into a new case" in rendered(reply)
    await desk.send(desk.slack.block_actions_payload(reply, "case.split", user=ALICE))
    cases = await desk.store.cases.select()
    assert len(cases) == 2
    new = cases[1]
    assert (new.kind, new.split_from_case_id) == ("erasure", original.id)
    assert new.received_date == desk.settings.calendar.local_date(later)
    assert new.due_date == desk.settings.calendar.due_date(later)
    assert new.due_date != original.due_date
    assert f"Split off {ref}" in rendered(desk.root(new.ref))
    assert f"Split into {new.ref}" in rendered(desk.root(ref))
    assert any(f"split {new.ref} off this case" in n for n in desk.notes(ref))
    assert any(f"split this case off {ref}" in n for n in desk.notes(new.ref))
    await desk.send(desk.slack.block_actions_payload(reply, "case.split", user=ALICE))
    assert "Already split off" in json.dumps(desk.slack.responses[-1])


async def test_waiting_for_the_requester_ends_when_they_answer(desk: Harness) -> None:
    ref = await desk.deliver(ACCESS_AND_ERASURE)
    assert ref is not None
    view = await desk.open_modal(ref, "case.wait", user=ALICE)
    await desk.submit(view, user=ALICE, values={"waiting_for": "identity", "note": "asked for ID"})
    case = await desk.case(ref)
    assert case.status == "awaiting_requester"
    assert "Requester answered" in buttons(desk.root(ref))
    assert "Waiting for the requester since" in rendered(desk.root(ref))
    due = case.due_date
    desk.clock.now += timedelta(days=3)
    answer = email("Re: My data", "Here is my ID card.", in_reply_to=case.message_id)
    await desk.deliver(answer)
    case = await desk.case(ref)
    assert case.status == "new" and case.waiting_since is None
    assert case.due_date == due  # the clock kept running (CLOCK_PAUSE_ON_WAIT=false)
    assert desk.notes(ref)[-1].startswith("The requester answered on ")
    assert "3 days waited" in desk.notes(ref)[-1]


async def test_with_the_clock_paused_the_waiting_days_are_added_back(desk: Harness) -> None:
    desk.settings = type(desk.settings)(**{**desk.settings.__dict__, "clock_pause_on_wait": True})
    ref = await desk.deliver(ACCESS_AND_ERASURE)
    assert ref is not None
    case = await desk.case(ref)
    async with desk.store.transaction(now=desk.clock()) as tx:
        await record(
            tx,
            case,
            actor=ALICE,
            action="case.waiting",
            changes={
                "status": "awaiting_requester",
                "status_before_wait": "new",
                "waiting_since": desk.clock(),
                "waiting_for": "identity",
            },
        )
    desk.clock.now += timedelta(days=5)
    await desk.deliver(email("Re: My data", "My ID.", in_reply_to=case.message_id))
    after = await desk.case(ref)
    assert after.paused_days == 5
    assert after.due_date == desk.settings.calendar.due_date(case.received_at, paused_days=5)
    assert "the clock was paused" in desk.notes(ref)[-1]


async def test_change_type_updates_kinds_checklist_and_root(desk: Harness) -> None:
    ref = await desk.deliver(email("Question", "Where did you get my address? Please unsubscribe me."))
    assert ref is not None
    view = await desk.open_modal(ref, "case.change_type", user=BOB)
    await desk.submit(view, user=BOB, values={"primary": "erasure", "labels": ["objection"]})
    case = await desk.case(ref)
    assert (case.kind, case.labels, case.needs_review) == ("erasure", ("erasure", "objection"), False)
    assert desk.root(ref)["metadata"]["event_payload"]["kind"] == "erasure"
    items = await desk.store.cases.checklist(case.id)
    assert items[0].action == "stop+erase"
    view = await desk.open_modal(ref, "case.change_type", user=BOB)
    answer = await desk.submit(view, user=BOB, values={"primary": "complaint"})
    assert answer == {}
    case = await desk.case(ref)
    assert case.due_date == case.received_date + timedelta(days=30)  # complaints: calendar days
    assert "Extend" not in buttons(desk.root(ref))


async def test_assigning_to_someone_outside_the_team_is_refused(desk: Harness) -> None:
    ref = await desk.deliver(ACCESS_AND_ERASURE)
    assert ref is not None
    await desk.click(ref, "case.assign", user=ALICE, selected={"selected_user": OUTSIDER})
    assert "only be assigned to members" in json.dumps(desk.slack.responses[-1])
    await desk.click(ref, "case.assign", user=ALICE, selected={"selected_user": BOB})
    assert (await desk.case(ref)).assignee == BOB
    assert desk.notes(ref)[-1] == "<@UALICE01> assigned the case to <@UBOB0001>."


async def test_two_people_resolving_at_once_cannot_corrupt_the_case(desk: Harness) -> None:
    ref = await desk.deliver(email("Complaint", "I complain: you kept emailing me after I objected."))
    assert ref is not None
    case = await desk.case(ref)
    results = await asyncio.gather(
        *(
            resolve(
                desk.store,
                case_id=case.id,
                actor=who,
                outcome="withdrawn",
                note=who,
                recipients=[],
                now=desk.clock(),
                calendar=desk.settings.calendar,
            )
            for who in (ALICE, BOB)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Case) for r in results) == 1
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and "is resolved" in str(errors[0])
    trail = await desk.store.audit.trail(case.id)
    assert [e.action for e in trail].count("case.resolved") == 1


async def test_recorded_slack_payloads_reach_the_listeners(desk: Harness) -> None:
    """Payloads as Slack documents them (tests/fixtures/slack), not only as the stand-in builds them."""
    ref = await desk.deliver(ACCESS_AND_ERASURE)
    assert ref is not None
    case = await desk.case(ref)
    root = desk.root(ref)
    recorded = json.loads((FIXTURES / "slack" / "block_actions_button.json").read_text())
    recorded["user"]["id"] = BOB
    recorded["container"]["message_ts"] = root["ts"]
    recorded["message"]["ts"] = root["ts"]
    recorded["actions"][0].update(
        action_id="case.claim", value=str(case.id), block_id=f"case-actions-{case.id}"
    )
    recorded["trigger_id"] = desk.slack.new_trigger_id(user=BOB)
    recorded["response_url"] = desk.slack.block_actions_payload(root, "case.claim", user=BOB)["response_url"]
    await desk.send(recorded)
    assert (await desk.case(ref)).assignee == BOB

    submission = json.loads((FIXTURES / "slack" / "view_submission.json").read_text())
    submission["user"]["id"] = BOB
    submission["view"]["private_metadata"] = json.dumps({"case_id": case.id})
    await desk.send(submission)
    case = await desk.case(ref)
    assert (case.identity_status, case.identity_method) == ("verified", "known_contact")


async def test_a_forged_answer_from_the_requesters_address_does_not_end_the_wait(desk: Harness) -> None:
    ref = await desk.deliver(ACCESS_AND_ERASURE)
    assert ref is not None
    view = await desk.open_modal(ref, "case.wait", user=ALICE)
    await desk.submit(view, user=ALICE, values={"waiting_for": "identity"})
    case = await desk.case(ref)
    forged = email(
        f"Re: [{ref}] My data",
        "Here is my ID, please send everything now.",
        authentication_results=f"{AUTHSERV}; spf=fail smtp.mailfrom=example.org; dkim=none; dmarc=fail",
    )
    assert await desk.deliver(forged) == ref  # taken in on the case...
    after = await desk.case(ref)
    assert (
        after.status == "awaiting_requester" and after.waiting_since == case.waiting_since
    )  # ...not an answer
    shown = desk.thread(ref)[-2:]
    assert "this sender may be forged" in rendered(shown[0])
    assert "did not end the wait" in desk.notes(ref)[-1] and "forged" in desk.notes(ref)[-1]
    trail = await desk.store.audit.trail(case.id)
    assert [e.action for e in trail][-2:] == ["email.follow_up", "email.wait_not_ended"]


async def test_the_bot_itself_is_not_staff(desk: Harness) -> None:
    from tests.support.slack_standin import BOT_USER

    ref = await desk.deliver(ACCESS_AND_ERASURE)
    assert ref is not None
    await desk.click(ref, "case.claim", user=BOT_USER)  # it is a member of the channel, not staff
    assert "Only the privacy team" in json.dumps(desk.slack.responses[-1])
    await desk.click(ref, "case.assign", user=ALICE, selected={"selected_user": BOT_USER})
    assert "only be assigned to members" in json.dumps(desk.slack.responses[-1])
    assert (await desk.case(ref)).assignee == ""


async def test_audit_events_and_case_facts_hold_no_personal_data(desk: Harness) -> None:
    """After a lifecycle with typed notes and a reason, the facts and the audit name nobody."""
    ref = await desk.deliver(ACCESS_AND_ERASURE)
    assert ref is not None
    view = await desk.open_modal(ref, "case.verify", user=ALICE)
    await desk.submit(view, user=ALICE, values={"method": "id_document", "note": "passport of Ana seen"})
    view = await desk.open_modal(ref, "case.extend", user=ALICE)
    await desk.submit(view, user=ALICE, values={"reason": "archive search for Ana Lopez"})
    view = await desk.open_modal(ref, "case.resolve", user=ALICE)
    await desk.submit(
        view,
        user=ALICE,
        values={
            "outcome": "fulfilled",
            "note": "sent Ana her data",
            "recipients": ["No recipients to inform"],
        },
    )
    personal = ("Ana", "Lopez", "ana.lopez@example.org", "passport", "archive search", "My data")
    import sqlite3

    with sqlite3.connect(desk.store.path) as conn:
        for table in ("cases", "audit_events", "outbox", "emails", "checklist_items"):
            text = repr(conn.execute(f"SELECT * FROM {table}").fetchall())
            for word in personal:
                assert word not in text, f"{word!r} in {table}"
        texts = [r[0] for r in conn.execute("SELECT body FROM free_texts ORDER BY id")]
    assert texts == ["passport of Ana seen", "archive search for Ana Lopez", "sent Ana her data"]
    notes = desk.notes(ref)  # the notes still say it all, rendered from the events and texts
    assert "passport of Ana seen" in notes[0] and "archive search for Ana Lopez" in notes[1]
    assert "sent Ana her data" in notes[2]
