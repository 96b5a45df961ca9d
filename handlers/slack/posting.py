"""Delivering the outbox's Slack rows: roots, thread replies, checklists, notes, and their updates.

Each message is rendered from the database when it is sent, so it shows the state of that moment,
read on the read-only connection (what it shows is committed before its row is due), so that a
post never waits for the writer behind intake's transaction.
A post whose earlier attempt was "started" but never saved its ts (the process died between Slack
storing the message and the bot recording it) is first looked up in Slack — the channel history
for a root carrying the case's `privacy_case` metadata, the thread for a reply carrying the same
metadata — and posted only if none is found. Failures are translated for the outbox worker:
Slack unreachable or refusing every message → `Unavailable`; this message malformed → a plain
fallback, else `Refused`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from core.clock import Clock, system_clock
from core.errors import Refused
from handlers.cases.deadlines import Calendar
from handlers.mail_out.letters import Writer
from handlers.slack.api import BAD_MESSAGE, GONE, SLACK_FAILURES, as_delivery_error, error_code
from handlers.slack.blocks import (
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
    note_metadata,
)
from handlers.slack.notes import NoteContext, legacy_note, note_message
from storage.models import Case, ChecklistItem, OutboxRow, StoredEmail
from storage.outbox import Delivered
from storage.store import Store, Tx

__all__ = ["SlackSender"]

logger = logging.getLogger(__name__)

Message = tuple[str, list[dict[str, object]], dict[str, object]]  # text, blocks, metadata
#: The method that renders each kind of row (an update renders what it updates).
_RENDER = {"root": "_root", "email_reply": "_email", "checklist": "_checklist", "note": "_note"}
_RENDER |= {f"{kind}_update": method for kind, method in _RENDER.items()}
#: The rows whose message shows the case's checklist, its linked cases, an email.
_SHOWS_CHECKLIST = frozenset({"root", "root_update", "checklist", "checklist_update"})
_SHOWS_LINKS = frozenset({"root", "root_update"})
_SHOWS_EMAIL = frozenset({"email_reply", "email_reply_update"})


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What a row shows, read for its batch (None: not read, read it when rendering)."""

    case: Case | None
    checklist: list[ChecklistItem] | None = None
    linked: list[Case] | None = None
    email: StoredEmail | None = None


