"""Taking one email in: parse, classify, and store it as a new case, a follow-up or machine traffic.

`take_in` is the use case the mailbox watcher calls for every message. It runs in one
transaction together with the mailbox cursor, so a message is either fully taken in (email row,
case, audit event, cursor) or not at all, and a second delivery of the same Message-ID changes
nothing but the cursor.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from handlers.authentication import check_sender
from handlers.case_actions import end_wait
from handlers.classification import Classification, classify
from handlers.deadlines import Calendar
from handlers.parsing import InboundEmail, parse_email, synthetic_message_id
from handlers.systems import Inventory, checklist_for
from storage.models import Case
from storage.store import Store, Tx, iso

__all__ = ["CASE_REF", "IncomingMessage", "IntakeOutcome", "IntakeRules", "take_in", "take_in_unparsed"]

logger = logging.getLogger(__name__)

#: A case reference as it appears in subjects ("Re: [PRIV-2026-0042] Your request").
CASE_REF = re.compile(r"\bPRIV-(\d{4})-(\d{4,6})\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One message as the mailbox delivered it.

    `arrived_at` is the server's INTERNALDATE (aware). `historical` is set by the watcher for
    mail that was already in the folder on its first start and arrived before the backfill
    window: it is recorded but opens no case.
    """

    raw: bytes
    folder: str
    uidvalidity: int
    uid: int
    arrived_at: datetime
    historical: bool = False


Action = Literal["opened_case", "follow_up", "automated", "historical", "duplicate"]


@dataclass(frozen=True, slots=True)
class IntakeOutcome:
    """What became of a message; `case_ref` is set when it belongs to a case."""

    action: Action
    message_id: str
    case_ref: str | None = None


