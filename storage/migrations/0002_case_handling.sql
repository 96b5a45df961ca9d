-- Schema version 2: handling a case from Slack — identity, extension, waiting for the requester,
-- resolution, linked (split) cases, the data-system checklist and the thread notes that record
-- each action.

ALTER TABLE cases ADD COLUMN identity_status TEXT NOT NULL DEFAULT 'unverified'
    CHECK (identity_status IN ('unverified', 'verified', 'not_needed'));
ALTER TABLE cases ADD COLUMN identity_method TEXT NOT NULL DEFAULT '';
ALTER TABLE cases ADD COLUMN identity_by TEXT NOT NULL DEFAULT '';
ALTER TABLE cases ADD COLUMN identity_at TEXT;
-- what our own mail server's Authentication-Results said about the sender: pass, fail or unknown
ALTER TABLE cases ADD COLUMN sender_check TEXT NOT NULL DEFAULT 'unknown'
    CHECK (sender_check IN ('pass', 'fail', 'unknown'));
ALTER TABLE cases ADD COLUMN sender_check_detail TEXT NOT NULL DEFAULT '';
ALTER TABLE cases ADD COLUMN extended_at TEXT;
ALTER TABLE cases ADD COLUMN extension_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE cases ADD COLUMN waiting_since TEXT;
ALTER TABLE cases ADD COLUMN waiting_for TEXT NOT NULL DEFAULT '';
ALTER TABLE cases ADD COLUMN status_before_wait TEXT;
ALTER TABLE cases ADD COLUMN paused_days INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN outcome TEXT;
ALTER TABLE cases ADD COLUMN outcome_note TEXT NOT NULL DEFAULT '';
ALTER TABLE cases ADD COLUMN recipients_informed TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(recipients_informed));
ALTER TABLE cases ADD COLUMN resolved_on_time INTEGER;
ALTER TABLE cases ADD COLUMN split_from_case_id INTEGER REFERENCES cases (id);
ALTER TABLE cases ADD COLUMN checklist_ts TEXT;
ALTER TABLE cases ADD COLUMN checklist_post_started_at TEXT;
ALTER TABLE cases ADD COLUMN checklist_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE cases ADD COLUMN checklist_rendered_version INTEGER NOT NULL DEFAULT 0;

-- an email split off into a case of its own
ALTER TABLE emails ADD COLUMN split_case_id INTEGER REFERENCES cases (id);

-- Where the requester's data may live, per case, from the data inventory (systems.toml).
CREATE TABLE checklist_items (
    id        INTEGER PRIMARY KEY,
    case_id   INTEGER NOT NULL REFERENCES cases (id),
    position  INTEGER NOT NULL,
    system    TEXT    NOT NULL,                -- key in the inventory
    name      TEXT    NOT NULL,                -- as staff know it ("Website database")
    action    TEXT    NOT NULL,
    label     TEXT    NOT NULL,
    done      INTEGER NOT NULL DEFAULT 0,
    done_by   TEXT    NOT NULL DEFAULT '',
    done_at   TEXT,
    UNIQUE (case_id, system)
);

-- One-line records in the case thread ("Alice extended the deadline to …"), posted by the publisher.
CREATE TABLE thread_notes (
    id               INTEGER PRIMARY KEY,
    case_id          INTEGER NOT NULL REFERENCES cases (id),
    text             TEXT    NOT NULL,
    blocks           TEXT    CHECK (blocks IS NULL OR json_valid(blocks)),
    created_at       TEXT    NOT NULL,
    slack_ts         TEXT,
    post_started_at  TEXT
);
CREATE INDEX thread_notes_unposted ON thread_notes (id) WHERE slack_ts IS NULL;
