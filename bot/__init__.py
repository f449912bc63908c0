"""Thin chat adapters (Slack, Microsoft Teams) over the chat-neutral approvals core."""
