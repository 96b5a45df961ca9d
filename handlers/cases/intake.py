"""Taking one email in: parse, classify, and store it as a new case, a follow-up or machine traffic.

`take_in_all` is the use case the mailbox watcher calls for every batch of new messages
(`take_in` for one). It runs in one transaction together with the mailbox cursor, so a batch is
either fully taken in (emails, cases, audit events, outbox rows, the cursor past its last
message) or not at all, and a second delivery of the same Message-ID changes nothing but the
cursor. The raw message is stored without the content of its attachments (the thread lists them
as not stored, and that is true).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from core.clock import system_clock
from core.errors import TransitionError
from core.refs import refs_in
from handlers.cases.acknowledgement import Acknowledgements, acknowledge
from handlers.cases.actions import end_wait
from handlers.cases.deadlines import Calendar
from handlers.cases.inventory import Inventory, checklist_for
from handlers.cases.reading import Read, read_all
from handlers.mail_in.forwards import forwarded_sender
from handlers.mail_in.lookalike import ascii_domain
from handlers.mail_in.parsing import InboundEmail, strip_attachments, synthetic_message_id
from storage.db import iso
from storage.models import Case
from storage.store import Store, Tx

__all__ = ["IncomingMessage", "IntakeOutcome", "IntakeRules", "take_in", "take_in_all", "take_in_unparsed"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One message as the mailbox delivered it.

    `arrived_at` is the server's INTERNALDATE (aware). `historical` is set by the watcher for
    mail that was already in the folder on its first start and arrived before the backfill
    window: it is recorded but opens no case. `size` is the server's RFC822.SIZE when known (a
    big message's `raw` lacks its attachments' content: handlers/mail_in/by_parts.py).
    """

    raw: bytes
    folder: str
    uidvalidity: int
    uid: int
    arrived_at: datetime
    historical: bool = False
    size: int = 0


Action = Literal["opened_case", "follow_up", "automated", "historical", "own_mail", "duplicate"]


@dataclass(frozen=True, slots=True)
class IntakeOutcome:
    """What became of a message; `case_ref` is set when it belongs to a case."""

    action: Action
    message_id: str
    case_ref: str | None = None


@dataclass(frozen=True, slots=True)
class IntakeRules:
    """How intake treats new mail: our mail server's authserv-id (for the spoofing warning), the
    data inventory (each new case's checklist), whether waiting for the requester pauses the
    legal clock, our privacy address (`mail_from`: its own mail coming back opens no case, and
    mail from its domain is a colleague's) and how to acknowledge new cases (None: not at all)."""

    authserv_id: str | None = None
    inventory: Inventory | None = None
    pause_clock: bool = False
    mail_from: str = ""
    acknowledgements: Acknowledgements | None = None

    @property
    def own_domain(self) -> str:
        return self.mail_from.rpartition("@")[2].lower()


NO_RULES = IntakeRules()


async def take_in(
    store: Store,
    message: IncomingMessage,
    *,
    calendar: Calendar,
    rules: IntakeRules = NO_RULES,
    now: datetime | None = None,
) -> IntakeOutcome:
    """Store one message exactly once and advance the folder's cursor past it.

    - a Message-ID already stored: nothing is stored again (the cursor still advances);
    - a reply to a stored email (In-Reply-To/References) or a subject naming a case reference:
      stored on that case as a follow-up;
    - our own mail coming back (from `MAIL_FROM`): recorded, never a case;
    - an auto-reply or bounce: recorded, never a case;
    - mail older than the backfill window on the first start: recorded, never a case;
    - anything else, unreadable messages included: a new case with its legal due date, its
      data-system checklist, what our own mail server said about the sender and its
      acknowledgement (or why there is none). A colleague's forward from our own domain opens
      the forwarded person's case.

    An answer from the requester to a case waiting for them ends the wait — unless our mail
    server says the sender was forged: then the thread says so and the case keeps waiting.
    """
    return (await take_in_all(store, [message], calendar=calendar, rules=rules, now=now))[0]


