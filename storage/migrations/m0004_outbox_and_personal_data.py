"""Schema version 4: one outbox, personal data apart, the indexes reminders and reports need.

- **Personal data apart from case facts and from the audit trail**, so retention can erase it
  without touching what reports count: `case_personal` (who asked, about what, the classifier's
  quotes of their words), `email_contents` (everything an email says), `outbound_contents` (what
  we wrote), `free_texts` (reasons and notes typed by staff). `cases`, `emails` and
  `outbound_emails` keep ids, kinds, dates, statuses and enums.
- **Audit events hold ids, enums and dates only**, and point to the free text they concern
  (`text_id`) or the email (`email_id`, `outbound_id`). The reasons and notes that schema 3 wrote
  into `after` move to `free_texts`.
- **One outbox** for everything the bot sends on its own initiative: root posts and updates,
  thread replies showing emails, checklists, notes, emails. A row says what, for which case,
  its attempt state and what came of it (a Slack ts, an accepted Message-ID). Notes are rendered
  from the audit event they record when they are posted. Schema 3's Slack columns on `cases` and
  `emails`, its `thread_notes` and the sending state of `outbound_emails` become outbox rows.
- **Scheduled jobs** record each run (`job_runs`), so a daily job runs once a day across restarts.

Tables keep their rows and ids: personal columns are copied to their new rows and dropped in place
(`ALTER TABLE … DROP COLUMN`, SQLite ≥ 3.35), new fact columns are added.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable

from storage.migrations import begin

SCHEMA = """
CREATE TABLE free_texts (
    id          INTEGER PRIMARY KEY,
    case_id     INTEGER NOT NULL REFERENCES cases (id),
    purpose     TEXT    NOT NULL,                 -- extension_reason, outcome_note, identity_note, ...
    body        TEXT    NOT NULL,
    created_at  TEXT    NOT NULL
);
CREATE INDEX free_texts_case ON free_texts (case_id);

CREATE TABLE case_personal (
    case_id          INTEGER PRIMARY KEY REFERENCES cases (id),
    requester_email  TEXT NOT NULL DEFAULT '',
    requester_name   TEXT NOT NULL DEFAULT '',
    subject          TEXT NOT NULL DEFAULT '',
    reasons          TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(reasons))
);

CREATE TABLE email_contents (                   -- what an email says, and who it names
    email_id        INTEGER PRIMARY KEY REFERENCES emails (id),
    subject         TEXT NOT NULL DEFAULT '',
    from_name       TEXT NOT NULL DEFAULT '',
    from_addr       TEXT NOT NULL DEFAULT '',
    reply_to        TEXT NOT NULL DEFAULT '',
    to_addrs        TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(to_addrs)),
    cc_addrs        TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(cc_addrs)),
    headers         TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(headers)),
    new_text        TEXT NOT NULL DEFAULT '',      -- what the sender wrote now
    body_text       TEXT NOT NULL DEFAULT '',      -- the whole text
    quoted_text     TEXT NOT NULL DEFAULT '',
    signature       TEXT NOT NULL DEFAULT '',
    reasons         TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(reasons)),   -- the classifier's quotes
    attachments     TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(attachments)),
    raw             BLOB                           -- the message without attachment content
);

CREATE TABLE outbound_contents (
    outbound_id  INTEGER PRIMARY KEY REFERENCES outbound_emails (id),
    to_addr      TEXT NOT NULL,                    -- the addr-spec, exactly as the requester wrote it
    subject      TEXT NOT NULL,
    body         TEXT NOT NULL
);

-- kinds are checked by the program (storage/outbox.py), so that new kinds need no table rebuild
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY,
    kind         TEXT    NOT NULL,
    case_id      INTEGER REFERENCES cases (id),
    parent_id    INTEGER REFERENCES outbox (id),   -- the message a reply goes under, or an update changes
    email_id     INTEGER REFERENCES emails (id),
    event_id     INTEGER REFERENCES audit_events (id),
    outbound_id  INTEGER REFERENCES outbound_emails (id),
    text_id      INTEGER REFERENCES free_texts (id),  -- a note carried over from schema 3
    created_at   TEXT    NOT NULL,
    not_before   TEXT,                             -- per-message backoff
    attempts     INTEGER NOT NULL DEFAULT 0,
    started_at   TEXT,                             -- an attempt began: look before posting again
    done_at      TEXT,
    failed_at    TEXT,
    last_error   TEXT    NOT NULL DEFAULT '',
    channel      TEXT,
    result       TEXT                              -- the Slack ts, or the Message-ID accepted
);

