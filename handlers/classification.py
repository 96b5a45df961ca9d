"""Classifying an email into the kind of privacy request it makes: `classify(email)`.

The function is pure: plain data in (`InboundEmail`), plain data out (`Classification`), so
staff corrections can later be stored next to the input as labelled examples.

This is the first classifier: machine traffic is recognised from headers and structure
(`handlers.automated`); every human message opens a case, its kind guessed from a short list of
phrases in English, French, Dutch and German, with low confidence so staff confirm the type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from handlers.automated import detect_automated
from handlers.parsing import InboundEmail

__all__ = ["AUTOMATED_KINDS", "KINDS", "REQUEST_KINDS", "Classification", "classify"]

#: Rights a data subject exercises, in the order used for display.
REQUEST_KINDS = ("access", "rectification", "erasure", "restriction", "objection", "portability")
#: Every `kind` a human message can get.
KINDS = (*REQUEST_KINDS, "complaint", "other")
#: Machine traffic that never opens a case.
AUTOMATED_KINDS = ("auto_reply", "bounce")


@dataclass(frozen=True, slots=True)
class Classification:
    """The classifier's answer, as INTERFACE.md prints it (`privacy-desk classify --json`).

    `labels` lists every right asked for, primary first; `needs_review` asks staff to confirm
    the type (low confidence); `reasons` are short strings a person can check.
    """

    kind: str
    labels: tuple[str, ...]
    confidence: float
    language: str
    automated: bool
    reasons: tuple[str, ...] = field(default=())
    needs_review: bool = False

    def as_dict(self) -> dict[str, object]:
        """JSON-ready fields of the INTERFACE.md output (without the file name)."""
        return {
            "kind": self.kind,
            "labels": list(self.labels),
            "confidence": round(self.confidence, 3),
            "language": self.language,
            "automated": self.automated,
            "reasons": list(self.reasons),
        }


_PHRASES: dict[str, tuple[str, ...]] = {
    "complaint": (
        r"complain", r"plainte", r"klacht", r"beschwerde", r"data protection authority",
        r"autorit[ée] de protection", r"gegevensbeschermingsautoriteit", r"aufsichtsbeh[öo]rde",
    ),
    "erasure": (
        r"\bdelete\b", r"\berase\b", r"erasure", r"remove my", r"supprim", r"effac", r"verwijder",
        r"wissen", r"l[öo]sch", r"right to be forgotten", r"droit à l'oubli",
    ),
    "rectification": (r"rectif", r"correct", r"wrong address", r"verbeter", r"berichtig", r"corrig"),
    "portability": (r"portab", r"machine[- ]readable", r"overdraagbaar", r"[üu]bertragbar"),
    "restriction": (r"restrict", r"limitation du traitement", r"beperking", r"einschr[äa]nk"),
    "objection": (
        r"unsubscribe", r"\bobject", r"opposition", r"m'oppose", r"bezwaar", r"uitschrijven",
        r"widerspr", r"widerspruch", r"abmelden", r"d[ée]sinscri", r"direct marketing",
    ),
    "access": (
        r"\baccess\b", r"copy of (?:my|the|all)", r"what data", r"acc[èe]s", r"inzage", r"kopie",
        r"auskunft", r"article 15", r"art\. 15", r"artikel 15",
    ),
}
_LANG_WORDS = {
    "en": r"\b(?:the|and|please|my|data|you|request|with)\b",
    "fr": r"\b(?:le|la|les|et|mes|vous|donn[ée]es|je|demande)\b",
    "nl": r"\b(?:de|het|een|en|mijn|gegevens|u|ik|verzoek)\b",
    "de": r"\b(?:der|die|das|und|meine|sie|daten|ich|bitte)\b",
}


def detect_language(text: str) -> str:
    """`en`, `fr`, `nl` or `de` by function-word counts; `und` when undecided."""
    sample = text[:4000].lower()
    scores = {lang: len(re.findall(pat, sample)) for lang, pat in _LANG_WORDS.items()}
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] >= 2 else "und"


def classify(email: InboundEmail) -> Classification:
    """Classify one email. Machine traffic gets `auto_reply`/`bounce` and `automated=True`;
    every other message gets a kind from `KINDS`, flagged for review when unsure."""
    language = detect_language(f"{email.subject}\n{email.new_text or email.text}")
    verdict = detect_automated(email)
    if verdict is not None:
        return Classification(
            kind=verdict.kind, labels=(verdict.kind,), confidence=0.95, language=language,
            automated=True, reasons=verdict.reasons,
        )
    if email.unreadable:
        return Classification(
            kind="other", labels=("other",), confidence=0.0, language="und", automated=False,
            reasons=("could not be read",), needs_review=True,
        )
    text = f"{email.subject}\n{email.new_text or email.text}".lower()
    hits: list[tuple[str, str]] = []
    for kind, patterns in _PHRASES.items():
        for pat in patterns:
            m = re.search(pat, text)
            if m:
                hits.append((kind, m.group(0)))
                break
    if not hits:
        return Classification(
            kind="other", labels=("other",), confidence=0.3, language=language, automated=False,
            reasons=("no request phrase found",), needs_review=True,
        )
    labels = tuple(dict.fromkeys(k for k, _ in hits))
    return Classification(
        kind=labels[0], labels=labels, confidence=0.5, language=language, automated=False,
        reasons=tuple(f"{k}: “{p}”" for k, p in hits), needs_review=True,
    )
