"""The Postgres listener: accepts clients, tracks live sessions and cancel keys, drains.

It also holds the limits of ``postgres.limits`` that span sessions: authenticated
connections in all and per user (counted by this process, from authentication until the
client goes), and failed password attempts (:mod:`proxy.attempts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import time
from uuid import UUID

import asyncpg

from approvals.service import Approvals
from audit.recorder import AuditRecorder
from audit.spool import AuditSpool
from guard.sensitive import SensitiveColumns
from identity import Directory
from jitgate.config import Config, Resource
from jitgate.metrics import LATENCY_BUCKETS, GatewayMetrics
from masking import MaskingPolicy
from proxy import pgerrors
from proxy.attempts import PasswordAttempts
from proxy.fastpath import Engine, Known, Pump, engine_kind, native_enabled, new_pump, pump_enabled
from proxy.hooks import HookChain
from proxy.relay import ClientSession
from proxy.revocation import end_revoked_sessions
from proxy.upstream import send_cancel

log = logging.getLogger("jitgate.proxy")

CancelTarget = tuple[str, int, int, bytes]


class ProxyServer:
    def __init__(
        self,
        config: Config,
        pool: asyncpg.Pool,
        recorder: AuditRecorder,
        chain: HookChain,
        metrics: GatewayMetrics,
        approvals: Approvals | None = None,
        *,
        native: bool | None = None,
        pump: bool | None = None,
    ) -> None:
        """``native``: run sessions' common round trip in the C fast path (default: when it
        is built and ``JITGATE_NATIVE`` is not 0; see :mod:`proxy.fastpath`). ``pump``:
        with it, relay busy sessions' sockets on the pump's thread (default: unless
        ``JITGATE_PUMP`` is 0)."""
        self.config = config
        self.pool = pool
        self.recorder = recorder
        self.chain = chain
        self.metrics = metrics
        self.approvals = approvals
        # Who is in which group: the approvals core's directory, else the config's groups.
        self.directory = approvals.directory if approvals is not None else Directory(config)
        engine_type, stats_type, self.native = engine_kind(
            native_enabled() if native is None else native
        )
        self._engine_type = engine_type
        self._want_pump = self.native and (pump_enabled() if pump is None else pump)
        self.pump: Pump | None = None
        self._stats = stats_type(LATENCY_BUCKETS)
        metrics.add_native(self._stats)
        self.gateway_id = f"{socket.gethostname()}:{os.getpid()}"
        self.sessions: set[ClientSession] = set()
        # Where statements are written before they reach a target (Gateway.start opens it).
        self.spool: AuditSpool | None = None
        # Where masking found values, learned from results (Gateway sets it).
        self.masked_columns: SensitiveColumns | None = None
        self.attempts = PasswordAttempts(
            config.postgres.limits, approvals.emit if approvals is not None else None
        )
        # Authenticated sessions and their users, for the connection limits.
        self._users: dict[ClientSession, str] = {}
        self._per_user: dict[str, int] = {}
        self.cancel_keys: dict[tuple[int, bytes], CancelTarget] = {}
        self.tls_context = _tls_context(config)
        self._server: asyncio.Server | None = None
        self._no_sessions = asyncio.Event()
        self._revocations: asyncio.Task[None] | None = None
        self._no_sessions.set()

    def new_engine(
        self, session_id: UUID, admitted: dict[str | bytes, Known], blank: dict[bytes, bool] | None
    ) -> Engine:
        """The engine of a new session: files its audit records, runs its fast path."""
        return self._engine_type(session_id, admitted, blank, self._stats, self.recorder.dirty)

    def oldest_open(self) -> float:
        """When the oldest statement forwarded to a target and not yet filed for the audit
        began (now, when there is none)."""
        oldest = time.time()
        for session in self.sessions:
            started = session.oldest_open()
            if started is not None and started < oldest:
                oldest = started
        return oldest

    def forget_admitted(self, resource: str) -> None:
        """What sessions on ``resource`` admitted is judged again (what the hooks know of
        it changed)."""
        for session in self.sessions:
            context = session.context
            if context is not None and context.resource.name == resource:
                context.admitted.clear()

    def track(self, session: ClientSession) -> None:
        self.sessions.add(session)
        self._no_sessions.clear()

    def forget(self, session: ClientSession) -> None:
        self.sessions.discard(session)
        user = self._users.pop(session, None)
        if user is not None:
            left = self._per_user[user] - 1
            if left:
                self._per_user[user] = left
            else:
                del self._per_user[user]
        if not self.sessions:
            self._no_sessions.set()

    def admit(self, session: ClientSession, user: str) -> bytes | None:
        """Count ``session`` (authenticated as ``user``) against the connection limits
        until :meth:`forget`; or return the FATAL to end it with, counting nothing."""
        limits = self.config.postgres.limits
        user = user.lower()
        refusal = None
        if len(self._users) >= limits.connections:
            refusal = pgerrors.too_many_connections(
                limits.connections, "postgres.limits.connections"
            )
        elif self._per_user.get(user, 0) >= limits.connections_per_user:
            refusal = pgerrors.too_many_connections(
                limits.connections_per_user, "postgres.limits.connections_per_user", user
            )
        if refusal is not None:
            log.warning("connection refused at its limit", extra={"identity": user})
            return refusal
        if session in self.sessions and session not in self._users:
            self._users[session] = user
            self._per_user[user] = self._per_user.get(user, 0) + 1
        return None

    @property
    def listening(self) -> bool:
        return self._server is not None and self._server.is_serving()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        listen = self.config.postgres.listen
        loop = asyncio.get_running_loop()
        if self._want_pump and self.pump is None:
            self.pump = new_pump(loop.call_soon_threadsafe)
            self.pump.available = self.recorder.available
            self.recorder.on_availability(self._store_availability)
        self._server = await loop.create_server(
            lambda: ClientSession(self), listen.host, listen.port, reuse_address=True, backlog=1024
        )
        log.info("postgres listener up", extra={"listen": f"{listen.host}:{self.port}"})
        self._revocations = loop.create_task(end_revoked_sessions(self), name="token-revocation")

    def _store_availability(self, available: bool) -> None:
        if self.pump is not None:
            self.pump.available = available

    async def cancel(self, process_id: int, secret_key: bytes) -> None:
        """Forward a client's CancelRequest to the upstream backend its key maps to. Keys
        of sessions held by other gateway processes are found in the store."""
        key = (process_id, secret_key)
        for session in self.sessions:
            if session.cancel_key == key and session.holding and session.context is not None:
                # Ctrl-C while held stops the wait, not the request.
                if self.approvals is not None:
                    self.approvals.interrupt_hold(session.context.session_id)
                return
        target = self.cancel_keys.get(key)
        if target is None:
            found = await self._cancel_target_from_store(process_id, secret_key)
            if found is None:
                log.info("cancel request with an unknown key ignored")
                return
            session_id, target = found
            if self.approvals is not None:
                with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    await self.approvals.announce_cancel(session_id)
        await send_cancel(*target)

    def approvals_masking(self, resource: Resource) -> MaskingPolicy | None:
        """The masking policy for previews of ``resource``'s results (None: masking off)."""
        return self.approvals.masking(resource) if self.approvals is not None else None

    async def _cancel_target_from_store(
        self, process_id: int, secret_key: bytes
    ) -> tuple[UUID, CancelTarget] | None:
        try:
            row = await self.pool.fetchrow(
                "SELECT upstream_host, upstream_port, upstream_pid, upstream_secret, id"
                " FROM sessions"
                " WHERE cancel_pid = $1 AND cancel_secret = $2 AND ended_at IS NULL",
                process_id,
                secret_key,
                timeout=5,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return None
        if row is None:
            return None
        return row[4], (row[0], row[1], row[2], bytes(row[3]))

    async def stop(self, drain_timeout: float) -> None:
        """Stop accepting, let sessions finish their statement, then close what is left."""
        if self._revocations is not None:
            self._revocations.cancel()
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            session.drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._no_sessions.wait(), drain_timeout)
        for session in list(self.sessions):
            session.abort()
        if self._server is not None:
            await self._server.wait_closed()
        if self.pump is not None:
            self.pump.close()


def _tls_context(config: Config) -> ssl.SSLContext | None:
    pg = config.postgres
    if pg.tls_cert is None or pg.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pg.tls_cert, pg.tls_key)
    return context
