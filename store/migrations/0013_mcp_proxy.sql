-- Other MCP servers the gateway governs (resources of type mcp, mcp_gateway/relay.py).

-- A session an agent opened through the gateway with one governed server: bound to the
-- person whose token opened it and the agent, and to the server's own session id, which
-- never reaches the agent.
CREATE TABLE mcp_proxy_sessions (
    id                  text PRIMARY KEY,
    resource            text NOT NULL,
    principal           text NOT NULL,
    agent               text NOT NULL,
    downstream_session  text,
    protocol_version    text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    ended_at            timestamptz
);

-- Calls through a governed server are recorded beside jitgate's own tool calls: the
-- resource they went to and what policy decided (allow, deny, held, review, approved).
ALTER TABLE mcp_calls ADD COLUMN resource text, ADD COLUMN decision text;
CREATE INDEX mcp_calls_resource ON mcp_calls (resource, started_at DESC)
    WHERE resource IS NOT NULL;

-- Each tool of a governed server as it was approved (first seen counts as approved):
-- ``digest`` covers its name, description and input schema. A definition seen since
-- that differs is kept in ``changed_*``, and the tool is held until an approver takes it.
CREATE TABLE mcp_tool_pins (
    resource            text NOT NULL,
    tool                text NOT NULL,
    digest              bytea NOT NULL,
    definition          jsonb NOT NULL,
    approved_by         text NOT NULL,
    approved_at         timestamptz NOT NULL DEFAULT now(),
    changed_digest      bytea,
    changed_definition  jsonb,
    changed_at          timestamptz,
    PRIMARY KEY (resource, tool)
);
