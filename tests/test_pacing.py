"""Paced posting: the outbox posts at full speed while Slack accepts; once a channel answers 429,
the whole channel waits out `Retry-After`, then goes at about one post per second until it has
been quiet for `QUIET_PERIOD`; other channels and destinations go on meanwhile, within a channel
new cases' roots still go before older threads' replies, and answers to a person's own action
never wait behind the backlog.

The first tests drive the real worker and store with a sender that applies Slack's per-channel
limit (a token bucket, as the stand-in does) on an injected monotonic clock, so minutes of pacing
take no time; the others run against the Slack stand-in in real time, for a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)

from bot.app import build_client, create_app, outbox_client
from bot.outbox import PACED_INTERVAL, QUIET_PERIOD, OutboxWorker
from bot.runtime import build_outbox
from bot.settings import Settings
from core.errors import RateLimited
from storage.models import OutboxRow
from storage.outbox import Delivered
from storage.store import Store, Tx
from tests.conftest import CHANNEL, STAFF, wait_until
from tests.support.factory import NOW, new_case
from tests.support.slack_standin import SlackStandIn

OLD_CHANNEL = "C0OLDCHAN"


class Monotonic:
    """The worker's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class LimitedSlack:
    """A Slack sender that allows `rate` posts per second per channel with bursts of `burst`,
    answering 429 with `Retry-After` beyond that (as the stand-in's `per_channel_rate` does)."""

    clock: Monotonic
    rate: float = 1.0
    burst: int = 3
    destination: str = "slack"
    kinds: frozenset[str] = frozenset({"root", "email_reply", "checklist", "note", "root_update"})
    finds_deliveries: bool = True
    posted: list[tuple[float, str, int]] = field(default_factory=list)  # (at, channel, row id)
    limited: list[tuple[float, str, int]] = field(default_factory=list)
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def lane(self, row: OutboxRow) -> str:
        return row.parent_channel or CHANNEL

    async def send(self, row: OutboxRow) -> Delivered:
        await asyncio.sleep(0)  # the request travels: the outbox's other calls in flight go on
        channel, now = self.lane(row), self.clock()
        tokens, last = self.buckets.get(channel, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self.buckets[channel] = (tokens, now)
            self.limited.append((now, channel, row.id))
            raise RateLimited("Slack: ratelimited", retry_after=max(1, math.ceil((1.0 - tokens) / self.rate)))
        self.buckets[channel] = (tokens - 1.0, now)
        self.posted.append((now, channel, row.id))
        return Delivered(f"{now:.6f}.{row.id}", channel)

    async def sent(self, tx: Tx, row: OutboxRow, delivered: Delivered) -> None:
        pass

    async def refused(self, tx: Tx, row: OutboxRow, reason: str) -> None:
        raise AssertionError(f"row {row.id} refused: {reason}")


@dataclass
class Mail:
    """A mail server that accepts everything."""

    destination: str = "smtp"
    kinds: frozenset[str] = frozenset({"email"})
    finds_deliveries: bool = False
    sent_rows: list[int] = field(default_factory=list)

    def lane(self, row: OutboxRow) -> str:
        return "smtp"

    async def send(self, row: OutboxRow) -> Delivered:
        self.sent_rows.append(row.id)
        return Delivered(f"<{row.id}@imal.example>")

    async def sent(self, tx: Tx, row: OutboxRow, delivered: Delivered) -> None:
        pass

    async def refused(self, tx: Tx, row: OutboxRow, reason: str) -> None:
        raise AssertionError(reason)


async def cases_with_replies(store: Store, n: int, *, prefix: str = "m") -> list[int]:
    """`n` cases, each with its root and the reply showing its email queued; returns the case ids."""
    ids = []
    for i in range(n):
        case = await new_case(store, f"<{prefix}{i}@example.org>")
        async with store.transaction(now=NOW) as tx:
            for email in await tx.mail.of_case(case.id):
                await tx.outbox.show_email(case.id, email.id)
        ids.append(case.id)
    return ids


async def case_in_old_channel(store: Store) -> int:
    """A case whose root is in another channel (posted before SLACK_CHANNEL_ID changed), with a
    reply to post in its thread; returns the reply's row id."""
    [case_id] = await cases_with_replies(store, 1, prefix="old")
    root, reply = await store.outbox.of_case(case_id)
    await store.outbox.mark_done(root.id, result="1700000000.000100", channel=OLD_CHANNEL)
    return reply.id


async def run_until_drained(worker: OutboxWorker, clock: Monotonic, *, limit: float = 3600) -> float:
    """Work the outbox as its loop does, moving the clock over the waits instead of sleeping;
    returns the simulated time it took."""
    start = clock.now
    while clock.now - start < limit:
        if await worker.work_once():
            clock.now += 0.01  # a post takes a moment
        elif not await worker.store.outbox.due(now=NOW, limit=1):
            return clock.now - start
        else:
            clock.now += await worker._idle_for()
    raise AssertionError("the outbox did not drain")


async def test_while_slack_accepts_everything_goes_at_full_speed_with_no_pacing(store: Store) -> None:
    await cases_with_replies(store, 20)
    clock = Monotonic()
    slack = LimitedSlack(clock, rate=0.0, burst=10**6)  # never limits
    worker = OutboxWorker(store, [slack], clock=lambda: NOW, monotonic=clock)
    while await worker.work_once():
        pass
    assert len(slack.posted) == 40 and not slack.limited
    assert not worker.paces and clock.now == 1000.0  # no wait of any kind


async def test_a_429_holds_the_whole_channel_for_its_retry_after_then_paces_it(store: Store) -> None:
    await cases_with_replies(store, 6)
    clock = Monotonic()
    slack = LimitedSlack(clock, rate=1.0, burst=3)
    worker = OutboxWorker(store, [slack], clock=lambda: NOW, monotonic=clock)
    assert await worker.work_once()
    # three posts of the burst, then the 429: nothing more is tried in the channel
    assert len(slack.posted) == 3 and len(slack.limited) == 1
    assert not await worker.work_once()
    [(_, _, limited_row)] = slack.limited
    row = await store.outbox.get(limited_row)
    assert row is not None and row.started_at is None  # Slack did not post it: no search before the retry
    assert await worker._idle_for() == pytest.approx(1.0)  # its Retry-After
    clock.now += 0.99
    assert not await worker.work_once()
    clock.now += 0.01
    assert await worker.work_once()
    assert len(slack.posted) == 4 and slack.posted[-1][2] == limited_row  # the same row, once
    assert not await worker.work_once()  # one post per PACED_INTERVAL
    clock.now += PACED_INTERVAL
    assert await worker.work_once() and len(slack.posted) == 5
    await run_until_drained(worker, clock)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(slack.posted[3:])]
    assert all(gap >= PACED_INTERVAL - 1e-9 for gap in gaps)
    assert len(slack.limited) == 1  # paced, Slack never had to say it again
    assert sorted(r for _, _, r in slack.posted) == sorted({r for _, _, r in slack.posted})  # none twice


