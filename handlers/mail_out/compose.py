"""The email we send (pure): headers that thread it, the recipient exactly as stored, and the
case reference for the answer.

No header value we write may hold CR, LF or NUL (a header injection): `check_headers` refuses
them when the email is recorded, before anything is queued, and `build_message` again when it is
sent. An acknowledgement is marked as automatic (`Auto-Submitted: auto-replied`, RFC 3834, and
`X-Auto-Response-Suppress`, which Exchange honours), so that out-of-office replies are not sent to
it; an email staff wrote is not."""

from __future__ import annotations

import re
import textwrap
from contextlib import suppress
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from core.errors import Refused
from storage.models import OutboundEmail

__all__ = ["AUTOMATIC_PURPOSES", "build_message", "check_headers", "plain_name", "recipient"]

#: Emails the bot writes on its own, marked as automatic.
AUTOMATIC_PURPOSES = frozenset({"acknowledgement", "acknowledgement_review"})
_UNSAFE = re.compile(r"[\r\n\x00]")

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


def check_headers(**values: str | tuple[str, ...] | list[str]) -> None:
    """Refuse a header value holding CR, LF or NUL (`Refused`, naming the header)."""
    for header, value in values.items():
        for item in [value] if isinstance(value, str) else value:
            if _UNSAFE.search(item):
                raise Refused(f"the {header.replace('_', ' ')} holds a line break or NUL: not sent")


def _address(addr_spec: str, display_name: str = "") -> Address:
    """The To header's address, built from its parts so that a quoted local part stays quoted."""
    local, _, domain = addr_spec.rpartition("@")
    quoted = _QUOTED.match(local)
    username = re.sub(r"\\(.)", r"\1", quoted.group(1)) if quoted else local
    return Address(display_name=display_name, username=username, domain=domain)


def plain_name(name: str) -> str:
    """A requester's name fit for our mail (the To header, a salutation), or "" when it cannot
    be written plainly: controls, invisible or direction characters, `<>@"\\`, over 80 long."""
    name = " ".join(name.split())
    if not name or len(name) > 80 or any(c in name for c in '\x00<>@\\"') or not name.isprintable():
        return ""
    return name


def build_message(
    outbound: OutboundEmail, *, mail_from: str, case_ref: str, to_name: str = ""
) -> EmailMessage:
    """The RFC 5322 message of an email to the requester: from the privacy address, to the
    requester (`to_name` as the display name, encoded when not ASCII), threaded with
    In-Reply-To/References to their last email, the case reference in the subject and the footer,
    and the Message-ID fixed when it was recorded (a resend carries the same one). Raises
    `Refused` when the recipient cannot be written as exactly one mailbox or a header value holds
    a line break."""
    to = recipient(outbound.to_addr)
    check_headers(
        sender=mail_from,
        subject=outbound.subject,
        message_id=outbound.message_id,
        in_reply_to=outbound.in_reply_to,
        references=outbound.references,
    )
    message = EmailMessage()
    try:
        message["From"] = mail_from
        message["To"] = _address(to, plain_name(to_name))
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
    if outbound.purpose in AUTOMATIC_PURPOSES:
        message["Auto-Submitted"] = "auto-replied"
        message["X-Auto-Response-Suppress"] = "All"
    languages = [x for x in (part.strip() for part in outbound.language.split(",")) if x in _FOOTERS]
    footer = "\n".join(
        textwrap.fill(_FOOTERS[x].format(ref=case_ref), width=76, break_on_hyphens=False)
        for x in languages or ["en"]
    )
    text = f"{outbound.body.rstrip()}\n\n-- \n{footer}\n"
    # quoted-printable, not 8bit: it needs no 8BITMIME from the server and survives any relay
    message.set_content(text, cte="7bit" if text.isascii() else "quoted-printable")
    if languages:  # after set_content, which replaces every Content-* header
        message["Content-Language"] = ", ".join(languages)
    return message
