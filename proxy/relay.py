"""The per-connection relay: one :class:`ClientSession` per client, on asyncio Protocols.

Startup (TLS negotiation, token authentication, resource selection, the upstream
connection) is sequential code in a task. After it, every chunk from either side is framed
in bulk by the sans-IO codec, each statement goes through the hook chain, and the chunk is
forwarded with one write — rewritten only when a hook answered for the target.

A refused statement is never sent. Its place in the stream is taken by a statement that
cannot parse (``jitgate refused statement``), so the target fails that very step exactly
as a real error would — aborting the implicit or explicit transaction and skipping the rest
of a pipeline up to Sync — and the gateway swaps the target's syntax error for its own
ErrorResponse. Response order, transaction status and pipelines stay exactly right.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

from approvals.model import Alert
from approvals.policy import reads_only
from audit.events import SessionRecord, StatementEvent, event_row
from audit.spool import done_frame, intent_frame
from guard import session_limits
from guard.verdict import ALL_PREPARED, RANK, StatementVerdict
from jitgate.errors import AuthenticationError, ProtocolError, StoreUnavailable, UpstreamError
from masking.entities import SECRETS
from masking.stream import ColumnPlan, RowMasker
from proxy import lexing, pgerrors
from proxy import messages as m
from proxy.clientauth import authenticate_client
from proxy.codec import (
    Framer,
    bind_result_formats,
    decode_startup,
    error_sqlstate,
    query_text,
)
from proxy.fastpath import (
    HANDBACK_CLIENT_READ,
    HANDBACK_TARGET_READ,
    HANDBACK_TO_CLIENT,
    HANDBACK_TO_TARGET,
    Engine,
    NativeEngine,
    PyEngine,
    PyStats,
)
from proxy.hold import BoundPortal, Held, Pending, hold
from proxy.hooks import Refusal, SessionContext, Statement, remember_prepared
from proxy.params import ParameterTypes, bound_values
from proxy.upstream import UpstreamProtocol, connect_upstream

if TYPE_CHECKING:
    from proxy.server import ProxyServer

log = logging.getLogger("jitgate.proxy")

QUERY, PARSE, BIND, DESCRIBE, EXECUTE = m.QUERY, m.PARSE, m.BIND, m.DESCRIBE, m.EXECUTE
SYNC, CLOSE, FLUSH, TERMINATE, FUNCTION_CALL = (
    m.SYNC,
    m.CLOSE,
    m.FLUSH,
    m.TERMINATE,
    m.FUNCTION_CALL,
)
COPY_MESSAGES = frozenset((m.COPY_DATA, m.COPY_DONE, m.COPY_FAIL))
# What a client may send between CopyData and CopyDone without ending a COPY FROM STDIN.
IN_COPY = frozenset((m.COPY_DATA, m.SYNC, m.FLUSH))
COPY_DATA_IN, COPY_IN_RESPONSE = m.COPY_DATA, m.COPY_IN_RESPONSE
DATA_ROW, COMMAND_COMPLETE, READY_FOR_QUERY = m.DATA_ROW, m.COMMAND_COMPLETE, m.READY_FOR_QUERY
ERROR_RESPONSE, EMPTY_QUERY = m.ERROR_RESPONSE, m.EMPTY_QUERY_RESPONSE
SIMPLE_COMPLETIONS = frozenset((m.PARSE_COMPLETE, m.BIND_COMPLETE, m.CLOSE_COMPLETE))
DESCRIBE_ENDS = frozenset((m.ROW_DESCRIPTION, m.NO_DATA))
NO_DATA, ROW_DESCRIPTION = m.NO_DATA, m.ROW_DESCRIPTION
PARAMETER_STATUS = m.PARAMETER_STATUS
COPY_OUT_RESPONSE, COPY_DATA, COPY_DONE = m.COPY_OUT_RESPONSE, m.COPY_DATA, m.COPY_DONE
COPY_OUT_MESSAGES = frozenset((COPY_OUT_RESPONSE, COPY_DATA, COPY_DONE))
NOTICE_RESPONSE, NOTIFICATION_RESPONSE = m.NOTICE_RESPONSE, m.NOTIFICATION_RESPONSE
NOTICE_MESSAGES = frozenset((ERROR_RESPONSE, NOTICE_RESPONSE, NOTIFICATION_RESPONSE))
PORTAL_SUSPENDED = m.PORTAL_SUSPENDED

STARTUP_TIMEOUT = 30.0
# What a held session's client may send before the relay stops reading it.
HOLD_BACKLOG = 1 << 20
# How long a session whose client went away reads the target's answers to what it was
# sent (then what is still unanswered is recorded as interrupted).
LINGER_TIMEOUT = 30.0
FIRST_NORMAL_OID = 16384  # PostgreSQL's: object ids below it are the server's own
_PLAN_CACHE_SIZE = 256
_DONES_KEPT = 16
POISON_SQL = "jitgate refused statement"
POISON_QUERY = m.Query(POISON_SQL).encode()
# An Execute cannot be made to fail by its text, so a portal that cannot exist does it.
POISON_EXECUTE = m.Execute(POISON_SQL, 0).encode()

# Startup parameters passed on to the target. Anything else (notably ``options`` and
# arbitrary GUCs such as session_replication_role or search_path) is dropped: a client
# must not change safety settings behind the guardrails' back. What changes how SQL text
# is read is never the client's to choose (:data:`proxy.lexing.PINNED` is sent instead).
FORWARDED_PARAMETERS = frozenset(
    (
        "application_name", "DateStyle", "TimeZone", "IntervalStyle",
        "extra_float_digits", "bytea_output", "statement_timeout",
        "lock_timeout", "idle_in_transaction_session_timeout", "lc_monetary", "lc_numeric",
        "lc_time",
    )
)  # fmt: skip


class _Prepared:
    """An extended-protocol statement as judged at Parse. ``refusal`` is set when the
    Parse was refused: its Binds and Executes are refused with the same answer. ``hold``
    is set when it needs approval: each Execute of it is held, with its bound values."""

    __slots__ = (
        "decision", "declared_types", "hold", "parameter_types", "plans", "reasons", "refusal",
        "relex", "row_description", "sql", "statement_class",
    )  # fmt: skip

    def __init__(
        self, sql: str, event: StatementEvent, refusal: bytes | None = None, hold: bool = False
    ) -> None:
        self.sql = sql
        self.statement_class = event.statement_class
        self.decision = event.decision
        self.reasons = event.reasons
        self.refusal = refusal
        self.hold = hold
        # It may change how the target reads text (proxy.lexing.may_relex).
        self.relex = False
        self.parameter_types: ParameterTypes | None = None
        # The parameter types the Parse named (0: left to the server), as the client sent them.
        self.declared_types: tuple[int, ...] = ()
        # Masking sessions: the statement's described columns, and plans by result formats.
        self.row_description: bytes | None = None
        self.plans: dict[tuple[int, ...], ColumnPlan] = {}


_RANKS: dict[str, int] = {name: rank for name, rank in RANK.items()}


def _severity(prepared: _Prepared) -> tuple[bool, bool, int]:
    """How strictly a statement is judged: refused, then held, then its class."""
    rank = _RANKS.get(prepared.statement_class, _RANKS["opaque"])
    return prepared.refusal is not None, prepared.hold, rank


def _declared_types(buf: bytes, start: int, end: int) -> tuple[int, ...]:
    """The parameter type oids of a Parse (from ``start``, after its text)."""
    count = int.from_bytes(buf[start : start + 2], "big")
    if end - start != 2 + 4 * count:
        raise ProtocolError("malformed Parse message: its parameter types do not fit")
    return tuple(int.from_bytes(buf[at : at + 4], "big") for at in range(start + 2, end, 4))


def _foreign(oids: tuple[int, ...]) -> tuple[int, ...]:
    """The oids that are not the server's own (below FirstNormalObjectId): user types,
    domains, enums."""
    return tuple(oid for oid in oids if oid >= FIRST_NORMAL_OID)


def _text_after_relex(event: StatementEvent) -> Refusal:
    """The refusal of SQL text sent between an Execute that may change how the target
    reads text and the Sync the target reports such a change at."""
    event.statement_class, event.decision, event.outcome = "opaque", "deny", "refused"
    event.reasons = (*event.reasons, "sent before the target answered a statement that may"
                     " change how it reads SQL text")  # fmt: skip
    return Refusal(pgerrors.text_after_relex(), "deny")


def _fail_owner(pending: deque[Pending], sqlstate: str | None) -> None:
    """The target refused a Parse, Bind or Describe at the head of ``pending``: the
    statement it was for is the next Execute before the Sync (the target skips to the
    Sync), which failed with ``sqlstate`` rather than being skipped."""
    for entry in pending:
        if entry.kind == SYNC:
            return
        if entry.kind == EXECUTE and entry.event is not None:
            if entry.event.outcome == "ok":
                entry.event.outcome, entry.event.sqlstate = "error", sqlstate
            return


class ClientSession(asyncio.Protocol):
    def __init__(self, server: ProxyServer) -> None:
        self.server = server
        # Until the client has proved a token, only what authentication needs fits.
        self.framer = Framer(
            startup=True, max_message_size=server.config.postgres.max_startup_message_size
        )
        self.transport: asyncio.Transport | None = None
        self.upstream: UpstreamProtocol | None = None
        self.context: SessionContext | None = None
        self.cancel_key: tuple[int, bytes] | None = None
        # The access token the client proved (proxy.revocation ends the session with it).
        self.token_id: int | None = None
        self._inbox: deque[tuple[int, bytes]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._startup_task: asyncio.Task[None] | None = None
        self._relaying = False
        self._closed = False
        self._draining = False
        self._pending: deque[Pending] = deque()
        self._prepared: dict[bytes, _Prepared] = {}
        # Names SQL PREPARE made (and no DEALLOCATE dropped since): a Parse of one fails.
        self._sql_named: set[bytes] = set()
        self._portals: dict[bytes, _Prepared] = {}
        # Portals bound to a statement that may be held: the values (for the card) and the
        # Bind itself with the statement's parameter types (to run it on a writer).
        self._portal_params: dict[bytes, BoundPortal] = {}
        self._holding = False
        self._backlog = bytearray()
        self._hold_task: asyncio.Task[None] | None = None
        self._capturing = False
        self._masker: RowMasker | None = None
        self._description: bytes | None = None
        # Set when a row was rewritten: only then are the masker's counts worth collecting.
        self._masked_rows = False
        self._plans: dict[bytes | None, ColumnPlan] = {}
        self._portal_formats: dict[bytes, tuple[int, ...]] = {}
        # Masking sessions: the RowDescription a Describe of each portal answered (empty
        # while the answer is on its way), and the plans for rows of portals no one
        # described, by result formats.
        self._portal_descriptions: dict[bytes, bytes] = {}
        self._unknown_plans: dict[tuple[int, ...], ColumnPlan] = {}
        self._rows = 0
        # Replaced at startup by the session's own (proxy/fastpath.py).
        self._engine: Engine = PyEngine(None, {}, None, PyStats(()), {})
        self._blank: dict[bytes, bool] | None = None
        self._end_reason = "client disconnected"
        self._session_open = False
        self._recorder = server.recorder
        self._upstream_framer = Framer()
        self._forwarded: dict[str, str] = {}
        self._settled: asyncio.Event | None = None
        # Messages that end a COPY FROM STDIN the client has sent: any but CopyData, Sync
        # and Flush (Pending.epoch).
        self._copy_ends = 0
        # Done frames of statements filed since the last intent written (audit/spool.py).
        self._dones: list[bytes] = []
        # The epoch of the last COPY FROM STDIN the target began: while it equals
        # _copy_ends, the target waits for the client's CopyData.
        self._copy_in_epoch: int | None = None
        # Set while the client is gone and the target still answers (connection_lost).
        self._linger: asyncio.TimerHandle | None = None
        self._ended = False
        # Statements of a read refused as a protocol violation: never sent, never answered.
        self._unsent: list[Pending] = []
        # The client has sent CopyData since its last CopyDone or CopyFail.
        self._copying_in = False
        # An extended-protocol message failed since the last ReadyForQuery: the target
        # discards what the client sends until a Sync, Queries too.
        self._skipping = False
        # An Execute went to the target since its last ReadyForQuery: what it ran (a BEGIN,
        # say) is not in tx_status until the client's Sync.
        self.unsynced = False
        # An Execute that may change how the target reads text went since the last Sync:
        # until the next Sync, no new SQL text may follow it (proxy.lexing).
        self._relex_sync = False
        # Nothing more is forwarded until the target has answered everything sent: the
        # last of it may change how the target reads what would follow.
        self._barrier = False
        # Such a statement is a COPY FROM STDIN (QUERY or EXECUTE; 0: none): the barrier
        # lets the client's rows through and closes again at their end.
        self._relex_copy = 0
        # In a masking session, the format of the COPY … TO STDOUT being answered.
        self._copy_out: str | None = None
        self._admit_known = server.chain.admit_known
        self._observe = server.metrics.observe

    # -- asyncio callbacks ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server.track(self)
        self._startup_task = asyncio.get_running_loop().create_task(self._startup())

    def data_received(self, data: bytes) -> None:
        if self._relaying and not self._holding:
            # The common read: one whole message (a Query, most often).
            code = self.framer.single(data)
            if code:
                self._relay_client(data, [(code, 5, len(data))])
                return
        try:
            buf, frames = self.framer.feed(data)
        except ProtocolError as exc:
            self._end_reason = "client protocol violation"
            self._fatal(pgerrors.protocol_violation(str(exc), exc.sqlstate), keep_target=True)
            return
        if self._relaying:
            if self._holding:
                self._backlog += buf
                if len(self._backlog) > HOLD_BACKLOG:
                    self.pause_client_reading()
            elif frames:
                self._relay_client(buf, frames)
            return
        self._inbox.extend((t, bytes(buf[s:e])) for t, s, e in frames)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._disarm()
        if self._startup_task is not None and not self._startup_task.done():
            self._startup_task.cancel()
        holding = self._hold_task is not None and not self._hold_task.done()
        if self._hold_task is not None and holding:
            self._hold_task.cancel()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionResetError("client went away"))
        if self._engine.inflight:
            self._adopt()
        if not holding and self._owes_answers():
            # The target runs what it was sent whether or not the client is there: its
            # answers say whether a write ran and how it ended, so the audit waits for
            # them (a read left unread is only interrupted).
            loop = asyncio.get_running_loop()
            self._linger = loop.call_later(LINGER_TIMEOUT, self._end)
            return
        self._end()

    def _owes_answers(self) -> bool:
        """Whether the target will still answer a Query or a Sync it was sent, without the
        client, and some statement it has not answered yet may change something: not
        while it waits for the rest of a COPY FROM STDIN."""
        if not self._relaying or self.upstream is None or self.upstream.closed:
            return False
        if self._copy_in_epoch == self._copy_ends:
            return False
        answered = (SYNC,) if self._skipping else (QUERY, SYNC)
        pending = self._pending
        return any(e.kind in answered for e in pending) and any(
            e.event is not None and e.event.outcome == "ok" and e.event.statement_class != "read"
            for e in pending
        )

    def _end(self) -> None:
        """The client is gone and the target owes nothing more: close and record the end."""
        if self._ended:
            return
        self._ended = True
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self.upstream is not None:
            self.upstream.close()
        self._interrupt_pending()
        if self.cancel_key is not None:
            self.server.cancel_keys.pop(self.cancel_key, None)
        if self._session_open and self.context is not None:
            self.server.recorder.close_session(self.context.session_id, self._end_reason)
            self.server.metrics.sessions_active.dec()
        self.server.forget(self)

    def pause_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.resume_reading()

    def pause_client_reading(self) -> None:
        if self.transport is not None and not self._closed:
            self.transport.pause_reading()

    def resume_client_reading(self) -> None:
        if self.transport is not None and not self._closed:
            self.transport.resume_reading()

    # -- startup ---------------------------------------------------------------------------

    async def _startup(self) -> None:
        try:
            async with asyncio.timeout(STARTUP_TIMEOUT):
                await self._handshake()
        except TimeoutError:
            self._fatal(pgerrors.startup_timeout())
        except ProtocolError as exc:
            self._fatal(pgerrors.protocol_violation(str(exc), exc.sqlstate))
        except ConnectionResetError:
            pass
        except Exception:
            log.exception("unexpected error during startup")
            self._fatal(pgerrors.protocol_violation("internal error during startup", "XX000"))

    async def _recv(self) -> tuple[int, bytes]:
        while not self._inbox:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._inbox.popleft()

    async def _handshake(self) -> None:
        startup = await self._read_startup()
        if startup is None:
            return
        params = dict(startup.params)
        user = params.get("user", "").strip()
        if not user:
            raise ProtocolError("no user name given in the startup packet", "28000")
        if params.get("replication", "false").lower() not in ("false", "off", "no", "0"):
            self._fatal(pgerrors.replication_refused())
            return
        try:
            principal = await authenticate_client(self, user)
            self.token_id = principal.token_id
            self.framer.allow(self.server.config.postgres.max_message_size)
        except AuthenticationError:
            self.server.metrics.auth_failures.inc()
            self._fatal(pgerrors.authentication_failed(user))
            return
        except StoreUnavailable:
            self._fatal(pgerrors.store_unavailable_at_startup())
            return
        if (over_limit := self.server.admit(self, user)) is not None:
            self._fatal(over_limit)
            return
        resource_name = params.get("database") or user
        resource = self.server.config.resources.get(resource_name)
        if resource is None:
            self._fatal(pgerrors.unknown_resource(resource_name))
            return
        groups = self.server.directory.groups_of(user)
        if not groups & resource.access.keys():
            self._fatal(pgerrors.no_access(user, resource_name))
            return
        if not principal.may_use(resource_name):
            self._fatal(pgerrors.outside_delegation(str(principal), resource_name))
            return
        encoding = lexing.refused_encoding(params.get("client_encoding"))
        if encoding is not None:
            self._fatal(pgerrors.encoding_refused(encoding))
            return
        lifting = session_limits.refused_startup(resource.session_limits, params)
        if lifting is not None:
            self._fatal(pgerrors.session_limit_startup_refused(lifting))
            return
        forwarded = {k: v for k, v in params.items() if k in FORWARDED_PARAMETERS}
        forwarded.update(lexing.PINNED)
        forwarded.update(session_limits.startup_values(resource.session_limits))
        self._forwarded = forwarded
        on_reader = resource.write_url is not None and reads_only(resource, groups, principal)
        target = resource.url if on_reader else resource.writer
        try:
            ready = await connect_upstream(target, forwarded)
        except (UpstreamError, AuthenticationError, ProtocolError) as exc:
            log.warning(
                "upstream connection failed", extra={"resource": resource_name, "error": str(exc)}
            )
            self._fatal(pgerrors.upstream_unreachable(resource_name, str(exc)))
            return
        self.upstream = ready.protocol
        self._upstream_framer = ready.protocol.framer
        for name, value in ready.parameters:
            if lexing.drifted(name, value):
                self._fatal(pgerrors.lexing_drifted(name, value))
                return
        policy = self.server.approvals_masking(resource)
        if policy is not None:
            self._masker = RowMasker(policy)
        peer = self.transport.get_extra_info("peername") if self.transport else None
        self.context = SessionContext(
            session_id=uuid.uuid4(),
            identity=user.lower(),
            groups=groups,
            resource=resource,
            client_addr=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else None,
            on_reader=on_reader,
            principal=principal,
        )
        if self._masker is not None:
            self._blank = {}
        self._engine = self.server.new_engine(
            self.context.session_id, self.context.admitted, self._blank
        )
        self.cancel_key = (secrets.randbits(31), secrets.token_bytes(4))
        try:
            await self.server.recorder.open_session(
                SessionRecord(
                    id=self.context.session_id,
                    identity=self.context.identity,
                    agent=principal.actor,
                    resource=resource_name,
                    client_addr=self.context.client_addr,
                    application_name=params.get("application_name"),
                    gateway=self.server.gateway_id,
                    started_at=datetime.now(UTC),
                    cancel_pid=self.cancel_key[0],
                    cancel_secret=self.cancel_key[1],
                    upstream_host=target.host,
                    upstream_port=target.port,
                    upstream_pid=ready.process_id,
                    upstream_secret=ready.secret_key,
                )
            )
        except StoreUnavailable:
            self._fatal(pgerrors.store_unavailable_at_startup())
            return
        if self._closed:
            return
        self._session_open = True
        self.server.metrics.sessions_active.inc()
        self.server.metrics.sessions_total.inc()
        self.server.cancel_keys[self.cancel_key] = (
            target.host,
            target.port,
            ready.process_id,
            ready.secret_key,
        )
        self.tx_status = ready.status
        greeting = [m.AuthenticationOk().encode()]
        greeting += [m.ParameterStatus(k, v).encode() for k, v in ready.parameters]
        greeting.append(m.BackendKeyData(*self.cancel_key).encode())
        greeting.append(m.ReadyForQuery(ready.status).encode())
        self._write(b"".join(greeting))
        leftover = ready.protocol.attach(self)
        self._relaying = True
        if self.server.native:
            self._connect_engine()
        log.info(
            "session started",
            extra={
                "session": str(self.context.session_id),
                "identity": user,
                "agent": principal.actor,
                "resource": resource_name,
            },
        )
        if leftover:
            self.upstream_data(leftover)
        if self._inbox:
            early = b"".join(
                bytes([t]) + (len(p) + 4).to_bytes(4, "big") + p for t, p in self._inbox
            )
            self._inbox.clear()
            buf, frames = Framer().feed(early)
            self._relay_client(buf, frames)
        if self._draining:
            self.drain()
        self._arm()

    async def _read_startup(self) -> m.StartupMessage | None:
        while True:
            _, payload = await self._recv()
            packet = decode_startup(payload)
            if isinstance(packet, m.SSLRequest):
                await self._negotiate_tls()
            elif isinstance(packet, m.GSSENCRequest):
                self._write(b"N")
            elif isinstance(packet, m.CancelRequest):
                await self.server.cancel(packet.process_id, packet.secret_key)
                self._close()
                return None
            else:
                if self.server.config.postgres.tls_required and not self._encrypted():
                    self._fatal(pgerrors.tls_required())
                    return None
                self._negotiate_version(packet)
                return packet

    async def _negotiate_tls(self) -> None:
        context = self.server.tls_context
        if context is None or self.transport is None:
            self._write(b"N")
            return
        if self.framer.buffered or self._inbox:
            # Bytes sent before the handshake could be injected plaintext (CVE-2021-23214).
            raise ProtocolError("received unencrypted data after SSL request")
        self._write(b"S")
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(self.transport, self, context, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            raise ConnectionResetError(f"TLS handshake failed: {exc}") from exc
        self.transport = cast(asyncio.Transport, transport)

    def _encrypted(self) -> bool:
        return self.transport is not None and (
            self.transport.get_extra_info("ssl_object") is not None
        )

    def _negotiate_version(self, startup: m.StartupMessage) -> None:
        minor = startup.protocol & 0xFFFF
        unknown = tuple(k for k, _ in startup.params if k.startswith("_pq_."))
        if minor > 0 or unknown:
            self._write(m.NegotiateProtocolVersion(0, unknown).encode())

    # -- relay: client to target ---------------------------------------------------------

    def _relay_client(self, buf: bytes, frames: list[tuple[int, int, int]]) -> None:
        owed, copy_ends = len(self._pending), self._copy_ends
        try:
            self._from_client(buf, frames)
        except (ProtocolError, ValueError) as exc:
            # A well-framed message whose fields are broken (a missing NUL, a truncated
            # Parse, an unknown type): nothing of this chunk was forwarded, so what it
            # asked for is owed no answer (nor did it end a COPY); the connection must
            # end, once the target has answered what earlier reads sent it.
            while len(self._pending) > owed:
                self._unsent.insert(0, self._pending.pop())
            self._copy_ends = copy_ends
            sqlstate = exc.sqlstate if isinstance(exc, ProtocolError) else "08P01"
            message = str(exc) if isinstance(exc, ProtocolError) else "malformed message"
            self._end_reason = "client protocol violation"
            self._fatal(pgerrors.protocol_violation(message, sqlstate), keep_target=True)

    @property
    def tx_status(self) -> str:
        """The transaction status byte of the last ReadyForQuery (``I``, ``T`` or ``E``)."""
        return chr(self._engine.status)

    @tx_status.setter
    def tx_status(self, status: str) -> None:
        self._engine.status = ord(status)

    # -- the native fast path (proxy/fastpath.py) -------------------------------------------

    def _connect_engine(self) -> None:
        """Hand the session's reads to the native engine: it relays the round trips it
        takes and gives every other read to the Python relay (:meth:`_client_fallback`,
        :meth:`_target_fallback`). uvloop binds a protocol's ``data_received`` when the
        protocol is set, so the engine's methods are set on the instances and the
        protocols set again. With the server's pump, a session the engine keeps taking is
        promoted to it (:meth:`_promote`); TLS sessions stay on the transports."""
        upstream, transport = self.upstream, self.transport
        assert upstream is not None and upstream.transport is not None and transport is not None
        engine = cast(NativeEngine, self._engine)
        pump = self.server.pump
        if pump is not None and (
            transport.get_extra_info("ssl_object") is not None
            or upstream.transport.get_extra_info("ssl_object") is not None
        ):
            pump = None
        engine.connect(
            self.server.recorder,
            transport.write,
            upstream.transport.write,
            self._client_fallback,
            self._target_fallback,
            pump,
            None if pump is None else self._promote,
            None if pump is None else self._handback,
            spool=None if self.server.spool is None else self.server.spool.writer,
            session_id=self.context.session_id.bytes if self.context is not None else None,
        )
        self.data_received = engine.client_data  # type: ignore[method-assign]
        transport.set_protocol(self)
        upstream.data_received = engine.target_data  # type: ignore[method-assign]
        upstream.transport.set_protocol(upstream)

    def _promote(self) -> None:
        """The engine took several round trips in a row: let the pump relay the sockets
        (when nothing is buffered either way and both transports read)."""
        engine = cast(NativeEngine, self._engine)
        upstream, transport = self.upstream, self.transport
        if (
            not engine.armed
            or engine.watched
            or upstream is None
            or upstream.transport is None
            or transport is None
            or transport.get_write_buffer_size()
            or upstream.transport.get_write_buffer_size()
            or not transport.is_reading()
            or not upstream.transport.is_reading()
        ):
            return
        transport.pause_reading()
        upstream.transport.pause_reading()
        try:
            engine.watch(
                transport.get_extra_info("socket").fileno(),
                upstream.transport.get_extra_info("socket").fileno(),
            )
        except OSError as exc:
            log.warning("cannot hand the session to the pump", extra={"error": str(exc)})
            self._resume_reading()

    def _handback(self, kind: int, data: bytes | None) -> None:
        """The pump gave the session back (proxy/_fastpath.c, HANDBACK_*): read the
        transports again and do what it could not."""
        self._resume_reading()
        if kind == HANDBACK_CLIENT_READ:
            assert data is not None
            self._client_fallback(data)
        elif kind == HANDBACK_TARGET_READ:
            assert data is not None
            self._target_fallback(data)
        elif kind == HANDBACK_TO_TARGET:
            assert data is not None and self.upstream is not None
            self.upstream.write(data)
        elif kind == HANDBACK_TO_CLIENT:
            assert data is not None
            self._write(data)
        # HANDBACK_CLOSED: the transports, reading again, see the end themselves.

    def _resume_reading(self) -> None:
        target = None if self.upstream is None else self.upstream.transport
        for transport in (self.transport, target):
            if transport is not None and not transport.is_closing():
                transport.resume_reading()

    def _disarm(self) -> None:
        """Stop the engine taking reads, and take the sockets back from the pump."""
        self._engine.armed = False
        if self._engine.unwatch():
            self._resume_reading()

    def _client_fallback(self, data: bytes) -> None:
        ClientSession.data_received(self, data)
        self._arm()

    def _target_fallback(self, data: bytes) -> None:
        self.upstream_data(data)
        self._arm()

    def _arm(self) -> None:
        """Let the engine take the next round trip when the Python relay holds nothing of
        the session: no statement pending or held, no partial message buffered either
        way, both connections open and the session not draining."""
        upstream = self.upstream
        self._engine.armed = (
            self._relaying
            and not self._holding
            and not self._pending
            and not self._draining
            and not self._closed
            and not self.framer.buffer
            and not self._upstream_framer.buffer
            and upstream is not None
            and not upstream.closed
        )
        if self._dones and self._engine.armed and self.server.native:
            # The engine writes its own statements' intents from here: these would wait
            # for the next one the Python relay forwards.
            self._spool([])

    def _adopt(self) -> None:
        """Take the engine's query in flight into :attr:`_pending`: the Python relay goes
        on from here (the engine only takes a query when nothing else is pending)."""
        engine = self._engine
        extended = engine.extended
        sql, (statement_class, reasons), started, rows, counted, outcome, tag, sqlstate = (
            engine.take()
        )
        assert self.context is not None
        protocol = "simple" if extended is None else "extended"
        event = StatementEvent(
            self.context.session_id, 0, sql, protocol, started, statement_class, "allow", reasons
        )
        event.outcome, event.rows, event.command_tag, event.sqlstate = outcome, rows, tag, sqlstate
        self._rows = counted
        if extended is None:
            self._pending.appendleft(Pending(QUERY, event))
            return
        # An extended round trip: nothing of its answer was relayed (the engine takes it
        # whole or not at all), so every message of it is still owed its response.
        self._sync_unnamed()
        described, _, parsed = extended
        if described and self._masker is not None:
            self._portal_descriptions[b""] = b""  # its RowDescription is in the answer
        plan = None if self._masker is None else self._execute_plan(self._portals[b""], b"")
        owed = [Pending(PARSE), Pending(BIND)] if parsed else [Pending(BIND)]
        if described:
            owed.append(Pending(DESCRIBE))
        owed += [Pending(EXECUTE, event, shape=plan), Pending(SYNC)]
        self._pending.extendleft(reversed(owed))

    def _sync_unnamed(self) -> None:
        """The engine bound the unnamed portal itself (to the unnamed statement it parsed,
        or to a named one the relay let it bind): know them as a Parse and Bind through the
        relay would have, before a client message names them (a Bind or Execute of the
        unnamed statement or portal, a Describe)."""
        unnamed = self._engine.take_unnamed()
        if unnamed is None:
            return
        sql, formats, name = unnamed
        if name:
            # The engine binds only names _parse told it of and forgets them when the relay
            # does, so the name is known here; were it not, it is judged as SQL would be.
            prepared = self._prepared.get(name) or self._judge_name("EXECUTE", name)
        else:
            prepared, _ = self._judge_parse(sql)
            self._prepared[b""] = prepared
        self._portals[b""] = prepared
        self._portal_descriptions.pop(b"", None)
        self._portal_params.pop(b"", None)
        if self._masker is not None:
            self._portal_formats[b""] = formats

    def _from_client(self, buf: bytes, frames: list[tuple[int, int, int]]) -> None:
        upstream, context = self.upstream, self.context
        if upstream is None or upstream.closed or context is None:
            return
        if self._engine.inflight:
            self._adopt()
        self._sync_unnamed()
        pending = self._pending
        pieces: list[bytes] | None = None
        cursor = 0
        # What goes to the target in this read, written to the audit spool before it does.
        forwarded: list[StatementEvent] = []
        for type_code, start, end in frames:
            replacement: bytes | None = None
            if type_code not in IN_COPY:
                # Any other message ends a COPY FROM STDIN: the target fails the COPY at
                # it, if the COPY has not ended (or failed) already.
                self._copy_ends += 1
                self._copying_in = False
            if type_code == QUERY:
                event = self._event(query_text(buf, start, end), "simple")
                if not self._relex_sync and self._admit_known(context, event):
                    pending.append(entry := Pending(QUERY, event))
                    entry.epoch = self._copy_ends
                    forwarded.append(event)
                    continue
                statement = Statement(context, event.sql, "simple", event)
                refusal = self.server.chain.admit(statement)
                self._forget_prepared(statement.verdicts)
                if self._relex_sync:
                    refusal = _text_after_relex(event)
                if refusal is not None and refusal.hold:
                    if not self._spool(forwarded):
                        return
                    held = Held(QUERY, buf[start - 5 : end], event.sql, None, event)
                    self._begin_hold(held, upstream, pieces, buf[cursor : start - 5], buf[end:])
                    return
                entry = Pending(QUERY, event, None if refusal is None else refusal.error)
                entry.epoch = self._copy_ends
                pending.append(entry)
                if refusal is not None:
                    replacement = POISON_QUERY
                else:
                    forwarded.append(event)
                    if statement.relex:
                        self._hold_back(upstream, pieces, buf[cursor:end], buf[end:], forwarded)
                        return
            elif type_code == EXECUTE:
                portal = buf[start : buf.index(0, start, end)]
                prepared = self._portals.get(portal) or self._judge_name("FETCH ALL FROM", portal)
                event = self._event(prepared.sql, "extended")
                event.statement_class = prepared.statement_class
                event.decision = prepared.decision
                event.reasons = prepared.reasons
                if prepared.refusal is not None:
                    event.outcome = "refused"
                    error: bytes | None = prepared.refusal
                else:
                    if prepared.relex:
                        self._relex_sync = True
                    refusal = self.server.chain.admit_execute(context, prepared.sql, event)
                    if refusal is not None and refusal.hold:
                        if not self._spool(forwarded):
                            return
                        bound = self._portal_params.get(portal)
                        held = Held(
                            EXECUTE, buf[start - 5 : end], prepared.sql,
                            () if bound is None else bound.values, event, bound,
                        )  # fmt: skip
                        self._begin_hold(held, upstream, pieces, buf[cursor : start - 5], buf[end:])
                        return
                    error = None if refusal is None else refusal.error
                shape = None if self._masker is None else self._execute_plan(prepared, portal)
                entry = Pending(EXECUTE, event, error, shape=shape)
                entry.epoch = self._copy_ends
                pending.append(entry)
                self.unsynced = True
                if error is not None:
                    replacement = POISON_EXECUTE
                else:
                    forwarded.append(event)
            elif type_code == BIND:
                nul = buf.index(0, start, end)
                name = buf[nul + 1 : buf.index(0, nul + 1, end)]
                prepared = self._prepared.get(name) or self._judge_name("EXECUTE", name)
                self._portals[buf[start:nul]] = prepared
                self._portal_descriptions.pop(buf[start:nul], None)
                if prepared.hold:
                    types = prepared.parameter_types
                    oids = types.type_oids if types and types.type_oids else prepared.declared_types
                    self._portal_params[buf[start:nul]] = BoundPortal(
                        bound_values(buf, start, end, oids), buf[nul + 2 + len(name) : end], oids
                    )
                if self._masker is not None:
                    formats = bind_result_formats(buf, start, end)
                    self._portal_formats[buf[start:nul]] = formats
                    if name and prepared.row_description is not None:
                        self._tell_blank_binds(name, prepared, buf[start:nul], formats)
                # A refused Parse never reached the target, so binding it fails there;
                # the client is told why instead of "prepared statement does not exist".
                pending.append(Pending(BIND, None, prepared.refusal))
            elif type_code == PARSE:
                replacement = self._parse(buf, start, end)
            elif type_code == SYNC and (self._copying_in or self._copy_in_epoch == self._copy_ends):
                # Before CopyDone or CopyFail the target ignores a Sync while it copies in,
                # but answers one that follows CopyData the COPY failed at: unsent, it is
                # owed nothing whenever the COPY fails.
                replacement = b""
            elif type_code == SYNC:
                entry = Pending(SYNC)
                entry.epoch = self._copy_ends
                pending.append(entry)
                if self._relex_sync:
                    self._relex_sync = False
                    self._hold_back(upstream, pieces, buf[cursor:end], buf[end:], forwarded)
                    return
            elif type_code == DESCRIBE:
                if buf[start] == 0x53 and self._prepared:
                    described = self._prepared.get(buf[start + 1 : end - 1])
                    if described is not None and (described.hold or self._masker is not None):
                        pending.append(self._describe_statement(described))
                        continue
                described_portal = buf[start + 1 : end - 1] if buf[start] == 0x50 else None
                if described_portal is not None and self._masker is not None:
                    self._portal_descriptions[described_portal] = b""  # on its way
                pending.append(Pending(DESCRIBE, shape=described_portal))
            elif type_code == CLOSE:
                name = buf[start + 1 : buf.index(0, start + 1, end)]
                if buf[start] == 0x53:
                    self._drop_name(name)
                else:
                    self._portals.pop(name, None)
                    self._portal_descriptions.pop(name, None)
                pending.append(Pending(CLOSE))
            elif type_code == FLUSH:
                pass
            elif type_code == COPY_DATA_IN:
                self._copying_in = True
            elif type_code in COPY_MESSAGES:  # CopyDone, CopyFail: a COPY FROM STDIN ends
                if self._relex_copy == QUERY:
                    self._relex_copy = 0
                    self._hold_back(upstream, pieces, buf[cursor:end], buf[end:], forwarded)
                    return
                if self._relex_copy:  # an Execute's: the target answers at the next Sync
                    self._relex_copy, self._relex_sync = 0, True
            elif type_code == TERMINATE:
                self._end_reason = "client terminated"
            elif type_code == FUNCTION_CALL:
                event = self._event("<FunctionCall message>", "function-call")
                event.outcome, event.decision = "refused", "deny"
                event.reasons = ("the FunctionCall message is refused",)
                pending.append(Pending(QUERY, event, pgerrors.function_call_refused()))
                replacement = POISON_QUERY
            else:
                raise ProtocolError(f"unexpected message type {chr(type_code)!r}")
            if replacement is not None:
                if pieces is None:
                    pieces = []
                pieces.append(buf[cursor : start - 5])
                pieces.append(replacement)
                cursor = end
        if forwarded and not self._spool(forwarded):
            return
        if pieces is None:
            upstream.write(buf)
        else:
            pieces.append(buf[cursor:])
            upstream.write(b"".join(pieces))

    def _hold_back(
        self,
        upstream: UpstreamProtocol,
        pieces: list[bytes] | None,
        through: bytes,
        after: bytes,
        forwarded: list[StatementEvent],
    ) -> None:
        """Forward this read up to the end of ``through`` — a statement that may change how
        the target reads text, or the Sync the target answers such an Execute at — and keep
        ``after`` (and what the client sends next) until the target has answered all of it
        (:meth:`upstream_data` then resumes): a ParameterStatus of a change comes first."""
        if forwarded and not self._spool(forwarded):
            return
        if pieces is None:
            upstream.write(through)
        else:
            pieces.append(through)
            upstream.write(b"".join(pieces))
        self._holding = self._barrier = True
        self._backlog += after

    def _spool(self, events: list[StatementEvent]) -> bool:
        """Write ``events``' intents to the audit spool before they reach the target;
        False (the session ended, the events refused) when the spool cannot take them."""
        spool = self.server.spool
        if spool is None or not (events or self._dones):
            return True
        native_done = self._engine.take_done()
        if native_done is not None:
            self._dones.append(native_done)
        try:
            spool.write([*self._dones, *(intent_frame(e) for e in events)])
            self._dones.clear()
        except OSError as exc:
            for event in events:
                event.outcome, event.sqlstate = "refused", pgerrors.AUDIT_UNAVAILABLE
            self.server.recorder.spool_failed(exc)
            self._end_reason = "audit spool unavailable"
            self._fatal(pgerrors.audit_unavailable(fatal=True))
            return False
        return True

    def _parse(self, buf: bytes, start: int, end: int) -> bytes | None:
        nul = buf.index(0, start, end)
        name = buf[start:nul]
        text_end = buf.index(0, nul + 1, end)
        text = buf[nul + 1 : text_end]
        sql = text.decode("utf-8", "surrogateescape")
        declared = _declared_types(buf, text_end + 1, end)
        prepared, event = self._judge_parse(sql, _foreign(declared))
        if self._relex_sync:
            prepared = _Prepared(sql, event, _text_after_relex(event).error)
        prepared.declared_types = declared
        before = self._prepared.get(name) if name else None
        restore: tuple[bytes, object] | None = (name, before) if name else None
        if before is None and name in self._sql_named:
            # SQL PREPARE holds the name: this Parse will fail and Binds sent before its
            # answer reach that statement. Judged as its EXECUTE unless this one is stricter.
            before = self._judge_name("EXECUTE", name)
            replace = _severity(prepared) > _severity(before)
        else:
            replace = (
                before is None
                or before.refusal is not None
                or _severity(prepared) >= _severity(before)
            )
        # Preparing a name that exists fails at the target, which keeps the statement it
        # has: until the target answers, Binds are judged by the stricter of the two (the
        # earlier Parse may have failed instead: then the milder one would be wrong, never
        # the stricter); a refused Parse then puts back what the name had (_parse_refused).
        self._prepared[name] = prepared if replace or before is None else before
        if name:
            # The engine may bind a name that was free, to a statement that runs as it is;
            # the Binds of a name prepared again are left to this relay (above).
            let = before is None and prepared.refusal is None and not prepared.hold
            self._engine.prepare(name, text if let and not prepared.relex else None)
            # SQL EXECUTE reaches a named protocol statement too: judged by its class.
            assert self.context is not None
            judged = prepared.statement_class
            remember_prepared(
                self.context.sql_prepared,
                name.decode("utf-8", "surrogateescape"),
                judged if judged in RANK else "opaque",
            )
            if prepared.relex:
                self.context.relexing.add(name.decode("utf-8", "surrogateescape"))
        error = prepared.refusal
        if error is None:
            self._pending.append(Pending(PARSE, restore=restore))
            return None
        self._pending.append(Pending(PARSE, event, error))
        return m.Parse(name.decode("utf-8", "surrogateescape"), POISON_SQL, ()).encode()

    def _parse_refused(self, name: bytes, before: object) -> None:
        """The target refused a Parse of ``name`` and keeps what it had under the name: the
        statement an earlier Parse left (``before``), one SQL ``PREPARE`` made, or none.
        Binds of it are judged as before the Parse: by ``before``, else as its ``EXECUTE``
        (by the class the session remembered for the name: fail closed)."""
        self._drop_name(name)
        if isinstance(before, _Prepared):
            self._prepared[name] = before

    def _judge_parse(
        self, sql: str, foreign_types: tuple[int, ...] = ()
    ) -> tuple[_Prepared, StatementEvent]:
        """The statement a Parse of ``sql`` prepares, as the hook chain judges it: refused
        (its ``refusal``), held at each Execute (``hold``: preparing runs nothing, so the
        Parse goes on), or let through. ``foreign_types``: the parameter types it declares
        that the database defines itself."""
        assert self.context is not None
        event = self._event(sql, "extended")
        if not foreign_types and self._admit_known(self.context, event):
            return _Prepared(sql, event), event
        statement = Statement(self.context, sql, "parse", event, foreign_types=foreign_types)
        refusal = self.server.chain.admit(statement)
        self._forget_prepared(statement.verdicts)
        if refusal is not None and refusal.hold:
            judged = _Prepared(sql, event, hold=True)
        else:
            judged = _Prepared(sql, event, None if refusal is None else refusal.error)
        judged.relex = statement.relex
        return judged, event

    def _judge_name(self, verb: str, name: bytes) -> _Prepared:
        """A statement or portal SQL made rather than a Parse or Bind of this session, judged
        and audited as the SQL that reaches it: a Bind of a name SQL ``PREPARE`` made as
        ``EXECUTE "name"`` (by the class the session remembered; an unknown name is opaque:
        fail closed), an Execute of a cursor SQL ``DECLARE`` opened as ``FETCH ALL FROM
        "name"``. Not kept: SQL may prepare or declare the name again before it is used."""
        quoted = '"' + name.decode("utf-8", "surrogateescape").replace('"', '""') + '"'
        prepared, _ = self._judge_parse(f"{verb} {quoted}")
        return prepared

    def _forget_prepared(self, verdicts: Sequence[StatementVerdict]) -> None:
        """Drop the statements a ``DEALLOCATE`` or ``DISCARD ALL`` among ``verdicts`` drops
        at the target: the next Bind of such a name is judged by what it names then, never
        by what a Parse once prepared under it. Done when the statement is judged, whether
        it then runs or not (forgetting early only makes a Bind be judged afresh). A SQL
        ``PREPARE`` of a name a Parse prepared drops it too: it fails at the target when
        that Parse succeeded, but takes the name when the Parse failed there; either way
        the Binds of the name are then judged as its ``EXECUTE``, by the stricter class
        the session remembered for it (fail closed)."""
        for verdict in verdicts:
            if verdict.prepared_name is not None:
                taken = verdict.prepared_name.encode("utf-8", "surrogateescape")
                self._drop_name(taken)
                self._sql_named.add(taken)
            if verdict.deallocated == ALL_PREPARED:
                # The unnamed statement is not a SQL-level one: DEALLOCATE ALL keeps it.
                unnamed = self._prepared.get(b"")
                self._prepared.clear()
                if unnamed is not None:
                    self._prepared[b""] = unnamed
                self._sql_named.clear()
                self._engine.forget_prepared()
            elif verdict.deallocated is not None:
                name = verdict.deallocated.encode("utf-8", "surrogateescape")
                self._drop_name(name)
                self._sql_named.discard(name)

    def _tell_blank_binds(
        self, name: bytes, prepared: _Prepared, portal: bytes, formats: tuple[int, ...]
    ) -> None:
        """Tell the engine that Binds of ``name`` with result ``formats`` give rows that need
        no masking, when the statement's described columns say so: it may then relay them
        without a RowDescription to read (asyncpg, JDBC) and in binary."""
        assert self._masker is not None
        plan = self._execute_plan(prepared, portal)
        if plan is not None and self._masker.blank(plan):
            codes = b"".join(code.to_bytes(2, "big", signed=True) for code in formats)
            self._engine.blank_binds(name, codes, len(plan.columns))

    def _drop_name(self, name: bytes) -> None:
        """Forget the statement a Parse prepared under ``name``, in the engine too."""
        self._prepared.pop(name, None)
        if name:
            self._engine.prepare(name, None)

    def _describe_statement(self, described: _Prepared) -> Pending:
        """A Describe of a prepared statement whose answer the gateway needs: the parameter
        types when it is held (the card shows bound values by type), the columns when
        results are masked (binary rows are read by the described types)."""
        types = None
        if described.hold:
            types = described.parameter_types = ParameterTypes()
            self._capturing = True
        return Pending(
            DESCRIBE, capture=types, shape=described if self._masker is not None else None
        )

    def _execute_plan(self, prepared: _Prepared, portal: bytes) -> ColumnPlan | None:
        """How to mask the rows of an Execute: the statement's described columns in the
        formats the portal was bound with; None leaves it to the RowDescription of a
        Describe of the portal, in the stream before the rows. A portal no one described
        gets a plan that knows no column (every value scanned as text): never the columns
        of another statement."""
        description = prepared.row_description
        formats = self._portal_formats.get(portal, ())
        if description is None:
            described = self._portal_descriptions.get(portal)
            if described == b"":
                return None  # its Describe is answered in the stream, before these rows
            if described is not None:
                plan = self._plans.get(described)
                if plan is None:
                    if len(self._plans) >= _PLAN_CACHE_SIZE:
                        self._plans.clear()
                    plan = self._plans[described] = ColumnPlan.from_row_description(described)
                return plan
            unknown = self._unknown_plans.get(formats)
            if unknown is None:
                if len(self._unknown_plans) >= _PLAN_CACHE_SIZE:
                    self._unknown_plans.clear()
                unknown = self._unknown_plans[formats] = ColumnPlan.unknown(formats)
            return unknown
        plan = prepared.plans.get(formats)
        if plan is None:
            plan = prepared.plans[formats] = ColumnPlan.from_row_description(description, formats)
        return plan

    # -- holding a statement for approval (proxy/hold.py runs the hold itself) -----------

    def _begin_hold(
        self,
        held: Held,
        upstream: UpstreamProtocol,
        pieces: list[bytes] | None,
        before: bytes,
        after: bytes,
    ) -> None:
        """Forward what came before ``held``, keep what came after it, stop reading the
        client, and hold ``held`` in a task that ends by calling :meth:`resume`."""
        if pieces is None:
            if before:
                upstream.write(before)
        else:
            pieces.append(before)
            upstream.write(b"".join(pieces))
        self._holding = True
        self._backlog += after
        # Reading goes on (into the backlog), so a client that goes away is noticed and
        # its hold ends; only a client that sends more than HOLD_BACKLOG is paused.
        if len(self._backlog) > HOLD_BACKLOG:
            self.pause_client_reading()
        self._hold_task = asyncio.get_running_loop().create_task(hold(self, held))

    @property
    def skips_to_sync(self) -> bool:
        """Whether a message of the client's extended protocol failed, so that the target
        discards everything it is sent up to a Sync the client has not sent yet."""
        return self._skipping and all(entry.kind != SYNC for entry in self._pending)

    async def settle(self) -> None:
        """Wait until the target has answered everything sent before the held statement
        (forward a Flush first: it answers Parse, Bind and Describe only at a Flush or a
        Sync), or discards all of it up to the client's Sync (:attr:`skips_to_sync`)."""
        while self._pending and not self._closed and not self.skips_to_sync:
            self._settled = asyncio.Event()
            try:
                await self._settled.wait()
            finally:
                self._settled = None

    async def switch_to_writer(self) -> Callable[[], None]:
        """From now on, send what the hold forwards on a connection of its own with the
        resource's writer credential; the session's reader connection waits, idle. Returns
        the call that closes the writer's connection and gives the session its reader
        back. Call :meth:`settle` first: the reader owes nothing while the writer answers.
        Raises :class:`UpstreamError` (or AuthenticationError) when the writer is out of
        reach."""
        assert self.context is not None and self.upstream is not None and not self._pending
        writer_url = self.context.resource.writer
        ready = await connect_upstream(writer_url, self._forwarded)
        for name, value in ready.parameters:
            if lexing.drifted(name, value):
                ready.protocol.close()
                raise UpstreamError(f"the writer connection reads text with {name}={value}")
        reader, writer = self.upstream, ready.protocol
        keys = self.server.cancel_keys
        reader_key = keys.get(self.cancel_key) if self.cancel_key is not None else None
        if self.cancel_key is not None:
            keys[self.cancel_key] = (
                writer_url.host, writer_url.port, ready.process_id, ready.secret_key,
            )  # fmt: skip
        leftover = writer.attach(self)
        self.upstream, self._upstream_framer = writer, writer.framer
        if leftover:
            self.upstream_data(leftover)

        def restore() -> None:
            writer.session = None
            writer.close()
            self.upstream, self._upstream_framer = reader, reader.framer
            if self.cancel_key is not None and reader_key is not None:
                keys[self.cancel_key] = reader_key

        return restore

    def forward_held(self, data: bytes, entries: list[Pending]) -> None:
        """Send gateway-built messages for the held statement, owed ``entries``."""
        upstream = self.upstream
        if upstream is None or upstream.closed:
            raise ConnectionResetError("the target connection is gone")
        if not self._spool([e.event for e in entries if e.event is not None]):
            raise ConnectionResetError("the audit spool cannot take the statement")
        self._pending.extend(entries)
        if any(e.capture is not None for e in entries):
            self._capturing = True
        upstream.write(data)

    def skip_held(self, held: Held) -> None:
        """Leave ``held`` unanswered, as the target leaves what it discards up to the
        client's Sync (:attr:`skips_to_sync`): never sent, filed as skipped at that Sync."""
        self._pending.append(Pending(held.kind, held.event))

    def skip_to_sync(self) -> None:
        """Make the target discard what the client sends up to its next Sync, as after an
        error the client was already sent: an Execute that fails, its error unseen."""
        upstream = self.upstream
        if upstream is None or upstream.closed:
            return
        self._pending.append(Pending(EXECUTE, substitute=b""))
        upstream.write(POISON_EXECUTE)

    def refuse_held(self, held: Held, error: bytes, decision: str | None = None) -> None:
        """Answer ``held`` with ``error`` in its place in the stream, as any refusal."""
        held.event.outcome = "refused"
        if decision is not None:
            held.event.decision = decision
        poison = POISON_QUERY if held.kind == QUERY else POISON_EXECUTE
        upstream = self.upstream
        if upstream is None or upstream.closed:
            return
        self._pending.append(Pending(held.kind, held.event, error))
        upstream.write(poison)

    def write_client(self, data: bytes) -> None:
        self._write(data)

    def resume(self) -> None:
        """The hold is over: relay what the client sent meanwhile and read it again."""
        self._holding = False
        self._hold_task = None
        if self._closed:
            return
        data = bytes(self._backlog)
        self._backlog.clear()
        self.resume_client_reading()
        if data:
            buf, frames = Framer().feed(data)
            self._relay_client(buf, frames)
        if self._draining and not self._pending and not self._holding:
            self.drain()
        self._arm()

    @property
    def holding(self) -> bool:
        return self._holding

    def oldest_open(self) -> float | None:
        """When the oldest statement this session forwarded and has not filed began."""
        oldest = self._engine.started
        for entry in self._pending:
            event = entry.event
            if event is not None and (oldest is None or event.started_at < oldest):
                oldest = event.started_at
        return oldest

    def _event(self, sql: str, protocol: str) -> StatementEvent:
        assert self.context is not None
        return StatementEvent(self.context.session_id, 0, sql, protocol, time.time())

    # -- relay: target to client ---------------------------------------------------------

    def upstream_data(self, data: bytes) -> None:
        assert self.upstream is not None
        engine = self._engine
        if engine.inflight:
            # The engine declined this read of its query's answer (it took the query with
            # nothing buffered from the target and takes only reads of whole messages).
            self._adopt()
        if self._masker is not None:
            relayed = engine.take_description()
            if relayed is not None:
                self._description = relayed
        try:
            buf, frames = self.upstream.framer.feed(data)
        except ProtocolError as exc:
            log.error("upstream protocol error", extra={"error": str(exc)})
            self._end_reason = "upstream protocol error"
            self._fatal(pgerrors.upstream_lost(self._resource_name()))
            return
        if not frames:
            return
        pending = self._pending
        done: list[Pending] = []
        finish = done.append
        pieces: list[bytes] | None = None
        cursor = 0
        capturing = self._capturing
        masker = self._masker
        if masker is not None:
            # The prefilter's offsets, found at the first row that may need them.
            hits: list[int] | None = None
            hit = next_hit = columns = 0
            plan: ColumnPlan | None = None
            every = blank = False
        for type_code, start, end in frames:
            if capturing and pending:
                capture = pending[0].capture
                if capture is not None and capture.see(type_code, buf, start, end):
                    if pieces is None:
                        pieces = []
                    pieces.append(buf[cursor : start - 5])
                    cursor = end
            if type_code == DATA_ROW:
                self._rows += 1
                if masker is None:
                    continue
                if plan is None:
                    plan = self._rows_plan()
                    every = masker.every_row(plan)
                    blank = masker.blank(plan)
                    columns = len(plan.columns)
                if blank and end - start >= 2 and (buf[start] << 8 | buf[start + 1]) == columns:
                    continue
                if hits is None:
                    hits = masker.candidates(buf)
                    hit, next_hit = 0, hits[0] if hits else len(buf)
                while next_hit < start:
                    hit += 1
                    next_hit = hits[hit] if hit < len(hits) else len(buf)
                if every or next_hit < end:
                    try:
                        masked = masker.mask_row(
                            memoryview(buf)[start:end],
                            plan,
                            next_hit - start if next_hit < end else None,
                        )
                    except ProtocolError as exc:
                        log.error("malformed row from upstream", extra={"error": str(exc)})
                        self._end_reason = "upstream protocol error"
                        self._fatal(pgerrors.upstream_lost(self._resource_name()))
                        return
                    if masked is not None:
                        self._masked_rows = True
                        if pieces is None:
                            pieces = []
                        pieces.append(buf[cursor : start - 5])
                        pieces.append(b"D" + (len(masked) + 4).to_bytes(4, "big") + masked)
                        cursor = end
                continue
            if masker is not None:
                plan = None
                if type_code == ROW_DESCRIPTION:
                    self._note_description(buf, start, end)
                elif type_code in NOTICE_MESSAGES and not (
                    pending and pending[0].substitute is not None and type_code == ERROR_RESPONSE
                ):
                    view = memoryview(buf)[start:end]
                    masked = (
                        masker.mask_notification(view)
                        if type_code == NOTIFICATION_RESPONSE
                        else masker.mask_notice(view)
                    )
                    if masked is not None:
                        if pieces is None:
                            pieces = []
                        pieces.append(buf[cursor : start - 5])
                        pieces.append(bytes([type_code]) + (len(masked) + 4).to_bytes(4, "big"))
                        pieces.append(masked)
                        cursor = end
                        self._masked_rows = True
                    if type_code != ERROR_RESPONSE:
                        continue
                if type_code in COPY_OUT_MESSAGES or self._copy_out is not None:
                    replaced = self._copy_out_message(type_code, buf, start, end, masker)
                    if replaced is not None:
                        if pieces is None:
                            pieces = []
                        pieces.append(buf[cursor : start - 5])
                        pieces.append(replaced)
                        cursor = end
                        if type_code != COMMAND_COMPLETE:
                            continue
            if type_code == COMMAND_COMPLETE:
                if pending:
                    head = pending[0]
                    event = head.event
                    if event is not None:
                        tag = buf[start : end - 1]
                        event.command_tag = tag
                        _, _, count = tag.rpartition(b" ")
                        event.rows += int(count) if count.isdigit() else self._rows
                        if self._masked_rows:
                            self._count_masked(event, masker)
                    self._rows = 0
                    if head.kind == EXECUTE:
                        finish(pending.popleft())
            elif type_code == READY_FOR_QUERY:
                self.tx_status = chr(buf[start])
                self.unsynced = False
                skipped, self._skipping = self._skipping, False
                while pending:
                    head = pending.popleft()
                    kind = head.kind
                    if kind == SYNC or (kind == QUERY and not skipped):
                        if head.hide:  # a Sync the gateway sent: the client sent none
                            if pieces is None:
                                pieces = []
                            pieces.append(buf[cursor : start - 5])
                            cursor = end
                        finish(head)
                        break
                    if head.event is not None and head.event.outcome == "ok":
                        head.event.outcome = "skipped"
                    finish(head)
            elif type_code == ERROR_RESPONSE:
                if pending:
                    head = pending[0]
                    if head.substitute is not None:
                        if pieces is None:
                            pieces = []
                        pieces.append(buf[cursor : start - 5])
                        pieces.append(head.substitute)
                        cursor = end
                        head.substitute = None
                    elif head.event is not None:
                        head.event.outcome = "error"
                        head.event.sqlstate = error_sqlstate(buf, start, end)
                    elif head.kind != SYNC:
                        _fail_owner(pending, error_sqlstate(buf, start, end))
                        if head.restore is not None:
                            self._parse_refused(*head.restore)
                    if head.kind != QUERY and head.kind != SYNC:
                        self._skipping = True
                        finish(pending.popleft())
            elif type_code in SIMPLE_COMPLETIONS:
                if pending and pending.popleft().hide:
                    if pieces is None:
                        pieces = []
                    pieces.append(buf[cursor : start - 5])
                    cursor = end
            elif type_code in DESCRIBE_ENDS:
                if (
                    pending
                    and pending[0].kind == DESCRIBE
                    and (pending.popleft().hide and type_code == NO_DATA)
                ):
                    if pieces is None:
                        pieces = []
                    pieces.append(buf[cursor : start - 5])
                    cursor = end
            elif type_code == COPY_IN_RESPONSE and pending:
                # The target now copies in: Syncs the client sent after the statement and
                # before its CopyDone or CopyFail are ignored there, and owed nothing.
                epoch = self._copy_in_epoch = pending[0].epoch
                kept = [e for e in pending if e.kind != SYNC or e.epoch != epoch]
                if len(kept) != len(pending):
                    pending.clear()
                    pending.extend(kept)
                if self._barrier:
                    self._relex_copy = pending[0].kind
            elif type_code == PARAMETER_STATUS:
                name, _, value = buf[start : end - 1].partition(b"\0")
                setting = name.decode("utf-8", "replace")
                if lexing.drifted(setting, value.decode("utf-8", "replace")):
                    self._end_reason = f"the target changed {setting}"
                    self._fatal(pgerrors.lexing_drifted(setting, value.decode("utf-8", "replace")))
                    return
            elif (type_code == EMPTY_QUERY or type_code == PORTAL_SUSPENDED) and (
                pending and pending[0].kind == EXECUTE
            ):
                head = pending.popleft()
                if head.event is not None:
                    head.event.rows += self._rows
                self._rows = 0
                finish(head)
        if pieces is None:
            self._write(buf)
        else:
            pieces.append(buf[cursor:])
            self._write(b"".join(pieces))
        # Bookkeeping after the write: the client has its result while events are filed.
        for entry in done:
            self._finish(entry)
        if self._barrier and (not pending or self._relex_copy):
            self._barrier = False  # answered (or copying in), and no ParameterStatus ended it
            self.resume()
        if self._draining and not pending and not self._holding:
            self.drain()
        if self._settled is not None and (not pending or self.skips_to_sync):
            self._settled.set()
        if self._linger is not None and not self._owes_answers():
            self._end()

    def _copy_out_message(
        self, type_code: int, buf: bytes, start: int, end: int, masker: RowMasker
    ) -> bytes | None:
        """What replaces one message of a COPY … TO STDOUT answer in a masking session, or
        None to pass it as it is: text and CSV lines are masked (:meth:`RowMasker.mask_line`);
        a binary COPY, which the gateway cannot read, is dropped whole and its
        CommandComplete becomes an ERROR (the statement had no effect but reading)."""
        if type_code == COPY_OUT_RESPONSE:
            self._copy_out = "text" if buf[start] == 0 else "binary"
            return b"" if self._copy_out == "binary" else None
        binary = self._copy_out == "binary"
        if type_code == COPY_DATA:
            if binary:
                return b""
            masked = masker.mask_line(memoryview(buf)[start:end])
            if masked is None:
                return None
            self._masked_rows = True
            return b"d" + (len(masked) + 4).to_bytes(4, "big") + masked
        if type_code == COPY_DONE:
            return b"" if binary else None
        if type_code != COMMAND_COMPLETE and type_code != ERROR_RESPONSE:
            return None  # a NOTICE or ParameterStatus inside the COPY's answer
        self._copy_out = None
        if binary and type_code == COMMAND_COMPLETE:
            if self._pending and self._pending[0].event is not None:
                event = self._pending[0].event
                event.outcome, event.sqlstate = "refused", "0A000"
            return pgerrors.binary_copy_refused()
        return None

    def _rows_plan(self) -> ColumnPlan:
        """The plan for the DataRows arriving now: the Execute's own, else the last
        RowDescription's, else one that knows nothing about the columns. Plans are kept by
        description: a session repeating a query reuses one plan (and the masker's rules
        for it) instead of parsing its columns again."""
        if self._pending:
            head = self._pending[0]
            if head.kind == EXECUTE and isinstance(head.shape, ColumnPlan):
                return head.shape
        plan = self._plans.get(self._description)
        if plan is None:
            if len(self._plans) >= _PLAN_CACHE_SIZE:
                self._plans.clear()
            if self._description is None:
                plan = self._plans[None] = ColumnPlan.unknown()
            else:
                plan = self._plans[self._description] = ColumnPlan.from_row_description(
                    self._description
                )
                if self._blank is not None and self._masker is not None:
                    # What the engine's fast path may relay without reading the rows.
                    if len(self._blank) >= _PLAN_CACHE_SIZE:
                        self._blank.clear()
                    self._blank[self._description] = self._masker.blank(plan)
        return plan

    def _note_description(self, buf: bytes, start: int, end: int) -> None:
        head = self._pending[0] if self._pending else None
        if head is not None and head.kind == DESCRIBE and isinstance(head.shape, _Prepared):
            head.shape.row_description = buf[start:end]
            head.shape.plans.clear()
        else:
            self._description = buf[start:end]
            if head is not None and head.kind == DESCRIBE and isinstance(head.shape, bytes):
                self._portal_descriptions[head.shape] = self._description

    def _count_masked(self, event: StatementEvent, masker: RowMasker | None) -> None:
        self._masked_rows = False
        if masker is None:
            return
        counts = masker.take_counts()
        if not counts:
            return
        learned = masker.take_masked_columns()
        if learned and self.server.masked_columns is not None and self.context is not None:
            self.server.masked_columns.learn(self.context.resource.name, learned)
        if event.masked is None:
            event.masked = counts
        else:
            for entity, count in counts.items():
                event.masked[entity] = event.masked.get(entity, 0) + count
        secrets = sorted(SECRETS.intersection(counts))
        approvals = self.server.approvals
        if secrets and approvals is not None and self.context is not None:
            approvals.emit(
                Alert(
                    "secrets_masked",
                    f"{', '.join(secrets)} masked in a result for"
                    f" {self.context.principal or self.context.identity}",
                    self.context.identity,
                    self.context.resource.name,
                    event.request_id,
                    self.context.session_id,
                )
            )

    def _finish(self, entry: Pending) -> None:
        event = entry.event
        if event is None:
            return
        event.seq = self._engine.next_seq()
        event.ended_at = time.time()
        self._engine.add(event_row(event))
        if self.server.spool is not None:
            # How it ended goes to the spool with the next intent (the last few suffice:
            # older ones are in the store by then).
            if len(self._dones) >= _DONES_KEPT:
                del self._dones[0]
            self._dones.append(done_frame(event))
        self._observe(event)

    def upstream_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._linger is not None:
            self._end()
            return
        if self._closed or (self.transport is not None and self.transport.is_closing()):
            return
        if self._end_reason == "client terminated":
            self._close()
            return
        self._end_reason = "upstream connection lost"
        self._fatal(pgerrors.upstream_lost(self._resource_name()))

    # -- ending ------------------------------------------------------------------------------

    def drain(self) -> None:
        """Close at the next idle moment (now, if no statement is in flight)."""
        self._draining = True
        self._disarm()
        if not self._relaying:
            return
        if not self._pending and not self._holding and not self._engine.inflight:
            self._end_reason = "gateway shutdown"
            self._fatal(pgerrors.shutting_down())

    def _interrupt_pending(self) -> None:
        # Rows already relayed for the statement in flight count: a client that streams
        # most of a result and then vanishes is recorded with what it received.
        if self._engine.inflight:
            self._adopt()
        rows, self._rows = self._rows, 0
        self._pending.extend(self._unsent)
        self._unsent.clear()
        while self._pending:
            entry = self._pending.popleft()
            if entry.event is not None and entry.event.outcome == "ok":
                entry.event.outcome = "interrupted"
                entry.event.rows += rows
                rows = 0
            self._finish(entry)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self._closed:
            self.transport.write(data)

    def end_revoked(self) -> None:
        """The session's access token was revoked or has expired: end it now."""
        self._end_reason = "access token revoked"
        self._fatal(pgerrors.token_revoked())

    def end_groups_lost(self, lost: frozenset[str]) -> None:
        """Someone left groups the session's access came from: end it now."""
        assert self.context is not None
        self._end_reason = "group membership lost"
        who = self.context.principal or self.context.identity
        self._fatal(pgerrors.groups_lost(str(who), sorted(lost)))

    def abort(self) -> None:
        """End the session now (the drain period is over)."""
        self._end_reason = "gateway shutdown"
        self._fatal(pgerrors.shutting_down())

    def _fatal(self, error: bytes, *, keep_target: bool = False) -> None:
        """Send ``error`` and close; ``keep_target``: the target connection stays open while
        it answers what it was sent (the client broke the protocol, not the target)."""
        self._disarm()
        self._write(error)
        self._close(keep_target=keep_target)

    def _close(self, *, keep_target: bool = False) -> None:
        self._disarm()
        if self._settled is not None:
            self._settled.set()
        if self.upstream is not None and not keep_target:
            self.upstream.close()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _resource_name(self) -> str:
        return self.context.resource.name if self.context is not None else "?"
