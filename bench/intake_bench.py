"""Intake benchmarks: delivery-to-root latency with IDLE, and taking in a backlog.

    python bench/intake_bench.py latency [--messages 100]
    python bench/intake_bench.py backlog [--messages 10000] [--big-attachments]

Both run the real product (`python -m bot run`, as a subprocess) against a real Dovecot and the
Slack stand-in from tests/support, on loopback. The stand-in accepts at full speed here (real
Slack allows about one post per second per channel).

- latency: messages are delivered one at a time (APPEND, then wait for the root); the latency of
  each is the time from the end of the APPEND to the moment the stand-in stored the case's root;
  reports the median, the 95th percentile and the worst.
- backlog: N requests are already in the mailbox when the product starts; reports the time until
  the first and every message is stored (SQLite), until every root is posted and until the outbox
  is empty (every thread reply and checklist posted too: "all posted"), the product's peak memory
  (VmHWM), and then, in the same run, the bare-client baseline: a process of its own that fetches
  the same messages with imapclient alone and makes the product's `chat.postMessage` calls again
  (same number, same text, blocks and metadata) directly to the stand-in, one after the other;
  the ratio is the product's time until all posted over the baseline's fetch + posts.
  `--big-attachments` adds three emails with a 20 MB attachment each (spread through the backlog).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.dovecot import Dovecot, MailUser  # noqa: E402
from tests.support.processes import descendants  # noqa: E402
from tests.support.slack_standin import SlackStandIn  # noqa: E402

CHANNEL = "C0STAFF01"
TEXTS = [
    ("Request for a copy of my data", "Hello, please send me a copy of all personal data you hold about me."),
    ("Suppression de mes données", "Bonjour, merci de supprimer toutes mes données de vos fichiers."),
    ("Inzageverzoek", "Beste, graag ontvang ik een kopie van alle persoonsgegevens die u over mij bewaart."),
    ("Auskunftsersuchen", "Guten Tag, bitte senden Sie mir eine Kopie meiner personenbezogenen Daten."),
]
BIG_ATTACHMENT = 20 * 1024 * 1024
POLL = 0.2  # seconds between two looks at the backlog's progress (the figures are that precise)


def _mail(n: int, subject: str, body: str) -> EmailMessage:
    """Bench person `n`'s email to the privacy address."""
    m = EmailMessage()
    m["From"] = f"Bench Person {n} <bench.{n}@example.org>"
    m["To"] = "privacy@imal.example"
    m["Subject"] = subject
    m["Message-ID"] = make_msgid(idstring=f"bench{n}", domain="example.org")
    m.set_content(body)
    return m


def request(n: int) -> bytes:
    subject, body = TEXTS[n % len(TEXTS)]
    return _mail(n, f"{subject} ({n})", f"{body}\n\nRegards,\nBench Person {n}\n").as_bytes()


def request_with_attachment(n: int, size: int = BIG_ATTACHMENT) -> bytes:
    """A request with a scan of an ID card of `size` bytes attached (base64: about 4/3 that)."""
    m = _mail(
        n,
        f"Request for a copy of my data, my ID attached ({n})",
        f"Hello, please send me a copy of my data. My ID card is attached.\n\nBench Person {n}\n",
    )
    m.add_attachment(os.urandom(size), maintype="application", subtype="pdf", filename=f"id-card-{n}.pdf")
    return m.as_bytes()


