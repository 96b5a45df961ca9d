"""What staff can do to a case, as plain async use cases on the store.

Every function runs in one transaction: it reads the case as it is *now* in the database, checks
that the change is allowed from that state (two people acting at once cannot corrupt a case; the
second gets a `TransitionError` saying why), applies it, appends the audit event (actor, time,
before/after) and queues a one-line note for the case thread. The Slack listeners call these and
render; tests call them directly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email.utils import make_msgid

from bot.errors import TransitionError
from handlers.classification import KINDS
from handlers.deadlines import Calendar
from handlers.render import (
    IDENTITY_LABELS,
    OUTCOME_LABELS,
    WAITING_LABELS,
    escape_mrkdwn,
    kind_label,
    mention,
    new_rights,
    notice_note_blocks,
)
from handlers.systems import Inventory, checklist_for
from storage.models import Case
from storage.store import Store, Tx

__all__ = [
    "IDENTITY_METHODS",
    "OUTCOMES",
    "WAITING_FOR",
    "change_type",
    "claim",
    "end_wait",
    "extend",
    "extension_notice",
    "long_date",
    "reopen",
    "reply_subject",
    "reply_to_requester",
    "resolve",
    "split_off",
    "start_wait",
    "tick_checklist",
    "verify_identity",
]

IDENTITY_METHODS = {**IDENTITY_LABELS, "not_needed": "not needed"}
WAITING_FOR = WAITING_LABELS
OUTCOMES = OUTCOME_LABELS
#: Rights whose fulfilment discloses or destroys data: identity must be settled first.
IDENTITY_REQUIRED = ("access", "portability", "erasure")
#: Rights after which recipients must be told (art. 19).
RECIPIENTS_REQUIRED = ("erasure", "rectification")
FULFILLING = ("fulfilled", "partial")


def _sentence(text: str) -> str:
    """Staff-typed text as a sentence of a note: escaped, trimmed, ending with a full stop."""
    text = escape_mrkdwn(" ".join(text.split()))
    return text if not text or text[-1] in ".!?" else text + "."


def long_date(day: date) -> str:
    """ "30 June 2026"."""
    return f"{day.day} {day:%B %Y}"


async def _open_case(tx: Tx, case_id: int) -> Case:
    case = await tx.case_by_id(case_id)
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
        who = "claimed the case" if assignee == actor else f"assigned the case to {mention(assignee)}"
        return await tx.update_case(
            case, actor=actor, action="case.claimed", changes=changes, note=f"{mention(actor)} {who}."
        )


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
    or stops being a complaint; the checklist follows the rights asked for."""
    labels = list(dict.fromkeys(labels))
    if not labels or any(k not in KINDS for k in labels):
        raise TransitionError("Choose at least one type.", field="labels")
    async with store.transaction(now=now) as tx:
        case = await _open_case(tx, case_id)
        kind = labels[0]
        if (kind, *labels[1:]) == (case.kind, *case.labels[1:]) and tuple(labels) == case.labels:
            raise TransitionError(f"{case.ref} already has that type.", field="labels")
        changes: dict[str, object] = {"kind": kind, "labels": labels, "needs_review": False}
        due = _due(calendar, case, kind=kind)
        if due != case.due_date:
            changes["due_date"] = due
        await tx.replace_checklist(case.id, checklist_for(inventory, labels))
        text = kind_label(kind) + "".join(f" + {kind_label(x)}" for x in labels[1:])
        note = f"{mention(actor)} set the type to {text}."
        if "due_date" in changes:
            note += f" Due date now {long_date(due)}."
        return await tx.update_case(
            case, actor=actor, action="case.type_changed", changes=changes, note=note, checklist_changed=True
        )


# --- identity ----------------------------------------------------------------------------------


