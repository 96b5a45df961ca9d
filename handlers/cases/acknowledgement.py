"""The acknowledgement a requester receives when their case opens, and when none is sent.

It is written in the same transaction that opens the case (an outbound email and its outbox row),
so a case never opens without its acknowledgement decided, and a crash cannot send two. Whether
one goes is decided from the email alone (`why_not`, pure) and then from what we already sent:

- none for `other` (not a request; an `other` marked for review may be one, and gets one), nor
  to an address nobody reads (no-reply, mailer-daemon, postmaster), a mailing list or bulk mail
  (RFC 3834), our own domain (a colleague's forward: the forwarded person hears from staff), a
  sender our mail server says was forged, or one at a domain made to look like ours;
- at most one per sender in 24 hours (the case still opens);
- a case marked for review gets one that confirms receipt and the date without naming the right.

Auto-replies and bounces never reach here: they open no case. The thread says which it was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from core.errors import Refused
from handlers.mail_in.machine_mail import from_mailing_list, is_unanswerable_address
from handlers.mail_in.parsing import InboundEmail
from handlers.mail_in.sender_check import LOOKALIKE, SenderCheck
from handlers.mail_out.letters import Writer
from handlers.mail_out.outgoing import queue_email
from storage.models import Case
from storage.store import Tx

__all__ = ["NOT_SENT", "Acknowledgements", "acknowledge", "why_not"]

logger = logging.getLogger(__name__)

ONE_PER = timedelta(hours=24)

#: Why no acknowledgement went, as the thread says it.
NOT_SENT = {
    "not_a_request": "the message is not a request",
    "no_address": "the email has no address to answer to",
    "unanswerable": "the sender is a no-reply, mailer-daemon or postmaster address",
    "mailing_list": "the email came through a mailing list or as bulk mail",
    "own_domain": "the email came from our own domain (a colleague's forward: tell the requester yourself)",
    "forged": "our mail server says the sender may be forged",
    "lookalike": "the sender's address only looks like ours",
    "already_today": "this sender already received an acknowledgement in the last 24 hours",
    "unsafe": "the address or subject cannot be written safely in an email",
}


@dataclass(frozen=True, slots=True)
class Acknowledgements:
    """What acknowledging needs: the letter writer (its privacy address's domain is ours)."""

    writer: Writer

    @property
    def mail_from(self) -> str:
        return self.writer.mail_from

    @property
    def own_domain(self) -> str:
        return self.mail_from.rpartition("@")[2].lower()


def why_not(case: Case, email: InboundEmail, sender: SenderCheck, rules: Acknowledgements) -> str | None:
    """Why this new case gets no acknowledgement (a key of `NOT_SENT`), or None when it gets one."""
    address = case.requester_email.lower()
    if case.kind == "other" and not case.needs_review:
        return "not_a_request"
    if "@" not in address:
        return "no_address"
    if is_unanswerable_address(address) or is_unanswerable_address(email.from_addr):
        return "unanswerable"
    if from_mailing_list(email):
        return "mailing_list"
    domains = {a.rpartition("@")[2] for a in (address, email.from_addr.lower(), email.reply_to.lower()) if a}
    if rules.own_domain and rules.own_domain in domains:
        return "own_domain"
    if sender.status == "fail":
        return "lookalike" if sender.detail.startswith(LOOKALIKE) else "forged"
    return None


async def acknowledge(
    tx: Tx, case: Case, email: InboundEmail, sender: SenderCheck, rules: Acknowledgements
) -> None:
    """Queue the acknowledgement of a case that has just opened, or record why there is none;
    either way the thread gets a note (none for a message that is not a request)."""
    reason = why_not(case, email, sender, rules)
    if reason is None and await tx.mail.acknowledged_since(case.requester_email, tx.now - ONE_PER):
        reason = "already_today"
    if reason is None:
        template = "acknowledgement_review" if case.needs_review else "acknowledgement"
        written = rules.writer.write(template, case)
        try:
            outbound_id = await queue_email(
                tx,
                case,
                purpose=template,
                body=written.body,
                language=written.language,
                author="system",
                mail_from=rules.mail_from,
            )
        except Refused:
            reason = "unsafe"
        else:
            event_id = await tx.audit.append(
                case_id=case.id,
                actor="system",
                action="case.acknowledged",
                after={"language": written.language, "template": template},
                outbound_id=outbound_id,
            )
            await tx.outbox.post_note(case.id, event_id)
            return
    event_id = await tx.audit.append(
        case_id=case.id, actor="system", action="case.not_acknowledged", after={"reason": reason}
    )
    if reason != "not_a_request":
        await tx.outbox.post_note(case.id, event_id)
    logger.info("case %s: no acknowledgement (%s)", case.ref, reason)
