"""`privacy-desk run`: the long-running job, with every lifecycle owned in one place.

The store, the HTTP session, the Slack connection (Socket Mode or HTTP), the outbox worker, the
scheduler and the mailbox watcher are started here and closed in one `finally`, in reverse order.
SIGTERM/SIGINT set the stop event: the watcher finishes the message in hand, the loops get a short
grace to finish what they are doing (a Slack call waiting out an outage is cancelled, not waited
for), everything closes and the process exits 0. A loop that dies of a bug stops the process with
exit status 1, so that whatever supervises it starts it again.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from contextlib import AsyncExitStack, suppress
from datetime import timedelta

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import build_client, create_app, outbox_client
from bot.backoff import Backoff, Outage
from bot.mailbox import MailboxWatcher
from bot.outbox import OutboxWorker, Sender
from bot.preflight import preflight
from bot.reader import MailReader
from bot.scheduler import Scheduler
from bot.settings import Settings
from core.clock import Clock, system_clock
from core.errors import redacted
from handlers.cases.acknowledgement import Acknowledgements
from handlers.cases.intake import IntakeOutcome, IntakeRules, take_in, take_in_all, take_in_unparsed
from handlers.cases.inventory import Inventory
from handlers.classify.models_on_disk import trained_model_file
from handlers.jobs import Job
from handlers.jobs.days_left import DAYS_LEFT
from handlers.jobs.deadlines import DeadlineRules, deadline_job
from handlers.jobs.intake_alarm import IntakeHealth, intake_alarm_job
from handlers.jobs.maintenance import STRIP_ATTACHMENTS
from handlers.jobs.retention import retention_job
from handlers.mail_out.smtp import SmtpSender
from handlers.slack.api import SLACK_FAILURES
from handlers.slack.links import Permalinks
from handlers.slack.posting import SlackSender
from handlers.slack.scheduled import ScheduledSender
from handlers.slack.staff import StaffDirectory
from storage.store import Store

__all__ = ["build_outbox", "build_watcher", "jobs", "run"]

logger = logging.getLogger(__name__)

#: How long the loops get to finish on their own after a stop, before they are cancelled.
SHUTDOWN_GRACE = 5.0
#: How long more a stop waits for an email being handed to the mail server (its SMTP timeout).
EMAIL_GRACE = 35.0


async def run(
    settings: Settings,
    *,
    inventory: Inventory | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
    clock: Clock = system_clock,
    preflight_checks: bool = True,
) -> int:
    """Run until `stop` is set or SIGTERM/SIGINT arrives; returns the exit status. At start a
    server that refuses the configuration for good raises `ConfigError` (`bot.preflight`)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)

    if settings.acknowledge and settings.smtp is None:
        logger.warning("ACKNOWLEDGE is on but SMTP_HOST is not set: new cases are not acknowledged")
    status = 0
    async with AsyncExitStack() as stack:
        store = await Store.open(settings.database_path, clock=clock)
        stack.push_async_callback(store.close)
        session = aiohttp.ClientSession()
        stack.push_async_callback(session.close)
        client = build_client(settings, session=session)
        staff = StaffDirectory(client, channel=settings.slack.channel_id, fixed=settings.slack.staff_user_ids)
        permalinks = Permalinks(client)
        outbox = build_outbox(settings, store, client, clock=clock, staff=staff, permalinks=permalinks)
        app = create_app(
            settings,
            store=store,
            client=client,
            inventory=inventory,
            notify=outbox.notify,
            staff=staff,
            clock=clock,
            permalinks=permalinks,
        )
        health = IntakeHealth(clock)

        def delivered(outcome: IntakeOutcome) -> None:
            if outcome.case_ref is not None:
                outbox.notify_threadsafe(loop)

        def storage_changed(error: BaseException | None) -> None:
            loop.call_soon_threadsafe(outbox.storage_changed, error)

        scheduler = Scheduler(
            store, jobs(settings, health), calendar=settings.calendar, clock=clock, on_done=outbox.notify
        )
        watcher = build_watcher(
            settings,
            store,
            loop=loop,
            inventory=inventory,
            on_delivered=delivered,
            clock=clock,
            health=health,
            on_health=scheduler.wake,
            on_storage=storage_changed,
        )
        if preflight_checks:
            await preflight(settings, client)  # ConfigError: a refusal for good, exit 2
        loops = [
            asyncio.create_task(_SlackConnection(settings, app).run(stop), name="slack-connection"),
            asyncio.create_task(outbox.run(stop), name="outbox"),
            asyncio.create_task(scheduler.run(stop), name="scheduler"),
        ]
        # look the staff up once now, so the first click does not wait for Slack (modals must open
        # within 3 seconds of the click)
        warm = asyncio.create_task(staff.members(), name="staff-lookup")
        try:
            watcher.start()
            logger.info(
                "privacy desk running: folder %s, Slack %s mode", settings.imap.folder, settings.slack.mode
            )
            status = await _until_stopped(stop, loops)
            logger.info("stopping")
        finally:
            stop.set()
            connection, *working = loops
            for idle in (connection, warm):  # nothing to finish: a connection attempt, a lookup
                idle.cancel()
            await watcher.stop()
            await _finish([*working, connection, warm], outbox=outbox)
    logger.info("stopped")
    return status


