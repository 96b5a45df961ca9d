"""Scheduled jobs (bot/scheduler.py, handlers/jobs/): each run once, across restarts; earlier runs
a stopped bot missed are not caught up; the daily refresh queues the open cases' roots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.scheduler import Scheduler
from handlers.cases.deadlines import Calendar
from handlers.jobs.days_left import DAYS_LEFT
from storage.store import Store
from tests.support.factory import new_case

CALENDAR = Calendar()


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def posted_case(store: Store, message_id: str, *, status: str = "new") -> int:
    case = await new_case(store, message_id, status=status)
    root = await store.outbox.message("root", case.id)
    assert root is not None
    await store.outbox.mark_done(root.id, result=f"1.{case.id}", channel="C0STAFF01")
    return case.id


async def refreshes(store: Store) -> list[int]:
    return [
        r.case_id
        for r in await store.outbox.due(now=datetime(2100, 1, 1, tzinfo=UTC))
        if r.kind == "root_update"
    ]


async def test_the_daily_refresh_runs_once_a_day_across_restarts(store: Store) -> None:
    open_case = await posted_case(store, "<open@example.org>")
    await posted_case(store, "<closed@example.org>", status="resolved")
    clock = Clock(datetime(2026, 11, 25, 23, 30, tzinfo=UTC))  # 00:30 in Brussels, 26 November
    notified: list[int] = []
    scheduler = Scheduler(
        store, [DAYS_LEFT], calendar=CALENDAR, clock=clock, on_done=lambda: notified.append(1)
    )
    assert await scheduler.run_due() == 1
    assert await refreshes(store) == [open_case]  # open cases only
    assert await store.jobs.done("days_left", "2026-11-26")
    assert await scheduler.run_due() == 0  # the same day: already done
    restarted = Scheduler(store, [DAYS_LEFT], calendar=CALENDAR, clock=clock)
    assert await restarted.run_due() == 0  # a restart the same day: still done
    assert notified == [1]

    root_update = next(r for r in await store.outbox.of_case(open_case) if r.kind == "root_update")
    await store.outbox.mark_done(root_update.id, result="1.1")
    clock.now += timedelta(days=3)  # stopped for two days: those days are not caught up
    assert await restarted.run_due() == 1
    assert await refreshes(store) == [open_case]
    assert not await store.jobs.done("days_left", "2026-11-27")


async def test_a_failing_job_is_logged_and_the_others_run_on(store: Store, caplog) -> None:
    """A job that fails for a reason of its own (a bug) must not stop the scheduler, the mailbox
    or the outbox: it is logged once, not retried for that run in this process, and the other
    jobs still run."""
    from handlers.jobs import Job

    calls: list[str] = []

    async def broken(store: Store, key: str, now: datetime) -> int:
        calls.append(key)
        raise RuntimeError("a bug")

    await posted_case(store, "<open@example.org>")
    clock = Clock(datetime(2026, 11, 25, 23, 30, tzinfo=UTC))
    scheduler = Scheduler(
        store, [Job("broken", lambda local: "once", broken), DAYS_LEFT], calendar=CALENDAR, clock=clock
    )
    assert await scheduler.run_due() == 1  # the days-left refresh ran
    assert await scheduler.run_due() == 0
    assert calls == ["once"]  # tried once, then left alone
    assert [r.message for r in caplog.records if "broken" in r.getMessage()] != []


async def test_rounds_fall_at_the_start_of_each_minute(store: Store) -> None:
    """A job due at 09:00 runs at 09:00, not up to a minute late: the scheduler sleeps to the next
    minute of its clock."""
    clock = Clock(datetime(2026, 11, 26, 7, 59, 30, tzinfo=UTC))
    scheduler = Scheduler(store, [], calendar=CALENDAR, clock=clock)
    assert 30.0 <= scheduler._until_next_round() <= 30.5
    clock.now = datetime(2026, 11, 26, 7, 59, 59, 900000, tzinfo=UTC)
    assert scheduler._until_next_round() <= 0.5
