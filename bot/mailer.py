"""Sending the replies committed in the database, by SMTP, until stopped.

smtplib is blocking, so each message is sent in a worker thread. A reply is marked sent only after
the server accepted it; a temporary failure (the server unreachable, a 4xx) is retried with
backoff, logged once per outage; a permanent refusal (5xx for the recipient) is recorded and told
in the case thread, not retried.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage

from bot.backoff import Backoff, Outage, sleep_until
from bot.settings import SmtpSettings
from handlers.outgoing import build_message
from handlers.render import escape_mrkdwn
from storage.models import OutboundEmail
from storage.store import Store

__all__ = ["Mailer"]

logger = logging.getLogger(__name__)


class PermanentRefusal(Exception):
    """The server refused the message for good (5xx); `code` is the SMTP code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"SMTP {code}")
        self.code = code


class Mailer:
    """Sends pending replies; `notify()` after committing one."""

    def __init__(
        self,
        store: Store,
        settings: SmtpSettings,
        *,
        mail_from: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_sent: Callable[[], None] = lambda: None,
        backoff: Backoff | None = None,
        idle_interval: float = 60.0,
    ) -> None:
        self.store = store
        self.settings = settings
        self.mail_from = mail_from
        self.clock = clock
        self.on_sent = on_sent
        self.backoff = backoff or Backoff(base=2.0, cap=300.0)
        self.idle_interval = idle_interval
        self.outage = Outage("SMTP server", logger)
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """Ask for a sending round soon."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Send until `stop` is set; failures wait with backoff and are retried, never dropped."""
        while not stop.is_set():
            self._wake.clear()
            try:
                sent = await self.send_pending()
            except (smtplib.SMTPException, OSError) as e:
                self.outage.failed(e)
                await sleep_until(stop, None, self.backoff.next_delay())
                continue
            self.outage.recovered()
            self.backoff.reset()
            if not sent:
                await sleep_until(stop, self._wake, self.idle_interval)

    async def send_pending(self) -> bool:
        """Send every pending reply once; returns whether any was handled."""
        pending = await self.store.outbound_to_send()
        for outbound in pending:
            await self._send_one(outbound)
        return bool(pending)

    async def _send_one(self, outbound: OutboundEmail) -> None:
        case = await self.store.case(case_id=outbound.case_id)
        assert case is not None
        message = build_message(outbound, mail_from=self.mail_from, case_ref=case.ref)
        try:
            await asyncio.to_thread(self._deliver, message)
        except PermanentRefusal as e:
            await self.store.mark_send_attempt(outbound.id, at=self.clock(), error=str(e))
            async with self.store.transaction(now=self.clock()) as tx:
                await tx.mark_outbound(outbound.id, sent=False, error=str(e))
                await tx.add_note(
                    case.id,
                    (
                        f":warning: The reply to the requester could not be delivered: the mail server refused it "
                        f"({escape_mrkdwn(str(e))}). Check the address and answer another way."
                    ),
                )
            logger.warning("case %s: reply refused by the mail server (%s)", case.ref, e)
            self.on_sent()
            return
        except (smtplib.SMTPException, OSError) as e:
            await self.store.mark_send_attempt(outbound.id, at=self.clock(), error=type(e).__name__)
            raise
        async with self.store.transaction(now=self.clock()) as tx:
            await tx.mark_outbound(outbound.id, sent=True)
        logger.info("case %s: reply sent", case.ref)
        self.on_sent()

    def _deliver(self, message: EmailMessage) -> None:
        """Send one message (blocking; runs in a worker thread)."""
        s = self.settings
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if s.tls == "ssl":
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=60, context=context)
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=60)
        with smtp:
            if s.tls == "starttls":
                smtp.starttls(context=context)
            if s.username and s.password:
                smtp.login(s.username, s.password.reveal())
            try:
                refused = smtp.send_message(message)
            except smtplib.SMTPRecipientsRefused as e:
                codes = [code for code, _ in e.recipients.values()]
                if all(500 <= code < 600 for code in codes):
                    raise PermanentRefusal(codes[0]) from None
                raise
            except smtplib.SMTPDataError as e:
                if 500 <= e.smtp_code < 600:
                    raise PermanentRefusal(e.smtp_code) from None
                raise
            if refused:  # some recipients refused (there is only one)
                code = next(iter(refused.values()))[0]
                raise PermanentRefusal(code)
