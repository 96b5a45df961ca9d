"""Rows of the database as plain, immutable records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

__all__ = [
    "CASE_STATUSES",
    "AuditEvent",
    "Case",
    "ChecklistItem",
    "Cursor",
    "OutboundEmail",
    "StoredEmail",
    "ThreadNote",
]

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
    identity_status: str = "unverified"
    identity_method: str = ""
    identity_by: str = ""
    identity_at: datetime | None = None
    sender_check: str = "unknown"
    sender_check_detail: str = ""
    extended_at: datetime | None = None
    extension_reason: str = ""
    waiting_since: datetime | None = None
    waiting_for: str = ""
    status_before_wait: str | None = None
    paused_days: int = 0
    outcome: str | None = None
    outcome_note: str = ""
    recipients_informed: tuple[str, ...] = ()
    resolved_on_time: bool | None = None
    split_from_case_id: int | None = None
    checklist_ts: str | None = None
    checklist_post_started_at: datetime | None = None
    checklist_version: int = 1
    checklist_rendered_version: int = 0

    @property
    def is_open(self) -> bool:
        """Whether the case still needs work (not resolved)."""
        return self.status != "resolved"

    @property
    def identity_settled(self) -> bool:
        """Whether identity is recorded as verified (or as not needed)."""
        return self.identity_status in ("verified", "not_needed")


@dataclass(frozen=True, slots=True)
class ChecklistItem:
    """One place where the requester's data may live, and what to do there for this case."""

    id: int
    case_id: int
    position: int
    system: str
    name: str
    action: str
    label: str
    done: bool
    done_by: str
    done_at: datetime | None


@dataclass(frozen=True, slots=True)
class ThreadNote:
    """A record of an action, to be shown in the case thread."""

    id: int
    case_id: int
    text: str
    blocks: tuple[dict[str, object], ...] | None
    slack_ts: str | None
    post_started_at: datetime | None


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
    split_case_id: int | None = None


@dataclass(frozen=True, slots=True)
class OutboundEmail:
    """A reply to the requester, written in Slack, waiting to be sent or sent."""

    id: int
    case_id: int
    message_id: str
    to_addr: str
    subject: str
    body: str
    language: str
    in_reply_to: str
    references: tuple[str, ...]
    author: str
    created_at: datetime
    sent_at: datetime | None
    failed_at: datetime | None
    attempts: int
    last_error: str


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
