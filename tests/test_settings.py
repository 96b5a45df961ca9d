"""Settings (bot/settings.py, bot/errors.py): validated once from an injected mapping, failing with
the variable's name, secrets never printed, defaults as in INTERFACE.md; and the CLI's exit status 2."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import Secret, Settings, calendar_from_env, load_environ
from core.errors import ConfigError, PrivacyDeskError
from handlers.cases.deadlines import Calendar

BOT_TOKEN = "xoxb-1111-bot-token-SECRET"
APP_TOKEN = "xapp-2222-app-token-SECRET"
SIGNING_SECRET = "3333-signing-secret-SECRET"
IMAP_PASSWORD = "4444-imap-password-SECRET"
SMTP_PASSWORD = "5555-smtp-password-SECRET"
SECRETS = (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, IMAP_PASSWORD, SMTP_PASSWORD)

#: The smallest valid environment for Socket Mode (INTERFACE.md's required variables).
SOCKET_ENV = {
    "SLACK_BOT_TOKEN": BOT_TOKEN,
    "SLACK_APP_TOKEN": APP_TOKEN,
    "SLACK_CHANNEL_ID": "C0STAFF01",
    "IMAP_HOST": "imap.example.org",
    "IMAP_USERNAME": "privacy@imal.example",
    "IMAP_PASSWORD": IMAP_PASSWORD,
}
HTTP_ENV = {
    **{k: v for k, v in SOCKET_ENV.items() if k != "SLACK_APP_TOKEN"},
    "SLACK_MODE": "http",
    "SLACK_SIGNING_SECRET": SIGNING_SECRET,
}
#: Every variable set, every secret present, for the "secrets never print" checks.
FULL_ENV = {
    **SOCKET_ENV,
    "SLACK_SIGNING_SECRET": SIGNING_SECRET,
    "SMTP_HOST": "smtp.example.org",
    "SMTP_USERNAME": "privacy@imal.example",
    "SMTP_PASSWORD": SMTP_PASSWORD,
}


def with_env(base: dict[str, str], **changes: str | None) -> dict[str, str]:
    """`base` with variables changed (a value of None removes the variable)."""
    env = dict(base)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def config_error(env: dict[str, str], **kwargs: object) -> ConfigError:
    """The ConfigError that `Settings.from_env(env)` raises; fails if none, or if it shows a secret."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env, **kwargs)  # type: ignore[arg-type]
    error = info.value
    for secret in SECRETS:
        assert secret not in str(error), f"{error.setting}'s message shows a secret"
        assert secret not in repr(error)
        assert secret not in error.problem
    return error


# --- required variables -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_CHANNEL_ID", "IMAP_HOST", "IMAP_USERNAME", "IMAP_PASSWORD"],
)
@pytest.mark.parametrize("how", ["absent", "empty", "blank"])
def test_a_missing_required_variable_is_named(name: str, how: str) -> None:
    value = {"absent": None, "empty": "", "blank": "   "}[how]
    error = config_error(with_env(SOCKET_ENV, **{name: value}))
    assert error.setting == name
    assert str(error).startswith(f"{name}: ")
    assert "required" in error.problem


def test_the_minimal_socket_mode_environment_is_valid() -> None:
    settings = Settings.from_env(SOCKET_ENV)
    assert settings.slack.mode == "socket"
    assert settings.slack.bot_token.reveal() == BOT_TOKEN
    assert settings.slack.app_token is not None
    assert settings.slack.app_token.reveal() == APP_TOKEN
    assert settings.imap.password.reveal() == IMAP_PASSWORD


def test_config_error_is_a_privacy_desk_error_with_setting_and_problem() -> None:
    error = ConfigError("IMAP_PORT", "must be a whole number")
    assert isinstance(error, PrivacyDeskError)
    assert (error.setting, error.problem, str(error)) == (
        "IMAP_PORT",
        "must be a whole number",
        "IMAP_PORT: must be a whole number",
    )


# --- Slack modes --------------------------------------------------------------------------------


def test_socket_mode_needs_an_app_level_token() -> None:
    assert config_error(with_env(SOCKET_ENV, SLACK_APP_TOKEN=None)).setting == "SLACK_APP_TOKEN"


