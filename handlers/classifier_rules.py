"""The phrase rules behind `handlers.classification`, and the matcher that applies them.

The rules live in `handlers/data/classifier_rules.toml` (package data), read and compiled once at
import. Each rule is a weighted regular expression for one kind in one language; context patterns
(negation, legal disclaimers, conditional complaint boilerplate, withdrawals, references to an
earlier request, event cancellations…) decide, clause by clause, which matches count.

Text is matched in a *folded* form: lower-case, accents removed, typographic quotes, apostrophes
and dashes made plain. Folding keeps every character's position, so a match found in the folded
text is quoted to staff from the original text at the same offsets.

`find_evidence(text, rules)` is pure and linear in the length of the text (one scan per pattern).
"""

from __future__ import annotations

import bisect
import re
import tomllib
import unicodedata
from dataclasses import dataclass
from importlib import resources

__all__ = ["CONTEXTS", "Evidence", "Hit", "Rule", "RuleSet", "find_evidence", "fold", "load_rules"]

#: Context pattern groups and what they do to the matches in the same clause.
CONTEXTS = (
    "disclaimer",  # legal footer ("if you received this in error, delete it"): nothing counts
    "boilerplate",  # deadline and "inform me about those recipients" paragraphs: rights do not count
    "conditional",  # "I reserve the right to lodge a complaint" / "otherwise": complaints do not count
    "withdrawal",  # "please ignore my earlier request": nothing counts, the message is flagged
    "past_reference",  # "on 2 May I asked you to delete…": rights are an earlier request, not a new one
    "gratitude",  # "thanks for deleting my data": rights do not count
    "event",  # workshops, tickets: "unsubscribe/cancel" rules flagged `event` do not count
    "nonpersonal",  # files on a FabLab computer: erasure does not count
    "bulk_footer",  # "you receive this newsletter because… unsubscribe": objection does not count
    "vendor",  # sales pitch cues, counted over the whole message
)
_RIGHTS = ("access", "rectification", "erasure", "restriction", "objection", "portability")
_KINDS = (*_RIGHTS, "complaint")
_DEFAULT_NEGATABLE = frozenset({"access", "rectification", "erasure", "restriction", "portability"})
_RULES_FILE = "classifier_rules.toml"
MAX_MATCHES_PER_RULE = 4


# ---------------------------------------------------------------------------------------------
# folding


def _build_fold_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in range(0x00C0, 0x0250):
        ch = chr(code)
        base = unicodedata.normalize("NFKD", ch)[:1].lower()
        if base.isascii() and base.isalpha():
            table[code] = base
    for ch in "’‘‛ʼ`´′":
        table[ord(ch)] = "'"
    for ch in "“”„‟«»″":
        table[ord(ch)] = '"'
    for ch in "‐‑‒–—―−":
        table[ord(ch)] = "-"
    for ch in "\u00a0\u2007\u202f\u2009\u200a\t\r\f\v":
        table[ord(ch)] = " "
    table[ord("\u200b")] = " "
    table[ord("ß")] = "ß"
    table[ord("ẞ")] = "ß"
    return table


_FOLD_TABLE = _build_fold_table()


def fold(text: str) -> str:
    """Lower-case, accent-free text with plain punctuation, of exactly the same length.

    `fold(s)[i]` always stands for `s[i]`, so match offsets in the folded text are offsets in the
    original (Straße stays straße: patterns spell ß as `(?:ss|ß)`).
    """
    lowered = text.lower()
    if len(lowered) != len(text):  # a few code points lower-case to two (İ); keep positions
        lowered = "".join(c.lower()[:1] or c for c in text)
    return lowered.translate(_FOLD_TABLE)


# ---------------------------------------------------------------------------------------------
# rules


