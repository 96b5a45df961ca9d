"""Delivering the scheduled messages of the outbox: reminders (in the case's thread), the daily
digest and the weekly summary (in the channel, the summary also by direct message to each
manager), the intake alarm, and App Home refreshes (`views.publish`); and the storage alarm, which
the outbox loop holds in memory while the database cannot be written.

Each is rendered when it is sent from the notice decided by its job (`storage.notices`), with
links to the case threads. A post whose earlier attempt was "started" but never recorded is first
looked for in Slack (a message with the same metadata and words), as for roots and notes. A
reminder for a case resolved since it was decided is dropped.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.clock import Clock, system_clock
from core.errors import Refused
from handlers.cases.deadlines import Calendar
from handlers.slack.api import GONE, SLACK_FAILURES, as_delivery_error, error_code
from handlers.slack.links import Permalinks
from handlers.slack.listings import (
    Message,
    alarm_message,
    digest_message,
    home_view,
    outsider_home,
    reminder_message,
    storage_alarm_message,
    summary_message,
)
from handlers.slack.staff import StaffDirectory
from storage.models import Notice, OutboxRow
from storage.outbox import Delivered
from storage.overview import CaseLine, Which
from storage.store import Repositories, Store, Tx

__all__ = ["HOME_GROUP_SIZE", "ScheduledSender", "home_groups", "render_home"]

logger = logging.getLogger(__name__)

#: Cases listed per group of the App Home.
HOME_GROUP_SIZE = 10
#: Slack errors that are about Slack or the app as a whole (everything waits); any other error of a
#: call made for one person (their App Home, a direct message) is about that person alone.
_APP_WIDE = frozenset(
    {
        "invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive",
        "ratelimited", "fatal_error", "internal_error", "service_unavailable", "request_timeout",
        "team_access_not_granted", "org_login_required",
    }
)  # fmt: skip


async def home_groups(
    repos: Repositories, user: str, today: date, *, soon_days: int = 7, skip_paused: bool = False
) -> tuple[list[tuple[str, list[CaseLine], int, str]], list[CaseLine]]:
    """The App Home's groups for `user`: my cases, then the team's overdue, due soon, unassigned."""
    o, n, p = repos.overview, HOME_GROUP_SIZE, skip_paused
    soon = today + timedelta(days=soon_days)
    groups = [
        ("Your open cases", Which(assignee=user), "Nothing assigned to you. Claim a case to see it here."),
        (":rotating_light: Overdue", Which(due_before=today, skip_paused=p), "Nothing is overdue."),
        (f":hourglass_flowing_sand: Due within {soon_days} days", Which(due_from=today, due_by=soon, skip_paused=p),
         "Nothing is due soon."),
        (":wave: Unassigned", Which(unassigned=True), "Every open case has someone on it."),
    ]  # fmt: skip
    listed = []
    for title, which, empty in groups:
        lines, total = await o.listing(which, limit=n)
        listed.append((title, lines, total, empty))
    every = [line for _, lines, _, _ in listed for line in lines]
    return listed, every


class ScheduledSender:
    """Sends the outbox's scheduled messages and App Home refreshes to Slack."""

    destination = "slack"
    #: a retry of a started row looks for it in Slack first (`_find`)
    finds_deliveries = True
    kinds = frozenset({"reminder", "digest", "summary", "summary_dm", "intake_alarm", "home"})

    def __init__(
        self,
        store: Store,
        client: AsyncWebClient,
        *,
        channel: str,
        calendar: Calendar,
        staff: StaffDirectory,
        permalinks: Permalinks | None = None,
        clock: Clock = system_clock,
        pause_clock: bool = False,
    ) -> None:
        self.pause_clock = pause_clock
        self.store = store
        self.client = client
        self.channel = channel
        self.calendar = calendar
        self.staff = staff
        self.permalinks = permalinks or Permalinks(client)
        self.clock = clock

    async def send(self, row: OutboxRow) -> Delivered:
        """Post the row's message (or publish the Home); raises `Unavailable` or `Refused`."""
        try:
            if row.kind == "home":
                return await self._publish_home(str(row.recipient or ""))
            notice = await self.store.notices.get(row.notice_id or 0)
            if notice is None:
                raise Refused("the notice no longer exists")
            message = await self._render(row, notice)
            if message is None:
                return Delivered(None)
            return await self._post(row, message)
        except SlackApiError as e:
            # a direct message Slack refuses for that person's sake (gone, deactivated) fails alone
            if row.kind == "summary_dm" and _about_one_person(e):
                raise Refused(f"Slack refused the direct message ({error_code(e)})") from None
            raise as_delivery_error(e, own_channel=row.kind != "summary_dm") from None
        except SLACK_FAILURES as e:
            raise as_delivery_error(e, own_channel=row.kind != "summary_dm") from None

    async def post_storage_alarm(self, alarm: dict[str, str]) -> None:
        """Tell the channel the database cannot be written (mail waits in the mailbox), or can
        again; raises a `DeliveryError` when Slack did not take it (it is kept and retried)."""
        text, blocks, metadata = storage_alarm_message(alarm, self.calendar.tz)
        try:
            await self.client.chat_postMessage(
                channel=self.channel, text=text, blocks=blocks, metadata=metadata, unfurl_links=False
            )
        except SLACK_FAILURES as e:
            raise as_delivery_error(e) from None

    def lane(self, row: OutboxRow) -> str:
        """Where the row counts against Slack's limits: the channel it is posted in (a person's
        direct messages, by their user id), or `views.publish` for every App Home."""
        if row.kind == "home":
            return "views.publish"
        if row.kind == "summary_dm":
            return str(row.recipient or "")
        return (row.parent_channel if row.kind == "reminder" else None) or self.channel

    async def sent(self, tx: Tx, row: OutboxRow, delivered: Delivered) -> None:
        """Nothing follows from a scheduled message being posted."""

    async def refused(self, tx: Tx, row: OutboxRow, reason: str) -> None:
        logger.error("outbox row %d (%s): Slack refused it for good: %s", row.id, row.kind, reason)

    # --- rendering ------------------------------------------------------------------------------
    async def _render(self, row: OutboxRow, notice: Notice) -> Message | None:
        payload = notice.payload or {}
        if notice.kind == "reminder":
            case = await self.store.cases.get(notice.case_id or 0)
            if case is None or not case.is_open:
                logger.info("a reminder was dropped: its case was resolved since")
                return None
            return reminder_message(payload, assignee=case.assignee, extended=case.extended_at is not None)
        if notice.kind == "intake_alarm":
            return alarm_message(payload, self.calendar.tz)
        groups = ("overdue_items", "due_soon_items", "unassigned_items", "due_this_week_items")
        items: list[Any] = [i for key in groups for i in payload.get(key) or []]  # type: ignore[attr-defined]
        ids = [int(i["case_id"]) for i in items]
        links = await self.permalinks.for_cases(await self.store.read.overview.lines(ids))
        if notice.kind == "digest":
            return digest_message(payload, links)
        return summary_message(payload, links)

    # --- posting --------------------------------------------------------------------------------
    async def _channel_of(self, row: OutboxRow) -> tuple[str, str | None]:
        """Where the row goes: (channel, thread ts or None)."""
        if row.kind == "reminder":
            if not row.parent_ts:
                raise Refused("the case has no thread")
            return row.parent_channel or self.channel, row.parent_ts
        if row.kind == "summary_dm":
            resp = await self.client.conversations_open(users=str(row.recipient or ""))
            return str((resp.get("channel") or {}).get("id") or row.recipient), None
        return self.channel, None

    async def _post(self, row: OutboxRow, message: Message) -> Delivered:
        text, blocks, metadata = message
        channel, thread_ts = await self._channel_of(row)
        if row.started_at is not None:
            found = await self._find(channel, thread_ts, text, metadata)
            if found is not None:
                logger.info("a %s was found in Slack after a restart", row.kind.replace("_", " "))
                return Delivered(found, channel)
        kwargs: dict[str, Any] = {"channel": channel, "text": text, "blocks": blocks, "metadata": metadata,
                                  "unfurl_links": False, "unfurl_media": False}  # fmt: skip
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        try:
            resp = await self.client.chat_postMessage(**kwargs)
        except SlackApiError as e:
            if thread_ts and error_code(e) in GONE:
                raise Refused(f"the case's thread is gone ({error_code(e)})") from None
            raise
        return Delivered(str(resp["ts"]), str(resp.get("channel") or channel))

    async def _find(
        self, channel: str, thread_ts: str | None, text: str, metadata: dict[str, Any]
    ) -> str | None:
        """The ts of a message already there with this metadata and these words, if any: the whole
        thread (Slack gives a thread oldest first, page by page), or the latest 200 messages of the
        channel (a crash window is short)."""
        wanted = (metadata["event_type"], metadata["event_payload"], text)
        cursor = None
        for _ in range(50 if thread_ts else 1):  # a thread: at most 50 pages of 200
            try:
                if thread_ts:
                    resp = await self.client.conversations_replies(
                        channel=channel, ts=thread_ts, limit=200, include_all_metadata=True, cursor=cursor
                    )
                else:
                    resp = await self.client.conversations_history(
                        channel=channel, limit=200, include_all_metadata=True
                    )
            except SlackApiError as e:
                if error_code(e) in GONE:
                    return None
                raise
            for msg in resp.get("messages") or []:
                md = msg.get("metadata") or {}
                if (md.get("event_type"), md.get("event_payload"), msg.get("text")) == wanted:
                    return str(msg["ts"])
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not resp.get("has_more") or not cursor:
                return None
        return None

    # --- the App Home ---------------------------------------------------------------------------
    async def _publish_home(self, user: str) -> Delivered:
        staff = await self.staff.is_staff(user)
        if staff:
            today = self.calendar.local_date(self.clock())
            view = await render_home(self.store, self.permalinks, user, today, skip_paused=self.pause_clock)
        else:
            view = outsider_home()
        try:
            await self.client.views_publish(user_id=user, view=view)
        except SlackApiError as e:
            if not _about_one_person(e):
                raise
            staff = False  # a user Slack will not publish for (gone, no Home): stop refreshing
            logger.warning(
                "an App Home could not be published (%s); it is no longer refreshed", error_code(e)
            )
        if not staff:
            async with self.store.transaction() as tx:
                await tx.outbox.forget_home(user)
        return Delivered(None)


def _about_one_person(error: SlackApiError) -> bool:
    """Whether Slack refused a call made for one person for a reason of theirs (not an outage)."""
    status = getattr(error.response, "status_code", 200)
    return status < 500 and status != 429 and error_code(error) not in _APP_WIDE


async def render_home(
    store: Store, permalinks: Permalinks, user: str, today: date, *, skip_paused: bool = False
) -> dict[str, Any]:
    """The App Home of a staff member, as it stands now (`skip_paused`: CLOCK_PAUSE_ON_WAIT)."""
    async with store.snapshot() as repos:
        groups, every = await home_groups(repos, user, today, skip_paused=skip_paused)
    links = await permalinks.for_cases(every)
    rendered = [
        (title, [x.item(today) for x in lines], total, empty) for title, lines, total, empty in groups
    ]
    return home_view(
        rendered, links, note="Use `/privacy help` for more. This page follows the cases as they change."
    )
