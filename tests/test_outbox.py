"""The one outbox loop (bot/outbox.py) against a real store: each message fails alone, a
destination's outage pauses only that destination, a message turned away for now backs off alone
(with a cap), and nothing waits forever behind a message that can never be sent.

The senders here are stand-ins for Slack and SMTP that follow the `Sender` contract; the Slack
and SMTP senders themselves are tested against the Slack stand-in and aiosmtpd elsewhere.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from bot.backoff import Backoff
from bot.outbox import MessageBackoff, OutboxWorker
from core.errors import Refused, TryLater, Unavailable
from storage.models import OutboxRow
from storage.outbox import KINDS, ORPHANS_SQL, POSTS, Delivered, due_sql
from storage.store import Store, Tx
from tests.support.factory import NOW, new_case


@dataclass
class FakeSender:
    """Delivers the rows of `kinds`; `behaviour[row id]` is raised instead, once per attempt."""

    destination: str
    kinds: frozenset[str]
    behaviour: dict[int, BaseException] = field(default_factory=dict)
    down: bool = False
    sent_rows: list[int] = field(default_factory=list)
    refusals: list[tuple[int, str]] = field(default_factory=list)
    finds_deliveries: bool = False

    async def send(self, row: OutboxRow) -> Delivered:
        if self.down:
            raise Unavailable(f"{self.destination} down")
        if row.id in self.behaviour:
            raise self.behaviour[row.id]
        self.sent_rows.append(row.id)
        return Delivered(f"ts-{row.id}", "C0STAFF01")

    async def sent(self, tx: Tx, row: OutboxRow, delivered: Delivered) -> None:
        pass

    async def refused(self, tx: Tx, row: OutboxRow, reason: str) -> None:
        self.refusals.append((row.id, reason))

    def lane(self, row: OutboxRow) -> str:
        return row.parent_channel or "C0STAFF01"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.now


SLACK = frozenset(
    {"root", "email_reply", "note", "root_update", "checklist", "checklist_update", "note_update"}
)


async def roots(store: Store, n: int) -> list[int]:
    ids = []
    for i in range(n):
        case = await new_case(store, f"<m{i}@example.org>")
        root = await store.outbox.message("root", case.id)
        assert root is not None
        ids.append(root.id)
    return ids


async def queue_emails(store: Store, n: int) -> list[int]:
    ids = []
    for i in range(n):
        case = await new_case(store, f"<e{i}@example.org>")
        async with store.transaction(now=NOW) as tx:
            outbound = await tx.mail.add_outbound(
                case_id=case.id, message_id=f"<out{i}@imal.example>", to_addr=f"p{i}@example.org", subject="Re",
                body="Hello", language="en", in_reply_to="", references=[], author="UALICE01",
            )  # fmt: skip
            await tx.outbox.send_email(case.id, outbound)
        ids += [r.id for r in await store.outbox.of_case(case.id) if r.kind == "email"]
    return ids


async def test_a_message_failing_for_a_reason_of_its_own_fails_alone(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    ids = await roots(store, 3)
    sender = FakeSender(
        "slack", SLACK, behaviour={ids[0]: AttributeError("a bug"), ids[1]: Refused("malformed")}
    )
    worker = OutboxWorker(store, [sender], clock=Clock())
    with caplog.at_level(logging.ERROR, logger="bot.outbox"):
        while await worker.work_once():
            pass
    assert sender.sent_rows == [ids[2]]  # the rest go
    assert [i for i, _ in sender.refusals] == [ids[0], ids[1]]  # each failed alone, and staff are told
    assert "could not be sent (AttributeError)" in sender.refusals[0][1]
    failed = [await store.outbox.get(i) for i in ids[:2]]
    assert all(r is not None and r.failed_at is not None for r in failed)
    assert "a bug" not in caplog.text  # messages may quote data: the log names the type only


async def test_an_outage_of_one_destination_does_not_hold_up_the_other(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    slack_rows = await roots(store, 2)
    emails = await queue_emails(store, 2)
    slack = FakeSender("slack", SLACK)
    smtp = FakeSender("smtp", frozenset({"email"}), down=True)
    worker = OutboxWorker(store, [slack, smtp], clock=Clock(), destination_backoff=Backoff(base=30, cap=60))
    caplog.set_level(logging.WARNING, logger="bot.outbox")
    while await worker.work_once():
        pass
    assert set(slack_rows) <= set(slack.sent_rows)  # Slack goes on while SMTP is down
    assert smtp.sent_rows == [] and worker.destinations["smtp"].paused
    attempts = [(await store.outbox.get(i)).attempts for i in emails]  # type: ignore[union-attr]
    assert attempts == [1, 0]  # one attempt found it down; the others wait without hammering it
    assert await worker.drained()  # nothing that could be sent now is waiting
    smtp.down = False
    worker.destinations["smtp"].paused_until = 0.0  # the backoff has passed
    while await worker.work_once():
        pass
    assert smtp.sent_rows == emails
    messages = [r.getMessage() for r in caplog.records]
    assert sum("SMTP server unavailable" in m for m in messages) == 1
    assert sum("available again" in m for m in messages) == 1


async def test_a_message_turned_away_for_now_backs_off_alone_with_a_cap(store: Store) -> None:
    emails = await queue_emails(store, 2)
    clock = Clock()
    smtp = FakeSender("smtp", frozenset({"email"}), behaviour={emails[0]: TryLater("SMTP 451")})
    worker = OutboxWorker(store, [smtp], clock=clock, message_backoff=MessageBackoff(base=60, cap=600))
    waits = []
    for _ in range(6):
        while await worker.work_once():
            pass
        row = await store.outbox.get(emails[0])
        assert row is not None and row.not_before is not None and row.done_at is None
        waits.append((row.not_before - clock.now).total_seconds())
        clock.now = row.not_before
    assert smtp.sent_rows == [emails[1]]  # the other one went at once
    assert waits == [60, 120, 240, 480, 600, 600]
    del smtp.behaviour[emails[0]]
    while await worker.work_once():
        pass
    assert smtp.sent_rows == [emails[1], emails[0]]


async def test_replies_under_a_root_that_can_never_be_posted_fail_instead_of_waiting_forever(
    store: Store,
) -> None:
    case = await new_case(store, "<m1@example.org>")
    async with store.transaction(now=NOW) as tx:
        for email in await tx.mail.of_case(case.id):
            await tx.outbox.show_email(case.id, email.id)
    [root, reply] = await store.outbox.of_case(case.id)
    sender = FakeSender("slack", SLACK, behaviour={root.id: Refused("Slack refused it")})
    worker = OutboxWorker(store, [sender], clock=Clock())
    while await worker.work_once():
        pass
    after = await store.outbox.get(reply.id)
    assert after is not None and after.failed_at is not None
    assert "could not be posted" in after.last_error


async def test_the_worker_sleeps_until_a_held_back_message_is_due(store: Store) -> None:
    emails = await queue_emails(store, 1)
    clock = Clock()
    await store.outbox.retry_later(emails[0], not_before=clock.now + timedelta(seconds=7), error="SMTP 451")
    worker = OutboxWorker(store, [FakeSender("smtp", frozenset({"email"}))], clock=clock, idle_interval=60)
    assert not await worker.work_once()
    assert 6.9 <= await worker._idle_for() <= 7.0


async def test_during_an_outage_the_worker_sleeps_until_the_destination_may_be_tried(store: Store) -> None:
    emails = await queue_emails(store, 2)
    smtp = FakeSender("smtp", frozenset({"email"}), down=True)
    worker = OutboxWorker(store, [smtp], clock=Clock(), destination_backoff=Backoff(base=20, cap=20))
    assert await worker.work_once()
    assert not await worker.work_once()  # paused: nothing is tried
    assert await worker._idle_for() > 5  # not a busy loop while the outage lasts
    row = await store.outbox.get(emails[0])
    assert row is not None and row.not_before is None and "down" in row.last_error


async def test_what_follows_a_delivery_failing_neither_undoes_it_nor_stops_the_others(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    ids = await roots(store, 2)

    class Fragile(FakeSender):
        async def sent(self, tx: Tx, row: OutboxRow, delivered: Delivered) -> None:
            if row.id == ids[0]:
                raise KeyError("a bug in what follows")

    sender = Fragile("slack", SLACK)
    worker = OutboxWorker(store, [sender], clock=Clock())
    with caplog.at_level(logging.ERROR, logger="bot.outbox"):
        while await worker.work_once():
            pass
    assert sender.sent_rows == ids  # each sent once, the second too
    first = await store.outbox.get(ids[0])
    assert first is not None and first.done_at is not None  # not sent again
    assert "recording that it was sent failed" in caplog.text


async def test_the_started_marks_are_durable_and_only_slack_deliveries_are_recorded_without_a_sync(
    store: Store,
) -> None:
    slack_rows = await roots(store, 3)
    emails = await queue_emails(store, 1)
    slack_rows += [
        r.id for r in await store.outbox.due(now=NOW) if r.kind == "root" and r.id not in slack_rows
    ]
    statements: list[str] = []
    at_start = {1: "NORMAL", 2: "FULL"}[await store._db.synchronous]
    await store._db._writer.set_trace_callback(statements.append)  # what the writer really executes
    slack = FakeSender("slack", SLACK, finds_deliveries=True)  # looks in Slack before a repost
    smtp = FakeSender("smtp", frozenset({"email"}))  # cannot look: an email would go twice
    worker = OutboxWorker(store, [slack, smtp], clock=Clock())
    while await worker.work_once():
        pass
    assert set(slack_rows) <= set(slack.sent_rows) and smtp.sent_rows == emails

    level, pending, commits = at_start, [], []
    for sql in statements:
        if sql.startswith("PRAGMA synchronous"):
            level = sql.rsplit("=", 1)[1].strip()
        elif sql == "COMMIT":
            commits.append((level, pending))
            pending = []
        elif sql.startswith("UPDATE outbox"):
            pending.append(sql)
    marks = [lvl for lvl, sqls in commits if any("started_at = COALESCE" in q for q in sqls)]
    assert marks and set(marks) == {"FULL"}  # synced before anything is sent
    done = [(lvl, sqls) for lvl, sqls in commits if any("SET done_at" in q for q in sqls)]
    assert {lvl for lvl, sqls in done if any(f"WHERE id = {e}" in q for q in sqls for e in emails)} == {
        "FULL"
    }
    assert {lvl for lvl, sqls in done if not any(f"WHERE id = {e}" in q for q in sqls for e in emails)} == {
        "NORMAL"
    }


@pytest.mark.parametrize(
    ("kinds", "held"),
    [(KINDS, ()), (("email",), ()), (("home",), ()), (POSTS, ("C0STAFF01", None))],
    ids=["all", "email", "home", "held lanes"],
)
def test_the_due_rows_are_found_in_the_index_order_without_sorting_what_waits(
    migrated_database: Path, kinds: tuple[str, ...], held: tuple[str | None, ...]
) -> None:
    """With thousands waiting, each round reads only up to its limit: SQLite walks `outbox_due`
    (migration 0008) in the query's order instead of sorting every waiting row."""
    lanes = [lane for lane in held if lane is not None]
    sql = due_sql(len(kinds), len(lanes), None in held)
    with sqlite3.connect(migrated_database) as conn:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", (*kinds, "now", *lanes, 20))]
    assert plan[0] == "SCAN o USING INDEX outbox_due", plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


def test_orphans_are_looked_for_from_the_failed_rows(migrated_database: Path) -> None:
    with sqlite3.connect(migrated_database) as conn:
        plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {ORPHANS_SQL}", (50,))]
    assert plan[:2] == [
        "SCAN p USING INDEX outbox_failed",
        "SEARCH o USING INDEX outbox_parent (parent_id=?)",
    ]
