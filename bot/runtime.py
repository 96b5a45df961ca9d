"""`privacy-desk run`: the long-running job, with every lifecycle owned in one place.

The store, the HTTP session, the Slack connection (Socket Mode or HTTP), the publisher and the
mailbox watcher are started here and closed in one `finally`, in reverse order. SIGTERM/SIGINT
set the stop event: the watcher finishes the message in hand, then everything closes and the
process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from contextlib import AsyncExitStack, suppress

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.app import build_client, create_app
from bot.backoff import Backoff, Outage
from bot.errors import SLACK_FAILURES
from bot.mailbox import MailboxWatcher
from bot.mailer import Mailer
from bot.settings import Settings
from handlers.intake import IntakeOutcome, IntakeRules, take_in, take_in_unparsed
from handlers.publishing import Publisher
from handlers.staff import StaffDirectory
from handlers.systems import Inventory
from storage.store import Store

__all__ = ["build_watcher", "run"]

logger = logging.getLogger(__name__)


async def run(
    settings: Settings,
    *,
    inventory: Inventory | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
) -> int:
    """Run until `stop` is set or SIGTERM/SIGINT arrives; returns the exit status (0)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)

    async with AsyncExitStack() as stack:
        store = await Store.open(settings.database_path)
        stack.push_async_callback(store.close)
        session = aiohttp.ClientSession()
        stack.push_async_callback(session.close)
        client = build_client(settings, session=session)
        publisher = Publisher(store, client, channel=settings.slack.channel_id, calendar=settings.calendar)
        mailer = (
            Mailer(store, settings.smtp, mail_from=settings.mail_from, on_sent=publisher.notify)
            if settings.smtp
            else None
        )

        def notify() -> None:
            publisher.notify()
            if mailer is not None:
                mailer.notify()

        staff = StaffDirectory(client, channel=settings.slack.channel_id, fixed=settings.slack.staff_user_ids)
        app = create_app(
            settings, store=store, client=client, inventory=inventory, notify=notify, staff=staff
        )

        def delivered(outcome: IntakeOutcome) -> None:
            if outcome.case_ref is not None:
                publisher.notify_threadsafe(loop)

        watcher = build_watcher(settings, store, loop=loop, inventory=inventory, on_delivered=delivered)
        folder = settings.imap.folder
        tasks: list[asyncio.Task[None]] = []
        try:
            connector = _SlackConnection(settings, app)
            tasks.append(asyncio.create_task(connector.run(stop), name="slack-connection"))
            tasks.append(asyncio.create_task(publisher.run(stop), name="slack-publisher"))
            if mailer is not None:
                tasks.append(asyncio.create_task(mailer.run(stop), name="smtp-mailer"))
            # look the staff up once now, so the first click does not wait for Slack (modals must
            # open within 3 seconds of the click)
            tasks.append(asyncio.create_task(_warm(staff), name="staff-lookup"))
            watcher.start()
            logger.info("privacy desk running: folder %s, Slack %s mode", folder, settings.slack.mode)
            await stop.wait()
            logger.info("stopping")
        finally:
            await watcher.stop()
            stop.set()
            for task in tasks:
                with suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout=15)
    logger.info("stopped")
    return 0


async def _warm(staff: StaffDirectory) -> None:
    await staff.members()


def build_watcher(
    settings: Settings,
    store: Store,
    *,
    loop: asyncio.AbstractEventLoop,
    inventory: Inventory | None = None,
    on_delivered: Callable[[IntakeOutcome], None] | None = None,
) -> MailboxWatcher:
    """The mailbox watcher wired to the intake use case and the store's cursor."""
    calendar = settings.calendar
    rules = IntakeRules(
        authserv_id=settings.imap.authserv_id, inventory=inventory, pause_clock=settings.clock_pause_on_wait
    )

    async def reset_cursor(folder: str, uidvalidity: int, uidnext: int) -> None:
        async with store.transaction() as tx:
            await tx.reset_cursor(folder, uidvalidity=uidvalidity, backfill_before_uid=uidnext)

    return MailboxWatcher(
        settings.imap,
        loop=loop,
        deliver=lambda m: take_in(store, m, calendar=calendar, rules=rules),
        fallback=lambda m, e: take_in_unparsed(store, m, e, calendar=calendar),
        get_cursor=store.cursor,
        reset_cursor=reset_cursor,
        on_delivered=on_delivered,
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
                await handler.close_async()

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
