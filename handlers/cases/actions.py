"""What staff can do to a case, as plain async use cases on the store.

Every function runs in one transaction: it reads the case as it is *now* in the database, checks
that the change is allowed from that state (two people acting at once cannot corrupt a case; the
second gets a `TransitionError` saying why), applies it, appends the audit event (actor, time,
the changed facts before and after, a pointer to any free text typed) and queues the thread note
that records it and the re-rendering of the root. The Slack listeners call these; tests call them
directly. What the note says is decided when it is posted (`handlers.slack.notes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from core.errors import Refused, TransitionError
from core.vocabulary import (
    FULFILLING_OUTCOMES,
    IDENTITY_METHODS,
    IDENTITY_REQUIRED,
    KINDS,
    OUTCOMES,
    RECIPIENTS_REQUIRED,
    REQUEST_KINDS,
    WAITING_FOR,
    kind_label,
)
from handlers.cases.deadlines import Calendar
from handlers.cases.inventory import Inventory, checklist_for
from handlers.cases.notices import long_date
from handlers.mail_out.letters import letter_languages
from handlers.mail_out.outgoing import queue_email
from handlers.mail_out.templates import OFFERED
from storage.models import Case, StoredEmail
from storage.store import Store, Tx

__all__ = [
    "SplitResult",
    "change_type",
    "check_extendable",
    "claim",
    "end_wait",
    "extend",
    "new_rights",
    "record",
    "reopen",
    "reply_to_requester",
    "resolve",
    "split_off",
    "start_wait",
    "stop_waiting",
    "tick_checklist",
    "verify_identity",
]


async def record(
    tx: Tx,
    case: Case,
    *,
    actor: str,
    action: str,
    changes: dict[str, object] | None = None,
    facts: dict[str, object] | None = None,
    note: bool = True,
    **refers_to: int | None,
) -> Case:
    """Apply `changes` to the case, append the audit event (with `facts`, further enums and dates
    the note needs, and what it `refers_to`: `text_id`, `email_id`, `outbound_id`) and queue the
    root's re-rendering and, with `note`, the thread note."""
    updated, before, after = await tx.cases.update(case, changes or {})
    event_id = await tx.audit.append(
        case_id=case.id,
        actor=actor,
        action=action,
        before=before,
        after={**after, **(facts or {})},
        **refers_to,
    )
    await tx.outbox.update_root(case.id)
    if note:
        await tx.outbox.post_note(case.id, event_id)
    return updated


async def _text(tx: Tx, case: Case, purpose: str, body: str) -> int | None:
    """Keep a free text typed by staff (None when they typed nothing)."""
    body = body.strip()
    return await tx.cases.add_text(case.id, purpose, body) if body else None


async def _open_case(tx: Tx, case_id: int) -> Case:
    case = await tx.cases.get(case_id)
    if case is None:
        raise TransitionError("This case no longer exists.")
    if not case.is_open:
        raise TransitionError(f"{case.ref} is resolved; reopen it first.")
    return case


def _due(
    calendar: Calendar,
    case: Case,
    *,
    kind: str | None = None,
    extended: bool | None = None,
    paused_days: int | None = None,
) -> date:
    kind = kind or case.kind
    extended = case.extended_at is not None if extended is None else extended
    return calendar.due_date(
        case.received_at,
        kind="complaint" if kind == "complaint" else "gdpr",
        extended=extended and kind != "complaint",
        paused_days=case.paused_days if paused_days is None else paused_days,
    )


# --- claim -------------------------------------------------------------------------------------


async def claim(store: Store, *, case_id: int, actor: str, assignee: str, now: datetime) -> Case:
    """Assign the case to `assignee` (the actor themself, or another staff member). A new case
    becomes `in_progress`; a waiting or extended case keeps its status."""
    async with store.transaction(now=now) as tx:
        case = await _open_case(tx, case_id)
        if case.assignee == assignee:
            raise TransitionError(
                f"{case.ref} is already assigned to {'you' if assignee == actor else 'them'}."
            )
        changes: dict[str, object] = {"assignee": assignee}
        if case.status == "new":
            changes["status"] = "in_progress"
        return await record(tx, case, actor=actor, action="case.claimed", changes=changes)


