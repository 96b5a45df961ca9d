"""Corrections: the kinds staff gave a case's email by "Change type", kept as labelled examples.

Each row points to the stored email that opened the case and holds the labels a person chose
(primary first); `all()` returns them with the email's raw bytes, which `privacy-desk train` uses as
one more training set ("corrections"). No text is copied here: the words stay in `email_contents`.

Retention (issue 11, not built yet) must erase a case's corrections together with the case and its
email contents (`delete_of_case`); a model trained before that still holds n-grams of the erased
mail in its vocabulary, so retrain after a purge.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from core.clock import Clock
from storage.db import Session, dumps, iso
from storage.mail import Mail

__all__ = ["Correction", "Corrections"]


@dataclass(frozen=True, slots=True)
class Correction:
    """One correction, with the raw message it labels (None once the raw bytes are gone)."""

    id: int
    case_id: int
    email_id: int
    labels: tuple[str, ...]
    actor: str
    at: datetime
    raw: bytes | None = None

    @property
    def primary(self) -> str:
        """The primary kind chosen."""
        return self.labels[0]


class Corrections:
    """The corrections on one session."""

    def __init__(self, db: Session, clock: Clock, mail: Mail | None = None) -> None:
        self._db = db
        self._clock = clock
        self._mail = mail or Mail(db, clock)

    async def add(self, case_id: int, email_id: int, labels: Sequence[str], actor: str) -> int:
        """Record that `actor` labelled the email `email_id` of case `case_id` with `labels`
        (primary first); returns the correction's id."""
        if not labels:
            raise ValueError("a correction needs at least one label")
        _, correction_id = await self._db.run(
            "INSERT INTO corrections (case_id, email_id, labels, actor, at) VALUES (?, ?, ?, ?, ?)",
            (case_id, email_id, dumps(list(labels)), actor, iso(self._clock())),
        )
        return correction_id

    async def all(self, *, latest_only: bool = True) -> list[Correction]:
        """Every correction, oldest first, with its email's raw bytes (from the mail repository);
        with `latest_only`, one per email: the last labels a person gave it. Corrections whose
        email has no raw bytes left are not returned."""
        rows = await self._db.fetch_all(Correction, "SELECT * FROM corrections ORDER BY id")
        if latest_only:
            rows = sorted({c.email_id: c for c in rows}.values(), key=lambda c: c.id)
        out: list[Correction] = []
        for correction in rows:
            raw = await self._mail.raw(correction.email_id)
            if raw is not None:
                out.append(dataclasses.replace(correction, raw=raw))
        return out

    async def of_case(self, case_id: int) -> list[Correction]:
        """A case's corrections, oldest first (without the raw bytes)."""
        return await self._db.fetch_all(
            Correction, "SELECT * FROM corrections WHERE case_id = ? ORDER BY id", (case_id,)
        )

    async def delete_of_case(self, case_id: int) -> int:
        """Erase a case's corrections (for retention); returns how many there were."""
        changed, _ = await self._db.run("DELETE FROM corrections WHERE case_id = ?", (case_id,))
        return changed
