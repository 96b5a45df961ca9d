"""The phrase rules behind `handlers.classify.classifier`, and the matcher that applies them.

The rules live in `handlers/classify/data/classifier_rules.toml` (package data), read and compiled once at
import. There are two layers:

- **phrases**: a weighted regular expression for one kind in one language ("delete my account",
  "Art. 15", "je m'oppose");
- **combos**: word families (multilingual stems: erasure verbs, "my <data noun>", "about me",
  marketing words…) that must occur together in one clause, close to each other, in any order.
  They carry the rules over to wordings nobody wrote a phrase for ("I'd like my details wiped").

Context patterns (negation, legal disclaimers, conditional complaint boilerplate, withdrawals,
references to an earlier request, thanks for work done, workshops, files on a FabLab computer,
newsletter footers, sales pitches) decide, clause by clause, which matches count.

Text is matched in a *folded* form: lower-case, accents removed, typographic quotes, apostrophes
and dashes made plain; then single line breaks inside a paragraph become spaces (mail is wrapped
at 72 columns, sentences are not) and the full stops of abbreviations ("art.", "Abs.", "5. März")
become spaces, so they end no sentence. Every step keeps every character's position, so a match
found in the prepared text is quoted to staff from the original text at the same offsets.

`find_evidence(text, rules)` is pure. It indexes where the words of the text start, so a pattern is
only tried where its first word can begin (`WordPattern`): the cost grows with the length of the
text, and a formal four-page letter takes a few milliseconds.
"""

from __future__ import annotations

import bisect
import itertools
import re
import tomllib
import unicodedata
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

__all__ = [
    "CONTEXTS",
    "Combo",
    "Dropped",
    "Evidence",
    "Hit",
    "Rule",
    "RuleSet",
    "WordPattern",
    "find_evidence",
    "find_family",
    "fold",
    "load_rules",
    "prepare",
]

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
# restriction phrases carry their own negation ("do not use … until"), objections and complaints too
_DEFAULT_NEGATABLE = frozenset({"access", "rectification", "erasure", "portability"})
#: contexts whose flag also covers the next clause ("I left files on computer 3. Please delete them.")
_SPILLING_CONTEXTS = frozenset({"event", "nonpersonal", "bulk_footer"})
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


_SOFT_BREAK = re.compile(r"(?<!\n)\n(?![ \t]*\n)(?![ \t]*(?:[-*•>]|\d{1,2}[.)])\s)")
_ABBREVIATION_DOTS = re.compile(
    r"\b(?:arts?|abs|nr|no|lit|bzw|vgl|cf|ca|resp|ggf|evtl|inkl|incl|bijv|bv|bspw|dhr|mevr|mr|mrs|ms|dr|st|"
    r"sr|s|z\.b|e\.g|i\.e|u\.a|d\.h|o\.a|m\.a\.w|t\.a\.v)\.|(?<![\d.])\d{1,2}\.(?=[ \t])"
)


def prepare(text: str) -> str:
    """The text rules are matched against: `fold(text)`, with soft line breaks and abbreviation
    dots turned into spaces. Same length as `text`, position for position."""
    folded = _SOFT_BREAK.sub(" ", fold(text))
    return _ABBREVIATION_DOTS.sub(lambda m: m.group(0).replace(".", " "), folded)


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


