"""Classifying an email into the kind of privacy request it makes: `classify(email)`.

The function is pure: plain data in (`InboundEmail`), plain data out (`Classification`), so
staff corrections can later be stored next to the input as labelled examples
(`Classification.from_dict` reads back what `as_dict` wrote).

How a privacy officer's reading is reproduced, in order:

1. **Machine traffic** (`handlers.mail_in.machine_mail`): bounces and auto-replies are recognised from
   headers and MIME structure, or from two weaker signs together; they never open a case.
2. **What the sender wrote now**: the new text of the body (no quoted history, no signature or
   legal footer; a forwarded message counts as the request it forwards) and the subject, unless
   the subject is a reply to ours ("Re: Your access request" is our wording, not theirs).
3. **Phrase rules** in English, French, Dutch and German (`handlers/classify/data/classifier_rules.toml`,
   applied by `handlers.classify.rules`) find the rights asked for and grievances, clause by
   clause, ignoring negated phrases ("do not delete"), legal disclaimers, conditional threats
   ("I reserve the right to complain"), withdrawals, thanks for work done, files on a FabLab
   computer, workshop cancellations and sales pitches. A phrase in a sentence about an earlier
   request ("I asked you on 2 May to delete…") is that earlier request, not a new one.
4. **The decision**: a real grievance or a complaint to the authority (score >= 3) makes the
   message a `complaint`, with the rights it concerns as further labels. Otherwise the primary
   kind is the first right the sender clearly asks for (among those scoring at least half the
   best); every right scoring at least `LABEL_MIN` is a label. The subject only confirms what the
   body asks, or stands in for an empty body, so "Unsubscribe" above a question about where we
   got the address is an access request.
5. **Confidence** grows with the evidence of the primary kind; below `REVIEW_BELOW`, or when
   request-like phrases were overruled to `other`, `needs_review` asks staff to confirm the type.
   Nothing that might be a request is filed as `other` silently.

`reasons` quote the deciding phrases from the sender's text (never an email address).
Everything is compiled once at import; a message takes well under a millisecond.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.vocabulary import AUTOMATED_KINDS, REQUEST_KINDS
from handlers.classify.features import extract
from handlers.classify.model import BUNDLED_MODEL, Model
from handlers.classify.rules import Evidence, Hit, find_evidence, find_family, fold, load_rules
from handlers.mail_in.machine_mail import detect_automated
from handlers.mail_in.parsing import InboundEmail

__all__ = [
    "LABEL_MIN",
    "REVIEW_BELOW",
    "Classification",
    "classify",
    "current_model",
    "detect_language",
    "use_model",
]

#: Below this confidence the case shows "please confirm the type".
REVIEW_BELOW = 0.6
#: Evidence a right needs to be listed among the labels.
LABEL_MIN = 1.5
#: Evidence that makes a message a complaint: an actual complaint, or two grievances.
COMPLAINT_MIN = 3.0
#: Characters of the new text that are read (a request is never longer; bounds the time).
MAX_TEXT = 10_000
MAX_REASONS = 5
_REASON_LEN = 110

RULES = load_rules()
logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Classification:
    """The classifier's answer, as INTERFACE.md prints it (`privacy-desk classify --json`).

    `labels` lists every right asked for, primary first; `needs_review` asks staff to confirm
    the type (low confidence, or request-like wording overruled); `reasons` are short strings
    a person can check; `withdrawal` is true when the sender withdraws an earlier request.
    """

    kind: str
    labels: tuple[str, ...]
    confidence: float
    language: str
    automated: bool
    reasons: tuple[str, ...] = field(default=())
    needs_review: bool = False
    withdrawal: bool = False

    def as_dict(self) -> dict[str, object]:
        """JSON-ready fields of the INTERFACE.md output (without the file name)."""
        return {
            "kind": self.kind,
            "labels": list(self.labels),
            "confidence": round(self.confidence, 3),
            "language": self.language,
            "automated": self.automated,
            "review": self.needs_review,
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Classification:
        """The classification `as_dict` (or a staff correction in the same shape) describes."""
        kind = str(data["kind"])
        labels = tuple(str(x) for x in data.get("labels") or (kind,))
        return cls(
            kind=kind,
            labels=labels,
            confidence=float(data.get("confidence", 1.0)),
            language=str(data.get("language", "und")),
            automated=bool(data.get("automated", kind in AUTOMATED_KINDS)),
            reasons=tuple(str(x) for x in data.get("reasons") or ()),
            needs_review=bool(data.get("review", data.get("needs_review", False))),
            withdrawal=bool(data.get("withdrawal", False)),
        )


# ---------------------------------------------------------------------------------------------
# language


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_LANG_WORDS: dict[str, frozenset[str]] = {
    "en": _words(
        "the and to of you your my me is are was for with please pls this that have has not it be on at can "
        "could would i im don dont thanks thank hi hello dear delete data what where how from about all any "
        "want like unsubscribe stop sending anymore email emails regards sincerely best request whom "
        "concern hereby our we they there which will if"
    ),
    "fr": _words(
        "le la les des du et est vous votre vos mon ma mes je j ne pas pour avec une un sur que qui merci "
        "bonjour svp cordialement donnees suis au aux ce cette mais plus moi m d l n c qu demande salut "
        "madame monsieur avez pouvez ai nous leur ou tout toutes"
    ),
    "nl": _words(
        "het een van ik jij u uw mijn niet voor met op dat wil graag bedankt groeten gegevens alstublieft "
        "aub dag hallo jullie mij ook naar heb hebben kan kunnen wat welke geen maar nog dit er om te beste "
        "geachte verwijder verzoek mvg hierbij zijn wij ze hoe waar"
    ),
    "de": _words(
        "der das und ist ich sie ihr ihre ihnen mein meine meiner meinen nicht mit fur auf dem des ein eine "
        "einen bitte danke daten hallo guten tag gruß grusse viele zu von habe haben sind auch noch wie was "
        "uber mich mir sehr geehrte damen herren wir euch wurde"
    ),
}
_WORD = re.compile(r"[a-zß]+")


def detect_language(text: str) -> str:
    """`en`, `fr`, `nl` or `de` by counting common words; `und` when none leads."""
    counts = dict.fromkeys(_LANG_WORDS, 0)
    for word in _WORD.findall(fold(text[:3000])):
        for lang, words in _LANG_WORDS.items():
            if word in words:
                counts[lang] += 1
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])
    (best, top), (_, second) = ranked[0], ranked[1]
    return best if top >= 1 and top > second else "und"


# ---------------------------------------------------------------------------------------------
# what the sender wrote

_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|aw|antw|antwoord|sv|vs|r|rif|odp)\s*(?:\[\d+\])?\s*:\s*)+", re.I)
_FORWARD_PREFIX = re.compile(r"^\s*(?:(?:fwd?|tr|wg|fw|doorgestuurd|weitergeleitet)\s*:\s*)+", re.I)
_QUOTE_MARKS = re.compile(r"(?m)^[ \t]*(?:>[ \t]?)+")
_ADDRESS = re.compile(r"[^\s<>()\"',;:]+@[^\s<>()\"',;:]+|\bhttps?://\S+|\bwww\.\S+", re.I)
_SPACES = re.compile(r"\s+")


def _subject(email: InboundEmail) -> tuple[str, bool]:
    """The subject without reply/forward prefixes, and whether it is a reply to someone's mail."""
    subject = email.subject or ""
    is_reply = bool(_REPLY_PREFIX.match(subject))
    stripped = subject
    for _ in range(3):  # "Re: Fwd: Re: …"
        stripped = _FORWARD_PREFIX.sub("", _REPLY_PREFIX.sub("", stripped))
    return stripped.strip(), is_reply