async def test_a_paced_channel_is_at_full_speed_again_once_quiet(store: Store) -> None:
    await cases_with_replies(store, 2)
    clock = Monotonic()
    slack = LimitedSlack(clock, rate=1.0, burst=1)
    worker = OutboxWorker(store, [slack], clock=lambda: NOW, monotonic=clock)
    await run_until_drained(worker, clock)
    assert slack.limited  # it was paced
    clock.now += QUIET_PERIOD
    slack.buckets.clear()
    slack.burst = 10**6
    await cases_with_replies(store, 10, prefix="later")
    before = clock.now
    while await worker.work_once():
        pass
    assert len(slack.posted) == 4 + 20 and clock.now == before  # all at once: no pacing left
    assert worker.paces == {}


async def test_a_paced_channel_does_not_hold_up_other_channels_or_the_mail(store: Store) -> None:
    await cases_with_replies(store, 60)  # more than one round's page of rows, all for the staff channel
    old_reply = await case_in_old_channel(store)
    async with store.transaction(now=NOW) as tx:
        case = await tx.cases.get(1)
        assert case is not None
        outbound = await tx.mail.add_outbound(
            case_id=case.id, message_id="<out1@imal.example>", to_addr="p1@example.org", subject="Re",
            body="Hello", language="en", in_reply_to="", references=[], author="UALICE01",
        )  # fmt: skip
        await tx.outbox.send_email(case.id, outbound)
    clock = Monotonic()
    slack, mail = LimitedSlack(clock, rate=1.0, burst=3), Mail()
    worker = OutboxWorker(store, [slack, mail], clock=lambda: NOW, monotonic=clock)
    await worker.work_once()
    assert slack.limited and all(c == CHANNEL for _, c, _ in slack.limited)
    for _ in range(3):  # the staff channel waits; the others do not wait for it
        clock.now += 0.3
        await worker.work_once()
    assert old_reply in [r for _, c, r in slack.posted if c == OLD_CHANNEL]
    assert len(mail.sent_rows) == 1
    assert [c for _, c, _ in slack.posted].count(CHANNEL) == 3  # the burst, nothing more yet


