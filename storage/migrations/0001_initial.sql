-- Privacy Desk schema, version 1: cases, inbound emails, the audit trail, the mailbox cursor.
-- Instants are ISO-8601 UTC strings ("2026-11-25T10:15:00+00:00"); calendar dates are "YYYY-MM-DD"
-- in the controller's time zone.

CREATE TABLE case_counters (
    year     INTEGER PRIMARY KEY,
    last_seq INTEGER NOT NULL
);

CREATE TABLE cases (
    id                    INTEGER PRIMARY KEY,
    ref                   TEXT    NOT NULL UNIQUE,            -- PRIV-2026-0042
    kind                  TEXT    NOT NULL,
    labels                TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(labels)),
    confidence            REAL    NOT NULL DEFAULT 0,
    needs_review          INTEGER NOT NULL DEFAULT 0,         -- "please confirm the type"
    reasons               TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(reasons)),
    language              TEXT    NOT NULL DEFAULT 'und',
    status                TEXT    NOT NULL DEFAULT 'new'
                          CHECK (status IN ('new', 'in_progress', 'awaiting_requester', 'extended', 'resolved')),
    requester_email       TEXT    NOT NULL DEFAULT '',
    requester_name        TEXT    NOT NULL DEFAULT '',
    subject               TEXT    NOT NULL DEFAULT '',
    message_id            TEXT    NOT NULL,                   -- Message-ID of the email that opened it
    received_at           TEXT    NOT NULL,                   -- arrival in the mailbox (INTERNALDATE)
    received_date         TEXT    NOT NULL,                   -- local calendar date of received_at
    due_date              TEXT    NOT NULL,
    unreadable            INTEGER NOT NULL DEFAULT 0,         -- opened from a message that could not be read
    assignee              TEXT    NOT NULL DEFAULT '',
    slack_channel         TEXT,
    slack_root_ts         TEXT,
    root_post_started_at  TEXT,                               -- set before chat.postMessage, for crash recovery
    version               INTEGER NOT NULL DEFAULT 1,         -- bumped on every change
    rendered_version      INTEGER NOT NULL DEFAULT 0,         -- version shown in Slack
    rendered_on           TEXT,                               -- local date the root was last rendered (days left)
    created_at            TEXT    NOT NULL,
    updated_at            TEXT    NOT NULL,
    closed_at             TEXT
);
CREATE INDEX cases_unposted ON cases (id) WHERE slack_root_ts IS NULL;
CREATE INDEX cases_status ON cases (status, due_date);
CREATE INDEX cases_requester ON cases (requester_email);

CREATE TABLE emails (
    id                     INTEGER PRIMARY KEY,
    message_id             TEXT    NOT NULL UNIQUE,
    synthetic_id           INTEGER NOT NULL DEFAULT 0,
    case_id                INTEGER REFERENCES cases (id),
    disposition            TEXT    NOT NULL
                           CHECK (disposition IN ('opened_case', 'follow_up', 'automated', 'historical')),
    folder                 TEXT,
    uidvalidity            INTEGER,
    uid                    INTEGER,
    received_at            TEXT    NOT NULL,                  -- INTERNALDATE
    sent_at                TEXT,                              -- the sender's Date header, informational
    from_name              TEXT    NOT NULL DEFAULT '',
    from_addr              TEXT    NOT NULL DEFAULT '',
    reply_to               TEXT    NOT NULL DEFAULT '',
    to_addrs               TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(to_addrs)),
    cc_addrs               TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(cc_addrs)),
    subject                TEXT    NOT NULL DEFAULT '',
    in_reply_to            TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(in_reply_to)),
    references_ids         TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(references_ids)),
    headers                TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(headers)),
    body_text              TEXT    NOT NULL DEFAULT '',
    new_text               TEXT    NOT NULL DEFAULT '',
    quoted_text            TEXT    NOT NULL DEFAULT '',
    signature              TEXT    NOT NULL DEFAULT '',
    html_only              INTEGER NOT NULL DEFAULT 0,
    attachments            TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(attachments)),
    kind                   TEXT    NOT NULL,
    labels                 TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(labels)),
    confidence             REAL    NOT NULL DEFAULT 0,
    language               TEXT    NOT NULL DEFAULT 'und',
    automated              INTEGER NOT NULL DEFAULT 0,
    reasons                TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(reasons)),
    problems               TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(problems)),
    unreadable             INTEGER NOT NULL DEFAULT 0,
    size                   INTEGER NOT NULL DEFAULT 0,
    raw                    BLOB,
    slack_ts               TEXT,                              -- the thread reply showing it
    slack_post_started_at  TEXT,
    created_at             TEXT    NOT NULL
);
CREATE INDEX emails_case ON emails (case_id);
CREATE INDEX emails_unposted ON emails (id) WHERE slack_ts IS NULL AND case_id IS NOT NULL;
CREATE INDEX emails_uid ON emails (folder, uidvalidity, uid);

-- Append-only: who did what to which case, when; `before`/`after` hold the changed fields.
CREATE TABLE audit_events (
    id        INTEGER PRIMARY KEY,
    case_id   INTEGER REFERENCES cases (id),
    at        TEXT    NOT NULL,
    actor     TEXT    NOT NULL,                               -- Slack user id, or "system"
    action    TEXT    NOT NULL,
    before    TEXT    CHECK (before IS NULL OR json_valid(before)),
    after     TEXT    CHECK (after IS NULL OR json_valid(after)),
    note      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_case ON audit_events (case_id, id);
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

-- Where the mailbox watcher stands, per folder: the next message to take is the first UID above
-- last_uid under this uidvalidity. Messages below backfill_before_uid were already in the folder
-- when the watcher first saw it (or re-synced after a UIDVALIDITY change).
CREATE TABLE mailbox_cursor (
    folder               TEXT    PRIMARY KEY,
    uidvalidity          INTEGER NOT NULL,
    last_uid             INTEGER NOT NULL DEFAULT 0,
    backfill_before_uid  INTEGER NOT NULL DEFAULT 0,
    updated_at           TEXT    NOT NULL
);
