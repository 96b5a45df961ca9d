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

from core.errors import ConfigError, ConfigErrors
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
    """Typed access to a mapping of strings; every failure names the variable.

    With `collect`, a failure is recorded (once per variable) and a harmless value returned, so
    that every problem of a configuration is found in one go (`raise_collected`)."""

    def __init__(self, env: Mapping[str, str], *, collect: bool = False) -> None:
        self.env = env
        self.collect = collect
        self.errors: list[ConfigError] = []

    def fail(self, name: str, problem: str) -> None:
        """A problem with `name`: raised at once, or recorded when collecting."""
        error = ConfigError(name, problem)
        if not self.collect:
            raise error
        if all(e.setting != name for e in self.errors):
            self.errors.append(error)

    def raise_collected(self) -> None:
        if self.errors:
            raise ConfigErrors(self.errors)

    def text(self, name: str, default: str | None = None) -> str:
        value = (self.env.get(name) or "").strip()
        if value:
            return value
        if default is None:
            self.fail(name, "is required but not set")
            return ""
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
            self.fail(name, f"must be a whole number, got {raw!r}")
            return default
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            self.fail(name, f"must be {bounds}, got {value}")
            return default
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.optional(name)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        self.fail(name, f"must be true or false, got {raw!r}")
        return default

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default).lower()
        if value not in choices:
            self.fail(name, f"must be one of {', '.join(choices)}, got {value!r}")
            return default
        return value

    def user_ids(self, name: str) -> tuple[str, ...]:
        raw = self.optional(name)
        if raw is None:
            return ()
        ids = tuple(x.strip() for x in re.split(r"[,\s]+", raw) if x.strip())
        bad = [x for x in ids if not re.fullmatch(r"[UW][A-Z0-9]{2,}", x)]
        if bad:
            self.fail(name, f"not Slack user ids: {', '.join(bad)}")
            return ()
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
    token_command: str | None = None
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

        Raises `ConfigError` naming the variable when one is missing or malformed — every one of
        them at once (`ConfigErrors`), so that a new setup is fixed in one go.
        `http_port` (from `privacy-desk run --http PORT`) selects HTTP mode.
        """
        r = _Reader(environ, collect=True)
        calendar = _calendar(r)
        if http_port is not None and not 1 <= http_port <= 65535:
            r.fail("--http", f"must be a port between 1 and 65535, got {http_port}")
        mode = "http" if http_port is not None else r.choice("SLACK_MODE", "socket", ("socket", "http"))
        bot_token = r.text("SLACK_BOT_TOKEN")
        if not bot_token.startswith("xoxb-"):
            r.fail("SLACK_BOT_TOKEN", "must be a bot token starting with xoxb-")
        elif _placeholder(bot_token):
            r.fail(
                "SLACK_BOT_TOKEN", "is still the placeholder of .env.example: paste the Bot User OAuth Token"
            )
        app_token = r.optional("SLACK_APP_TOKEN")
        if mode == "socket":
            app_token = r.text("SLACK_APP_TOKEN")
            if not app_token.startswith("xapp-"):
                r.fail("SLACK_APP_TOKEN", "must be an app-level token starting with xapp-")
            elif _placeholder(app_token):
                r.fail(
                    "SLACK_APP_TOKEN", "is still the placeholder of .env.example: paste the app-level token"
                )
        signing_secret = r.optional("SLACK_SIGNING_SECRET")
        if mode == "http" and not signing_secret:
            r.fail("SLACK_SIGNING_SECRET", "is required in HTTP mode")
        channel = r.text("SLACK_CHANNEL_ID")
        if not re.fullmatch(r"[CGD][A-Z0-9]{2,}", channel):
            r.fail("SLACK_CHANNEL_ID", f"not a Slack channel id: {channel!r}")
        api_url = r.text("SLACK_API_URL", "https://slack.com/api/")
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            r.fail("SLACK_API_URL", f"must be an http(s) URL with a host, got {api_url!r}")
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
            r.fail("IMAP_TLS", "none is only allowed to a loopback address (127.0.0.1, ::1, localhost)")
        auth = r.choice("IMAP_AUTH", "password", ("password", "oauth2"))
        token_command = r.optional("IMAP_OAUTH2_TOKEN_COMMAND")
        if token_command and auth != "oauth2":
            r.fail("IMAP_OAUTH2_TOKEN_COMMAND", "is only used with IMAP_AUTH=oauth2")
        password = r.optional("IMAP_PASSWORD") if token_command else r.text("IMAP_PASSWORD")
        imap = ImapSettings(
            host=host,
            port=r.integer("IMAP_PORT", 993 if tls == "ssl" else 143, minimum=1, maximum=65535),
            username=r.text("IMAP_USERNAME"),
            password=Secret(_not_placeholder(r, "IMAP_PASSWORD", password or "")),
            auth=auth,
            token_command=token_command,
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
                r.fail("SMTP_TLS", "none is only allowed to a loopback address")
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
            r.fail("MAIL_FROM", f"must be an email address, got {mail_from!r}")
        if any(c in mail_from for c in "\r\n\x00"):
            r.fail("MAIL_FROM", "must not hold a line break")
        templates_dir = Path(folder) if (folder := r.optional("TEMPLATES_DIR")) else None
        templates: Templates | None = None
        try:
            templates = Templates.load(templates_dir)
        except TemplateError as e:
            r.fail("TEMPLATES_DIR", str(e))
        fake_now = None
        try:
            fake_now = _instant(r.optional("PRIVACY_DESK_FAKE_NOW"), calendar, "PRIVACY_DESK_FAKE_NOW")
        except ConfigError as e:
            r.fail(e.setting, e.problem)
        database_path = Path(r.text("DATABASE_PATH", "./privacy-desk.sqlite3"))
        clock_pause_on_wait = r.flag("CLOCK_PAUSE_ON_WAIT", False)
        retention_days = r.integer("RETENTION_DAYS", 730, minimum=0, maximum=36500)
        systems_file = Path(systems) if (systems := r.optional("SYSTEMS_FILE")) else None
        reminder_hour = r.integer("REMINDER_HOUR", 9, minimum=0, maximum=23)
        imap_alert_minutes = r.integer("IMAP_ALERT_MINUTES", 30, minimum=1, maximum=10080)
        acknowledge = r.flag("ACKNOWLEDGE", True)
        r.raise_collected()
        assert templates is not None
        return cls(
            slack=slack,
            imap=imap,
            smtp=smtp,
            calendar=calendar,
            database_path=database_path,
            clock_pause_on_wait=clock_pause_on_wait,
            retention_days=retention_days,
            mail_from=mail_from,
            systems_file=systems_file,
            reminder_hour=reminder_hour,
            imap_alert_minutes=imap_alert_minutes,
            fake_now=fake_now,
            acknowledge=acknowledge,
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
    return _calendar(_Reader(environ))


_PLACEHOLDERS = ("...", "…", "change-me", "changeme")


def _placeholder(value: str) -> bool:
    """A value left as `.env.example` wrote it."""
    return any(p in value.lower() for p in _PLACEHOLDERS)


def _not_placeholder(r: _Reader, name: str, value: str) -> str:
    if value.lower() in ("change-me", "changeme"):
        r.fail(name, "is still the placeholder of .env.example")
    return value


def _calendar(r: _Reader) -> Calendar:
    tz = r.text("TIMEZONE", "Europe/Brussels")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        r.fail("TIMEZONE", f"unknown time zone {tz!r}")
        tz = "Europe/Brussels"
    country = r.text("HOLIDAYS_COUNTRY", "BE").upper()
    if country not in holidays.list_supported_countries():
        r.fail("HOLIDAYS_COUNTRY", f"no public holiday calendar for {country!r}")
        country = "BE"
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


@dataclass(frozen=True)
class SettingDoc:
    """One setting as the configuration reference shows it."""

    name: str
    default: str
    meaning: str
    area: str


#: Every setting the program reads, for the README's configuration reference (generated from
#: this; `tests/test_settings.py` fails when they differ, or when a setting read is missing here).
REFERENCE = (
    SettingDoc(
        "SLACK_BOT_TOKEN",
        "required",
        "the bot token (`xoxb-…`): *OAuth & Permissions* → *Bot User OAuth Token*",
        "Slack",
    ),
    SettingDoc(
        "SLACK_APP_TOKEN",
        "required in Socket Mode",
        "the app-level token (`xapp-…`) with `connections:write`: *Basic Information* → *App-Level Tokens*",
        "Slack",
    ),
    SettingDoc(
        "SLACK_SIGNING_SECRET",
        "required in HTTP mode",
        "*Basic Information* → *Signing Secret*; every HTTP request is checked against it",
        "Slack",
    ),
    SettingDoc(
        "SLACK_CHANNEL_ID",
        "required",
        "the staff channel where cases are posted (`C…`, or `G…` for an old private channel): in Slack, "
        "the channel's name → *About* → the id at the bottom",
        "Slack",
    ),
    SettingDoc(
        "SLACK_MODE",
        "`socket`",
        "`socket` (no public URL needed) or `http` (then `run` listens on `PORT`)",
        "Slack",
    ),
    SettingDoc(
        "PORT",
        "`3000`",
        "the port of HTTP mode (also `run --http PORT`)",
        "Slack",
    ),
    SettingDoc(
        "SLACK_API_URL",
        "`https://slack.com/api/`",
        "base URL of Slack's Web API; every Slack call goes through it (tests and rehearsals point it "
        "elsewhere)",
        "Slack",
    ),
    SettingDoc(
        "SLACK_STAFF_USER_IDS",
        "members of the channel",
        "who may act on cases (`U…` ids, comma-separated); by default the members of `SLACK_CHANNEL_ID`",
        "Slack",
    ),
    SettingDoc(
        "SLACK_MANAGER_USER_IDS",
        "none",
        "who receives the weekly summary by direct message (it is posted in the channel too)",
        "Slack",
    ),
    SettingDoc(
        "IMAP_HOST",
        "required",
        "the privacy mailbox's IMAP server (`outlook.office365.com`, `imap.gmail.com`, …)",
        "Mailbox",
    ),
    SettingDoc(
        "IMAP_PORT",
        "`993` (`143` with `starttls`/`none`)",
        "its port",
        "Mailbox",
    ),
    SettingDoc(
        "IMAP_TLS",
        "`ssl`",
        "`ssl`, `starttls` or `none` (`none` only to a loopback address)",
        "Mailbox",
    ),
    SettingDoc(
        "IMAP_USERNAME",
        "required",
        "the mailbox's login",
        "Mailbox",
    ),
    SettingDoc(
        "IMAP_PASSWORD",
        "required (unless `IMAP_OAUTH2_TOKEN_COMMAND`)",
        "its password, or with `IMAP_AUTH=oauth2` an access token",
        "Mailbox",
    ),
    SettingDoc(
        "IMAP_AUTH",
        "`password`",
        "`password` or `oauth2` (XOAUTH2: Microsoft 365, Gmail)",
        "Mailbox",
    ),
    SettingDoc(
        "IMAP_OAUTH2_TOKEN_COMMAND",
        "none",
        "with `IMAP_AUTH=oauth2`: a command that prints a fresh access token (its last line), run at "
        "every connection, so that tokens that expire after an hour are renewed",
        "Mailbox",
    ),
    SettingDoc(
        "IMAP_FOLDER",
        "`INBOX`",
        "the folder to watch (opened read-only: messages stay unread for people)",
        "Mailbox",
    ),
    SettingDoc(
        "IMAP_POLL_SECONDS",
        "`60`",
        "polling interval when the server has no IDLE",
        "Mailbox",
    ),
    SettingDoc(
        "IMAP_IDLE_RENEW_SECONDS",
        "`540`",
        "IDLE is renewed at least this often (at most 600)",
        "Mailbox",
    ),
    SettingDoc(
        "IMAP_BACKFILL_DAYS",
        "`35`",
        "on the first start, only mail that arrived this recently opens cases",
        "Mailbox",
    ),
    SettingDoc(
        "IMAP_AUTHSERV_ID",
        "none",
        "the authserv-id of our own mail server's `Authentication-Results` header (others are ignored: "
        "senders can forge them); enables the forged-sender warning",
        "Mailbox",
    ),
    SettingDoc(
        "IMAP_ALERT_MINUTES",
        "`30`",
        "minutes without a successful contact with the mailbox before the channel is alerted",
        "Mailbox",
    ),
    SettingDoc(
        "SMTP_HOST",
        "none",
        "outgoing mail: acknowledgements and replies from Slack (without it there are none, and **Reply**"
        " says what is missing)",
        "Outgoing mail",
    ),
    SettingDoc(
        "SMTP_PORT",
        "`587`",
        "its port",
        "Outgoing mail",
    ),
    SettingDoc(
        "SMTP_TLS",
        "`starttls`",
        "`starttls`, `ssl` or `none` (loopback only)",
        "Outgoing mail",
    ),
    SettingDoc(
        "SMTP_USERNAME",
        "none",
        "login, when the server wants one",
        "Outgoing mail",
    ),
    SettingDoc(
        "SMTP_PASSWORD",
        "none",
        "its password",
        "Outgoing mail",
    ),
    SettingDoc(
        "MAIL_FROM",
        "`IMAP_USERNAME`",
        "the privacy address mails are sent from (`privacy@imal.org`, or `iMAL Privacy "
        '<privacy@imal.org>`); its own mail coming back opens no case, and its domain is "our own domain"',
        "Outgoing mail",
    ),
    SettingDoc(
        "ACKNOWLEDGE",
        "`true`",
        "email each new case's requester an acknowledgement in their language",
        "Outgoing mail",
    ),
    SettingDoc(
        "TEMPLATES_DIR",
        "bundled templates",
        "a folder of email templates replacing the bundled ones of the same name "
        "(`handlers/mail_out/templates/README.md`); checked at start",
        "Outgoing mail",
    ),
    SettingDoc(
        "DATABASE_PATH",
        "`./privacy-desk.sqlite3`",
        "the SQLite database (created with mode 0600; keep it on a disk that is backed up)",
        "Cases",
    ),
    SettingDoc(
        "TIMEZONE",
        "`Europe/Brussels`",
        "the controller's calendar: deadlines, reminder hour, report periods",
        "Cases",
    ),
    SettingDoc(
        "HOLIDAYS_COUNTRY",
        "`BE`",
        "public holidays that move a deadline and skip reminders",
        "Cases",
    ),
    SettingDoc(
        "COMPLAINT_DAYS",
        "`30`",
        "internal response time for complaints, calendar days",
        "Cases",
    ),
    SettingDoc(
        "CLOCK_PAUSE_ON_WAIT",
        "`false`",
        "whether waiting for the requester (identity, clarification) pauses the legal clock",
        "Cases",
    ),
    SettingDoc(
        "RETENTION_DAYS",
        "`730`",
        "personal data of resolved cases is erased this long after they were resolved (`0`: at the next "
        "purge)",
        "Cases",
    ),
    SettingDoc(
        "REMINDER_HOUR",
        "`9`",
        "local hour (0–23) of reminders, the daily digest and the weekly summary, on working days",
        "Cases",
    ),
    SettingDoc(
        "SYSTEMS_FILE",
        "iMAL's inventory",
        "the data inventory behind each case's checklist (format: `handlers/cases/data/systems.toml`)",
        "Cases",
    ),
    SettingDoc(
        "LOG_LEVEL",
        "`INFO`",
        "`DEBUG`, `INFO`, `WARNING` or `ERROR` (no email text, name or address is ever logged)",
        "Running",
    ),
    SettingDoc(
        "LOG_FORMAT",
        "`text`",
        "`text`, or `json` (one object per line, for log collectors)",
        "Running",
    ),
    SettingDoc(
        "PRIVACY_DESK_FAKE_NOW",
        "unset",
        "rehearsals and tests only: the bot's clock starts at this ISO-8601 instant (no offset: "
        "`TIMEZONE`) and runs on from there; a warning is logged at start",
        "Running",
    ),
)


def reference_markdown() -> str:
    """The configuration reference as the README shows it, one table per area."""
    out: list[str] = []
    for area in dict.fromkeys(doc.area for doc in REFERENCE):
        out += [f"**{area}**", "", "| variable | default | meaning |", "|---|---|---|"]
        out += [f"| `{d.name}` | {d.default} | {d.meaning} |" for d in REFERENCE if d.area == area]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":  # python -m bot.settings: print the configuration reference
    print(reference_markdown(), end="")