class SlackSender:
    """Sends the outbox's Slack rows to the staff channel."""

    destination = "slack"
    #: a retry of a started row looks for it in Slack first (`_find_root`, `_find_reply`)
    finds_deliveries = True
    kinds = frozenset(
        {
            "root",
            "root_update",
            "email_reply",
            "checklist",
            "checklist_update",
            "note",
            "note_update",
            "erase",
        }
    )

    def __init__(
        self,
        store: Store,
        client: AsyncWebClient,
        *,
        channel: str,
        calendar: Calendar,
        clock: Clock = system_clock,
        writer: Writer | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.channel = channel
        self.calendar = calendar
        self.clock = clock
        self.writer = writer
        self._prepared: dict[int, _Prepared] = {}  # row id -> what it shows, read for its batch

    async def prepare(self, rows: Sequence[OutboxRow]) -> None:
        """Read what a batch's rows show in a few queries (not one or two per row): their cases,
        the checklists and linked cases of those with a root or a checklist to render, and the
        emails to show. `send` takes each row's from here once, so nothing read here outlives
        the batch; a row of no batch reads its own when it is sent."""
        read = self.store.read
        cases = await read.cases.get_many({r.case_id for r in rows if r.case_id is not None})
        shown = [(r, cases[r.case_id]) for r in rows if r.case_id is not None and r.case_id in cases]
        checklists = await read.cases.checklists({c.id for r, c in shown if r.kind in _SHOWS_CHECKLIST})
        linked = await read.cases.linked_of([c for r, c in shown if r.kind in _SHOWS_LINKS])
        emails = await read.mail.get_many(
            {r.email_id for r, _ in shown if r.email_id and r.kind in _SHOWS_EMAIL}
        )
        self._prepared = {
            r.id: _Prepared(
                case=c,
                checklist=checklists.get(c.id),
                linked=linked.get(c.id),
                email=emails.get(r.email_id) if r.email_id else None,
            )
            for r, c in shown
        }

    async def send(self, row: OutboxRow) -> Delivered:
        """Post or update the row's message; raises `Unavailable` or `Refused`."""
        assert row.case_id is not None
        prepared = self._prepared.pop(row.id, None) or _Prepared(await self.store.read.cases.get(row.case_id))
        case = prepared.case
        if case is None:
            raise Refused("the case no longer exists")
        try:
            if row.kind == "erase":
                return await self._erase(case)
            render: Callable[[OutboxRow, Case, _Prepared], Awaitable[Message]] = getattr(
                self, _RENDER[row.kind]
            )
            message = await render(row, case, prepared)
            if row.kind.endswith("_update"):
                return await self._update(row, case, message)
            return await self._post(row, case, message)
        except SLACK_FAILURES as e:
            channel = row.parent_channel or row.channel or self.channel
            raise as_delivery_error(e, own_channel=channel == self.channel) from None

    def lane(self, row: OutboxRow) -> str:
        """The channel the row's message is posted in or changed in: its thread's (or its
        message's) channel, the staff channel for a root."""
        return row.parent_channel or self.channel

    async def sent(self, tx: Tx, row: OutboxRow, delivered: Delivered) -> None:
        """A root posted or re-rendered changes what App Homes show: they are refreshed."""
        if row.kind in ("root", "root_update"):
            await tx.outbox.refresh_homes()

    async def refused(self, tx: Tx, row: OutboxRow, reason: str) -> None:
        """A Slack message refused for good is logged (telling staff would need Slack too)."""
        logger.error("outbox row %d (%s): Slack refused it for good: %s", row.id, row.kind, reason)

    async def _erase(self, case: Case) -> Delivered:
        """Delete the bot's replies in the thread of a case whose personal data was erased (each
        remembered as deleted at once, so that a retry goes on where this one stopped)."""
        replies = await self.store.outbox.thread_replies(case.id)
        for row_id, ts, channel in replies:
            try:
                await self.client.chat_delete(channel=channel or self.channel, ts=ts)
            except SlackApiError as e:
                if error_code(e) != "message_not_found":
                    raise
            await self.store.outbox.mark_deleted(row_id)
        logger.info("case %s: %d thread replies deleted (retention)", case.ref, len(replies))
        return Delivered(None)

    # --- posting and updating --------------------------------------------------------------------
    async def _post(self, row: OutboxRow, case: Case, message: Message) -> Delivered:
        text, blocks, metadata = message
        thread_ts = row.parent_ts if row.kind != "root" else None
        channel = (row.parent_channel or self.channel) if thread_ts else self.channel
        if row.started_at is not None:  # an earlier attempt may have reached Slack
            # a note carried over from schema 3 had another id in its metadata: its words find it
            legacy = text if row.kind == "note" and row.text_id is not None else None
            found = await (self._find_root(case, row.started_at) if thread_ts is None else
                           self._find_reply(channel, thread_ts, metadata, legacy_text=legacy))  # fmt: skip
            if found is not None:
                logger.info(
                    "case %s: %s found in Slack after a restart", case.ref, row.kind.replace("_", " ")
                )
                return Delivered(found, channel)
        kwargs: dict[str, Any] = {
            "channel": channel,
            "text": text,
            "metadata": metadata,
            "unfurl_links": False,
            "unfurl_media": False,
        }
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        try:
            resp = await self.client.chat_postMessage(blocks=blocks, **kwargs)
        except SlackApiError as e:
            if error_code(e) not in BAD_MESSAGE:
                raise
            logger.error(
                "case %s: Slack refused a %s (%s); posting a plain one", case.ref, row.kind, error_code(e)
            )
            resp = await self.client.chat_postMessage(blocks=_fallback_blocks(row, case, text), **kwargs)
        if row.kind == "root":
            logger.info("case %s posted to Slack", case.ref)
        return Delivered(str(resp["ts"]), str(resp.get("channel") or channel))

    async def _update(self, row: OutboxRow, case: Case, message: Message) -> Delivered:
        text, blocks, metadata = message
        assert row.parent_ts is not None
        try:
            await self.client.chat_update(
                channel=row.parent_channel or self.channel,
                ts=row.parent_ts,
                text=text,
                blocks=blocks,
                metadata=metadata,
            )
        except SlackApiError as e:
            if error_code(e) in GONE:
                logger.warning(
                    "case %s: a %s can no longer be updated (%s)", case.ref, row.kind, error_code(e)
                )
            elif error_code(e) in BAD_MESSAGE:
                raise Refused(f"Slack refused the update ({error_code(e)})") from None
            else:
                raise
        return Delivered(row.parent_ts, row.parent_channel)

    async def _find_root(self, case: Case, started_at: datetime) -> str | None:
        """The ts of a root already carrying this case's metadata, searched from an hour before the
        first attempt (a margin for clock skew; Slack keeps `metadata` out of history unless asked
        to include it)."""
        oldest = (started_at - timedelta(hours=1)).timestamp()
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

    async def _find_reply(
        self, channel: str, thread_ts: str, metadata: dict[str, object], *, legacy_text: str | None = None
    ) -> str | None:
        """The ts of a reply in the thread that carries exactly this metadata (or, for a note of
        schema 3, a note of the case with these words), if any."""
        cursor = None
        for _ in range(20):
            try:
                resp = await self.client.conversations_replies(
                    channel=channel, ts=thread_ts, limit=200, include_all_metadata=True, cursor=cursor
                )
            except SlackApiError as e:
                if error_code(e) in GONE:
                    return None  # no thread: nothing of ours was posted in it
                raise
            for msg in resp.get("messages") or []:
                md = msg.get("metadata") or {}
                payload = md.get("event_payload") or {}
                same_kind = md.get("event_type") == metadata["event_type"]
                if same_kind and payload == metadata["event_payload"]:
                    return str(msg["ts"])
                if same_kind and legacy_text is not None and msg.get("text") == legacy_text:
                    return str(msg["ts"])
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not resp.get("has_more") or not cursor:
                return None
        return None

    # --- rendering -----------------------------------------------------------------------------------
    @property
    def _today(self) -> date:
        return self.calendar.local_date(self.clock())

    async def _root(self, row: OutboxRow, case: Case, prepared: _Prepared) -> Message:
        items = await self._checklist_of(case, prepared)
        linked = prepared.linked
        if linked is None:
            linked = await self.store.read.cases.linked(case)
        links = tuple(
            ("Split off" if other.id == case.split_from_case_id else "Split into", other.ref)
            for other in linked
        )
        context = RootContext(
            checklist_done=sum(1 for i in items if i.done), checklist_total=len(items), links=links
        )
        today = self._today
        blocks = case_root_blocks(case, today=today, tz=self.calendar.tz, context=context)
        return case_root_text(case, today=today), blocks, case_metadata(case)

    async def _email(self, row: OutboxRow, case: Case, prepared: _Prepared) -> Message:
        assert row.email_id is not None
        email = prepared.email or await self.store.read.mail.get(row.email_id)
        if email is None:
            raise Refused("the email no longer exists")
        text, blocks = email_reply(
            email, case, tz=self.calendar.tz, opening=email.message_id == case.message_id
        )
        return text, blocks, email_metadata(case, email)

    async def _checklist(self, row: OutboxRow, case: Case, prepared: _Prepared) -> Message:
        text, blocks = checklist_message(case, await self._checklist_of(case, prepared))
        return text, blocks, checklist_metadata(case)

    async def _checklist_of(self, case: Case, prepared: _Prepared) -> list[ChecklistItem]:
        """The case's checklist as read for the batch, else read now."""
        if prepared.checklist is not None:
            return prepared.checklist
        return await self.store.read.cases.checklist(case.id)

    async def _note(self, row: OutboxRow, case: Case, prepared: _Prepared) -> Message:
        note = row if row.kind == "note" else await self.store.read.outbox.get(row.parent_id or 0)
        assert note is not None
        event = await self.store.read.audit.get(note.event_id) if note.event_id else None
        if note.text_id is not None:  # carried over from schema 3, which stored its words
            text, blocks = legacy_note(await self.store.read.cases.text(note.text_id), case, event)
        elif event is None:
            raise Refused("the event of this note no longer exists")
        else:
            outbound = await self.store.read.mail.outbound(event.outbound_id) if event.outbound_id else None
            text = await self.store.read.cases.text(event.text_id)
            notice = ""
            if event.action == "case.extended" and self.writer is not None and event.after:
                due = date.fromisoformat(str(event.after["due_date"])[:10])
                notice = self.writer.write("extension_notice", case, due=due, extension_reason=text).body
            context = NoteContext(case=case, tz=self.calendar.tz, text=text, outbound=outbound, notice=notice)
            text, blocks = note_message(event, context)
        return text, blocks, note_metadata(case, note.id)


def _fallback_blocks(row: OutboxRow, case: Case, text: str) -> list[dict[str, object]]:
    """A plain message when Slack refused the rendered one (it must not stay unposted)."""
    if row.kind == "root":
        line = f"{case.ref} · {case.kind} · {case.status} · due {case.due_date.isoformat()}"
        return [
            {"type": "section", "text": {"type": "mrkdwn", "verbatim": True, "text": escape_mrkdwn(line)}}
        ]
    return [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "verbatim": True,
                "text": text[:2900]
                + "\n_The message could not be shown here in full; it is stored with the case._",
            },
        }
    ]