# --- type --------------------------------------------------------------------------------------


async def change_type(
    store: Store,
    *,
    case_id: int,
    actor: str,
    labels: Sequence[str],
    now: datetime,
    calendar: Calendar,
    inventory: Inventory,
) -> Case:
    """Set the case's kinds (`labels`, primary first). The due date follows when the case becomes
    or stops being a complaint; the checklist follows the rights asked for.

    The new labels of the email that opened the case are kept, in the same transaction, as a
    correction: a labelled example `privacy-desk train` learns from (`storage.corrections`).
    Retention (issue 11) erases it with the case."""
    labels = list(dict.fromkeys(labels))
    if not labels or any(k not in KINDS for k in labels):
        raise TransitionError("Choose at least one type.", field="labels")
    async with store.transaction(now=now) as tx:
        case = await _open_case(tx, case_id)
        if tuple(labels) == case.labels and labels[0] == case.kind:
            raise TransitionError(f"{case.ref} already has that type.", field="labels")
        changes: dict[str, object] = {"kind": labels[0], "labels": labels, "needs_review": False}
        due = _due(calendar, case, kind=labels[0])
        if due != case.due_date:
            changes["due_date"] = due
        await tx.cases.replace_checklist(case.id, checklist_for(inventory, labels))
        await tx.outbox.post_checklist(case.id)
        opening = await tx.mail.id_of(case.message_id)
        if opening is not None:  # a case opened by hand has no email to learn from
            await tx.corrections.add(case.id, opening, labels, actor)
        return await record(tx, case, actor=actor, action="case.type_changed", changes=changes)


# --- identity ----------------------------------------------------------------------------------


async def verify_identity(
    store: Store, *, case_id: int, actor: str, method: str, note: str, now: datetime
) -> Case:
    """Record how the requester's identity was established (or that it is not needed)."""
    if method not in IDENTITY_METHODS:
        raise TransitionError("Choose how the identity was verified.", field="method")
    async with store.transaction(now=now) as tx:
        case = await _open_case(tx, case_id)
        changes: dict[str, object] = {
            "identity_status": "not_needed" if method == "not_needed" else "verified",
            "identity_method": method,
            "identity_by": actor,
            "identity_at": now,
        }
        note_id = await _text(tx, case, "identity_note", note)
        return await record(
            tx, case, actor=actor, action="case.identity_recorded", changes=changes, text_id=note_id
        )


# --- extension ---------------------------------------------------------------------------------


async def extend(
    store: Store, *, case_id: int, actor: str, reason: str, now: datetime, calendar: Calendar
) -> Case:
    """Extend the deadline by two further months (receipt + three months, art. 12(3)).

    Allowed once, with a reason, and only until the one-month due date has passed; complaints
    follow the internal response time and cannot be extended.
    """
    if not reason.strip():
        raise TransitionError(
            "Give the reason for the extension; the requester must be told it.", field="reason"
        )
    async with store.transaction(now=now) as tx:
        case = await _open_case(tx, case_id)
        one_month = check_extendable(case, calendar=calendar, now=now)
        text_id = await _text(tx, case, "extension_reason", reason)
        changes: dict[str, object] = {
            "extended_at": now,
            "extension_text_id": text_id,
            "due_date": _due(calendar, case, extended=True),
        }
        if case.status != "awaiting_requester":
            changes["status"] = "extended"
        else:
            changes["status_before_wait"] = "extended"
        return await record(
            tx,
            case,
            actor=actor,
            action="case.extended",
            changes=changes,
            facts={"notify_by": one_month.isoformat()},
            text_id=text_id,
        )


