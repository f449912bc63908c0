"""The approvals core: requests in, decisions in, each approved statement executed once.

Chat-neutral: adapters call :meth:`Approvals.submit` and :meth:`Approvals.decide` and are
told what happened through :class:`~approvals.model.Notifier`. The truth is in the store;
this process only keeps wake-ups: waiters are woken by the process that moved a request and
by ``LISTEN jitgate_requests`` for moves made elsewhere, with a short poll as a safety net.

Execution, exactly once: whoever wins APPROVED → EXECUTING runs the statement. While a
client is held on its own connection (``waiter`` and ``hold_until``), only that session may
claim; once the hold ends any gateway may, and runs it on a fresh connection
(:mod:`approvals.execute`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from approvals import decisions, detached, sweep
from approvals.execute import estimate_rows
from approvals.model import Alert, AlertSink, Notifier, Outcome, RequestView, State, Verdict
from approvals.policy import action_of, reads_only
from approvals.store import (
    CANCEL_CHANNEL,
    CHANNEL,
    STORE_ERRORS,
    NewRequest,
    RequestRow,
    RequestStore,
)
from audit.recorder import AuditRecorder
from audit.spool import AuditSpool
from guard import Classifier
from guard.resources import ResourceClassifiers
from guard.sensitive import SensitiveColumns
from guard.session_limits import lifted_setting
from identity import Directory, Principal
from jitgate.config import Config, Resource
from jitgate.errors import DecisionRefused, StoreUnavailable
from masking import MaskingPolicy, mask_text

log = logging.getLogger("jitgate.approvals")


@dataclass(frozen=True, slots=True)
class Asked:
    """What :meth:`Approvals.ask` did: ran it (``outcome``) or opened ``request``."""

    action: Literal["allow", "review"]
    request: RequestView | None
    outcome: Outcome | None


SWEEP_INTERVAL = 1.0
POLL_INTERVAL = 1.0


class Approvals:
    def __init__(
        self,
        config: Config,
        pool: asyncpg.Pool,
        recorder: AuditRecorder,
        *,
        notifiers: Sequence[Notifier] = (),
        alerts: Sequence[AlertSink] = (),
        masking: Callable[[Resource], MaskingPolicy | None] | None = None,
        directory: Directory | None = None,
    ) -> None:
        """``directory``: who is in which group (default: the configuration's groups)."""
        self.config = config
        self.directory = directory or Directory(config, pool)
        self.store = RequestStore(pool, config.public_url)
        self.gateway_id = uuid.uuid4()
        self.notifiers = list(notifiers)
        self.alerts = list(alerts)
        self.pool = pool
        self.recorder = recorder
        self.masking = masking or (lambda _resource: None)
        self._wakeups: dict[int, set[asyncio.Event]] = {}
        self._holds: dict[UUID, Callable[[], None]] = {}
        self._submitting: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.listener: asyncpg.Connection | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self.sweeping = asyncio.Lock()
        self.classifiers = ResourceClassifiers(
            {name: r.allowed_functions for name, r in config.resources.items()}
        )
        # Where masking found values (the gateway sets it): reads that transform them are
        # held, as in a psql session.
        self.sensitive: SensitiveColumns | None = None
        # Where statements run for requests are written before they run (the gateway's).
        self.spool: AuditSpool | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await sweep.heartbeat(self)
        await self.reconcile()
        await self.listen()
        self._scheduler = AsyncIOScheduler()
        self._scheduler.add_job(
            self.sweep, "interval", seconds=SWEEP_INTERVAL, max_instances=1, coalesce=True
        )
        self._scheduler.start()

    async def stop(self, grace: float = 10.0) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        async with self.sweeping:
            pass  # a sweep under way finishes; no new one starts
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        if self.listener is not None:
            with contextlib.suppress(*STORE_ERRORS):
                await self.listener.close(timeout=2)
        with contextlib.suppress(*STORE_ERRORS):
            await self.pool.execute("DELETE FROM gateways WHERE id = $1", self.gateway_id)

    async def listen(self) -> None:
        try:
            conn = await asyncpg.connect(self.config.database_url, timeout=5)
            await conn.add_listener(CHANNEL, self._on_notify)
            await conn.add_listener(CANCEL_CHANNEL, self._on_cancel)
        except STORE_ERRORS as exc:
            log.warning("cannot listen for request changes; polling", extra={"error": str(exc)})
            return
        self.listener = conn

    async def sweep(self) -> None:
        await sweep.sweep(self)

    async def reconcile(self) -> None:
        await sweep.reconcile(self)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        if isinstance(payload, str) and payload.isdigit():
            request_id = int(payload)
            self._wake(request_id)
            self.spawn(detached.execute_if_unattended(self, request_id))

    def _on_cancel(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        with contextlib.suppress(ValueError, TypeError):
            self.interrupt_hold(UUID(str(payload)))

    # -- requests ----------------------------------------------------------------------------

    async def submit(
        self,
        *,
        resource: Resource,
        requester: str,
        sql: str,
        statement_class: str,
        reasons: Sequence[str],
        source: str,
        reason: str | None = None,
        params: tuple[str | None, ...] | None = None,
        session_id: UUID | None = None,
        agent: str | None = None,
        waiter: UUID | None = None,
        hold_for: float | None = None,
    ) -> RequestView:
        """Open a request for ``sql`` and tell every notifier. Raises StoreUnavailable, and
        DecisionRefused (``too_many_requests``) when ``requester`` already has
        ``postgres.limits.pending_requests_per_user`` pending requests on ``resource``, or
        the resource has ``pending_requests_per_resource`` from everyone."""
        estimate = await estimate_rows(resource, sql) if params is None else None
        display = self.display_sql(resource, sql, params)
        reason = None if reason is None else self.masked(resource, reason)
        # Counting and inserting under one lock per resource: concurrent submits in this
        # process cannot both take the last place.
        async with self._submitting.setdefault(resource.name, asyncio.Lock()):
            await self._check_pending(requester, resource)
            row = await self._insert(
                NewRequest(
                    resource=resource.name,
                    requester=requester,
                    agent=agent,
                    sql=sql,
                    params=params,
                    display_sql=display,
                    statement_class=statement_class,
                    reasons=tuple(reasons),
                    reason=reason,
                    estimate=estimate,
                    source=source,
                    session_id=session_id,
                    approvals_required=resource.approvals_required,
                    approver_groups=resource.approvers,
                    ttl=resource.request_ttl,
                    waiter=waiter,
                    hold_for=hold_for,
                )
            )
        view = self.store.to_view(row, ())
        log.info(
            "request opened",
            extra={"request": row.id, "identity": requester, "resource": resource.name},
        )
        for notifier in self.notifiers:
            self.spawn(notifier.request_opened(view))
        return view

    def _transforms(self, resource: Resource, sql: str) -> list[str]:
        """The outputs of ``sql`` that transform a sensitive column of ``resource``
        (:meth:`guard.sensitive.SensitiveColumns.transforms_in`); none where it masks nothing."""
        policy = self.masking(resource)
        if self.sensitive is None or policy is None:
            return []
        return self.sensitive.transforms_in(sql, resource.name, policy)

    async def _check_pending(self, requester: str, resource: Resource) -> None:
        limits = self.config.postgres.limits
        try:
            row = await self.pool.fetchrow(
                "SELECT count(*) FILTER (WHERE requester = $1), count(*) FROM requests"
                " WHERE resource = $2 AND state = 'pending'",
                requester,
                resource.name,
            )
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot count pending requests: {exc}") from exc
        assert row is not None
        mine, everyone = row[0], row[1]
        if mine >= limits.pending_requests_per_user:
            raise DecisionRefused(
                "too_many_requests",
                f"{requester} already has {mine} pending requests on {resource.name}; the"
                f" limit is {limits.pending_requests_per_user}"
                " (postgres.limits.pending_requests_per_user)",
            )
        if everyone >= limits.pending_requests_per_resource:
            raise DecisionRefused(
                "too_many_requests",
                f"{resource.name} already has {everyone} pending requests; the limit is"
                f" {limits.pending_requests_per_resource}"
                " (postgres.limits.pending_requests_per_resource)",
            )

    async def _insert(self, new: NewRequest) -> RequestRow:
        try:
            return await self.store.insert(new)
        except STORE_ERRORS as exc:
            raise StoreUnavailable(f"cannot record the request: {exc}") from exc

    async def ask(
        self,
        *,
        resource_name: str,
        identity: str,
        sql: str,
        source: str,
        reason: str | None = None,
        agent: str | None = None,
        principal: Principal | None = None,
    ) -> Asked:
        """One statement asked for from chat, the CLI or an agent, through the same policy as
        the proxy: ``allow`` runs it now (masked outcome), ``review`` opens a request, ``deny``
        raises :class:`DecisionRefused` with the reasons. ``principal``, when given, is who
        presented the token (its agent and delegation then apply)."""
        if principal is not None:
            identity, agent = principal.email, principal.actor
        identity = identity.strip().lower()
        if principal is None and agent is not None:
            principal = Principal(identity, agent)
        who = f"{identity} via agent {agent}" if agent else identity
        resource = self.config.resources.get(resource_name)
        if resource is None:
            raise DecisionRefused("unknown_resource", f"there is no resource {resource_name!r}")
        groups = self.directory.groups_of(identity)
        if not groups & resource.access.keys():
            raise DecisionRefused("no_access", f"{identity} has no access to {resource_name}")
        if principal is not None and not principal.may_use(resource_name):
            raise DecisionRefused(
                "no_access", f"{who} may not use {resource_name}: the delegation does not name it"
            )
        limit = self.config.postgres.max_statement_size
        if len(sql) > limit:
            raise DecisionRefused(
                "too_large", f"the statement has {len(sql)} characters; jitgate reads at most"
                f" {limit} (postgres.max_statement_size)",
            )  # fmt: skip
        lifted = lifted_setting(sql, resource.session_limits)
        if lifted is not None:  # whatever the policy, as in a proxy session
            raise DecisionRefused(
                "denied", f"denied: the statement {lifted}, which the session_limits of"
                f" {resource_name} fix", reasons=(lifted,),
            )  # fmt: skip
        verdicts = self.classifiers.of(resource_name).classify(sql)
        strictest = Classifier.strictest(verdicts)
        reasons = tuple(dict.fromkeys(r for v in verdicts for r in v.reasons))
        action = action_of(resource, groups, verdicts, principal)
        if action == "allow":
            transformed = self._transforms(resource, sql)
            if transformed:
                action, reasons = "review", (*reasons, *transformed)
        if action == "deny":
            self.emit(
                Alert("denied", f"{who} was denied a {strictest.statement_class} statement"
                      f" on {resource_name}: {'; '.join(reasons)}", identity, resource_name)
            )  # fmt: skip
            raise DecisionRefused(
                "denied",
                f"denied by policy ({strictest.statement_class}"
                + (f": {'; '.join(reasons)})" if reasons else ")"),
                statement_class=strictest.statement_class,
                reasons=reasons,
            )
        if action == "review":
            view = await self.submit(
                resource=resource, requester=identity, sql=sql,
                statement_class=strictest.statement_class, reasons=reasons, source=source,
                reason=reason, agent=agent,
            )  # fmt: skip
            return Asked("review", view, None)
        # As a proxy session would: someone who may do nothing else without review reads
        # on the reader credential, so a read the classifier misjudged meets the database's
        # permissions.
        url = resource.url if reads_only(resource, groups, principal) else resource.writer
        outcome = await detached.run_audited(
            self,
            resource, identity, sql, strictest.statement_class, reasons, None, None,
            f"jitgate {source}", url, agent,
        )  # fmt: skip
        return Asked("allow", None, outcome)

    def display_sql(
        self, resource: Resource, sql: str, params: tuple[str | None, ...] | None = None
    ) -> str:
        """``sql`` as cards and pages show it: sensitive literals masked (the default policy
        even where results are not masked: chat is never a place for raw values)."""
        text = self.masked(resource, sql)
        if params:
            shown = ", ".join(
                f"${i} = NULL" if p is None else f"${i} = {self.masked(resource, p)!r}"
                for i, p in enumerate(params, 1)
            )
            text += f"\n-- parameters: {shown}"
        return text

    def masked(self, resource: Resource | None, text: str) -> str:
        """``text`` with its sensitive spans masked by the resource's policy, or the default
        one (also where results are not masked): what the store keeps of people's reasons
        and of databases' error messages, which chat and pages show."""
        policy = (self.masking(resource) if resource is not None else None) or MaskingPolicy()
        return mask_text(text, policy=policy).value

    def where(self, request: RequestView) -> list[str]:
        return [w for n in self.notifiers if (w := n.where(request))]

    async def decide(
        self,
        request_id: int,
        approver: str,
        verdict: Verdict,
        *,
        via: str,
        reason: str | None = None,
        max_rows: int | None = None,
    ) -> RequestView:
        """Record ``approver``'s decision; move the request when it settles it. Raises
        :class:`DecisionRefused` (with a ``code``) for anything the rules refuse."""
        return await decisions.decide(
            self, request_id, approver, verdict, via=via, reason=reason, max_rows=max_rows
        )

    async def cancel(self, request_id: int, reason: str) -> RequestView | None:
        row = await self.store.move(None, request_id, "cancel", state_reason=reason)
        if row is None:
            return None
        return await self.announce(request_id)

    async def wait(self, request_id: int, within: float) -> RequestRow:
        """Return the request once it is no longer pending, or as it is after ``within``
        seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        event = asyncio.Event()
        self._wakeups.setdefault(request_id, set()).add(event)
        try:
            while True:
                event.clear()
                row = await self.store.get(request_id)
                assert row is not None
                remaining = deadline - loop.time()
                if row.state != State.PENDING or remaining <= 0:
                    return row
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(remaining, POLL_INTERVAL))
        finally:
            events = self._wakeups.get(request_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._wakeups[request_id]

    def _wake(self, request_id: int) -> None:
        for event in self._wakeups.get(request_id, ()):
            event.set()

    # -- execution ---------------------------------------------------------------------------

    async def claim(self, request_id: int, session_id: UUID) -> RequestRow | None:
        """The waiting session's claim: APPROVED → EXECUTING, only while it is the waiter."""
        return await self.store.move(
            None,
            request_id,
            "claim",
            condition="AND waiter = $3",
            args=(session_id,),
            executor=self.gateway_id,
            started_at=datetime.now(UTC),
        )

    async def bind(self, request_id: int) -> None:
        """Only this gateway's waiting session may run the pending request (it was held
        inside a transaction, or with bound values): named as its executor, so that
        :func:`approvals.sweep.cancel_orphaned` cancels it if this gateway stops."""
        await self.pool.execute(
            "UPDATE requests SET executor = $2 WHERE id = $1 AND state = 'pending'",
            request_id,
            self.gateway_id,
        )

    async def release(self, request_id: int, session_id: UUID) -> None:
        """The waiting session stopped waiting: from now on any gateway may execute."""
        await self.pool.execute(
            "WITH r AS (UPDATE requests SET waiter = NULL, hold_until = NULL"
            " WHERE id = $1 AND waiter = $2 RETURNING id)"
            " SELECT pg_notify($3, r.id::text) FROM r",
            request_id,
            session_id,
            CHANNEL,
        )

    async def finish(self, request_id: int, outcome: Outcome) -> RequestView | None:
        """Settle an executing request with ``outcome``, its error message masked first (a
        database's error can quote a value from its rows)."""
        if outcome.error:
            outcome = replace(outcome, error=self.masked(None, outcome.error))
        row = await self.store.move(
            None,
            request_id,
            "succeed" if outcome.ok else "fail",
            state_reason=None if outcome.ok else outcome.error,
            outcome=outcome,
            finished_at=datetime.now(UTC),
        )
        if row is None:
            return None
        view = await self.store.view(row)
        assert view is not None
        for notifier in self.notifiers:
            self.spawn(notifier.request_finished(view))
        log.info("request finished", extra={"request": request_id, "state": str(row.state)})
        return view

    # -- holds, notifications, alerts ------------------------------------------------------------

    def register_hold(self, session_id: UUID, interrupt: Callable[[], None]) -> None:
        self._holds[session_id] = interrupt

    def unregister_hold(self, session_id: UUID) -> None:
        self._holds.pop(session_id, None)

    def interrupt_hold(self, session_id: UUID) -> bool:
        interrupt = self._holds.get(session_id)
        if interrupt is None:
            return False
        interrupt()
        return True

    async def announce_cancel(self, session_id: UUID) -> None:
        """Interrupt the hold of ``session_id`` on whichever gateway holds it."""
        if not self.interrupt_hold(session_id):
            await self.pool.execute("SELECT pg_notify($1, $2)", CANCEL_CHANNEL, str(session_id))

    async def announce(self, request_id: int, alert: str | None = None) -> RequestView | None:
        self._wake(request_id)
        view = await self.store.view(request_id)
        if view is None:
            return None
        for notifier in self.notifiers:
            self.spawn(notifier.request_changed(view))
        if alert == "expired":
            self.emit(
                Alert("expired", f"request #{view.id} on {view.resource} expired undecided",
                      view.requester, view.resource, view.id, view.session_id)
            )  # fmt: skip
        return view

    def emit(self, alert: Alert) -> None:
        if alert.at is None:
            alert = Alert(**{**_fields(alert), "at": datetime.now(UTC)})
        log.warning("security alert", extra={"alert": alert.kind, "summary": alert.summary})
        for sink in self.alerts:
            self.spawn(sink.alert(alert))

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run ``work`` in the background; failures are logged, never raised into callers."""
        task = asyncio.get_running_loop().create_task(_logged(work))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _fields(alert: Alert) -> dict[str, Any]:
    return {name: getattr(alert, name) for name in Alert.__dataclass_fields__}


async def _logged(work: Coroutine[Any, Any, Any]) -> None:
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("background approvals work failed")
