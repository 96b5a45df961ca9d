-- Schema version 6: staff corrections of the classifier, kept as labelled examples (issue 9).
--
-- Every "Change type" by staff records which stored email opened the case and the kinds a person
-- chose for it (primary first). `privacy-desk train` reads them, with the email's raw bytes from
-- `email_contents`, as one more labelled set. The labels are a fact; the words they label are
-- personal data, so retention (issue 11) erases a case's corrections together with the case.
CREATE TABLE corrections (
    id        INTEGER PRIMARY KEY,
    case_id   INTEGER NOT NULL REFERENCES cases (id),
    email_id  INTEGER NOT NULL REFERENCES emails (id),
    labels    TEXT    NOT NULL CHECK (json_valid(labels) AND json_array_length(labels) > 0),
    actor     TEXT    NOT NULL,                 -- the Slack user who changed the type
    at        TEXT    NOT NULL
);
CREATE INDEX corrections_case ON corrections (case_id);
CREATE INDEX corrections_email ON corrections (email_id, id);
