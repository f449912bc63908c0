"""The web inbox as a notification surface: always on, nothing to deliver.

Requests appear in ``/inbox`` and ``/requests/{id}`` because they are in the store; this
notifier only tells held clients and chat messages where to look.
"""

from __future__ import annotations

from approvals.model import RequestView


class InboxNotifier:
    name = "web"

    def where(self, request: RequestView) -> str | None:
        return f"the web inbox ({request.url})"

    async def request_opened(self, request: RequestView) -> None:
        return None

    async def request_changed(self, request: RequestView) -> None:
        return None

    async def request_finished(self, request: RequestView) -> None:
        return None

    async def reminder(self, request: RequestView) -> None:
        return None
