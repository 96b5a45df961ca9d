"""Domains made to look like ours (pure): `dpo@іmal.example` with a Cyrillic і, its punycode
form `xn--mal-hpd.example`, a domain mixing scripts.

A sender at such a domain poses as a colleague: it must be shown to staff, and it must never be
taken for our own domain (no colleague-forward treatment, no "our own mail" skip). Punycode is
read with the standard library's IDNA codec. Two domains are confusable when they differ but
have the same *skeleton* (after Unicode TR39): compatibility-folded, case-folded, accents
dropped, and the Cyrillic, Greek and Armenian letters that are drawn like Latin ones, plus
`0`/`1`/`rn`/`vv`, mapped to the Latin letter they imitate. The map is small and covers the
letters that make Latin domains; a full confusables table (`confusable_homoglyphs`) would add a
dependency for scripts no look-alike of an ASCII domain uses.
"""

from __future__ import annotations

import unicodedata
from contextlib import suppress

__all__ = ["ascii_domain", "lookalike_of", "mixed_scripts", "unicode_domain"]

#: Letters of other scripts drawn like a Latin letter (TR39 confusables, the Latin targets only).
_LIKE_LATIN = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j", "к": "k",
        "ӏ": "l", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x",
        "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ь": "b", "г": "r", "п": "n", "ɡ": "g",
        # Greek
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p",
        "τ": "t", "υ": "u", "χ": "x", "ω": "w", "γ": "y",
        # Armenian
        "օ": "o", "ս": "u", "ո": "n", "հ": "h", "ց": "g", "զ": "q",
        # Latin letters and digits drawn alike
        "ı": "i", "ł": "l", "ß": "ss", "0": "o", "1": "l", "|": "l",
    }
)  # fmt: skip


def unicode_domain(domain: str) -> str:
    """The domain as people read it: each punycode label (`xn--…`) decoded, lower-cased."""
    labels = []
    for label in domain.strip().rstrip(".").lower().split("."):
        if label.startswith("xn--"):
            with suppress(UnicodeError):  # not valid punycode: shown as written
                label = label.encode("ascii").decode("idna")
        labels.append(label)
    return ".".join(labels)


def ascii_domain(domain: str) -> str:
    """The domain as mail servers write it: non-ASCII labels in punycode (as written when the
    IDNA codec cannot encode them)."""
    labels = []
    for label in unicode_domain(domain).split("."):
        if not label.isascii():
            with suppress(UnicodeError):
                label = label.encode("idna").decode("ascii")
        labels.append(label)
    return ".".join(labels)


def _skeleton(text: str) -> str:
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    bare = "".join(c for c in folded if not unicodedata.combining(c))
    return bare.translate(_LIKE_LATIN).replace("rn", "m").replace("vv", "w")


#: Scripts that are written together (TR39's "Japanese" and "Korean" combinations).
_ONE_WRITING = {"HIRAGANA": "CJK", "KATAKANA": "CJK", "HANGUL": "CJK"}


def _script(char: str) -> str:
    """The script of a letter, by its Unicode name ("LATIN", "CYRILLIC", "CJK", …); "" for others."""
    if not char.isalpha():
        return ""
    script = unicodedata.name(char, "").split(" ", 1)[0]
    return _ONE_WRITING.get(script, script)


def mixed_scripts(domain: str) -> bool:
    """Whether a label of the domain mixes letters of different scripts (`pаypal`: Latin and
    Cyrillic), which no honest domain needs."""
    for label in unicode_domain(domain).split("."):
        scripts = {s for s in map(_script, label) if s}
        if len(scripts) > 1:
            return True
    return False


def lookalike_of(domain: str, own: str) -> bool:
    """Whether `domain` is not `own` but reads like it (same skeleton), or is a mixed-script
    domain posing as ASCII `own`'s neighbour. Exact matches (in either form) are not look-alikes."""
    if not domain or not own:
        return False
    theirs, ours = unicode_domain(domain), unicode_domain(own)
    if theirs == ours or ascii_domain(domain) == ascii_domain(own):
        return False
    return _skeleton(theirs) == _skeleton(ours)
