"""The intake alarm (handlers/jobs/intake_alarm.py) and the injectable clock (PRIVACY_DESK_FAKE_NOW).

Proves, against a real Dovecot of this file's own (it is stopped and started again), the Slack
stand-in and a real SQLite file: a mailbox that cannot be read for IMAP_ALERT_MINUTES posts one
`privacy_intake_alarm` "down" to the channel (not one per retry), dated from the first failed
attempt and in plain words; its return posts one "up", and mail delivered meanwhile is taken in;
a shorter outage posts nothing; a restarted product counts from its own first failure and neither
repeats an alarm already posted nor forgets the all-clear. The product runs in-process
(`bot.runtime.run`) on a clock the test moves forward, so a minute of outage takes no minute.
Also: `plain_reason` for each kind of failure (made up, and real ones told by the watcher);
PRIVACY_DESK_FAKE_NOW, REMINDER_HOUR and IMAP_ALERT_MINUTES validated by `Settings.from_env` and
by `privacy-desk run` (exit 2 naming the variable); a product started at a fake instant logs a
warning and runs its clock from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from imapclient.exceptions import IMAPClientError, LoginError

from bot.runtime import build_watcher, run
from bot.settings import Secret, Settings
from core.errors import ConfigError, MailboxError
from handlers.jobs.intake_alarm import IntakeHealth, plain_reason
from storage.store import Store
from tests.conftest import CHANNEL, ROOT, wait_until
from tests.support.dovecot import Dovecot, MailUser, free_port
from tests.support.slack_standin import SlackStandIn

ALARM = "privacy_intake_alarm"
BRUSSELS = ZoneInfo("Europe/Brussels")
#: Words that would betray a technical message (an exception's name or its text).
TECHNICAL = ("Error", "Exception", "Errno", "errno", "Traceback", "socket", "[", "b'", "SSL:", "imaplib")


# --- the product, its mailbox and its clock -------------------------------------------------------


@pytest.fixture
def alarm_settings(slack_env: dict[str, str], user: MailUser) -> Settings:
    """The product against the Slack stand-in and `user`'s mailbox, alerting after one minute."""
    return Settings.from_env({**slack_env, **user.env(), "IMAP_ALERT_MINUTES": "1"})


