"""What `run` checks before it starts: a server that refuses the configuration for good stops it.

At start, a rejected Slack token (bot or app-level), a bot that is not in the staff channel, an
IMAP login refused or a folder that does not exist, an SMTP login refused, cannot heal by waiting:
`ConfigError` names the setting and the server, and `run` exits 2. A server that cannot be reached
is an outage instead (the mailbox is retried and the intake alarm tells the channel; Slack and SMTP
work waits in the outbox): it is logged and `run` starts. Each service that answered gets one
"connected" line in the log.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from urllib.parse import urlsplit

import aiohttp
from imapclient.exceptions import LoginError
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.mailbox import probe_imap
from bot.settings import Settings
from core.errors import ConfigError, MailboxError, Refused, TryLater, Unavailable, redacted
from handlers.mail_out.smtp import connect_smtp
from handlers.slack.api import error_code

__all__ = ["preflight"]

logger = logging.getLogger(__name__)

#: Slack errors that say a token will never work as it is.
_BAD_TOKEN = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "not_allowed_token_type",
    }
)
_UNREACHABLE = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


async def preflight(settings: Settings, client: AsyncWebClient) -> None:
    """Check Slack, the mailbox and the mail server once; raises `ConfigError` for a permanent
    refusal, logs and carries on for a server that cannot be reached."""
    await _slack(settings, client)
    await _imap(settings)
    if settings.smtp is not None:
        await _smtp(settings)


async def _slack(settings: Settings, client: AsyncWebClient) -> None:
    host = urlsplit(settings.slack.api_url).hostname or settings.slack.api_url
    try:
        auth = await client.auth_test()
    except SlackApiError as e:
        if error_code(e) in _BAD_TOKEN:
            raise ConfigError(
                "SLACK_BOT_TOKEN", f"Slack ({host}) refused the bot token: {error_code(e)}"
            ) from None
        logger.warning(
            "Slack (%s) answered auth.test with %s at start: going on", host, error_code(e) or "an error"
        )
        return
    except _UNREACHABLE as e:
        logger.warning(
            "Slack (%s) cannot be reached at start (%s): messages wait in the outbox", host, redacted(e)
        )
        return
    bot = str(auth.get("user") or "the bot")
    channel = settings.slack.channel_id
    try:
        info = await client.conversations_info(channel=channel)
    except SlackApiError as e:
        if error_code(e) in ("channel_not_found", "missing_scope"):
            raise ConfigError(
                "SLACK_CHANNEL_ID",
                f"Slack ({host}) shows the bot no channel {channel} ({error_code(e)}): check the id, and invite "
                f"the bot to it (/invite @{bot}) — a private channel is invisible until then",
            ) from None
        logger.warning(
            "Slack (%s) answered conversations.info with %s at start: going on", host, error_code(e)
        )
    except _UNREACHABLE:
        return
    else:
        if not (info.get("channel") or {}).get("is_member", True):
            raise ConfigError(
                "SLACK_CHANNEL_ID",
                f"the bot is not a member of {channel} on Slack ({host}): /invite @{bot} there",
            )
    if settings.slack.mode == "socket" and settings.slack.app_token is not None:
        app = AsyncWebClient(base_url=settings.slack.api_url, timeout=30)
        try:
            await app.apps_connections_open(app_token=settings.slack.app_token.reveal())
        except SlackApiError as e:
            if error_code(e) in _BAD_TOKEN:
                raise ConfigError(
                    "SLACK_APP_TOKEN",
                    f"Slack ({host}) refused the app-level token: {error_code(e)} (it needs connections:write)",
                ) from None
        except _UNREACHABLE:
            pass
    logger.info("Slack: connected to %s as %s, channel %s (%s mode)", auth.get("team") or host, bot, channel,
                settings.slack.mode)  # fmt: skip


async def _imap(settings: Settings) -> None:
    imap = settings.imap
    server = f"{imap.host}:{imap.port}"
    try:
        how = await asyncio.to_thread(probe_imap, imap)
    except LoginError:
        credentials = (
            "IMAP_PASSWORD (an OAuth2 access token: is it fresh?)"
            if imap.auth == "oauth2"
            else "IMAP_PASSWORD"
        )
        raise ConfigError(
            "IMAP_PASSWORD",
            f"the IMAP server {server} refused the login of IMAP_USERNAME: check it and {credentials}",
        ) from None
    except MailboxError:
        raise ConfigError("IMAP_FOLDER", f"the IMAP server {server} has no folder {imap.folder!r}") from None
    except ssl.SSLCertVerificationError as e:
        raise ConfigError(
            "IMAP_TLS",
            f"TLS to {server} failed: the server's certificate is not trusted ({e.verify_message})",
        ) from None
    except ssl.SSLError as e:
        raise ConfigError(
            "IMAP_TLS",
            f"TLS to {server} failed ({e.reason or 'handshake'}): is IMAP_TLS={imap.tls} right for that port?",
        ) from None
    except Exception as e:  # unreachable, timed out, a server error: an outage, retried by the watcher
        logger.warning(
            "IMAP (%s) cannot be reached at start (%s): retrying; the channel is told after %d minutes",
            server, redacted(e), settings.imap_alert_minutes,
        )  # fmt: skip
        return
    logger.info("IMAP: connected to %s, folder %s (%s)", server, imap.folder, how)


async def _smtp(settings: Settings) -> None:
    smtp = settings.smtp
    assert smtp is not None
    server = f"{smtp.host}:{smtp.port}"

    def probe() -> None:
        with connect_smtp(smtp, timeout=15.0):
            pass

    try:
        await asyncio.to_thread(probe)
    except smtplib.SMTPAuthenticationError as e:
        raise ConfigError(
            "SMTP_PASSWORD", f"the mail server {server} refused the login of SMTP_USERNAME ({e.smtp_code})"
        ) from None
    except (Refused, TryLater, Unavailable, smtplib.SMTPException, OSError) as e:
        logger.warning(
            "SMTP (%s) cannot be reached at start (%s): emails wait in the outbox", server, redacted(e)
        )
        return
    logger.info("SMTP: connected to %s (%s)%s", server, smtp.tls, ", logged in" if smtp.username else "")
