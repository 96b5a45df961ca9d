"""The outbox: everything the bot sends on its own initiative, as rows worked by one loop.

A row says what to send (`kind`), for which case, what it refers to (the email it shows, the audit
event a note records, the email to send), and where its delivery stands: attempts, the next
attempt's earliest time (per-message backoff), "started" (so a restart looks in Slack before
posting again), done with its result (a Slack ts, an accepted Message-ID), or failed for good.

Thread replies and updates name their `parent`: the row of the message they go under or change.
They wait until the parent is in Slack. At most one update per message waits at a time: a change
while one waits is already covered by it (it renders the state of the moment it is sent).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.clock import Clock
from storage.db import Session, iso, parse_instant
from storage.models import OutboxRow

__all__ = ["KINDS", "NOTICES", "POSTS", "THREAD_REPLIES", "UPDATES", "Delivered", "Outbox"]

#: Messages posted in Slack (each once: a crash while posting is checked in Slack before a retry).
POSTS = ("root", "email_reply", "checklist", "note")
#: Changes to a message already in Slack (re-rendered from the database when sent).
UPDATES = ("root_update", "checklist_update", "note_update")
#: Scheduled messages (storage.notices): a reminder in a case's thread, the digest, the weekly
#: summary in the channel and by direct message, the intake alarm.
NOTICES = ("reminder", "digest", "summary", "summary_dm", "intake_alarm")
#: A staff member's App Home, published again (views.publish) when a case it shows changed;
#: an email to the requester; the deletion of the bot's thread replies about an erased case.
KINDS = (*POSTS, *UPDATES, *NOTICES, "home", "email", "erase")
#: What is deleted from a case's thread when retention erases it: every reply the bot posted there.
THREAD_REPLIES = ("email_reply", "checklist", "note", "reminder")

#: The order of `due` (roots first, updates last); the index `outbox_due` (migration 0008) is on
#: exactly this expression, so keep the two alike.
_PRIORITY = (
    "CASE o.kind WHEN 'root' THEN 0 WHEN 'root_update' THEN 2 WHEN 'checklist_update' THEN 2 "
    "WHEN 'note_update' THEN 2 WHEN 'erase' THEN 2 WHEN 'home' THEN 3 ELSE 1 END"
)
_SELECT = (
    "SELECT o.*, p.result AS parent_ts, p.channel AS parent_channel FROM outbox o "
    "LEFT JOIN outbox p ON p.id = o.parent_id"
)
#: Where a waiting row goes as far as the outbox knows (`OutboxRow.lane`): the channel of the
#: message it goes under or changes, else the person it is for; NULL for the sender's own place.
_LANE = "COALESCE(p.channel, o.recipient)"
_SELECT_DUE = (
    f"SELECT o.*, p.result AS parent_ts, p.channel AS parent_channel, {_LANE} AS lane FROM outbox o "
    "LEFT JOIN outbox p ON p.id = o.parent_id"
)


def due_sql(kinds: int, lanes: int, unknown_lane_held: bool) -> str:
    """`Outbox.due`'s query for that many kinds and held lanes (parameters: the kinds, now, the
    lanes, the limit). It walks the index `outbox_due` in its order and stops at the limit."""
    skip = f"AND {_LANE} NOT IN ({','.join('?' * lanes)}) " if lanes else ""
    if unknown_lane_held:
        skip += f"AND {_LANE} IS NOT NULL "
    return (
        f"{_SELECT_DUE} WHERE o.done_at IS NULL AND o.failed_at IS NULL "
        f"AND o.kind IN ({','.join('?' * kinds)}) "
        "AND (o.not_before IS NULL OR o.not_before <= ?) "
        "AND (o.parent_id IS NULL OR p.done_at IS NOT NULL) "
        f"{skip}ORDER BY {_PRIORITY}, o.id LIMIT ?"
    )


#: `Outbox.orphans`'s query: from the failed rows (few, and indexed: `outbox_failed`) to their
#: waiting children, rather than through every waiting row (CROSS JOIN keeps that order).
ORPHANS_SQL = (
    "SELECT o.*, p.result AS parent_ts, p.channel AS parent_channel FROM outbox p "
    "CROSS JOIN outbox o ON o.parent_id = p.id "
    "WHERE p.failed_at IS NOT NULL AND o.done_at IS NULL AND o.failed_at IS NULL "
    "ORDER BY o.id LIMIT ?"
)


@dataclass(frozen=True, slots=True)
class Delivered:
    """What came of a delivered row: the Slack ts (and channel), or the Message-ID accepted."""

    result: str | None
    channel: str | None = None


class Outbox:
    """The outbox on one session."""

    def __init__(self, db: Session, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._roots: dict[int, int] = {}  # case id -> its root's row, queued on this session

    # --- queueing ------------------------------------------------------------------------------------
    async def _add(self, kind: str, **refs: int | str | None) -> int | None:
        """Queue a row; None when an equivalent one is already there (an update waiting, say)."""
        if kind not in KINDS:
            raise ValueError(f"not a kind of outbox row: {kind!r}")
        refs = {k: v for k, v in refs.items() if v is not None}
        cols = ", ".join(["kind", "created_at", *refs])
        marks = ", ".join("?" * (len(refs) + 2))
        changed, row_id = await self._db.run(
            f"INSERT OR IGNORE INTO outbox ({cols}) VALUES ({marks})",
            (kind, iso(self._clock()), *refs.values()),
        )
        return row_id if changed else None

    async def _of(self, kind: str, case_id: int) -> int | None:
        row = await self._db.one("SELECT id FROM outbox WHERE kind = ? AND case_id = ?", (kind, case_id))
        return int(row[0]) if row else None

    async def post_root(self, case_id: int) -> None:
        """Queue the root message of a new case (once)."""
        row_id = await self._add("root", case_id=case_id)
        if row_id is not None:  # what the case's first thread replies are queued under, next
            self._roots[case_id] = row_id

    async def _root(self, case_id: int) -> int:
        root = self._roots.get(case_id) or await self._of("root", case_id)
        if root is None:
            raise LookupError(f"case {case_id} has no root message in the outbox")
        return root

    async def update_root(self, case_id: int) -> None:
        """Queue a re-rendering of the case's root (it shows something that changed)."""
        await self._add("root_update", case_id=case_id, parent_id=await self._root(case_id))

    async def show_email(self, case_id: int, email_id: int) -> None:
        """Queue the thread reply that shows an email of the case."""
        await self._add(
            "email_reply", case_id=case_id, parent_id=await self._root(case_id), email_id=email_id
        )

    async def post_checklist(self, case_id: int) -> None:
        """Queue the case's checklist message, or an update of it when it is already queued."""
        checklist = await self._of("checklist", case_id)
        if checklist is None:
            await self._add("checklist", case_id=case_id, parent_id=await self._root(case_id))
        else:
            await self._add("checklist_update", case_id=case_id, parent_id=checklist)

    async def post_note(self, case_id: int, event_id: int) -> None:
        """Queue the thread note that records an audit event (once)."""
        await self._add("note", case_id=case_id, parent_id=await self._root(case_id), event_id=event_id)

    async def update_note(self, event_id: int) -> None:
        """Queue a re-rendering of the note that records an event (its status changed)."""
        row = await self._db.one(
            "SELECT id, case_id FROM outbox WHERE kind = 'note' AND event_id = ?", (event_id,)
        )
        if row is not None:
            await self._add("note_update", case_id=row["case_id"], parent_id=row["id"])

    async def update_open_roots(self) -> int:
        """Queue a re-rendering of the root of every open case that is in Slack (once a day, for
        the days left); returns how many were queued."""
        changed, _ = await self._db.run(
            "INSERT OR IGNORE INTO outbox (kind, case_id, parent_id, created_at) "
            "SELECT 'root_update', r.case_id, r.id, ? FROM outbox r JOIN cases c ON c.id = r.case_id "
            "WHERE r.kind = 'root' AND r.done_at IS NOT NULL AND c.status != 'resolved' ORDER BY r.case_id",
            (iso(self._clock()),),
        )
        return changed

    async def erase_from_slack(self, case_id: int) -> None:
        """Queue, for a case whose personal data was erased, the deletion of the bot's replies in
        its thread and a re-rendering of its root (which then shows no personal data)."""
        root = await self._of("root", case_id)
        if root is None:
            return
        await self._add("erase", case_id=case_id, parent_id=root)
        await self._add("root_update", case_id=case_id, parent_id=root)

    async def thread_replies(self, case_id: int) -> list[tuple[int, str, str | None]]:
        """(row id, ts, channel) of the bot's replies in the case's thread still in Slack."""
        rows = await self._db.all(
            "SELECT o.id, o.result, COALESCE(o.channel, p.channel) FROM outbox o "
            "LEFT JOIN outbox p ON p.id = o.parent_id "
            f"WHERE o.case_id = ? AND o.kind IN ({','.join('?' * len(THREAD_REPLIES))}) AND o.done_at IS NOT NULL "
            "AND o.result IS NOT NULL AND o.result != 'deleted' ORDER BY o.id",
            (case_id, *THREAD_REPLIES),
        )
        return [(int(r[0]), str(r[1]), r[2]) for r in rows]

    async def mark_deleted(self, row_id: int) -> None:
        """Remember that a posted message was deleted from Slack."""
        await self._db.run("UPDATE outbox SET result = 'deleted' WHERE id = ?", (row_id,))

    async def send_email(self, case_id: int, outbound_id: int) -> None:
        """Queue an email to the requester."""
        await self._add("email", case_id=case_id, outbound_id=outbound_id)

    async def post_notice(
        self, kind: str, notice_id: int, *, case_id: int | None = None, recipient: str | None = None
    ) -> None:
        """Queue a scheduled message: a reminder goes in its case's thread (`case_id`), a
        `summary_dm` to `recipient`, the others in the channel."""
        if kind not in NOTICES:
            raise ValueError(f"not a scheduled message: {kind!r}")
        parent = await self._root(case_id) if kind == "reminder" and case_id is not None else None
        await self._add(kind, case_id=case_id, parent_id=parent, notice_id=notice_id, recipient=recipient)

    async def refresh_home(self, user_id: str) -> None:
        """Queue a publication of a staff member's App Home (one waits at a time)."""
        await self._add("home", recipient=user_id)

    async def refresh_homes(self) -> int:
        """Queue a publication of every App Home that was opened; returns how many were queued."""
        changed, _ = await self._db.run(
            "INSERT OR IGNORE INTO outbox (kind, recipient, created_at) "
            "SELECT 'home', user_id, ? FROM home_tabs ORDER BY user_id",
            (iso(self._clock()),),
        )
        return changed

    async def home_opened(self, user_id: str) -> None:
        """Remember that a staff member opened the App Home (it is refreshed from now on)."""
        await self._db.run(
            "INSERT INTO home_tabs (user_id, opened_at) VALUES (?, ?) "
            "ON CONFLICT (user_id) DO UPDATE SET opened_at = excluded.opened_at",
            (user_id, iso(self._clock())),
        )

    async def forget_home(self, user_id: str) -> None:
        """Stop refreshing a user's App Home (they are no longer staff)."""
        await self._db.run("DELETE FROM home_tabs WHERE user_id = ?", (user_id,))

    # --- working ---------------------------------------------------------------------------------------
    async def due(
        self,
        *,
        now: datetime,
        kinds: Sequence[str] = KINDS,
        held: Collection[str | None] = (),
        limit: int = 50,
    ) -> list[OutboxRow]:
        """Rows of `kinds` to try now, roots first, updates last, otherwise oldest first: neither
        done nor failed, past their backoff, whose parent (if any) is in Slack, and whose `lane`
        is not `held` (None among them: the rows of no known lane), with their lane."""
        lanes = [lane for lane in held if lane is not None]
        return await self._db.fetch_all(
            OutboxRow, due_sql(len(kinds), len(lanes), None in held), (*kinds, iso(now), *lanes, limit)
        )

    async def orphans(self, *, limit: int = 50) -> list[OutboxRow]:
        """Waiting rows whose parent failed for good (they can never be sent)."""
        return await self._db.fetch_all(
            OutboxRow,
            ORPHANS_SQL,
            (limit,),
        )

    async def next_attempt_at(self, *, after: datetime) -> datetime | None:
        """The earliest time after `after` at which a row held back by its backoff may be tried."""
        row = await self._db.one(
            "SELECT MIN(not_before) FROM outbox WHERE done_at IS NULL AND failed_at IS NULL AND not_before > ?",
            (iso(after),),
        )
        return parse_instant(row[0]) if row else None

    async def mark_started(self, row_ids: Collection[int], *, at: datetime) -> None:
        """Attempts of these rows begin (a restart then looks in Slack before posting again):
        one statement for the rows a round is about to try."""
        if not row_ids:
            return
        await self._db.run(
            "UPDATE outbox SET started_at = COALESCE(started_at, ?), attempts = attempts + 1 "
            f"WHERE id IN ({','.join('?' * len(row_ids))})",
            (iso(at), *row_ids),
        )

    async def not_attempted(self, row_id: int, *, started: bool) -> None:
        """A row marked started was not tried after all (its round was cut short before it):
        its attempt is taken back, and its "started" mark too unless an earlier attempt had one
        (`started`), so that its next attempt posts at once instead of searching Slack first."""
        await self._db.run(
            "UPDATE outbox SET attempts = MAX(0, attempts - 1), "
            "started_at = CASE WHEN ? THEN started_at END WHERE id = ?",
            (started, row_id),
        )

    async def mark_done(self, row_id: int, *, result: str | None, channel: str | None = None) -> None:
        """Delivered: `result` is what came of it (the Slack ts, the accepted Message-ID)."""
        await self._db.run(
            "UPDATE outbox SET done_at = ?, result = ?, channel = COALESCE(?, channel), last_error = '' WHERE id = ?",
            (iso(self._clock()), result, channel, row_id),
        )

    async def retry_later(
        self, row_id: int, *, not_before: datetime | None, error: str, started: bool = True
    ) -> None:
        """Not delivered this time: try again from `not_before` (None: as soon as its destination
        can be reached again). `started=False`: nothing of it can have reached the destination
        (turned away before anything was done, and never started before), so a retry need not
        look for it there first."""
        await self._db.run(
            "UPDATE outbox SET not_before = ?, last_error = ?, "
            "started_at = CASE WHEN ? THEN started_at END WHERE id = ?",
            (iso(not_before) if not_before else None, error, started, row_id),
        )

    async def mark_failed(self, row_id: int, *, error: str) -> None:
        """Refused for good: never tried again."""
        await self._db.run(
            "UPDATE outbox SET failed_at = ?, last_error = ? WHERE id = ?",
            (iso(self._clock()), error, row_id),
        )

    # --- reading -------------------------------------------------------------------------------------------
    async def get(self, row_id: int) -> OutboxRow | None:
        """One row."""
        return await self._db.fetch(OutboxRow, f"{_SELECT} WHERE o.id = ?", (row_id,))

    async def of_case(self, case_id: int) -> list[OutboxRow]:
        """Every row about a case, oldest first."""
        return await self._db.fetch_all(OutboxRow, f"{_SELECT} WHERE o.case_id = ? ORDER BY o.id", (case_id,))

    async def message(self, kind: str, case_id: int) -> OutboxRow | None:
        """The case's root or checklist row."""
        return await self._db.fetch(
            OutboxRow, f"{_SELECT} WHERE o.kind = ? AND o.case_id = ?", (kind, case_id)
        )
