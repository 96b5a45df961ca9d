"""Who may act on cases: `SLACK_STAFF_USER_IDS`, or else the members of the staff channel — never
the bot itself (it is a member of the channel, but not a person who can take a case)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from slack_sdk.web.async_client import AsyncWebClient

from handlers.slack.api import SLACK_FAILURES

__all__ = ["StaffDirectory"]

logger = logging.getLogger(__name__)


class StaffDirectory:
    """Answers "is this user staff?". A fixed list wins; otherwise the staff channel's members
    are looked up (all pages) and cached for `ttl` seconds. When Slack cannot be asked and nothing
    is cached, nobody is staff: the check fails closed."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        channel: str,
        fixed: tuple[str, ...] = (),
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.channel = channel
        self.fixed = frozenset(fixed)
        self.ttl = ttl
        self.clock = clock
        self._members: frozenset[str] | None = None
        self._fetched_at = 0.0
        self._bot_user: str | None = None

    async def members(self) -> frozenset[str]:
        """The staff user ids (cached)."""
        if self.fixed:
            return self.fixed - {await self._bot()}
        if self._members is None or self.clock() - self._fetched_at > self.ttl:
            try:
                self._members = await self._fetch() - {await self._bot()}
                self._fetched_at = self.clock()
            except SLACK_FAILURES as e:  # keep a stale list if we have one, else fail closed
                if self._members is None:
                    logger.warning("cannot look up the staff channel's members (%s)", type(e).__name__)
                    return frozenset()
        return self._members

    async def is_staff(self, user_id: str) -> bool:
        """Whether `user_id` may act on cases."""
        return bool(user_id) and user_id in await self.members()

    async def _bot(self) -> str:
        """The bot's own user id (`auth.test`, asked once it answers); "" until Slack can tell."""
        if self._bot_user is None:
            try:
                resp = await self.client.auth_test()
            except SLACK_FAILURES:
                return ""
            self._bot_user = str(resp.get("user_id") or "")
        return self._bot_user

    async def _fetch(self) -> frozenset[str]:
        members: set[str] = set()
        cursor = None
        for _ in range(100):
            resp = await self.client.conversations_members(channel=self.channel, limit=1000, cursor=cursor)
            members.update(resp.get("members") or [])
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                break
        return frozenset(members)
