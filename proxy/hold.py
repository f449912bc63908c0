"""Holding a statement for approval on the client's own connection, then running it once.

When policy says ``review``, the relay stops reading the client at that statement and hands
it to :func:`hold`: an access request is opened, the client gets a NOTICE saying where it
was posted, and the session waits for a decision (woken in-process or by LISTEN/NOTIFY from
another gateway). Approved: the waiting session claims the request and sends the statement
to its own upstream; the result streams to the client as usual and is captured for the
request's outcome. Anything else: the statement is refused like any refusal (the session
goes on), and the request stays pending only when it can still run without this client.

The blast-radius cap: a single DML statement runs in extended-protocol form (Parse, Bind,
Describe, Execute, Flush — the client sees exactly what a simple Query answers) so the
gateway sees the row count before the implicit transaction ends. Over the cap, a statement
that cannot succeed follows it before Sync, so the target rolls it all back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import pgparse  # type: ignore[import-not-found]

from approvals.execute import build_preview, dml_kind, tag_rows
from approvals.model import Outcome, State
from approvals.store import RequestRow
from audit.events import StatementEvent
from jitgate.errors import (
    AuthenticationError,
    DecisionRefused,
    ProtocolError,
    StoreUnavailable,
    UpstreamError,
)
from proxy import messages as m
from proxy import pgerrors
from proxy.codec import decode_backend, decode_frontend
from proxy.params import ParameterTypes

if TYPE_CHECKING:
    from proxy.relay import ClientSession

log = logging.getLogger("jitgate.proxy")

PREVIEW_ROWS = 20
# The request outlives the client's hold by this much before another gateway may run it:
# the waiting session must have time to notice the decision and claim it itself.
HOLD_MARGIN = 30.0
# A hold_until this far ahead marks a request only its own session may run (approvals.sweep).
BOUND_TO_SESSION = 10 * 365 * 86400.0
_DML_VERBS = frozenset(("INSERT", "UPDATE", "DELETE", "MERGE"))


class Pending:
    """A client message still owed a response by the target, in stream order. ``hide``
    drops the response (messages the gateway added); ``capture`` sees the responses of a
    statement run for an access request. ``shape`` is, for an Execute, the column plan its
    rows are masked by and, for a Describe of a prepared statement, where the relay keeps
    the statement's RowDescription. ``restore`` is, for a Parse of a named statement, the
    name and what the relay knew under it before, put back if the target refuses the
    Parse (the target keeps what it had)."""

    __slots__ = ("capture", "epoch", "event", "hide", "kind", "restore", "shape", "substitute")

    def __init__(
        self,
        kind: int,
        event: StatementEvent | None = None,
        substitute: bytes | None = None,
        *,
        hide: bool = False,
        capture: Capture | ParameterTypes | None = None,
        shape: object = None,
        restore: tuple[bytes, object] | None = None,
    ) -> None:
        self.kind = kind
        self.event = event
        self.substitute = substitute
        self.hide = hide
        self.capture = capture
        self.shape = shape
        self.restore = restore
        # For a Query, an Execute and a Sync: how many messages that end a COPY FROM STDIN
        # (any but CopyData, Sync and Flush) the client had sent before it (the relay's
        # ``_copy_ends``; a Sync sent during COPY FROM STDIN is ignored there).
        self.epoch = 0


class Capture:
    """Collects the outcome of an approved statement from the response stream."""

    def __init__(self, event: StatementEvent, cap: int | None, wait_for_ready: bool) -> None:
        loop = asyncio.get_running_loop()
        self.event = event
        self.cap = cap
        self.columns: tuple[str, ...] = ()
        self.rows: list[tuple[str | None, ...]] = []
        self.count = 0
        self.tag: str | None = None
        self.sqlstate: str | None = None
        self.error: str | None = None
        self.over: int | None = None
        self.started = time.perf_counter()
        self.complete: asyncio.Future[None] = loop.create_future()
        self.settled: asyncio.Future[None] = loop.create_future()
        self._wait_for_ready = wait_for_ready

    def see(self, type_code: int, buf: bytes, start: int, end: int) -> bool:
        """Note one response; True when the relay must not pass it on (the CommandComplete
        of a statement that is about to be rolled back for touching too many rows)."""
        if type_code == m.DATA_ROW:
            self.count += 1
            if len(self.rows) <= PREVIEW_ROWS:
                row = decode_backend(type_code, buf[start:end])
                assert isinstance(row, m.DataRow)
                self.rows.append(
                    tuple(None if v is None else v.decode("utf-8", "replace") for v in row.values)
                )
        elif type_code == m.ROW_DESCRIPTION:
            description = decode_backend(type_code, buf[start:end])
            assert isinstance(description, m.RowDescription)
            self.columns = tuple(f.name for f in description.fields)
        elif type_code == m.COMMAND_COMPLETE:
            self.tag = buf[start : end - 1].decode("utf-8", "replace")
            touched = tag_rows(self.tag) or 0
            verb = self.tag.split(" ", 1)[0]
            if self.cap is not None and verb in _DML_VERBS and touched > self.cap:
                self.over = touched
                self.event.outcome, self.event.sqlstate = "error", "54000"
                self._done(self.complete)
                return True
            if not self._wait_for_ready:
                self._done(self.complete)
        elif type_code == m.ERROR_RESPONSE:
            error = decode_backend(type_code, buf[start:end])
            assert isinstance(error, m.ErrorResponse)
            if self.error is None:
                self.error, self.sqlstate = error.message, error.code
            self.event.outcome, self.event.sqlstate = "error", error.code
            if not self._wait_for_ready:
                self._done(self.complete)
        elif type_code == m.EMPTY_QUERY_RESPONSE or type_code == m.PORTAL_SUSPENDED:
            if not self._wait_for_ready:
                self._done(self.complete)
        elif type_code == m.READY_FOR_QUERY:
            self._done(self.complete)
            self._done(self.settled)
        return False

    def abandon(self) -> None:
        """The connection ended before the statement did."""
        if self.error is None:
            self.error, self.sqlstate = "the connection ended during execution", "08006"
        self._done(self.complete)
        self._done(self.settled)

    def outcome(self, session: ClientSession, request_id: int) -> Outcome:
        duration = (time.perf_counter() - self.started) * 1000
        context = session.context
        assert context is not None
        policy = session.server.approvals_masking(context.resource)
        preview, masked = build_preview(self.columns, self.rows, policy)
        if self.over is not None:
            cap = self.cap or 0
            return Outcome(
                self.tag, self.over, duration, "54000",
                f"touched {self.over} rows, more than the {cap} approved; rolled back",
                session_id=context.session_id,
            )  # fmt: skip
        rows = tag_rows(self.tag)
        return Outcome(
            command_tag=self.tag,
            rows=self.count if rows is None or (self.tag or "").startswith("SELECT") else rows,
            duration_ms=duration,
            sqlstate=self.sqlstate,
            error=self.error,
            columns=self.columns,
            preview=preview[:PREVIEW_ROWS],
            preview_truncated=self.count > PREVIEW_ROWS,
            masked=masked,
            session_id=context.session_id,
        )

    @staticmethod
    def _done(future: asyncio.Future[None]) -> None:
        if not future.done():
            future.set_result(None)


class BoundPortal(NamedTuple):
    """A portal the client bound to a statement that may be held: the values as text (for
    the card), what its Bind said after the names (formats, values, result formats) and
    the statement's parameter types — enough to bind it again on another connection."""

    values: tuple[str | None, ...]
    bind: bytes
    types: tuple[int, ...]


