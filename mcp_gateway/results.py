"""What a tool answers: MCP's ``CallToolResult`` (text ``content`` and the same facts as
``structuredContent``), and what the call's record keeps of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID


@dataclass(frozen=True, slots=True)
class ToolResult:
    """``outcome`` and the ids go to the call's record
    (:meth:`mcp_gateway.store.McpStore.call_ended`)."""

    text: str
    structured: dict[str, Any]
    is_error: bool = False
    outcome: str = "ok"
    request_id: int | None = None
    session_id: UUID | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "content": [{"type": "text", "text": self.text}],
            "structuredContent": self.structured,
            "isError": self.is_error,
        }


def refusal(status: str, message: str, **extra: Any) -> ToolResult:
    """A tool error (``isError``): nothing ran; ``status`` says why in a word."""
    return ToolResult(message, {"status": status, "error": message, **extra}, True, status)
