-- Teams invokes already answered (bot/teams_invokes.py): the Bot Framework may deliver the
-- same invoke activity again (same conversation and activity id); it is acted on once, on
-- whichever gateway it lands, and every delivery gets the first one's answer. A row is
-- claimed by inserting it with a lease; ``answer`` is the invoke response once given. A
-- claim whose lease ran out unanswered (its gateway died) may be taken again, and so may
-- an expired row.
CREATE TABLE teams_invokes (
    key           text PRIMARY KEY,
    answer        jsonb,
    leased_until  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX teams_invokes_expiry ON teams_invokes (expires_at);