@pytest.mark.parametrize("token", [BOT_TOKEN, "xoxp-user-token-SECRET", "app-token-without-prefix"])
def test_socket_mode_refuses_a_token_that_is_not_xapp(token: str) -> None:
    error = config_error(with_env(SOCKET_ENV, SLACK_APP_TOKEN=token))
    assert error.setting == "SLACK_APP_TOKEN"
    assert "xapp-" in error.problem
    assert token not in str(error)


@pytest.mark.parametrize("token", [APP_TOKEN, "xoxp-user-token-SECRET", "bot-token-without-prefix"])
def test_the_bot_token_must_be_xoxb(token: str) -> None:
    error = config_error(with_env(SOCKET_ENV, SLACK_BOT_TOKEN=token))
    assert error.setting == "SLACK_BOT_TOKEN"
    assert token not in str(error)


def test_http_mode_needs_the_signing_secret_and_not_the_app_token() -> None:
    assert config_error(with_env(HTTP_ENV, SLACK_SIGNING_SECRET=None)).setting == "SLACK_SIGNING_SECRET"
    settings = Settings.from_env(HTTP_ENV)
    assert settings.slack.mode == "http"
    assert settings.slack.app_token is None
    assert settings.slack.signing_secret is not None
    assert settings.slack.signing_secret.reveal() == SIGNING_SECRET
    assert settings.slack.port == 3000


def test_the_http_option_of_run_selects_http_mode_and_its_port() -> None:
    env = with_env(SOCKET_ENV, SLACK_APP_TOKEN=None, SLACK_SIGNING_SECRET=SIGNING_SECRET, PORT="4000")
    settings = Settings.from_env(env, http_port=8080)
    assert (settings.slack.mode, settings.slack.port) == ("http", 8080)
    assert config_error(with_env(SOCKET_ENV), http_port=8080).setting == "SLACK_SIGNING_SECRET"


@pytest.mark.parametrize(("raw", "mode"), [("socket", "socket"), ("HTTP", "http"), (" http ", "http")])
def test_slack_mode_is_case_insensitive(raw: str, mode: str) -> None:
    env = with_env(SOCKET_ENV, SLACK_MODE=raw, SLACK_SIGNING_SECRET=SIGNING_SECRET)
    assert Settings.from_env(env).slack.mode == mode


def test_socket_mode_does_not_need_the_signing_secret() -> None:
    assert Settings.from_env(SOCKET_ENV).slack.signing_secret is None


# --- malformed values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SLACK_MODE", "websocket"),
        ("SLACK_MODE", "sockets"),
        ("SLACK_CHANNEL_ID", "#privacy-requests"),
        ("SLACK_CHANNEL_ID", "privacy-requests"),
        ("SLACK_CHANNEL_ID", "c0staff01"),
        ("SLACK_CHANNEL_ID", "U0STAFF01"),
        ("SLACK_CHANNEL_ID", "C"),
        ("SLACK_API_URL", "slack.com/api/"),
        ("SLACK_API_URL", "ftp://slack.example/api/"),
        ("SLACK_API_URL", "//slack.com/api/"),
        ("SLACK_STAFF_USER_IDS", "alice"),
        ("SLACK_STAFF_USER_IDS", "UALICE01,@bob"),
        ("SLACK_STAFF_USER_IDS", "UALICE01;UBOB0001"),
        ("SLACK_MANAGER_USER_IDS", "C0STAFF01"),
        ("SLACK_MANAGER_USER_IDS", "<@UALICE01>"),
        ("PORT", "http"),
        ("PORT", "0"),
        ("PORT", "65536"),
        ("PORT", "-1"),
        ("PORT", "80.5"),
        ("IMAP_PORT", "imaps"),
        ("IMAP_PORT", "0"),
        ("IMAP_PORT", "99999"),
        ("IMAP_TLS", "tls"),
        ("IMAP_TLS", "true"),
        ("IMAP_AUTH", "xoauth"),
        ("IMAP_POLL_SECONDS", "0"),
        ("IMAP_POLL_SECONDS", "1m"),
        ("IMAP_POLL_SECONDS", "86401"),
        ("IMAP_BACKFILL_DAYS", "-1"),
        ("IMAP_BACKFILL_DAYS", "a month"),
        ("IMAP_IDLE_RENEW_SECONDS", "3600"),
        ("RETENTION_DAYS", "-1"),
        ("RETENTION_DAYS", "two years"),
        ("COMPLAINT_DAYS", "0"),
        ("COMPLAINT_DAYS", "30d"),
        ("CLOCK_PAUSE_ON_WAIT", "maybe"),
        ("CLOCK_PAUSE_ON_WAIT", "2"),
        ("TIMEZONE", "Mars/Olympus"),
        ("TIMEZONE", "Europe"),
        ("TIMEZONE", "../../etc/passwd"),
        ("TIMEZONE", "/etc/localtime"),
        ("TIMEZONE", "europe/brussels"),
        ("HOLIDAYS_COUNTRY", "XX"),
        ("HOLIDAYS_COUNTRY", "Belgium"),
        ("HOLIDAYS_COUNTRY", "B"),
    ],
)
def test_a_malformed_value_is_refused_naming_the_variable(name: str, value: str) -> None:
    error = config_error(with_env(SOCKET_ENV, **{name: value}))
    assert error.setting == name
    assert str(error).startswith(f"{name}: ")


