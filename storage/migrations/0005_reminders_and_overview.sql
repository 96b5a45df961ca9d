-- Schema version 5: what the bot says on its own about deadlines and the mailbox.
--
-- `notices` holds one row per scheduled message decided: a reminder (case, milestone, local day),
-- a daily digest (day), a weekly summary (the Monday of its week), an intake alarm (down or up).
-- Its unique key makes each happen at most once across restarts and crashes; `payload` holds the
-- facts it states (references, numbers, dates: never a name, an address or an email's words), so
-- that it says what was true when it was decided and retention has nothing to erase in it.
-- Outbox rows deliver them (`notice_id`); a direct message or an App Home names its `recipient`.
CREATE TABLE notices (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('reminder', 'digest', 'summary', 'intake_alarm')),
    case_id     INTEGER REFERENCES cases (id),
    key         TEXT    NOT NULL,                 -- milestone, or '' (digest, summary), or down/up
    day         TEXT    NOT NULL,                 -- local date (or instant, for an alarm) it belongs to
    payload     TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(payload)),
    created_at  TEXT    NOT NULL
);
CREATE UNIQUE INDEX notices_once ON notices (kind, COALESCE(case_id, 0), key, day);
CREATE INDEX notices_case ON notices (case_id, kind, key) WHERE case_id IS NOT NULL;

ALTER TABLE outbox ADD COLUMN notice_id INTEGER REFERENCES notices (id);
ALTER TABLE outbox ADD COLUMN recipient TEXT;     -- the user of a direct message or an App Home
CREATE UNIQUE INDEX outbox_one_notice ON outbox (notice_id, kind, COALESCE(recipient, ''))
    WHERE notice_id IS NOT NULL;
-- at most one App Home refresh waits per user
CREATE UNIQUE INDEX outbox_one_waiting_home ON outbox (recipient)
    WHERE kind = 'home' AND done_at IS NULL AND failed_at IS NULL AND started_at IS NULL;

-- staff who opened the App Home: their view is refreshed when a case it shows changes
CREATE TABLE home_tabs (
    user_id    TEXT PRIMARY KEY,
    opened_at  TEXT NOT NULL
);