class WordPattern:
    """A compiled pattern whose every alternative starts at a word boundary (`\\b…`).

    Python's regex engine skips ahead quickly to a possible first character only when a pattern
    starts with literal text, and a leading `\\b` defeats that. So the leading `\\b` of every
    alternative is dropped when compiling and checked on each match instead: the matches are
    exactly those of the original pattern, found about twice as fast.

    It also knows which words its matches can start with (the first two to five letters of
    each alternative), so `possible(index)` can tell from a text's `WordIndex` that a pattern
    cannot match without running it: most rules are about words a given email does not contain.
    """

    __slots__ = ("anchors", "pattern", "source", "word_start")

    def __init__(self, source: str) -> None:
        self.source = source
        branches = _branches(source)
        self.word_start = all(b.startswith("\\b") and len(b) > 2 for b in branches)
        self.pattern = re.compile("|".join(b[2:] for b in branches) if self.word_start else source)
        anchors: set[str] | None = set()
        for branch in branches:
            starts = _literal_starts(branch[2:]) if branch.startswith("\\b") else None
            if starts is None or anchors is None:
                anchors = None
                break
            anchors |= starts
        self.anchors = frozenset(anchors) if anchors is not None else None

    def possible(self, index: WordIndex) -> bool:
        """False when no word of the indexed text starts the way a match must start."""
        return self.anchors is None or any(map(index.__contains__, self.anchors))

    def finditer(self, text: str, index: WordIndex | None = None) -> Iterator[re.Match[str]]:
        """Non-overlapping matches in `text`, left to right, as `re.finditer` would give them.

        With the text's `WordIndex`, the pattern is only tried where a word starts the way a
        match must start, instead of at every character.
        """
        if not self.word_start:
            yield from self.pattern.finditer(text)
            return
        if index is not None and self.anchors is not None:
            positions = sorted({p for anchor in self.anchors for p in index.get(anchor, ())})
            match, last_end = self.pattern.match, 0
            for pos in positions:
                if pos < last_end:
                    continue
                m = match(text, pos)
                if m is not None:
                    yield m
                    last_end = m.end() if m.end() > pos else pos + 1
            return
        pos, search = 0, self.pattern.search
        while True:
            m = search(text, pos)
            if m is None:
                return
            start = m.start()
            if start and (text[start - 1].isalnum() or text[start - 1] == "_"):
                pos = start + 1  # not at a word boundary: look again one character later
                continue
            yield m
            pos = m.end() if m.end() > start else start + 1


#: Where the words of a text start, by their first two to five characters.
WordIndex = dict[str, list[int]]
_WORD_START = re.compile(r"\b\w")
_ANCHOR_LEN = 5


def word_index(text: str) -> WordIndex:
    """The `WordIndex` of a prepared text (white space in a key is always a plain space)."""
    out: defaultdict[str, list[int]] = defaultdict(list)
    for i in [m.start() for m in _WORD_START.finditer(text)]:
        chunk = text[i : i + _ANCHOR_LEN]
        if not chunk.isalnum():
            chunk = _WHITE_SPACE.sub(" ", chunk)
        for n in range(2, len(chunk) + 1):
            out[chunk[:n]].append(i)
    return out


_WHITE_SPACE = re.compile(r"\s")


_REGEX_META = frozenset(".^$*+?{}[]\\|()")


