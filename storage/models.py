"""Rows of the database as plain, immutable records.

A `Case` or `StoredEmail` is read with its personal data joined in (requester, subject, the text of
an email, reasons typed by staff); in the database those live in their own rows, which retention
erases without touching the facts (an erased case reads back with empty strings there).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from core.vocabulary import CASE_STATUSES

__all__ = [
    "CASE_STATUSES",
    "AuditEvent",
    "Case",
    "ChecklistItem",
    "Cursor",
    "Notice",
    "OutboundEmail",
    "OutboxRow",
    "StoredEmail",
]


@dataclass(frozen=True, slots=True)
class Case:
    """One privacy request and where it stands."""

    id: int
    ref: str
    kind: str
    labels: tuple[str, ...]
    confidence: float
    needs_review: bool
    language: str
    status: str
    message_id: str
    received_at: datetime
    received_date: date
    due_date: date
    unreadable: bool
    assignee: str
    version: int
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
    extension_text_id: int | None = None
    waiting_since: datetime | None = None
    waiting_for: str = ""
    status_before_wait: str | None = None
    paused_days: int = 0
    outcome: str | None = None
    outcome_text_id: int | None = None
    recipients_informed: tuple[str, ...] = ()
    resolved_on_time: bool | None = None
    split_from_case_id: int | None = None
    erased_at: datetime | None = None
    # personal data, joined in
    requester_email: str = ""
    requester_name: str = ""
    subject: str = ""
    reasons: tuple[str, ...] = ()
    extension_reason: str = ""
    outcome_note: str = ""

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
class StoredEmail:
    """An inbound email as stored (the raw bytes are left in the database)."""

    id: int
    message_id: str
    case_id: int | None
    disposition: str
    received_at: datetime
    kind: str
    labels: tuple[str, ...]
    confidence: float
    language: str
    automated: bool
    problems: tuple[str, ...]
    unreadable: bool
    html_only: bool
    split_case_id: int | None = None
    sender_check: str = "unknown"
    sender_check_detail: str = ""
    synthetic_id: bool = False
    attachment_count: int = 0  # every attachment, also those past the listed ones
    # personal data, joined in
    from_name: str = ""
    from_addr: str = ""
    reply_to: str = ""
    subject: str = ""
    body_text: str = ""
    new_text: str = ""
    quoted_text: str = ""
    signature: str = ""
    attachments: tuple[dict[str, object], ...] = ()
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OutboundEmail:
    """An email to the requester, written in Slack, and where its sending stands (in the outbox)."""

    id: int
    case_id: int
    message_id: str
    purpose: str
    language: str
    in_reply_to: str
    references: tuple[str, ...]
    author: str
    created_at: datetime
    to_addr: str
    subject: str
    body: str
    sent_at: datetime | None = None
    failed_at: datetime | None = None
    attempts: int = 0
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """Something the bot sends on its own initiative, and where its delivery stands.

    `parent_ts`/`parent_channel` are those of the message this one goes under (a thread reply) or
    changes (an update), once that message is in Slack. `lane`, read with the rows due, is where it
    goes as far as the outbox knows: that parent's channel, else its recipient (a direct message,
    an App Home); None for the sender's own place (the staff channel, the mail server).
    """

    id: int
    kind: str
    case_id: int | None
    parent_id: int | None
    email_id: int | None
    event_id: int | None
    outbound_id: int | None
    text_id: int | None
    created_at: datetime
    not_before: datetime | None
    attempts: int
    started_at: datetime | None
    done_at: datetime | None
    failed_at: datetime | None
    last_error: str
    channel: str | None
    result: str | None
    parent_ts: str | None = None
    parent_channel: str | None = None
    notice_id: int | None = None
    recipient: str | None = None
    lane: str | None = None


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the mailbox watcher stands in one folder."""

    folder: str
    uidvalidity: int
    last_uid: int
    backfill_before_uid: int


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One entry of the append-only audit trail: ids, enums and dates; the free text it concerns
    is pointed to (`text_id`), as are the emails (`email_id`, `outbound_id`)."""

    id: int
    case_id: int | None
    at: datetime
    actor: str
    action: str
    before: dict[str, object] | None
    after: dict[str, object] | None
    text_id: int | None = None
    email_id: int | None = None
    outbound_id: int | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    """A scheduled message decided once: a reminder, a digest, a weekly summary, an intake alarm.

    `payload` holds the facts it states (references, numbers, dates; never personal data)."""

    id: int
    kind: str
    case_id: int | None
    key: str
    day: str
    payload: dict[str, object] | None
    created_at: datetime