def _body(email: InboundEmail) -> str:
    """The text the sender wrote now; for a forward, the forwarded request too."""
    body = email.new_text or ""
    if email.forwarded and email.quoted_text:
        body = f"{body}\n\n{_QUOTE_MARKS.sub('', email.quoted_text)}"
    elif not body.strip() and not email.quoted_text.strip():
        body = email.text or ""  # nothing was split off: read all of it
    return body[:MAX_TEXT]


def _is_bulk(email: InboundEmail) -> bool:
    """Mailing-list or newsletter mail (its "unsubscribe" is a footer, not an objection)."""
    precedence = (email.header("precedence") or "").strip().lower()
    return bool(email.header("list-id") or email.header("list-unsubscribe")) or precedence in ("bulk", "list")


# ---------------------------------------------------------------------------------------------
# scoring


@dataclass(slots=True)
class _Kind:
    """The evidence for one kind: counted hits and their sum."""

    score: float = 0.0
    first: int = 1 << 30
    hits: list[Hit] = field(default_factory=list)  # in the body
    subject_hits: list[Hit] = field(default_factory=list)


def _tally(hits: list[Hit], *, scale: float = 1.0, position_offset: int = 0) -> dict[str, _Kind]:
    """Evidence per kind: each rule counts once, overlapping matches once (the heaviest)."""
    out: dict[str, _Kind] = {}
    for hit in sorted(hits, key=lambda h: (-h.weight, h.start)):
        k = out.setdefault(hit.kind, _Kind())
        if any(h.rule_id == hit.rule_id or (h.start < hit.end and hit.start < h.end) for h in k.hits):
            continue
        k.hits.append(hit)
        k.score += hit.weight * scale
        k.first = min(k.first, hit.start + position_offset)
    return out