def _leading_literal(pattern: str) -> str:
    """The literal text every match of `pattern` starts with: "acc?ess" gives "ac", "i\\s+object"
    gives "i " (any white space counts as one space, see `word_index`)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1 : i + 2]
            quant = pattern[i + 2 : i + 3]
            if nxt == "s":
                if quant in ("?", "*", "{"):
                    break
                out.append(" ")
                if quant == "+":
                    break  # more white space may follow: stop at the first
                i += 2
                continue
            if nxt in ".-'/:" and quant not in ("?", "*", "{"):
                out.append(nxt)
                i += 2
                continue
            break
        if c in "?*{":
            if out:
                out.pop()  # the character before an optional quantifier may be absent
            break
        if c in _REGEX_META:
            break
        out.append(c)
        i += 1
    return "".join(out)


def _syntax(pattern: str) -> Iterator[tuple[int, str, int]]:
    """(index, character, group depth) of each character of a regular expression that is syntax:
    not escaped and not inside a character class. An opening parenthesis has the depth outside it,
    a closing one the depth after it closes."""
    depth, i, in_class = 0, 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1
            if pattern[i + 1 : i + 2] == "]":  # a "]" first in a class is literal
                i += 1
        else:
            depth -= c == ")"
            yield i, c, depth
            depth += c == "("
        i += 1


def _group_end(pattern: str) -> int:
    """Index of the ")" closing the group that opens at pattern[0]."""
    return next((i for i, c, depth in _syntax(pattern) if c == ")" and depth == 0), -1)


def _literal_starts(branch: str, depth: int = 0) -> set[str] | None:
    """The beginnings (two to five characters) a match of `branch` must have, or None if unknown.

    `branch` has no top-level "|". A leading group is opened up: each of its alternatives is
    followed by the rest of the branch, and when the group is optional the rest alone counts too.
    """
    if depth > 4:
        return None
    if branch.startswith("(?:"):
        end = _group_end(branch)
        if end < 0:
            return None
        alternatives, rest = _branches(branch[3:end]), branch[end + 1 :]
        quant = rest[:1]
        if quant == "{":
            return None
        out: set[str] = set()
        for alternative in alternatives:
            starts = _literal_starts(
                alternative if quant in ("+", "*") else alternative + rest.lstrip("?"), depth + 1
            )
            if starts is None:
                return None
            out |= starts
        if quant in ("?", "*"):
            tail = _literal_starts(rest[1:], depth + 1)
            if tail is None:
                return None
            out |= tail
        return out
    literal = _leading_literal(branch)
    if len(literal) < 2:
        return None
    return {literal[:_ANCHOR_LEN]}


def _branches(pattern: str) -> list[str]:
    """The top-level alternatives of a regular expression (split at `|` outside groups)."""
    bounds = [-1, *(i for i, c, depth in _syntax(pattern) if c == "|" and depth == 0), len(pattern)]
    return [pattern[start + 1 : end] for start, end in itertools.pairwise(bounds)]


@dataclass(frozen=True, slots=True)
class Rule:
    """One weighted phrase pattern for a kind, in one language."""

    rule_id: str
    kind: str
    lang: str
    weight: float
    pattern: WordPattern
    negatable: bool
    event: bool
    generic: bool


@dataclass(frozen=True, slots=True)
class Combo:
    """Word families that, found together in one clause in any order, are evidence for a kind."""

    rule_id: str
    kind: str
    weight: float = 1.0  # as in the rules file when a combo gives none
    needs: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()
    negatable: bool = False
    event: bool = False
    window: int = 100  # the words must lie within this many characters of the first family's


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Compiled rules, combos, word families and context patterns."""

    rules: tuple[Rule, ...]
    contexts: dict[str, WordPattern]
    families: dict[str, WordPattern]
    combos: tuple[Combo, ...]
    combo_families: frozenset[str]  # the families some combo needs or excludes
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


def _flags(rule_id: str, text: str) -> set[str]:
    flags = {f.strip() for f in text.split(",") if f.strip()}
    unknown = flags - {"neg", "noneg", "event", "generic"}
    if unknown:
        raise ValueError(f"rule {rule_id}: unknown flags {sorted(unknown)}")
    return flags


def _word_pattern(rule_id: str, source: str, macros: dict[str, str]) -> WordPattern:
    try:
        return WordPattern(_expand(source, macros))
    except (re.error, KeyError) as e:
        raise ValueError(f"rule {rule_id}: {e}") from e


