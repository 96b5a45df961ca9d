"""Delivering the outbox's emails by SMTP, and what follows from it in the case.

smtplib is blocking, so each message is sent in a worker thread, to exactly the recipient stored
(`to_addrs` is given explicitly: a quoted local part cannot turn into another address). How the
server answered decides what happens next:

- it cannot be reached, or says it is unavailable (421) → `Unavailable`: every email waits;
- it turns this message away for now (another 4xx) → `TryLater`: it alone waits, with backoff;
- it refuses it (5xx), or cannot take it at all (no SMTPUTF8 for an address that needs it) →
  `Refused`: not retried; the thread says so.

The thread's note about the email says "sent" only once the server accepted it.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from email.message import EmailMessage
from typing import Protocol

from core.errors import Refused, TryLater, Unavailable
from handlers.mail_out.compose import build_message, recipient
from storage.models import OutboxRow
from storage.outbox import Delivered
from storage.store import Store, Tx

__all__ = ["SmtpSender", "SmtpServer", "connect_smtp"]

logger = logging.getLogger(__name__)


class _Secret(Protocol):
    def reveal(self) -> str: ...


class SmtpServer(Protocol):
    """Where to send: the SMTP_* settings."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def tls(self) -> str: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> _Secret | None: ...


class SmtpSender:
    """Sends the outbox's emails through one SMTP server."""

    destination = "smtp"
    #: an email cannot be looked for at the server: its delivery is recorded durably
    finds_deliveries = False
    kinds = frozenset({"email"})

    def __init__(self, store: Store, server: SmtpServer, *, mail_from: str, timeout: float = 30.0) -> None:
        self.store = store
        self.server = server
        self.mail_from = mail_from
        self.timeout = timeout

    async def send(self, row: OutboxRow) -> Delivered:
        """Send the row's email; raises `Unavailable`, `TryLater` or `Refused`."""
        assert row.outbound_id is not None and row.case_id is not None
        outbound = await self.store.mail.outbound(row.outbound_id)
        case = await self.store.cases.get(row.case_id)
        if outbound is None or case is None:
            raise Refused("the email or its case no longer exists")
        message = build_message(
            outbound, mail_from=self.mail_from, case_ref=case.ref, to_name=case.requester_name
        )
        await asyncio.to_thread(self._deliver, message, recipient(outbound.to_addr))
        logger.info("case %s: email accepted by the mail server", case.ref)
        return Delivered(outbound.message_id)

    def lane(self, row: OutboxRow) -> str:
        """Every email goes through the one server."""
        return self.destination

    async def sent(self, tx: Tx, row: OutboxRow, delivered: Delivered) -> None:
        """Record that the server accepted it, and let the thread's note say "sent"."""
        await self._settled(tx, row, "reply.sent", {})

    async def refused(self, tx: Tx, row: OutboxRow, reason: str) -> None:
        """Record the refusal, tell the thread, and let the note about the email say so."""
        event_id = await self._settled(tx, row, "reply.failed", {"error": reason[:200]})
        if row.case_id is not None:
            await tx.outbox.post_note(row.case_id, event_id)
        logger.warning("outbox row %d: email refused for good (%s)", row.id, reason)

    async def _settled(self, tx: Tx, row: OutboxRow, action: str, after: dict[str, object]) -> int:
        event_id = await tx.audit.append(
            case_id=row.case_id,
            actor="system",
            action=action,
            after=after or None,
            outbound_id=row.outbound_id,
        )
        for event in await tx.audit.of_outbound(row.outbound_id or 0):
            if event.action in ("case.replied", "case.acknowledged"):
                await tx.outbox.update_note(event.id)
        return event_id

    def _deliver(self, message: EmailMessage, to: str) -> None:
        """Send one message (blocking; runs in a worker thread)."""
        try:
            smtp = self.connect()
        except smtplib.SMTPAuthenticationError as e:
            raise Unavailable(f"SMTP login refused ({e.smtp_code})") from None
        except (smtplib.SMTPException, OSError) as e:  # unreachable, no STARTTLS or AUTH offered, TLS failed
            raise Unavailable(f"SMTP: {type(e).__name__}") from None
        with smtp:
            try:
                refused = smtp.send_message(message, from_addr=self.mail_from, to_addrs=[to])
            except smtplib.SMTPNotSupportedError:
                raise Refused("the mail server does not support SMTPUTF8, which this address needs") from None
            except smtplib.SMTPRecipientsRefused as e:
                raise _by_code(next(iter(e.recipients.values()))[0], "recipient") from None
            except smtplib.SMTPSenderRefused as e:  # our MAIL_FROM: every email would be refused alike
                raise Unavailable(
                    f"SMTP {e.smtp_code}: the server refuses the sender address (MAIL_FROM)"
                ) from None
            except smtplib.SMTPDataError as e:
                raise _by_code(e.smtp_code, "message") from None
            except (smtplib.SMTPException, OSError) as e:  # disconnected mid-way
                raise Unavailable(f"SMTP: {type(e).__name__}") from None
        if refused:  # some recipients refused (there is only one)
            raise _by_code(next(iter(refused.values()))[0], "recipient")

    def connect(self) -> smtplib.SMTP:
        """A connection to the server, TLS and login done (blocking)."""
        return connect_smtp(self.server, timeout=self.timeout)


def connect_smtp(s: SmtpServer, *, timeout: float) -> smtplib.SMTP:
    """A connection to the SMTP server, TLS as SMTP_TLS says and login when SMTP_USERNAME and
    SMTP_PASSWORD are set (blocking)."""
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if s.tls == "ssl":
        smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(s.host, s.port, timeout=timeout)
    try:
        if s.tls == "starttls":
            smtp.starttls(context=context)
        if s.username and s.password:
            smtp.login(s.username, s.password.reveal())
    except BaseException:
        smtp.close()
        raise
    return smtp


def _by_code(code: int, what: str) -> Exception:
    if code == 421:
        return Unavailable("SMTP 421: the server is not available")
    if 400 <= code < 500:
        return TryLater(f"SMTP {code}: the {what} was turned away for now")
    return Refused(f"SMTP {code}")
