-- One outbox for every chat: Slack's tables become the chat-neutral ones (notify/outbox.py),
-- each row naming the chat that delivers it, and Microsoft Teams' conversation references.

-- What jitgate sends on its own initiative, per chat ('slack', 'teams'): a key is unique
-- within its chat, so one request's card is queued once for each chat that shows it.
ALTER TABLE slack_outbox RENAME TO outbox;
ALTER TABLE outbox ADD COLUMN chat text NOT NULL DEFAULT 'slack';
ALTER TABLE outbox ALTER COLUMN chat DROP DEFAULT;
ALTER TABLE outbox DROP CONSTRAINT slack_outbox_dedupe_key_key;
ALTER TABLE outbox ADD CONSTRAINT outbox_chat_key UNIQUE (chat, dedupe_key);
ALTER TABLE outbox RENAME CONSTRAINT slack_outbox_pkey TO outbox_pkey;
ALTER INDEX slack_outbox_due RENAME TO outbox_due;
DROP INDEX slack_outbox_alerts_sent;
CREATE INDEX outbox_alerts_sent ON outbox (chat, channel, sent_at) WHERE kind = 'alert';

-- Where each chat shows a request's card: Slack's channel and ts, Teams' conversation id
-- and activity id. Updates and threaded replies find it here.
ALTER TABLE slack_cards RENAME TO cards;
ALTER TABLE cards ADD COLUMN chat text NOT NULL DEFAULT 'slack';
ALTER TABLE cards ALTER COLUMN chat DROP DEFAULT;
ALTER TABLE cards DROP CONSTRAINT slack_cards_pkey;
ALTER TABLE cards ADD PRIMARY KEY (chat, request_id);

-- Inbound deliveries already acted on, whichever chat sent them (keys carry the chat's
-- own prefix or shape).
ALTER TABLE slack_deliveries RENAME TO inbound_deliveries;
ALTER INDEX slack_deliveries_expiry RENAME TO inbound_deliveries_expiry;

-- A Teams conversation the app was added to or spoken to in (bot/teams_conversations.py):
-- what proactive posting needs. ``person`` is the gateway identity of a personal chat's
-- user, where the requester's messages go.
CREATE TABLE teams_conversations (
    conversation_id  text PRIMARY KEY,
    service_url      text NOT NULL,
    tenant_id        text,
    kind             text NOT NULL,
    bot_id           text,
    person           text,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX teams_conversations_person ON teams_conversations (person)
    WHERE person IS NOT NULL;
