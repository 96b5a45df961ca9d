"""Case references: `PRIV-2026-0042` (`PRIV-`, the year of receipt, a number of at least four digits)."""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["CASE_REF", "case_ref", "refs_in"]

#: A case reference as it appears in subjects ("Re: [PRIV-2026-0042] Your request").
CASE_REF = re.compile(r"\bPRIV-(\d{4})-(\d{4,6})\b", re.IGNORECASE)


def case_ref(year: int, number: int) -> str:
    """The reference of the `number`th case received in `year`."""
    return f"PRIV-{year}-{number:04d}"


def refs_in(text: str) -> Iterator[str]:
    """The case references written in `text`, normalised to upper case, in order."""
    for m in CASE_REF.finditer(text):
        yield f"PRIV-{m.group(1)}-{m.group(2)}"