CREATE TABLE job_runs (
    job        TEXT NOT NULL,
    run_key    TEXT NOT NULL,                      -- e.g. the local date of a daily job
    done_at    TEXT NOT NULL,
    PRIMARY KEY (job, run_key)
);

ALTER TABLE cases ADD COLUMN extension_text_id INTEGER REFERENCES free_texts (id);
ALTER TABLE cases ADD COLUMN outcome_text_id INTEGER REFERENCES free_texts (id);
ALTER TABLE cases ADD COLUMN erased_at TEXT;     -- retention erased its personal data
ALTER TABLE emails ADD COLUMN attachment_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE emails ADD COLUMN sender_check TEXT NOT NULL DEFAULT 'unknown'
    CHECK (sender_check IN ('pass', 'fail', 'unknown'));
ALTER TABLE emails ADD COLUMN sender_check_detail TEXT NOT NULL DEFAULT '';
ALTER TABLE outbound_emails ADD COLUMN purpose TEXT NOT NULL DEFAULT 'reply';
ALTER TABLE audit_events ADD COLUMN text_id INTEGER REFERENCES free_texts (id);
ALTER TABLE audit_events ADD COLUMN email_id INTEGER REFERENCES emails (id);
ALTER TABLE audit_events ADD COLUMN outbound_id INTEGER REFERENCES outbound_emails (id);
DROP TRIGGER audit_events_no_update;              -- for the rewrite below; created again at the end
"""

#: Schema 3's personal and Slack columns, gone once their content has a place of its own.
DROPS = """
DROP INDEX cases_unposted;
DROP INDEX cases_requester;
DROP INDEX emails_unposted;
DROP INDEX outbound_emails_pending;
DROP TABLE thread_notes;
""" + "".join(
    f"ALTER TABLE {table} DROP COLUMN {column};\n"
    for table, columns in {
        "cases": "requester_email requester_name subject reasons extension_reason outcome_note slack_channel "
        "slack_root_ts root_post_started_at rendered_version rendered_on checklist_ts checklist_post_started_at "
        "checklist_version checklist_rendered_version",
        "emails": "from_name from_addr reply_to to_addrs cc_addrs subject headers body_text new_text quoted_text "
        "signature attachments reasons raw slack_ts slack_post_started_at",
        "outbound_emails": "to_addr subject body send_started_at sent_at failed_at attempts last_error",
        "audit_events": "note",
    }.items()
    for column in columns.split()
)

INDEXES = """
CREATE INDEX outbox_pending ON outbox (id) WHERE done_at IS NULL AND failed_at IS NULL;
CREATE INDEX outbox_case ON outbox (case_id, kind);
CREATE INDEX outbox_parent ON outbox (parent_id);
CREATE UNIQUE INDEX outbox_one_root ON outbox (case_id) WHERE kind = 'root';
CREATE UNIQUE INDEX outbox_one_checklist ON outbox (case_id) WHERE kind = 'checklist';
CREATE UNIQUE INDEX outbox_one_email_reply ON outbox (email_id) WHERE kind = 'email_reply';
CREATE UNIQUE INDEX outbox_one_note ON outbox (event_id) WHERE kind = 'note';
CREATE UNIQUE INDEX outbox_one_email ON outbox (outbound_id) WHERE kind = 'email';
-- at most one update waiting per message: a new change while one waits needs no second one
CREATE UNIQUE INDEX outbox_one_waiting_update ON outbox (parent_id)
    WHERE kind IN ('root_update', 'checklist_update', 'note_update')
    AND done_at IS NULL AND failed_at IS NULL AND started_at IS NULL;