def _confidence(score: float) -> float:
    """0.25 for no evidence, rising towards 0.97; about 0.6 for one everyday phrase."""
    return 0.25 + 0.72 * (1.0 - math.exp(-max(score, 0.0) / 2.2))


_WHY = {
    "disclaimer": "legal disclaimer",
    "boilerplate": "legal boilerplate",
    "conditional": "conditional threat",
    "withdrawal": "withdrawn",
    "gratitude": "already done",
    "event": "about an event",
    "nonpersonal": "files, not personal data",
    "bulk_footer": "newsletter footer",
    "negated": "negated",
    "portability": "part of the portability request",
}


def _quote(text: str, start: int, end: int, lo: int = 0, hi: int | None = None) -> str:
    """The phrase at [start, end) widened to whole words (one before, a few after), cleaned of
    addresses and cut to fit a reason line."""
    hi = len(text) if hi is None else min(hi, len(text))
    lo = max(0, lo)
    left = start
    while left > lo and text[left - 1].isalnum():
        left -= 1
    seen = 0
    while left > lo and seen < 1:  # one word before ("please delete …")
        j = left
        while j > lo and text[j - 1] in " \t":
            j -= 1
        k = j
        while k > lo and text[k - 1].isalnum():
            k -= 1
        if k == j:
            break
        left, seen = k, seen + 1
    right = end
    while right < hi and (text[right].isalnum() or text[right] in "'’-"):
        right += 1
    words = 0
    while right < hi and words < 3 and right - left < 70:
        j = right
        while j < hi and text[j] in " \t":
            j += 1
        k = j
        while k < hi and (text[k].isalnum() or text[k] in "'’-"):
            k += 1
        if k == j:
            break
        right, words = k, words + 1
    phrase = _SPACES.sub(" ", _ADDRESS.sub("[address]", text[left:right])).strip(" ,;:-")
    if len(phrase) > 90:
        phrase = phrase[:89].rstrip() + "…"
    return phrase


def _reason(label: str, phrase: str) -> str:
    line = f"{label}: “{phrase}”"
    return line if len(line) <= _REASON_LEN else line[: _REASON_LEN - 2] + "…”"


