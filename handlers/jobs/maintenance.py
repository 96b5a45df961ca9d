"""One-off upkeep of what older versions stored."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from handlers.jobs import Job
from handlers.mail_in.parsing import strip_attachments
from storage.store import Store

__all__ = ["STRIP_ATTACHMENTS"]

logger = logging.getLogger(__name__)
_RUN = "schema-4"


async def strip_stored_attachments(store: Store, run_key: str, now: datetime) -> int:
    """Remove attachment content from raw messages stored before schema 4 (the thread always said
    attachments were not stored; now it is true of old mail too). Safe to repeat: a stripped
    message has nothing left to strip. Returns how many messages changed."""
    if await store.jobs.done("strip_attachments", run_key):
        return 0
    changed, after = 0, 0
    while ids := await store.mail.ids_with_raw(after_id=after, limit=100):
        for email_id in ids:
            raw = await store.mail.raw(email_id)
            if raw is None:
                continue
            stripped = await asyncio.to_thread(strip_attachments, raw)
            if stripped != raw:
                async with store.transaction(now=now) as tx:
                    await tx.mail.replace_raw(email_id, stripped)
                changed += 1
        after = ids[-1]
    async with store.transaction(now=now) as tx:
        await tx.jobs.claim("strip_attachments", run_key)
    if changed:
        logger.info("attachment content removed from %d stored message(s)", changed)
    return changed


STRIP_ATTACHMENTS = Job("strip_attachments", lambda local: _RUN, strip_stored_attachments)
