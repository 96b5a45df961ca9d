"""`privacy-desk run` as its users run it: a subprocess against a real Dovecot and the Slack stand-in.

Covers delivery to one root per case with the INTERFACE.md metadata, follow-ups in the thread,
machine traffic ignored, a clean SIGTERM, no duplicates after a restart, and no duplicates after
a SIGKILL between Slack storing a root and the product saving its ts.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import CHANNEL, FIXTURES, ROOT, wait_until
from tests.support.dovecot import MailUser, free_port
from tests.support.slack_standin import SlackStandIn, sign_http_request

pytestmark = pytest.mark.slow

EMAILS = FIXTURES / "emails"
#: personal data in the fixtures that must never reach the product's log
PERSONAL = (
    "marie.dubois",
    "Marie Dubois",
    "jerome.lefevre",
    "Lefèvre",
    "copy of the personal data",
    "supprimer mon compte",
    "mallory@example.com",
    "jo.peeters",
)


class Product:
    """One `privacy-desk run` process."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.args: list[str] = []

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bot", "run", *self.args],
                env=self.env,
                cwd=self.log.parent,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        with __import__("contextlib").suppress(ProcessLookupError):
            self.proc.send_signal(sig)

    async def wait(self, timeout: float = 30) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(asyncio.to_thread(self.proc.wait), timeout)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def env(product_env: dict[str, str], subprocess_env: dict[str, str]) -> dict[str, str]:
    return {**subprocess_env, **product_env, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "DEBUG"}


@pytest.fixture
def product(env: dict[str, str], tmp_path: Path) -> Iterator[Product]:
    p = Product(env, tmp_path / "product.log")
    try:
        yield p
    finally:
        p.stop()


@asynccontextmanager
async def running(product: Product, slack: SlackStandIn) -> AsyncIterator[Product]:
    before = slack.connection_count
    product.start()
    try:
        await slack.wait_for_socket(timeout=30, after=before)
        yield product
    except BaseException:
        # shown with the failure: what the product logged and what Slack received
        print(f"--- roots: {len(slack.roots(CHANNEL))}, calls:")
        for call in slack.calls:
            print(call["at"], call["method"], call["fault"] or "", call["error"] or "")
        print(f"--- product log ({product.log}):")
        print(product.log.read_text(encoding="utf-8", errors="replace")[-20000:])
        raise


async def deliver(mailbox: MailUser, *names: str) -> None:
    for name in names:
        await asyncio.to_thread(mailbox.append, (EMAILS / name).read_bytes())


async def settled(slack: SlackStandIn, quiet: float = 1.0) -> None:
    """Wait until the product has posted nothing for `quiet` seconds (its publisher is idle)."""
    last = -1
    while len(slack.calls) != last:
        last = len(slack.calls)
        await asyncio.sleep(quiet)


def email_replies(slack: SlackStandIn, root: dict[str, object]) -> list[dict[str, object]]:
    """The thread replies that show emails (the thread also holds the checklist and notes)."""
    return [
        m
        for m in slack.replies(str(root["ts"]))
        if (m.get("metadata") or {}).get("event_type") == "privacy_case_email"
    ]


def root_ids(slack: SlackStandIn) -> list[str]:
    return [r["metadata"]["event_payload"]["message_id"] for r in slack.roots(CHANNEL)]


