"""`privacy-desk check`: the settings tried against the real servers, one line per check.

Each line is `status area what` — status `ok`, `problem` or `skipped` — and a problem says what to
do, naming the setting. The areas (IMAP, Slack, SMTP, the database) are checked at the same time,
each network step bounded by `TIMEOUT` seconds, and printed in a fixed order; one area failing does
not stop the others. Nothing is changed: the folder is opened read-only, no mail is sent, the
Socket Mode websocket is not opened, and the database is opened read-only, never created or
migrated. No token or password is printed, nor any part of one.

Exit status: 0 when every check is ok or skipped, 1 when one found a problem; a malformed setting
raises `ConfigError` out of `run_check` (exit status 2, from the CLI).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import smtplib
import sqlite3
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.mailbox import connect_imap
from bot.settings import ImapSettings, Settings, SlackSettings, SmtpSettings
from core.errors import redacted
from handlers.mail_out.smtp import connect_smtp
from handlers.mail_out.templates import BUNDLED_DIR, LANGUAGES, TEMPLATE_NAMES
from storage.migrations import LATEST

__all__ = [
    "MANIFEST_SCOPES",
    "TIMEOUT",
    "Line",
    "check",
    "check_database",
    "check_imap",
    "check_slack",
    "check_smtp",
    "run_check",
    "scopes_line",
    "templates_line",
]

logger = logging.getLogger(__name__)

TIMEOUT = 10  # seconds, for each network step (the IMAP connection itself: 15, as `run` has it)

#: The bot token scopes manifest.yaml asks for (tests/test_check.py keeps the two alike; the
#: installed package has no manifest).
MANIFEST_SCOPES = (
    "chat:write",
    "commands",
    "channels:history",
    "groups:history",
    "channels:read",
    "groups:read",
    "im:write",
    "im:history",
)

Status = Literal["ok", "problem", "skipped"]

_REFUSED_TOKEN = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)


@dataclass(frozen=True)
class Line:
    """One check's outcome, printed as `status  area  text`."""

    status: Status
    area: str
    text: str

    def __str__(self) -> str:
        return f"{self.status:<8} {self.area:<9} {self.text}"


def run_check(environ: Mapping[str, str]) -> int:
    """Check the settings in `environ` against the servers, printing one line per check; returns 0
    when all is well, 1 when a check found a problem. A malformed setting raises `ConfigError`."""
    settings = Settings.from_env(environ)
    lines: list[Line] = []

    def emit(line: Line) -> None:
        lines.append(line)
        print(line, flush=True)

    asyncio.run(check(settings, emit=emit))
    return 1 if any(line.status == "problem" for line in lines) else 0


async def check(settings: Settings, *, emit: Callable[[Line], None]) -> None:
    """Every check, in order: settings, IMAP, Slack, SMTP, database, templates. The areas run at
    once; `emit` gets each area's lines as soon as the areas before it are done."""
    mode = "Socket Mode" if settings.slack.mode == "socket" else f"HTTP mode on port {settings.slack.port}"
    emit(Line("ok", "Settings", f"every setting is well-formed ({mode})"))
    areas = [
        ("IMAP", asyncio.to_thread(check_imap, settings.imap)),
        ("Slack", check_slack(settings.slack)),
        ("SMTP", asyncio.to_thread(check_smtp, settings.smtp)),
        ("Database", asyncio.to_thread(check_database, settings.database_path)),
    ]
    tasks = [asyncio.ensure_future(_guarded(area, lines)) for area, lines in areas]
    for task in tasks:
        for line in await task:
            emit(line)
    emit(templates_line(settings))


async def _guarded(area: str, lines: Awaitable[list[Line]]) -> list[Line]:
    # The check's error boundary: an area failing in a way not foreseen below must not hide what
    # the other areas found. Its message is withheld (it could quote a server's answer).
    try:
        return await lines
    except Exception as e:
        logger.error("the %s check failed: %s", area, redacted(e))
        return [Line("problem", area, f"the check itself failed ({type(e).__name__}): please report it")]