@dataclass(frozen=True, slots=True)
class IntakeRules:
    """How intake treats new mail: our mail server's authserv-id (for the spoofing warning), the
    data inventory (each new case's checklist) and whether waiting for the requester pauses the
    legal clock."""

    authserv_id: str | None = None
    inventory: Inventory | None = None
    pause_clock: bool = False


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
    - an auto-reply or bounce: recorded, never a case;
    - mail older than the backfill window on the first start: recorded, never a case;
    - anything else, unreadable messages included: a new case with its legal due date, its
      data-system checklist and what our own mail server said about the sender.

    An answer from the requester to a case waiting for them ends the wait.
    """
    now = now or datetime.now(UTC)
    # parsing and classifying are CPU work that pathological mail can stretch: off the event loop
    email, verdict = await asyncio.to_thread(_read, message.raw)
    async with store.transaction(now=now) as tx:
        outcome = await _record(tx, message, email, verdict, calendar, rules)
        await tx.advance_cursor(message.folder, uidvalidity=message.uidvalidity, uid=message.uid)
    if outcome.action == "opened_case":
        logger.info("case %s opened (%s)", outcome.case_ref, verdict.kind)
    elif outcome.case_ref:
        logger.info("%s stored on case %s", outcome.action.replace("_", "-"), outcome.case_ref)
    else:
        logger.debug("uid %d: %s", message.uid, outcome.action)
    return outcome


def _read(raw: bytes) -> tuple[InboundEmail, Classification]:
    email = parse_email(raw)
    return email, classify(email)


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
    now = now or datetime.now(UTC)
    message_id = synthetic_message_id(message.raw)
    problem = f"intake failed: {type(error).__name__}"
    async with store.transaction(now=now) as tx:
        if await tx.email_exists(message_id):
            outcome = IntakeOutcome("duplicate", message_id)
        else:
            case = await tx.open_case(
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
            await tx.insert_email(
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
                size=len(message.raw),
                raw=message.raw,
            )
            await tx.audit(
                case_id=case.id,
                actor="system",
                action="case.opened",
                after={"kind": "other", "status": case.status, "unreadable": True},
            )
            outcome = IntakeOutcome("opened_case", message_id, case.ref)
        await tx.advance_cursor(message.folder, uidvalidity=message.uidvalidity, uid=message.uid)
    logger.warning("uid %d stored raw after %s (case %s)", message.uid, problem, outcome.case_ref)
    return outcome


async def _record(
    tx: Tx,
    message: IncomingMessage,
    email: InboundEmail,
    verdict: Classification,
    calendar: Calendar,
    rules: IntakeRules,
) -> IntakeOutcome:
    if await tx.email_exists(email.message_id):
        return IntakeOutcome("duplicate", email.message_id)

    case = await _case_followed_up(tx, email)
    if case is not None:
        disposition: Action = "automated" if verdict.automated else "follow_up"
        await tx.insert_email(
            **_email_fields(message, email, verdict, case_id=case.id, disposition=disposition)
        )
        await tx.audit(
            case_id=case.id,
            actor="system",
            action=f"email.{disposition}",
            after={"kind": verdict.kind, "labels": list(verdict.labels)},
        )
        requester = case.requester_email.lower()
        if (
            disposition == "follow_up"
            and case.status == "awaiting_requester"
            and requester
            and requester in (email.from_addr.lower(), email.reply_to.lower())
        ):
            await end_wait(
                tx,
                case,
                actor="system",
                now=tx.now,
                calendar=calendar,
                pause_clock=rules.pause_clock,
                by_requester=True,
            )
        return IntakeOutcome(
            "follow_up" if disposition == "follow_up" else "automated", email.message_id, case.ref
        )

    if verdict.automated or message.historical:
        disposition = "automated" if verdict.automated else "historical"
        await tx.insert_email(**_email_fields(message, email, verdict, case_id=None, disposition=disposition))
        return IntakeOutcome(disposition, email.message_id)

    due_kind = "complaint" if verdict.kind == "complaint" else "gdpr"
    sender = check_sender(email, rules.authserv_id)
    reasons = list(verdict.reasons)
    if email.unreadable:
        reasons.insert(0, "could not be read")
    case = await tx.open_case(
        kind=verdict.kind,
        labels=verdict.labels,
        confidence=verdict.confidence,
        needs_review=verdict.needs_review or email.unreadable,
        reasons=reasons,
        language=verdict.language,
        requester_email=email.requester,
        requester_name=email.from_name,
        subject=email.subject,
        message_id=email.message_id,
        received_at=message.arrived_at,
        received_date=calendar.local_date(message.arrived_at),
        due_date=calendar.due_date(message.arrived_at, kind=due_kind),
        unreadable=email.unreadable,
        sender_check=sender.status,
        sender_check_detail=sender.detail,
    )
    if rules.inventory is not None:
        await tx.replace_checklist(case.id, checklist_for(rules.inventory, case.labels))
    await tx.insert_email(
        **_email_fields(message, email, verdict, case_id=case.id, disposition="opened_case")
    )
    await tx.audit(
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
    )
    return IntakeOutcome("opened_case", email.message_id, case.ref)


async def _case_followed_up(tx: Tx, email: InboundEmail) -> Case | None:
    """The case this email continues: by its thread headers first, then a reference in the subject."""
    thread = [*email.in_reply_to, *email.references]
    if thread:
        case = await tx.case_for_message_ids(thread)
        if case is not None:
            return case
    for m in CASE_REF.finditer(email.subject):
        case = await tx.case_by_ref(f"PRIV-{m.group(1)}-{m.group(2)}")
        if case is not None:
            return case
    return None


def _email_fields(
    message: IncomingMessage,
    email: InboundEmail,
    verdict: Classification,
    *,
    case_id: int | None,
    disposition: str,
) -> dict[str, object]:
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
        "kind": verdict.kind,
        "labels": list(verdict.labels),
        "confidence": verdict.confidence,
        "language": verdict.language,
        "automated": int(verdict.automated),
        "reasons": list(verdict.reasons),
        "problems": list(email.problems),
        "unreadable": int(email.unreadable),
        "size": email.size,
        "raw": message.raw,
    }