async def _until_stopped(stop: asyncio.Event, loops: list[asyncio.Task[None]]) -> int:
    """Wait for the stop event: 0; or 1 if a loop ended first (a bug: it is logged)."""
    stopped = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait([stopped, *loops], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if stopped in done:
        return 0
    for task in done:
        error = None if task.cancelled() else task.exception()
        logger.error("%s stopped: %s", task.get_name(), redacted(error) if error else "it returned")
    return 1


async def _finish(tasks: list[asyncio.Task[object]], *, outbox: OutboxWorker) -> None:
    """Give the loops a short grace to end on their own — longer while an email is being handed
    to the mail server (cut off, it would be sent again) — then cancel what is left. A loop's
    error was logged when it ended; it is not raised again here."""
    _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
    if pending and outbox.sending == "smtp":
        logger.info("waiting for the email being sent")
        _, pending = await asyncio.wait(pending, timeout=EMAIL_GRACE)
    for task in pending:
        task.cancel()
    for task in tasks:
        with suppress(asyncio.CancelledError, Exception):
            await task


def jobs(settings: Settings, health: IntakeHealth) -> list[Job]:
    """The scheduled jobs of `run`: the daily deadline job (reminders, digest, weekly summary),
    the intake alarm, the days-left refresh, retention, one-off upkeep."""
    rules = DeadlineRules(
        calendar=settings.calendar,
        reminder_hour=settings.reminder_hour,
        pause_clock=settings.clock_pause_on_wait,
        managers=settings.slack.manager_user_ids,
    )
    alarm = intake_alarm_job(
        health, alert_after=timedelta(minutes=settings.imap_alert_minutes), folder=settings.imap.folder
    )
    retention = retention_job(
        settings.retention_days, trained_model=trained_model_file(settings.database_path)
    )
    return [DAYS_LEFT, deadline_job(rules), alarm, retention, STRIP_ATTACHMENTS]


def build_outbox(
    settings: Settings,
    store: Store,
    client: AsyncWebClient,
    *,
    clock: Clock = system_clock,
    staff: StaffDirectory | None = None,
    permalinks: Permalinks | None = None,
) -> OutboxWorker:
    """The outbox worker with its senders: Slack always (cases, and scheduled messages), SMTP when
    `SMTP_HOST` is set. The senders post with the outbox's own copy of `client`, which leaves
    429s to the worker's pacing (`outbox_client`); `staff` and `permalinks`, shared with the
    listeners, keep `client`."""
    channel, calendar = settings.slack.channel_id, settings.calendar
    staff = staff or StaffDirectory(client, channel=channel, fixed=settings.slack.staff_user_ids)
    poster = outbox_client(client)
    senders: list[Sender] = [
        SlackSender(store, poster, channel=channel, calendar=calendar, clock=clock, writer=settings.writer()),
        ScheduledSender(
            store,
            poster,
            channel=channel,
            calendar=calendar,
            staff=staff,
            permalinks=permalinks or Permalinks(client),
            clock=clock,
            pause_clock=settings.clock_pause_on_wait,
        ),
    ]
    if settings.smtp is not None:
        senders.append(SmtpSender(store, settings.smtp, mail_from=settings.mail_from))
    # a row another process queued (a `purge` from the command line) waits at most this long
    return OutboxWorker(store, senders, clock=clock, idle_interval=15.0)


def intake_rules(settings: Settings, inventory: Inventory | None = None) -> IntakeRules:
    """How intake treats new mail under these settings: new cases are acknowledged when
    `ACKNOWLEDGE` is on and outgoing mail is configured."""
    acknowledging = settings.acknowledge and settings.smtp is not None
    return IntakeRules(
        authserv_id=settings.imap.authserv_id,
        inventory=inventory,
        pause_clock=settings.clock_pause_on_wait,
        mail_from=settings.mail_from_address,
        acknowledgements=Acknowledgements(settings.writer()) if acknowledging else None,
    )


def build_watcher(
    settings: Settings,
    store: Store,
    *,
    loop: asyncio.AbstractEventLoop,
    inventory: Inventory | None = None,
    on_delivered: Callable[[IntakeOutcome], None] | None = None,
    clock: Clock = system_clock,
    health: IntakeHealth | None = None,
    on_health: Callable[[], None] = lambda: None,
    on_storage: Callable[[BaseException | None], None] = lambda error: None,
) -> MailboxWatcher:
    """The mailbox watcher wired to the intake use case and the store's cursor."""
    calendar = settings.calendar
    rules = intake_rules(settings, inventory)

    async def reset_cursor(folder: str, uidvalidity: int, uidnext: int) -> None:
        async with store.transaction() as tx:
            await tx.cursors.reset(folder, uidvalidity=uidvalidity, backfill_before_uid=uidnext)

    return MailboxWatcher(
        settings.imap,
        loop=loop,
        deliver=lambda m: take_in(store, m, calendar=calendar, rules=rules, now=clock()),
        deliver_all=lambda ms, reads: take_in_all(
            store, ms, calendar=calendar, rules=rules, now=clock(), reads=reads
        ),
        reader=MailReader(authserv_id=rules.authserv_id, own_domain=rules.own_domain),
        fallback=lambda m, e: take_in_unparsed(store, m, e, calendar=calendar, now=clock()),
        get_cursor=store.cursors.get,
        reset_cursor=reset_cursor,
        on_delivered=on_delivered,
        clock=clock,
        health=health,
        on_health=on_health,
        on_storage=on_storage,
    )


class _SlackConnection:
    """Keeps the app reachable by Slack: the Socket Mode connection (reconnecting with backoff
    when Slack cannot be reached at start) or the HTTP server for Slack's requests."""

    def __init__(self, settings: Settings, app: AsyncApp) -> None:
        self.settings = settings
        self.app = app
        self.outage = Outage("Slack Socket Mode", logger)

    async def run(self, stop: asyncio.Event) -> None:
        if self.settings.slack.mode == "http":
            await self._serve_http(stop)
        else:
            await self._socket_mode(stop)

    async def _socket_mode(self, stop: asyncio.Event) -> None:
        app_token = self.settings.slack.app_token
        assert app_token is not None
        backoff = Backoff(base=1.0, cap=60.0)
        handler = AsyncSocketModeHandler(self.app, app_token.reveal(), web_client=self.app.client)
        try:
            while not stop.is_set():
                try:
                    await handler.connect_async()
                except SLACK_FAILURES as e:  # ConnectionError is an OSError
                    self.outage.failed(e)
                    with suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(stop.wait(), backoff.next_delay())
                    continue
                self.outage.recovered()
                await stop.wait()
        finally:
            with suppress(Exception):
                await asyncio.shield(handler.close_async())

    async def _serve_http(self, stop: asyncio.Event) -> None:
        web_app = self.app.web_app(path="/slack/events", port=self.settings.slack.port)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host="0.0.0.0", port=self.settings.slack.port)
        await site.start()
        logger.info("serving Slack requests on port %d at /slack/events", self.settings.slack.port)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