async def verify_identity(
    store: Store, *, case_id: int, actor: str, method: str, note: str, now: datetime
) -> Case:
    """Record how the requester's identity was established (or that it is not needed)."""
    if method not in IDENTITY_METHODS:
        raise TransitionError("Choose how the identity was verified.", field="method")
    async with store.transaction(now=now) as tx:
        case = await _open_case(tx, case_id)
        status = "not_needed" if method == "not_needed" else "verified"
        changes: dict[str, object] = {
            "identity_status": status,
            "identity_method": method,
            "identity_by": actor,
            "identity_at": now,
        }
        text = (
            f"{mention(actor)} recorded that identity verification is not needed."
            if status == "not_needed"
            else f"{mention(actor)} verified the requester's identity: {IDENTITY_METHODS[method]}."
        )
        if note.strip():
            text += f" {_sentence(note)}"
        return await tx.update_case(
            case, actor=actor, action="case.identity_recorded", changes=changes, note=text
        )


# --- extension ---------------------------------------------------------------------------------


async def extend(
    store: Store, *, case_id: int, actor: str, reason: str, now: datetime, calendar: Calendar
) -> Case:
    """Extend the deadline by two further months (receipt + three months, art. 12(3)).

    Allowed once, with a reason, and only until the one-month due date has passed; complaints
    follow the internal response time and cannot be extended.
    """
    reason = reason.strip()
    if not reason:
        raise TransitionError(
            "Give the reason for the extension; the requester must be told it.", field="reason"
        )
    async with store.transaction(now=now) as tx:
        case = await _open_case(tx, case_id)
        one_month = check_extendable(case, calendar=calendar, now=now)
        due = _due(calendar, case, extended=True)
        changes: dict[str, object] = {"extended_at": now, "extension_reason": reason, "due_date": due}
        if case.status != "awaiting_requester":
            changes["status"] = "extended"
        else:
            changes["status_before_wait"] = "extended"
        note = (
            f"{mention(actor)} extended the deadline to {long_date(due)}: {escape_mrkdwn(reason)}\n"
            f"The requester must be told by {long_date(one_month)}. Notice to send:\n"
            f">>> {escape_mrkdwn(extension_notice(case, due=due, reason=reason, language=case.language))}"
        )
        return await tx.update_case(
            case,
            actor=actor,
            action="case.extended",
            changes=changes,
            note=note,
            note_blocks=notice_note_blocks(note, case),
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


_NOTICES = {
    "en": (
        "Dear {name},\n\nWe received your request on {received} (our reference {ref}). We need more time "
        "to answer it, for this reason: {reason}. As article 12(3) of the GDPR allows, we are extending the "
        "time to answer by two months: you will receive our answer by {due} at the latest.\n\n"
        "Kind regards,\nThe privacy team"
    ),
    "fr": (
        "Bonjour {name},\n\nNous avons reçu votre demande le {received} (notre référence {ref}). Nous avons "
        "besoin de plus de temps pour y répondre, pour la raison suivante : {reason}. Comme le "
        "permet l'article 12, paragraphe 3, du RGPD, nous prolongeons le délai de réponse de deux mois : "
        "vous recevrez notre réponse au plus tard le {due}.\n\nCordialement,\nL'équipe vie privée"
    ),
    "nl": (
        "Beste {name},\n\nWij hebben uw verzoek ontvangen op {received} (onze referentie {ref}). Wij hebben "
        "meer tijd nodig om te antwoorden, om de volgende reden: {reason}. Zoals artikel 12, lid 3, AVG toestaat, "
        "verlengen wij de antwoordtermijn met twee maanden: u ontvangt ons antwoord uiterlijk op {due}.\n\n"
        "Met vriendelijke groet,\nHet privacyteam"
    ),
    "de": (
        "Guten Tag {name},\n\nwir haben Ihre Anfrage am {received} erhalten (unser Zeichen {ref}). Wir "
        "benötigen mehr Zeit für die Antwort, aus folgendem Grund: {reason}. Wie Artikel 12 Absatz 3 DSGVO es erlaubt, "
        "verlängern wir die Antwortfrist um zwei Monate: Sie erhalten unsere Antwort spätestens am {due}.\n\n"
        "Mit freundlichen Grüßen\nDas Datenschutzteam"
    ),
}
_MONTHS = {
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "nl": "januari februari maart april mei juni juli augustus september oktober november december",
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
}


def _local_date(day: date, language: str) -> str:
    if language in _MONTHS:
        return f"{day.day}{'.' if language == 'de' else ''} {_MONTHS[language].split()[day.month - 1]} {day.year}"
    return long_date(day)


def extension_notice(case: Case, *, due: date, reason: str, language: str) -> str:
    """The notice of extension (art. 12(3)) to send to the requester, in their language."""
    language = language if language in _NOTICES else "en"
    name = case.requester_name or {"fr": "Madame, Monsieur", "nl": "heer, mevrouw", "de": ""}.get(
        language, ""
    )
    return (
        _NOTICES[language]
        .format(
            name=name or ("requester" if language == "en" else ""),
            ref=case.ref,
            reason=reason.rstrip("."),
            received=_local_date(case.received_date, language),
            due=_local_date(due, language),
        )
        .replace("Guten Tag ,", "Guten Tag,")
        .replace("Beste ,", "Beste,")
        .replace("Bonjour ,", "Bonjour,")
    )


# --- waiting for the requester -------------------------------------------------------------------


async def start_wait(
    store: Store,
    *,
    case_id: int,
    actor: str,
    waiting_for: str,
    note: str,
    now: datetime,
    calendar: Calendar,
    pause_clock: bool,
) -> Case:
    """Mark the case as waiting for the requester (identity documents or a clarification)."""
    if waiting_for not in WAITING_FOR:
        raise TransitionError("Choose what you are waiting for.", field="waiting_for")
    async with store.transaction(now=now) as tx:
        case = await _open_case(tx, case_id)
        return await _begin_wait(
            tx,
            case,
            actor=actor,
            waiting_for=waiting_for,
            note=note,
            calendar=calendar,
            pause_clock=pause_clock,
        )


async def _begin_wait(
    tx: Tx, case: Case, *, actor: str, waiting_for: str, note: str, calendar: Calendar, pause_clock: bool
) -> Case:
    if case.status == "awaiting_requester":
        raise TransitionError(f"{case.ref} is already waiting for the requester.")
    changes: dict[str, object] = {
        "status": "awaiting_requester",
        "status_before_wait": case.status,
        "waiting_since": tx.now,
        "waiting_for": waiting_for,
    }
    clock = "the legal clock is paused until they answer" if pause_clock else "the legal clock keeps running"
    text = (
        f"{mention(actor)} is waiting for the requester since {long_date(calendar.local_date(tx.now))}: "
        f"{WAITING_FOR[waiting_for]} ({clock})."
    )
    if note.strip():
        text += f" {_sentence(note)}"
    return await tx.update_case(case, actor=actor, action="case.waiting", changes=changes, note=text)


# --- replying to the requester -------------------------------------------------------------------


async def reply_to_requester(
    store: Store,
    *,
    case_id: int,
    actor: str,
    body: str,
    wait_for: str,
    now: datetime,
    calendar: Calendar,
    pause_clock: bool,
    mail_from: str,
) -> Case:
    """Commit a reply to the requester for the mailer to send (threaded to their last email, the
    case reference in the subject); optionally start waiting for their answer in the same step."""
    body = body.strip()
    if not body:
        raise TransitionError("Write the reply.", field="body")
    if wait_for and wait_for not in WAITING_FOR:
        raise TransitionError("Choose what you are waiting for, or nothing.", field="wait_for")
    async with store.transaction(now=now) as tx:
        case = await _open_case(tx, case_id)
        if "@" not in case.requester_email:
            raise TransitionError("This case has no address to answer to.", field="body")
        in_reply_to, references = await tx.latest_thread_ids(case.id)
        domain = mail_from.rsplit("@", 1)[-1] if "@" in mail_from else None
        await tx.queue_outbound(
            case_id=case.id,
            message_id=make_msgid(domain=domain),
            to_addr=case.requester_email,
            subject=reply_subject(case),
            body=body,
            language=case.language,
            in_reply_to=in_reply_to,
            references=[*references, in_reply_to] if in_reply_to else [],
            author=actor,
        )
        quoted = escape_mrkdwn(body if len(body) <= 1500 else body[:1500] + "…")
        case = await tx.update_case(
            case,
            actor=actor,
            action="case.replied",
            changes={},
            audit_note=f"{len(body)} characters",
            note=f"{mention(actor)} replied to the requester by email:\n>>> {quoted}",
        )
        if wait_for:
            case = await _begin_wait(
                tx,
                case,
                actor=actor,
                waiting_for=wait_for,
                note="",
                calendar=calendar,
                pause_clock=pause_clock,
            )
        return case


def reply_subject(case: Case) -> str:
    """ "Re: [PRIV-2026-0042] <the request's subject>" (earlier Re:/Fwd: prefixes and references removed)."""
    subject = CASE_REF_IN_SUBJECT.sub("", case.subject)
    subject = re.sub(r"^\s*(?:(?:re|aw|antw|sv|tr|fwd?|wg|doorst)\s*:\s*)+", "", subject, flags=re.IGNORECASE)
    subject = " ".join(subject.split()) or {
        "fr": "Votre demande",
        "nl": "Uw verzoek",
        "de": "Ihre Anfrage",
    }.get(case.language, "Your privacy request")
    return f"Re: [{case.ref}] {subject}"[:200]


CASE_REF_IN_SUBJECT = re.compile(r"\[?\bPRIV-\d{4}-\d{4,6}\b\]?", re.IGNORECASE)


async def end_wait(
    tx: Tx,
    case: Case,
    *,
    actor: str,
    now: datetime,
    calendar: Calendar,
    pause_clock: bool,
    by_requester: bool,
) -> Case:
    """End a wait inside the caller's transaction (the intake ends it when the requester answers).

    With `pause_clock`, the days waited are added back to the deadline: (answer date − wait start
    date) days, then the weekend/holiday roll-forward again.
    """
    if case.status != "awaiting_requester" or case.waiting_since is None:
        raise TransitionError(f"{case.ref} is not waiting for the requester.")
    waited = (calendar.local_date(now) - calendar.local_date(case.waiting_since)).days
    changes: dict[str, object] = {
        "status": case.status_before_wait or "in_progress",
        "waiting_since": None,
        "waiting_for": "",
        "status_before_wait": None,
    }
    day = long_date(calendar.local_date(now))
    text = (
        f"The requester answered on {day}: no longer waiting"
        if by_requester
        else f"{mention(actor)} ended the wait for the requester on {day}"
    )
    text += f" ({waited} day{'s' if waited != 1 else ''} waited"
    if pause_clock and waited > 0:
        paused = case.paused_days + waited
        due = _due(calendar, case, paused_days=paused)
        changes["paused_days"] = paused
        changes["due_date"] = due
        text += f"; the clock was paused: due date now {long_date(due)})."
    else:
        text += ")."
    return await tx.update_case(case, actor=actor, action="case.wait_ended", changes=changes, note=text)


async def stop_waiting(
    store: Store, *, case_id: int, actor: str, now: datetime, calendar: Calendar, pause_clock: bool
) -> Case:
    """Staff end a wait themselves (the answer came another way)."""
    async with store.transaction(now=now) as tx:
        case = await _open_case(tx, case_id)
        return await end_wait(
            tx, case, actor=actor, now=now, calendar=calendar, pause_clock=pause_clock, by_requester=False
        )


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
        if outcome in FULFILLING and sensitive and not case.identity_settled:
            raise TransitionError(
                f"Verify the requester's identity before fulfilling "
                f"a {kind_label(sensitive[0]).split(' (')[0].lower()} "
                f"request (Verify identity), or choose another outcome.",
                field="outcome",
            )
        needs_recipients = outcome in FULFILLING and any(k in RECIPIENTS_REQUIRED for k in case.labels)
        if needs_recipients and not recipients:
            raise TransitionError(
                "Say which recipients were informed (art. 19), or that there were none.", field="recipients"
            )
        today = calendar.local_date(now)
        on_time = today <= case.due_date
        changes: dict[str, object] = {
            "status": "resolved",
            "outcome": outcome,
            "outcome_note": note.strip(),
            "recipients_informed": list(recipients),
            "resolved_on_time": on_time,
            "closed_at": now,
            "waiting_since": None,
            "waiting_for": "",
            "status_before_wait": None,
        }
        text = (
            f"{mention(actor)} resolved the case: {OUTCOMES[outcome]}, "
            f"{'on time' if on_time else 'late'} (due {long_date(case.due_date)})."
        )
        if note.strip():
            text += f" {_sentence(note)}"
        if recipients:
            text += f" Recipients informed: {escape_mrkdwn(', '.join(recipients))}."
        if outcome.startswith("refused"):
            text += (
                " The requester must be told the reasons and that they may complain to the data protection "
                "authority and seek a judicial remedy (art. 12(4))."
            )
        return await tx.update_case(case, actor=actor, action="case.resolved", changes=changes, note=text)


async def reopen(store: Store, *, case_id: int, actor: str, reason: str, now: datetime) -> Case:
    """Reopen a resolved case, with a reason; it goes back to work (extended if it had been)."""
    reason = reason.strip()
    if not reason:
        raise TransitionError("Give the reason for reopening.", field="reason")
    async with store.transaction(now=now) as tx:
        case = await tx.case_by_id(case_id)
        if case is None:
            raise TransitionError("This case no longer exists.")
        if case.is_open:
            raise TransitionError(f"{case.ref} is not resolved.")
        status = "extended" if case.extended_at else ("in_progress" if case.assignee else "new")
        changes: dict[str, object] = {
            "status": status,
            "outcome": None,
            "outcome_note": "",
            "resolved_on_time": None,
            "closed_at": None,
            "recipients_informed": [],
        }
        return await tx.update_case(
            case,
            actor=actor,
            action="case.reopened",
            changes=changes,
            note=f"{mention(actor)} reopened the case: {escape_mrkdwn(reason)}",
        )


# --- split -------------------------------------------------------------------------------------


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
        email = await tx.email_by_id(email_id)
        if email is None or email.case_id is None:
            raise TransitionError("That email is not on a case.")
        if email.split_case_id is not None:
            other = await tx.case_by_id(email.split_case_id)
            raise TransitionError(f"Already split off into {other.ref if other else 'another case'}.")
        original = await tx.case_by_id(email.case_id)
        assert original is not None
        asked = list(labels) if labels else new_rights(email, original)
        if not asked:
            raise TransitionError("This follow-up asks for no right the case does not already cover.")
        kind = asked[0]
        case = await tx.open_case(
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
        )
        await tx.mark_email_split(email.id, case.id)
        await tx.replace_checklist(case.id, checklist_for(inventory, asked))
        case = await tx.update_case(
            case,
            actor=actor,
            action="case.split_from",
            changes={"split_from_case_id": original.id, "assignee": original.assignee},
            note=(
                f"{mention(actor)} split this case off {original.ref}: the follow-up of "
                f"{long_date(case.received_date)} asks for {kind_label(kind)}. Received "
                f"{long_date(case.received_date)}, due {long_date(case.due_date)}."
            ),
        )
        if case.assignee and case.status == "new":
            case = await tx.update_case(
                case, actor=actor, action="case.claimed", changes={"status": "in_progress"}
            )
        original = await tx.update_case(
            original,
            actor=actor,
            action="case.split",
            changes={},
            note=(
                f"{mention(actor)} split {case.ref} off this case for {kind_label(kind)} (the follow-up of "
                f"{long_date(case.received_date)}; due {long_date(case.due_date)})."
            ),
        )
        return SplitResult(new_case=case, original=original)


# --- checklist ---------------------------------------------------------------------------------


async def tick_checklist(
    store: Store, *, case_id: int, actor: str, done_ids: set[int], now: datetime
) -> Case:
    """Make exactly `done_ids` the ticked items of the case's checklist."""
    async with store.transaction(now=now) as tx:
        case = await _open_case(tx, case_id)
        changed = await tx.set_checklist_done(case.id, done_ids, actor=actor)
        if not changed:
            return case
        items = await tx.checklist(case.id)
        done = sum(1 for i in items if i.done)
        names = ", ".join(f"{'ticked' if i.id in done_ids else 'unticked'} {i.name}" for i in changed)
        return await tx.update_case(
            case,
            actor=actor,
            action="case.checklist",
            changes={},
            checklist_changed=True,
            audit_note=names,
            note=f"{mention(actor)} {names} ({done}/{len(items)} done).",
        )
