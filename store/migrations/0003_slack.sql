-- Slack delivery: the outbox every outgoing Slack message passes through, and where each
-- request's approval card was posted.
--
-- A row per message, unique by ``dedupe_key`` (``card:12``, ``dm:12:rejected``, ...), so a
-- notifier called twice or on two gateways queues it once. Workers on any gateway claim due
-- rows with FOR UPDATE SKIP LOCKED and a lease (``leased_until``); a worker that dies
-- mid-send leaves its rows to the next one once the lease ends. See bot/slack_outbox.py.

CREATE TABLE slack_outbox (
    id            bigserial PRIMARY KEY,
    dedupe_key    text NOT NULL UNIQUE,
    kind          text NOT NULL CHECK (kind IN ('card', 'update', 'reply', 'file', 'dm', 'alert')),
    request_id    bigint REFERENCES requests (id),
    -- Where it goes: the channel of a card or an alert; the email of a DM's recipient.
    -- Updates, replies and files go to the request's card (slack_cards).
    channel       text,
    recipient     text,
    -- The message as rendered when queued (replies, DMs, files, alerts); cards and card
    -- updates are rendered from the request as it is when sent.
    body          jsonb,
    -- Bumped each time a card update is queued again: a send only completes the row if
    -- the version it sent is still the latest, so the last state always reaches the card.
    version       integer NOT NULL DEFAULT 1,
    attempts      integer NOT NULL DEFAULT 0,
    due_at        timestamptz NOT NULL DEFAULT now(),
    leased_until  timestamptz,
    sent_at       timestamptz,
    failed_at     timestamptz,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX slack_outbox_due ON slack_outbox (due_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX slack_outbox_alerts_sent ON slack_outbox (channel, sent_at) WHERE kind = 'alert';

-- One approval card per request, recorded when Slack accepted it: updates and threaded
-- replies find it here, after a restart or from another gateway.
CREATE TABLE slack_cards (
    request_id  bigint PRIMARY KEY REFERENCES requests (id),
    channel     text NOT NULL,
    ts          text NOT NULL,
    posted_at   timestamptz NOT NULL DEFAULT now()
);