CREATE INDEX cases_open_due ON cases (due_date) WHERE status != 'resolved';
CREATE INDEX cases_open_assignee ON cases (assignee, due_date) WHERE status != 'resolved';
CREATE INDEX cases_received ON cases (received_date);
CREATE INDEX cases_closed ON cases (closed_at) WHERE closed_at IS NOT NULL;
CREATE INDEX cases_split_from ON cases (split_from_case_id) WHERE split_from_case_id IS NOT NULL;
CREATE INDEX cases_message_id ON cases (message_id);
CREATE INDEX audit_action_at ON audit_events (action, at);
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
"""

#: Fields of schema 3's audit `after`/`before` that held free text, and the purpose it gets.
_AUDIT_TEXTS = {"extension_reason": "extension_reason", "outcome_note": "outcome_note"}


def migrate(conn: sqlite3.Connection) -> None:
    """Carry a schema 3 database over to schema 4 (see the module docstring)."""
    begin(conn, SCHEMA)
    conn.row_factory = sqlite3.Row
    try:
        texts = _Texts(conn)
        _cases(conn, texts)
        _emails(conn)
        _outbound(conn)
        events = _audit(conn, texts)
        _outbox(conn, texts, events)  # reads schema 3's Slack columns, so before they are dropped
        _run_each(conn, DROPS + INDEXES)  # executescript would commit the migration's transaction
    finally:
        conn.row_factory = None


class _Texts:
    """Inserts free texts and remembers them by (case, purpose, body)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.known: dict[tuple[int, str, str], int] = {}

    def add(self, case_id: int, purpose: str, body: str, at: str) -> int:
        key = (case_id, purpose, body)
        if key not in self.known:
            cur = self.conn.execute(
                "INSERT INTO free_texts (case_id, purpose, body, created_at) VALUES (?, ?, ?, ?)",
                (case_id, purpose, body, at),
            )
            self.known[key] = int(cur.lastrowid or 0)
        return self.known[key]


def _cases(conn: sqlite3.Connection, texts: _Texts) -> None:
    conn.execute(
        "INSERT INTO case_personal (case_id, requester_email, requester_name, subject, reasons) "
        "SELECT id, requester_email, requester_name, subject, reasons FROM cases"
    )
    for c in conn.execute("SELECT * FROM cases ORDER BY id").fetchall():
        extension = outcome = None
        if c["extension_reason"]:
            extension = texts.add(
                c["id"], "extension_reason", c["extension_reason"], c["extended_at"] or c["updated_at"]
            )
        if c["outcome_note"]:
            outcome = texts.add(c["id"], "outcome_note", c["outcome_note"], c["closed_at"] or c["updated_at"])
        if extension or outcome:
            conn.execute(
                "UPDATE cases SET extension_text_id = ?, outcome_text_id = ? WHERE id = ?",
                (extension, outcome, c["id"]),
            )


