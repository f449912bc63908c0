"""Pinning a governed server's tools (the rug-pull defence).

A tool is pinned the first time the gateway sees it: its name, description and input
schema, as a digest, in ``mcp_tool_pins``. Whenever the server lists it again with any of
them changed, the tool is held: left out of ``tools/list`` and refused when called, and an
alert is raised, until one of the resource's approvers approves the new definition
(:meth:`ToolPins.approve`, ``POST /api/mcp/{resource}/tools/{tool}/approve``).

The definitions last listed by each server are kept in memory (a call is checked against
what its server said the tool is), and so is each approved digest for a few seconds, so
a call of an unchanged tool costs no round trip to the store.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from approvals.model import Alert
from jitgate.errors import StoreUnavailable
from mcp_gateway.store import storable

STORE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
# How long an approved digest is trusted without asking the store again.
APPROVED_FOR = 10.0
FIRST_SEEN = "first seen"


def tool_digest(tool: dict[str, Any]) -> bytes:
    pinned = {k: tool.get(k) for k in ("name", "description", "inputSchema")}
    text = json.dumps(pinned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(storable(text).encode()).digest()


class ToolPins:
    def __init__(self, pool: asyncpg.Pool, alert: Callable[[Alert], None]) -> None:
        self.pool = pool
        self.alert = alert
        self._listed: dict[str, dict[str, dict[str, Any]]] = {}
        self._approved: dict[tuple[str, str], tuple[bytes, float]] = {}

    def listed(self, resource: str, tool: str) -> dict[str, Any] | None:
        """``tool`` as ``resource``'s server last listed it to this process, or None."""
        return self._listed.get(resource, {}).get(tool)

    async def admit(
        self, resource: str, tools: list[dict[str, Any]], *, complete: bool
    ) -> list[dict[str, Any]]:
        """``tools`` as listed by ``resource``'s server, without those held; ``complete``:
        this is the whole list (no further page), so tools missing from it are forgotten."""
        known = self._listed.setdefault(resource, {})
        if complete:
            known.clear()
        admitted = []
        for tool in tools:
            name = tool.get("name")
            if not isinstance(name, str):
                continue
            known[name] = tool
            if not await self.is_held(resource, tool):
                admitted.append(tool)
        return admitted

    async def is_held(self, resource: str, tool: dict[str, Any]) -> bool:
        """Whether ``tool`` differs from its approved definition (pinning it if new)."""
        name, digest = str(tool["name"]), tool_digest(tool)
        cached = self._approved.get((resource, name))
        if cached is not None and cached[0] == digest and time.monotonic() < cached[1]:
            return False
        definition = json.dumps(tool, ensure_ascii=False)
        try:
            approved = await self.pool.fetchval(
                "WITH pinned AS (INSERT INTO mcp_tool_pins (resource, tool, digest, definition,"
                " approved_by) VALUES ($1, $2, $3, $4::jsonb, $5)"
                " ON CONFLICT (resource, tool) DO NOTHING RETURNING digest)"
                " SELECT digest FROM pinned UNION ALL"
                " SELECT digest FROM mcp_tool_pins WHERE resource = $1 AND tool = $2 LIMIT 1",
                resource, name, digest, storable(definition), FIRST_SEEN,
            )  # fmt: skip
            if approved is None:  # pinned at the same moment by another call: read it
                approved = await self.pool.fetchval(
                    "SELECT digest FROM mcp_tool_pins WHERE resource = $1 AND tool = $2",
                    resource, name,
                )  # fmt: skip
            if bytes(approved) == digest:
                self._approved[(resource, name)] = (digest, time.monotonic() + APPROVED_FOR)
                return False
            newly = await self.pool.fetchval(
                "UPDATE mcp_tool_pins SET changed_digest = $3, changed_definition = $4::jsonb,"
                " changed_at = now() WHERE resource = $1 AND tool = $2"
                " AND changed_digest IS DISTINCT FROM $3 RETURNING tool",
                resource, name, digest, storable(definition),
            )  # fmt: skip
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot check the tool's pin: {exc}") from exc
        if newly is not None:
            self.alert(
                Alert("guardrail", f"tool {name!r} on {resource} changed its name, description"
                      " or input schema since it was approved; it is held until an approver"
                      " approves the new definition", resource=resource)
            )  # fmt: skip
        return True

    async def approve(self, resource: str, tool: str, approver: str) -> bool:
        """Make the changed definition of ``tool`` the approved one; False when nothing is
        held."""
        try:
            done = await self.pool.fetchval(
                "UPDATE mcp_tool_pins SET digest = changed_digest,"
                " definition = changed_definition, approved_by = $3, approved_at = now(),"
                " changed_digest = NULL, changed_definition = NULL, changed_at = NULL"
                " WHERE resource = $1 AND tool = $2 AND changed_digest IS NOT NULL"
                " RETURNING tool",
                resource, tool, approver,
            )  # fmt: skip
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot approve the tool: {exc}") from exc
        self._approved.pop((resource, tool), None)
        return done is not None

    async def pinned(self, resource: str) -> list[dict[str, Any]]:
        """Every pinned tool of ``resource``: who approved it, and whether it is held."""
        try:
            rows = await self.pool.fetch(
                "SELECT tool, approved_by, approved_at, changed_at, changed_definition"
                " FROM mcp_tool_pins WHERE resource = $1 ORDER BY tool",
                resource,
            )
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot read the pinned tools: {exc}") from exc
        return [
            {
                "tool": r["tool"],
                "approved_by": r["approved_by"],
                "approved_at": r["approved_at"].isoformat(),
                "held": r["changed_at"] is not None,
                "changed_to": json.loads(r["changed_definition"])
                if r["changed_definition"]
                else None,
            }
            for r in rows
        ]