@dataclass(frozen=True, slots=True)
class Rule:
    """One weighted phrase pattern for a kind, in one language."""

    rule_id: str
    kind: str
    lang: str
    weight: float
    pattern: re.Pattern[str]
    negatable: bool
    event: bool
    generic: bool


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Compiled rules and context patterns."""

    rules: tuple[Rule, ...]
    contexts: dict[str, re.Pattern[str]]
    negation_before: re.Pattern[str]
    negation_inside: re.Pattern[str]
    negation_after: re.Pattern[str]
    scope_break: re.Pattern[str]
    negation_conditional: re.Pattern[str]


def _expand(pattern: str, macros: dict[str, str]) -> str:
    for _ in range(4):  # macros may use macros
        expanded = re.sub(r"%([A-Z_]+)%", lambda m: macros[m.group(1)], pattern)
        if expanded == pattern:
            return expanded
        pattern = expanded
    return pattern


def _join(patterns: list[str], macros: dict[str, str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{_expand(p, macros)})" for p in patterns))


def load_rules(text: str | None = None) -> RuleSet:
    """Compile the rule file (the packaged one unless `text` is given).

    Raises ValueError naming the rule when a pattern does not compile or a kind is unknown, so a
    broken rule file fails at import, not on the first email.
    """
    if text is None:
        text = resources.files("handlers").joinpath("data", _RULES_FILE).read_text(encoding="utf-8")
    data = tomllib.loads(text)
    macros: dict[str, str] = {k: str(v) for k, v in data.get("macros", {}).items()}
    rules: list[Rule] = []
    for kind in _KINDS:
        for lang, entries in data.get(kind, {}).items():
            for n, entry in enumerate(entries):
                if not (2 <= len(entry) <= 3):
                    raise ValueError(f"rule {kind}.{lang}.{n}: expected [weight, pattern, flags?]")
                weight, source = float(entry[0]), str(entry[1])
                flags = set(str(entry[2]).split(",")) if len(entry) == 3 else set()
                unknown = flags - {"neg", "noneg", "event", "generic"}
                if unknown:
                    raise ValueError(f"rule {kind}.{lang}.{n}: unknown flags {sorted(unknown)}")
                negatable = (kind in _DEFAULT_NEGATABLE or "neg" in flags) and "noneg" not in flags
                try:
                    pattern = re.compile(_expand(source, macros))
                except (re.error, KeyError) as e:
                    raise ValueError(f"rule {kind}.{lang}.{n}: {e}") from e
                rules.append(Rule(f"{kind}.{lang}.{n}", kind, lang, weight, pattern, negatable,
                                  "event" in flags, "generic" in flags))
    unknown_sections = set(data) - {"macros", "context", "negation", *_KINDS}
    if unknown_sections:
        raise ValueError(f"unknown sections in the rule file: {sorted(unknown_sections)}")
    contexts: dict[str, re.Pattern[str]] = {}
    for name, by_lang in data.get("context", {}).items():
        if name not in CONTEXTS:
            raise ValueError(f"unknown context {name!r}")
        patterns = [p for lang_patterns in by_lang.values() for p in lang_patterns]
        try:
            contexts[name] = _join(patterns, macros)
        except (re.error, KeyError) as e:
            raise ValueError(f"context {name}: {e}") from e
    neg = data["negation"]
    return RuleSet(
        rules=tuple(rules),
        contexts=contexts,
        negation_before=_join(neg["before"], macros),
        negation_inside=_join(neg["inside"], macros),
        negation_after=_join(neg["after"], macros),
        scope_break=_join(neg["scope_break"], macros),
        negation_conditional=_join(neg["conditional"], macros),
    )


# ---------------------------------------------------------------------------------------------
# matching


@dataclass(frozen=True, slots=True)
class Hit:
    """A rule that matched and counts: where, how much, and whether it refers to an earlier request."""

    kind: str
    rule_id: str
    weight: float
    start: int
    end: int
    referenced: bool


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the rules found in one piece of text.

    `hits` are the matches that count; `withdrawals` and `dropped` are (start, end, why) spans for
    the reasons shown to staff; `vendor_cues` counts sales-pitch phrases.
    """

    hits: tuple[Hit, ...]
    withdrawals: tuple[tuple[int, int], ...]
    dropped: tuple[tuple[str, str, int, int], ...]
    vendor_cues: int


_CLAUSE_BREAK = re.compile(r"\n[ \t]*\n|\n[ \t]*(?=(?:[-*•>]|\d{1,2}[.)])\s)|[!?;]+(?=\s)|\.+(?=\s|$)")
_ABBREVIATION = re.compile(
    r"(?:\b(?:art|abs|nr|no|bzw|lit|bijv|vgl|cf|ca|resp|ggf|evtl|inkl|incl|dhr|mevr|mr|mrs|ms|dr|st|sr|"
    r"z\.b|e\.g|i\.e|u\.a|d\.h|o\.a|m\.a\.w|t\.a\.v)|\d)$"
)