def _best_reason(hits: list[Hit], text: str, label: str) -> str:
    """A reason line quoting the heaviest (then earliest) of the hits from `text`, and a second
    phrase when the first alone is only an everyday cue."""
    ranked = sorted(hits, key=lambda h: (-h.weight, h.start))
    best = ranked[0]
    phrases = [_quote(text, best.start, best.end, best.clause_start, best.clause_end)]
    if best.weight < 2.5 and len(ranked) > 1:
        second = ranked[1]
        phrase = _quote(text, second.start, second.end, second.clause_start, second.clause_end)
        if phrase not in phrases[0] and phrases[0] not in phrase:
            phrases.append(phrase)
    line = f"{label}: " + ", ".join(f"“{p}”" for p in phrases)
    if len(line) > _REASON_LEN and len(phrases) > 1:
        line = f"{label}: “{phrases[0]}”"
    return line if len(line) <= _REASON_LEN else line[: _REASON_LEN - 2] + "…”"


# ---------------------------------------------------------------------------------------------
# classify


def classify(email: InboundEmail) -> Classification:
    """Classify one email. Never raises for any `InboundEmail` that `parse_email` returns.

    Machine traffic gets `auto_reply`/`bounce` and `automated=True`; every other message gets a
    kind from `KINDS`, its labels (primary first), a confidence in 0..1, its language and the
    reasons, flagged `needs_review` when unsure.
    """
    subject, subject_is_reply = _subject(email)
    body = _body(email)
    language = detect_language(f"{subject}\n{body}")

    verdict = detect_automated(email)
    if verdict is not None:
        # A web form or ticket system relaying what a person wrote (marked auto-generated and
        # nothing else), or a verdict on wording alone: read the message before dropping it.
        if verdict.reasons == ("Auto-Submitted: auto-generated",) or not verdict.certain:
            human = _classify_human(email, subject, subject_is_reply, body, language)
            if human.kind != "other" and human.confidence >= 0.75:
                why = (
                    "marked Auto-Submitted: auto-generated"
                    if verdict.certain
                    else f"looks like {verdict.kind.replace('_', '-')}"
                )
                return Classification(
                    kind=human.kind,
                    labels=human.labels,
                    confidence=min(human.confidence, 0.55),
                    language=human.language,
                    automated=False,
                    needs_review=True,
                    reasons=(f"{why}, but reads as a request", *human.reasons)[:MAX_REASONS],
                )
        return Classification(
            kind=verdict.kind,
            labels=(verdict.kind,),
            confidence=0.97 if verdict.certain else 0.8,
            language=language,
            automated=True,
            reasons=tuple(r[:_REASON_LEN] for r in verdict.reasons[:MAX_REASONS]),
        )
    if email.unreadable and not body.strip():
        return Classification(
            kind="other",
            labels=("other",),
            confidence=0.0,
            language="und",
            automated=False,
            reasons=("no readable text",),
            needs_review=True,
        )
    model = current_model()
    if model is None:  # no usable model file: the phrase rules alone
        return _classify_human(email, subject, subject_is_reply, body, language)
    return _classify_with(model, email, subject, subject_is_reply, body, language)


# ---------------------------------------------------------------------------------------------
# the learned model

_model: Model | None = None
_model_path: Path = BUNDLED_MODEL
_model_failed = False


def use_model(path: Path | None) -> Model:
    """Classify with the model in `path` from now on (None: the bundled one). Raises ValueError
    when the file is not a model (the one in use stays)."""
    global _model, _model_path, _model_failed
    model = Model.load(path or BUNDLED_MODEL)
    _model, _model_path, _model_failed = model, path or BUNDLED_MODEL, False
    return model


