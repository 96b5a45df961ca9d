"""The record at scale: `report` and `export` over 100,000 cases, and a `purge` of 10,000.

Builds a database of the current schema with N cases (default 100,000) written straight in SQL —
each with its personal row, the email that opened it (about 2.5 kB of text and raw bytes), three
audit events and three posted outbox rows; a tenth resolved long ago, so that retention is due for
10,000 of them — then times the installed commands as a user runs them (a new process each, its
start included):

    .venv/bin/python bench/record_bench.py [--cases 100000] [--keep DIR]

Targets (issue 11): report and export each under 2 s at 100,000 cases, the purge of 10,000 under a
minute.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage.migrations import apply_migrations  # noqa: E402

KINDS = [
    "access",
    "erasure",
    "objection",
    "rectification",
    "restriction",
    "portability",
    "complaint",
    "other",
]
LANGUAGES = ["fr", "nl", "en", "de"]
OUTCOMES = ["fulfilled", "partially_fulfilled", "withdrawn", "not_a_request"]
BODY = ("Bonjour, je souhaite recevoir une copie de toutes les données personnelles que vous détenez à mon sujet. "
        * 12)  # fmt: skip


def build(path: Path, n: int) -> int:
    """Fill a fresh database with `n` cases; returns how many are due for retention."""
    apply_migrations(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    rng = random.Random(42)
    now = datetime.now(UTC)
    start = now - timedelta(days=700)  # recent enough that only the old tenth is due (RETENTION_DAYS=730)
    due_for_retention = 0
    cases, people, emails, contents, audit, outbox = [], [], [], [], [], []
    for i in range(1, n + 1):
        received = start + timedelta(minutes=int(i * (950_000 / n)))
        rdate = received.date()
        kind = rng.choice(KINDS)
        resolved = rng.random() < 0.9 or i % 10 == 0
        old = i % 10 == 0  # resolved long ago: retention is due
        closed = (now - timedelta(days=800)) if old else received + timedelta(days=rng.randint(1, 40))
        if closed > now:
            resolved = False
        due_for_retention += int(old and resolved)
        status = "resolved" if resolved else rng.choice(["new", "in_progress", "extended"])
        ref = f"PRIV-{rdate.year}-{i:06d}"
        mid = f"<m{i}@example.org>"
        cases.append((i, ref, kind, json.dumps([kind]), 0.9, 0, rng.choice(LANGUAGES), status, mid,
                      received.isoformat(), rdate.isoformat(), (rdate + timedelta(days=30)).isoformat(),
                      now.isoformat(), now.isoformat(), closed.isoformat() if resolved else None,
                      rng.choice(OUTCOMES) if resolved else None, int(rng.random() < 0.9) if resolved else None,
                      closed.isoformat() if rng.random() < 0.05 else None))  # fmt: skip
        people.append((i, f"person{i}@example.org", f"Person {i}", "My data", "[]"))
        emails.append((i, mid, i, "opened_case", "INBOX", 1, i, received.isoformat(), kind, json.dumps([kind]),
                       now.isoformat()))  # fmt: skip
        contents.append((i, "My data", f"Person {i}", f"person{i}@example.org", BODY, BODY,
                         (f"From: Person {i} <person{i}@example.org>\r\n\r\n" + BODY).encode()))  # fmt: skip
        for j, action in enumerate(
            ("case.opened", "case.claimed", "case.resolved" if resolved else "case.note")
        ):
            audit.append((i * 3 + j, i, received.isoformat(), "system" if j == 0 else "UALICE01", action,
                          json.dumps({"status": status})))  # fmt: skip
        for j, kind_ in enumerate(("root", "email_reply", "note")):
            outbox.append((i * 3 + j, kind_, i, None if j == 0 else i * 3, now.isoformat(), now.isoformat(),
                           f"{1700000000 + i}.{j:06d}", "C0STAFF01"))  # fmt: skip
        if len(cases) >= 20000 or i == n:
            conn.executemany(
                "INSERT INTO cases (id, ref, kind, labels, confidence, needs_review, language, status, message_id, "
                "received_at, received_date, due_date, created_at, updated_at, closed_at, outcome, resolved_on_time, "
                "extended_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                cases,
            )
            conn.executemany("INSERT INTO case_personal VALUES (?,?,?,?,?)", people)
            conn.executemany(
                "INSERT INTO emails (id, message_id, case_id, disposition, folder, uidvalidity, uid, received_at, "
                "kind, labels, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                emails,
            )
            conn.executemany(
                "INSERT INTO email_contents (email_id, subject, from_name, from_addr, new_text, body_text, raw) "
                "VALUES (?,?,?,?,?,?,?)",
                contents,
            )
            conn.executemany(
                "INSERT INTO audit_events (id, case_id, at, actor, action, after) VALUES (?,?,?,?,?,?)", audit
            )
            conn.executemany(
                "INSERT INTO outbox (id, kind, case_id, parent_id, created_at, done_at, result, channel) "
                "VALUES (?,?,?,?,?,?,?,?)",
                outbox,
            )
            conn.commit()
            cases, people, emails, contents, audit, outbox = [], [], [], [], [], []
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    os.chmod(path, 0o600)
    return due_for_retention


def timed(args: list[str], db: Path, **env: str) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "IMAP_", "SMTP_"))}
    environ.update({"DATABASE_PATH": str(db), "PYTHONPATH": str(ROOT), **env})
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bot", *args], env=environ, capture_output=True, check=False)
    took = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    return took, done


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="build the database in this folder and keep it")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="record-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "bench.sqlite3"
    for leftover in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        leftover.unlink(missing_ok=True)
    began = time.perf_counter()
    due = build(db, args.cases)
    print(f"built {args.cases:,} cases ({db.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - began:.1f} s; "
          f"{due:,} due for retention")  # fmt: skip
    baseline, _ = timed(["deadline", "2026-12-01T10:00:00Z"], db)
    print(f"a command that does nothing (process start, imports): {baseline:.2f} s")
    for label, command in (
        ("report --format json", ["report", "--format", "json"]),
        (
            "report --from 2025-01-01 --to 2025-12-31",
            ["report", "--from", "2025-01-01", "--to", "2025-12-31"],
        ),
        ("export --format csv", ["export", "--format", "csv"]),
        ("export --format json", ["export", "--format", "json"]),
    ):
        took, done = timed(command, db)
        print(f"{label:<42} {took:6.2f} s  ({len(done.stdout) / 1e6:.1f} MB out)")
    before = json.loads(timed(["report", "--format", "json"], db)[1].stdout)
    took, done = timed(["purge"], db, RETENTION_DAYS="730")
    summary = done.stdout.decode().splitlines()[-2]
    print(f"{'purge (' + format(due, ',') + ' cases due)':<42} {took:6.2f} s  ({summary})")
    after = json.loads(timed(["report", "--format", "json"], db)[1].stdout)
    print(f"report unchanged by the purge: {before == after}; database now {db.stat().st_size / 1e6:.0f} MB")
    print(f"(today is {date.today()}; database in {folder})")


if __name__ == "__main__":
    main()
