"""The chat-neutral notification core under every chat adapter: the card model
(:mod:`notify.cards`), who may act on a card (:mod:`notify.access`), the plan of what a
request event shows (:mod:`notify.plan`), the outbox every chat delivers through
(:mod:`notify.outbox`), alerts as fields (:mod:`notify.alerts`), the chat commands
(:mod:`notify.commands`) and inbound de-duplication (:mod:`notify.deliveries`)."""
