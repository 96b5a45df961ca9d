"""Cases and emails for tests, with plausible values: only what a test cares about is given.

`case_record()` / `email_record()` build plain records (for pure functions such as Block Kit);
`open_case()` / `add_email()` write them to a real store, with the outbox rows intake would queue.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

from storage.db import iso
from storage.models import Case, StoredEmail
from storage.store import Store, Tx

__all__ = ["NOW", "add_email", "case_record", "email_record", "new_case", "open_case"]

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)

_CASE = Case(
    id=7,
    ref="PRIV-2026-0042",
    kind="access",
    labels=("access",),
    confidence=0.92,
    needs_review=False,
    reasons=("copy of the personal data",),
    language="en",
    status="new",
    requester_email="marie.dubois@example.org",
    requester_name="Marie Dubois",
    subject="my data",
    message_id="<short-access-1@example.org>",
    received_at=datetime(2026, 11, 24, 20, 14, 3, tzinfo=UTC),
    received_date=date(2026, 11, 24),
    due_date=date(2026, 12, 24),
    unreadable=False,
    assignee="",
    version=1,
    created_at=datetime(2026, 11, 24, 20, 15, tzinfo=UTC),
    updated_at=datetime(2026, 11, 24, 20, 15, tzinfo=UTC),
    closed_at=None,
)
_EMAIL = StoredEmail(
    id=11,
    message_id="<short-access-1@example.org>",
    case_id=7,
    disposition="opened_case",
    received_at=datetime(2026, 11, 24, 20, 14, 3, tzinfo=UTC),
    from_name="Marie Dubois",
    from_addr="marie.dubois@example.org",
    reply_to="",
    subject="my data",
    body_text="Hi, can you send me a copy of the personal data you have about me?\nThanks\nMarie",
    new_text="Hi, can you send me a copy of the personal data you have about me?",
    quoted_text="",
    signature="Thanks\nMarie",
    attachments=(),
    kind="access",
    labels=("access",),
    confidence=0.92,
    language="en",
    automated=False,
    reasons=("copy of the personal data",),
    problems=(),
    unreadable=False,
    html_only=False,
)


def case_record(**changes: object) -> Case:
    """A case as stored (PRIV-2026-0042, an access request by Marie Dubois), with `changes`."""
    return dataclasses.replace(_CASE, **changes)  # type: ignore[arg-type]


def email_record(**changes: object) -> StoredEmail:
    """The email that opened `case_record()`, with `changes`."""
    return dataclasses.replace(_EMAIL, **changes)  # type: ignore[arg-type]


async def open_case(
    tx: Tx,
    message_id: str,
    *,
    received_at: datetime = NOW,
    received_date: date | None = None,
    kind: str = "access",
    requester_email: str = "marie.dubois@example.org",
    requester_name: str = "Marie Dubois",
    subject: str = "my data",
    status: str | None = None,
) -> Case:
    """Open a case with plausible values, and queue its root as intake does."""
    received = received_date or received_at.date()
    case = await tx.cases.open(
        kind=kind,
        labels=[kind],
        confidence=0.9,
        needs_review=False,
        reasons=["copy of my data"],
        language="en",
        requester_email=requester_email,
        requester_name=requester_name,
        subject=subject,
        message_id=message_id,
        received_at=received_at,
        received_date=received,
        due_date=received + timedelta(days=30),
        unreadable=False,
    )
    await tx.outbox.post_root(case.id)
    if status is not None:
        case, _, _ = await tx.cases.update(case, {"status": status})
    return case


async def add_email(
    tx: Tx, message_id: str, *, case_id: int | None, disposition: str = "opened_case", **fields: object
) -> int:
    """Store an inbound email with plausible values."""
    values: dict[str, object] = {
        "message_id": message_id,
        "case_id": case_id,
        "disposition": disposition,
        "received_at": iso(tx.now),
        "from_name": "Marie Dubois",
        "from_addr": "marie.dubois@example.org",
        "subject": "my data",
        "body_text": "Hi, can you send me a copy?",
        "new_text": "Hi, can you send me a copy?",
        "kind": "access",
        "labels": ["access"],
        "to_addrs": ["privacy@imal.example"],
        "attachments": [{"filename": "id.pdf", "content_type": "application/pdf", "size": 1234}],
    }
    values.update(fields)
    return await tx.mail.add(**values)


async def new_case(store: Store, message_id: str, *, now: datetime = NOW, **case_fields: object) -> Case:
    """A case with the email that opened it, committed."""
    async with store.transaction(now=now) as tx:
        case = await open_case(tx, message_id, **case_fields)  # type: ignore[arg-type]
        await add_email(tx, message_id, case_id=case.id)
    return case
