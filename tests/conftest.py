"""Shared fixtures: a real Dovecot, the Slack stand-in, a real SQLite store, settings for the product."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from bot.settings import Settings
from storage.store import Store
from tests.support.dovecot import Dovecot, MailUser, dovecot_binary
from tests.support.slack_standin import SlackStandIn
from tests.support.smtp_sink import Sink

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = ROOT.parent / "shared"
CHANNEL = "C0STAFF01"
STAFF = ("UALICE01", "UBOB0001")
OUTSIDER = "UMALLORY"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with the reason when that folder is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is only present in the team's workspace)")
    return path


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One real Dovecot for the whole session (skips when it is not installed)."""
    if dovecot_binary() is None:
        pytest.skip("dovecot is not installed: run ./scripts/test, which installs dovecot-imapd")
    server = Dovecot().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mailbox(dovecot: Dovecot) -> MailUser:
    """A fresh, empty mailbox on the session's Dovecot."""
    return dovecot.new_user()


@pytest.fixture(scope="module")
def server() -> Iterator[Dovecot]:
    """A Dovecot of the test file's own, for tests that stop it and start it again (other files'
    tests must not see the session's go away)."""
    if dovecot_binary() is None:
        pytest.skip("dovecot is not installed: run ./scripts/test, which installs dovecot-imapd")
    dovecot = Dovecot().start()
    try:
        yield dovecot
    finally:
        dovecot.stop()


@pytest.fixture
def user(server: Dovecot) -> Iterator[MailUser]:
    """A fresh mailbox on `server`; the server is running again after the test, whatever it did."""
    yield server.new_user()
    if server.proc is None:
        server.restart_server()


@pytest.fixture
async def slack() -> AsyncIterator[SlackStandIn]:
    """The Slack stand-in on loopback, with the staff channel and two staff members."""
    async with SlackStandIn(
        channel=CHANNEL,
        staff=STAFF,
        outsiders=(OUTSIDER,),
        bot_token="xoxb-test-token",
        app_token="xapp-test-token",
    ) as standin:
        yield standin


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database migrated once for the session (opening a fresh file replays every
    migration; the `store` fixture starts from a copy instead)."""
    path = tmp_path_factory.mktemp("template") / "privacy-desk.sqlite3"
    asyncio.run(_migrate(path))
    return path


async def _migrate(path: Path) -> None:
    await (await Store.open(path)).close()


@pytest.fixture
async def store(tmp_path: Path, migrated_database: Path) -> AsyncIterator[Store]:
    """A migrated store in a real SQLite file."""
    path = tmp_path / "privacy-desk.sqlite3"
    shutil.copyfile(migrated_database, path)
    path.chmod(0o600)
    s = await Store.open(path)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def slack_env(tmp_path: Path, slack: SlackStandIn) -> dict[str, str]:
    """The product's environment for tests that need Slack but no mailbox (no Dovecot: the IMAP
    settings are valid but name no server)."""
    return {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_APP_TOKEN": slack.app_token,
        "SLACK_SIGNING_SECRET": "test-signing-secret",
        "SLACK_CHANNEL_ID": CHANNEL,
        "SLACK_API_URL": slack.base_url,
        "DATABASE_PATH": str(tmp_path / "privacy-desk.sqlite3"),
        "TIMEZONE": "Europe/Brussels",
        "IMAP_HOST": "127.0.0.1",
        "IMAP_PORT": "1",
        "IMAP_TLS": "none",
        "IMAP_USERNAME": "privacy@imal.example",
        "IMAP_PASSWORD": "unused",
        "IMAP_IDLE_RENEW_SECONDS": "540",
    }


@pytest.fixture
def settings(slack_env: dict[str, str]) -> Settings:
    """Validated settings for the product under test (Slack stand-in; no mailbox server)."""
    return Settings.from_env(slack_env)


@pytest.fixture
def product_env(slack_env: dict[str, str], mailbox: MailUser) -> dict[str, str]:
    """The environment `privacy-desk run` gets in the end-to-end tests (INTERFACE.md names): the
    Slack stand-in and a mailbox on the real Dovecot."""
    return {**slack_env, **mailbox.env()}


@pytest.fixture
def mail_settings(product_env: dict[str, str]) -> Settings:
    """Validated settings with a real mailbox on Dovecot."""
    return Settings.from_env(product_env)


async def wait_until(predicate: Callable[[], object], timeout: float = 10.0, every: float = 0.02) -> object:
    """Poll `predicate` on the event loop until it is truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(every)


@pytest.fixture
def subprocess_env() -> dict[str, str]:
    """A clean environment for running the product as a subprocess (no inherited Slack/IMAP settings)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "IMAP_", "SMTP_"))}


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink()
    server.controller.start()
    try:
        yield server
    finally:
        server.controller.stop()
