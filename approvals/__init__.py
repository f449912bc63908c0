"""Access requests for single statements: the state machine, decisions, exactly-once
execution, expiry and reminders, and the chat-neutral notification interface."""
