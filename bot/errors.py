"""The exceptions Privacy Desk raises on purpose.

    PrivacyDeskError
    ├── ConfigError            a setting is missing or malformed (exit status 2, names the setting)
    ├── StorageError           the database cannot be used as expected
    │   └── TransitionError    a case change that its current state does not allow
    └── MailboxError           the mailbox cannot be reached or used (the watcher retries)

Slack failures surface as slack-sdk's `SlackApiError` (caught by `e.response["error"]`), IMAP
failures as imapclient's `IMAPClientError` / `OSError`; they are not wrapped.
"""

from __future__ import annotations

import asyncio

import aiohttp
from slack_sdk.errors import SlackApiError

#: What a Slack Web API call can raise once slack-sdk's retry handlers have given up.
SLACK_FAILURES: tuple[type[BaseException], ...] = (
    SlackApiError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    OSError,
)


class PrivacyDeskError(Exception):
    """Base class of the errors below."""


class ConfigError(PrivacyDeskError):
    """A setting is missing or malformed; `setting` names it."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


class StorageError(PrivacyDeskError):
    """The database is not usable as expected (wrong schema version, not writable...)."""


class TransitionError(StorageError):
    """A change that the case's current state does not allow (e.g. resolving a resolved case).

    The message is written for staff; `field` names the modal input it concerns, if any.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class MailboxError(PrivacyDeskError):
    """The mailbox cannot be used (folder missing, login refused...)."""


def redacted(error: BaseException) -> str:
    """An exception's type and stack, without its message (messages can quote email content
    or personal data, which must not reach the logs)."""
    import traceback

    stack = "".join(traceback.format_tb(error.__traceback__)).rstrip()
    return f"{type(error).__module__}.{type(error).__qualname__} (message withheld)\n{stack}"
