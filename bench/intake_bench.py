"""Intake benchmarks: delivery-to-root latency with IDLE, and taking in a backlog.

    python bench/intake_bench.py latency [--messages 20]
    python bench/intake_bench.py backlog [--messages 1000]

Both run the real product (`python -m bot run`, as a subprocess) against a real Dovecot and the
Slack stand-in from tests/support, on loopback.

- latency: messages are delivered one at a time (APPEND, then wait for the root); the latency of
  each is the time from the end of the APPEND to the moment the stand-in stored the case's root.
- backlog: N requests are already in the mailbox when the product starts; reports the time until
  every message is stored (SQLite), until every root is posted, until every thread reply is
  posted, and the product's peak memory (VmHWM).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.dovecot import Dovecot, MailUser  # noqa: E402
from tests.support.slack_standin import SlackStandIn  # noqa: E402

CHANNEL = "C0STAFF01"
TEXTS = [
    ("Request for a copy of my data", "Hello, please send me a copy of all personal data you hold about me."),
    ("Suppression de mes données", "Bonjour, merci de supprimer toutes mes données de vos fichiers."),
    ("Inzageverzoek", "Beste, graag ontvang ik een kopie van alle persoonsgegevens die u over mij bewaart."),
    ("Auskunftsersuchen", "Guten Tag, bitte senden Sie mir eine Kopie meiner personenbezogenen Daten."),
]


def request(n: int) -> bytes:
    subject, body = TEXTS[n % len(TEXTS)]
    m = EmailMessage()
    m["From"] = f"Bench Person {n} <bench.{n}@example.org>"
    m["To"] = "privacy@imal.example"
    m["Subject"] = f"{subject} ({n})"
    m["Message-ID"] = make_msgid(idstring=f"bench{n}", domain="example.org")
    m.set_content(f"{body}\n\nRegards,\nBench Person {n}\n")
    return m.as_bytes()


def start_product(mailbox: MailUser, slack: SlackStandIn, workdir: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "IMAP_", "SMTP_"))}
    env.update(mailbox.env())
    env.update(
        {
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_APP_TOKEN": slack.app_token,
            "SLACK_CHANNEL_ID": CHANNEL,
            "SLACK_API_URL": slack.base_url,
            "DATABASE_PATH": str(workdir / "bench.sqlite3"),
            "PYTHONPATH": str(ROOT),
            "LOG_LEVEL": "WARNING",
        }
    )
    log = open(workdir / "product.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "run"], env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
    )


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def wait_for(predicate, timeout: float, every: float = 0.005) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise TimeoutError("condition not met")
        await asyncio.sleep(every)
    return time.monotonic()


async def latency(n: int) -> None:
    dovecot = Dovecot().start()
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        mailbox = dovecot.new_user()
        async with SlackStandIn(channel=CHANNEL) as slack:
            product = start_product(mailbox, slack, workdir)
            try:
                await slack.wait_for_socket(timeout=30)
                await asyncio.sleep(1.0)  # let the watcher reach IDLE
                client = await asyncio.to_thread(mailbox.client)
                samples = []
                for i in range(n):
                    before = len(slack.roots(CHANNEL))
                    raw = request(i)
                    await asyncio.to_thread(client.append, "INBOX", raw)
                    appended = time.time()
                    await wait_for(lambda before=before: len(slack.roots(CHANNEL)) > before, 30)
                    samples.append(slack.roots(CHANNEL)[-1]["posted_at"] - appended)
                    await asyncio.sleep(0.2)
                await asyncio.to_thread(client.logout)
            finally:
                product.send_signal(signal.SIGTERM)
                await asyncio.to_thread(product.wait, 30)
        samples_ms = sorted(s * 1000 for s in samples)
        print(f"delivery-to-root latency with IDLE over {n} messages, one at a time:")
        print(
            f"  median {statistics.median(samples_ms):.0f} ms, worst {max(samples_ms):.0f} ms, "
            f"best {min(samples_ms):.0f} ms"
        )
        print("  (Dovecot batches IDLE notifications for about 0.5 s; that is most of the figure)")
    finally:
        dovecot.stop()


async def backlog(n: int) -> None:
    dovecot = Dovecot().start()
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        mailbox = dovecot.new_user()
        client = await asyncio.to_thread(mailbox.client)
        t0 = time.monotonic()
        for i in range(n):
            await asyncio.to_thread(client.append, "INBOX", request(i))
        await asyncio.to_thread(client.logout)
        print(f"appended {n} messages to the mailbox in {time.monotonic() - t0:.1f} s (not counted)")
        db = workdir / "bench.sqlite3"

        def stored() -> int:
            if not db.exists():
                return 0
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
                    return int(conn.execute("SELECT COUNT(*) FROM emails").fetchone()[0])
            except sqlite3.Error:
                return 0

        async with SlackStandIn(channel=CHANNEL) as slack:
            start = time.monotonic()
            product = start_product(mailbox, slack, workdir)
            try:
                t_stored = await wait_for(lambda: stored() >= n, 600, 0.05)
                t_roots = await wait_for(lambda: len(slack.roots(CHANNEL)) >= n, 600, 0.05)
                t_replies = await wait_for(
                    lambda: sum(1 for m in slack.messages if m["thread_ts"]) >= n, 600, 0.05
                )
                rss = peak_rss_mb(product.pid)
            finally:
                product.send_signal(signal.SIGTERM)
                await asyncio.to_thread(product.wait, 30)
            ids = [r["metadata"]["event_payload"]["message_id"] for r in slack.roots(CHANNEL)]
        print(f"backlog of {n} messages from process start:")
        print(f"  all stored in SQLite:     {t_stored - start:6.1f} s  ({n / (t_stored - start):.0f} msg/s)")
        print(f"  all roots in Slack:       {t_roots - start:6.1f} s")
        print(f"  all thread replies:       {t_replies - start:6.1f} s")
        print(f"  duplicates: {len(ids) - len(set(ids))}, peak RSS of the product: {rss:.0f} MB")
        print("  (the stand-in does not rate-limit here; real Slack allows about 1 post/s per channel)")
    finally:
        dovecot.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=("latency", "backlog"))
    parser.add_argument("--messages", type=int)
    args = parser.parse_args()
    if args.what == "latency":
        asyncio.run(latency(args.messages or 20))
    else:
        asyncio.run(backlog(args.messages or 1000))


if __name__ == "__main__":
    main()