def start_product(
    mailbox: MailUser, slack: SlackStandIn, workdir: Path, root: Path = ROOT
) -> subprocess.Popen[bytes]:
    """`python -m bot run` from the checkout `root` (this one by default; another is left as it is:
    no bytecode written there), logging to `workdir`/product.log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "IMAP_", "SMTP_"))}
    env.update(mailbox.env())
    env.update(
        {
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_APP_TOKEN": slack.app_token,
            "SLACK_CHANNEL_ID": CHANNEL,
            "SLACK_API_URL": slack.base_url,
            "DATABASE_PATH": str(workdir / "bench.sqlite3"),
            "PYTHONPATH": str(root),
            "LOG_LEVEL": "WARNING",
        }
    )
    if root != ROOT:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    log = open(workdir / "product.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "run"], env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
    )


class PeakMemory:
    """The peak memory (VmHWM) of a process and of every process it started (the reader's
    worker and multiprocessing's helper), sampled every 0.1 s while they live: `total()` is the
    product's peak plus each descendant's, as if they had all peaked at once."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peaks: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            for pid in [self.pid, *descendants(self.pid)]:
                peak = peak_rss_mb(pid)
                if peak == peak:  # not NaN: it still lives
                    self.peaks[pid] = max(self.peaks.get(pid, 0.0), peak)

    def stop(self) -> tuple[float, float]:
        """(the product's peak, its descendants' peaks added up), in MB."""
        self._stop.set()
        self._thread.join()
        own = max(self.peaks.get(self.pid, 0.0), peak_rss_mb(self.pid))
        others = [round(peak) for pid, peak in self.peaks.items() if pid != self.pid]
        print(f"  (peaks of the processes the product started, MB: {others})")
        return own, sum(peak for pid, peak in self.peaks.items() if pid != self.pid)


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


class Posted:
    """Counts the stand-in's roots and thread replies as they come (without rescanning all)."""

    def __init__(self, slack: SlackStandIn) -> None:
        self.slack = slack
        self.seen = 0
        self.roots = 0
        self.replies = 0
        self.root_ids: list[str] = []

    def update(self) -> Posted:
        messages = self.slack.messages
        for m in messages[self.seen :]:
            if m["thread_ts"]:
                self.replies += 1
            elif (m["metadata"] or {}).get("event_type") == "privacy_case":
                self.roots += 1
                self.root_ids.append(m["metadata"]["event_payload"]["message_id"])
        self.seen = len(messages)
        return self


def percentile(samples: list[float], p: float) -> float:
    """The `p`-th percentile of sorted `samples` (nearest rank)."""
    return samples[max(0, math.ceil(p / 100 * len(samples)) - 1)]


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
                rss = peak_rss_mb(product.pid)
            finally:
                product.send_signal(signal.SIGTERM)
                await asyncio.to_thread(product.wait, 30)
        samples_ms = sorted(s * 1000 for s in samples)
        print(f"delivery-to-root latency with IDLE over {n} messages, one at a time:")
        print(
            f"  median {statistics.median(samples_ms):.0f} ms, p95 {percentile(samples_ms, 95):.0f} ms, "
            f"worst {max(samples_ms):.0f} ms, best {min(samples_ms):.0f} ms; peak RSS {rss:.0f} MB"
        )
        print("  (Dovecot batches IDLE notifications for about 0.5 s; that is most of the figure)")
    finally:
        dovecot.stop()


async def backlog(n: int, *, big_attachments: bool, rate: float = 0.0) -> None:
    dovecot = Dovecot().start()
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        mailbox = dovecot.new_user()
        client = await asyncio.to_thread(mailbox.client)
        big_at = {n // 4, n // 2, 3 * n // 4} if big_attachments else set()
        t0 = time.monotonic()
        chunk: list[bytes] = []
        for i in range(n):
            chunk.append(request(i))
            if i in big_at or len(chunk) == 200 or i == n - 1:
                await asyncio.to_thread(client.multiappend, "INBOX", chunk)
                chunk = []
            if i in big_at:
                await asyncio.to_thread(client.append, "INBOX", request_with_attachment(n + i))
        await asyncio.to_thread(client.logout)
        total = n + len(big_at)
        extra = f" ({len(big_at)} with a 20 MB attachment)" if big_at else ""
        print(
            f"appended {total} messages{extra} to the mailbox in {time.monotonic() - t0:.1f} s (not counted)"
        )
        db = workdir / "bench.sqlite3"

        def count(sql: str, otherwise: int) -> int:
            if not db.exists():
                return otherwise
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
                    return int(conn.execute(sql).fetchone()[0])
            except sqlite3.Error:
                return otherwise

        def stored() -> int:
            return count("SELECT COUNT(*) FROM emails", 0)

        def waiting() -> int:
            """Outbox rows not yet sent (nor failed): the checklists and email replies too."""
            return count("SELECT COUNT(*) FROM outbox WHERE done_at IS NULL AND failed_at IS NULL", 1)

        async with SlackStandIn(channel=CHANNEL) as slack:
            if rate:  # Slack's posting limit, for the product and the baseline alike
                slack.faults(per_channel_rate=rate, per_channel_burst=3)
            posted = Posted(slack)
            start = time.monotonic()
            product = start_product(mailbox, slack, workdir)
            memory = PeakMemory(product.pid)
            try:
                t_first = await wait_for(lambda: stored() >= 1, 1800, 0.01)
                # polled every 0.2 s: this process also runs the stand-in, whose time the
                # polling (a query of the product's database each time) would take
                t_stored = await wait_for(lambda: stored() >= total, 1800, POLL)
                t_roots = await wait_for(lambda: posted.update().roots >= total, 1800, POLL)
                t_replies = await wait_for(lambda: waiting() == 0, 1800, POLL)
                rss, helpers = memory.stop()
            finally:
                product.send_signal(signal.SIGTERM)
                await asyncio.to_thread(product.wait, 30)
            calls = len(slack.calls_to("chat.postMessage"))
            ids = posted.update().root_ids
            replay = workdir / "posts.json"  # the product's posts, made again by the baseline
            replay.write_text(json.dumps([_post_of(m) for m in slack.messages]))
            limited = len([c for c in slack.calls_to("chat.postMessage") if c["fault"] == 429])
            baseline = await asyncio.to_thread(run_baseline, mailbox, slack, total, replay, rate)
        t_all = t_replies - start
        print(f"backlog of {total} messages from process start:")
        print(f"  first message stored:     {t_first - start:6.1f} s  (start-up: imports, Slack, IMAP login)")
        print(
            f"  all stored in SQLite:     {t_stored - start:6.1f} s  ({total / (t_stored - start):.0f} msg/s)"
        )
        print(f"  all roots in Slack:       {t_roots - start:6.1f} s")
        print(f"  all posted (roots, replies, checklists): {t_all:6.1f} s  ({calls} chat.postMessage calls)")
        print(
            f"  duplicates: {len(ids) - len(set(ids))}, peak RSS of the product: {rss:.0f} MB "
            f"+ its reader process {helpers:.0f} MB = {rss + helpers:.0f} MB"
        )
        print(
            f"bare-client baseline, same run: imapclient fetch of the {baseline['fetched']} messages "
            f"{baseline['fetch']:.1f} s + {baseline['posts']} chat.postMessage calls {baseline['post']:.1f} s "
            f"= {baseline['fetch'] + baseline['post']:.1f} s"
        )
        print(f"  ratio (all posted / baseline): {t_all / (baseline['fetch'] + baseline['post']):.2f}x")
        if rate:
            print(
                f"  the stand-in limited posts to {rate:g}/s per channel: {limited} of {calls} calls answered 429"
            )
        else:
            print("  (the stand-in does not rate-limit here; real Slack allows about 1 post/s per channel)")
    finally:
        dovecot.stop()


def _post_of(message: dict[str, Any]) -> dict[str, Any]:
    """What the product posted, as chat.postMessage arguments (its thread named by the root's ts)."""
    args = {k: message[k] for k in ("channel", "text", "blocks", "metadata", "thread_ts") if message[k]}
    return {"ts": message["ts"], "args": args}


def run_baseline(
    mailbox: MailUser, slack: SlackStandIn, messages: int, posts: Path, rate: float = 0.0
) -> dict[str, Any]:
    """The bare-client baseline in a process of its own, like the product (blocking)."""
    spec = {
        "rate_limited": bool(rate),
        "imap": mailbox.env(),
        "slack_url": slack.base_url,
        "token": slack.bot_token,
        "messages": messages,
        "posts": str(posts),
    }
    done = subprocess.run(
        [sys.executable, __file__, "baseline", "--spec", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def baseline(spec: dict[str, Any]) -> None:
    """Fetch every message of the folder with imapclient alone (in batches of 50, as whole
    messages), then make the product's chat.postMessage calls again (the same text, blocks and
    metadata; replies in the baseline's own threads), one after the other, with slack_sdk's
    client straight to the stand-in; prints the times as JSON."""
    from imapclient import IMAPClient
    from slack_sdk.web.async_client import AsyncWebClient

    imap = spec["imap"]
    t0 = time.monotonic()
    client = IMAPClient(imap["IMAP_HOST"], port=int(imap["IMAP_PORT"]), ssl=False, timeout=60)
    client.login(imap["IMAP_USERNAME"], imap["IMAP_PASSWORD"])
    client.select_folder(imap["IMAP_FOLDER"], readonly=True)
    uids = client.search(["ALL"])
    fetched = 0
    for i in range(0, len(uids), 50):
        data = client.fetch(uids[i : i + 50], ["BODY.PEEK[]", "INTERNALDATE"])
        fetched += sum(1 for item in data.values() if b"BODY[]" in item)
        del data
    client.logout()
    t_fetch = time.monotonic() - t0

    async def post() -> float:
        import aiohttp

        async with aiohttp.ClientSession() as session:  # one session, as the product has
            web = AsyncWebClient(token=spec["token"], base_url=spec["slack_url"], session=session)
            if spec.get("rate_limited"):  # under Slack's limit: slack-sdk's own answer to a 429
                from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler

                web.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=100))
            return await posting(web)

    posts = json.loads(Path(spec["posts"]).read_text())

    async def posting(web: AsyncWebClient) -> float:
        t1 = time.monotonic()
        ours: dict[str, str] = {}  # the product's root ts -> the baseline's
        for post in posts:
            args = dict(post["args"])
            if "thread_ts" in args:
                args["thread_ts"] = ours[args["thread_ts"]]
            ours[post["ts"]] = (await web.chat_postMessage(**args))["ts"]
        return time.monotonic() - t1

    t_post = asyncio.run(post())
    print(json.dumps({"fetched": fetched, "fetch": t_fetch, "posts": len(posts), "post": t_post}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=("latency", "backlog", "baseline"))
    parser.add_argument("--messages", type=int)
    parser.add_argument(
        "--big-attachments", action="store_true", help="backlog: add three emails with 20 MB attachments"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="backlog: the stand-in limits posts to this many per second per channel",
    )
    parser.add_argument("--spec", help=argparse.SUPPRESS)  # baseline: what to fetch and post (JSON)
    args = parser.parse_args()
    if args.what == "latency":
        asyncio.run(latency(args.messages or 100))
    elif args.what == "baseline":
        baseline(json.loads(args.spec))
    else:
        asyncio.run(backlog(args.messages or 10000, big_attachments=args.big_attachments, rate=args.rate))


if __name__ == "__main__":
    main()