# --- IMAP -----------------------------------------------------------------------------------------


def check_imap(imap: ImapSettings) -> list[Line]:
    """Reachable, TLS, login, the folder (opened read-only) and IDLE (blocking)."""
    where = f"{imap.host}:{imap.port}"
    secrets = (imap.password.reveal(),)
    not_checked = Line("skipped", "IMAP", "folder and IDLE not checked (no session)")
    try:
        client = connect_imap(dataclasses.replace(imap, timeout_seconds=TIMEOUT))
    except LoginError as e:
        if imap.auth == "oauth2":
            advice = (
                "the access token in IMAP_PASSWORD may have expired: put a fresh one there, "
                "and check IMAP_USERNAME"
            )
        else:
            advice = "check IMAP_USERNAME and IMAP_PASSWORD (or IMAP_AUTH=oauth2 and a fresh access token)"
        refused = Line("problem", "IMAP", f"login refused for {imap.username}{_said(e, secrets)}: {advice}")
        return [_imap_reached(imap), refused, not_checked]
    except ssl.SSLError as e:
        return [
            Line(
                "problem",
                "IMAP",
                f"{where} reachable, but TLS ({imap.tls}) failed ({_tls_reason(e)}): check IMAP_TLS and "
                "IMAP_PORT (ssl is usually port 993, starttls 143) and the server's certificate",
            ),
            Line("skipped", "IMAP", "login, folder and IDLE not checked"),
        ]
    except IMAPClientError as e:  # STARTTLS not offered, or an unexpected greeting
        return [
            Line(
                "problem",
                "IMAP",
                f"{where} reachable, but no IMAP session could start{_said(e, secrets)}: check IMAP_TLS "
                "(ssl, starttls or none) and IMAP_PORT",
            ),
            Line("skipped", "IMAP", "login, folder and IDLE not checked"),
        ]
    except OSError as e:
        return [
            Line(
                "problem",
                "IMAP",
                f"{where} cannot be reached ({_os_reason(e)}): check IMAP_HOST and IMAP_PORT "
                "(and IMAP_TLS: ssl is usually port 993, starttls 143)",
            ),
            Line("skipped", "IMAP", "TLS, login, folder and IDLE not checked"),
        ]
    try:
        mechanism = "XOAUTH2" if imap.auth == "oauth2" else "password"
        lines = [_imap_reached(imap), Line("ok", "IMAP", f"login as {imap.username} accepted ({mechanism})")]
        return lines + _folder_and_idle(client, imap)
    finally:
        with contextlib.suppress(IMAPClientError, OSError):
            client.logout()


def _imap_reached(imap: ImapSettings) -> Line:
    tls = "no TLS (IMAP_TLS=none, loopback)" if imap.tls == "none" else f"TLS ({imap.tls}) ok"
    return Line("ok", "IMAP", f"{imap.host}:{imap.port} reachable, {tls}")


def _folder_and_idle(client: IMAPClient, imap: ImapSettings) -> list[Line]:
    try:
        info = client.select_folder(imap.folder, readonly=True)
    except IMAPClientError as e:
        there = _folder_names(client)
        return [
            Line(
                "problem",
                "IMAP",
                f"folder {imap.folder!r} cannot be opened{_said(e, ())}: check IMAP_FOLDER"
                + (f" (the folders there: {there})" if there else ""),
            ),
            Line("skipped", "IMAP", "IDLE not checked"),
        ]
    count = int(info.get(b"EXISTS") or 0)
    lines = [Line("ok", "IMAP", f"folder {imap.folder} opened read-only ({count} message(s))")]
    if client.has_capability("IDLE"):
        lines.append(Line("ok", "IMAP", "IDLE offered: new mail is taken in as it arrives"))
    else:
        lines.append(
            Line(
                "ok",
                "IMAP",
                f"IDLE not offered: polling every {imap.poll_seconds} s (IMAP_POLL_SECONDS) will be used",
            )
        )
    return lines


