"""Did the sender's mail pass DMARC, SPF and DKIM, according to *our own* mail server?

Anyone can write an `Authentication-Results` header, so only the ones whose authserv-id is ours
(`IMAP_AUTHSERV_ID`) count; our server adds its header at the top, so the first matching one is
used (RFC 8601 §7.1). A request whose mail failed DMARC, or failed both SPF and DKIM, gets a
visible warning: forged requests for someone else's data are a known attack. So does mail from a
domain made to look like ours (`іmal.example` with a Cyrillic і, `xn--mal-hpd.example`) or one
that mixes scripts: whatever its own server says, it only poses as us (`handlers.mail_in.lookalike`).

The parser is deliberately tolerant (RFC 8601 syntax, plus the forms Microsoft 365 writes) and pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from handlers.mail_in.lookalike import ascii_domain, lookalike_of, mixed_scripts, unicode_domain
from handlers.mail_in.parsing import InboundEmail

__all__ = ["LOOKALIKE", "SenderCheck", "check_sender", "parse_authentication_results"]

#: How the detail of a look-alike verdict begins (the thread shows it with its own warning).
LOOKALIKE = "look-alike domain"

_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(r"^\s*([a-z][a-z0-9_.-]*)\s*=\s*([a-z]+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SenderCheck:
    """`status` is "pass", "fail" or "unknown"; `detail` says why, for the warning shown to staff."""

    status: str
    detail: str = ""


def parse_authentication_results(value: str) -> tuple[str, dict[str, str]]:
    """The authserv-id and the first result per method (`{"dmarc": "fail", "spf": "pass"}`)."""
    text = value
    for _ in range(3):  # comments may nest a little
        text = _COMMENT.sub(" ", text)
    parts = [p.strip() for p in text.split(";")]
    head = parts[0].split() if parts else []
    authserv = head[0].lower() if head and "=" not in head[0] else ""
    results: dict[str, str] = {}
    for part in parts[1:] if authserv else parts:
        m = _RESULT.match(part)
        if m:
            results.setdefault(m.group(1).lower(), m.group(2).lower())
    return authserv, results


def _posing_domain(email: InboundEmail, own_domain: str) -> SenderCheck | None:
    """A "fail" when the sender's (or Reply-To's) domain looks like ours or mixes scripts."""
    for address in (email.from_addr, email.reply_to):
        domain = address.rpartition("@")[2]
        if not domain:
            continue
        shown = unicode_domain(domain)
        if ascii_domain(domain) != shown:
            shown = f"{shown} = {ascii_domain(domain)}"
        if lookalike_of(domain, own_domain):
            return SenderCheck("fail", f"{LOOKALIKE} {shown}, made to look like {own_domain}")
        if mixed_scripts(domain):
            return SenderCheck("fail", f"{LOOKALIKE} {shown}: it mixes alphabets")
    return None


def check_sender(email: InboundEmail, authserv_id: str | None, *, own_domain: str = "") -> SenderCheck:
    """Judge the sender: a domain posing as ours (`own_domain`) fails; otherwise our own
    server's Authentication-Results header decides (unknown when none)."""
    posing = _posing_domain(email, own_domain)
    if posing is not None:
        return posing
    if not authserv_id:
        return SenderCheck("unknown", "no IMAP_AUTHSERV_ID configured")
    ours = authserv_id.strip().lower()
    for value in email.header_all("authentication-results"):
        authserv, results = parse_authentication_results(value)
        if authserv != ours:
            continue
        dmarc, spf, dkim = results.get("dmarc"), results.get("spf"), results.get("dkim")
        if dmarc in ("fail", "permerror"):
            return SenderCheck("fail", f"DMARC {dmarc}")
        if dmarc != "pass" and spf != "pass" and dkim != "pass" and (spf or dkim):
            return SenderCheck("fail", f"SPF {spf or 'none'} and DKIM {dkim or 'none'}")
        if dmarc == "pass" or spf == "pass" or dkim == "pass":
            return SenderCheck(
                "pass",
                ", ".join(f"{k.upper()} {v}" for k, v in results.items() if k in ("dmarc", "spf", "dkim")),
            )
        return SenderCheck("unknown", "no usable result from our mail server")
    return SenderCheck("unknown", "no Authentication-Results header from our mail server")
