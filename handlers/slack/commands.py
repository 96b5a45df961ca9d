"""`/privacy` and the App Home: what staff ask of the desk (answers to their own action, sent
directly, not through the outbox).

`/privacy overdue | open | due [DAYS] | find REF-OR-EMAIL | mine | stats | help` answers
ephemerally, staff only: anyone else gets the same one line whatever they typed, so they learn
nothing — not even whether a reference or an address exists. The command is acknowledged at once
(Slack allows 3 seconds) and answered through its `response_url`.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import Any

from handlers.slack.listings import answer_blocks, counts_text, outsider_home
from handlers.slack.scheduled import render_home
from storage.overview import CaseLine, Which

__all__ = ["HELP", "LISTED", "NOT_STAFF", "answer", "register"]

logger = logging.getLogger(__name__)

NOT_STAFF = "This command is for the privacy team."
#: Cases shown per answer (the rest are counted).
LISTED = 20
HELP = (
    "*`/privacy` — ask the desk* (only you see the answers)\n"
    "• `/privacy overdue` — open cases past their due date\n"
    "• `/privacy open` — every open case, soonest due first\n"
    "• `/privacy due [DAYS]` — open cases due within DAYS days (default 7), overdue ones included\n"
    "• `/privacy find REF-OR-EMAIL` — a case by its reference (PRIV-2026-0042) or the requester's address\n"
    "• `/privacy mine` — your open cases\n"
    "• `/privacy stats` — where the open cases stand, and the last 30 days\n"
    "• `/privacy help` — this help"
)


def register(app: Any) -> None:
    """The slash command and the App Home event."""
    app.command("/privacy")(privacy_command)
    app.event("app_home_opened")(home_opened)


async def privacy_command(ack: Any, body: dict[str, Any], respond: Any, context: Any) -> None:
    await ack()
    desk = context["desk"]
    user = str(body.get("user_id") or "")
    if not await desk.staff.is_staff(user):
        logger.info("refused /privacy from someone who is not staff")
        await respond(text=NOT_STAFF, response_type="ephemeral")
        return
    text, blocks = await answer(desk, user, str(body.get("text") or ""))
    await respond(text=text, blocks=blocks, response_type="ephemeral")


async def answer(desk: Any, user: str, query: str) -> tuple[str, list[dict[str, Any]]]:
    """The answer to `/privacy QUERY` for a staff member: (fallback text, blocks)."""
    words = query.split()
    sub, args = (words[0].lower(), words[1:]) if words else ("help", [])
    today = desk.calendar.local_date(desk.clock())
    paused = desk.settings.clock_pause_on_wait  # a waiting case's clock stands still: not overdue, not due
    listings = {
        "overdue": ("Overdue cases", Which(due_before=today, skip_paused=paused), "Nothing is overdue."),
        "open": ("Open cases", Which(), "No case is open."),
        "mine": ("Your open cases", Which(assignee=user), "Nothing is assigned to you."),
    }
    if sub == "due":
        if len(args) > 1 or (args and not re.fullmatch(r"\d{1,3}", args[0])) or (args and int(args[0]) > 365):
            return _plain(
                "Usage: `/privacy due [DAYS]`, DAYS a whole number of days from 0 to 365 (default 7)."
            )
        days = int(args[0]) if args else 7
        listings["due"] = (
            f"Due within {days} day{'s' if days != 1 else ''} (overdue included)",
            Which(due_by=today + timedelta(days=days), skip_paused=paused),
            "Nothing is due in that time.",
        )
    if sub in listings:
        title, which, empty = listings[sub]
        lines, total = await desk.store.read.overview.listing(which, limit=LISTED)
        return await _listing(desk, title, lines, total, today, empty, show_status=sub == "open")
    if sub == "find":
        if len(args) != 1:
            return _plain("Usage: `/privacy find REF-OR-EMAIL`, e.g. `/privacy find PRIV-2026-0042`.")
        needle = args[0].strip("<>")
        if needle.startswith("mailto:"):  # Slack links addresses: <mailto:a@b.org|a@b.org>
            needle = needle.split("|")[-1].removeprefix("mailto:")
        found = await desk.store.read.overview.find(needle, limit=LISTED)
        return await _listing(desk, "Found", found, len(found), today, "No case matches.", show_status=True)
    if sub == "stats":
        return await _stats(desk, today)
    return _plain(HELP)


def _plain(text: str) -> tuple[str, list[dict[str, Any]]]:
    return text.replace("*", ""), [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


async def _listing(
    desk: Any,
    title: str,
    lines: list[CaseLine],
    total: int,
    today: Any,
    empty: str,
    *,
    show_status: bool = False,
) -> tuple[str, list[dict[str, Any]]]:
    links = await desk.permalinks.for_cases(lines)
    items = [line.item(today) for line in lines]
    return answer_blocks(title, items, total, links, empty=empty, show_status=show_status)


async def _stats(desk: Any, today: Any) -> tuple[str, list[dict[str, Any]]]:
    stats = desk.store.read.stats
    now = await stats.open_now(today, pause_clock=desk.settings.clock_pause_on_wait)
    month = await stats.resolved(today - timedelta(days=29), today, tz=desk.calendar.tz)
    rate = f"{round(month.on_time_rate * 100)} %" if month.on_time_rate is not None else "—"
    m = month.median_days_to_answer
    median = "—" if m is None else f"{m:g} day{'' if m == 1 else 's'}"
    text = (
        f"*Open:* {now.open} ({counts_text(now.by_kind)})\n"
        f"*Overdue:* {now.overdue} · *due within 7 days:* {now.due_soon} · *unassigned:* {now.unassigned} · "
        f"*extended:* {now.extended}\n"
        f"*Resolved in the last 30 days:* {month.resolved} · on time {rate} · median {median} to answer · "
        f"{month.extended} extended"
    )
    return _plain(text)


async def home_opened(event: dict[str, Any], context: Any, client: Any) -> None:
    if event.get("tab", "home") != "home":
        return
    desk = context["desk"]
    user = str(event.get("user") or "")
    if not await desk.staff.is_staff(user):
        await client.views_publish(user_id=user, view=outsider_home())
        return
    async with desk.store.transaction(now=desk.clock()) as tx:
        await tx.outbox.home_opened(user)
    today = desk.calendar.local_date(desk.clock())
    view = await render_home(
        desk.store, desk.permalinks, user, today, skip_paused=desk.settings.clock_pause_on_wait
    )
    await client.views_publish(user_id=user, view=view)