def current_model() -> Model | None:
    """The model in use, loaded once (None when its file cannot be read: then the rules decide,
    and the problem is logged once)."""
    global _model, _model_failed
    if _model is None and not _model_failed:
        try:
            _model = Model.load(_model_path)
        except ValueError as e:
            _model_failed = True
            logger.error("classifier model unusable, classifying by the phrase rules alone: %s", e)
    return _model


_FAMILIES = sorted(RULES.families.items())


def _only_a_conditional_complaint(body: str) -> bool:
    """Whether the only complaint wording the rules find is conditional ("or I will complain")."""
    ev = find_evidence(body, RULES)
    conditional = any(d.kind == "complaint" and d.why == "conditional" for d in ev.dropped)
    return conditional and not any(h.kind == "complaint" for h in ev.hits)


def _classify_with(
    model: Model, email: InboundEmail, subject: str, subject_is_reply: bool, body: str, language: str
) -> Classification:
    """A person's message, as the learned model reads it, with the phrase rules as a second reader:

    - the model decides the kind, the labels and the confidence;
    - a withdrawal of an earlier request that the rules find (and nothing new asked) is `other`,
      flagged for review: explicit evidence the model has too few examples of;
    - when the model says `other` but the rules find a request, a person confirms the type (the
      safety net: a missed request is a deadline nobody watches);
    - the reasons quote the sender's sentence the rules found when both agree on the kind, else
      the phrases that weighed most in the model.
    """
    blocks = extract(email, subject=subject, subject_is_reply=subject_is_reply, body=body, families=_FAMILIES)
    p = model.predict(blocks)
    rules = _classify_human(email, subject, subject_is_reply, body, language)
    if rules.withdrawal and rules.kind == "other":
        return rules
    kind, labels = p.kind, p.labels
    if kind == "complaint" and rules.kind in REQUEST_KINDS and _only_a_conditional_complaint(body):
        # "I reserve the right to complain to the authority" closes many formal requests: by the
        # labelling conventions a conditional threat is not a complaint
        kind, labels = rules.kind, rules.labels
    review = p.review or (kind == "other" and rules.kind != "other")
    phrases = ", ".join(f"“{x}”" for x in p.phrases)
    reasons = [f"{kind} ({p.confidence:.2f}): {phrases}" if phrases else f"{kind} ({p.confidence:.2f})"]
    if rules.kind == kind and rules.reasons:
        reasons = [*rules.reasons[:2], *reasons]
    if p.review:
        reasons.append(
            f"not sure: {p.kind} {p.confidence:.0%} or {p.runner_up} {p.runner_up_probability:.0%}"
        )
    elif review:
        reasons.append(f"the wording also reads as {rules.kind}: please confirm the type")
    return Classification(
        kind=kind,
        labels=labels,
        confidence=p.confidence,
        language=language,
        automated=False,
        reasons=tuple(r[:_REASON_LEN] for r in reasons[:MAX_REASONS]),
        needs_review=review,
        withdrawal=rules.withdrawal,
    )


