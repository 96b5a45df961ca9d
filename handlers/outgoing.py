"""The email a reply becomes (pure): headers that thread it, and the case reference for the answer."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime

from storage.models import OutboundEmail

__all__ = ["build_message"]

_FOOTERS = {
    "en": "Our reference: {ref}. Please keep it in the subject when you answer.",
    "fr": "Notre référence : {ref}. Merci de la garder dans l'objet de votre réponse.",
    "nl": "Onze referentie: {ref}. Gelieve ze in het onderwerp te laten staan wanneer u antwoordt.",
    "de": "Unser Zeichen: {ref}. Bitte lassen Sie es im Betreff stehen, wenn Sie antworten.",
}


def build_message(outbound: OutboundEmail, *, mail_from: str, case_ref: str) -> EmailMessage:
    """The RFC 5322 message of a reply: from the privacy address, to the requester, threaded with
    In-Reply-To/References to their last email, the case reference in the subject and the footer,
    and the Message-ID fixed when the reply was committed (a resend carries the same one)."""
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = outbound.to_addr
    message["Subject"] = outbound.subject
    message["Date"] = format_datetime(outbound.created_at)
    message["Message-ID"] = outbound.message_id
    if outbound.in_reply_to:
        message["In-Reply-To"] = outbound.in_reply_to
    references = list(dict.fromkeys(outbound.references))[-20:]
    if references:
        message["References"] = " ".join(references)
    if outbound.language in _FOOTERS:
        message["Content-Language"] = outbound.language
    footer = _FOOTERS.get(outbound.language, _FOOTERS["en"]).format(ref=case_ref)
    message.set_content(f"{outbound.body.rstrip()}\n\n-- \n{footer}\n")
    return message