def check_extendable(case: Case, *, calendar: Calendar, now: datetime) -> date:
    """The one-month due date, if the case may still be extended now; else `TransitionError`
    saying why (resolved, already extended, a complaint, or past the one-month due date)."""
    if not case.is_open:
        raise TransitionError(f"{case.ref} is resolved; reopen it first.", field="reason")
    if case.extended_at is not None:
        raise TransitionError(
            f"{case.ref} was already extended, to {long_date(case.due_date)}.", field="reason"
        )
    if case.kind == "complaint":
        raise TransitionError(
            "Complaints follow the internal response time; they cannot be extended.", field="reason"
        )
    one_month = _due(calendar, case, extended=False)
    if calendar.local_date(now) > one_month:
        raise TransitionError(
            f"Too late to extend {case.ref}: an extension must be decided and notified by the one-month "
            f"due date ({long_date(one_month)}, GDPR art. 12(3)).",
            field="reason",
        )
    return one_month


# --- waiting for the requester -------------------------------------------------------------------


async def start_wait(
    store: Store,
    *,
    case_id: int,
    actor: str,
    waiting_for: str,
    note: str,
    now: datetime,
    pause_clock: bool,
) -> Case:
    """Mark the case as waiting for the requester (identity documents or a clarification)."""
    if waiting_for not in WAITING_FOR:
        raise TransitionError("Choose what you are waiting for.", field="waiting_for")
    async with store.transaction(now=now) as tx:
        case = await _open_case(tx, case_id)
        return await _begin_wait(
            tx, case, actor=actor, waiting_for=waiting_for, note=note, pause_clock=pause_clock
        )


async def _begin_wait(
    tx: Tx, case: Case, *, actor: str, waiting_for: str, note: str, pause_clock: bool
) -> Case:
    if case.status == "awaiting_requester":
        raise TransitionError(f"{case.ref} is already waiting for the requester.")
    changes: dict[str, object] = {
        "status": "awaiting_requester",
        "status_before_wait": case.status,
        "waiting_since": tx.now,
        "waiting_for": waiting_for,
    }
    return await record(
        tx,
        case,
        actor=actor,
        action="case.waiting",
        changes=changes,
        facts={"clock_paused": pause_clock},
        text_id=await _text(tx, case, "wait_note", note),
    )


async def end_wait(
    tx: Tx, case: Case, *, actor: str, calendar: Calendar, pause_clock: bool, by_requester: bool
) -> Case:
    """End a wait inside the caller's transaction (the intake ends it when the requester answers).

    With `pause_clock`, the days waited are added back to the deadline: (answer date − wait start
    date) days, then the weekend/holiday roll-forward again.
    """
    if case.status != "awaiting_requester" or case.waiting_since is None:
        raise TransitionError(f"{case.ref} is not waiting for the requester.")
    waited = (calendar.local_date(tx.now) - calendar.local_date(case.waiting_since)).days
    changes: dict[str, object] = {
        "status": case.status_before_wait or "in_progress",
        "waiting_since": None,
        "waiting_for": "",
        "status_before_wait": None,
    }
    paused = pause_clock and waited > 0
    if paused:
        changes["paused_days"] = case.paused_days + waited
        changes["due_date"] = _due(calendar, case, paused_days=case.paused_days + waited)
    return await record(
        tx,
        case,
        actor=actor,
        action="case.wait_ended",
        changes=changes,
        facts={"by_requester": by_requester, "waited_days": waited, "clock_paused": paused},
    )


async def stop_waiting(
    store: Store, *, case_id: int, actor: str, now: datetime, calendar: Calendar, pause_clock: bool
) -> Case:
    """Staff end a wait themselves (the answer came another way)."""
    async with store.transaction(now=now) as tx:
        case = await _open_case(tx, case_id)
        return await end_wait(
            tx, case, actor=actor, calendar=calendar, pause_clock=pause_clock, by_requester=False
        )


# --- writing to the requester -------------------------------------------------------------------