class MovableClock:
    """The real time plus an offset that the test moves forward (the product reads it as its
    clock: the intake health, the scheduler, the alarm job and the store all get it)."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


def before_a_minute_starts(ahead: timedelta, *, seconds: float) -> MovableClock:
    """A clock `ahead` of the real time, moved on to `seconds` before the next start of a minute
    (the scheduler's rounds are at the start of each minute of its clock)."""
    now = datetime.now(UTC) + ahead
    into = now.second + now.microsecond / 1e6
    return MovableClock(ahead + timedelta(seconds=(60 - seconds - into) % 60))


@asynccontextmanager
async def running(settings: Settings, slack: SlackStandIn, clock: MovableClock) -> AsyncIterator[None]:
    """`privacy-desk run` in-process, connected to the Slack stand-in; stopped (exit 0) at the end."""
    stop = asyncio.Event()
    before = slack.connection_count
    task = asyncio.create_task(run(settings, stop=stop, handle_signals=False, clock=clock))
    try:
        await slack.wait_for_socket(timeout=30, after=before)
        yield
    finally:
        stop.set()
        status = await asyncio.wait_for(task, 60)
    assert status == 0


def request_email(n: int) -> bytes:
    m = EmailMessage()
    m["From"] = f"Person {n} <person{n}@example.org>"
    m["To"] = "privacy@imal.example"
    m["Subject"] = f"Please delete my data ({n})"
    m["Message-ID"] = f"<alarm-req{n}@example.org>"
    m.set_content(f"Hello, please erase the personal data you hold about me. Person {n}")
    return m.as_bytes()


async def append(user: MailUser, raw: bytes, **kw: object) -> None:
    await asyncio.to_thread(user.append, raw, **kw)


def deliver_to_maildir(server: Dovecot, user: MailUser, raw: bytes) -> None:
    """Deliver as the mail system's delivery agent does while IMAP is down: into the Maildir."""
    maildir = server.tmp / "home" / user.name / "Maildir"
    name = f"{time.time_ns()}.P{os.getpid()}.alarm-test"
    staged = maildir / "tmp" / name
    staged.write_bytes(raw)
    if os.geteuid() == 0:
        os.chown(staged, server.uid, server.gid)
    os.rename(staged, maildir / "new" / name)


def alarms(slack: SlackStandIn) -> list[dict[str, Any]]:
    """Every intake alarm message posted anywhere (they all belong top-level in the channel)."""
    return [m for m in slack.messages if (m["metadata"] or {}).get("event_type") == ALARM]


def states(slack: SlackStandIn) -> list[str]:
    return [m["metadata"]["event_payload"]["state"] for m in alarms(slack)]


def case_ids(slack: SlackStandIn) -> list[str]:
    return [r["metadata"]["event_payload"]["message_id"] for r in slack.roots(CHANNEL)]


def since_of(message: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(message["metadata"]["event_payload"]["since"])


def on_the_clock(instant: datetime) -> str:
    """How the alarm shows an instant: "Tue 1 Dec 2026 at 10:21" in the controller's time zone."""
    local = instant.astimezone(BRUSSELS)
    return f"{local:%a} {local.day} {local:%b %Y} at {local:%H:%M}"


def outages(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The watcher's "unavailable" warnings: one per outage of each run, at its first failure."""
    return [r for r in caplog.records if r.name == "bot.mailbox" and "unavailable" in r.getMessage()]


def logged(caplog: pytest.LogCaptureFixture, words: str) -> Callable[[], int]:
    return lambda: sum(words in r.getMessage() for r in caplog.records if r.name == "bot.mailbox")


def notices(settings: Settings) -> list[tuple[str, dict[str, Any]]]:
    with contextlib.closing(sqlite3.connect(settings.database_path)) as db:
        rows = db.execute(
            "SELECT key, payload FROM notices WHERE kind = 'intake_alarm' ORDER BY id"
        ).fetchall()
    return [(key, json.loads(payload)) for key, payload in rows]


async def settled(slack: SlackStandIn, quiet: float = 1.0) -> None:
    """Until the product has called Slack for nothing for `quiet` seconds."""
    last = -1
    while len(slack.calls) != last:
        last = len(slack.calls)
        await asyncio.sleep(quiet)


def assert_plain(text: str, settings: Settings) -> None:
    """No exception name or text, no server address, no login, no password."""
    for word in (*TECHNICAL, settings.imap.host, str(settings.imap.port), settings.imap.username):
        assert word not in text, f"{word!r} in {text!r}"
    assert settings.imap.password.reveal() not in text


# --- the alarm and the all-clear ----------------------------------------------------------------


async def test_a_stopped_mailbox_posts_one_alarm_and_its_return_one_all_clear_and_the_mail_meanwhile(
    server: Dovecot,
    user: MailUser,
    alarm_settings: Settings,
    slack: SlackStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    clock = MovableClock()
    await append(user, request_email(1))
    async with running(alarm_settings, slack, clock):
        await wait_until(lambda: len(slack.roots(CHANNEL)) == 1, 20)
        stopped_at = clock()
        await asyncio.to_thread(server.stop_server, crash=True)
        try:
            await wait_until(lambda: outages(caplog), 15)
            first_failure = datetime.fromtimestamp(outages(caplog)[0].created, UTC)
            deliver_to_maildir(server, user, request_email(2))  # mail keeps arriving meanwhile
            assert alarms(slack) == []
            clock.advance(timedelta(seconds=61))  # the outage is now longer than IMAP_ALERT_MINUTES
            await wait_until(lambda: alarms(slack), 15)
            await asyncio.sleep(4)  # more retries fail meanwhile (each wakes the scheduler)
            assert states(slack) == ["down"]
        finally:
            restarted_at = clock()
            await asyncio.to_thread(server.restart_server)
        await wait_until(lambda: len(alarms(slack)) == 2, 30)
        await wait_until(lambda: len(slack.roots(CHANNEL)) == 2, 20)
        await settled(slack)

    assert states(slack) == ["down", "up"]
    down, up = alarms(slack)
    assert all(m["channel"] == CHANNEL and not m["thread_ts"] for m in (down, up))
    assert set(down["metadata"]["event_payload"]) == {"state", "since"}
    since = since_of(down)
    # the first failed attempt (to the second: the storage format), not a later retry
    assert stopped_at.replace(microsecond=0) <= since <= first_failure + timedelta(seconds=1)
    assert down["text"] == (
        f":rotating_light: The privacy mailbox cannot be read since {on_the_clock(since)}: "
        "the mail server cannot be reached (it may be down, or the network is).\n"
        "New requests sent to the privacy address are not reaching this channel, and their legal "
        "deadlines are running. The bot keeps trying every minute and will say here when it works "
        "again; until then, please ask whoever runs the mail server to look at it (folder INBOX)."
    )
    assert_plain(down["text"] + " ".join(b["text"]["text"] for b in down["blocks"]), alarm_settings)
    assert restarted_at.replace(microsecond=0) <= since_of(up) <= clock()
    assert up["text"] == (
        f":white_check_mark: The privacy mailbox can be read again since {on_the_clock(since_of(up))} "
        f"(it could not be read from {on_the_clock(since)}). Mail that arrived meanwhile is being taken in now."
    )
    assert case_ids(slack) == ["<alarm-req1@example.org>", "<alarm-req2@example.org>"]
    assert [key for key, _ in notices(alarm_settings)] == ["down", "up"]


async def test_an_outage_shorter_than_the_alert_minutes_posts_nothing(
    server: Dovecot,
    user: MailUser,
    alarm_settings: Settings,
    slack: SlackStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    clock = MovableClock()
    async with running(alarm_settings, slack, clock):
        await wait_until(logged(caplog, "first start on this folder"), 15)
        await asyncio.to_thread(server.stop_server, crash=True)
        try:
            await wait_until(lambda: outages(caplog), 15)
            clock.advance(timedelta(seconds=30))
            await asyncio.sleep(3)  # retries at 30-33 s of outage: each wakes the scheduler
        finally:
            await asyncio.to_thread(server.restart_server)
        await wait_until(logged(caplog, "available again"), 30)
        await append(user, request_email(1))
        await wait_until(lambda: slack.roots(CHANNEL), 20)
        await settled(slack)
    assert alarms(slack) == []
    assert notices(alarm_settings) == []


async def test_a_restarted_product_counts_the_outage_from_its_own_first_failure(
    server: Dovecot,
    user: MailUser,
    alarm_settings: Settings,
    slack: SlackStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with running(alarm_settings, slack, MovableClock()):
        await wait_until(logged(caplog, "first start on this folder"), 15)
        await asyncio.to_thread(server.stop_server, crash=True)
        await wait_until(lambda: outages(caplog), 15)
    old_failure = datetime.fromtimestamp(outages(caplog)[0].created, UTC)

    # started again 90 s later (on its clock), the mailbox still down: the old outage is over a
    # minute old, this process's own is seconds old
    clock = MovableClock(timedelta(seconds=90))
    async with running(alarm_settings, slack, clock):
        await wait_until(lambda: len(outages(caplog)) == 2, 15)
        own_failure = datetime.fromtimestamp(outages(caplog)[1].created, UTC) + clock.offset
        await asyncio.sleep(3)  # its retries, each with a scheduler round
        assert alarms(slack) == []
        clock.advance(timedelta(seconds=61))
        await wait_until(lambda: alarms(slack), 15)
    assert states(slack) == ["down"]
    since = since_of(alarms(slack)[0])
    assert own_failure - timedelta(seconds=3) <= since <= own_failure + timedelta(seconds=1)
    assert since > old_failure + timedelta(seconds=60)


async def test_a_restart_during_an_outage_already_alarmed_posts_no_second_alarm_and_then_the_all_clear(
    server: Dovecot,
    user: MailUser,
    alarm_settings: Settings,
    slack: SlackStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    first = MovableClock()
    async with running(alarm_settings, slack, first):
        await wait_until(logged(caplog, "first start on this folder"), 15)
        await asyncio.to_thread(server.stop_server, crash=True)
        await wait_until(lambda: outages(caplog), 15)
        first.advance(timedelta(seconds=61))
        await wait_until(lambda: alarms(slack), 15)
        await settled(slack, 0.5)
    down_since = since_of(alarms(slack)[0])

    later = MovableClock(timedelta(minutes=3))
    try:
        async with running(alarm_settings, slack, later):
            await wait_until(lambda: len(outages(caplog)) == 2, 15)
            later.advance(timedelta(seconds=61))  # this process's own outage is past the minute too
            await asyncio.sleep(3)  # its retries, each with a scheduler round
            assert states(slack) == ["down"]
            await asyncio.to_thread(server.restart_server)
            await wait_until(lambda: len(alarms(slack)) == 2, 30)
            await settled(slack)
    finally:
        if server.proc is None:
            await asyncio.to_thread(server.restart_server)
    assert states(slack) == ["down", "up"]
    up = alarms(slack)[1]
    assert f"(it could not be read from {on_the_clock(down_since)})" in up["text"]
    assert [(key, payload.get("down_since")) for key, payload in notices(alarm_settings)] == [
        ("down", None),
        ("up", down_since.isoformat()),
    ]


async def test_a_product_restarted_after_the_mailbox_came_back_gives_the_all_clear_at_its_first_rounds(
    server: Dovecot,
    user: MailUser,
    alarm_settings: Settings,
    slack: SlackStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    first = MovableClock()
    async with running(alarm_settings, slack, first):
        await wait_until(logged(caplog, "first start on this folder"), 15)
        await asyncio.to_thread(server.stop_server, crash=True)
        await wait_until(lambda: outages(caplog), 15)
        first.advance(timedelta(seconds=61))
        await wait_until(lambda: alarms(slack), 15)
        await settled(slack, 0.5)
    down_since = since_of(alarms(slack)[0])
    await asyncio.to_thread(server.restart_server)  # the mailbox came back while the bot was stopped

    # started again 3 minutes later on its clock, a few seconds before a minute starts: the
    # all-clear comes at its first round, or at the latest at the round of that minute
    later = before_a_minute_starts(timedelta(minutes=3), seconds=4)
    async with running(alarm_settings, slack, later):
        await wait_until(lambda: len(alarms(slack)) == 2, 15)
        await settled(slack)
    assert states(slack) == ["down", "up"]
    assert f"(it could not be read from {on_the_clock(down_since)})" in alarms(slack)[1]["text"]
    assert since_of(alarms(slack)[1]) > down_since + timedelta(minutes=3)


# --- the product on a fake clock ------------------------------------------------------------------


async def test_a_product_started_at_a_fake_instant_warns_and_runs_its_clock_from_there(
    user: MailUser,
    slack: SlackStandIn,
    slack_env: dict[str, str],
    subprocess_env: dict[str, str],
    tmp_path: Path,
) -> None:
    fake_now = datetime(2026, 3, 2, 10, 0, tzinfo=BRUSSELS)  # a Monday, months before the real now
    await append(user, request_email(1), msg_time=fake_now)  # it reached the mailbox at that instant
    env = {
        **subprocess_env,
        **slack_env,
        **user.env(),
        "PYTHONPATH": str(ROOT),
        "PRIVACY_DESK_FAKE_NOW": "2026-03-02T10:00:00+01:00",
    }
    log = tmp_path / "product.log"
    started = time.monotonic()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run"], env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        await wait_until(lambda: slack.roots(CHANNEL), 30)
        await settled(slack, 0.5)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    elapsed = timedelta(seconds=time.monotonic() - started)

    lines = log.read_text(errors="replace").splitlines()
    warning = next(i for i, line in enumerate(lines) if "PRIVACY_DESK_FAKE_NOW" in line)
    assert " WARNING " in lines[warning]
    assert "2026-03-02T10:00:00+01:00" in lines[warning]  # the instant it starts at
    running_line = next(i for i, line in enumerate(lines) if "privacy desk running" in line)
    assert warning < running_line  # said at start

    with contextlib.closing(sqlite3.connect(env["DATABASE_PATH"])) as db:
        ref, created_at = db.execute("SELECT ref, created_at FROM cases").fetchone()
    created = datetime.fromisoformat(created_at)
    assert fake_now - timedelta(seconds=1) <= created <= fake_now + elapsed + timedelta(seconds=1)
    assert ref == "PRIV-2026-0001"
    root = slack.roots(CHANNEL)[0]
    due = date.fromisoformat(root["metadata"]["event_payload"]["due_date"])
    days = (due - date(2026, 3, 2)).days  # counted from the fake today, not from the real one
    assert days > 1
    assert f"({days} days left)" in root["text"]


# --- the reason, in plain words ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "the mail server cannot be reached"),
        (OSError(113, "No route to host: imap.example.org"), "the mail server cannot be reached"),
        (EOFError("socket closed by imap.example.org"), "the mail server cannot be reached"),
        (TimeoutError("timed out"), "the mail server does not answer in time"),
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known: imap.example.org"),
            "the mail server's name cannot be found",
        ),
        (
            ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"),
            "the secure connection to the mail server failed",
        ),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), "the secure connection to"),
        (
            LoginError("b'[AUTHENTICATIONFAILED] Authentication failed for privacy@imal.example.'"),
            "the mail server refused the bot's login",
        ),
        (IMAPClientError("AUTHENTICATE failed: invalid credentials"), "the mail server refused"),
        (MailboxError("cannot open folder 'Privacy/Requests'"), "the mail server no longer has the folder"),
        (ValueError("unexpected response b'* 12 FOO'"), "the mailbox could not be read"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else None,
)
def test_the_reason_of_each_kind_of_failure_is_in_plain_words(error: BaseException, words: str) -> None:
    reason = plain_reason(error)
    assert reason.startswith(words)
    assert reason == reason.strip() and reason[0].islower() and not reason.endswith(".")
    assert type(error).__name__ not in reason
    assert str(error) not in reason
    for word in (*TECHNICAL, "imap.example.org", "privacy@imal.example", "Privacy/Requests"):
        assert word not in reason


@pytest.fixture
def watched_settings(slack_env: dict[str, str], server: Dovecot) -> Settings:
    user = server.new_user()
    return Settings.from_env({**slack_env, **user.env()})


@pytest.mark.parametrize(
    ("failure", "words"),
    [
        ("nothing listens", "the mail server cannot be reached"),
        ("untrusted certificate", "the secure connection to the mail server failed"),
        ("no such folder", "the mail server no longer has the folder the bot watches"),
        ("wrong password", "the mail server refused the bot's login"),
    ],
)
async def test_the_watcher_tells_the_health_each_real_failure_in_plain_words(
    failure: str,
    words: str,
    watched_settings: Settings,
    server: Dovecot,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    imap = watched_settings.imap
    changes: dict[str, object] = {
        "nothing listens": {"port": free_port()},
        "wrong password": {"password": Secret("not-the-password")},
        "untrusted certificate": {"host": "localhost", "port": server.imaps_port, "tls": "ssl"},
        "no such folder": {"folder": "Privacy/Requests"},
    }[failure]
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)  # the test server's certificate is not trusted
    settings = dataclasses.replace(watched_settings, imap=dataclasses.replace(imap, **changes))  # type: ignore[arg-type]
    health = IntakeHealth(MovableClock())
    before = datetime.now(UTC)
    watcher = build_watcher(settings, store, loop=asyncio.get_running_loop(), health=health)
    watcher.start()
    try:
        await wait_until(lambda: health.snapshot().down_since is not None, 15)
    finally:
        await watcher.stop()
    state = health.snapshot()
    assert state.reason.startswith(words)
    assert state.reached_at is None
    assert state.down_since is not None and before <= state.down_since <= datetime.now(UTC)
    assert_plain(state.reason, settings)
    assert "Privacy/Requests" not in state.reason


# --- settings: PRIVACY_DESK_FAKE_NOW, REMINDER_HOUR, IMAP_ALERT_MINUTES -----------------------------

BASE_ENV = {
    "SLACK_BOT_TOKEN": "xoxb-1111-bot-token",
    "SLACK_APP_TOKEN": "xapp-2222-app-token",
    "SLACK_CHANNEL_ID": CHANNEL,
    "IMAP_HOST": "imap.example.org",
    "IMAP_USERNAME": "privacy@imal.example",
    "IMAP_PASSWORD": "imap-password",
}


def from_env(**changes: str) -> Settings:
    return Settings.from_env({**BASE_ENV, **changes})


def config_error(**changes: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        from_env(**changes)
    return info.value


def test_the_defaults_are_no_fake_clock_reminders_at_9_and_an_alarm_after_30_minutes() -> None:
    settings = from_env()
    assert (settings.fake_now, settings.reminder_hour, settings.imap_alert_minutes) == (None, 9, 30)
    assert from_env(PRIVACY_DESK_FAKE_NOW="  ").fake_now is None


@pytest.mark.parametrize(
    ("value", "timezone", "instant"),
    [
        ("2026-03-02T08:30:00Z", "Europe/Brussels", datetime(2026, 3, 2, 8, 30, tzinfo=UTC)),
        ("2026-03-02T08:30:00+05:30", "Europe/Brussels", datetime(2026, 3, 2, 3, 0, tzinfo=UTC)),
        ("2026-03-02T09:30:00", "Europe/Brussels", datetime(2026, 3, 2, 8, 30, tzinfo=UTC)),  # CET
        ("2026-07-01T09:00:00", "Europe/Brussels", datetime(2026, 7, 1, 7, 0, tzinfo=UTC)),  # CEST
        ("2026-07-01T09:00:00", "America/New_York", datetime(2026, 7, 1, 13, 0, tzinfo=UTC)),
        (" 2026-03-02 08:30:00+00:00 ", "Europe/Brussels", datetime(2026, 3, 2, 8, 30, tzinfo=UTC)),
    ],
)
def test_the_fake_now_is_an_instant_read_in_the_time_zone_when_it_has_no_offset(
    value: str, timezone: str, instant: datetime
) -> None:
    fake_now = from_env(PRIVACY_DESK_FAKE_NOW=value, TIMEZONE=timezone).fake_now
    assert fake_now == instant
    assert fake_now is not None and fake_now.tzinfo is not None


@pytest.mark.parametrize("value", ["tomorrow", "2026-13-01T00:00:00Z", "1767225600", "2026-03-02T25:00"])
def test_a_fake_now_that_is_not_an_instant_is_refused_naming_the_variable(value: str) -> None:
    error = config_error(PRIVACY_DESK_FAKE_NOW=value)
    assert error.setting == "PRIVACY_DESK_FAKE_NOW"
    assert str(error).startswith("PRIVACY_DESK_FAKE_NOW: ")
    assert value in error.problem


@pytest.mark.parametrize(("value", "hour"), [("0", 0), ("7", 7), ("23", 23), (" 14 ", 14)])
def test_the_reminder_hour_is_a_local_hour(value: str, hour: int) -> None:
    assert from_env(REMINDER_HOUR=value).reminder_hour == hour


@pytest.mark.parametrize("value", ["24", "-1", "9am", "9.5"])
def test_a_reminder_hour_outside_0_to_23_is_refused_naming_the_variable(value: str) -> None:
    error = config_error(REMINDER_HOUR=value)
    assert error.setting == "REMINDER_HOUR"
    assert str(error).startswith("REMINDER_HOUR: ")


@pytest.mark.parametrize(("value", "minutes"), [("1", 1), ("5", 5), ("10080", 10080)])
def test_the_alert_minutes_are_whole_minutes(value: str, minutes: int) -> None:
    assert from_env(IMAP_ALERT_MINUTES=value).imap_alert_minutes == minutes


@pytest.mark.parametrize("value", ["0", "-5", "half an hour", "10081"])
def test_alert_minutes_that_are_not_a_positive_whole_number_are_refused_naming_the_variable(
    value: str,
) -> None:
    assert config_error(IMAP_ALERT_MINUTES=value).setting == "IMAP_ALERT_MINUTES"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PRIVACY_DESK_FAKE_NOW", "next monday"),
        ("REMINDER_HOUR", "24"),
        ("IMAP_ALERT_MINUTES", "0"),
        # an instant the product's dates cannot run from (its due dates would overflow)
        ("PRIVACY_DESK_FAKE_NOW", "9999-12-31T23:59:59Z"),
    ],
)
def test_run_exits_2_naming_a_bad_clock_or_alarm_setting(
    name: str, value: str, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/api/"  # should the settings pass, nothing is reached
    env = {
        **subprocess_env,
        **BASE_ENV,
        "SLACK_API_URL": nowhere,
        "IMAP_HOST": "127.0.0.1",
        "IMAP_PORT": str(free_port()),
        "IMAP_TLS": "none",
        "DATABASE_PATH": str(tmp_path / "privacy-desk.sqlite3"),
        "PYTHONPATH": str(ROOT),
        name: value,
    }
    out = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert name in out.stderr
    assert "Traceback" not in out.stderr
    assert BASE_ENV["IMAP_PASSWORD"] not in out.stderr + out.stdout
