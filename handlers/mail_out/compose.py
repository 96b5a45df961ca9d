"""The email we send (pure): headers that thread it, the recipient exactly as stored, and the
case reference for the answer."""

from __future__ import annotations

import re
from contextlib import suppress
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from core.errors import Refused
from storage.models import OutboundEmail

__all__ = ["build_message", "recipient"]

_FOOTERS = {
    "en": "Our reference: {ref}. Please keep it in the subject when you answer.",
    "fr": "Notre référence : {ref}. Merci de la garder dans l'objet de votre réponse.",
    "nl": "Onze referentie: {ref}. Gelieve ze in het onderwerp te laten staan wanneer u antwoordt.",
    "de": "Unser Zeichen: {ref}. Bitte lassen Sie es im Betreff stehen, wenn Sie antworten.",
}
_QUOTED = re.compile(r'^"((?:[^"\\]|\\.)*)"$')


def recipient(addr_spec: str) -> str:
    """The address to send to: `addr_spec` as stored (quotes and all), with an internationalised
    domain in its ASCII form where the local part allows mail without SMTPUTF8. `Refused` when it
    is not one mailbox."""
    local, at, domain = addr_spec.rpartition("@")
    if not at or not local or not domain or any(c in addr_spec for c in "\r\n\x00"):
        raise Refused("the requester's address is not an email address")
    if not domain.isascii():
        with suppress(UnicodeError):  # a domain the IDNA codec cannot write stays as it is
            domain = domain.encode("idna").decode("ascii")
    return f"{local}@{domain}"


def _address(addr_spec: str) -> Address:
    """The To header's address, built from its parts so that a quoted local part stays quoted."""
    local, _, domain = addr_spec.rpartition("@")
    quoted = _QUOTED.match(local)
    username = re.sub(r"\\(.)", r"\1", quoted.group(1)) if quoted else local
    return Address(username=username, domain=domain)


def build_message(outbound: OutboundEmail, *, mail_from: str, case_ref: str) -> EmailMessage:
    """The RFC 5322 message of an email to the requester: from the privacy address, to the
    requester, threaded with In-Reply-To/References to their last email, the case reference in the
    subject and the footer, and the Message-ID fixed when it was recorded (a resend carries the
    same one). Raises `Refused` when the recipient cannot be written as exactly one mailbox."""
    to = recipient(outbound.to_addr)
    message = EmailMessage()
    try:
        message["From"] = mail_from
        message["To"] = _address(to)
        message["Subject"] = outbound.subject
        message["Date"] = format_datetime(outbound.created_at)
        message["Message-ID"] = outbound.message_id
        if outbound.in_reply_to:
            message["In-Reply-To"] = outbound.in_reply_to
        references = list(dict.fromkeys(outbound.references))[-20:]
        if references:
            message["References"] = " ".join(references)
    except (ValueError, IndexError, TypeError) as e:
        raise Refused(f"the email's headers could not be written ({type(e).__name__})") from None
    written = list(getattr(message["To"], "addresses", ()))
    if len(written) != 1 or written[0].addr_spec.lower() != to.lower():
        raise Refused("the requester's address cannot be written safely in an email header")
    if outbound.language in _FOOTERS:
        message["Content-Language"] = outbound.language
    footer = _FOOTERS.get(outbound.language, _FOOTERS["en"]).format(ref=case_ref)
    message.set_content(f"{outbound.body.rstrip()}\n\n-- \n{footer}\n")
    return message