async def take_in_all(
    store: Store,
    messages: Sequence[IncomingMessage],
    *,
    calendar: Calendar,
    rules: IntakeRules = NO_RULES,
    now: datetime | None = None,
    reads: Sequence[Read] | None = None,
) -> list[IntakeOutcome]:
    """`take_in` for several messages of one folder, in UID order, in one transaction: all of
    them are taken in and the cursor advanced past the last, or (if any raises) none and the
    cursor stays. One commit for a batch instead of one per message is what lets a backlog of
    thousands be taken in quickly; the caller retries one at a time when a batch fails. The
    commit is not durable: a power loss that takes it back takes the cursor back with it, and
    the mail is fetched again (nothing is sent about these cases before the outbox's durable
    "started" mark, which makes this commit durable too: storage.db).

    `reads`: the messages already read (handlers.cases.reading, with these `rules`), one per
    message; else they are read here, in a thread."""
    if not messages:
        return []
    first = messages[0]
    if any((m.folder, m.uidvalidity) != (first.folder, first.uidvalidity) for m in messages):
        raise ValueError("a batch is taken in from one folder under one UIDVALIDITY")
    if reads is None:  # CPU work that pathological mail can stretch: off the event loop
        reads = await asyncio.to_thread(
            read_all, [m.raw for m in messages], rules.authserv_id, rules.own_domain
        )
    elif len(reads) != len(messages):
        raise ValueError(f"{len(reads)} reads for {len(messages)} messages")

    async def store_all(tx: Tx) -> list[IntakeOutcome]:
        stored = await tx.mail.stored_of([read.email.message_id for read in reads])
        outcomes = [
            await _record(tx, m, read, calendar, rules, stored)
            for m, read in zip(messages, reads, strict=True)
        ]
        last = max(m.uid for m in messages)
        await tx.cursors.advance(first.folder, uidvalidity=first.uidvalidity, uid=last)
        return outcomes

    # some twenty statements a message: run where the database is, not one trip each
    outcomes = await store.in_thread(store_all, now=now or system_clock(), durable=False)
    for message, read, outcome in zip(messages, reads, outcomes, strict=True):
        if outcome.action == "own_mail":
            logger.info("uid %d: our own mail came back; no case", message.uid)
        elif outcome.action == "opened_case":
            logger.info("case %s opened (%s)", outcome.case_ref, read.verdict.kind)
        elif outcome.case_ref:
            logger.info("%s stored on case %s", outcome.action.replace("_", "-"), outcome.case_ref)
        else:
            logger.debug("uid %d: %s", message.uid, outcome.action)
    return outcomes


async def take_in_unparsed(
    store: Store,
    message: IncomingMessage,
    error: BaseException,
    *,
    calendar: Calendar,
    now: datetime | None = None,
) -> IntakeOutcome:
    """Record a message whose normal intake failed: raw bytes kept, a case flagged "could not be
    read" opened (or nothing, if its content was already stored). Uses no parsing at all."""
    message_id = synthetic_message_id(message.raw)
    problem = f"intake failed: {type(error).__name__}"
    raw = await asyncio.to_thread(strip_attachments, message.raw)  # never raises
    async with store.transaction(now=now or system_clock()) as tx:
        if await tx.mail.exists(message_id):
            outcome = IntakeOutcome("duplicate", message_id)
        else:
            case = await tx.cases.open(
                kind="other",
                labels=("other",),
                confidence=0.0,
                needs_review=True,
                reasons=("could not be read", problem),
                language="und",
                requester_email="",
                requester_name="",
                subject="",
                message_id=message_id,
                received_at=message.arrived_at,
                received_date=calendar.local_date(message.arrived_at),
                due_date=calendar.due_date(message.arrived_at),
                unreadable=True,
            )
            email_id = await tx.mail.add(
                message_id=message_id,
                synthetic_id=1,
                case_id=case.id,
                disposition="opened_case",
                folder=message.folder,
                uidvalidity=message.uidvalidity,
                uid=message.uid,
                received_at=iso(message.arrived_at),
                kind="other",
                labels=["other"],
                problems=[problem],
                unreadable=1,
                size=max(message.size, len(message.raw)),
                raw=raw,
            )
            await tx.audit.append(
                case_id=case.id,
                actor="system",
                action="case.opened",
                after={"kind": "other", "status": case.status, "unreadable": True},
                email_id=email_id,
            )
            await tx.outbox.post_root(case.id)
            await tx.outbox.show_email(case.id, email_id)
            outcome = IntakeOutcome("opened_case", message_id, case.ref)
        await tx.cursors.advance(message.folder, uidvalidity=message.uidvalidity, uid=message.uid)
    logger.warning("uid %d stored raw after %s (case %s)", message.uid, problem, outcome.case_ref)
    return outcome


