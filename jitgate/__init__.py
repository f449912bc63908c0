"""jitgate: a chat-ops-first, Layer-7 access gateway for PostgreSQL."""

__version__ = "0.1.0"
