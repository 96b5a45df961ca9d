"""Block Kit for what the bot says about deadlines: reminders, the daily digest, the weekly
summary, the intake alarm, `/privacy` answers and the App Home (pure functions).

They show facts only — references, kinds, dates, days, assignees — never a requester's name,
address or words, so nothing here needs erasing when retention erases a case. Each case is linked
to its thread when its permalink is known.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.vocabulary import STATUS_LABELS, kind_label
from handlers.slack.blocks import escape_mrkdwn, mention

__all__ = [
    "ALARM_EVENT_TYPE",
    "DIGEST_EVENT_TYPE",
    "REMINDER_EVENT_TYPE",
    "SUMMARY_EVENT_TYPE",
    "Item",
    "alarm_message",
    "answer_blocks",
    "counts_text",
    "days_phrase",
    "digest_message",
    "home_view",
    "item_line",
    "reminder_message",
    "storage_alarm_message",
    "summary_message",
]

REMINDER_EVENT_TYPE = "privacy_reminder"
DIGEST_EVENT_TYPE = "privacy_digest"
SUMMARY_EVENT_TYPE = "privacy_summary"
ALARM_EVENT_TYPE = "privacy_intake_alarm"
#: Lines per section (a section holds at most 3000 characters).
_PER_SECTION = 10

Message = tuple[str, list[dict[str, Any]], dict[str, Any]]  # text, blocks, metadata
#: A case as a listing names it: case_ref, kind, status, due_date (ISO), days_left, assignee.
Item = Mapping[str, Any]


def short_date(day: date) -> str:
    """ "Mon 2 Mar 2026"."""
    return f"{day:%a} {day.day} {day:%b %Y}"


def days_phrase(days_left: int) -> str:
    """ "3 days left", "due today", "1 day late"."""
    if days_left == 0:
        return "due today"
    n = abs(days_left)
    unit = "day" if n == 1 else "days"
    return f"{n} {unit} left" if days_left > 0 else f"{n} {unit} late"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text[:150], "emoji": True}}


def _ref(item: Item, links: Mapping[str, str]) -> str:
    ref = escape_mrkdwn(str(item["case_ref"]))
    link = links.get(str(item["case_ref"]))
    return f"<{link}|{ref}>" if link else ref


def item_line(item: Item, links: Mapping[str, str], *, show_status: bool = False) -> str:
    """One case: reference (linked to its thread), kind, due date, days left, assignee."""
    due = date.fromisoformat(str(item["due_date"]))
    days = int(item["days_left"])
    phrase = days_phrase(days)
    if item.get("status") == "resolved":
        phrase = "resolved"
    elif days <= 0:
        phrase = f"*{phrase}*"
    who = mention(str(item["assignee"])) if item.get("assignee") else "_unassigned_"
    parts = [f"*{_ref(item, links)}*", kind_label(str(item["kind"])), f"due {short_date(due)}", phrase, who]
    if show_status and item.get("status"):
        parts.insert(2, STATUS_LABELS.get(str(item["status"]), str(item["status"])))
    return " · ".join(parts)


def _listed(
    title: str,
    items: Sequence[Item],
    total: int,
    links: Mapping[str, str],
    *,
    empty: str | None = None,
    show_status: bool = False,
) -> list[dict[str, Any]]:
    """A titled group of case lines, cut with a count of the rest."""
    if not items and empty is None:
        return []
    blocks = [_section(f"*{title}* ({total})")]
    if not items:
        blocks.append(_context(empty or ""))
        return blocks
    lines = [item_line(i, links, show_status=show_status) for i in items]
    for start in range(0, len(lines), _PER_SECTION):
        blocks.append(_section("\n".join(lines[start : start + _PER_SECTION])))
    if total > len(items):
        blocks.append(_context(f"…and {total - len(items)} more."))
    return blocks


# --- reminders ------------------------------------------------------------------------------------


def reminder_message(payload: Mapping[str, Any], *, assignee: str, extended: bool) -> Message:
    """A reminder in a case's thread, mentioning the assignee (or asking the channel to take it)."""
    ref = escape_mrkdwn(str(payload["case_ref"]))
    milestone = str(payload["milestone"])
    due = date.fromisoformat(str(payload["due_date"]))
    days = int(payload.get("days_left", 0))
    when = short_date(due)
    if milestone == "overdue":
        line = f":rotating_light: *{ref} is overdue*: it was due on {when} ({days_phrase(days)})."
    elif milestone == "due_today":
        if days == 0:
            line = f":warning: *{ref} is due today*, {when}."
        else:
            line = (
                f":warning: *{ref} is due on {when}*, which is not a working day: "
                "today is the last working day to answer."
            )
        if not extended and payload.get("kind") != "complaint":  # a complaint's time is not extended
            line += (
                "\nToday is also the last day to notify the requester of an extension (art. 12(3)), "
                "if it is needed: use *Extend* on the case."
            )
    elif milestone == "unassigned":
        line = f":wave: *{ref} has had no one assigned for 2 working days* (due {when}, {days_phrase(days)})."
    else:
        line = f":hourglass_flowing_sand: *{ref} is due in {days} days*, on {when}."
    if assignee:
        who = f"{mention(assignee)}, this case is yours."
    else:
        who = "Nobody has taken this case yet: can someone claim it? Use *Claim* on the message above."
    text = f"{line}\n{who}"
    blocks = [_section(text)]
    metadata = {
        "event_type": REMINDER_EVENT_TYPE,
        "event_payload": {
            "case_ref": payload["case_ref"],
            "milestone": milestone,
            "due_date": due.isoformat(),
        },
    }
    return text.replace("*", ""), blocks, metadata