async def _record(
    tx: Tx, message: IncomingMessage, read: Read, calendar: Calendar, rules: IntakeRules, stored: set[str]
) -> IntakeOutcome:
    """Take one message in; `stored`: the Message-IDs among the batch's already stored (this
    one's is added to it)."""
    email, verdict = read.email, read.verdict
    if email.message_id in stored:
        return IntakeOutcome("duplicate", email.message_id)
    stored.add(email.message_id)

    if rules.mail_from and _same_address(email.from_addr, rules.mail_from):
        await tx.mail.add(**_email_fields(message, read, case_id=None, disposition="automated"))
        return IntakeOutcome("own_mail", email.message_id)

    case = await _case_followed_up(tx, email)
    if case is not None:
        return await _follow_up(tx, case, message, read, calendar, rules)

    if verdict.automated or message.historical:
        disposition: Action = "automated" if verdict.automated else "historical"
        await tx.mail.add(**_email_fields(message, read, case_id=None, disposition=disposition))
        return IntakeOutcome(disposition, email.message_id)

    due_kind = "complaint" if verdict.kind == "complaint" else "gdpr"
    reasons = list(verdict.reasons)
    if email.unreadable:
        reasons.insert(0, "could not be read")
    requester_email, requester_name = email.requester, email.from_name
    if rules.own_domain and _ours(email.from_addr, rules.own_domain):
        forwarded = forwarded_sender(email)
        if forwarded is not None and not _ours(forwarded[1], rules.own_domain):
            requester_name, requester_email = forwarded
            reasons.append("forwarded by a colleague")
    case = await tx.cases.open(
        kind=verdict.kind,
        labels=verdict.labels,
        confidence=verdict.confidence,
        needs_review=verdict.needs_review or email.unreadable,
        reasons=reasons,
        language=verdict.language,
        requester_email=requester_email,
        requester_name=requester_name,
        subject=email.subject,
        message_id=email.message_id,
        received_at=message.arrived_at,
        received_date=calendar.local_date(message.arrived_at),
        due_date=calendar.due_date(message.arrived_at, kind=due_kind),
        unreadable=email.unreadable,
        sender_check=read.sender.status,
        sender_check_detail=read.sender.detail,
    )
    email_id = await tx.mail.add(**_email_fields(message, read, case_id=case.id, disposition="opened_case"))
    await tx.audit.append(
        case_id=case.id,
        actor="system",
        action="case.opened",
        after={
            "kind": case.kind,
            "labels": list(case.labels),
            "status": case.status,
            "due_date": case.due_date.isoformat(),
            "received_at": iso(case.received_at),
        },
        email_id=email_id,
    )
    await tx.outbox.post_root(case.id)
    await tx.outbox.show_email(case.id, email_id)
    if rules.inventory is not None:
        items = checklist_for(rules.inventory, case.labels)
        if items:
            await tx.cases.replace_checklist(case.id, items)
            await tx.outbox.post_checklist(case.id)
    if rules.acknowledgements is not None:
        await acknowledge(tx, case, email, read.sender, rules.acknowledgements)
    return IntakeOutcome("opened_case", email.message_id, case.ref)


def _ours(address: str, own_domain: str) -> bool:
    """Whether the address is at our own domain: the same domain once both are written in ASCII
    (punycode), so a look-alike (`іmal.example`, `xn--mal-hpd.example`) never is."""
    return ascii_domain(address.rpartition("@")[2]) == ascii_domain(own_domain)


def _same_address(address: str, ours: str) -> bool:
    """Whether `address` is our privacy address itself (its domain compared as by `_ours`)."""
    local, _, domain = ours.lower().rpartition("@")
    return address.rpartition("@")[0] == local and _ours(address, domain)


