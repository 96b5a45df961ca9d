"""Who wrote a forwarded message (pure): the first "From:" line of the forwarded header block.

When a colleague forwards a request to the privacy address, the case is the forwarded person's:
their name and address are read from the header block mail programs write above the forwarded
message ("From: Ana Lopez <ana@example.org>", Outlook's "From: Ana Lopez [mailto:ana@example.org]",
"De :", "Van:", "Von:").
"""

from __future__ import annotations

import re
from email.utils import parseaddr

from handlers.mail_in.parsing import InboundEmail

__all__ = ["forwarded_sender"]

_FROM_LINE = re.compile(
    r"^[\s>*]*(?:from|de|van|von|envoyé par)\s*\*?\s*:\s*\*?\s*(?P<value>\S.{0,300})$", re.I | re.M
)
_MAILTO = re.compile(r"\[mailto:([^\]\s]+)\]", re.I)
_ADDRESS = re.compile(r"^[^@\s<>\"(),;:]+@[^@\s<>\"(),;:]+\.[a-z0-9-]{2,}$", re.I)


def forwarded_sender(email: InboundEmail) -> tuple[str, str] | None:
    """(name, address) of the forwarded message's author, or None when no header block names one."""
    for text in (email.quoted_text, email.text):
        for match in _FROM_LINE.finditer(text or ""):
            value = _MAILTO.sub(r"<\1>", match.group("value").strip().strip("*").strip())
            name, address = parseaddr(value)
            address = address.strip().lower()
            if _ADDRESS.match(address):
                return " ".join(name.split()).strip("'\""), address
    return None
