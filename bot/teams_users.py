"""Who jitgate knows in Teams by MRI, and whose view of an approval card refreshes.

An Adaptive Card's ``refresh.userIds`` lists users by MRI (Microsoft's docs, "User IDs in
refresh"): the ``from.id`` Teams gives a user in the bot's activities (``29:...``), which
the roster calls answer too; an Entra object id matches nobody. :class:`TeamsUsers` keeps
MRI → e-mail (the mapping rules of :class:`bot.teams_conversations.TeamsPeople`) for every
person an authenticated activity came from and every member of the roster of a team or
chat, read when the app or someone new is added to it.

:meth:`TeamsUsers.refresh_ids` lists who may decide the request now (the same rule as the
buttons, :func:`notify.access.verbs_for`), most recently seen first, at most
:data:`REFRESH_LIMIT` (Teams refreshes at most 60 users' views automatically). Approvers
not seen yet are not listed: the card as posted carries the buttons for everyone, so they
still decide from it, and their first click or refresh puts them on the next cards.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from approvals.model import RequestView
from bot.teams_cards import REFRESH_LIMIT
from identity import Directory
from notify.access import verbs_for

# Candidates read per card: the most recently seen, enough for any approver group.
_CANDIDATES = 5000


class TeamsUsers:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def seen(self, people: Iterable[tuple[str, str | None, str]]) -> None:
        """Record ``(mri, Entra object id, email)`` of people just seen."""
        rows = [(mri, object_id, email) for mri, object_id, email in people if mri]
        if rows:
            await self._pool.executemany(
                "INSERT INTO teams_users (mri, object_id, email) VALUES ($1, $2, $3)"
                " ON CONFLICT (mri) DO UPDATE SET object_id = EXCLUDED.object_id,"
                " email = EXCLUDED.email, seen_at = now()",
                rows,
            )

    async def mri_of(self, email: str) -> str | None:
        """The MRI ``email`` was last seen with."""
        mri: str | None = await self._pool.fetchval(
            "SELECT mri FROM teams_users WHERE email = $1 ORDER BY seen_at DESC LIMIT 1", email
        )
        return mri

    async def refresh_ids(self, directory: Directory, view: RequestView) -> list[str]:
        """The MRIs whose card refreshes to their own view: who may decide ``view`` now."""
        rows = await self._pool.fetch(
            "SELECT mri, email FROM teams_users ORDER BY seen_at DESC, mri LIMIT $1", _CANDIDATES
        )
        ids = [row["mri"] for row in rows if verbs_for(directory, row["email"], view)]
        return ids[:REFRESH_LIMIT]
