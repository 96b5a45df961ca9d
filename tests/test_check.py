"""`privacy-desk check` as operators run it: a subprocess against the real Dovecot, the Slack
stand-in and an SMTP sink, first with everything right, then with one thing broken at a time.

What this proves:

- all good: exit status 0, one line per check, every one `ok` or `skipped`, the areas in order;
- each broken thing gives exit status 1 and exactly one `problem` line, in its area, naming the
  setting (or the fix); the other areas are still checked (an unreachable mailbox does not stop
  the Slack or SMTP checks);
- a malformed setting gives exit status 2 and the setting's name;
- no token or password ever shows in what it prints;
- the database is only looked at: never created, never migrated;
- the scopes it expects are the ones manifest.yaml asks for.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.check import MANIFEST_SCOPES, check_database, check_imap, scopes_line
from bot.settings import Settings
from storage.migrations import LATEST, apply_migrations
from tests.support.dovecot import Dovecot, MailUser, free_port
from tests.support.slack_standin import BOT_SCOPES, SlackStandIn
from tests.support.smtp_sink import Sink

ROOT = Path(__file__).resolve().parents[1]
AREAS = ("Settings", "IMAP", "Slack", "SMTP", "Database", "Templates")
SECRET_SETTINGS = (
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_SIGNING_SECRET",
    "IMAP_PASSWORD",
    "SMTP_PASSWORD",
)


@dataclass(frozen=True)
class Checked:
    """What one `privacy-desk check` printed, and its exit status."""

    status: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[tuple[str, str, str]]:
        """(status, area, text) of each line."""
        out = []
        for line in self.stdout.splitlines():
            status, area, text = line.split(maxsplit=2)
            out.append((status, area, text))
        return out

    @property
    def problems(self) -> list[tuple[str, str]]:
        """(area, text) of each problem line."""
        return [(area, text) for status, area, text in self.lines if status == "problem"]


async def run_check(env: dict[str, str], cwd: Path) -> Checked:
    """`privacy-desk check` in a subprocess (off the event loop: the Slack stand-in runs on it);
    fails if a secret of `env` shows in its output."""
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", "check"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    print(out.stdout, out.stderr, sep="")  # shown when a test fails
    for name in SECRET_SETTINGS:
        secret = env.get(name)
        if secret:
            assert secret not in out.stdout and secret not in out.stderr, f"{name} was printed"
    return Checked(out.returncode, out.stdout, out.stderr)


@pytest.fixture
def env(
    subprocess_env: dict[str, str], slack_env: dict[str, str], mailbox: MailUser, sink: Sink
) -> dict[str, str]:
    """A setup where everything is right: the test mailbox, the stand-in, the SMTP sink, and a
    database not created yet."""
    return {
        **subprocess_env,
        **slack_env,
        **mailbox.env(),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(sink.port),
        "SMTP_TLS": "none",
        "MAIL_FROM": "privacy@imal.example",
        "PYTHONPATH": str(ROOT),
    }


def existing_database(migrated_database: Path, env: dict[str, str], *, mode: int = 0o600) -> Path:
    """A copy of the migrated database at DATABASE_PATH, with `mode`."""
    path = Path(env["DATABASE_PATH"])
    shutil.copyfile(migrated_database, path)
    path.chmod(mode)
    return path


def assert_all_good(checked: Checked) -> None:
    assert checked.status == 0, checked.stdout + checked.stderr
    assert [status for status, _, _ in checked.lines if status not in ("ok", "skipped")] == []
    areas = [area for _, area, _ in checked.lines]
    assert sorted(set(areas), key=areas.index) == list(AREAS)


# --- all good -------------------------------------------------------------------------------------


async def test_all_good(env: dict[str, str], tmp_path: Path) -> None:
    checked = await run_check(env, tmp_path)
    assert_all_good(checked)
    texts = [text for _, _, text in checked.lines]
    assert "login as user" in checked.stdout and "IDLE offered" in checked.stdout
    assert f"scopes: the bot token has all {len(MANIFEST_SCOPES)} the manifest asks for" in texts
    assert any("Socket Mode: app-level token accepted" in t for t in texts)
    assert any("EHLO and NOOP answered (250); nothing was sent" in t for t in texts)
    assert any("does not exist yet: the first run creates it" in t for t in texts)
    assert not Path(env["DATABASE_PATH"]).exists()  # looked at, not created


async def test_all_good_with_an_existing_database(
    env: dict[str, str], tmp_path: Path, migrated_database: Path
) -> None:
    path = existing_database(migrated_database, env)
    checked = await run_check(env, tmp_path)
    assert_all_good(checked)
    assert ("ok", "Database", f"schema version {LATEST} (current)") in checked.lines
    assert ("ok", "Database", "readable as SQLite, quick_check ok") in checked.lines
    assert ("ok", "Database", "mode 600: only its owner can read it") in checked.lines
    assert ("ok", "Database", f"{path} exists and is writable") in checked.lines
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no -wal or -shm left behind


async def test_http_mode_without_smtp(env: dict[str, str], tmp_path: Path) -> None:
    for name in ("SMTP_HOST", "SMTP_PORT", "SMTP_TLS", "SLACK_APP_TOKEN"):
        env.pop(name)
    env["SLACK_MODE"] = "http"
    checked = await run_check(env, tmp_path)
    assert_all_good(checked)
    assert (
        "skipped",
        "SMTP",
        "SMTP_HOST not set: no acknowledgements, and replies from Slack are off",
    ) in checked.lines
    assert any(a == "Slack" and "SLACK_SIGNING_SECRET is set" in t for _, a, t in checked.lines)


async def test_a_server_without_idle_is_polled(dovecot: Dovecot, slack_env: dict[str, str]) -> None:
    user = dovecot.new_user(idle=False)
    settings = Settings.from_env({**slack_env, **user.env(), "IMAP_POLL_SECONDS": "45"})
    lines = await asyncio.to_thread(check_imap, settings.imap)
    assert [line.status for line in lines] == ["ok"] * 4
    assert lines[-1].text == "IDLE not offered: polling every 45 s (IMAP_POLL_SECONDS) will be used"


# --- one thing broken at a time -------------------------------------------------------------------


@dataclass
class Setup:
    """What a broken case may change: the environment, the stand-in, the files."""

    env: dict[str, str]
    slack: SlackStandIn
    tmp_path: Path
    migrated_database: Path


def _set(**changes: str | Callable[[], str]) -> Callable[[Setup], None]:
    def change(setup: Setup) -> None:
        setup.env.update({k: v() if callable(v) else v for k, v in changes.items()})

    return change


def _no_scope(setup: Setup) -> None:
    setup.slack.scopes.remove("im:write")


def _not_in_channel(setup: Setup) -> None:
    setup.slack.bot_in_channel = False


def _folder_is_a_file(setup: Setup) -> None:
    (setup.tmp_path / "file.txt").write_text("not a folder\n")
    setup.env["DATABASE_PATH"] = str(setup.tmp_path / "file.txt" / "privacy-desk.sqlite3")


def _readable_by_all(setup: Setup) -> None:
    existing_database(setup.migrated_database, setup.env, mode=0o644)


def _newer_schema(setup: Setup) -> None:
    path = existing_database(setup.migrated_database, setup.env)
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST + 1}")


BROKEN = [
    pytest.param(
        _set(IMAP_PORT=lambda: str(free_port())),
        "IMAP",
        ("cannot be reached (Connection refused)", "IMAP_HOST and IMAP_PORT"),
        id="closed IMAP port",
    ),
    pytest.param(_set(IMAP_FOLDER="Requests"), "IMAP", ("'Requests'", "IMAP_FOLDER"), id="no such folder"),
    pytest.param(
        _set(SLACK_BOT_TOKEN="xoxb-revoked-SECRET"),
        "Slack",
        ("invalid_auth", "SLACK_BOT_TOKEN"),
        id="bad bot token",
    ),
    pytest.param(
        _not_in_channel,
        "Slack",
        ("not a member", "SLACK_CHANNEL_ID", "/invite @privacy-desk"),
        id="bot not in channel",
    ),
    pytest.param(
        _set(SLACK_CHANNEL_ID="C0ELSEWHERE"), "Slack", ("not found", "SLACK_CHANNEL_ID"), id="unknown channel"
    ),
    pytest.param(
        _no_scope, "Slack", ("lacks im:write", "OAuth & Permissions", "reinstall"), id="a missing scope"
    ),
    pytest.param(
        _set(SLACK_APP_TOKEN="xapp-wrong-SECRET"),
        "Slack",
        ("invalid_auth", "SLACK_APP_TOKEN"),
        id="bad app token",
    ),
    pytest.param(
        _set(SMTP_PORT=lambda: str(free_port())),
        "SMTP",
        ("cannot be reached", "SMTP_HOST and SMTP_PORT"),
        id="SMTP on a closed port",
    ),
    pytest.param(
        _set(SMTP_USERNAME="privacy@imal.example", SMTP_PASSWORD="smtp-password-SECRET"),
        "SMTP",
        ("does not offer AUTH", "SMTP_USERNAME"),
        id="SMTP login not offered",
    ),
    pytest.param(
        _folder_is_a_file,
        "Database",
        ("cannot be created", "is a file", "DATABASE_PATH"),
        id="folder is a file",
    ),
    pytest.param(_readable_by_all, "Database", ("mode 644", "chmod 600"), id="database mode 0644"),
    pytest.param(
        _newer_schema,
        "Database",
        (f"schema version {LATEST + 1}", "newer", "DATABASE_PATH"),
        id="newer schema",
    ),
    pytest.param(
        _set(IMAP_PASSWORD="wrong-password-SECRET"),
        "IMAP",
        ("login refused for user", "IMAP_USERNAME and IMAP_PASSWORD"),
        id="wrong IMAP password",  # last: Dovecot delays the next login from this address
    ),
]


@pytest.mark.parametrize(("break_it", "area", "named"), BROKEN)
async def test_one_broken_thing(
    break_it: Callable[[Setup], None],
    area: str,
    named: tuple[str, ...],
    env: dict[str, str],
    slack: SlackStandIn,
    tmp_path: Path,
    migrated_database: Path,
) -> None:
    break_it(Setup(env, slack, tmp_path, migrated_database))
    checked = await run_check(env, tmp_path)
    assert checked.status == 1, checked.stdout + checked.stderr
    assert len(checked.problems) == 1, checked.stdout
    [(where, text)] = checked.problems
    assert where == area
    for fragment in named:
        assert fragment in text, text
    others = {a for status, a, _ in checked.lines if status == "ok"}
    assert set(AREAS) - {area} <= others, checked.stdout  # the other areas were still checked


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder, whatever its mode")
async def test_an_unwritable_database_folder(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    env["DATABASE_PATH"] = str(folder / "privacy-desk.sqlite3")
    try:
        checked = await run_check(env, tmp_path)
    finally:
        folder.chmod(0o700)
    assert checked.status == 1
    [(area, text)] = checked.problems
    assert area == "Database" and "not writable" in text and "DATABASE_PATH" in text


async def test_a_malformed_setting_exits_2(env: dict[str, str], tmp_path: Path) -> None:
    env["IMAP_PORT"] = "imap"
    checked = await run_check(env, tmp_path)
    assert checked.status == 2
    assert checked.stdout == ""
    assert "IMAP_PORT" in checked.stderr  # named (the wording is the CLI's)


# --- the pure parts -------------------------------------------------------------------------------


def manifest_bot_scopes(text: str) -> list[str]:
    """The list under `oauth_config: scopes: bot:` of a manifest (a tiny parser: two-space
    indentation, `- item` lists, `#` comments)."""
    path: list[str] = []
    scopes = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        depth = (len(line) - len(line.lstrip())) // 2
        item = line.strip()
        if item.startswith("- "):
            if path == ["oauth_config", "scopes", "bot"]:
                scopes.append(item[2:].strip())
            continue
        path = [*path[:depth], item.split(":", 1)[0]]
    return scopes


def test_the_scopes_are_the_manifests() -> None:
    wanted = manifest_bot_scopes((ROOT / "manifest.yaml").read_text(encoding="utf-8"))
    assert "chat:write" in wanted
    assert tuple(wanted) == MANIFEST_SCOPES
    assert tuple(BOT_SCOPES) == tuple(wanted)  # what the stand-in grants by default


def test_scopes_more_is_fine_fewer_is_a_problem() -> None:
    every = ",".join(MANIFEST_SCOPES)
    assert scopes_line(every).status == "ok"
    more = scopes_line(f"{every},files:write, reactions:write")
    assert more.status == "ok" and "also files:write, reactions:write (more is fine)" in more.text
    fewer = scopes_line(",".join(s for s in MANIFEST_SCOPES if s not in ("groups:read", "im:write")))
    assert fewer.status == "problem" and "lacks groups:read, im:write: add them" in fewer.text
    assert scopes_line(None).status == "skipped"


def test_an_older_database_is_left_for_the_next_run(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    apply_migrations(path, upto=LATEST - 1)
    path.chmod(0o600)
    lines = check_database(path)
    assert all(line.status == "ok" for line in lines), lines
    assert f"schema version {LATEST - 1}: will be migrated to {LATEST} at the next run" in [
        x.text for x in lines
    ]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST - 1  # not migrated


def test_a_file_that_is_not_sqlite_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "privacy-desk.sqlite3"
    path.write_bytes(b"this is not a database, but it is long enough to have a header\n" * 20)
    path.chmod(0o600)
    [problem] = [line for line in check_database(path) if line.status == "problem"]
    assert "cannot be read as an SQLite database" in problem.text and "DATABASE_PATH" in problem.text
