"""Recording an email to the requester for the outbox to send: its subject, threading and
Message-ID are fixed here, once, and its headers checked before anything is queued."""

from __future__ import annotations

import re
from email.utils import make_msgid

from core.refs import CASE_REF
from handlers.mail_out.compose import check_headers, recipient
from storage.models import Case
from storage.store import Tx

__all__ = ["queue_email", "reply_subject"]

_SUBJECTS = {"fr": "Votre demande", "nl": "Uw verzoek", "de": "Ihre Anfrage"}
_REF_IN_SUBJECT = re.compile(r"\[?" + CASE_REF.pattern + r"\]?", re.IGNORECASE)
_REPLY_PREFIXES = re.compile(r"^\s*(?:(?:re|aw|antw|sv|tr|fwd?|wg|doorst)\s*:\s*)+", re.IGNORECASE)


def reply_subject(*, ref: str, subject: str, language: str) -> str:
    """ "Re: [PRIV-2026-0042] <the request's subject>" (earlier Re:/Fwd: prefixes and references
    removed, line breaks and controls turned into spaces)."""
    subject = "".join(c if c.isprintable() else " " for c in subject)
    subject = _REPLY_PREFIXES.sub("", _REF_IN_SUBJECT.sub("", subject))
    first = language.split(",")[0].strip()
    subject = " ".join(subject.split()) or _SUBJECTS.get(first, "Your privacy request")
    return f"Re: [{ref}] {subject}"[:200]


async def queue_email(
    tx: Tx, case: Case, *, purpose: str, body: str, language: str, author: str, mail_from: str
) -> int:
    """Record an email to the case's requester, threaded to their last email (or ours), with the
    case reference in the subject and a Message-ID in our own domain, and queue it in the outbox.
    Raises `Refused` when the address or a header value cannot be written safely (nothing is
    recorded then). Returns the outbound email's id."""
    in_reply_to, references = await tx.mail.thread_ids(case.id)
    domain = mail_from.rsplit("@", 1)[-1] if "@" in mail_from else None
    message_id = make_msgid(domain=domain)
    subject = reply_subject(ref=case.ref, subject=case.subject, language=language)
    thread = [*references, in_reply_to] if in_reply_to else []
    recipient(case.requester_email)
    check_headers(sender=mail_from, subject=subject, in_reply_to=in_reply_to, references=thread)
    outbound_id = await tx.mail.add_outbound(
        case_id=case.id,
        message_id=message_id,
        to_addr=case.requester_email,
        subject=subject,
        body=body,
        language=language,
        in_reply_to=in_reply_to,
        references=thread,
        author=author,
        purpose=purpose,
    )
    await tx.outbox.send_email(case.id, outbound_id)
    return outbound_id