def _folder_names(client: IMAPClient, most: int = 10) -> str:
    try:
        names = sorted(str(name) for _flags, _delimiter, name in client.list_folders())
    except (IMAPClientError, OSError):
        return ""
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


# --- Slack ----------------------------------------------------------------------------------------


async def check_slack(slack: SlackSettings) -> list[Line]:
    """auth.test, the bot token's scopes, the bot's membership of the channel, and the app-level
    token (Socket Mode) or the signing secret (HTTP mode)."""
    bot = AsyncWebClient(token=slack.bot_token.reveal(), base_url=slack.api_url, timeout=TIMEOUT)
    try:
        auth = await bot.auth_test()
    except SlackApiError as e:
        code = _slack_error(e)
        if code in _REFUSED_TOKEN:
            refused = (
                f"auth.test: the bot token is refused ({code}): check SLACK_BOT_TOKEN (the Bot User "
                "OAuth Token, xoxb-…, on the app's OAuth & Permissions page)"
            )
        else:  # not an answer about the token: about the server itself
            return [
                Line("problem", "Slack", f"auth.test failed ({_answer(e)}): {_api_url_advice(slack)}"),
                Line("skipped", "Slack", "scopes, channel membership and the Socket Mode token not checked"),
            ]
        lines = [
            Line("problem", "Slack", refused),
            Line("skipped", "Slack", "scopes and channel membership not checked (no bot identity)"),
        ]
    except (aiohttp.ClientError, TimeoutError) as e:
        return [
            Line(
                "problem",
                "Slack",
                f"{slack.api_url} cannot be reached ({_os_reason(e)}): {_api_url_advice(slack)}",
            ),
            Line("skipped", "Slack", "scopes, channel membership and the Socket Mode token not checked"),
        ]
    else:
        team = auth.get("team") or auth.get("team_id")
        lines = [
            Line(
                "ok", "Slack", f"auth.test: bot token accepted, bot @{auth.get('user')} in workspace {team}"
            ),
            scopes_line(_header(auth.headers, "x-oauth-scopes")),
            await _membership(bot, slack, bot_name=str(auth.get("user") or "privacy-desk")),
        ]
    lines.append(await _connection(slack))
    return lines


def scopes_line(granted: str | None) -> Line:
    """The bot token's scopes (Slack's `x-oauth-scopes` header, comma-separated) against
    `MANIFEST_SCOPES`: every one needed; more is fine."""
    if granted is None:
        return Line("skipped", "Slack", "scopes not checked: Slack did not say which the token has")
    have = {s.strip() for s in granted.split(",") if s.strip()}
    missing = [s for s in MANIFEST_SCOPES if s not in have]
    if missing:
        them = "it" if len(missing) == 1 else "them"
        return Line(
            "problem",
            "Slack",
            f"scopes: the bot token lacks {', '.join(missing)}: add {them} under OAuth & Permissions → "
            "Bot Token Scopes in the app's settings, then reinstall the app (SLACK_BOT_TOKEN)",
        )
    extra = sorted(have - set(MANIFEST_SCOPES))
    text = f"scopes: the bot token has all {len(MANIFEST_SCOPES)} the manifest asks for"
    return Line("ok", "Slack", text + (f", and also {', '.join(extra)} (more is fine)" if extra else ""))