async def _follow_up(
    tx: Tx, case: Case, message: IncomingMessage, read: Read, calendar: Calendar, rules: IntakeRules
) -> IntakeOutcome:
    """Store an email on the case it continues; the requester's answer ends a wait."""
    email, verdict = read.email, read.verdict
    disposition: Action = "automated" if verdict.automated else "follow_up"
    email_id = await tx.mail.add(**_email_fields(message, read, case_id=case.id, disposition=disposition))
    await tx.audit.append(
        case_id=case.id,
        actor="system",
        action=f"email.{disposition}",
        after={"kind": verdict.kind, "labels": list(verdict.labels), "sender_check": read.sender.status},
        email_id=email_id,
    )
    await tx.outbox.show_email(case.id, email_id)
    if verdict.kind == "bounce":
        await _bounced(tx, case, email, email_id)
    requester = case.requester_email.lower()
    answers = (
        disposition == "follow_up"
        and case.status == "awaiting_requester"
        and requester
        and requester in (email.from_addr.lower(), email.reply_to.lower())
    )
    if answers:
        if read.sender.status == "fail":
            await _wait_not_ended(tx, case, email_id, reason="sender_check", detail=read.sender.detail)
        else:
            try:
                await end_wait(
                    tx,
                    case,
                    actor="system",
                    calendar=calendar,
                    pause_clock=rules.pause_clock,
                    by_requester=True,
                )
            except TransitionError as e:  # a business refusal: the email is taken in all the same
                await _wait_not_ended(tx, case, email_id, reason="refused", detail=str(e))
    return IntakeOutcome(disposition, email.message_id, case.ref)


async def _bounced(tx: Tx, case: Case, email: InboundEmail, email_id: int) -> None:
    """A delivery failure report on a case: the email of ours it names (else our last one sent)
    may not have arrived, and the thread says so."""
    ours = [o for o in await tx.mail.outbound_of_case(case.id) if o.sent_at is not None]
    if not ours:
        return
    named = set(email.in_reply_to) | set(email.references)
    outbound = next((o for o in reversed(ours) if o.message_id in named), ours[-1])
    event_id = await tx.audit.append(
        case_id=case.id,
        actor="system",
        action="email.bounced",
        after={"purpose": outbound.purpose},
        email_id=email_id,
        outbound_id=outbound.id,
    )
    await tx.outbox.post_note(case.id, event_id)
    logger.warning("case %s: a delivery failure report came back for an email we sent", case.ref)


async def _wait_not_ended(tx: Tx, case: Case, email_id: int, *, reason: str, detail: str) -> None:
    """Record (and say in the thread) that an answer from the requester's address did not end the wait."""
    event_id = await tx.audit.append(
        case_id=case.id,
        actor="system",
        action="email.wait_not_ended",
        after={"reason": reason, "detail": detail[:200]},
        email_id=email_id,
    )
    await tx.outbox.post_note(case.id, event_id)
    logger.warning("case %s: an answer did not end the wait (%s)", case.ref, reason)


async def _case_followed_up(tx: Tx, email: InboundEmail) -> Case | None:
    """The case this email continues: by its thread headers first, then a reference in the subject."""
    thread = [*email.in_reply_to, *email.references]
    if thread:
        case = await tx.cases.by_thread(thread)
        if case is not None:
            return case
    for ref in refs_in(email.subject):
        case = await tx.cases.by_ref(ref)
        if case is not None:
            return case
    return None


def _email_fields(
    message: IncomingMessage, read: Read, *, case_id: int | None, disposition: str
) -> dict[str, object]:
    email, verdict = read.email, read.verdict
    return {
        "message_id": email.message_id,
        "synthetic_id": int(email.synthetic_id),
        "case_id": case_id,
        "disposition": disposition,
        "folder": message.folder,
        "uidvalidity": message.uidvalidity,
        "uid": message.uid,
        "received_at": iso(message.arrived_at),
        "sent_at": iso(email.sent_at) if email.sent_at and email.sent_at.tzinfo else None,
        "from_name": email.from_name,
        "from_addr": email.from_addr,
        "reply_to": email.reply_to,
        "to_addrs": list(email.to),
        "cc_addrs": list(email.cc),
        "subject": email.subject,
        "in_reply_to": list(email.in_reply_to),
        "references_ids": list(email.references),
        "headers": [list(h) for h in email.headers],
        "body_text": email.text,
        "new_text": email.new_text,
        "quoted_text": email.quoted_text,
        "signature": email.signature,
        "html_only": int(email.html_only),
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "size": a.size}
            for a in email.attachments
        ],
        "attachment_count": email.attachment_count,
        "kind": verdict.kind,
        "labels": list(verdict.labels),
        "confidence": verdict.confidence,
        "language": verdict.language,
        "automated": int(verdict.automated),
        "reasons": list(verdict.reasons),
        "problems": list(email.problems),
        "unreadable": int(email.unreadable),
        "size": max(message.size, email.size),
        "sender_check": read.sender.status,
        "sender_check_detail": read.sender.detail,
        "raw": read.kept(message.raw),
    }
