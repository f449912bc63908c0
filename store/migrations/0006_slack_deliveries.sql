-- Slack deliveries already acted on, so a replay, a Slack retry or a double click acts once,
-- on whichever gateway it lands. A row per de-duplication key (bot/slack_inbound.py): the
-- body's hash, Slack's trigger_id, a modal's view id, a click. A key is taken by inserting
-- it; an expired one may be taken again. See bot/slack_deliveries.py.

CREATE TABLE slack_deliveries (
    key         text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX slack_deliveries_expiry ON slack_deliveries (expires_at);
