-- Identities, access tokens, sessions and statement events.

CREATE TABLE identities (
    email       text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Tokens are stored only as hashes: SHA-256 of the token for cleartext password
-- authentication, and a SCRAM-SHA-256 verifier for SCRAM towards the client.
CREATE TABLE access_tokens (
    id              bigserial PRIMARY KEY,
    email           text NOT NULL REFERENCES identities (email),
    token_sha256    bytea NOT NULL UNIQUE,
    scram_verifier  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz
);
CREATE INDEX access_tokens_email ON access_tokens (email, created_at DESC);

-- One row per client connection. The cancel columns let any gateway process
-- sharing this store forward a CancelRequest to the right upstream backend.
CREATE TABLE sessions (
    id                uuid PRIMARY KEY,
    identity          text NOT NULL,
    resource          text NOT NULL,
    client_addr       text,
    application_name  text,
    gateway           text NOT NULL,
    started_at        timestamptz NOT NULL,
    ended_at          timestamptz,
    end_reason        text,
    cancel_pid        integer,
    cancel_secret     bytea,
    upstream_host     text,
    upstream_port     integer,
    upstream_pid      integer,
    upstream_secret   bytea
);
CREATE INDEX sessions_started_at ON sessions (started_at DESC);
CREATE INDEX sessions_cancel ON sessions (cancel_pid) WHERE ended_at IS NULL;

-- One row per statement the client sent. Raw result values are never stored.
CREATE TABLE statement_events (
    session_id       uuid NOT NULL,
    seq              integer NOT NULL,
    sql              text NOT NULL,
    protocol         text NOT NULL,          -- simple | extended | function-call
    statement_class  text NOT NULL,
    decision         text NOT NULL,          -- allow | review | deny | refused
    reasons          text[] NOT NULL DEFAULT '{}',
    outcome          text NOT NULL,          -- ok | error | refused | skipped | interrupted
    started_at       timestamptz NOT NULL,
    ended_at         timestamptz NOT NULL,
    rows             bigint,
    command_tag      text,
    sqlstate         text,
    PRIMARY KEY (session_id, seq)
);