async def _membership(bot: AsyncWebClient, slack: SlackSettings, *, bot_name: str) -> Line:
    channel = slack.channel_id
    invite = f"/invite @{bot_name}"
    try:
        info = (await bot.conversations_info(channel=channel))["channel"]
    except SlackApiError as e:
        code = _slack_error(e)
        if code == "channel_not_found":
            return Line(
                "problem",
                "Slack",
                f"channel {channel} not found: check SLACK_CHANNEL_ID (a private channel is only found "
                f"once the bot is in it: {invite})",
            )
        return Line(
            "problem", "Slack", f"conversations.info on SLACK_CHANNEL_ID {channel} failed ({_answer(e)})"
        )
    except (aiohttp.ClientError, TimeoutError) as e:
        return Line("problem", "Slack", f"conversations.info on {channel}: {_os_reason(e)}")
    name = f"#{info['name']} ({channel})" if info.get("name") else channel
    if info.get("is_member", info.get("is_im", False)):
        return Line("ok", "Slack", f"the bot is a member of SLACK_CHANNEL_ID {name}")
    return Line(
        "problem",
        "Slack",
        f"the bot is not a member of SLACK_CHANNEL_ID {name}: invite the bot: {invite} in that channel",
    )


async def _connection(slack: SlackSettings) -> Line:
    if slack.mode == "http":
        return Line(
            "ok",
            "Slack",
            f"HTTP mode: SLACK_SIGNING_SECRET is set (Slack must reach /slack/events on port {slack.port})",
        )
    assert slack.app_token is not None  # Settings requires it in Socket Mode
    client = AsyncWebClient(base_url=slack.api_url, timeout=TIMEOUT)
    try:
        await client.apps_connections_open(app_token=slack.app_token.reveal())
    except SlackApiError as e:
        code = _slack_error(e)
        if code in _REFUSED_TOKEN or code == "not_allowed_token_type":
            advice = "check SLACK_APP_TOKEN (the app-level token, xapp-…, under Basic Information)"
        elif code == "missing_scope":
            advice = "SLACK_APP_TOKEN needs the connections:write scope: create an app-level token with it"
        else:
            advice = "is Socket Mode enabled in the app's settings? check SLACK_APP_TOKEN"
        return Line(
            "problem", "Slack", f"Socket Mode: apps.connections.open refused ({_answer(e)}): {advice}"
        )
    except (aiohttp.ClientError, TimeoutError) as e:
        return Line("problem", "Slack", f"Socket Mode: apps.connections.open: {_os_reason(e)}")
    return Line(
        "ok", "Slack", "Socket Mode: app-level token accepted (a websocket URL was given, not opened)"
    )


def _slack_error(e: SlackApiError) -> str | None:
    data = e.response.data
    return str(data.get("error")) if isinstance(data, dict) and data.get("error") else None


def _answer(e: SlackApiError) -> str:
    code, status = _slack_error(e), e.response.status_code
    return f"{code}, HTTP {status}" if code and status != 200 else code or f"HTTP {status}"


def _api_url_advice(slack: SlackSettings) -> str:
    if slack.api_url == "https://slack.com/api/":
        return "check the network, and https://slack-status.com for an outage"
    return f"check SLACK_API_URL ({slack.api_url}: Slack's is https://slack.com/api/)"


def _header(headers: Any, name: str) -> str | None:
    """A response header, whatever the case of its name."""
    for key, value in dict(headers or {}).items():
        if str(key).lower() == name:
            return str(value)
    return None


# --- SMTP -----------------------------------------------------------------------------------------


