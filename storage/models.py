"""Rows of the database as plain, immutable records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

__all__ = ["AuditEvent", "Case", "Cursor", "StoredEmail"]

CASE_STATUSES = ("new", "in_progress", "awaiting_requester", "extended", "resolved")


@dataclass(frozen=True, slots=True)
class Case:
    """One privacy request and where it stands."""

    id: int
    ref: str
    kind: str
    labels: tuple[str, ...]
    confidence: float
    needs_review: bool
    reasons: tuple[str, ...]
    language: str
    status: str
    requester_email: str
    requester_name: str
    subject: str
    message_id: str
    received_at: datetime
    received_date: date
    due_date: date
    unreadable: bool
    assignee: str
    slack_channel: str | None
    slack_root_ts: str | None
    root_post_started_at: datetime | None
    version: int
    rendered_version: int
    rendered_on: date | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


@dataclass(frozen=True, slots=True)
class StoredEmail:
    """An inbound email as stored (the raw bytes are left in the database)."""

    id: int
    message_id: str
    case_id: int | None
    disposition: str
    received_at: datetime
    from_name: str
    from_addr: str
    reply_to: str
    subject: str
    body_text: str
    new_text: str
    quoted_text: str
    signature: str
    attachments: tuple[dict[str, object], ...]
    kind: str
    labels: tuple[str, ...]
    confidence: float
    language: str
    automated: bool
    reasons: tuple[str, ...]
    problems: tuple[str, ...]
    unreadable: bool
    html_only: bool
    slack_ts: str | None
    slack_post_started_at: datetime | None


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the mailbox watcher stands in one folder."""

    folder: str
    uidvalidity: int
    last_uid: int
    backfill_before_uid: int


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One entry of the append-only audit trail."""

    id: int
    case_id: int | None
    at: datetime
    actor: str
    action: str
    before: dict[str, object] | None
    after: dict[str, object] | None
    note: str
