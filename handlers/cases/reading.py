"""Reading an email before it is taken in: parse it, classify it, check its sender, and strip the
content of its attachments from what will be stored.

This is the CPU half of intake (a few milliseconds a message, and pathological mail can stretch
it), kept apart from storage so that it can run anywhere: in a thread, or in a process of its own
while the event loop stores the previous batch (bot/reader.py). It imports nothing of storage or
Slack, so such a process stays small, and what it returns pickles.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from handlers.classify.classifier import Classification, classify
from handlers.mail_in.parsing import InboundEmail, parse_email, strip_attachments
from handlers.mail_in.sender_check import SenderCheck, check_sender

__all__ = ["Read", "read", "read_all"]


@dataclass(frozen=True, slots=True)
class Read:
    """What reading one raw message found. `stripped` is the message to store when it had
    attachments (without their content), None when it is stored as it came."""

    email: InboundEmail
    verdict: Classification
    sender: SenderCheck
    stripped: bytes | None = None

    def kept(self, raw: bytes) -> bytes:
        """The bytes to store of the message `raw` this was read from."""
        return raw if self.stripped is None else self.stripped


def read(raw: bytes, authserv_id: str | None, own_domain: str) -> Read:
    """Read one message; `authserv_id` is our mail server's (for its Authentication-Results),
    `own_domain` the privacy address's."""
    email = parse_email(raw)
    stripped = strip_attachments(raw) if email.attachments else None  # none: no second parse
    return Read(email, classify(email), check_sender(email, authserv_id, own_domain=own_domain), stripped)


def read_all(raws: Sequence[bytes], authserv_id: str | None, own_domain: str) -> list[Read]:
    """`read` for each message of a batch, in order."""
    return [read(raw, authserv_id, own_domain) for raw in raws]