async def test_mail_to_slack_end_to_end_with_restart(
    product: Product, slack: SlackStandIn, mailbox: MailUser, env: dict[str, str]
) -> None:
    async with running(product, slack):
        await deliver(
            mailbox,
            "access-short-en.eml",
            "vacation-auto-reply.eml",
            "erasure-fr-qp.eml",
            "bounce-dsn.eml",
            "injection-html.eml",
            "outlook-binary.msg",
        )
        await wait_until(lambda: len(slack.roots(CHANNEL)) == 4, 20)
        await deliver(mailbox, "followup-reply.eml")
        first = slack.roots(CHANNEL)[0]
        await wait_until(lambda: len(email_replies(slack, first)) == 2, 20)
        await settled(slack)
        product.signal(signal.SIGTERM)
        assert await product.wait(30) == 0

    assert root_ids(slack)[:3] == [
        "<short-access-1@example.org>",
        "<erasure-fr-1@example.net>",
        "<inject-1@example.com>",
    ]
    payloads = [r["metadata"]["event_payload"] for r in slack.roots(CHANNEL)]
    assert [p["case_ref"] for p in payloads] == [f"PRIV-2026-{n:04d}" for n in range(1, 5)]
    assert all(
        set(p) == {"case_ref", "message_id", "kind", "status", "due_date", "assignee"} for p in payloads
    )
    assert all(p["status"] == "new" and p["assignee"] == "" for p in payloads)
    for root in slack.roots(CHANNEL):
        assert slack.replies(root["ts"]), "every root has the email in its thread"

    # restart: nothing is posted again; new mail still opens a case
    posts = len(slack.calls_to("chat.postMessage"))
    async with running(product, slack):
        await asyncio.sleep(2)
        assert len(slack.calls_to("chat.postMessage")) == posts
        await deliver(mailbox, "no-message-id.eml")
        await wait_until(lambda: len(slack.roots(CHANNEL)) == 5, 20)
        product.signal(signal.SIGINT)
        assert await product.wait(30) == 0

    database = Path(env["DATABASE_PATH"])
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT COUNT(*) FROM emails").fetchone()[0] == 8
        assert db.execute("SELECT COUNT(*) FROM cases").fetchone()[0] == 5
    log = product.log.read_text(encoding="utf-8", errors="replace")
    for secret in ("xoxb-test-token", "xapp-test-token", mailbox.password):
        assert secret not in log
    for personal in PERSONAL:
        assert personal not in log, f"personal data in the log: {personal!r}"
    assert "PRIV-2026-0001" in log  # logs name case references instead


async def test_no_duplicate_after_a_kill_between_posting_and_saving(
    product: Product, slack: SlackStandIn, mailbox: MailUser
) -> None:
    killed: list[str] = []

    def kill_once(message: dict[str, object]) -> None:
        metadata = message.get("metadata") or {}
        if isinstance(metadata, dict) and metadata.get("event_type") == "privacy_case" and not killed:
            killed.append(str(message["ts"]))
            product.signal(signal.SIGKILL)  # Slack has the root; the product never hears back

    slack.on_message_posted = kill_once
    async with running(product, slack):
        await deliver(mailbox, "access-short-en.eml", "erasure-fr-qp.eml")
        await wait_until(lambda: killed, 20)
        assert await product.wait(10) == -signal.SIGKILL
    slack.on_message_posted = None
    async with running(product, slack):
        await wait_until(
            lambda: (
                len(slack.roots(CHANNEL)) == 2 and all(slack.replies(r["ts"]) for r in slack.roots(CHANNEL))
            ),
            30,
        )
        await asyncio.sleep(1)
        product.signal(signal.SIGTERM)
        assert await product.wait(30) == 0
    assert sorted(root_ids(slack)) == ["<erasure-fr-1@example.net>", "<short-access-1@example.org>"]
    assert slack.roots(CHANNEL)[0]["ts"] == killed[0]
    assert all(len(email_replies(slack, r)) == 1 for r in slack.roots(CHANNEL))


async def test_mail_that_arrives_while_slack_is_down_is_posted_later(
    product: Product, slack: SlackStandIn, mailbox: MailUser
) -> None:
    async with running(product, slack):
        slack.faults(down=True)
        await deliver(mailbox, "access-short-en.eml")
        await asyncio.sleep(6)  # longer than slack-sdk's own retries: the publisher's backoff takes over
        assert slack.roots(CHANNEL) == []
        slack.faults(down=False)
        await wait_until(lambda: len(slack.roots(CHANNEL)) == 1, 60)
        product.signal(signal.SIGTERM)
        assert await product.wait(30) == 0
    log = product.log.read_text()
    assert log.count("Slack unavailable") == 1
    assert log.count("Slack available again") == 1


