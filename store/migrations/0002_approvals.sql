-- Access requests for single statements, their decisions, and the gateways alive.
--
-- Every change of ``requests.state`` is a compare-and-set (UPDATE ... WHERE id = $1 AND
-- state = $2) made by approvals/store.py, which also NOTIFYs ``jitgate_requests`` with the
-- request id so a client held on another gateway process wakes up.

CREATE TABLE requests (
    id                  bigserial PRIMARY KEY,
    resource            text NOT NULL,
    requester           text NOT NULL,
    agent               text,
    -- The exact statement (and, for the extended protocol, its bound parameters as text),
    -- executed byte for byte; ``sql_sha256`` covers both and is checked at execution.
    sql                 text NOT NULL,
    params              jsonb,
    sql_sha256          bytea NOT NULL,
    -- The same statement with sensitive literals masked: what cards and pages show.
    display_sql         text NOT NULL,
    statement_class     text NOT NULL,
    reasons             text[] NOT NULL DEFAULT '{}',
    reason              text,
    estimate            bigint,
    max_rows            bigint,
    state               text NOT NULL DEFAULT 'pending' CHECK (state IN (
                            'pending', 'approved', 'executing', 'executed', 'failed',
                            'rejected', 'expired', 'cancelled')),
    state_reason        text,
    source              text NOT NULL,
    session_id          uuid,
    approvals_required  integer NOT NULL CHECK (approvals_required >= 1),
    approver_groups     text[] NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    reminded_at         timestamptz,
    -- A client waiting on its own connection until ``hold_until``: until then only that
    -- session may execute the request; after it, a gateway runs it on a fresh connection.
    waiter              uuid,
    hold_until          timestamptz,
    executor            uuid,
    started_at          timestamptz,
    finished_at         timestamptz,
    outcome             jsonb
);
CREATE INDEX requests_open ON requests (state, expires_at)
    WHERE state IN ('pending', 'approved', 'executing');
CREATE INDEX requests_requester ON requests (requester, created_at DESC);

CREATE TABLE decisions (
    id          bigserial PRIMARY KEY,
    request_id  bigint NOT NULL REFERENCES requests (id),
    approver    text NOT NULL,
    verdict     text NOT NULL CHECK (verdict IN ('approve', 'reject')),
    via         text NOT NULL,
    reason      text,
    decided_at  timestamptz NOT NULL DEFAULT now(),
    -- An approver counts once, whatever groups they are in and however often they click.
    UNIQUE (request_id, approver)
);

-- Gateway processes sharing this store, with a heartbeat: a request left ``executing`` by a
-- gateway whose heartbeat stopped is settled as failed (never re-run blindly).
CREATE TABLE gateways (
    id            uuid PRIMARY KEY,
    hostname      text NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now()
);

-- Statement events name the access request a held statement became (index 12) and the
-- entities masked in the result, with their counts (index 13; never the values).
CREATE OR REPLACE VIEW statement_events AS
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
       e ->> 11                                              AS sqlstate,
       (e ->> 12)::bigint                                    AS request_id,
       CASE WHEN json_typeof(e -> 13) = 'object' THEN e -> 13 END AS masked
FROM statement_batches AS b
CROSS JOIN LATERAL json_array_elements(b.events) AS e;
