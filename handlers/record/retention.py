"""Retention: `RETENTION_DAYS` after a case was resolved, its personal data is erased.

`purge` does it now (the CLI's `privacy-desk purge`, and `run` once a day), in batches, each in one
transaction:

- the database rows (`storage.retention`): email bodies and raw bytes, names, addresses, subjects,
  attachment names, typed notes and reasons, the staff's corrections kept for training; what
  `report` counts stays;
- an audit event `case.erased` per case, with the retention period and no data;
- the Slack side, queued in the outbox: the bot's thread replies about the case are deleted, and
  its root is re-rendered without personal data (reference, kind, dates, outcome). A running `run`
  sends these within a minute; otherwise its next start does;
- emails on no case (machine mail, our own mail coming back) lose their contents once they are as
  old as the retention period;
- then the file: the WAL checkpointed and truncated, VACUUM when much was freed (`secure_delete`
  has overwritten what was deleted), and a model trained on erased corrections removed (the bundled
  model, which holds no mail of ours, takes over until `privacy-desk train` is run again).
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from storage.retention import Erased
from storage.store import Store

__all__ = ["PurgeReport", "purge"]

logger = logging.getLogger(__name__)

BATCH = 500


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What a purge erased, or (`dry_run`) would erase."""

    closed_before: datetime
    refs: list[str] = field(default_factory=list)
    erased: Erased = field(default_factory=Erased)
    loose_emails: int = 0
    vacuumed: bool = False
    model_removed: bool = False
    dry_run: bool = False

    def lines(self) -> list[str]:
        """What to print: one line per case, then the totals."""
        verb = "would erase" if self.dry_run else "erased"
        lines = [f"{ref}: {verb} its personal data" for ref in self.refs]
        lines.append(
            f"{len(self.refs)} case(s) resolved on or before {self.closed_before:%Y-%m-%d %H:%M %Z} {verb}"
            + (
                f" ({self.erased.emails} emails, {self.erased.our_emails} of ours, {self.erased.texts} notes, "
                f"{self.erased.corrections} corrections)"
                if not self.dry_run
                else ""
            )
            + f"; {self.loose_emails} email(s) on no case {'would be ' if self.dry_run else ''}erased"
        )
        if self.model_removed:
            lines.append("the trained model held erased corrections: removed (run privacy-desk train again)")
        if not self.dry_run and self.refs:
            lines.append(
                "Slack: the bot's messages about these cases are deleted or re-rendered by the running bot"
            )
        return lines


async def purge(
    store: Store,
    *,
    retention_days: int,
    now: datetime,
    dry_run: bool = False,
    trained_model: Path | None = None,
) -> PurgeReport:
    """Erase (or, with `dry_run`, list) the personal data retention is due to erase at `now`."""
    closed_before = now - timedelta(days=retention_days)
    if dry_run:
        due = await store.read.retention.due(closed_before)
        loose = await store.read.retention.loose_emails_due(closed_before)
        return PurgeReport(closed_before, [ref for _, ref in due], loose_emails=loose, dry_run=True)
    refs: list[str] = []
    erased = Erased()
    while True:
        async with store.transaction(now=now) as tx:
            due = await tx.retention.due(closed_before, limit=BATCH)
            if not due:
                loose = await tx.retention.erase_loose_emails(closed_before)
                break
            ids = [case_id for case_id, _ in due]
            erased += await tx.retention.erase_cases(ids, now=now)
            for case_id in ids:
                await tx.audit.append(
                    case_id=case_id,
                    actor="system",
                    action="case.erased",
                    after={"retention_days": retention_days},
                )
                await tx.outbox.erase_from_slack(case_id)
        refs += [ref for _, ref in due]
        logger.info("retention: erased the personal data of %d case(s), last %s", len(due), due[-1][1])
    vacuumed = await store.compact() if refs or loose else False
    model_removed = False
    if erased.corrections and trained_model is not None and trained_model.is_file():
        await asyncio.to_thread(_shred, trained_model)
        model_removed = True
        logger.warning("retention: the trained model learnt from erased corrections; removed, retrain it")
    return PurgeReport(closed_before, refs, erased, loose, vacuumed, model_removed)


def _shred(path: Path) -> None:
    """Overwrite a file with zeros, then remove it."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.write(b"\0" * size)
        f.flush()
        os.fsync(f.fileno())
    path.unlink()
