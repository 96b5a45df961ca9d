"""What a thread note says, rendered from the audit event it records (pure).

A note is not stored: the outbox row points to the event, and the words are made when it is
posted (or updated), from the event's facts, the case, the free text the event points to and, for
an email to the requester, where its sending stands. Once retention has erased the free text,
the same event renders without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from core.vocabulary import IDENTITY_METHODS, OUTCOME_LABELS, WAITING_LABELS, kind_label
from handlers.cases.acknowledgement import NOT_SENT
from handlers.cases.notices import long_date
from handlers.mail_in.sender_check import LOOKALIKE
from handlers.slack.blocks import escape_mrkdwn, mention, note_blocks, notice_note_blocks
from storage.models import AuditEvent, Case, OutboundEmail

__all__ = ["NoteContext", "note_message"]

QUOTE_LIMIT = 1500


@dataclass(frozen=True, slots=True)
class NoteContext:
    """What a note may need besides its event: the case, the free text the event points to, the
    email it concerns, the controller's time zone (for dates) and, for an extension, the notice
    to send (the extension template filled in)."""

    case: Case
    tz: ZoneInfo
    text: str = ""
    outbound: OutboundEmail | None = None
    notice: str = ""


def _sentence(text: str) -> str:
    """Staff-typed text as a sentence of a note: escaped, trimmed, ending with a full stop."""
    text = escape_mrkdwn(" ".join(text.split()))
    return text if not text or text[-1] in ".!?" else text + "."


def _date(value: object) -> date:
    return date.fromisoformat(str(value)[:10])


def _list(facts: dict[str, object], key: str) -> list[object]:
    value = facts.get(key)
    return list(value) if isinstance(value, list) else []


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def note_message(event: AuditEvent, context: NoteContext) -> tuple[str, list[dict[str, object]]]:
    """The note's text and blocks for an event (its text is built by us; anything typed by people
    or sent by a requester is escaped)."""
    text = _words(event, context)
    if event.action == "case.extended":
        blocks = notice_note_blocks(text, context.case)
        if context.notice:  # the notice greets the requester by name: their words, in plain_text
            blocks.insert(1, _quoted(context.notice))
        return text, blocks
    if event.action in ("case.replied", "case.acknowledged"):
        status = {"type": "mrkdwn", "text": _sending_status(context.outbound), "verbatim": True}
        body = context.outbound.body if event.action == "case.replied" and context.outbound else ""
        quoted = [_quoted(body)] if body else []
        return text, [*note_blocks(text), *quoted, {"type": "context", "elements": [status]}]
    return text, note_blocks(text)


def _quoted(text: str) -> dict[str, object]:
    """Text we send the requester, shown in a note as it reads in the email: in plain_text (the
    requester's name in it cannot bold or link anything), escaped, cut. It stays out of the note's
    notification `text`, which Slack reads as mrkdwn."""
    text = text.strip() if len(text.strip()) <= QUOTE_LIMIT else text.strip()[:QUOTE_LIMIT] + "…"
    return {
        "type": "section",
        "text": {"type": "plain_text", "text": escape_mrkdwn(text)[:3000], "emoji": False},
    }


def legacy_note(text: str, case: Case, event: AuditEvent | None) -> tuple[str, list[dict[str, object]]]:
    """A note carried over from schema 3, which stored its words: shown as they were (an extension
    note with its button, as schema 3 showed it)."""
    if event is not None and event.action == "case.extended":
        return text, notice_note_blocks(text, case)
    return text, note_blocks(text)


def _words(event: AuditEvent, ctx: NoteContext) -> str:
    after = event.after or {}
    before = event.before or {}
    actor = mention(event.actor)
    day = long_date(event.at.astimezone(ctx.tz).date())
    action = event.action
    if action == "case.claimed":
        assignee = str(after.get("assignee", ""))
        return (
            f"{actor} claimed the case."
            if assignee == event.actor
            else f"{actor} assigned the case to {mention(assignee)}."
        )
    if action == "case.type_changed":
        labels = [str(k) for k in _list(after, "labels")] or [str(after.get("kind", ""))]
        words = f"{actor} set the type to {kind_label(labels[0])}" + "".join(
            f" + {kind_label(x)}" for x in labels[1:]
        )
        if "due_date" in after:
            words += f". Due date now {long_date(_date(after['due_date']))}"
        return words + "."
    if action == "case.identity_recorded":
        if after.get("identity_status") == "not_needed":
            words = f"{actor} recorded that identity verification is not needed."
        else:
            method = IDENTITY_METHODS.get(
                str(after.get("identity_method")), str(after.get("identity_method"))
            )
            words = f"{actor} verified the requester's identity: {method}."
        return f"{words} {_sentence(ctx.text)}" if ctx.text else words
    if action == "case.extended":
        due = _date(after["due_date"])
        notify_by = _date(after.get("notify_by") or before.get("due_date") or after["due_date"])
        words = (
            f"{actor} extended the deadline to {long_date(due)}: {escape_mrkdwn(ctx.text)}\n"
            f"The requester must be told by {long_date(notify_by)}."
        )
        return f"{words} Notice to send:" if ctx.notice else words
    if action == "case.waiting":
        what = WAITING_LABELS.get(str(after.get("waiting_for")), "an answer")
        clock = (
            "the legal clock is paused until they answer"
            if after.get("clock_paused")
            else "the legal clock keeps running"
        )
        words = f"{actor} is waiting for the requester since {day}: {what} ({clock})."
        return f"{words} {_sentence(ctx.text)}" if ctx.text else words
    if action == "case.wait_ended":
        waited = int(str(after.get("waited_days", 0)))
        words = (
            f"The requester answered on {day}: no longer waiting"
            if after.get("by_requester")
            else f"{actor} ended the wait for the requester on {day}"
        )
        words += f" ({_plural(waited, 'day')} waited"
        if after.get("clock_paused") and "due_date" in after:
            return words + f"; the clock was paused: due date now {long_date(_date(after['due_date']))})."
        return words + ")."
    if action == "case.replied":
        return _reply_words(actor, ctx.outbound)
    if action == "case.acknowledged":
        review = (
            " It does not name the right, as the type is to be confirmed."
            if (after.get("template") == "acknowledgement_review")
            else ""
        )
        return (
            f":envelope: Acknowledgement to the requester, in {_languages(str(after.get('language', '')))}, with the "
            f"reference and the due date.{review}"
        )
    if action == "case.not_acknowledged":
        reason = str(after.get("reason", ""))
        return f":no_bell: No acknowledgement sent: {NOT_SENT.get(reason, escape_mrkdwn(reason))}."
    if action == "case.resolved":
        outcome = str(after.get("outcome"))
        timing = "on time" if after.get("resolved_on_time") else "late"
        was_due = long_date(_date(after.get("due_date") or ctx.case.due_date.isoformat()))
        words = (
            f"{actor} resolved the case: {OUTCOME_LABELS.get(outcome, outcome)}, {timing} (due {was_due})."
        )
        if ctx.text:
            words += f" {_sentence(ctx.text)}"
        recipients = [str(r) for r in _list(after, "recipients_informed")]
        if recipients:
            words += f" Recipients informed: {escape_mrkdwn(', '.join(recipients))}."
        if outcome.startswith("refused"):
            words += (
                " The requester must be told the reasons and that they may complain to the data protection "
                "authority and seek a judicial remedy (art. 12(4))."
            )
        return words
    if action == "case.reopened":
        return (
            f"{actor} reopened the case: {escape_mrkdwn(ctx.text)}"
            if ctx.text
            else f"{actor} reopened the case."
        )
    if action == "case.split_from":
        received = long_date(_date(after["received_date"]))
        return (
            f"{actor} split this case off {after['from_ref']}: the follow-up of {received} asks for "
            f"{kind_label(ctx.case.kind)}. Received {received}, due {long_date(_date(after['due_date']))}."
        )
    if action == "case.split":
        return (
            f"{actor} split {after['into_ref']} off this case for {kind_label(str(after['kind']))} (the follow-up of "
            f"{long_date(_date(after['received_date']))}; due {long_date(_date(after['due_date']))})."
        )
    if action == "case.checklist":
        changes = ", ".join(
            " ".join(str(w) for w in change) for change in _list(after, "changes") if isinstance(change, list)
        )
        return f"{actor} {changes} ({after.get('done')}/{after.get('total')} done)."
    if action == "email.wait_not_ended":
        detail = str(after.get("detail", ""))
        if after.get("reason") != "sender_check":
            why = escape_mrkdwn(detail)
        elif detail.startswith(LOOKALIKE):
            why = f"its sender's address only looks like ours ({escape_mrkdwn(detail)})"
        else:
            why = "our mail server says its sender may be forged"
        return f":warning: An email from the requester's address came in, but it did not end the wait: {why}."
    if action == "email.bounced":
        what = "acknowledgement" if str(after.get("purpose", "")).startswith("acknowledgement") else "email"
        sent = ctx.outbound.sent_at if ctx.outbound and ctx.outbound.sent_at else None
        when = f" of {long_date(sent.astimezone(ctx.tz).date())}" if sent else ""
        return (
            f":warning: A delivery failure report came back: our {what}{when} to the requester may not have "
            "reached them. Check the address and answer another way."
        )
    if action == "reply.failed":
        what = (
            "acknowledgement"
            if ctx.outbound and ctx.outbound.purpose.startswith("acknowledgement")
            else "reply"
        )
        return (
            f":warning: The {what} to the requester could not be delivered: "
            f"{escape_mrkdwn(str(after.get('error', 'refused')))}. Check the address and answer another way."
        )
    return f"{actor}: {escape_mrkdwn(action)}."


_LANGUAGE_NAMES = {"en": "English", "fr": "French", "nl": "Dutch", "de": "German"}


def _languages(tags: str) -> str:
    names = [_LANGUAGE_NAMES.get(t.strip(), t.strip()) for t in tags.split(",") if t.strip()]
    return " and ".join(names) or "English"


def _reply_words(actor: str, outbound: OutboundEmail | None) -> str:
    if outbound is None:
        return f"{actor} replied to the requester by email."
    return f"{actor} replied to the requester by email:"


def _sending_status(outbound: OutboundEmail | None) -> str:
    """Where the email stands: the thread says "sent" only once the mail server accepted it."""
    if outbound is None or outbound.failed_at is not None:
        reason = escape_mrkdwn(outbound.last_error) if outbound and outbound.last_error else "refused"
        return f":x: Not delivered ({reason})."
    if outbound.sent_at is not None:
        return ":white_check_mark: Sent: the mail server accepted it."
    return ":outbox_tray: Waiting to be sent…"
