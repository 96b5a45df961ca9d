-- Schema version 3: replies to the requester, written in Slack and sent by SMTP.
-- A reply is committed here first (with its Message-ID) and sent by the mailer afterwards, so an
-- SMTP outage delays it but never loses it; the requester's answer threads back to the case by
-- In-Reply-To/References naming this Message-ID.

CREATE TABLE outbound_emails (
    id               INTEGER PRIMARY KEY,
    case_id          INTEGER NOT NULL REFERENCES cases (id),
    message_id       TEXT    NOT NULL UNIQUE,
    to_addr          TEXT    NOT NULL,
    subject          TEXT    NOT NULL,
    body             TEXT    NOT NULL,
    language         TEXT    NOT NULL DEFAULT 'und',
    in_reply_to      TEXT    NOT NULL DEFAULT '',
    references_ids   TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(references_ids)),
    author           TEXT    NOT NULL,          -- Slack user id of the staff member who wrote it
    created_at       TEXT    NOT NULL,
    send_started_at  TEXT,
    sent_at          TEXT,
    failed_at        TEXT,                       -- refused for good (e.g. 550 unknown recipient)
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX outbound_emails_pending ON outbound_emails (id) WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX outbound_emails_case ON outbound_emails (case_id);
