"""Recognising machine traffic: auto-replies and bounces never open a case.

`detect_automated(email)` decides on evidence a machine leaves: RFC 3834 `Auto-Submitted`, the
`X-Autoreply`/`X-Autorespond` family, `Precedence: auto_reply`, an empty Return-Path, delivery
reports (`multipart/report`, RFC 3464/6522) and read receipts (RFC 8098), mailer-daemon and
postmaster senders. Weaker signs — the subject lines vacation responders and bounce notices
write (a subject that is only "Abwesenheitsnotiz" or "Out of office", or begins "Automatische
Antwort:"), their wording in the body ("I am out of the office until…", "je suis absente
jusqu'au…", and apart from that "for urgent matters please contact…", "je répondrai à mon
retour"), "could
not be delivered", a no-reply sender, `Precedence: bulk` — only count two at a time, so a person
who writes "Out of office?" or "I'm on holiday until Monday" is never taken for a machine (and a
verdict on wording alone is read again as a person's message by the classifier). Mail from a mailing list
or newsletter (List-Id, List-Unsubscribe) is not an auto-reply. Everything here is a pure
function of the parsed `InboundEmail`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from handlers.mail_in.parsing import InboundEmail

__all__ = ["AutomatedVerdict", "detect_automated", "from_mailing_list", "is_unanswerable_address"]

AutomatedKind = Literal["auto_reply", "bounce"]


@dataclass(frozen=True, slots=True)
class AutomatedVerdict:
    """Why a message was taken for machine traffic.

    `certain` is False when the verdict rests only on wording (subject and body), not on
    headers or MIME structure.
    """

    kind: AutomatedKind
    reasons: tuple[str, ...]
    certain: bool = True


BOUNCE_SENDER = re.compile(
    r"^(?:mailer-daemon|postmaster|mail-daemon|mailerdaemon|bounces?)(?:[+@.]|$)", re.I
)
_BOUNCE_SENDER_NAME = re.compile(
    r"^(?:mail delivery (?:subsystem|system|service)|mailer-daemon|postmaster)$", re.I
)
_BOUNCE_SUBJECT = re.compile(
    r"^\s*(?:undeliverable|undelivered mail|delivery status notification|mail delivery (?:failed|failure|"
    r"subsystem)|returned mail|failure notice|delivery (?:failure|has failed)|message not delivered|"
    r"non remis|non distribuable|unzustellbar|nicht zustellbar|onbestelbaar|niet bezorgd|"
    r"r[ée]ponse non remise|notification d'[ée]tat de (?:la )?distribution|[ée]chec de (?:la )?(?:remise|distribution)|"
    r"mail delivery failed|niet bezorgd|onbestelbaar|kan niet worden bezorgd)",
    re.I,
)
# what bounce notices say in their text part (checked only together with another sign)
_BOUNCE_BODY = re.compile(
    r"(?:could not be delivered|couldn't be delivered|wasn't delivered|was not delivered|undeliverable|"
    r"delivery (?:to the following recipients? )?(?:has )?failed|permanent (?:error|fatal)|"
    r"address (?:couldn't|could not) be found|user unknown|mailbox (?:unavailable|full|disabled)|"
    r"recipient address rejected|\b5\.\d\.\d{1,3}\b|"
    r"n'a pas pu [êe]tre (?:remis|distribu)|non remis|kon niet worden (?:afgeleverd|bezorgd)|niet (?:worden )?bezorgd|"
    r"konnte nicht zugestellt werden|unzustellbar|nicht zugestellt)",
    re.I,
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic)?\s*(?:reply|response|antwort|matisch antwoord|matische antwoord)|autoreply|"
    r"auto:|out of (?:the )?office|away from (?:the )?office|on vacation|abwesenheitsnotiz|"
    r"automatische antwort|abwesend|afwezig(?:heid)?|automatisch antwoord|buiten kantoor|"
    r"r[ée]ponse automatique|absence du bureau|absent(?:e)? du bureau|message d'absence|"
    r"autosvar|risposta automatica|respuesta autom[áa]tica)",
    re.I,
)
#: A subject that is nothing but the responder's phrase ("Abwesenheitsnotiz", "Out of office",
#: "Afwezigheidsbericht"), not a question ("Out of office?").
_AUTO_SUBJECT_WHOLE = re.compile(_AUTO_SUBJECT.pattern + r"[\w ]{0,30}$", re.I)
# what vacation replies say (checked only together with another sign)
_AUTO_BODY = re.compile(
    r"(?:\b(?:i am|i'm|i will be)\s+(?:currently\s+)?(?:out of (?:the )?office|away|on (?:annual )?leave|on holiday|"
    r"on vacation|travell?ing|absent)|\bout of (?:the )?office\b|\bwith (?:limited|no) access to (?:my )?e-?mail|"
    r"\bwill (?:be back|return|reply) (?:on|when|after)|\bautomatic (?:reply|confirmation|response)|"
    r"\bje suis (?:actuellement )?(?:absente?|en cong[ée]|en vacances)|\bde retour le\b|\bsans acc[èe]s [àa] mes|"
    r"\bmessage automatique|\br[ée]ponse automatique|"
    r"\bik ben (?:momenteel |met verlof |op vakantie )?(?:afwezig|met verlof|op vakantie|niet op kantoor)|"
    r"\bafwezig tot\b|\bautomatisch (?:antwoord|bericht)|"
    r"\bich bin (?:bis\b.{0,40})?(?:derzeit |zurzeit |momentan |aktuell )?"
    r"(?:nicht im b[üu]ro|abwesend|im urlaub|au[ßs]er haus|nicht erreichbar)|"
    r"\bbin ich (?:nicht im b[üu]ro|abwesend|nicht erreichbar)|\babwesenheit|"
    r"\bkeinen zugriff auf (?:meine )?e-?mails|\bautomatische antwort)",
    re.I,
)
# what vacation replies say besides the absence: whom to ask meanwhile, that they will answer
# on return, that mail is not forwarded (not "when I am back" alone: requests say that too)
_AUTO_BODY_MEANWHILE = re.compile(
    r"(?:\bfor urgent (?:matters|issues|questions|queries|requests)|\bin (?:urgent cases|case of urgency)|"
    r"\bi will (?:reply|respond|answer|get back to you)\b.{0,40}\b(?:on|upon|after|when i) (?:my )?return|"
    r"\bwill not be (?:forwarded|read)|"
    r"\ben cas d'urgence|\bpour toute (?:demande|question) urgente|"
    r"\bje (?:vous )?r[ée]pondrai\b.{0,40}\b(?:à|a|dès|des) mon retour|\bne sera pas (?:transf[ée]r[ée]|lu)|"
    r"\bvoor dringende (?:zaken|vragen)|\bin dringende gevallen|\bwordt niet doorgestuurd|"
    r"\bik (?:beantwoord|antwoord)\b.{0,40}\b(?:bij|na) mijn terugkeer|"
    r"\bin dringenden f[äa]llen|\bwird nicht weitergeleitet|\bnach meiner r[üu]ckkehr\b.{0,40}\bbeantworten)",
    re.I,
)
_AUTO_SUBJECT_PREFIX = re.compile(_AUTO_SUBJECT.pattern + r"[^:?!\n]{0,20}:", re.I)
_READ_SUBJECT = re.compile(
    r"^\s*(?:read|lu|gelezen|gelesen|gelesen von|read receipt|accus[ée] de lecture)\s*:", re.I
)
_AUTO_HEADER_VALUE = re.compile(
    r"auto[-_ ]?(?:replied|reply|generated|notified|respon[ds]e?|submitted)", re.I
)
NOREPLY_SENDER = re.compile(r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|donotreply|noreply)(?:[+@.]|$)", re.I)


def detect_automated(email: InboundEmail) -> AutomatedVerdict | None:
    """Return a verdict when the message was written by a machine, else None.

    Bounces (delivery reports, mailer-daemon senders, "Undeliverable" notices) are told apart
    from auto-replies (vacation messages, acknowledgements, read receipts). One header-level or
    structural sign suffices; subject, body wording, sender name and `Precedence: bulk` count
    only two together. The `Auto-Submitted: no` value, RFC 3834's explicit "a person sent this",
    is honoured: only structural evidence overrides it.
    """
    sender_local = email.from_addr.split("@", 1)[0] if email.from_addr else ""
    auto_submitted = (email.header("auto-submitted") or "").strip().lower()
    report_type = email.report_type
    ctype = email.content_type
    body = (email.text or "")[:4000]
    from_list = bool(email.header("list-id") or email.header("list-unsubscribe"))

    # --- bounces --------------------------------------------------------------------------
    structural: list[str] = []
    if ctype == "multipart/report" and report_type in ("delivery-status", ""):
        structural.append("multipart/report delivery-status")
    if any(t == "message/delivery-status" for t in email.part_types):
        structural.append("message/delivery-status part")
    if email.header("x-failed-recipients"):
        structural.append("X-Failed-Recipients")
    weak_bounce: list[str] = []
    if _BOUNCE_SUBJECT.match(email.subject):
        weak_bounce.append("bounce subject")
    if _BOUNCE_SENDER_NAME.match(email.from_name.strip()):
        weak_bounce.append("delivery-system sender name")
    if _BOUNCE_BODY.search(body):
        weak_bounce.append("delivery-failure wording")
    machine_header = _empty_return_path(email) or auto_submitted not in ("", "no")
    if structural:
        return AutomatedVerdict("bounce", tuple(structural + weak_bounce))
    if BOUNCE_SENDER.match(sender_local) and auto_submitted != "no":
        return AutomatedVerdict("bounce", (f"sender {sender_local.lower()}", *weak_bounce))
    if len(weak_bounce) >= 2 or (weak_bounce and machine_header):
        return AutomatedVerdict("bounce", tuple(weak_bounce), certain=machine_header)

    # --- auto-replies ------------------------------------------------------------------------
    strong: list[str] = []
    if ctype == "multipart/report" and report_type == "disposition-notification":
        strong.append("read receipt (disposition-notification)")
    if any(t == "message/disposition-notification" for t in email.part_types) and not strong:
        strong.append("message/disposition-notification part")
    if auto_submitted and auto_submitted != "no":
        strong.append(f"Auto-Submitted: {auto_submitted[:40]}")
    for name in ("x-autoreply", "x-autorespond", "x-autogenerated"):
        value = email.header(name)
        if value is not None and value.strip().lower() not in ("no", "false", "0"):
            strong.append(name.title())
    precedence = (email.header("precedence") or "").strip().lower()
    if precedence == "auto_reply":
        strong.append("Precedence: auto_reply")
    if _empty_return_path(email):
        strong.append("empty Return-Path")
    for name, value in email.headers:
        if name in ("x-mailer", "user-agent") and _AUTO_HEADER_VALUE.search(value):
            strong.append(f"{name}: {value[:40]}")

    weak: list[str] = []
    if _AUTO_SUBJECT_PREFIX.match(email.subject) or _AUTO_SUBJECT_WHOLE.match(email.subject.strip()):
        # "Out of office: <their subject>" or just "Abwesenheitsnotiz", not "Out of office?"
        weak.append("auto-reply subject")
    elif _READ_SUBJECT.match(email.subject) and len(body) < 600:
        weak.append("read-receipt subject")
    if _AUTO_BODY.search(body[:1500]):
        weak.append("out-of-office wording")
        if _AUTO_BODY_MEANWHILE.search(body[:1500]):
            weak.append("whom to ask meanwhile, or an answer on return")
    if NOREPLY_SENDER.match(sender_local):
        weak.append("no-reply sender")
    if precedence in ("bulk", "junk", "list") and not from_list:
        weak.append(f"Precedence: {precedence}")

    if auto_submitted == "no":  # a person's client said so; only a receipt's structure overrides it
        structural = [r for r in strong if "disposition-notification" in r]
        return AutomatedVerdict("auto_reply", tuple(structural)) if structural else None
    if strong:
        return AutomatedVerdict("auto_reply", tuple(strong + weak))
    # a subject alone is weak evidence (people write "Out of office?" too): require two signs
    if len(weak) >= 2 and (not from_list or "auto-reply subject" in weak):
        return AutomatedVerdict("auto_reply", tuple(weak), certain=False)
    return None


def _empty_return_path(email: InboundEmail) -> bool:
    rp = email.header("return-path")
    return rp is not None and rp.strip() in ("<>", "")


def is_unanswerable_address(address: str) -> bool:
    """A no-reply, mailer-daemon or postmaster address: nobody reads what is sent to it."""
    local = address.rpartition("@")[0] or address
    return bool(NOREPLY_SENDER.match(local) or BOUNCE_SENDER.match(local))


def from_mailing_list(email: InboundEmail) -> bool:
    """Mail sent through a list or in bulk (`List-Id`, `List-Unsubscribe`, `List-Post`,
    `Precedence: list|bulk|junk`): RFC 3834 §2 says not to answer it automatically."""
    if any(email.header(h) for h in ("list-id", "list-unsubscribe", "list-post")):
        return True
    return (email.header("precedence") or "").strip().lower() in ("list", "bulk", "junk")
