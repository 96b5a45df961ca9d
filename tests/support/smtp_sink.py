"""An SMTP server in the test process (aiosmtpd), that records what it is given."""

from __future__ import annotations

import email
import email.policy
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.dovecot import free_port


class Sink:
    """An SMTP server in the test process: refuses recipients in `refuse` with 550, turns those in
    `later` away with 451, and (like aiosmtpd by default) offers no SMTPUTF8 unless `utf8`."""

    def __init__(self, *, utf8: bool = False) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.recipients: list[list[str]] = []  # the envelope recipients of each message, in order
        self.refuse: set[str] = set()
        self.later: set[str] = set()
        self.utf8 = utf8
        self.port = free_port()
        self.controller = self._controller()

    def _controller(self) -> Controller:
        return Controller(self, hostname="127.0.0.1", port=self.port, enable_SMTPUTF8=self.utf8)

    def restart(self) -> None:
        """Start again on the same port after `controller.stop()` (a stopped Controller cannot restart)."""
        self.controller = self._controller()
        self.controller.start()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such user"
        if address in self.later:
            return "451 4.7.1 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.recipients.append(list(envelope.rcpt_tos))
        content = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
        self.messages.append(email.message_from_bytes(content, policy=email.policy.default))
        return "250 Message accepted"