@dataclass(slots=True)
class Held:
    """The statement a session holds: the client's message exactly as sent, and for an
    Execute the portal it runs, when the relay knows how it was bound."""

    kind: int
    message: bytes
    sql: str
    params: tuple[str | None, ...] | None
    event: StatementEvent
    portal: BoundPortal | None = None


async def hold(session: ClientSession, held: Held) -> None:
    """Run the whole hold of ``held``; always ends by resuming the session's stream."""
    try:
        await _hold(session, held)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unexpected error while holding a statement")
        session.refuse_held(held, pgerrors.internal_error())
    finally:
        session.resume()


async def _hold(session: ClientSession, held: Held) -> None:
    approvals = session.server.approvals
    context = session.context
    assert approvals is not None and context is not None
    timeout = session.server.config.postgres.hold_timeout
    event = held.event
    if context.on_reader:
        why = await _not_on_writer(session, held)
        if session.skips_to_sync:
            # Something the client sent before it failed (the reader refused its Bind,
            # say): the target would discard it unseen, and no request is opened for it.
            session.skip_held(held)
            return
        if why is not None:
            session.refuse_held(held, pgerrors.reader_session_cannot_hold(why))
            return
    try:
        view = await approvals.submit(
            resource=context.resource,
            requester=context.identity,
            agent=context.principal.actor if context.principal else None,
            sql=held.sql,
            statement_class=event.statement_class,
            reasons=event.reasons,
            source="psql",
            params=held.params,
            session_id=context.session_id,
            waiter=context.session_id,
            # Only this connection may ever run what it holds inside a transaction or with
            # bound values: no other gateway takes it over (approvals.sweep cancels it if
            # this gateway stops).
            hold_for=timeout + HOLD_MARGIN if _replayable(session, held) else BOUND_TO_SESSION,
        )
    except StoreUnavailable:
        session.refuse_held(held, pgerrors.audit_unavailable(), "refused")
        return
    except DecisionRefused as exc:
        session.refuse_held(held, pgerrors.too_many_pending_requests(str(exc)))
        return
    event.request_id = view.id
    if not _replayable(session, held):
        await approvals.bind(view.id)
    where = approvals.where(view)
    session.write_client(pgerrors.approval_pending(view.id, where, timeout))
    interrupted = asyncio.Event()
    approvals.register_hold(context.session_id, interrupted.set)
    try:
        row = await _wait(approvals.wait(view.id, timeout), interrupted)
    except asyncio.CancelledError:
        # The client went away (the relay keeps reading it while it waits): what only its
        # connection could run is cancelled; a plain statement may still run without it.
        if not _replayable(session, held):
            why = "the client went away while its statement was held"
            approvals.spawn(approvals.cancel(view.id, why))
        else:
            approvals.spawn(approvals.release(view.id, context.session_id))
        raise
    finally:
        approvals.unregister_hold(context.session_id)
    if row is None or row.state == State.PENDING:
        await _stop_waiting(session, held, view.id, where, interrupted.is_set())
    elif row.state == State.APPROVED:
        claimed = await approvals.claim(view.id, context.session_id)
        if claimed is None or not claimed.sql_intact:
            session.refuse_held(held, pgerrors.request_not_executed(view.id, "not claimable"))
            return
        await _execute(session, held, view.id, claimed.max_rows)
    elif row.state == State.REJECTED:
        decided = await approvals.store.view(row)
        rejection = decided.rejection if decided is not None else None
        session.refuse_held(
            held,
            pgerrors.request_rejected(
                view.id,
                rejection.approver if rejection else None,
                rejection.reason if rejection else row.state_reason,
            ),
        )
    elif row.state == State.EXPIRED:
        session.refuse_held(held, pgerrors.request_expired(view.id))
    elif row.state == State.CANCELLED:
        session.refuse_held(held, pgerrors.request_cancelled(view.id, row.state_reason or ""))
    else:
        session.refuse_held(held, pgerrors.request_not_executed(view.id, str(row.state)))


