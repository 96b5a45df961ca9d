"""The composition root's Slack half: the Web API client and the Bolt app.

Nothing here reads the environment or connects at import time; `privacy-desk run` builds
everything from `Settings` once, and tests build the same objects against the Slack stand-in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

import handlers
from bot.settings import Settings
from core.clock import Clock, system_clock
from core.errors import redacted
from handlers.cases.deadlines import Calendar
from handlers.cases.inventory import Inventory
from handlers.slack.links import Permalinks
from handlers.slack.listeners import tell_unsaved
from handlers.slack.staff import StaffDirectory
from storage.store import Store

__all__ = ["Desk", "build_client", "create_app", "outbox_client"]

logger = logging.getLogger(__name__)


@dataclass
class Desk:
    """The services listeners need, handed to them through Bolt's context as `desk`."""

    settings: Settings
    store: Store
    calendar: Calendar
    staff: StaffDirectory
    inventory: Inventory | None = None
    notify: Callable[[], None] = lambda: None  # asks the outbox worker for a round
    clock: Clock = system_clock
    permalinks: Permalinks | None = None  # links to case threads, remembered


def build_client(settings: Settings, *, session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
    """An `AsyncWebClient` for `SLACK_API_URL` that retries on connection errors, on 429
    (sleeping `Retry-After`) and on 500/503, with slack-sdk's own retry handlers: the client that
    answers people, where one call waiting a moment is right."""
    return AsyncWebClient(
        token=settings.slack.bot_token.reveal(),
        base_url=settings.slack.api_url,
        session=session,
        timeout=30,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=5),
            AsyncServerErrorRetryHandler(max_retry_count=2),
        ],
    )


def outbox_client(client: AsyncWebClient) -> AsyncWebClient:
    """The outbox's own client: `client`'s token, URL, session and retry handlers, but a 429 is
    answered to the outbox at once instead of slept on inside the call — the outbox then holds
    the whole channel for `Retry-After` and paces it (`bot.outbox`). Connection errors and 5xx
    are still retried by slack-sdk: they are about one call."""
    return AsyncWebClient(
        token=client.token,
        base_url=client.base_url,
        session=client.session,
        timeout=client.timeout,
        retry_handlers=[
            h for h in client.retry_handlers if not isinstance(h, AsyncRateLimitErrorRetryHandler)
        ],
    )


def create_app(
    settings: Settings,
    *,
    store: Store,
    client: AsyncWebClient,
    inventory: Inventory | None = None,
    notify: Callable[[], None] | None = None,
    staff: StaffDirectory | None = None,
    clock: Clock | None = None,
    permalinks: Permalinks | None = None,
) -> AsyncApp:
    """The Bolt app with every listener registered and the services injected as `desk`.

    `notify` is called after every change a listener commits (the runtime passes the outbox's);
    `staff` defaults to `SLACK_STAFF_USER_IDS`, else the staff channel's members.
    """
    secret = settings.slack.signing_secret
    app = AsyncApp(
        client=client,
        signing_secret=secret.reveal() if secret else None,
        request_verification_enabled=settings.slack.mode == "http",
        logger=logging.getLogger("slack_bolt"),
    )
    desk = Desk(
        settings=settings,
        store=store,
        calendar=settings.calendar,
        staff=staff
        or StaffDirectory(client, channel=settings.slack.channel_id, fixed=settings.slack.staff_user_ids),
        inventory=inventory,
        notify=notify or (lambda: None),
        clock=clock or system_clock,
        permalinks=permalinks or Permalinks(client),
    )

    @app.middleware
    async def inject_desk(context, next):
        context["desk"] = desk
        await next()

    @app.error
    async def on_error(error, body, logger, respond):
        # Error boundary for Slack listeners: a failing listener must not take the app down, and
        # the failure is logged once here with its type (never the payload: it holds user data).
        kind = body.get("type") if isinstance(body, dict) else None
        logger.error("listener failed on a %s request: %s", kind or "Slack", redacted(error))
        with suppress(Exception):  # the person is told their change did not happen
            await tell_unsaved(respond, error)

    handlers.register(app)
    return app
