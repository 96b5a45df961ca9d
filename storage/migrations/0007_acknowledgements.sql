-- Schema version 7: acknowledgements to requesters (issue 10).
--
-- An acknowledgement is an outbound email like a reply (`purpose` says which); at most one goes
-- to a sender in 24 hours, which is looked up by purpose and time, then by address.
CREATE INDEX outbound_purpose_time ON outbound_emails (purpose, created_at);
