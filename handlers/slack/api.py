"""What a Slack Web API call can fail with, and what that means for the outbox.

slack-sdk's retry handlers (configured once on the client) retry 5xx and connection errors first,
and 429s too on the client that answers people (the outbox's own client leaves 429s to the outbox,
which pauses the channel: `bot.outbox`); what reaches us afterwards is translated by error code
and status, never by matching message text.
"""

from __future__ import annotations

import asyncio

import aiohttp
from slack_sdk.errors import SlackApiError

from core.errors import DeliveryError, RateLimited, Refused, Unavailable

__all__ = ["BAD_MESSAGE", "CHANNEL", "GONE", "SLACK_FAILURES", "as_delivery_error", "error_code"]

#: What a Slack Web API call can raise once slack-sdk's retry handlers have given up.
SLACK_FAILURES: tuple[type[BaseException], ...] = (
    SlackApiError,
    aiohttp.ClientError,
    asyncio.TimeoutError,
    OSError,
)

#: Slack errors that say our message was malformed: retrying it unchanged cannot help.
BAD_MESSAGE = frozenset(
    {
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "msg_blocks_too_long",
        "invalid_metadata_format",
        "invalid_metadata_schema",
        "metadata_too_large",
        "invalid_arguments",
        "too_many_attachments",
        "no_text",
    }
)
#: Errors that mean the message to update, or the thread to reply in, is gone (deleted in Slack,
#: locked, or too old to edit): about that one message, not about Slack.
GONE = frozenset(
    {
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "thread_not_found",
        "cannot_reply_to_message",
        "restricted_action_thread_locked",
    }
)
#: Errors about a channel: an outage of ours when it is the staff channel (everything waits until
#: someone fixes it), that message's own problem when it is another (a thread in an old channel).
CHANNEL = frozenset({"channel_not_found", "is_archived", "not_in_channel"})


def error_code(error: BaseException) -> str:
    """Slack's error code of a failed call ("" when it is not a Slack API error)."""
    if not isinstance(error, SlackApiError):
        return ""
    try:
        return str(error.response.get("error") or "")
    except Exception:  # a response that is not JSON
        return ""


def as_delivery_error(error: BaseException, *, own_channel: bool = True) -> DeliveryError:
    """What a Slack failure means for a message of the outbox: refused for good when Slack says the
    message itself is wrong or its thread is gone (or its channel, when that is not the staff
    channel); rate limited (429) with Slack's `Retry-After` (1 s when it gives none); otherwise
    Slack is unavailable (down, or refusing every message: a revoked token, the bot removed from
    the channel) and everything waits."""
    code = error_code(error)
    if code in BAD_MESSAGE or code in GONE or (code in CHANNEL and not own_channel):
        return Refused(f"Slack refused the message ({code})")
    retry_after = None
    if isinstance(error, SlackApiError):
        try:
            retry_after = float(error.response.headers.get("Retry-After") or 0) or None
        except (TypeError, ValueError, AttributeError):
            retry_after = None
        if getattr(error.response, "status_code", None) == 429 or code == "ratelimited":
            return RateLimited("Slack: ratelimited", retry_after=retry_after or 1.0)
    return Unavailable(f"Slack: {code or type(error).__name__}", retry_after=retry_after)
