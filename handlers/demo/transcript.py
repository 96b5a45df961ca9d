"""What the demo shows, in order: the record both renderers (text and HTML) turn into a page.

A transcript is a sequence of entries: headings (a part of the demo, a case, a day), the demo's
own narration (a sample arriving, a staff member clicking), the Slack messages the bot posted or
edited, exactly as it sent them (Block Kit), and the acknowledgements it queued for requesters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["Entry", "Heading", "Letter", "Narration", "Posted", "Transcript"]


@dataclass(frozen=True, slots=True)
class Heading:
    """A part of the demo (`level` 1), a case or a day (`level` 2), with a line of detail."""

    title: str
    detail: str = ""
    level: int = 2


@dataclass(frozen=True, slots=True)
class Narration:
    """What happens around the bot: an email arriving, a staff member acting, a quiet day."""

    text: str
    at: datetime | None = None  # local time, when it is an event of the day


@dataclass(frozen=True, slots=True)
class Posted:
    """A Slack message as the bot posted it (or edited it: `edited`), with its Block Kit.

    `channel` is the staff channel's id or a direct message's; `thread_ts` the ts of the root it
    replies under; `case_ref` the case it is about, if any; `at` the local time it was sent."""

    ts: str
    at: datetime
    channel: str
    text: str
    blocks: tuple[dict[str, Any], ...]
    event_type: str
    case_ref: str | None = None
    thread_ts: str | None = None
    edited: bool = False


@dataclass(frozen=True, slots=True)
class Letter:
    """An email queued for a requester (an acknowledgement): who, subject, language, and the
    first lines of its text (`more`: how many lines are left out)."""

    case_ref: str
    to: str
    subject: str
    language: str
    lines: tuple[str, ...]
    more: int = 0


Entry = Heading | Narration | Posted | Letter


@dataclass(frozen=True, slots=True)
class Transcript:
    """The demo from start to end, with what rendering needs to know about Slack: the channel,
    the display names of user ids, and the permalinks of messages (permalink → ts)."""

    title: str
    subtitle: str
    workspace: str
    channel_id: str
    channel_name: str
    app_name: str
    entries: tuple[Entry, ...]
    users: Mapping[str, str] = field(default_factory=dict)
    permalinks: Mapping[str, str] = field(default_factory=dict)