async def test_configuration_errors_exit_2_naming_the_setting(env: dict[str, str], tmp_path: Path) -> None:
    broken = {k: v for k, v in env.items() if k != "IMAP_HOST"}
    out = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        env=broken,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "IMAP_HOST" in out.stderr
    assert env["SLACK_BOT_TOKEN"] not in out.stderr + out.stdout


async def test_http_mode_serves_slack_requests_with_signature_verification(
    product: Product, slack: SlackStandIn, mailbox: MailUser
) -> None:
    port = free_port()
    product.args = ["--http", str(port)]
    product.start()
    url = f"http://127.0.0.1:{port}/slack/events"
    await deliver(mailbox, "access-short-en.eml")
    await wait_until(lambda: slack.roots(CHANNEL), 20)
    root = slack.roots(CHANNEL)[0]
    body = "payload=" + urllib.parse.quote(
        json.dumps(slack.block_actions_payload(root, "case.claim", user="UALICE01"))
    )
    secret = product.env["SLACK_SIGNING_SECRET"]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with aiohttp.ClientSession() as http:
        await wait_until(lambda: _listening(port), 20)
        async with http.post(url, data=body, headers=form) as unsigned:
            assert unsigned.status == 401
        stale = sign_http_request(body, secret, timestamp=int(time.time()) - 600)
        async with http.post(url, data=body, headers={**form, **stale}) as old:
            assert old.status == 401
        forged = sign_http_request(body, "not-the-secret")
        async with http.post(url, data=body, headers={**form, **forged}) as wrong:
            assert wrong.status == 401
        async with http.post(url, data=body, headers={**form, **sign_http_request(body, secret)}) as signed:
            assert signed.status == 200
    await wait_until(
        lambda: slack.roots(CHANNEL)[0]["metadata"]["event_payload"]["assignee"] == "UALICE01", 20
    )
    assert not slack.calls_to("apps.connections.open")  # no Socket Mode in HTTP mode
    product.signal(signal.SIGTERM)
    assert await product.wait(30) == 0


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


async def test_a_stop_while_slack_cannot_be_reached_exits_0_at_once(
    product: Product, env: dict[str, str], tmp_path: Path
) -> None:
    closed = free_port()  # nothing listens there: every Slack call fails and is retried
    product.env = {**env, "SLACK_API_URL": f"http://127.0.0.1:{closed}/api/"}
    product.start()
    await wait_until(lambda: "privacy desk running" in product.log.read_text(errors="replace"), 30)
    await asyncio.sleep(1)  # Slack calls are now waiting out their retries
    started = time.monotonic()
    product.signal(signal.SIGTERM)
    assert await product.wait(30) == 0
    assert time.monotonic() - started < 10
    log = product.log.read_text(errors="replace")
    assert "Traceback" not in log and "TimeoutError" not in log
    assert "stopped" in log