@pytest.mark.parametrize(
    ("name", "value"),
    [("SMTP_PORT", "smtp"), ("SMTP_PORT", "70000"), ("SMTP_TLS", "tls"), ("MAIL_FROM", "privacy desk")],
)
def test_malformed_smtp_settings_are_named(name: str, value: str) -> None:
    assert config_error(with_env(FULL_ENV, **{name: value})).setting == name


@pytest.mark.parametrize("url", ["https://", "http:///api/"])
def test_a_slack_api_url_without_a_host_is_refused(url: str) -> None:
    assert config_error(with_env(SOCKET_ENV, SLACK_API_URL=url)).setting == "SLACK_API_URL"


def test_a_bad_user_id_list_names_the_bad_entries() -> None:
    error = config_error(with_env(SOCKET_ENV, SLACK_STAFF_USER_IDS="UALICE01, bob, UBOB0001"))
    assert error.setting == "SLACK_STAFF_USER_IDS"
    assert "bob" in error.problem
    assert "UALICE01" not in error.problem


@pytest.mark.parametrize(
    "raw", ["UALICE01,UBOB0001", "UALICE01, UBOB0001", "UALICE01 UBOB0001", " UALICE01,,UBOB0001,\n"]
)
def test_user_id_lists_accept_commas_and_whitespace(raw: str) -> None:
    settings = Settings.from_env(
        with_env(SOCKET_ENV, SLACK_STAFF_USER_IDS=raw, SLACK_MANAGER_USER_IDS="WMANAGER1")
    )
    assert settings.slack.staff_user_ids == ("UALICE01", "UBOB0001")
    assert settings.slack.manager_user_ids == ("WMANAGER1",)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("on", True),
        ("false", False),
        ("0", False),
        ("No", False),
        ("off", False),
        ("", False),
    ],
)
def test_clock_pause_on_wait_reads_common_boolean_spellings(raw: str, expected: bool) -> None:
    assert Settings.from_env(with_env(SOCKET_ENV, CLOCK_PAUSE_ON_WAIT=raw)).clock_pause_on_wait is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://slack.com/api/", "https://slack.com/api/"),
        ("http://127.0.0.1:8765/api", "http://127.0.0.1:8765/api/"),
    ],
)
def test_slack_api_url_gets_a_trailing_slash(raw: str, expected: str) -> None:
    assert Settings.from_env(with_env(SOCKET_ENV, SLACK_API_URL=raw)).slack.api_url == expected


def test_holidays_country_is_case_insensitive() -> None:
    assert Settings.from_env(with_env(SOCKET_ENV, HOLIDAYS_COUNTRY="fr")).calendar.holidays_country == "FR"


