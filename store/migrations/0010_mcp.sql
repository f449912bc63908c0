-- jitgate's MCP server (mcp_gateway/): the sessions agents open with ``initialize``, and
-- every tool call they make.

-- A session is bound to the person whose access token opened it; a request with the
-- session's id and someone else's token finds no session. ``agent`` is the name the
-- client declared (clientInfo.name), shown on cards as "<principal> via agent <agent>".
CREATE TABLE mcp_sessions (
    id                text PRIMARY KEY,
    principal         text NOT NULL,
    agent             text NOT NULL,
    agent_version     text,
    protocol_version  text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    ended_at          timestamptz
);

-- One row per tools/call, written before the tool runs (a call the store cannot record
-- does not run) and completed with its outcome. ``arguments`` are stored with their
-- sensitive values masked; ``session_id`` is the audited session a statement ran in,
-- ``request_id`` the access request a held statement opened.
CREATE TABLE mcp_calls (
    id            bigserial PRIMARY KEY,
    mcp_session   text NOT NULL,
    principal     text NOT NULL,
    agent         text NOT NULL,
    tool          text NOT NULL,
    arguments     jsonb NOT NULL,
    outcome       text,
    detail        text,
    request_id    bigint,
    session_id    uuid,
    started_at    timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz
);
CREATE INDEX mcp_calls_started_at ON mcp_calls (started_at DESC);
CREATE INDEX mcp_calls_principal ON mcp_calls (principal, started_at DESC);