@pytest.mark.parametrize(
    ("args", "changes", "named"),
    [
        (["run", "--http", "70000"], {}, "--http"),
        (["run"], {"DATABASE_PATH": "{tmp}/a-file/privacy-desk.sqlite3"}, "DATABASE_PATH"),
        (["deadline", "9999-12-31T23:59:59Z"], {}, "RECEIVED_AT"),
    ],
)
async def test_bad_input_on_the_command_line_is_a_message_not_a_traceback(
    env: dict[str, str], tmp_path: Path, args: list[str], changes: dict[str, str], named: str
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    run_env = {**env, **{k: v.format(tmp=tmp_path) for k, v in changes.items()}}
    out = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=run_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert named in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("change", "setting"),
    [
        ({"IMAP_PASSWORD": "not-the-password"}, "IMAP_PASSWORD"),
        ({"IMAP_FOLDER": "NoSuchFolder"}, "IMAP_FOLDER"),
        ({"SLACK_BOT_TOKEN": "xoxb-0000-revoked"}, "SLACK_BOT_TOKEN"),
        ({"SLACK_APP_TOKEN": "xapp-1-revoked"}, "SLACK_APP_TOKEN"),
        ({"SLACK_CHANNEL_ID": "C0NOSUCH99"}, "SLACK_CHANNEL_ID"),
    ],
)
async def test_a_server_refusing_the_configuration_at_start_stops_run_with_exit_2(
    env: dict[str, str], tmp_path: Path, change: dict[str, str], setting: str
) -> None:
    # the Slack stand-in answers on this test's event loop: the product runs alongside, not blocking it
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", env={**env, **change}, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        process.kill()
        raise AssertionError("run did not stop at start") from None
    out, err = stdout.decode(), stderr.decode()
    assert process.returncode == 2, err[-2000:]
    message = err.strip().splitlines()[-1]
    assert setting in message
    assert ("127.0.0.1" in message) or ("Slack (" in message)  # the server is named
    secrets = [env["IMAP_PASSWORD"], env["SLACK_BOT_TOKEN"], env["SLACK_APP_TOKEN"]]
    if setting in ("IMAP_PASSWORD", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"):
        secrets += list(change.values())
    for secret in secrets:
        assert secret not in err + out


async def test_a_healthy_start_logs_one_connected_line_per_service(product: Product) -> None:
    product.start()
    await wait_until(lambda: "privacy desk running" in product.log.read_text(), 30)
    log = product.log.read_text()
    assert log.count("Slack: connected to") == 1 and log.count("IMAP: connected to") == 1
    product.signal(signal.SIGTERM)
    assert await product.wait(30) == 0


def peak_memory_mb(product: Product) -> float:
    """The product process's peak resident memory so far (VmHWM)."""
    assert product.proc is not None
    status = Path(f"/proc/{product.proc.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


async def test_emails_with_20_mb_attachments_are_taken_in_one_at_a_time_with_memory_bounded(
    product: Product, slack: SlackStandIn, mailbox: MailUser, env: dict[str, str]
) -> None:
    """Three emails with a 20 MB attachment each, among ordinary ones: each opens its case with
    its attachment recorded (name, type, size) and not stored, and the product's peak memory
    stays under 150 MB (the attachments are never downloaded)."""
    if not Path("/proc/self/status").exists():
        pytest.skip("peak memory is read from /proc")
    from email.message import EmailMessage

    for n in range(3):
        m = EmailMessage()
        m["From"] = f"Person {n} <person{n}@example.org>"
        m["To"] = "privacy@imal.example"
        m["Subject"] = f"Access request, my ID attached ({n})"
        m["Message-ID"] = f"<big-{n}@example.org>"
        m.set_content("Hello, please send me a copy of my personal data.")
        m.add_attachment(
            bytes(20 * 1024 * 1024), maintype="application", subtype="pdf", filename=f"id-{n}.pdf"
        )
        await asyncio.to_thread(mailbox.append, m.as_bytes())
        del m
    await deliver(mailbox, "access-short-en.eml", "erasure-fr-qp.eml")
    async with running(product, slack):
        await wait_until(lambda: len(slack.roots(CHANNEL)) == 5, 60)
        peak = peak_memory_mb(product)
        product.signal(signal.SIGTERM)
        assert await product.wait(30) == 0
    assert peak < 150, f"peak memory {peak:.0f} MB"
    with sqlite3.connect(env["DATABASE_PATH"]) as db:
        rows = db.execute(
            "SELECT e.size, length(c.raw), c.attachments FROM emails e JOIN email_contents c ON c.email_id = e.id "
            "WHERE e.message_id LIKE '<big-%' ORDER BY e.id"
        ).fetchall()
    assert len(rows) == 3
    for n, (size, stored, attachments) in enumerate(rows):
        assert size > 20 * 1024 * 1024 and stored < 5000
        (attachment,) = json.loads(attachments)
        assert attachment["filename"] == f"id-{n}.pdf" and attachment["content_type"] == "application/pdf"
        assert abs(attachment["size"] - 20 * 1024 * 1024) < 200_000