def check_smtp(smtp: SmtpSettings | None) -> list[Line]:
    """Reachable, TLS and login, then EHLO, NOOP and QUIT: no mail is sent (blocking)."""
    if smtp is None:
        return [
            Line("skipped", "SMTP", "SMTP_HOST not set: no acknowledgements, and replies from Slack are off")
        ]
    where = f"{smtp.host}:{smtp.port}"
    if bool(smtp.username) != bool(smtp.password):
        given, absent = (
            ("SMTP_USERNAME", "SMTP_PASSWORD") if smtp.username else ("SMTP_PASSWORD", "SMTP_USERNAME")
        )
        half = Line("problem", "SMTP", f"{given} is set but {absent} is not: set both (to log in) or neither")
    else:
        half = None
    tls = "no TLS (SMTP_TLS=none, loopback)" if smtp.tls == "none" else f"TLS ({smtp.tls}) ok"
    reached = Line("ok", "SMTP", f"{where} reachable, {tls}")
    try:
        connection = connect_smtp(smtp, timeout=TIMEOUT)
        with connection:
            connection.ehlo_or_helo_if_needed()
            code, _ = connection.noop()
    except smtplib.SMTPAuthenticationError as e:
        advice = "check SMTP_USERNAME and SMTP_PASSWORD"
        lines = [
            reached,
            Line("problem", "SMTP", f"login refused for {smtp.username} ({e.smtp_code}): {advice}"),
        ]
    except smtplib.SMTPNotSupportedError:
        lacks = (
            "AUTH (SMTP_USERNAME is set)"
            if smtp.tls != "starttls"
            else "STARTTLS (SMTP_TLS=starttls)"
            if not smtp.username
            else "STARTTLS (SMTP_TLS=starttls) or AUTH (SMTP_USERNAME is set)"
        )
        lines = [
            Line(
                "problem",
                "SMTP",
                f"{where} does not offer {lacks}: check SMTP_TLS and SMTP_PORT (ssl is usually port 465, "
                "starttls 587), or leave out SMTP_USERNAME/SMTP_PASSWORD if it needs no login",
            )
        ]
    except ssl.SSLError as e:
        lines = [
            Line(
                "problem",
                "SMTP",
                f"{where} reachable, but TLS ({smtp.tls}) failed ({_tls_reason(e)}): check SMTP_TLS and "
                "SMTP_PORT (ssl is usually port 465, starttls 587) and the server's certificate",
            )
        ]
    except (smtplib.SMTPResponseException, smtplib.SMTPServerDisconnected) as e:
        answer = f" ({e.smtp_code})" if isinstance(e, smtplib.SMTPResponseException) else ""
        lines = [
            Line(
                "problem",
                "SMTP",
                f"{where} turned the session away{answer}: check SMTP_HOST, SMTP_PORT and SMTP_TLS",
            )
        ]
    except smtplib.SMTPException as e:  # e.g. no authentication method in common
        lines = [Line("problem", "SMTP", f"{where}: {type(e).__name__}: check SMTP_TLS, SMTP_USERNAME")]
    except OSError as e:
        lines = [
            Line(
                "problem",
                "SMTP",
                f"{where} cannot be reached ({_os_reason(e)}): check SMTP_HOST and SMTP_PORT",
            )
        ]
    else:
        login = (
            Line("ok", "SMTP", f"login as {smtp.username} accepted")
            if smtp.username and smtp.password
            else Line(
                "skipped", "SMTP", "no login (SMTP_USERNAME not set): the server must relay for this host"
            )
        )
        lines = [reached, login, Line("ok", "SMTP", f"EHLO and NOOP answered ({code}); nothing was sent")]
    return [*lines, *([half] if half else [])]


# --- the database and the templates ---------------------------------------------------------------


def check_database(path: Path) -> list[Line]:
    """DATABASE_PATH: writable (or creatable), mode 0600, readable as SQLite and of a schema this
    version can use; opened read-only, never created or migrated (blocking)."""
    path = path.absolute()
    if not path.exists():
        return [_creatable(path)]
    if not path.is_file():
        return [Line("problem", "Database", f"{path} is not a file: set DATABASE_PATH to the database file")]
    lines = []
    folder = path.parent
    if not os.access(path, os.W_OK):
        lines.append(
            Line(
                "problem", "Database", f"{path} is not writable by this user: fix its owner, or DATABASE_PATH"
            )
        )
    elif not os.access(folder, os.W_OK | os.X_OK):
        lines.append(
            Line(
                "problem",
                "Database",
                f"{path}: its folder is not writable (SQLite keeps its -wal and -shm files next to it): "
                "make it writable, or set DATABASE_PATH to a file in a writable folder",
            )
        )
    else:
        lines.append(Line("ok", "Database", f"{path} exists and is writable"))
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        lines.append(
            Line(
                "problem",
                "Database",
                f"mode {mode:o}: other users may read the personal data in it: chmod 600 {path}",
            )
        )
    else:
        lines.append(Line("ok", "Database", f"mode {mode:o}: only its owner can read it"))
    return lines + _contents(path)