def _clause_starts(folded: str) -> list[int]:
    """Start offsets of the clauses (sentences, paragraphs, list items) of the folded text."""
    starts = [0]
    for m in _CLAUSE_BREAK.finditer(folded):
        if m.group(0).startswith(".") and _ABBREVIATION.search(folded, max(0, m.start() - 8), m.start()):
            continue
        starts.append(m.end())
    return starts


def _flag_clauses(pattern: re.Pattern[str] | None, folded: str, starts: list[int]) -> dict[int, tuple[int, int]]:
    """Clause index -> first matching span of a context pattern."""
    flagged: dict[int, tuple[int, int]] = {}
    if pattern is None:
        return flagged
    for m in pattern.finditer(folded):
        if m.end() == m.start():
            continue
        idx = bisect.bisect_right(starts, m.start()) - 1
        flagged.setdefault(idx, (m.start(), m.end()))
    return flagged


def _negated(rules: RuleSet, folded: str, clause_start: int, clause_end: int, start: int, end: int) -> bool:
    """Whether a negation governs the match: "do not delete", "ne supprimez pas", "nicht löschen"."""
    if rules.negation_inside.search(folded, start, end):
        return True
    window_start = max(clause_start, start - 50)
    window = folded[window_start:start]
    breaks = list(rules.scope_break.finditer(window))
    if breaks:
        window = window[breaks[-1].end() :]
    cue = None
    for cue in rules.negation_before.finditer(window):
        pass
    if cue is not None:
        before_cue = window[: cue.start()]
        if not rules.negation_conditional.search(before_cue):
            return True
    tail = folded[end : min(clause_end, end + 40)]
    return bool(rules.negation_after.match(tail))


def find_evidence(text: str, rules: RuleSet) -> Evidence:
    """Apply every rule to `text` and keep the matches their clause lets count."""
    folded = fold(text)
    starts = _clause_starts(folded)
    ends = [*starts[1:], len(folded)]
    flags = {name: _flag_clauses(rules.contexts.get(name), folded, starts) for name in CONTEXTS}
    hits: list[Hit] = []
    dropped: list[tuple[str, str, int, int]] = []
    portability_clauses: set[int] = set()
    generic_access: list[tuple[int, Hit]] = []
    for rule in rules.rules:
        for n, m in enumerate(rule.pattern.finditer(folded)):
            if n >= MAX_MATCHES_PER_RULE:
                break
            start, end = m.span()
            if end == start:
                continue
            idx = bisect.bisect_right(starts, start) - 1
            kind = rule.kind
            if idx in flags["disclaimer"]:
                dropped.append((kind, "disclaimer", start, end))
                continue
            if idx in flags["withdrawal"]:
                dropped.append((kind, "withdrawal", start, end))
                continue
            if kind == "complaint":
                if idx in flags["conditional"]:
                    dropped.append((kind, "conditional", start, end))
                    continue
            else:
                if idx in flags["boilerplate"] or idx in flags["gratitude"]:
                    dropped.append((kind, "boilerplate", start, end))
                    continue
                if rule.event and idx in flags["event"]:
                    dropped.append((kind, "event", start, end))
                    continue
                if kind == "erasure" and idx in flags["nonpersonal"]:
                    dropped.append((kind, "nonpersonal", start, end))
                    continue
                if kind == "objection" and idx in flags["bulk_footer"]:
                    dropped.append((kind, "bulk_footer", start, end))
                    continue
            if rule.negatable and _negated(rules, folded, starts[idx], ends[idx], start, end):
                dropped.append((kind, "negated", start, end))
                continue
            hit = Hit(kind, rule.rule_id, rule.weight, start, end,
                      referenced=kind != "complaint" and idx in flags["past_reference"])
            if kind == "portability":
                portability_clauses.add(idx)
            if kind == "access" and rule.generic:
                generic_access.append((idx, hit))
                continue
            hits.append(hit)
    # "send me my data … in a machine-readable format" asks for portability, not for access too
    for idx, hit in generic_access:
        if idx in portability_clauses:
            dropped.append(("access", "portability", hit.start, hit.end))
        else:
            hits.append(hit)
    withdrawals = tuple(flags["withdrawal"].values())
    vendor_cues = sum(1 for _ in rules.contexts["vendor"].finditer(folded)) if "vendor" in rules.contexts else 0
    return Evidence(tuple(hits), withdrawals, tuple(dropped), vendor_cues)