def _emails(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE emails SET attachment_count = json_array_length(attachments)")
    # the sender check was made for the email that opened a case; schema 3 kept it on the case
    conn.execute(
        "UPDATE emails SET (sender_check, sender_check_detail) = "
        "(SELECT c.sender_check, c.sender_check_detail FROM cases c WHERE c.id = emails.case_id) "
        "WHERE disposition = 'opened_case' AND EXISTS (SELECT 1 FROM cases c WHERE c.id = emails.case_id)"
    )
    conn.execute(
        "INSERT INTO email_contents (email_id, from_name, from_addr, reply_to, to_addrs, cc_addrs, subject, headers, "
        "body_text, new_text, quoted_text, signature, attachments, reasons, raw) "
        "SELECT id, from_name, from_addr, reply_to, to_addrs, cc_addrs, subject, headers, body_text, new_text, "
        "quoted_text, signature, attachments, reasons, raw FROM emails"
    )


def _outbound(conn: sqlite3.Connection) -> None:
    conn.execute(
        "INSERT INTO outbound_contents (outbound_id, to_addr, subject, body) "
        "SELECT id, to_addr, subject, body FROM outbound_emails"
    )


def _audit(conn: sqlite3.Connection, texts: _Texts) -> dict[int, int]:
    """Rewrite the audit trail without free text, pointing to it and to the emails each event is
    about; returns {schema 3 note id: audit event id} for the thread notes written in the same
    transaction as an event."""
    emails = _Pairs(conn, "SELECT id, case_id, created_at, disposition, message_id FROM emails ORDER BY id")
    replies = _Pairs(
        conn, "SELECT id, case_id, created_at, 'reply' AS disposition, message_id FROM outbound_emails"
    )
    opened = {r["id"]: r["message_id"] for r in conn.execute("SELECT id, message_id FROM cases")}
    for e in conn.execute("SELECT * FROM audit_events ORDER BY id").fetchall():
        before = json.loads(e["before"]) if e["before"] else None
        after = json.loads(e["after"]) if e["after"] else None
        text_id = email_id = outbound_id = None
        for side in (before, after):
            for field, purpose in _AUDIT_TEXTS.items():
                if side is None or field not in side:
                    continue
                value = side.pop(field)
                if side is after and isinstance(value, str) and value and e["case_id"] is not None:
                    text_id = texts.add(e["case_id"], purpose, value, e["at"])
        action = e["action"]
        if action == "case.replied":  # its email was recorded in the same transaction
            after = {**(after or {}), "characters": _leading_number(e["note"] or "")}
            outbound_id = replies.take(e["case_id"], e["at"], "reply")
        elif action == "case.checklist" and e["note"]:  # "ticked A, unticked B": system names, not personal
            after = {**(after or {}), "changes": [list(m) for m in _CHECKLIST_CHANGE.findall(e["note"])]}
        elif action == "case.opened":
            email_id = emails.take_message(e["case_id"], opened.get(e["case_id"]))
        elif action in ("email.follow_up", "email.automated"):
            email_id = emails.take(e["case_id"], e["at"], action.removeprefix("email."))
        conn.execute(
            "UPDATE audit_events SET before = ?, after = ?, text_id = ?, email_id = ?, outbound_id = ? WHERE id = ?",
            (
                json.dumps(before, ensure_ascii=False, separators=(",", ":")) if before is not None else None,
                json.dumps(after, ensure_ascii=False, separators=(",", ":")) if after is not None else None,
                text_id,
                email_id,
                outbound_id,
                e["id"],
            ),
        )
    events: dict[int, int] = {}
    notes = conn.execute("SELECT id, case_id, created_at FROM thread_notes ORDER BY id").fetchall()
    used: set[int] = set()
    for n in notes:
        row = conn.execute(
            "SELECT id FROM audit_events WHERE case_id = ? AND at = ? AND action NOT IN "
            "('case.opened', 'email.follow_up', 'email.automated') ORDER BY id",
            (n["case_id"], n["created_at"]),
        ).fetchall()
        match = next((r["id"] for r in row if r["id"] not in used), None)
        if match is not None:
            used.add(match)
            events[n["id"]] = match
    return events


_CHECKLIST_CHANGE = re.compile(r"(ticked|unticked) (.+?)(?=, (?:ticked|unticked) |$)")


class _Pairs:
    """Emails (or replies) waiting to be paired with the audit events recorded with them: those of
    the same case, moment and disposition, taken in id order (a backlog stores several a second)."""

    def __init__(self, conn: sqlite3.Connection, sql: str) -> None:
        self.rows = [dict(r) for r in conn.execute(sql)]
        self.taken: set[int] = set()

    def _first(self, match: Callable[[dict[str, object]], bool]) -> int | None:
        for r in self.rows:
            if int(str(r["id"])) not in self.taken and match(r):
                self.taken.add(int(str(r["id"])))
                return int(str(r["id"]))
        return None

    def take(self, case_id: int | None, at: str, disposition: str) -> int | None:
        return self._first(
            lambda r: (r["case_id"], r["created_at"], r["disposition"]) == (case_id, at, disposition)
        )

    def take_message(self, case_id: int | None, message_id: str | None) -> int | None:
        return self._first(lambda r: (r["case_id"], r["message_id"]) == (case_id, message_id))


def _leading_number(text: str) -> int:
    digits = text.split(" ", 1)[0]
    return int(digits) if digits.isdigit() else 0


class _Outbox:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def add(
        self,
        kind: str,
        *,
        created_at: str,
        done: str | None = None,
        failed: str | None = None,
        **fields: object,
    ) -> int:
        fields = {k: v for k, v in fields.items() if v is not None}
        fields.update(kind=kind, created_at=created_at, done_at=done, failed_at=failed)
        if (done or failed) and "attempts" not in fields:
            fields["attempts"] = 1
        cols = ", ".join(fields)
        marks = ", ".join("?" * len(fields))
        cur = self.conn.execute(f"INSERT INTO outbox ({cols}) VALUES ({marks})", tuple(fields.values()))
        return int(cur.lastrowid or 0)


def _outbox(conn: sqlite3.Connection, texts: _Texts, events: dict[int, int]) -> None:
    """Schema 3's Slack and sending state as outbox rows: what was done stays done (with its ts,
    for retention to find it), what was under way keeps its "started" mark (so a restart looks in
    Slack before posting again), what was waiting waits in the outbox."""
    box = _Outbox(conn)
    roots: dict[int, int] = {}
    channels: dict[int, str | None] = {}
    with_items = {r[0] for r in conn.execute("SELECT DISTINCT case_id FROM checklist_items")}
    for c in conn.execute("SELECT * FROM cases ORDER BY id").fetchall():
        posted = c["slack_root_ts"] is not None
        channels[c["id"]] = c["slack_channel"]
        roots[c["id"]] = root = box.add(
            "root",
            case_id=c["id"],
            created_at=c["created_at"],
            done=c["updated_at"] if posted else None,
            started_at=c["root_post_started_at"],
            channel=c["slack_channel"],
            result=c["slack_root_ts"],
        )
        if posted and c["rendered_version"] < c["version"]:
            box.add("root_update", case_id=c["id"], parent_id=root, created_at=c["updated_at"])
        if c["id"] in with_items:
            checklist_posted = c["checklist_ts"] is not None
            checklist = box.add(
                "checklist",
                case_id=c["id"],
                parent_id=root,
                created_at=c["created_at"],
                done=c["updated_at"] if checklist_posted else None,
                started_at=c["checklist_post_started_at"],
                channel=c["slack_channel"] if checklist_posted else None,
                result=c["checklist_ts"],
            )
            if checklist_posted and c["checklist_rendered_version"] < c["checklist_version"]:
                box.add("checklist_update", case_id=c["id"], parent_id=checklist, created_at=c["updated_at"])
    later: list[tuple[str, int, str, dict[str, object]]] = []
    for m in conn.execute("SELECT * FROM emails WHERE case_id IS NOT NULL ORDER BY id").fetchall():
        later.append((m["created_at"], 0, "email_reply", {
            "case_id": m["case_id"], "parent_id": roots.get(m["case_id"]), "email_id": m["id"],
            "done": m["created_at"] if m["slack_ts"] else None, "started_at": m["slack_post_started_at"],
            "result": m["slack_ts"], "channel": channels.get(m["case_id"]) if m["slack_ts"] else None,
        }))  # fmt: skip
    for n in conn.execute("SELECT * FROM thread_notes ORDER BY id").fetchall():
        later.append((n["created_at"], 1, "note", {
            "case_id": n["case_id"], "parent_id": roots.get(n["case_id"]), "event_id": events.get(n["id"]),
            "text_id": texts.add(n["case_id"], "thread_note", n["text"], n["created_at"]),
            "done": n["created_at"] if n["slack_ts"] else None, "started_at": n["post_started_at"],
            "result": n["slack_ts"], "channel": channels.get(n["case_id"]) if n["slack_ts"] else None,
        }))  # fmt: skip
    for o in conn.execute("SELECT * FROM outbound_emails ORDER BY id").fetchall():
        later.append((o["created_at"], 2, "email", {
            "case_id": o["case_id"], "outbound_id": o["id"], "done": o["sent_at"], "failed": o["failed_at"],
            "started_at": o["send_started_at"], "attempts": o["attempts"], "last_error": o["last_error"],
            "result": o["message_id"] if o["sent_at"] else None,
        }))  # fmt: skip
    for created_at, _, kind, fields in sorted(later, key=lambda x: (x[0], x[1])):
        box.add(kind, created_at=created_at, **fields)  # type: ignore[arg-type]


def _run_each(conn: sqlite3.Connection, script: str) -> None:
    for statement in _statements(script):
        conn.execute(statement)


def _statements(script: str) -> list[str]:
    out: list[str] = []
    current: list[str] = []
    for line in script.splitlines():
        current.append(line)
        text = "\n".join(current).strip()
        if text and sqlite3.complete_statement(text):
            out.append(text)
            current = []
    return out
