"""jitgate's MCP server: tools for an AI agent to work with databases through the same
classification, policy, approvals, masking and audit as psql, at ``/mcp`` on the HTTP
listener (:mod:`mcp_gateway.endpoint`)."""
