"""What we write to the requester, in their language (pure): the extension notice, the subject of
our emails, and dates as each language writes them."""

from __future__ import annotations

import re
from datetime import date

from core.refs import CASE_REF
from storage.models import Case

__all__ = ["extension_notice", "local_date", "long_date", "reply_subject"]

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
_NO_NAME = {"fr": "Madame, Monsieur", "nl": "heer, mevrouw", "de": "", "en": "requester"}
_SUBJECTS = {"fr": "Votre demande", "nl": "Uw verzoek", "de": "Ihre Anfrage"}
_REF_IN_SUBJECT = re.compile(r"\[?" + CASE_REF.pattern + r"\]?", re.IGNORECASE)
_REPLY_PREFIXES = re.compile(r"^\s*(?:(?:re|aw|antw|sv|tr|fwd?|wg|doorst)\s*:\s*)+", re.IGNORECASE)


def long_date(day: date) -> str:
    """ "30 June 2026"."""
    return f"{day.day} {day:%B %Y}"


def local_date(day: date, language: str) -> str:
    """A date as the requester's language writes it ("30 juin 2026", "30. Juni 2026")."""
    if language in _MONTHS:
        month = _MONTHS[language].split()[day.month - 1]
        return f"{day.day}{'.' if language == 'de' else ''} {month} {day.year}"
    return long_date(day)


def extension_notice(case: Case, *, due: date, reason: str) -> str:
    """The notice of extension (art. 12(3)) to send to the requester, in their language."""
    language = case.language if case.language in _NOTICES else "en"
    return (
        _NOTICES[language]
        .format(
            name=case.requester_name or _NO_NAME[language],
            ref=case.ref,
            reason=reason.rstrip("."),
            received=local_date(case.received_date, language),
            due=local_date(due, language),
        )
        .replace("Guten Tag ,", "Guten Tag,")
    )


def reply_subject(*, ref: str, subject: str, language: str) -> str:
    """ "Re: [PRIV-2026-0042] <the request's subject>" (earlier Re:/Fwd: prefixes and references removed)."""
    subject = _REPLY_PREFIXES.sub("", _REF_IN_SUBJECT.sub("", subject))
    subject = " ".join(subject.split()) or _SUBJECTS.get(language, "Your privacy request")
    return f"Re: [{ref}] {subject}"[:200]