async def reply_to_requester(
    store: Store,
    *,
    case_id: int,
    actor: str,
    body: str,
    wait_for: str,
    now: datetime,
    pause_clock: bool,
    mail_from: str,
    template: str = "",
    country: str = "BE",
) -> Case:
    """Record an email to the requester for the outbox to send (threaded to their last email, the
    case reference in the subject); optionally start waiting for their answer in the same step.

    `template` names the template the message was written from (see `OFFERED`): it is recorded
    as the email's purpose, and its languages as the email's. Asking for identity documents
    always starts the wait for them."""
    body = body.strip()
    if not body:
        raise TransitionError("Write the reply.", field="body")
    if wait_for and wait_for not in WAITING_FOR:
        raise TransitionError("Choose what you are waiting for, or nothing.", field="wait_for")
    if template and template not in OFFERED:
        raise TransitionError("Choose one of the templates, or none.", field="body")
    if template == "identity_request" and not wait_for:
        wait_for = "identity"
    async with store.transaction(now=now) as tx:
        case = await _open_case(tx, case_id)
        if "@" not in case.requester_email:
            raise TransitionError("This case has no address to answer to.", field="body")
        language = ", ".join(letter_languages(case.language, country=country)) if template else case.language
        try:
            outbound_id = await queue_email(
                tx,
                case,
                purpose=template or "reply",
                body=body,
                language=language,
                author=actor,
                mail_from=mail_from,
            )
        except Refused as e:
            raise TransitionError(f"This email cannot be sent: {e}.", field="body") from None
        case = await record(
            tx,
            case,
            actor=actor,
            action="case.replied",
            facts={"characters": len(body), **({"template": template} if template else {})},
            outbound_id=outbound_id,
        )
        if wait_for and case.status != "awaiting_requester":
            case = await _begin_wait(
                tx, case, actor=actor, waiting_for=wait_for, note="", pause_clock=pause_clock
            )
        return case


# --- resolution --------------------------------------------------------------------------------


async def resolve(
    store: Store,
    *,
    case_id: int,
    actor: str,
    outcome: str,
    note: str,
    recipients: Sequence[str],
    now: datetime,
    calendar: Calendar,
) -> Case:
    """Close the case with an outcome. Access, portability and erasure cannot be (partly) fulfilled
    before identity is recorded; erasure and rectification say which recipients were informed."""
    if outcome not in OUTCOMES:
        raise TransitionError("Choose an outcome.", field="outcome")
    async with store.transaction(now=now) as tx:
        case = await _open_case(tx, case_id)
        sensitive = [k for k in case.labels if k in IDENTITY_REQUIRED]
        if outcome in FULFILLING_OUTCOMES and sensitive and not case.identity_settled:
            raise TransitionError(
                f"Verify the requester's identity before fulfilling "
                f"a {kind_label(sensitive[0]).split(' (')[0].lower()} "
                f"request (Verify identity), or choose another outcome.",
                field="outcome",
            )
        needs_recipients = outcome in FULFILLING_OUTCOMES and any(
            k in RECIPIENTS_REQUIRED for k in case.labels
        )
        if needs_recipients and not recipients:
            raise TransitionError(
                "Say which recipients were informed (art. 19), or that there were none.", field="recipients"
            )
        text_id = await _text(tx, case, "outcome_note", note)
        changes: dict[str, object] = {
            "status": "resolved",
            "outcome": outcome,
            "outcome_text_id": text_id,
            "recipients_informed": list(recipients),
            "resolved_on_time": calendar.local_date(now) <= case.due_date,
            "closed_at": now,
            "waiting_since": None,
            "waiting_for": "",
            "status_before_wait": None,
        }
        return await record(
            tx,
            case,
            actor=actor,
            action="case.resolved",
            changes=changes,
            facts={"due_date": case.due_date.isoformat()},
            text_id=text_id,
        )


async def reopen(store: Store, *, case_id: int, actor: str, reason: str, now: datetime) -> Case:
    """Reopen a resolved case, with a reason; it goes back to work (extended if it had been)."""
    if not reason.strip():
        raise TransitionError("Give the reason for reopening.", field="reason")
    async with store.transaction(now=now) as tx:
        case = await tx.cases.get(case_id)
        if case is None:
            raise TransitionError("This case no longer exists.")
        if case.is_open:
            raise TransitionError(f"{case.ref} is not resolved.")
        changes: dict[str, object] = {
            "status": "extended" if case.extended_at else ("in_progress" if case.assignee else "new"),
            "outcome": None,
            "outcome_text_id": None,
            "resolved_on_time": None,
            "closed_at": None,
            "recipients_informed": [],
        }
        reason_id = await _text(tx, case, "reopen_reason", reason)
        return await record(tx, case, actor=actor, action="case.reopened", changes=changes, text_id=reason_id)