# --- IMAP_TLS=none only to loopback -------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "imap.example.org",
        "10.0.0.5",
        "192.168.1.10",
        "0.0.0.0",
        "localhost.example.org",
        "::ffff:10.0.0.5",
        "2001:db8::1",
    ],
)
def test_imap_without_tls_is_refused_to_a_non_loopback_host(host: str) -> None:
    error = config_error(with_env(SOCKET_ENV, IMAP_HOST=host, IMAP_TLS="none"))
    assert error.setting == "IMAP_TLS"
    assert "loopback" in error.problem


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "127.0.0.1", "127.0.0.53", "::1"])
def test_imap_without_tls_is_allowed_to_loopback(host: str) -> None:
    settings = Settings.from_env(with_env(SOCKET_ENV, IMAP_HOST=host, IMAP_TLS="none"))
    assert (settings.imap.tls, settings.imap.port) == ("none", 143)


def test_smtp_without_tls_is_refused_to_a_non_loopback_host() -> None:
    assert config_error(with_env(FULL_ENV, SMTP_TLS="none")).setting == "SMTP_TLS"
    assert Settings.from_env(with_env(FULL_ENV, SMTP_HOST="127.0.0.1", SMTP_TLS="none")).smtp is not None


# --- defaults (INTERFACE.md) --------------------------------------------------------------------


def test_defaults_are_those_of_the_interface() -> None:
    settings = Settings.from_env(SOCKET_ENV)
    slack, imap = settings.slack, settings.imap
    assert slack.mode == "socket"
    assert slack.port == 3000
    assert slack.api_url == "https://slack.com/api/"
    assert slack.channel_id == "C0STAFF01"
    assert slack.staff_user_ids == ()  # "members of SLACK_CHANNEL_ID", looked up at run time
    assert slack.manager_user_ids == ()
    assert slack.signing_secret is None
    assert imap.port == 993
    assert imap.tls == "ssl"
    assert imap.auth == "password"
    assert imap.folder == "INBOX"
    assert imap.poll_seconds == 60
    assert imap.backfill_days == 35
    assert imap.authserv_id is None
    assert settings.smtp is None
    assert settings.mail_from == "privacy@imal.example"  # defaults to IMAP_USERNAME
    assert settings.database_path == Path("privacy-desk.sqlite3")
    assert settings.calendar == Calendar(timezone="Europe/Brussels", holidays_country="BE", complaint_days=30)
    assert settings.clock_pause_on_wait is False
    assert settings.retention_days == 730


def test_imap_starttls_defaults_to_port_143() -> None:
    assert Settings.from_env(with_env(SOCKET_ENV, IMAP_TLS="starttls")).imap.port == 143


def test_smtp_defaults_when_only_its_host_is_given() -> None:
    smtp = Settings.from_env(with_env(SOCKET_ENV, SMTP_HOST="smtp.example.org")).smtp
    assert smtp is not None
    assert (smtp.host, smtp.port, smtp.tls, smtp.username, smtp.password) == (
        "smtp.example.org",
        587,
        "starttls",
        None,
        None,
    )


