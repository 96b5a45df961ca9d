"""Bringing the database's cases into Slack: one root per case, one thread reply per email.

Posting is driven from committed rows that Slack does not show yet, so a crash, an outage or a
429 delays a post but never loses or repeats it:

- before posting, the row is marked "post started"; after Slack answers, the ts is saved;
- a row found "started" but without a ts (the process died in between) is first looked up in
  Slack: the channel history for a root carrying the case's `privacy_case` metadata, the thread
  for a reply carrying the email's metadata; only if none is found is it posted again.

Roots are re-rendered from the stored case when it changes (its `version`), and once a day for
open cases so the days left stay right.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.backoff import Backoff, Outage, sleep_until
from bot.errors import SLACK_FAILURES
from handlers.deadlines import Calendar
from handlers.render import (
    ROOT_EVENT_TYPE,
    RootContext,
    case_metadata,
    case_root_blocks,
    case_root_text,
    checklist_message,
    checklist_metadata,
    email_metadata,
    email_reply,
    escape_mrkdwn,
    note_blocks,
    note_metadata,
)
from storage.models import Case, StoredEmail, ThreadNote
from storage.store import Store

__all__ = ["Publisher"]

logger = logging.getLogger(__name__)

#: Slack errors that say our message was malformed: retrying it unchanged cannot help.
_BAD_MESSAGE = {
    "invalid_blocks",
    "invalid_blocks_format",
    "msg_too_long",
    "invalid_metadata_format",
    "invalid_metadata_schema",
    "metadata_too_large",
    "invalid_arguments",
}
#: Errors that mean the message to update is gone.
_GONE = {"message_not_found", "cant_update_message", "edit_window_closed"}


class Publisher:
    """Posts and updates case messages in the staff channel, from the store, until stopped."""

    def __init__(
        self,
        store: Store,
        client: AsyncWebClient,
        *,
        channel: str,
        calendar: Calendar,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        idle_interval: float = 60.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.channel = channel
        self.calendar = calendar
        self.clock = clock
        self.idle_interval = idle_interval
        self.backoff = backoff or Backoff(base=1.0, cap=120.0)
        self.outage = Outage("Slack", logger)
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """Ask for a publishing round soon (called after new rows are committed)."""
        self._wake.set()

    def notify_threadsafe(self, loop: asyncio.AbstractEventLoop) -> None:
        """`notify` from another thread (the mailbox watcher)."""
        loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop` is set; Slack failures are retried with backoff, never dropped."""
        while not stop.is_set():
            self._wake.clear()
            try:
                busy = await self.publish_pending()
            except SLACK_FAILURES as e:
                self.outage.failed(e)
                await sleep_until(stop, None, self.backoff.next_delay())
                continue
            self.outage.recovered()
            self.backoff.reset()
            if not busy:
                await sleep_until(stop, self._wake, self.idle_interval)

    @property
    def today(self) -> date:
        """The controller's local date now."""
        return self.calendar.local_date(self.clock())

    async def publish_pending(self) -> bool:
        """One round: post missing roots, then missing thread replies (emails, checklists, notes),
        then stale roots.
        Returns whether anything was done (so the caller goes round again at once)."""
        done = False
        for case in await self.store.cases_without_root(limit=50):
            await self.post_root(case)
            done = True
        for email, case in await self.store.emails_without_reply(limit=50):
            await self.post_email(email, case)
            done = True
        for case in await self.store.checklists_to_publish(limit=50):
            await self.publish_checklist(case)
            done = True
        for note, case in await self.store.notes_without_post(limit=50):
            await self.post_note(note, case)
            done = True
        if not done:
            for case in await self.store.cases_to_rerender(today=self.today, limit=50):
                await self.update_root(case)
                done = True
        return done

    # --- roots ------------------------------------------------------------------------------
    async def post_root(self, case: Case) -> None:
        """Post the root message of a case unless an earlier attempt already did."""
        today = self.today
        if case.root_post_started_at is not None:
            ts = await self._find_root(case)
            if ts is not None:
                logger.info("case %s: root found in channel history after a restart", case.ref)
                await self.store.save_root(
                    case.id,
                    channel=self.channel,
                    ts=ts,
                    version=case.version - 1,
                    rendered_on=today - timedelta(days=1),
                )
                return
        await self.store.mark_root_post_started(case.id, at=self.clock())
        tz = self.calendar.tz
        kwargs: dict[str, Any] = {
            "channel": self.channel,
            "text": case_root_text(case, today=today),
            "metadata": case_metadata(case),
            "unfurl_links": False,
            "unfurl_media": False,
        }
        try:
            blocks = case_root_blocks(case, today=today, tz=tz, context=await self._root_context(case))
            resp = await self.client.chat_postMessage(blocks=blocks, **kwargs)
        except SlackApiError as e:
            if _code(e) not in _BAD_MESSAGE:
                raise
            logger.error("case %s: Slack refused the root (%s); posting a plain one", case.ref, _code(e))
            resp = await self.client.chat_postMessage(blocks=_fallback_blocks(case), **kwargs)
        await self.store.save_root(
            case.id, channel=str(resp["channel"]), ts=str(resp["ts"]), version=case.version, rendered_on=today
        )
        logger.info("case %s posted to Slack", case.ref)

    async def _find_root(self, case: Case) -> str | None:
        """The ts of a root already carrying this case's metadata, searched from an hour before the
        first attempt (a margin for clock skew; Slack keeps `metadata` out of history unless asked
        to include it)."""
        assert case.root_post_started_at is not None
        oldest = (case.root_post_started_at - timedelta(hours=1)).timestamp()
        cursor = None
        for _ in range(20):  # at most 20 pages of 200
            resp = await self.client.conversations_history(
                channel=self.channel,
                oldest=f"{oldest:.6f}",
                limit=200,
                include_all_metadata=True,
                cursor=cursor,
            )
            for msg in resp.get("messages") or []:
                md = msg.get("metadata") or {}
                if (
                    md.get("event_type") == ROOT_EVENT_TYPE
                    and (md.get("event_payload") or {}).get("case_ref") == case.ref
                ):
                    return str(msg["ts"])
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not resp.get("has_more") or not cursor:
                return None
        return None

    async def update_root(self, case: Case) -> None:
        """Re-render a posted root from the stored case (metadata included)."""
        assert case.slack_root_ts is not None
        today = self.today
        try:
            await self.client.chat_update(
                channel=case.slack_channel or self.channel,
                ts=case.slack_root_ts,
                text=case_root_text(case, today=today),
                blocks=case_root_blocks(
                    case, today=today, tz=self.calendar.tz, context=await self._root_context(case)
                ),
                metadata=case_metadata(case),
            )
        except SlackApiError as e:
            if _code(e) in _GONE:
                logger.warning("case %s: root message can no longer be updated (%s)", case.ref, _code(e))
            elif _code(e) in _BAD_MESSAGE:
                logger.error("case %s: Slack refused the updated root (%s)", case.ref, _code(e))
            else:
                raise
        await self.store.mark_rendered(case.id, version=case.version, rendered_on=today)

    # --- thread replies ------------------------------------------------------------------------
    async def post_email(self, email: StoredEmail, case: Case) -> None:
        """Post the thread reply that shows an email, unless an earlier attempt already did."""
        assert case.slack_root_ts is not None
        channel = case.slack_channel or self.channel
        if email.slack_post_started_at is not None:
            ts = await self._find_reply(channel, case.slack_root_ts, email_metadata(case, email))
            if ts is not None:
                await self.store.save_email_reply(email.id, ts=ts)
                return
        await self.store.mark_email_post_started(email.id, at=self.clock())
        text, blocks = email_reply(
            email, case, tz=self.calendar.tz, opening=email.message_id == case.message_id
        )
        kwargs: dict[str, Any] = {
            "channel": channel,
            "thread_ts": case.slack_root_ts,
            "text": text,
            "metadata": email_metadata(case, email),
            "unfurl_links": False,
            "unfurl_media": False,
        }
        try:
            resp = await self.client.chat_postMessage(blocks=blocks, **kwargs)
        except SlackApiError as e:
            if _code(e) not in _BAD_MESSAGE:
                raise
            logger.error(
                "case %s: Slack refused an email reply (%s); posting a short one", case.ref, _code(e)
            )
            resp = await self.client.chat_postMessage(
                blocks=[
                    {
                        "type": "section",
                        "text": {
                            "type": "mrkdwn",
                            "verbatim": True,
                            "text": text
                            + ("\n_The email could not be shown here; it is stored with the case._"),
                        },
                    }
                ],
                **kwargs,
            )
        await self.store.save_email_reply(email.id, ts=str(resp["ts"]))

    async def _find_reply(self, channel: str, thread_ts: str, metadata: dict[str, Any]) -> str | None:
        """The ts of a reply in the thread that carries exactly this metadata, if any."""
        cursor = None
        for _ in range(20):
            resp = await self.client.conversations_replies(
                channel=channel, ts=thread_ts, limit=200, include_all_metadata=True, cursor=cursor
            )
            for msg in resp.get("messages") or []:
                md = msg.get("metadata") or {}
                if (
                    md.get("event_type") == metadata["event_type"]
                    and md.get("event_payload") == metadata["event_payload"]
                ):
                    return str(msg["ts"])
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not resp.get("has_more") or not cursor:
                return None
        return None

    async def _root_context(self, case: Case) -> RootContext:
        items = await self.store.checklist(case.id)
        links = tuple(
            ("Split off" if other.id == case.split_from_case_id else "Split into", other.ref)
            for other in await self.store.linked_cases(case)
        )
        return RootContext(
            checklist_done=sum(1 for i in items if i.done), checklist_total=len(items), links=links
        )

    # --- checklists and notes ----------------------------------------------------------------------
    async def publish_checklist(self, case: Case) -> None:
        """Post the case's checklist message in its thread, or update it to the current state."""
        assert case.slack_root_ts is not None
        channel = case.slack_channel or self.channel
        version = case.checklist_version
        text, blocks = checklist_message(case, await self.store.checklist(case.id))
        ts = case.checklist_ts
        if ts is None and case.checklist_post_started_at is not None:
            ts = await self._find_reply(channel, case.slack_root_ts, checklist_metadata(case))
        if ts is None:
            await self.store.mark_checklist_post_started(case.id, at=self.clock())
            resp = await self.client.chat_postMessage(
                channel=channel,
                thread_ts=case.slack_root_ts,
                text=text,
                blocks=blocks,
                metadata=checklist_metadata(case),
                unfurl_links=False,
                unfurl_media=False,
            )
            ts = str(resp["ts"])
        else:
            try:
                await self.client.chat_update(
                    channel=channel, ts=ts, text=text, blocks=blocks, metadata=checklist_metadata(case)
                )
            except SlackApiError as e:
                if _code(e) not in _GONE:
                    raise
                logger.warning("case %s: checklist message can no longer be updated (%s)", case.ref, _code(e))
        await self.store.save_checklist(case.id, ts=ts, version=version)

    async def post_note(self, note: ThreadNote, case: Case) -> None:
        """Post a one-line record of an action in the case thread, exactly once."""
        assert case.slack_root_ts is not None
        channel = case.slack_channel or self.channel
        metadata = note_metadata(case, note.id)
        if note.post_started_at is not None:
            ts = await self._find_reply(channel, case.slack_root_ts, metadata)
            if ts is not None:
                await self.store.save_note_ts(note.id, ts=ts)
                return
        await self.store.mark_note_post_started(note.id, at=self.clock())
        resp = await self.client.chat_postMessage(
            channel=channel,
            thread_ts=case.slack_root_ts,
            text=note.text,
            blocks=list(note.blocks) if note.blocks else note_blocks(note.text),
            metadata=metadata,
            unfurl_links=False,
            unfurl_media=False,
        )
        await self.store.save_note_ts(note.id, ts=str(resp["ts"]))


def _fallback_blocks(case: Case) -> list[dict[str, object]]:
    return [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "verbatim": True,
                "text": escape_mrkdwn(
                    f"{case.ref} · {case.kind} · {case.status} · due {case.due_date.isoformat()}"
                ),
            },
        }
    ]


def _code(e: SlackApiError) -> str:
    try:
        return str(e.response.get("error") or "")
    except Exception:
        return ""