# --- split -------------------------------------------------------------------------------------


def new_rights(email: StoredEmail, case: Case) -> list[str]:
    """The rights (or complaint) a follow-up asks for that its case does not cover yet."""
    return [k for k in email.labels if k in (*REQUEST_KINDS, "complaint") and k not in case.labels]


@dataclass(frozen=True, slots=True)
class SplitResult:
    """The case a follow-up was split off into, and the case it came from."""

    new_case: Case
    original: Case


async def split_off(
    store: Store,
    *,
    email_id: int,
    actor: str,
    now: datetime,
    calendar: Calendar,
    inventory: Inventory,
    labels: Sequence[str] | None = None,
) -> SplitResult:
    """Open a linked case for the new right(s) a follow-up email asks for, with its own receipt
    date (the follow-up's arrival) and due date; both threads get a cross-link."""
    async with store.transaction(now=now) as tx:
        email = await tx.mail.get(email_id)
        if email is None or email.case_id is None:
            raise TransitionError("That email is not on a case.")
        if email.split_case_id is not None:
            other = await tx.cases.get(email.split_case_id)
            raise TransitionError(f"Already split off into {other.ref if other else 'another case'}.")
        original = await tx.cases.get(email.case_id)
        assert original is not None
        asked = list(labels) if labels else new_rights(email, original)
        if not asked:
            raise TransitionError("This follow-up asks for no right the case does not already cover.")
        kind = asked[0]
        case = await tx.cases.open(
            kind=kind,
            labels=asked,
            confidence=email.confidence,
            needs_review=False,
            reasons=[f"split off {original.ref}"],
            language=email.language,
            requester_email=original.requester_email,
            requester_name=original.requester_name,
            subject=email.subject,
            message_id=email.message_id,
            received_at=email.received_at,
            received_date=calendar.local_date(email.received_at),
            due_date=calendar.due_date(
                email.received_at, kind="complaint" if kind == "complaint" else "gdpr"
            ),
            unreadable=False,
            sender_check=email.sender_check,
            sender_check_detail=email.sender_check_detail,
        )
        await tx.mail.mark_split(email.id, case.id)
        await tx.outbox.post_root(case.id)
        await tx.cases.replace_checklist(case.id, checklist_for(inventory, asked))
        if await tx.cases.checklist(case.id):
            await tx.outbox.post_checklist(case.id)
        dates = {"received_date": case.received_date.isoformat(), "due_date": case.due_date.isoformat()}
        changes: dict[str, object] = {"split_from_case_id": original.id, "assignee": original.assignee}
        if original.assignee:
            changes["status"] = "in_progress"
        case = await record(
            tx,
            case,
            actor=actor,
            action="case.split_from",
            changes=changes,
            facts={"from_ref": original.ref, **dates},
            email_id=email.id,
        )
        original = await record(
            tx,
            original,
            actor=actor,
            action="case.split",
            facts={"into_ref": case.ref, "kind": kind, **dates},
            email_id=email.id,
        )
        return SplitResult(new_case=case, original=original)


# --- checklist ---------------------------------------------------------------------------------


async def tick_checklist(
    store: Store, *, case_id: int, actor: str, done_ids: set[int], now: datetime
) -> Case:
    """Make exactly `done_ids` the ticked items of the case's checklist."""
    async with store.transaction(now=now) as tx:
        case = await _open_case(tx, case_id)
        changed = await tx.cases.set_checklist_done(case.id, done_ids, actor=actor)
        if not changed:
            return case
        items = await tx.cases.checklist(case.id)
        await tx.outbox.post_checklist(case.id)
        return await record(
            tx,
            case,
            actor=actor,
            action="case.checklist",
            facts={
                "changes": [["ticked" if i.id in done_ids else "unticked", i.name] for i in changed],
                "done": sum(1 for i in items if i.done),
                "total": len(items),
            },
        )
