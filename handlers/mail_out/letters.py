"""What we write to the requester (pure): a template filled in for a case, in the requester's language.

The language is that of their email; when it could not be told, a Belgian organisation writes in
French and Dutch together (`Content-Language: fr, nl`), any other in English. The variables are
the case's facts as the language writes them: dates ("3 décembre 2026"), the salutation, and what
we understood they ask, in plain words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from handlers.mail_out.compose import plain_name
from handlers.mail_out.templates import LANGUAGES, Templates
from storage.models import Case

__all__ = ["Letter", "Writer", "greeting", "letter_languages", "local_date", "request_words"]

_MONTHS = {
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "nl": "januari februari maart april mei juni juli augustus september oktober november december",
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
}
_GREETINGS = {
    "en": ("Dear {name},", "Dear Sir or Madam,"),
    "fr": ("Bonjour {name},", "Madame, Monsieur,"),
    "nl": ("Beste {name},", "Geachte heer, mevrouw,"),
    "de": ("Guten Tag {name},", "Sehr geehrte Damen und Herren,"),
}
_NEUTRAL_NAME = {
    "en": "Sir or Madam",
    "fr": "Madame, Monsieur",
    "nl": "heer, mevrouw",
    "de": "Damen und Herren",
}
#: What a right asks for, as a noun phrase ("We understood that you ask for …").
_RIGHTS = {
    "en": {
        "access": "a copy of the personal data we hold about you (right of access)",
        "rectification": "the correction of your personal data (right to rectification)",
        "erasure": "the erasure of your personal data (right to erasure)",
        "restriction": "a restriction of the use of your personal data (right to restriction of processing)",
        "objection": "an end to the use of your personal data for some purposes (right to object)",
        "portability": "your personal data in a reusable format (right to data portability)",
        "complaint": "an answer to your complaint about how we handle your personal data",
        "other": "an answer to your message",
    },
    "fr": {
        "access": "une copie des données personnelles que nous détenons à votre sujet (droit d'accès)",
        "rectification": "la rectification de vos données personnelles (droit de rectification)",
        "erasure": "l'effacement de vos données personnelles (droit à l'effacement)",
        "restriction": (
            "la limitation de l'utilisation de vos données personnelles "
            "(droit à la limitation du traitement)"
        ),
        "objection": "l'arrêt de l'utilisation de vos données personnelles à certaines fins (droit d'opposition)",
        "portability": "vos données personnelles dans un format réutilisable (droit à la portabilité)",
        "complaint": "une réponse à votre plainte sur la manière dont nous traitons vos données personnelles",
        "other": "une réponse à votre message",
    },
    "nl": {
        "access": "een kopie van de persoonsgegevens die wij over u bewaren (recht op inzage)",
        "rectification": "de verbetering van uw persoonsgegevens (recht op rectificatie)",
        "erasure": "het wissen van uw persoonsgegevens (recht op gegevenswissing)",
        "restriction": "de beperking van het gebruik van uw persoonsgegevens (recht op beperking van de verwerking)",
        "objection": (
            "de stopzetting van het gebruik van uw persoonsgegevens voor bepaalde doeleinden "
            "(recht van bezwaar)"
        ),
        "portability": "uw persoonsgegevens in een herbruikbaar formaat (recht op overdraagbaarheid)",
        "complaint": "een antwoord op uw klacht over de manier waarop wij met uw persoonsgegevens omgaan",
        "other": "een antwoord op uw bericht",
    },
    "de": {
        "access": "eine Kopie der personenbezogenen Daten, die wir über Sie speichern (Auskunftsrecht)",
        "rectification": "die Berichtigung Ihrer personenbezogenen Daten (Recht auf Berichtigung)",
        "erasure": "die Löschung Ihrer personenbezogenen Daten (Recht auf Löschung)",
        "restriction": (
            "die Einschränkung der Verwendung Ihrer personenbezogenen Daten "
            "(Recht auf Einschränkung der Verarbeitung)"
        ),
        "objection": (
            "die Beendigung der Verwendung Ihrer personenbezogenen Daten für bestimmte Zwecke "
            "(Widerspruchsrecht)"
        ),
        "portability": (
            "Ihre personenbezogenen Daten in einem wiederverwendbaren Format "
            "(Recht auf Datenübertragbarkeit)"
        ),
        "complaint": "eine Antwort auf Ihre Beschwerde über den Umgang mit Ihren personenbezogenen Daten",
        "other": "eine Antwort auf Ihre Nachricht",
    },
}  # fmt: skip
_AND = {"en": "and", "fr": "et", "nl": "en", "de": "und"}
_BETWEEN_LANGUAGES = "\n- - - - - - - - - -\n\n"


@dataclass(frozen=True, slots=True)
class Letter:
    """A filled-in template: the text, and the languages it is written in (`"fr, nl"` for both)."""

    body: str
    language: str


def local_date(day: date, language: str) -> str:
    """A date as the language writes it ("30 June 2026", "30 juin 2026", "1er juillet 2026",
    "30. Juni 2026")."""
    if language in _MONTHS:
        month = _MONTHS[language].split()[day.month - 1]
        number = {"de": f"{day.day}.", "fr": "1er" if day.day == 1 else str(day.day)}.get(
            language, str(day.day)
        )
        return f"{number} {month} {day.year}"
    return f"{day.day} {day:%B %Y}"


def letter_languages(language: str, *, country: str) -> tuple[str, ...]:
    """The languages to write in: the email's; when unsure, French and Dutch for Belgium, else English."""
    if language in LANGUAGES:
        return (language,)
    return ("fr", "nl") if country.upper() == "BE" else ("en",)


def greeting(name: str, language: str) -> str:
    """ "Dear Ana Lopez," or the language's polite form when the name is unknown."""
    with_name, without = _GREETINGS.get(language, _GREETINGS["en"])
    name = plain_name(name)
    return with_name.format(name=name) if name else without


def request_words(labels: Sequence[str], language: str) -> str:
    """What the requester asks for, in plain words, every right of the case named."""
    words = _RIGHTS.get(language, _RIGHTS["en"])
    phrases = list(dict.fromkeys(words.get(k, words["other"]) for k in labels)) or [words["other"]]
    if len(phrases) == 1:
        return phrases[0]
    return f"{', '.join(phrases[:-1])} {_AND.get(language, 'and')} {phrases[-1]}"


@dataclass(frozen=True, slots=True)
class Writer:
    """Fills in templates for cases: the templates, the country (for the bilingual fallback) and
    the privacy address we write from."""

    templates: Templates
    country: str = "BE"
    mail_from: str = ""

    def write(self, name: str, case: Case, *, due: date | None = None, extension_reason: str = "") -> Letter:
        """The template `name` filled in for the case, in the requester's language (or two)."""
        languages = letter_languages(case.language, country=self.country)
        requester = plain_name(case.requester_name)
        bodies = [
            self.templates.render(
                name,
                language,
                {
                    "greeting": greeting(requester, language),
                    "name": requester or _NEUTRAL_NAME[language],
                    "case_ref": case.ref,
                    "received_date": local_date(case.received_date, language),
                    "due_date": local_date(due or case.due_date, language),
                    "request": request_words(case.labels or (case.kind,), language),
                    "privacy_address": self.mail_from,
                    "extension_reason": " ".join(extension_reason.split()).rstrip("."),
                },
            )
            for language in languages
        ]
        return Letter(_BETWEEN_LANGUAGES.join(bodies), ", ".join(languages))