def _replayable(session: ClientSession, held: Held) -> bool:
    """Whether ``held`` may run without its client: a plain statement outside a transaction."""
    return session.tx_status == "I" and held.params is None


async def _wait(
    waiting: Coroutine[Any, Any, RequestRow], interrupted: asyncio.Event
) -> RequestRow | None:
    """The request once decided, or None when the client stopped waiting first."""
    wait_task = asyncio.ensure_future(waiting)
    stop_task = asyncio.ensure_future(interrupted.wait())
    try:
        await asyncio.wait((wait_task, stop_task), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop_task.cancel()
        if not wait_task.done():
            wait_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await wait_task
    return None if wait_task.cancelled() else wait_task.result()


async def _stop_waiting(
    session: ClientSession, held: Held, request_id: int, where: list[str], interrupted: bool
) -> None:
    approvals = session.server.approvals
    context = session.context
    assert approvals is not None and context is not None
    if session.tx_status != "I" or held.params is not None:
        why = (
            "the client stopped waiting inside a transaction, where it cannot be replayed"
            if session.tx_status != "I"
            else "the client stopped waiting, and its bound statement runs only on its connection"
        )
        await approvals.cancel(request_id, why)
        session.refuse_held(held, pgerrors.request_cancelled(request_id, why))
        return
    await approvals.release(request_id, context.session_id)
    session.refuse_held(held, pgerrors.hold_ended(request_id, where, interrupted))


async def _not_on_writer(session: ClientSession, held: Held) -> str | None:
    """Why ``held``, from a session on the reader credential, cannot be approved to run
    on a writer connection of its own; None when it can. A statement inside the reader's
    transaction block would run outside that transaction: refused before any request
    exists. An Execute runs on the writer as its portal was bound (:func:`_run_bound`);
    one whose Bind the relay did not keep is refused."""
    if held.kind != m.QUERY and held.portal is None:
        return "it came through the extended protocol, whose portal lives on the reader"
    if _controls_transactions(held.sql):
        return "it controls a transaction, which would end with the writer's connection"
    # The target answers what came before the held statement (its Parse and Bind, a BEGIN
    # pipelined ahead) only at a Sync or a Flush: ask for it, so the status is known.
    session.forward_held(m.Flush().encode(), [])
    await session.settle()  # the transaction status after what the client sent before
    if session.tx_status != "I" or session.unsynced:
        return "it was sent inside a transaction block, which runs on the read-only credential"
    return None


def _controls_transactions(sql: str) -> bool:
    """Whether ``sql`` holds BEGIN, COMMIT, SAVEPOINT, PREPARE TRANSACTION… (True when it
    does not parse: it would not run anyway, and no guess is safe)."""
    try:
        statements = pgparse.parse(sql)
    except Exception:
        return True
    return any("TransactionStmt" in entry.get("stmt", {}) for entry in statements)


async def _execute(session: ClientSession, held: Held, request_id: int, cap: int | None) -> None:
    """Run the approved statement: on the session's own connection, or — for a session on
    the resource's reader credential — on a writer connection opened for this command."""
    context = session.context
    assert context is not None
    if not context.on_reader:
        await _run(session, held, request_id, cap)
        return
    approvals = session.server.approvals
    assert approvals is not None
    try:
        restore = await session.switch_to_writer()
    except (UpstreamError, AuthenticationError, ProtocolError) as exc:
        why = f"cannot reach {context.resource.name} with its writer credential: {exc}"
        await approvals.finish(request_id, Outcome(None, None, 0.0, "08006", why))
        session.refuse_held(held, pgerrors.writer_unreachable(request_id, why))
        return
    failed = False
    try:
        if held.kind == m.EXECUTE:
            failed = await _run_bound(session, held, request_id, cap)
        else:
            await _run(session, held, request_id, cap)
    finally:
        restore()
    if failed:
        # The client saw an error in place of its Execute: the reader skips the rest of
        # its pipeline up to the Sync, as one connection would have.
        session.skip_to_sync()


async def _run_bound(session: ClientSession, held: Held, request_id: int, cap: int | None) -> bool:
    """Run a held Execute on a writer connection opened for it: Parse and Bind it there as
    the client bound it on the reader (the gateway's own, unseen by the client), Execute
    it with the client's row limit (its answer is the client's), and Sync (unseen) to end
    the writer's transaction — after a refusal for touching too many rows, a rollback.
    True when the client was answered with an error."""
    approvals = session.server.approvals
    assert approvals is not None and held.portal is not None
    portal = held.portal
    execute = decode_frontend(m.EXECUTE, held.message[5:])
    assert isinstance(execute, m.Execute)
    capture = Capture(held.event, cap, wait_for_ready=False)
    try:
        session.forward_held(
            m.Parse("", held.sql, portal.types).encode()
            + _bind_unnamed(portal.bind)
            + m.Execute("", execute.max_rows).encode()
            + m.Flush().encode(),
            [
                Pending(m.PARSE, hide=True, capture=capture),
                Pending(m.BIND, hide=True, capture=capture),
                Pending(m.EXECUTE, held.event, capture=capture),
            ],
        )
        await capture.complete
        if capture.over is not None:
            error = pgerrors.blast_radius_exceeded(request_id, capture.over, cap or 0)
            session.forward_held(
                m.Execute("jitgate refused statement", 0).encode(),
                [Pending(m.EXECUTE, None, error)],
            )
        session.forward_held(m.Sync().encode(), [Pending(m.SYNC, hide=True, capture=capture)])
        await capture.settled
    except asyncio.CancelledError:
        capture.abandon()
        approvals.spawn(approvals.finish(request_id, capture.outcome(session, request_id)))
        raise
    await approvals.finish(request_id, capture.outcome(session, request_id))
    return capture.error is not None or capture.over is not None


def _bind_unnamed(rest: bytes) -> bytes:
    """A Bind of the unnamed portal to the unnamed statement, with ``rest`` (formats,
    values, result formats) as the client sent them."""
    body = b"\0\0" + rest
    return b"B" + (len(body) + 4).to_bytes(4, "big") + body


async def _run(session: ClientSession, held: Held, request_id: int, cap: int | None) -> None:
    approvals = session.server.approvals
    assert approvals is not None
    convert = held.kind == m.QUERY and cap is not None and dml_kind(held.sql) is not None
    capture = Capture(held.event, cap if convert or held.kind == m.EXECUTE else None,
                      wait_for_ready=held.kind == m.QUERY and not convert)  # fmt: skip
    try:
        if convert:
            session.forward_held(
                m.Parse("", held.sql, ()).encode()
                + m.Bind("", "", (), (), ()).encode()
                + m.Describe("P", "").encode()
                + m.Execute("", 0).encode()
                + m.Flush().encode(),
                [
                    Pending(m.PARSE, hide=True, capture=capture),
                    Pending(m.BIND, hide=True, capture=capture),
                    Pending(m.DESCRIBE, hide=True, capture=capture),
                    Pending(m.EXECUTE, held.event, capture=capture),
                ],
            )
        elif held.kind == m.EXECUTE:
            session.forward_held(
                held.message + m.Flush().encode(),
                [Pending(m.EXECUTE, held.event, capture=capture)],
            )
        else:
            session.forward_held(held.message, [Pending(m.QUERY, held.event, capture=capture)])
        await capture.complete
        if capture.over is not None:
            error = pgerrors.blast_radius_exceeded(request_id, capture.over, cap or 0)
            session.forward_held(
                m.Execute("jitgate refused statement", 0).encode(),
                [Pending(m.EXECUTE, None, error)],
            )
        if convert:
            session.forward_held(m.Sync().encode(), [Pending(m.SYNC, capture=capture)])
            await capture.settled
    except asyncio.CancelledError:
        capture.abandon()
        approvals.spawn(approvals.finish(request_id, capture.outcome(session, request_id)))
        raise
    await approvals.finish(request_id, capture.outcome(session, request_id))