# --- the daily digest -----------------------------------------------------------------------------


def digest_message(payload: Mapping[str, Any], links: Mapping[str, str]) -> Message:
    """Overdue, due within 7 days, unassigned: grouped, short, linked."""
    day = date.fromisoformat(str(payload["date"]))
    overdue, soon, unassigned = (list(payload.get(k) or []) for k in ("overdue", "due_soon", "unassigned"))
    summary = f"{len(overdue)} overdue, {len(soon)} due within 7 days, {len(unassigned)} unassigned"
    blocks: list[dict[str, Any]] = [_header(f"Privacy requests · {short_date(day)}"), _context(summary)]
    blocks += _listed(":rotating_light: Overdue", payload.get("overdue_items") or [], len(overdue), links)
    blocks += _listed(
        ":hourglass_flowing_sand: Due within 7 days", payload.get("due_soon_items") or [], len(soon), links
    )
    blocks += _listed(":wave: Unassigned", payload.get("unassigned_items") or [], len(unassigned), links)
    metadata = {
        "event_type": DIGEST_EVENT_TYPE,
        "event_payload": {"date": day.isoformat(), "overdue": overdue, "due_soon": soon},
    }
    return f"Privacy requests on {short_date(day)}: {summary}.", blocks[:50], metadata


# --- the weekly summary ---------------------------------------------------------------------------