def _join(patterns: list[str], macros: dict[str, str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{_expand(p, macros)})" for p in patterns))


def _join_words(patterns: list[str], macros: dict[str, str]) -> WordPattern:
    return WordPattern("|".join(b for p in patterns for b in _branches(_expand(p, macros))))


def load_rules(text: str | None = None) -> RuleSet:
    """Compile the rule file (the packaged one unless `text` is given).

    Raises ValueError naming the rule when a pattern does not compile or a kind is unknown, so a
    broken rule file fails at import, not on the first email.
    """
    if text is None:
        text = resources.files("handlers.classify").joinpath("data", _RULES_FILE).read_text(encoding="utf-8")
    data = tomllib.loads(text)
    unknown_sections = set(data) - {"macros", "context", "negation", "families", "combo", *_KINDS}
    if unknown_sections:
        raise ValueError(f"unknown sections in the rule file: {sorted(unknown_sections)}")
    macros: dict[str, str] = {k: str(v) for k, v in data.get("macros", {}).items()}
    family_sources: dict[str, str] = {k: str(v) for k, v in data.get("families", {}).items()}
    macros.update(family_sources)  # families may use each other (%MY%, %DATA%)
    rules: list[Rule] = []
    for kind in _KINDS:
        for lang, entries in data.get(kind, {}).items():
            for n, entry in enumerate(entries):
                rule_id = f"{kind}.{lang}.{n}"
                if not (2 <= len(entry) <= 3):
                    raise ValueError(f"rule {rule_id}: expected [weight, pattern, flags?]")
                flags = _flags(rule_id, str(entry[2]) if len(entry) == 3 else "")
                negatable = (kind in _DEFAULT_NEGATABLE or "neg" in flags) and "noneg" not in flags
                pattern = _word_pattern(rule_id, str(entry[1]), macros)
                rules.append(
                    Rule(
                        rule_id,
                        kind,
                        lang,
                        float(entry[0]),
                        pattern,
                        negatable,
                        "event" in flags,
                        "generic" in flags,
                    )
                )
    families: dict[str, WordPattern] = {}
    combos: list[Combo] = []
    for n, entry in enumerate(data.get("combo", [])):
        kind = str(entry.get("kind", ""))
        rule_id = f"{kind}.combo.{n}"
        if kind not in _KINDS:
            raise ValueError(f"combo {n}: unknown kind {kind!r}")
        parts: list[list[str]] = [
            [str(x) for x in entry.get("need", [])],
            [str(x) for x in entry.get("unless", [])],
        ]
        if not parts[0]:
            raise ValueError(f"combo {rule_id}: no families in need")
        for names in parts:
            for i, name in enumerate(names):
                if name not in family_sources:  # an inline pattern instead of a family name
                    families.setdefault(name, _word_pattern(rule_id, name, macros))
                elif name not in families:
                    families[name] = _word_pattern(f"family {name}", family_sources[name], macros)
                names[i] = name
        flags = _flags(rule_id, str(entry.get("flags", "")))
        negatable = (kind in _DEFAULT_NEGATABLE or "neg" in flags) and "noneg" not in flags
        combos.append(
            Combo(
                rule_id,
                kind,
                float(entry.get("weight", 1.0)),
                tuple(parts[0]),
                tuple(parts[1]),
                negatable,
                "event" in flags,
                int(entry.get("window", 100)),
            )
        )
    for name, source in family_sources.items():  # also those no combo uses (the classifier may)
        if name not in families:
            families[name] = _word_pattern(f"family {name}", source, macros)
    contexts: dict[str, WordPattern] = {}
    for name, by_lang in data.get("context", {}).items():
        if name not in CONTEXTS:
            raise ValueError(f"unknown context {name!r}")
        patterns = [p for lang_patterns in by_lang.values() for p in lang_patterns]
        try:
            contexts[name] = _join_words(patterns, macros)
        except (re.error, KeyError) as e:
            raise ValueError(f"context {name}: {e}") from e
    neg = data["negation"]
    return RuleSet(
        rules=tuple(rules),
        contexts=contexts,
        families=families,
        combos=tuple(combos),
        combo_families=frozenset(n for c in combos for n in (*c.needs, *c.unless)),
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
    generic: bool = False
    lang: str = ""
    clause_start: int = 0
    clause_end: int = 0


@dataclass(frozen=True, slots=True)
class Dropped:
    """A match that did not count: its kind, why (a context name, "negated" or "portability"),
    where, and the weight it would have had."""

    kind: str
    why: str
    start: int
    end: int
    weight: float


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the rules found in one piece of text.

    `hits` are the matches that count; `withdrawals` are the (start, end) spans of withdrawal
    phrases and `dropped` the matches set aside, both for the reasons shown to staff;
    `vendor_cues` counts sales-pitch phrases.
    """

    hits: tuple[Hit, ...]
    withdrawals: tuple[tuple[int, int], ...]
    dropped: tuple[Dropped, ...]
    vendor_cues: int


_CLAUSE_BREAK = re.compile(r"\n[ \t]*\n|\n[ \t]*(?=(?:[-*•>]|\d{1,2}[.)])\s)|[!?;]+(?=\s)|\.+(?=\s|$)")
_ABBREVIATION = re.compile(
    r"(?:\b(?:art|abs|nr|no|bzw|lit|bijv|vgl|cf|ca|resp|ggf|evtl|inkl|incl|dhr|mevr|mr|mrs|ms|dr|st|sr|"
    r"z\.b|e\.g|i\.e|u\.a|d\.h|o\.a|m\.a\.w|t\.a\.v)|\d)$"
)


def clause_starts(folded: str) -> list[int]:
    """Start offsets of the clauses (sentences, paragraphs, list items) of the folded text."""
    starts = [0]
    for m in _CLAUSE_BREAK.finditer(folded):
        if m.group(0).startswith(".") and _ABBREVIATION.search(folded, max(0, m.start() - 8), m.start()):
            continue
        starts.append(m.end())
    return starts


def _flag_clauses(
    pattern: WordPattern | None, folded: str, starts: list[int], index: WordIndex
) -> dict[int, tuple[int, int]]:
    """Clause index -> first matching span of a context pattern."""
    flagged: dict[int, tuple[int, int]] = {}
    if pattern is None or not pattern.possible(index):
        return flagged
    for m in pattern.finditer(folded, index):
        if m.end() == m.start():
            continue
        idx = bisect.bisect_right(starts, m.start()) - 1
        flagged.setdefault(idx, (m.start(), m.end()))
    return flagged


def _spill(flagged: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int]]:
    """The flagged clauses and each one's next clause."""
    out = dict(flagged)
    for idx, span in flagged.items():
        out.setdefault(idx + 1, span)
    return out


def _negated(rules: RuleSet, folded: str, clause_start: int, clause_end: int, start: int, end: int) -> bool:
    """Whether a negation governs the match: "do not delete", "ne supprimez pas", "nicht löschen"."""
    if rules.negation_inside.search(folded, start, end):
        return True
    window_start = max(clause_start, start - 50)
    window = folded[window_start:start]
    breaks = list(rules.scope_break.finditer(window))
    if breaks:
        window = window[breaks[-1].end() :]
    cues = list(rules.negation_before.finditer(window))
    if cues:
        cue = cues[-1]  # the nearest cue in front of the match
        before_cue = window[: cue.start()]
        if not rules.negation_conditional.search(before_cue):
            return True
    tail = folded[end : min(clause_end, end + 40)]
    return bool(rules.negation_after.match(tail))


def _set_aside(kind: str, event: bool, idx: int, flags: dict[str, dict[int, tuple[int, int]]]) -> str | None:
    """The context that keeps a match in clause `idx` from counting, or None."""
    if idx in flags["disclaimer"]:
        return "disclaimer"
    if idx in flags["withdrawal"]:
        return "withdrawal"
    if kind == "complaint":
        return "conditional" if idx in flags["conditional"] else None
    if idx in flags["boilerplate"]:
        return "boilerplate"
    if idx in flags["gratitude"]:
        return "gratitude"
    if event and idx in flags["event"]:
        return "event"
    if kind == "erasure" and idx in flags["nonpersonal"]:
        return "nonpersonal"
    if kind == "objection" and idx in flags["bulk_footer"]:
        return "bulk_footer"
    return None


def _family_matches(
    rules: RuleSet, folded: str, starts: list[int], index: WordIndex
) -> dict[str, dict[int, list[tuple[int, int]]]]:
    """For each word family: clause index -> spans of its matches in that clause."""
    out: dict[str, dict[int, list[tuple[int, int]]]] = {}
    for name in rules.combo_families:
        pattern = rules.families[name]
        if not pattern.possible(index):
            continue
        by_clause: dict[int, list[tuple[int, int]]] = {}
        for m in pattern.finditer(folded, index):
            if m.end() > m.start():
                by_clause.setdefault(bisect.bisect_right(starts, m.start()) - 1, []).append(m.span())
        if by_clause:
            out[name] = by_clause
    return out


def _close_together(candidates: list[list[tuple[int, int]]], window: int) -> list[tuple[int, int]] | None:
    """One span per family, all within `window` characters of one span of the first family, or
    None when the families only co-occur far apart in a long sentence."""
    for first in candidates[0]:
        chosen = [first]
        for spans in candidates[1:]:
            near = [s for s in spans if s[0] >= first[0] - window and s[1] <= first[1] + window]
            if not near:
                break
            chosen.append(min(near, key=lambda s: abs(s[0] - first[0])))
        else:
            return chosen
    return None


def find_family(text: str, rules: RuleSet, name: str) -> tuple[int, int] | None:
    """The span of the first match of a word family in `text` (prepared as for the rules)."""
    pattern = rules.families.get(name)
    if pattern is None:
        raise KeyError(f"no word family {name!r} in the rule file")
    m = next(pattern.finditer(prepare(text)), None)
    return m.span() if m is not None else None


def find_evidence(text: str, rules: RuleSet) -> Evidence:
    """Apply every rule to `text` and keep the matches their clause lets count."""
    folded = prepare(text)
    index = word_index(folded)
    starts = clause_starts(folded)
    ends = [*starts[1:], len(folded)]
    flags = {name: _flag_clauses(rules.contexts.get(name), folded, starts, index) for name in CONTEXTS}
    for name in _SPILLING_CONTEXTS:
        flags[name] = _spill(flags[name])
    hits: list[Hit] = []
    dropped: list[Dropped] = []
    portability_clauses: set[int] = set()
    generic_access: list[tuple[int, Hit]] = []

    def judge(
        kind: str,
        rule_id: str,
        weight: float,
        negatable: bool,
        event: bool,
        generic: bool,
        lang: str,
        idx: int,
        start: int,
        end: int,
        anchor: tuple[int, int],
    ) -> None:
        """Keep the match as a hit, or record why its clause does not let it count."""
        why = _set_aside(kind, event, idx, flags)
        if why is None and negatable and _negated(rules, folded, starts[idx], ends[idx], *anchor):
            why = "negated"
        if why is not None:
            dropped.append(Dropped(kind, why, start, end, weight))
            return
        hit = Hit(
            kind,
            rule_id,
            weight,
            start,
            end,
            referenced=kind != "complaint" and idx in flags["past_reference"],
            generic=generic,
            lang=lang,
            clause_start=starts[idx],
            clause_end=ends[idx],
        )
        if kind == "portability":
            portability_clauses.add(idx)
        if kind == "access" and generic:
            generic_access.append((idx, hit))
        else:
            hits.append(hit)

    for rule in rules.rules:
        if not rule.pattern.possible(index):
            continue
        for n, m in enumerate(rule.pattern.finditer(folded, index)):
            if n >= MAX_MATCHES_PER_RULE:
                break
            start, end = m.span()
            if end > start:
                idx = bisect.bisect_right(starts, start) - 1
                judge(
                    rule.kind,
                    rule.rule_id,
                    rule.weight,
                    rule.negatable,
                    rule.event,
                    rule.generic,
                    rule.lang,
                    idx,
                    start,
                    end,
                    (start, end),
                )

    if rules.combos:
        found = _family_matches(rules, folded, starts, index)
        for combo in rules.combos:
            present = [found.get(name, {}) for name in combo.needs]
            for idx in sorted(set(present[0]).intersection(*present[1:])):
                if any(idx in found.get(name, {}) for name in combo.unless):
                    continue
                spans = _close_together([p[idx] for p in present], combo.window)
                if spans is None:
                    continue
                start, end = min(a for a, _ in spans), max(b for _, b in spans)
                judge(
                    combo.kind,
                    combo.rule_id,
                    combo.weight,
                    combo.negatable,
                    combo.event,
                    False,
                    "",
                    idx,
                    start,
                    end,
                    spans[0],
                )
    # "send me my data … in a machine-readable format" asks for portability, not for access too
    for idx, hit in generic_access:
        if idx in portability_clauses:
            dropped.append(Dropped("access", "portability", hit.start, hit.end, hit.weight))
        else:
            hits.append(hit)
    withdrawals = tuple(flags["withdrawal"].values())
    vendor = rules.contexts.get("vendor")
    vendor_cues = (
        sum(1 for _ in vendor.finditer(folded, index)) if vendor is not None and vendor.possible(index) else 0
    )
    return Evidence(tuple(hits), withdrawals, tuple(dropped), vendor_cues)
