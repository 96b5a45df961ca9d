-- Schema version 8: the outbox finds what is due without sorting what waits (issue 13).
--
-- `Outbox.due` orders waiting rows by priority (storage/outbox.py `_PRIORITY`, the same
-- expression) and then age; with this index SQLite walks them in that order and stops at the
-- round's limit, instead of sorting every waiting row each round (20 ms a round with 20,000
-- waiting). `kind` is in the index so that a destination's rows are picked out without reading
-- the others' rows. `Outbox.orphans` starts from the few failed rows.
CREATE INDEX outbox_due ON outbox (
    CASE kind WHEN 'root' THEN 0 WHEN 'root_update' THEN 2 WHEN 'checklist_update' THEN 2
        WHEN 'note_update' THEN 2 WHEN 'erase' THEN 2 WHEN 'home' THEN 3 ELSE 1 END,
    id,
    kind
) WHERE done_at IS NULL AND failed_at IS NULL;
CREATE INDEX outbox_failed ON outbox (id) WHERE failed_at IS NOT NULL;