def test_every_variable_is_read() -> None:
    env = {
        **FULL_ENV,
        "SLACK_MODE": "http",
        "PORT": "8081",
        "SLACK_API_URL": "http://127.0.0.1:9999/api/",
        "SLACK_STAFF_USER_IDS": "UALICE01,UBOB0001",
        "SLACK_MANAGER_USER_IDS": "UCAROL01",
        "IMAP_PORT": "1993",
        "IMAP_TLS": "starttls",
        "IMAP_AUTH": "oauth2",
        "IMAP_FOLDER": "Privacy/Requests",
        "IMAP_POLL_SECONDS": "15",
        "IMAP_BACKFILL_DAYS": "0",
        "IMAP_AUTHSERV_ID": "mx.imal.example",
        "IMAP_IDLE_RENEW_SECONDS": "300",
        "SMTP_PORT": "465",
        "SMTP_TLS": "ssl",
        "MAIL_FROM": "dpo@imal.example",
        "DATABASE_PATH": "/var/lib/privacy-desk/db.sqlite3",
        "TIMEZONE": "Europe/Paris",
        "HOLIDAYS_COUNTRY": "FR",
        "COMPLAINT_DAYS": "15",
        "CLOCK_PAUSE_ON_WAIT": "true",
        "RETENTION_DAYS": "365",
    }
    s = Settings.from_env(env)
    assert (s.slack.mode, s.slack.port, s.slack.api_url) == ("http", 8081, "http://127.0.0.1:9999/api/")
    assert (s.slack.staff_user_ids, s.slack.manager_user_ids) == (("UALICE01", "UBOB0001"), ("UCAROL01",))
    assert (s.imap.host, s.imap.port, s.imap.tls, s.imap.auth, s.imap.folder) == (
        "imap.example.org",
        1993,
        "starttls",
        "oauth2",
        "Privacy/Requests",
    )
    assert (s.imap.poll_seconds, s.imap.backfill_days, s.imap.authserv_id, s.imap.idle_renew_seconds) == (
        15,
        0,
        "mx.imal.example",
        300,
    )
    assert s.smtp is not None
    assert (s.smtp.host, s.smtp.port, s.smtp.tls, s.smtp.username) == (
        "smtp.example.org",
        465,
        "ssl",
        "privacy@imal.example",
    )
    assert s.smtp.password is not None
    assert s.smtp.password.reveal() == SMTP_PASSWORD
    assert s.mail_from == "dpo@imal.example"
    assert s.database_path == Path("/var/lib/privacy-desk/db.sqlite3")
    assert s.calendar == Calendar(timezone="Europe/Paris", holidays_country="FR", complaint_days=15)
    assert (s.clock_pause_on_wait, s.retention_days) == (True, 365)


def test_mail_from_must_be_an_address_only_when_mail_is_sent_or_it_is_given() -> None:
    no_address = with_env(SOCKET_ENV, IMAP_USERNAME="privacy")
    assert Settings.from_env(no_address).mail_from == "privacy"
    assert config_error(with_env(no_address, SMTP_HOST="smtp.example.org")).setting == "MAIL_FROM"
    assert config_error(with_env(no_address, MAIL_FROM="dpo")).setting == "MAIL_FROM"


def test_calendar_alone_needs_no_server_settings() -> None:
    assert calendar_from_env({}) == Calendar()
    assert calendar_from_env(
        {"TIMEZONE": "UTC", "HOLIDAYS_COUNTRY": "nl", "COMPLAINT_DAYS": "10"}
    ) == Calendar(timezone="UTC", holidays_country="NL", complaint_days=10)
    with pytest.raises(ConfigError) as info:
        calendar_from_env({"TIMEZONE": "Nowhere/Town"})
    assert info.value.setting == "TIMEZONE"


# --- .env -----------------------------------------------------------------------------------------


def test_dotenv_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# privacy desk\n"
        f"SLACK_BOT_TOKEN={BOT_TOKEN}\n"
        "export SLACK_CHANNEL_ID=C0FROMFILE\n"
        'IMAP_FOLDER="Privacy Requests"\n'
        "IMAP_POLL_SECONDS=30\n"
        "WITHOUT_VALUE\n",
        encoding="utf-8",
    )
    merged = load_environ({"IMAP_POLL_SECONDS": "45", "IMAP_HOST": "imap.example.org"}, cwd=tmp_path)
    assert merged["SLACK_BOT_TOKEN"] == BOT_TOKEN
    assert merged["SLACK_CHANNEL_ID"] == "C0FROMFILE"
    assert merged["IMAP_FOLDER"] == "Privacy Requests"
    assert merged["IMAP_POLL_SECONDS"] == "45"  # the environment wins over the file
    assert merged["IMAP_HOST"] == "imap.example.org"
    assert "WITHOUT_VALUE" not in merged


def test_settings_can_come_entirely_from_the_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in SOCKET_ENV.items()), encoding="utf-8")
    settings = Settings.from_env(load_environ({"IMAP_FOLDER": "Privacy"}, cwd=tmp_path))
    assert settings.imap.password.reveal() == IMAP_PASSWORD
    assert settings.imap.folder == "Privacy"


