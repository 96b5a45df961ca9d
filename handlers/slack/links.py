"""Links to case threads (`chat.getPermalink`), remembered: a message's permalink never changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from slack_sdk.web.async_client import AsyncWebClient

from handlers.slack.api import SLACK_FAILURES
from storage.overview import CaseLine

__all__ = ["Permalinks"]

logger = logging.getLogger(__name__)


class Permalinks:
    """Permalinks of case roots, fetched once each; a listing waits at most `timeout` seconds
    for them (a case whose link is not known in time is listed without it)."""

    def __init__(self, client: AsyncWebClient, *, timeout: float = 1.5, size: int = 5000) -> None:
        self.client = client
        self.timeout = timeout
        self.size = size
        self._known: dict[tuple[str, str], str] = {}

    async def of(self, channel: str, ts: str) -> str | None:
        """The permalink of one message, or None when Slack does not give it."""
        key = (channel, ts)
        if key in self._known:
            return self._known[key]
        try:
            resp = await self.client.chat_getPermalink(channel=channel, message_ts=ts)
        except SLACK_FAILURES as e:
            logger.info("no permalink (%s)", type(e).__name__)
            return None
        link = str(resp.get("permalink") or "")
        if not link:
            return None
        if len(self._known) >= self.size:
            self._known.clear()
        self._known[key] = link
        return link

    async def for_cases(self, lines: Iterable[CaseLine]) -> dict[str, str]:
        """case_ref → permalink of its root, for the cases whose root is in Slack."""
        wanted = [
            (line.ref, line.root_channel, line.root_ts)
            for line in lines
            if line.root_ts and line.root_channel
        ]
        tasks = {ref: asyncio.ensure_future(self.of(ch, ts)) for ref, ch, ts in wanted if ch and ts}
        if not tasks:
            return {}
        done, pending = await asyncio.wait(tasks.values(), timeout=self.timeout)
        for task in pending:
            task.cancel()
        return {ref: link for ref, task in tasks.items() if task in done and (link := task.result())}
