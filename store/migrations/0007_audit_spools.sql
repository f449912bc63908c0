-- Each gateway process writes every statement to a local spool before the target runs it
-- (audit/spool.py); the spool's segments are encrypted with a key kept here, never beside
-- them. A gateway that recovers a stopped process's spool reads its key from this table.
CREATE TABLE audit_spools (
    id           uuid PRIMARY KEY,
    gateway      text NOT NULL,
    key          bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    recovered_at timestamptz
);