async def test_within_a_paced_channel_new_cases_roots_go_before_older_threads_replies(store: Store) -> None:
    await cases_with_replies(store, 3, prefix="first")
    clock = Monotonic()
    slack = LimitedSlack(clock, rate=1.0, burst=3)
    worker = OutboxWorker(store, [slack], clock=lambda: NOW, monotonic=clock)
    await worker.work_once()  # the three roots, then a 429 on the first reply
    newer = await cases_with_replies(store, 3, prefix="newer")
    await run_until_drained(worker, clock)
    kinds = []
    for _, _, row_id in slack.posted[3:]:
        row = await store.outbox.get(row_id)
        assert row is not None
        kinds.append((row.kind, row.case_id in newer))
    # the newer cases' roots first, then the replies (older threads first)
    assert kinds[:3] == [("root", True)] * 3
    assert [k for k, _ in kinds[3:]] == ["email_reply"] * 6
    assert [n for _, n in kinds[3:]] == [False] * 3 + [True] * 3


async def test_a_60_case_backlog_under_2_posts_per_second_is_rarely_answered_429(store: Store) -> None:
    await cases_with_replies(store, 60)
    clock = Monotonic()
    slack = LimitedSlack(clock, rate=2.0, burst=3)
    worker = OutboxWorker(store, [slack], clock=lambda: NOW, monotonic=clock)
    took = await run_until_drained(worker, clock)
    calls = len(slack.posted) + len(slack.limited)
    assert len(slack.posted) == 120 and len({r for _, _, r in slack.posted}) == 120
    assert len(slack.limited) / calls < 0.03  # was 31 % with the 429s slept on inside each call
    assert took < 120 * PACED_INTERVAL + QUIET_PERIOD


# --- against the Slack stand-in, in real time ----------------------------------------------------------


@contextlib.asynccontextmanager
async def working(worker: OutboxWorker) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def posts(slack: SlackStandIn) -> list[dict[str, object]]:
    return slack.calls_to("chat.postMessage")


def test_the_outboxs_client_leaves_429s_to_the_outbox_and_still_retries_the_rest(settings: Settings) -> None:
    client = build_client(settings)
    own = outbox_client(client)
    kept = {type(h) for h in own.retry_handlers}
    assert kept == {AsyncConnectionErrorRetryHandler, AsyncServerErrorRetryHandler}
    assert AsyncRateLimitErrorRetryHandler in {type(h) for h in client.retry_handlers}  # answers to people
    assert (own.token, own.base_url, own.session) == (client.token, client.base_url, client.session)


async def test_with_the_stand_in_at_full_speed_the_outbox_never_waits(
    store: Store, settings: Settings, slack: SlackStandIn
) -> None:
    await cases_with_replies(store, 15)
    worker = build_outbox(settings, store, build_client(settings))
    worker.idle_interval = 0.05
    started = time.monotonic()
    async with working(worker):
        await wait_until(lambda: len(slack.messages) == 30, 10)
    assert time.monotonic() - started < PACED_INTERVAL * 3  # 30 posts: no pacing delay
    assert worker.paces == {} and all(c["fault"] is None for c in posts(slack))