def _classify_human(
    email: InboundEmail, subject: str, subject_is_reply: bool, body: str, language: str
) -> Classification:
    """The kind of a message a person wrote (see the module docstring for the steps)."""
    ev = find_evidence(body, RULES)
    subj_ev = find_evidence(subject, RULES) if subject and not subject_is_reply else Evidence((), (), (), 0)
    overruled: list[str] = []

    hits = list(ev.hits)
    subj_hits = [h for h in subj_ev.hits if not h.referenced]
    if ev.vendor_cues >= 2 and hits:
        overruled.append(
            _reason(
                "not a request (sales pitch)",
                _quote(body, hits[0].start, hits[0].end, hits[0].clause_start, hits[0].clause_end),
            )
        )
        hits, subj_hits = [], []
    if _is_bulk(email):
        hits = [h for h in hits if h.kind != "objection"]
        subj_hits = [h for h in subj_hits if h.kind != "objection"]

    specific = [h for h in hits if not h.generic and not h.referenced]
    new = _tally(specific)
    referenced = _tally([h for h in hits if h.referenced and not h.generic])
    generic = _tally([h for h in hits if h.generic and not h.referenced])
    subj = _tally([h for h in subj_hits if not h.generic], scale=0.7, position_offset=-(1 << 20))

    # the subject confirms what the body asks, or stands in for a body that asks nothing
    body_asks = any(k in new for k in (*REQUEST_KINDS, "complaint"))
    for kind, s in subj.items():
        if kind in new:  # the body's order decides the primary kind; the subject adds weight
            new[kind].score += s.score
            new[kind].subject_hits = s.hits
        elif not body_asks:
            new[kind] = _Kind(score=s.score, first=s.first, subject_hits=s.hits)

    withdrawn = bool(ev.withdrawals)
    reasons: list[str] = []
    complaint = new.get("complaint")
    rights = {k: v for k, v in new.items() if k in REQUEST_KINDS}

    def done(
        labels: tuple[str, ...],
        confidence: float,
        *,
        review: bool,
        withdrawal: bool = False,
        found: bool = True,
    ) -> Classification:
        evidence = [*ev.hits, *subj_ev.hits] if found else []
        return _done(labels, confidence, language, reasons, overruled, review, withdrawal, evidence)

    def label_reason(kind: str, evidence: _Kind, *, earlier: bool = False, tag: str = "") -> str:
        if evidence.hits:
            return _best_reason(
                evidence.hits, body, tag or (f"{kind} (earlier request)" if earlier else kind)
            )
        return _best_reason(evidence.subject_hits, subject, f"{tag or kind} (subject)")

    if complaint is not None and complaint.score >= COMPLAINT_MIN:
        concerned = {k: v for k, v in rights.items() if v.score >= LABEL_MIN}
        for k, v in referenced.items():
            if k in REQUEST_KINDS and k not in concerned and v.score >= LABEL_MIN:
                concerned[k] = v
        order = sorted(concerned, key=lambda k: concerned[k].first)
        labels = ("complaint", *order)
        reasons.append(label_reason("complaint", complaint))
        extra = sorted(complaint.hits, key=lambda h: (-h.weight, h.start))[1:2]
        for h in extra:
            if h.weight < 2.0:
                continue
            reasons.append(_reason("complaint", _quote(body, h.start, h.end, h.clause_start, h.clause_end)))
        for k in order:
            reasons.append(label_reason(k, concerned[k], earlier=k not in rights))
        confidence = _confidence(complaint.score)
        return done(labels, confidence, review=False, withdrawal=withdrawn)

    if rights:
        top = max(v.score for v in rights.values())
        candidates = [k for k, v in rights.items() if v.score >= max(min(LABEL_MIN, top), 0.5 * top)]
        primary = min(candidates, key=lambda k: (rights[k].first, -rights[k].score))
        others = sorted(
            (k for k, v in rights.items() if k != primary and v.score >= LABEL_MIN),
            key=lambda k: rights[k].first,
        )
        labels = (primary, *others)
        for k in labels:
            reasons.append(label_reason(k, rights[k]))
        confidence = _confidence(rights[primary].score)
        if not rights[primary].hits:  # only the subject asks
            confidence *= 0.85
        if complaint is not None and complaint.score >= LABEL_MIN:
            confidence *= 0.85
            reasons.append(label_reason("complaint", complaint, tag="possible grievance"))
        review = withdrawn
        if withdrawn:
            reasons.insert(0, _withdrawal_reason(body, ev))
        negated = [
            d for d in ev.dropped if d.why == "negated" and d.kind in REQUEST_KINDS and d.kind not in labels
        ]
        if negated:
            d = max(negated, key=lambda d: d.weight)
            reasons.append(_reason(f"not asked ({d.kind}, negated)", _quote(body, d.start, d.end)))
        return done(labels, confidence, review=review, withdrawal=withdrawn)

    earlier = {k: v for k, v in referenced.items() if k in REQUEST_KINDS}
    if earlier and not withdrawn:
        # only a mention of an earlier request ("did you delete my data as I asked?"): chase it
        primary = max(earlier, key=lambda k: (earlier[k].score, -earlier[k].first))
        reasons.append(label_reason(primary, earlier[primary], earlier=True))
        confidence = min(_confidence(earlier[primary].score) * 0.75, 0.58)
        return done((primary,), confidence, review=True)

    if withdrawn:
        reasons.append(_withdrawal_reason(body, ev))
        return done(("other",), 0.7, review=True, withdrawal=True)

    weak = {k: v for k, v in generic.items() if k in REQUEST_KINDS}
    if complaint is not None and not weak:  # a grievance, too weak to make a complaint
        best = max((*complaint.hits, *complaint.subject_hits), key=lambda h: h.weight)
        if best.weight >= 2.0:  # about data ("without my consent", "a data leak"): a complaint to confirm
            weak["complaint"] = complaint
        elif best.weight >= LABEL_MIN:  # indignation only ("unacceptable"): other, but a person looks
            overruled.append(label_reason("complaint", complaint, tag="possible grievance"))
    if weak and not overruled:
        primary = max(weak, key=lambda k: weak[k].score)
        reasons.append(label_reason(primary, weak[primary]))
        confidence = min(_confidence(weak[primary].score), 0.5)
        return done((primary,), confidence, review=True)

    # not a request: say so, and say what was set aside
    dropped = [
        d for d in ev.dropped if d.why not in ("disclaimer", "boilerplate", "gratitude", "bulk_footer")
    ]
    if dropped and not overruled:
        d = max(dropped, key=lambda d: (d.weight, -d.start))
        overruled.append(_reason(f"not counted ({_WHY.get(d.why, d.why)})", _quote(body, d.start, d.end)))
    words = len(body.split())
    if not overruled:  # privacy vocabulary but no request we recognise: a person should look
        for family in ("PRIVACY", "ABOUT_ME"):
            span = find_family(body, RULES, family)
            if span is not None:
                overruled.append(
                    _reason("mentions personal data, no request recognised", _quote(body, *span))
                )
                break
    review = bool(overruled)
    if email.attachments and words < 12:
        review = True  # a scanned letter: the request may be in the attachment
        overruled.append("little text, with an attachment: the request may be in it")
    if len(body) >= MAX_TEXT:
        review = True
        overruled.append(f"long message: only the first {MAX_TEXT} characters were read")
    confidence = 0.6 if review else (0.85 if words >= 3 else 0.7)
    if not overruled:
        reasons.append("no request phrase found in the new text")
    return done(("other",), confidence, review=review, found=False)


def _withdrawal_reason(body: str, ev: Evidence) -> str:
    start, end = ev.withdrawals[0]
    return _reason("withdrawal", _quote(body, start, end))


def _done(
    labels: tuple[str, ...],
    confidence: float,
    language: str,
    reasons: list[str],
    overruled: list[str],
    needs_review: bool,
    withdrawal: bool,
    hits: list[Hit],
) -> Classification:
    """The final `Classification`, with the review flag and the language filled in."""
    if language == "und" and hits:
        strongest = max(hits, key=lambda h: h.weight)
        if strongest.lang in ("en", "fr", "nl", "de"):
            language = strongest.lang
    confidence = round(max(0.0, min(1.0, confidence)), 3)
    all_reasons = list(dict.fromkeys([*reasons, *overruled]))[:MAX_REASONS]
    return Classification(
        kind=labels[0],
        labels=labels,
        confidence=confidence,
        language=language,
        automated=False,
        reasons=tuple(all_reasons),
        needs_review=needs_review or confidence < REVIEW_BELOW,
        withdrawal=withdrawal,
    )