def test_without_a_dotenv_file_only_the_environment_counts(tmp_path: Path) -> None:
    assert load_environ({"A": "1"}, cwd=tmp_path) == {"A": "1"}
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".env").mkdir()  # a directory named .env is not a file
    assert load_environ({"A": "1"}, cwd=tmp_path / "sub") == {"A": "1"}


def test_load_environ_does_not_change_the_given_mapping(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("B=2\n", encoding="utf-8")
    environ = {"A": "1"}
    load_environ(environ, cwd=tmp_path)
    assert environ == {"A": "1"}


# --- secrets and immutability -----------------------------------------------------------------


def test_secrets_never_appear_in_repr_or_str_of_the_settings() -> None:
    settings = Settings.from_env(FULL_ENV)
    for text in (
        repr(settings),
        str(settings),
        repr(settings.slack),
        repr(settings.imap),
        repr(settings.smtp),
    ):
        for secret in SECRETS:
            assert secret not in text
    assert "**********" in repr(settings)


def test_secret_hides_its_value_but_compares_by_it() -> None:
    secret = Secret("hunter2")
    assert (str(secret), repr(secret), f"{secret}") == ("**********", "Secret('**********')", "**********")
    assert secret.reveal() == "hunter2"
    assert secret == Secret("hunter2")
    assert secret != Secret("hunter3")
    assert secret != "hunter2"
    assert hash(secret) == hash(Secret("hunter2"))
    assert bool(secret) and not bool(Secret(""))
    with pytest.raises(AttributeError):
        secret.other = 1  # type: ignore[attr-defined]


def test_settings_are_frozen() -> None:
    settings = Settings.from_env(FULL_ENV)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.retention_days = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.slack.channel_id = "C0OTHER01"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.imap.host = "evil.example"  # type: ignore[misc]
    assert settings.smtp is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.smtp.tls = "none"  # type: ignore[misc]
    assert isinstance(settings.slack.staff_user_ids, tuple)


def test_settings_do_not_read_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAP_FOLDER", "FromProcess")
    monkeypatch.setenv("TIMEZONE", "Nowhere/Town")
    settings = Settings.from_env(SOCKET_ENV)
    assert settings.imap.folder == "INBOX"
    assert settings.calendar.timezone == "Europe/Brussels"


# --- the CLI ------------------------------------------------------------------------------------


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m bot ARGS` in a clean environment: only PATH, HOME and `env`."""
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), "LANG": "C.UTF-8", **env}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=clean,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_run_with_a_missing_variable_exits_2_naming_it_without_printing_tokens(tmp_path: Path) -> None:
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN, "IMAP_PASSWORD": IMAP_PASSWORD}
    result = run_cli(["run"], env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "SLACK_CHANNEL_ID" in result.stderr
    for secret in SECRETS:
        assert secret not in result.stderr
        assert secret not in result.stdout
    assert not (tmp_path / "privacy-desk.sqlite3").exists()  # nothing was started


def test_run_with_a_malformed_token_exits_2_without_printing_it(tmp_path: Path) -> None:
    env = {**SOCKET_ENV, "SLACK_APP_TOKEN": BOT_TOKEN}
    result = run_cli(["run"], env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "SLACK_APP_TOKEN" in result.stderr
    assert BOT_TOKEN not in result.stderr + result.stdout


def test_run_reads_the_dotenv_file_of_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"SLACK_BOT_TOKEN={BOT_TOKEN}\nSLACK_APP_TOKEN={APP_TOKEN}\nSLACK_CHANNEL_ID=C0STAFF01\n",
        encoding="utf-8",
    )
    result = run_cli(["run"], {}, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "IMAP_HOST" in result.stderr  # the Slack variables came from .env; the next missing one is named
    assert BOT_TOKEN not in result.stderr + result.stdout


def test_run_with_a_broken_template_exits_2_naming_the_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "refusal.fr.txt").write_text("$greeting\n\nVotre mot de passe : $password\n", encoding="utf-8")
    env = {**SOCKET_ENV, "TEMPLATES_DIR": str(folder)}
    result = run_cli(["run"], env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert (
        "TEMPLATES_DIR" in result.stderr and "refusal.fr.txt:3: unknown variable $password" in result.stderr
    )
    assert not (tmp_path / "privacy-desk.sqlite3").exists()


def test_acknowledge_is_on_by_default_and_can_be_turned_off() -> None:
    assert Settings.from_env(FULL_ENV).acknowledge is True
    assert Settings.from_env({**FULL_ENV, "ACKNOWLEDGE": "false"}).acknowledge is False
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**FULL_ENV, "ACKNOWLEDGE": "sometimes"})
    assert refused.value.setting == "ACKNOWLEDGE"


def test_retention_days_zero_is_allowed() -> None:
    assert Settings.from_env({**FULL_ENV, "RETENTION_DAYS": "0"}).retention_days == 0


def test_every_setting_problem_is_reported_at_once(tmp_path: Path) -> None:
    env = {"SLACK_BOT_TOKEN": "xoxb-...", "SLACK_APP_TOKEN": "xapp-...", "IMAP_PASSWORD": "change-me",
           "IMAP_PORT": "imaps", "REMINDER_HOUR": "25"}  # fmt: skip
    with pytest.raises(ConfigError) as refused:
        Settings.from_env(env)
    problems = {e.setting: e.problem for e in refused.value.errors}  # type: ignore[attr-defined]
    assert set(problems) == {"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_CHANNEL_ID", "IMAP_HOST",
                             "IMAP_USERNAME", "IMAP_PASSWORD", "IMAP_PORT", "REMINDER_HOUR"}  # fmt: skip
    assert "placeholder of .env.example" in problems["SLACK_BOT_TOKEN"]
    assert "placeholder" in problems["IMAP_PASSWORD"]
    result = run_cli(["run"], env, tmp_path)
    assert result.returncode == 2
    assert "8 setting(s) to fix" in result.stderr and ".env.example" in result.stderr
    for name in problems:
        assert name in result.stderr
    assert "change-me" not in result.stderr


def test_an_oauth2_token_command_replaces_the_password() -> None:
    env = {k: v for k, v in SOCKET_ENV.items() if k != "IMAP_PASSWORD"}
    settings = Settings.from_env(
        {**env, "IMAP_AUTH": "oauth2", "IMAP_OAUTH2_TOKEN_COMMAND": "oama access privacy"}
    )
    assert settings.imap.token_command == "oama access privacy"
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**SOCKET_ENV, "IMAP_OAUTH2_TOKEN_COMMAND": "oama access privacy"})
    assert refused.value.setting == "IMAP_OAUTH2_TOKEN_COMMAND"


def test_the_token_command_gives_its_last_line_and_fails_as_an_outage() -> None:
    from bot.mailbox import command_token
    from core.errors import MailboxError

    assert command_token("printf 'refreshing\\nya29.token-value\\n'") == "ya29.token-value"
    with pytest.raises(MailboxError, match="exit 3"):
        command_token("sh -c 'exit 3'")
    with pytest.raises(MailboxError, match="could not be run"):
        command_token("/nonexistent/token-helper")


class _Recording(dict[str, str]):
    """An environment that remembers which variables were asked for."""

    asked: set[str]

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)


def test_the_configuration_reference_names_every_setting_and_the_readme_shows_it() -> None:
    from bot.settings import REFERENCE, record_settings_from_env, reference_markdown

    asked: set[str] = set()
    for env in (FULL_ENV, {**FULL_ENV, "SLACK_MODE": "http", "SMTP_HOST": "127.0.0.1"}):
        recording = _Recording(env)
        recording.asked = asked
        Settings.from_env(recording)
        record_settings_from_env(recording)
    documented = {doc.name for doc in REFERENCE}
    read_elsewhere = {"LOG_LEVEL", "LOG_FORMAT"}  # bot/cli.py reads them before any setting
    assert asked | read_elsewhere == documented
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- configuration reference: generated by `python -m bot.settings` -->", "<!-- end -->"
    assert start in readme, "the README has no generated configuration reference"
    shown = readme.split(start, 1)[1].split(end, 1)[0].strip() + "\n"
    assert shown == reference_markdown(), "README's reference differs: paste `python -m bot.settings` into it"