async def test_after_a_429_the_stand_in_gets_about_one_post_per_second_and_nothing_twice(
    store: Store, settings: Settings, slack: SlackStandIn
) -> None:
    slack.faults(per_channel_rate=1, per_channel_burst=2)
    await cases_with_replies(store, 3)
    worker = build_outbox(settings, store, build_client(settings))
    worker.idle_interval = 0.05
    async with working(worker):
        await wait_until(lambda: len(slack.messages) == 6, 15)
        for _ in range(100):  # the last one is recorded once Slack's answer is in: nothing else waits
            if await worker.drained():
                break
            await asyncio.sleep(0.02)
        assert await worker.drained()
    calls = posts(slack)
    faults = [c["fault"] for c in calls]
    assert faults.count(429) == 1  # the first burst's end; paced, never again
    first_429 = faults.index(429)
    after = [float(str(c["at"])) for c in calls[first_429 + 1 :]]
    assert len(after) == 4
    gaps = [b - a for a, b in itertools.pairwise(after)]
    assert all(gap >= PACED_INTERVAL - 0.05 for gap in gaps), gaps
    assert all(gap < PACED_INTERVAL + 0.5 for gap in gaps), gaps
    roots = slack.roots(CHANNEL)
    assert len(roots) == 3 and all(len(slack.replies(str(r["ts"]))) == 1 for r in roots)


async def test_answers_to_a_person_do_not_wait_behind_a_paced_backlog(
    store: Store, settings: Settings, slack: SlackStandIn
) -> None:
    slack.faults(per_channel_rate=1, per_channel_burst=3)
    client = build_client(settings)
    worker = build_outbox(settings, store, client)
    worker.idle_interval = 0.05
    app = create_app(settings, store=store, client=client, notify=worker.notify)
    assert settings.slack.app_token is not None
    handler = AsyncSocketModeHandler(app, settings.slack.app_token.reveal(), web_client=client)
    await handler.connect_async()
    await slack.wait_for_socket()
    await cases_with_replies(store, 20)  # 40 posts: at one a second, most of a minute
    try:
        async with working(worker):
            await wait_until(lambda: worker.paces, 10)  # Slack said 429: the channel is paced
            # a slash command: acknowledged, then answered ephemerally at once
            payload = slack.slash_command_payload("help", user=STAFF[0])
            rid = payload["response_url"].rsplit("/", 1)[-1]
            asked = time.monotonic()
            result = await slack.send_envelope("slash_commands", payload)
            await wait_until(lambda: any(r["id"] == rid for r in slack.responses), 5, every=0.005)
            answered = time.monotonic() - asked
            # a button that opens a modal (views.open): the modal is there at once
            root = slack.roots(CHANNEL)[0]
            views = set(slack.views)
            clicked = time.monotonic()
            await slack.send_envelope(
                "interactive", slack.block_actions_payload(root, "case.resolve", user=STAFF[0])
            )
            await wait_until(lambda: set(slack.views) - views, 5, every=0.005)
            opened = time.monotonic() - clicked
            waiting = 40 - len(slack.messages)
    finally:
        await handler.close_async()
    assert result["ack_seconds"] < 1.0
    assert answered < 1.0 and opened < 1.0, (answered, opened)
    assert waiting > 20  # the backlog was still being paced while they were answered


async def test_once_a_channel_has_answered_429_it_gets_one_call_at_a_time_even_at_full_speed(
    store: Store,
) -> None:
    """At full speed the outbox sends several calls side by side; in a channel that has answered
    429 that would spend Slack's burst at once and earn a 429 for each call in flight, each time
    the channel is at full speed again. So there, one at a time: one 429 at most per burst."""
    await cases_with_replies(store, 30)
    clock = Monotonic()
    slack = LimitedSlack(clock, rate=1.0, burst=3)
    in_flight, most = 0, 0
    send = slack.send

    async def counted(row: OutboxRow) -> Delivered:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            return await send(row)
        finally:
            in_flight -= 1

    slack.send = counted  # type: ignore[method-assign]
    worker = OutboxWorker(store, [slack], clock=lambda: NOW, monotonic=clock)
    await worker.work_once()  # a fresh channel at full speed: calls side by side, then a 429
    assert most > 1 and slack.limited
    first = len(slack.limited)
    clock.now += QUIET_PERIOD + 1  # quiet again: full speed, but one call at a time
    slack.buckets.clear()
    most = 0
    await worker.work_once()
    assert most == 1
    assert len(slack.limited) - first == 1  # the burst's end, once