def counts_text(counts: Mapping[str, int], labels: Mapping[str, str] | None = None) -> str:
    if not counts:
        return "none"
    name = (lambda k: labels.get(k, k)) if labels else kind_label
    return ", ".join(f"{name(k)} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def summary_message(payload: Mapping[str, Any], links: Mapping[str, str]) -> Message:
    """The week's summary for managers: open cases, overdue, due this week, last week's results."""
    week = date.fromisoformat(str(payload["week_of"]))
    rate = payload.get("on_time_rate")
    resolved = int(payload.get("resolved_last_week") or 0)
    median = payload.get("median_days_to_answer")
    last_week = (
        f"*Resolved last week:* {resolved}"
        + (
            f", {payload.get('on_time_last_week', 0)} on time ({round(float(rate) * 100)} %)"
            if rate is not None
            else ""
        )
        + (f", median {median:g} day{'' if median == 1 else 's'} to answer" if median is not None else "")
        + f", {payload.get('extended_last_week', 0)} extended."
    )
    blocks: list[dict[str, Any]] = [
        _header(f"Weekly privacy summary · week of {short_date(week)}"),
        _section(
            f"*Open:* {payload['open']} — by kind: {counts_text(payload.get('open_by_kind') or {})}\n"
            f"*By status:* {counts_text(payload.get('open_by_status') or {}, STATUS_LABELS)}\n"
            f"*Overdue:* {payload['overdue']} · *due this week:* {payload.get('due_this_week', 0)} · "
            f"*unassigned:* {payload.get('unassigned', 0)}\n{last_week}"
        ),
    ]
    blocks += _listed(
        ":rotating_light: Overdue", payload.get("overdue_items") or [], int(payload["overdue"]), links
    )
    blocks += _listed(
        ":calendar: Due this week",
        payload.get("due_this_week_items") or [],
        int(payload.get("due_this_week", 0)),
        links,
    )
    metadata = {
        "event_type": SUMMARY_EVENT_TYPE,
        "event_payload": {
            "week_of": week.isoformat(),
            "open": payload["open"],
            "overdue": payload["overdue"],
            "resolved_last_week": resolved,
            "on_time_rate": rate,
        },
    }
    text = (
        f"Weekly privacy summary, week of {short_date(week)}: {payload['open']} open, {payload['overdue']} overdue, "
        f"{resolved} resolved last week."
    )
    return text, blocks[:50], metadata


# --- the intake alarm -----------------------------------------------------------------------------


def _clock_time(instant: str, tz: ZoneInfo) -> str:
    at = datetime.fromisoformat(instant).astimezone(tz)
    return f"{short_date(at.date())} at {at:%H:%M}"


def alarm_message(payload: Mapping[str, Any], tz: ZoneInfo) -> Message:
    """The mailbox cannot be read (since when, why, what it means), or it can again."""
    folder = escape_mrkdwn(str(payload.get("folder") or "INBOX"))
    if payload["state"] == "down":
        text = (
            f":rotating_light: *The privacy mailbox cannot be read* since {_clock_time(str(payload['since']), tz)}: "
            f"{escape_mrkdwn(str(payload.get('reason') or 'the mailbox could not be read'))}.\n"
            "New requests sent to the privacy address are not reaching this channel, and their legal deadlines "
            "are running. The bot keeps trying every minute and will say here when it works again; "
            f"until then, please ask whoever runs the mail server to look at it (folder {folder})."
        )
    else:
        down = payload.get("down_since")
        was = f" (it could not be read from {_clock_time(str(down), tz)})" if down else ""
        text = (
            f":white_check_mark: *The privacy mailbox can be read again* since "
            f"{_clock_time(str(payload['since']), tz)}{was}. Mail that arrived meanwhile is being taken in now."
        )
    return _alarm(text, payload)


def _alarm(text: str, payload: Mapping[str, Any]) -> Message:
    """An intake alarm's message: its text, and the metadata INTERFACE.md gives it."""
    metadata = {
        "event_type": ALARM_EVENT_TYPE,
        "event_payload": {"state": payload["state"], "since": payload["since"]},
    }
    return text.replace("*", ""), [_section(text)], metadata


def storage_alarm_message(payload: Mapping[str, Any], tz: ZoneInfo) -> Message:
    """The database cannot be written, so no mail is taken in (why, and that none is lost), or it
    can again. An intake alarm for Slack's metadata: intake is what stops."""
    if payload["state"] == "down":
        text = (
            f":rotating_light: *The bot cannot store new mail* since {_clock_time(str(payload['since']), tz)}: "
            f"{escape_mrkdwn(str(payload.get('reason') or 'its database cannot be written'))}.\n"
            "New requests stay in the privacy mailbox, where none is lost, but they are not reaching this "
            "channel and their legal deadlines are running. The bot tries again every half minute and takes "
            "them in as soon as it can write again; please ask whoever runs the bot's server to free space."
        )
    else:
        down = payload.get("down_since")
        was = f" (it could not from {_clock_time(str(down), tz)})" if down else ""
        text = (
            f":white_check_mark: *The bot can store mail again* since {_clock_time(str(payload['since']), tz)}"
            f"{was}. Mail that waited in the mailbox is being taken in now."
        )
    return _alarm(text, payload)


# --- /privacy and the App Home --------------------------------------------------------------------


def answer_blocks(
    title: str,
    items: Sequence[Item],
    total: int,
    links: Mapping[str, str],
    *,
    empty: str,
    show_status: bool = False,
) -> tuple[str, list[dict[str, Any]]]:
    """A `/privacy` answer: a titled list of cases, cut with a count of the rest."""
    blocks = _listed(title, items, total, links, empty=empty, show_status=show_status)
    return f"{title}: {total}", blocks[:50]


def home_view(
    groups: Sequence[tuple[str, Sequence[Item], int, str]], links: Mapping[str, str], *, note: str
) -> dict[str, Any]:
    """The App Home: (title, items, total, what to say when empty) per group."""
    blocks: list[dict[str, Any]] = [_header("Privacy Desk")]
    for title, items, total, empty in groups:
        blocks.append({"type": "divider"})
        blocks += _listed(title, items, total, links, empty=empty)
    blocks.append(_context(note))
    return {"type": "home", "blocks": blocks[:100]}


def outsider_home() -> dict[str, Any]:
    """What someone who is not on the privacy team sees in the App Home."""
    return {
        "type": "home",
        "blocks": [
            _header("Privacy Desk"),
            _section("This app is used by the privacy team. There is nothing to show you here."),
        ],
    }
