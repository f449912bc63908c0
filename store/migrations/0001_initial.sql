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

-- Statement events are written in batches: one row per session per flush. ``texts``
-- holds the batch's distinct SQL texts; ``events`` is a JSON array with one array per
-- statement, in the field order of audit/events.py. A batch costs the store a fraction
-- of a row per statement, which keeps recording cheap on the proxy's hot path; the view
-- below gives one row per statement. Raw result values are never stored.
CREATE TABLE statement_batches (
    session_id  uuid NOT NULL,
    first_seq   integer NOT NULL,
    last_seq    integer NOT NULL,
    started_at  timestamptz NOT NULL,
    texts       text[] NOT NULL,
    events      json NOT NULL,
    PRIMARY KEY (session_id, first_seq)
);
CREATE INDEX statement_batches_started_at ON statement_batches USING brin (started_at);

CREATE VIEW statement_events AS
SELECT b.session_id,
       (e ->> 0)::integer                                    AS seq,
       b.texts[(e ->> 1)::integer + 1]                       AS sql,
       e ->> 2                                               AS protocol,
       e ->> 3                                               AS statement_class,
       e ->> 4                                               AS decision,
       ARRAY(SELECT json_array_elements_text(e -> 5))        AS reasons,
       e ->> 6                                               AS outcome,
       to_timestamp((e ->> 7)::float8 / 1e6)                 AS started_at,
       to_timestamp(((e ->> 7)::float8 + (e ->> 8)::float8) / 1e6) AS ended_at,
       (e ->> 9)::bigint                                     AS rows,
       e ->> 10                                              AS command_tag,
       e ->> 11                                              AS sqlstate
FROM statement_batches AS b
CROSS JOIN LATERAL json_array_elements(b.events) AS e;
