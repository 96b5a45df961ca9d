"""Pacing benchmark: posting a backlog when Slack limits `chat.postMessage` per channel.

    python bench/pacing_bench.py [--messages 60] [--rate 1 --rate 2] [--product DIR]

Runs the real product (`python -m bot run`, as a subprocess) against a real Dovecot and the Slack
stand-in from tests/support, on loopback, with N requests already in the mailbox at start and the
stand-in limiting `chat.postMessage` to `rate` posts per second per channel (a token bucket with
bursts of 3, answering 429 with `Retry-After` beyond it; Slack documents about 1 per second).

Reports, for each rate: how many `chat.postMessage` calls were made and the fraction answered 429,
the time from process start until the last message was posted (every outbox row done), the posts
per second over the posting span, and a check that nothing was lost or doubled (one root per
message, each thread with its replies once).

`--product DIR` runs the product from another checkout (to measure main before a change); the
stand-in and the mailbox helpers always come from this one.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.intake_bench import CHANNEL, request, start_product, wait_for  # noqa: E402
from tests.support.dovecot import Dovecot  # noqa: E402
from tests.support.slack_standin import SlackStandIn  # noqa: E402


def waiting_rows(db: Path) -> int | None:
    """Outbox rows neither done nor failed, and emails stored (None while the database is not
    there or not readable yet)."""
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(
                conn.execute(
                    "SELECT COUNT(*) FROM outbox WHERE done_at IS NULL AND failed_at IS NULL"
                ).fetchone()[0]
            )
    except sqlite3.Error:
        return None


def stored(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM emails").fetchone()[0])
    except sqlite3.Error:
        return 0


async def run(n: int, rate: float, product_root: Path) -> dict[str, float]:
    dovecot = Dovecot().start()
    workdir = Path(tempfile.mkdtemp(prefix="bench-pacing-"))
    try:
        mailbox = dovecot.new_user()
        client = await asyncio.to_thread(mailbox.client)
        for i in range(n):
            await asyncio.to_thread(client.append, "INBOX", request(i))
        await asyncio.to_thread(client.logout)
        db = workdir / "bench.sqlite3"
        async with SlackStandIn(channel=CHANNEL) as slack:
            slack.faults(per_channel_rate=rate)
            start = time.time()
            product = start_product(mailbox, slack, workdir, root=product_root)
            try:
                await wait_for(lambda: stored(db) >= n, 600, 0.1)
                await wait_for(lambda: waiting_rows(db) == 0, 3600, 0.1)
            finally:
                product.send_signal(signal.SIGTERM)
                await asyncio.to_thread(product.wait, 30)
            posts = slack.calls_to("chat.postMessage")
            roots = slack.roots(CHANNEL)
            replies = Counter(m["thread_ts"] for m in slack.messages if m["thread_ts"])
            ids = [r["metadata"]["event_payload"]["message_id"] for r in roots]
            reply_keys = [(m["thread_ts"], str(m.get("metadata"))) for m in slack.messages if m["thread_ts"]]
        ok = [c for c in posts if c["error"] is None]
        limited = [c for c in posts if c["fault"] == 429]
        span = max(c["at"] for c in ok) - min(c["at"] for c in ok)
        result = {
            "calls": len(posts),
            "posted": len(ok),
            "limited": len(limited),
            "fraction": len(limited) / len(posts),
            "until_posted": max(c["at"] for c in ok) - start,
            "per_second": (len(ok) - 1) / span if span else float("inf"),
            "roots": len(roots),
            "duplicate_roots": len(ids) - len(set(ids)),
            "duplicate_replies": len(reply_keys) - len(set(reply_keys)),
            "threads_without_reply": sum(1 for r in roots if not replies[r["ts"]]),
        }
        print(
            f"  rate {rate:g}/s per channel, {n} cases: {result['calls']} chat.postMessage calls, "
            f"{result['limited']} answered 429 ({100 * result['fraction']:.1f} %); "
            f"everything posted {result['until_posted']:.1f} s after start; "
            f"{result['per_second']:.2f} posts/s; roots {result['roots']}, "
            f"duplicate roots {result['duplicate_roots']}, duplicate replies {result['duplicate_replies']}, "
            f"threads without a reply {result['threads_without_reply']}",
            flush=True,
        )
        return result
    finally:
        dovecot.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=60)
    parser.add_argument("--rate", type=float, action="append", help="posts/s per channel (repeatable)")
    parser.add_argument("--product", type=Path, default=ROOT, help="the checkout to run the product from")
    args = parser.parse_args()
    print(f"product: {args.product.resolve()}")
    for rate in args.rate or [1.0, 2.0]:
        asyncio.run(run(args.messages, rate, args.product.resolve()))


if __name__ == "__main__":
    main()
