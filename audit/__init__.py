"""The audit trail: one row per session, one event per statement, written off the hot path."""
