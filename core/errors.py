"""The exceptions Privacy Desk raises on purpose.

    PrivacyDeskError
    ├── ConfigError            a setting is missing or malformed (exit status 2, names the setting)
    ├── StorageError           the database cannot be used as expected (the caller retries later)
    ├── TransitionError        a change that the case's current state does not allow (a business
    │                          refusal, told to the person who asked; never retried)
    ├── MailboxError           the mailbox cannot be used (folder missing...; the watcher retries)
    └── DeliveryError          something the bot sends could not be delivered
        ├── Unavailable        the destination (Slack, the mail server) cannot be reached: every
        │                      message to it waits, with backoff
        ├── RateLimited        Slack asks us to slow down (429) in the channel the message goes
        │                      to: that channel waits `Retry-After`, then is paced
        ├── TryLater           this one message was turned away for now (an SMTP 4xx): it alone
        │                      is retried later, with backoff
        └── Refused            this message was refused for good (an SMTP 5xx, no SMTPUTF8, a
                               malformed recipient): not retried; staff are told in the thread

Slack failures surface as slack-sdk's `SlackApiError` (caught by `e.response["error"]`), IMAP
failures as imapclient's `IMAPClientError` / `OSError`; the Slack and SMTP senders translate them
into `DeliveryError`s for the outbox.
"""

from __future__ import annotations

import errno
import sqlite3
import traceback

__all__ = [
    "ConfigError",
    "ConfigErrors",
    "DeliveryError",
    "MailboxError",
    "PrivacyDeskError",
    "RateLimited",
    "Refused",
    "StorageError",
    "TransitionError",
    "TryLater",
    "Unavailable",
    "redacted",
    "unwritable_storage",
]


class PrivacyDeskError(Exception):
    """Base class of the errors below."""


class ConfigError(PrivacyDeskError):
    """A setting is missing or malformed; `setting` names it."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


class ConfigErrors(ConfigError):
    """Every problem of a configuration at once (`errors`); `setting` names the first."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__(errors[0].setting, errors[0].problem)
        self.errors = list(errors)

    def __str__(self) -> str:
        return "\n".join(str(ConfigError(e.setting, e.problem)) for e in self.errors)


class StorageError(PrivacyDeskError):
    """The database is not usable as expected (wrong schema version, not writable...)."""


class TransitionError(PrivacyDeskError):
    """A change that the case's current state does not allow (e.g. resolving a resolved case).

    The message is written for staff; `field` names the modal input it concerns, if any.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class MailboxError(PrivacyDeskError):
    """The mailbox cannot be used (folder missing, login refused...)."""


class DeliveryError(PrivacyDeskError):
    """A message of the outbox was not delivered; `reason` is short, for staff and the log
    (never the message's content)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unavailable(DeliveryError):
    """The destination cannot be reached now; `retry_after` is its own hint, in seconds, if any."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class RateLimited(DeliveryError):
    """Slack answered 429: it did not carry out the call, and asks that nothing more be sent the
    same way for `retry_after` seconds."""

    def __init__(self, reason: str, *, retry_after: float) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class TryLater(DeliveryError):
    """This message was turned away for now (the destination itself is fine)."""


class Refused(DeliveryError):
    """This message was refused for good."""


def redacted(error: BaseException) -> str:
    """An exception's type and stack, without its message (messages can quote email content
    or personal data, which must not reach the logs)."""
    stack = "".join(traceback.format_tb(error.__traceback__)).rstrip()
    return f"{type(error).__module__}.{type(error).__qualname__} (message withheld)\n{stack}"


#: SQLite's primary result codes that mean the database file cannot be written at all, as opposed
#: to a lock held a moment too long (SQLITE_BUSY), which the next attempt gets past
_UNWRITABLE = {
    sqlite3.SQLITE_FULL: "the disk that holds the bot's database is full",
    sqlite3.SQLITE_IOERR: "the bot's database file cannot be written (a disk error)",
    sqlite3.SQLITE_READONLY: "the bot's database file has become read-only",
    sqlite3.SQLITE_CANTOPEN: "the bot's database file cannot be opened",
}


def unwritable_storage(error: BaseException) -> str | None:
    """Why the database cannot be written, in plain words, when `error` says it cannot (a full
    disk, a read-only or failing file); None for any other error."""
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        return _UNWRITABLE.get(code & 0xFF) if isinstance(code, int) else None
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return _UNWRITABLE[sqlite3.SQLITE_FULL]
    return None