def _creatable(path: Path) -> Line:
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # `run` creates missing folders
        folder = folder.parent
    if not folder.is_dir():
        return Line(
            "problem",
            "Database",
            f"{path} cannot be created: {folder} is a file, not a folder: set DATABASE_PATH to a file in a folder",
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        return Line(
            "problem",
            "Database",
            f"{path} cannot be created: {folder} is not writable by this user: make it writable, or set "
            "DATABASE_PATH to a file in a writable folder",
        )
    return Line("ok", "Database", f"{path} does not exist yet: the first run creates it (mode 600)")


def _contents(path: Path) -> list[Line]:
    # Read-only, SQLite still creates the -wal and -shm files of a WAL database when they are
    # absent; absent, nobody has the database open, so it is read as the file it is.
    in_use = any(path.with_name(path.name + suffix).exists() for suffix in ("-wal", "-shm"))
    query = "mode=ro" if in_use else "mode=ro&immutable=1"
    try:
        connection = sqlite3.connect(f"{path.as_uri()}?{query}", uri=True, timeout=TIMEOUT)
        try:
            version = int(connection.execute("PRAGMA user_version").fetchone()[0])
            verdict = [str(row[0]) for row in connection.execute("PRAGMA quick_check")]
        finally:
            connection.close()
    except sqlite3.Error as e:
        return [
            Line(
                "problem",
                "Database",
                f"cannot be read as an SQLite database ({e}): check DATABASE_PATH, or restore a backup",
            )
        ]
    if verdict == ["ok"]:
        lines = [Line("ok", "Database", "readable as SQLite, quick_check ok")]
    else:
        lines = [
            Line(
                "problem",
                "Database",
                f"quick_check found {len(verdict)} problem(s): restore the latest backup (privacy-desk backup)",
            )
        ]
    if version == LATEST:
        lines.append(Line("ok", "Database", f"schema version {version} (current)"))
    elif version < LATEST:
        lines.append(
            Line("ok", "Database", f"schema version {version}: will be migrated to {LATEST} at the next run")
        )
    else:
        lines.append(
            Line(
                "problem",
                "Database",
                f"schema version {version} was written by a newer privacy-desk (this one knows up to "
                f"{LATEST}): upgrade privacy-desk, or set DATABASE_PATH to another file",
            )
        )
    return lines


def templates_line(settings: Settings) -> Line:
    """Which templates are in use (`Settings.from_env` has already refused broken ones)."""
    if settings.templates_dir is None:
        return Line("ok", "Templates", "bundled templates, all checked")
    every = [(name, language) for name in TEMPLATE_NAMES for language in LANGUAGES]
    own = sum(1 for key in every if settings.templates.path(*key).parent != BUNDLED_DIR)
    return Line(
        "ok",
        "Templates",
        f"TEMPLATES_DIR {settings.templates_dir}: {own} of {len(every)} templates from there, "
        "the others bundled; all checked",
    )


# --- wording --------------------------------------------------------------------------------------


def _said(error: BaseException, secrets: Iterable[str]) -> str:
    """What a server answered, short, as ` (server: …)`; never a secret, should it echo one."""
    text = " ".join(str(error).split())
    if text.startswith(("b'", 'b"')) and text[-1:] == text[1]:  # imapclient quotes the server's bytes
        text = text[2:-1]
    for secret in secrets:
        if secret:
            text = text.replace(secret, "**********")
    if not text:
        return ""
    return f" (server: {text[:120]}{'…' if len(text) > 120 else ''})"


def _os_reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {TIMEOUT} s"
    strerror = getattr(error, "strerror", None)
    return str(strerror) if strerror else type(error).__name__


def _tls_reason(error: ssl.SSLError) -> str:
    return str(getattr(error, "verify_message", None) or error.reason or type(error).__name__)
