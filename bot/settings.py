"""Settings read once from the environment (and `./.env`) into frozen, typed objects.

`Settings.from_env(environ)` validates everything `privacy-desk run` needs and raises
`ConfigError` naming the first bad variable; the CLI turns that into exit status 2. Secrets are
wrapped in `Secret`, whose repr and str never show the value.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from dotenv import dotenv_values

from core.errors import ConfigError
from handlers.cases.deadlines import Calendar
from handlers.mail_out.letters import Writer
from handlers.mail_out.templates import TemplateError, Templates

__all__ = ["ImapSettings", "Secret", "Settings", "SlackSettings", "SmtpSettings", "load_environ"]


class Secret:
    """A string that does not print: `str()`/`repr()` give `'**********'`; `.reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value, for the one place that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def load_environ(environ: Mapping[str, str], cwd: Path | None = None) -> dict[str, str]:
    """The process environment over the `.env` file of the working directory (environment wins)."""
    env_file = (cwd or Path.cwd()) / ".env"
    merged: dict[str, str] = {}
    if env_file.is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(environ)
    return merged


class _Reader:
    """Typed access to a mapping of strings; every failure names the variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str, default: str | None = None) -> str:
        value = (self.env.get(name) or "").strip()
        if value:
            return value
        if default is None:
            raise ConfigError(name, "is required but not set")
        return default

    def optional(self, name: str) -> str | None:
        value = (self.env.get(name) or "").strip()
        return value or None

    def integer(self, name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(name, f"must be a whole number, got {raw!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise ConfigError(name, f"must be {bounds}, got {value}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.optional(name)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(name, f"must be true or false, got {raw!r}")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default).lower()
        if value not in choices:
            raise ConfigError(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def user_ids(self, name: str) -> tuple[str, ...]:
        raw = self.optional(name)
        if raw is None:
            return ()
        ids = tuple(x.strip() for x in re.split(r"[,\s]+", raw) if x.strip())
        bad = [x for x in ids if not re.fullmatch(r"[UW][A-Z0-9]{2,}", x)]
        if bad:
            raise ConfigError(name, f"not Slack user ids: {', '.join(bad)}")
        return ids


@dataclass(frozen=True)
class SlackSettings:
    """How to reach Slack and where cases go."""

    bot_token: Secret
    app_token: Secret | None
    signing_secret: Secret | None
    channel_id: str
    mode: str = "socket"
    port: int = 3000
    api_url: str = "https://slack.com/api/"
    staff_user_ids: tuple[str, ...] = ()
    manager_user_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImapSettings:
    """The privacy mailbox."""

    host: str
    port: int
    username: str
    password: Secret
    auth: str = "password"
    tls: str = "ssl"
    folder: str = "INBOX"
    poll_seconds: int = 60
    backfill_days: int = 35
    authserv_id: str | None = None
    idle_renew_seconds: int = 540
    timeout_seconds: int = 60


@dataclass(frozen=True)
class SmtpSettings:
    """Outgoing mail (acknowledgements and replies)."""

    host: str
    port: int = 587
    username: str | None = None
    password: Secret | None = None
    tls: str = "starttls"


@dataclass(frozen=True)
class Settings:
    """Everything `privacy-desk run` needs, validated."""

    slack: SlackSettings
    imap: ImapSettings
    smtp: SmtpSettings | None
    calendar: Calendar
    database_path: Path = Path("privacy-desk.sqlite3")
    clock_pause_on_wait: bool = False
    retention_days: int = 730
    mail_from: str = ""
    systems_file: Path | None = None
    reminder_hour: int = 9
    imap_alert_minutes: int = 30
    fake_now: datetime | None = None
    acknowledge: bool = True
    templates_dir: Path | None = None
    templates: Templates = field(default_factory=Templates.load, repr=False, compare=False)

    @property
    def mail_from_address(self) -> str:
        """The addr-spec of `MAIL_FROM` (lower-cased), without any display name."""
        return parseaddr(self.mail_from)[1].lower()

    def writer(self) -> Writer:
        """Fills in the templates for a case, from the privacy address, with this country's fallback."""
        return Writer(
            self.templates, country=self.calendar.holidays_country, mail_from=self.mail_from_address
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, http_port: int | None = None) -> Settings:
        """Build and validate settings from a mapping of environment variables.

        Raises `ConfigError` naming the variable when one is missing or malformed.
        `http_port` (from `privacy-desk run --http PORT`) selects HTTP mode.
        """
        r = _Reader(environ)
        calendar = calendar_from_env(environ)
        if http_port is not None and not 1 <= http_port <= 65535:
            raise ConfigError("--http", f"must be a port between 1 and 65535, got {http_port}")
        mode = "http" if http_port is not None else r.choice("SLACK_MODE", "socket", ("socket", "http"))
        bot_token = r.text("SLACK_BOT_TOKEN")
        if not bot_token.startswith("xoxb-"):
            raise ConfigError("SLACK_BOT_TOKEN", "must be a bot token starting with xoxb-")
        app_token = r.optional("SLACK_APP_TOKEN")
        if mode == "socket":
            app_token = r.text("SLACK_APP_TOKEN")
            if not app_token.startswith("xapp-"):
                raise ConfigError("SLACK_APP_TOKEN", "must be an app-level token starting with xapp-")
        signing_secret = r.optional("SLACK_SIGNING_SECRET")
        if mode == "http" and not signing_secret:
            raise ConfigError("SLACK_SIGNING_SECRET", "is required in HTTP mode")
        channel = r.text("SLACK_CHANNEL_ID")
        if not re.fullmatch(r"[CGD][A-Z0-9]{2,}", channel):
            raise ConfigError("SLACK_CHANNEL_ID", f"not a Slack channel id: {channel!r}")
        api_url = r.text("SLACK_API_URL", "https://slack.com/api/")
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("SLACK_API_URL", f"must be an http(s) URL with a host, got {api_url!r}")
        if not api_url.endswith("/"):
            api_url += "/"
        slack = SlackSettings(
            bot_token=Secret(bot_token),
            app_token=Secret(app_token) if app_token else None,
            signing_secret=Secret(signing_secret) if signing_secret else None,
            channel_id=channel,
            mode=mode,
            port=http_port if http_port is not None else r.integer("PORT", 3000, minimum=1, maximum=65535),
            api_url=api_url,
            staff_user_ids=r.user_ids("SLACK_STAFF_USER_IDS"),
            manager_user_ids=r.user_ids("SLACK_MANAGER_USER_IDS"),
        )

        host = r.text("IMAP_HOST")
        tls = r.choice("IMAP_TLS", "ssl", ("ssl", "starttls", "none"))
        if tls == "none" and not _is_loopback(host):
            raise ConfigError(
                "IMAP_TLS", "none is only allowed to a loopback address (127.0.0.1, ::1, localhost)"
            )
        imap = ImapSettings(
            host=host,
            port=r.integer("IMAP_PORT", 993 if tls == "ssl" else 143, minimum=1, maximum=65535),
            username=r.text("IMAP_USERNAME"),
            password=Secret(r.text("IMAP_PASSWORD")),
            auth=r.choice("IMAP_AUTH", "password", ("password", "oauth2")),
            tls=tls,
            folder=r.text("IMAP_FOLDER", "INBOX"),
            poll_seconds=r.integer("IMAP_POLL_SECONDS", 60, minimum=1, maximum=86400),
            backfill_days=r.integer("IMAP_BACKFILL_DAYS", 35, minimum=0, maximum=36500),
            authserv_id=r.optional("IMAP_AUTHSERV_ID"),
            idle_renew_seconds=r.integer("IMAP_IDLE_RENEW_SECONDS", 540, minimum=5, maximum=600),
        )

        smtp = None
        smtp_host = r.optional("SMTP_HOST")
        if smtp_host:
            smtp_tls = r.choice("SMTP_TLS", "starttls", ("ssl", "starttls", "none"))
            if smtp_tls == "none" and not _is_loopback(smtp_host):
                raise ConfigError("SMTP_TLS", "none is only allowed to a loopback address")
            password = r.optional("SMTP_PASSWORD")
            smtp = SmtpSettings(
                host=smtp_host,
                port=r.integer("SMTP_PORT", 587, minimum=1, maximum=65535),
                username=r.optional("SMTP_USERNAME"),
                password=Secret(password) if password else None,
                tls=smtp_tls,
            )

        mail_from = r.text("MAIL_FROM", imap.username)
        if "@" not in parseaddr(mail_from)[1] and (smtp is not None or r.optional("MAIL_FROM")):
            raise ConfigError("MAIL_FROM", f"must be an email address, got {mail_from!r}")
        if any(c in mail_from for c in "\r\n\x00"):
            raise ConfigError("MAIL_FROM", "must not hold a line break")
        templates_dir = Path(folder) if (folder := r.optional("TEMPLATES_DIR")) else None
        try:
            templates = Templates.load(templates_dir)
        except TemplateError as e:
            raise ConfigError("TEMPLATES_DIR", str(e)) from None

        return cls(
            slack=slack,
            imap=imap,
            smtp=smtp,
            calendar=calendar,
            database_path=Path(r.text("DATABASE_PATH", "./privacy-desk.sqlite3")),
            clock_pause_on_wait=r.flag("CLOCK_PAUSE_ON_WAIT", False),
            retention_days=r.integer("RETENTION_DAYS", 730, minimum=0, maximum=36500),
            mail_from=mail_from,
            systems_file=Path(systems) if (systems := r.optional("SYSTEMS_FILE")) else None,
            reminder_hour=r.integer("REMINDER_HOUR", 9, minimum=0, maximum=23),
            imap_alert_minutes=r.integer("IMAP_ALERT_MINUTES", 30, minimum=1, maximum=10080),
            fake_now=_instant(r.optional("PRIVACY_DESK_FAKE_NOW"), calendar, "PRIVACY_DESK_FAKE_NOW"),
            acknowledge=r.flag("ACKNOWLEDGE", True),
            templates_dir=templates_dir,
            templates=templates,
        )


@dataclass(frozen=True)
class RecordSettings:
    """What the record's commands (`report`, `export`, `backup`, `purge`) need: no server at all."""

    database_path: Path
    calendar: Calendar
    retention_days: int
    fake_now: datetime | None = None


def record_settings_from_env(environ: Mapping[str, str]) -> RecordSettings:
    """DATABASE_PATH, the calendar, RETENTION_DAYS and PRIVACY_DESK_FAKE_NOW, validated
    (`ConfigError` naming the setting)."""
    r = _Reader(environ)
    calendar = calendar_from_env(environ)
    return RecordSettings(
        database_path=Path(r.text("DATABASE_PATH", "./privacy-desk.sqlite3")),
        calendar=calendar,
        retention_days=r.integer("RETENTION_DAYS", 730, minimum=0, maximum=36500),
        fake_now=_instant(r.optional("PRIVACY_DESK_FAKE_NOW"), calendar, "PRIVACY_DESK_FAKE_NOW"),
    )


def calendar_from_env(environ: Mapping[str, str]) -> Calendar:
    """The deadline calendar alone (TIMEZONE, HOLIDAYS_COUNTRY, COMPLAINT_DAYS), for commands
    that need no servers, such as `privacy-desk deadline` and `classify`."""
    r = _Reader(environ)
    tz = r.text("TIMEZONE", "Europe/Brussels")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("TIMEZONE", f"unknown time zone {tz!r}") from None
    country = r.text("HOLIDAYS_COUNTRY", "BE").upper()
    if country not in holidays.list_supported_countries():
        raise ConfigError("HOLIDAYS_COUNTRY", f"no public holiday calendar for {country!r}")
    return Calendar(
        timezone=tz,
        holidays_country=country,
        complaint_days=r.integer("COMPLAINT_DAYS", 30, minimum=1, maximum=3650),
    )


def _instant(value: str | None, calendar: Calendar, name: str) -> datetime | None:
    """An ISO-8601 instant; one without an offset is read in the controller's time zone."""
    if not value:
        return None
    try:
        instant = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(name, f"not an ISO-8601 instant: {value!r}") from None
    instant = instant if instant.tzinfo else instant.replace(tzinfo=calendar.tz)
    if not 2000 <= instant.year <= 2100:  # (checked before any time zone arithmetic can overflow)
        raise ConfigError(name, f"must be an instant between the years 2000 and 2100, got {value!r}")
    return instant


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
