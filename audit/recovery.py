"""Recovery of the spools a killed gateway left (see :mod:`audit.spool`).

Run at start, before the gateway accepts a client: for every spool in the directory whose
process is gone, read its key from the store, decrypt its segments, and give each intent
that has no audit record one: with the outcome, rows and tag of its done frame, or outcome
``unknown`` when the statement was still in flight; the sessions those statements belonged
to are marked ended ("gateway stopped"). Then the segments and the lock go.
A spool whose key the store does not have (another store, a deleted row) is left in place
and logged: it cannot be read, and nothing is deleted unread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import asyncpg

from audit.events import StatementEvent
from audit.recorder import event_batches, write_batches
from audit.spool import Dones, Intent, dead_spools, missing_intents, read_segments, remove

log = logging.getLogger("jitgate.audit")

UNKNOWN_OUTCOME = "unknown"
_IN_FLIGHT = "the gateway stopped before the target answered; it may or may not have run"
_FROM_SPOOL = "recorded from the spool of a gateway that stopped"

# (resource, SQL) -> (class, reasons): the resource's classifier (guard.resources).
Classify = Callable[[str, str], tuple[str, tuple[str, ...]]]


@dataclass(frozen=True, slots=True)
class Recovered:
    spools: int
    intents: int
    recorded: int


async def recover(pool: asyncpg.Pool, directory: Path, own: UUID, classify: Classify) -> Recovered:
    """Recover every dead spool in ``directory`` (never ``own``)."""
    spools = intents_seen = recorded = 0
    for spool, segments, lock_fd in await asyncio.to_thread(dead_spools, directory, own):
        try:
            key = await pool.fetchval("SELECT key FROM audit_spools WHERE id = $1", spool)
            if key is None:
                log.error(
                    "an audit spool whose key is not in the store is left unread",
                    extra={"spool": str(spool), "segments": len(segments)},
                )
                continue
            intents, dones = await asyncio.to_thread(read_segments, segments, bytes(key))
            missing = await missing_intents(pool, intents) if intents else []
            if missing:
                await _record(pool, missing, dones, classify)
            await _end_sessions(pool, sorted({i.session_id for i in intents}))
            await pool.execute("UPDATE audit_spools SET recovered_at = now() WHERE id = $1", spool)
            await asyncio.to_thread(remove, [*segments, directory / f"{spool}.lock"])
            spools += 1
            intents_seen += len(intents)
            recorded += len(missing)
            log.warning(
                "recovered the audit spool of a stopped gateway",
                extra={"spool": str(spool), "intents": len(intents), "recorded": len(missing)},
            )
        finally:
            with contextlib.suppress(OSError):
                os.close(lock_fd)
    return Recovered(spools, intents_seen, recorded)


async def _record(
    pool: asyncpg.Pool, missing: list[Intent], dones: Dones, classify: Classify
) -> None:
    sessions = sorted({i.session_id for i in missing})
    rows = await pool.fetch(
        "SELECT s.id, s.resource, coalesce(max(b.last_seq), 0) AS seq FROM sessions s"
        " LEFT JOIN statement_batches b ON b.session_id = s.id"
        " WHERE s.id = ANY($1::uuid[]) GROUP BY s.id, s.resource",
        sessions,
    )
    known = {r["id"]: (r["resource"], r["seq"]) for r in rows}
    events = []
    seqs: dict[UUID, int] = {}
    for intent in missing:
        resource, last = known.get(intent.session_id, ("", 0))
        seq = seqs[intent.session_id] = seqs.get(intent.session_id, last) + 1
        sql = intent.sql.decode("utf-8", "surrogateescape")
        statement_class, reasons = classify(resource, sql)
        # The start as the record had it: (µs + ½) / 1e6 turns back into the same µs.
        started = (intent.started_us + 0.5) / 1e6
        event = StatementEvent(intent.session_id, seq, sql, "unknown", started)
        event.statement_class = statement_class
        done = dones.get((intent.session_id, intent.started_us))
        if done is None:
            event.reasons = (*reasons, _IN_FLIGHT)
            event.outcome = UNKNOWN_OUTCOME
        else:
            event.reasons = (*reasons, _FROM_SPOOL)
            event.outcome, event.rows = done.outcome, done.rows
            event.command_tag, event.sqlstate = done.command_tag, done.sqlstate
            event.ended_at = (intent.started_us + done.duration_us + 0.5) / 1e6
        events.append(event)
    async with pool.acquire() as conn:
        await write_batches(conn, event_batches(events))


async def _end_sessions(pool: asyncpg.Pool, sessions: list[UUID]) -> None:
    await pool.execute(
        "UPDATE sessions SET ended_at = now(), end_reason = 'gateway stopped'"
        " WHERE id = ANY($1::uuid[]) AND ended_at IS NULL",
        sessions,
    )
