"""The chain every statement travels: classify → decide → hold → execute → mask → record.

Each member is one small class behind :class:`StatementHook`. A member may answer the client
itself by returning a :class:`Refusal` (an ERROR; the session goes on); the relay then never
sends the statement to the target. ``execute`` is the relay itself; ``mask`` acts on results
(:class:`ResultMask`); ``record`` both gates (no audit store, no statement: fail closed) and
writes the event when the statement completes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

from approvals.model import Alert
from approvals.policy import action_for, strictest_action
from audit.events import StatementEvent
from audit.recorder import AuditRecorder
from guard import Classifier, StatementClass, StatementVerdict
from guard.classify import numbers_key
from guard.resources import ResourceClassifiers
from guard.sensitive import SensitiveColumns
from guard.session_limits import lifted_setting
from guard.verdict import RANK
from identity import Principal
from jitgate.config import Action, Resource
from masking import MaskingPolicy
from proxy import pgerrors
from proxy.lexing import changed_setting, may_relex


@dataclass(frozen=True, slots=True)
class SessionContext:
    """Who is connected to what; fixed for the life of a client connection."""

    session_id: UUID
    identity: str
    groups: frozenset[str]
    resource: Resource
    client_addr: str | None
    # The session runs on the resource's reader credential (approvals.policy.reads_only).
    on_reader: bool = False
    # Who connected: the identity, and the agent acting for them with what its delegation
    # narrows (approvals.policy.action_for). None only where no client connected.
    principal: Principal | None = None
    decisions: dict[str, Action] = field(default_factory=dict, compare=False)
    # The class of each prepared statement of the session by name, SQL PREPAREs and
    # protocol Parses alike (PostgreSQL keeps both under one set of names).
    sql_prepared: dict[str, StatementClass] = field(default_factory=dict, compare=False)
    # What the chain let through in this session, by the classifier's memo key.
    admitted: dict[str | bytes, tuple[str, tuple[str, ...]]] = field(
        default_factory=dict, compare=False
    )
    # Prepared statement names (SQL and protocol) whose statement may change how the
    # target reads text at run time (proxy.lexing.may_relex).
    relexing: set[str] = field(default_factory=set, compare=False)


@dataclass(slots=True)
class Statement:
    """One statement on its way through the chain. ``protocol`` is ``simple`` (a Query),
    ``parse`` (an extended-protocol Parse) or ``execute`` (an Execute of a parsed one,
    whose class and decision were settled at Parse)."""

    context: SessionContext
    sql: str
    protocol: str
    event: StatementEvent
    verdicts: Sequence[StatementVerdict] = ()
    memo_key: str | bytes | None = None
    # Parameter types a Parse declared that the database defines itself (domains whose
    # CHECK runs when a value is bound): the statement is opaque, whatever its text.
    foreign_types: tuple[int, ...] = ()
    # It may change how the target reads text at run time (WatchRelexing): the relay
    # forwards nothing after it until the target has answered it.
    relex: bool = False


@dataclass(frozen=True, slots=True)
class Refusal:
    """The hook's answer to the client: the ErrorResponse bytes to send instead of a result.
    ``hold`` asks the relay to hold the statement for approval instead (``error`` is then
    what a relay that cannot hold answers)."""

    error: bytes
    decision: str
    hold: bool = False


class StatementHook(Protocol):
    """``pure``: the hook's answer depends only on the session and the statement's
    verdict, and it has no effect when it lets a statement through (no alert, no record),
    so the chain may reuse its answer for the same statement shape in the same session."""

    pure: bool

    def on_statement(self, statement: Statement) -> Refusal | None: ...


class ResultMask(Protocol):
    """Rewrites result rows in flight. ``active`` False lets the relay skip it entirely."""

    active: bool


class SizeLimit:
    """Refuses a statement longer than ``limit`` characters before anything reads it: the
    parse and the walk cost about a second of the event loop per MiB, which every other
    session of the process would wait for."""

    pure = True

    def __init__(self, limit: int) -> None:
        self._limit = limit

    def on_statement(self, statement: Statement) -> Refusal | None:
        if statement.protocol == "execute" or len(statement.sql) <= self._limit:
            return None
        statement.event.statement_class = "opaque"
        statement.event.reasons = (f"{len(statement.sql)} characters, over the limit",)
        return Refusal(pgerrors.statement_too_large(len(statement.sql), self._limit), "deny")


class Classify:
    """Gives each statement its class from PostgreSQL's own parse tree (:mod:`guard`).

    A string of several statements gets one verdict each; the event keeps every reason.
    SQL-level ``PREPARE`` names are remembered per session so a later ``EXECUTE name`` is
    judged by what was prepared."""

    pure = True

    def __init__(self, classifiers: ResourceClassifiers) -> None:
        self._classifiers = classifiers

    def on_statement(self, statement: Statement) -> Refusal | None:
        if statement.protocol == "execute":
            return None
        prepared = statement.context.sql_prepared
        classifier = self._classifiers.of(statement.context.resource.name)
        verdicts = classifier.classify(statement.sql, prepared=prepared)
        for verdict in verdicts:
            if verdict.prepared_name is not None:
                remember_prepared(prepared, verdict.prepared_name, verdict.statement_class)
        if statement.foreign_types:
            verdicts = [_foreign_typed(v, statement.foreign_types) for v in verdicts]
        statement.verdicts = verdicts
        if len(verdicts) == 1:
            statement.event.statement_class = verdicts[0].statement_class
            statement.event.reasons = verdicts[0].reasons
            if not statement.foreign_types:  # the text alone does not say the types
                statement.memo_key = classifier.memo_key(statement.sql)
            return None
        statement.event.statement_class = Classifier.strictest(verdicts).statement_class
        statement.event.reasons = tuple(
            dict.fromkeys(reason for verdict in verdicts for reason in verdict.reasons)
        )
        return None


class PinLexing:
    """Refuses, whatever the policy, a statement that would change how the target reads
    SQL text (:mod:`proxy.lexing`): the guardrails could not read what follows it."""

    pure = True

    def on_statement(self, statement: Statement) -> Refusal | None:
        if statement.protocol == "execute":
            return None
        changed = changed_setting(statement.sql)
        if changed is None:
            return None
        statement.event.reasons = (*statement.event.reasons, f"sets {changed[0]}")
        return Refusal(pgerrors.lexing_setting_refused(*changed), "deny")


class PinSessionLimits:
    """Refuses, whatever the policy, a statement that could lift a timeout the resource's
    ``session_limits`` fix (:mod:`guard.session_limits`); resources without them are not
    looked at."""

    pure = True

    def on_statement(self, statement: Statement) -> Refusal | None:
        limits = statement.context.resource.session_limits
        if not limits or statement.protocol == "execute":
            return None
        lifted = lifted_setting(statement.sql, limits)
        if lifted is None:
            return None
        statement.event.reasons = (*statement.event.reasons, lifted)
        return Refusal(pgerrors.session_limit_refused(lifted), "deny")


class WatchRelexing:
    """Marks a statement that may change how the target reads SQL text at run time
    (:func:`proxy.lexing.may_relex`); such a statement is never remembered as admitted, so
    every one of them reaches the relay's barrier."""

    pure = True

    def __init__(self, classifiers: ResourceClassifiers) -> None:
        self._classifiers = classifiers

    def on_statement(self, statement: Statement) -> Refusal | None:
        if statement.protocol == "execute":
            return None
        context, event = statement.context, statement.event
        strict = self._classifiers.strict(context.resource.name, statement.sql, context.relexing)
        strict_class = None
        if strict is not None and event.statement_class != "opaque":
            opaque: StatementClass = "opaque"  # EXECUTE of a name that may: the same
            prepared = {**context.sql_prepared, **dict.fromkeys(context.relexing, opaque)}
            verdicts = strict.classify(statement.sql, prepared=prepared)
            strict_class = Classifier.strictest(verdicts).statement_class
        statement.relex = may_relex(event.statement_class, strict_class)
        if statement.relex:
            context.relexing.update(v.prepared_name for v in statement.verdicts if v.prepared_name)
        return None


def _foreign_typed(verdict: StatementVerdict, types: tuple[int, ...]) -> StatementVerdict:
    reason = f"binds parameters of types the database defines (oids {', '.join(map(str, types))})"
    if RANK[verdict.statement_class] >= RANK["opaque"]:
        return verdict._replace(reasons=(*verdict.reasons, reason))
    return verdict._replace(statement_class="opaque", reasons=(reason, *verdict.reasons))


class Decide:
    """Maps (the user's groups × the statement's class) to allow / review / deny by the
    resource's ``access`` table. Across several groups the most permissive action wins; a
    class no group mentions is denied, so ``opaque`` and ``destructive`` are allowed only
    where a group says so explicitly. A string of several statements gets the strictest
    action of its statements.

    Security is told (``alert``) of every denied statement and every ``destructive`` or
    ``opaque`` one, whatever the decision."""

    pure = True

    def __init__(self, alert: Callable[[Alert], None] | None = None) -> None:
        self._alert = alert

    def on_statement(self, statement: Statement) -> Refusal | None:
        event = statement.event
        if statement.protocol == "execute":
            return None
        context = statement.context
        if len(statement.verdicts) <= 1:
            event.decision = decide(context, event.statement_class)
        else:
            classes = {v.statement_class for v in statement.verdicts}
            event.decision = strictest_action(decide(context, c) for c in classes)
        if self._alert is not None and (
            event.decision == "deny" or event.statement_class in _GUARDRAIL_CLASSES
        ):
            self._alert(_alert_for(context, event))
        if event.decision == "deny":
            return Refusal(pgerrors.statement_denied(event.reasons), "deny")
        return None


_GUARDRAIL_CLASSES = frozenset(("destructive", "opaque"))
_ALERT_WORDS = {"deny": "denied", "review": "held for review", "allow": "allowed by policy"}


def _alert_for(context: SessionContext, event: StatementEvent) -> Alert:
    what = _ALERT_WORDS[event.decision]
    reasons = "; ".join(event.reasons) or event.statement_class
    return Alert(
        "denied" if event.decision == "deny" else "guardrail",
        f"{event.statement_class} statement from {context.principal or context.identity} on"
        f" {context.resource.name} {what}: {reasons}",
        context.identity,
        context.resource.name,
        None,
        context.session_id,
    )


def decide(context: SessionContext, statement_class: str) -> Action:
    """The action for ``statement_class`` in this session (cached: it cannot change)."""
    cached = context.decisions.get(statement_class)
    if cached is None:
        cached = context.decisions[statement_class] = action_for(
            context.resource, context.groups, statement_class, context.principal
        )
    return cached


class HoldTransforms:
    """A read that computes something else from a column holding sensitive values — one
    masking has found values in, or whose name cues a detector — (``reverse(ssn)``,
    ``email::bytea``; :mod:`guard.transforms`) goes to review, with the reason on the card:
    what it returns may no longer look like what masking finds. Only on resources that
    mask. Pure between lessons: when a resource's masked columns grow, the proxy forgets
    what its sessions admitted (:mod:`guard.sensitive`)."""

    pure = True

    def __init__(
        self, columns: SensitiveColumns, policy: Callable[[Resource], MaskingPolicy | None]
    ) -> None:
        self._columns = columns
        self._policy = policy

    def on_statement(self, statement: Statement) -> Refusal | None:
        event = statement.event
        if statement.protocol == "execute" or event.decision != "allow":
            return None
        resource = statement.context.resource
        policy = self._policy(resource)
        if policy is None:
            return None
        found = self._columns.transforms_in(statement.sql, resource.name, policy)
        if found:
            event.decision = "review"
            event.reasons = (*event.reasons, *found)
        return None


class Hold:
    """Statements policy sends to review are held for approval (:mod:`proxy.hold`); with
    ``holding`` off they are answered "approval required" and nothing else happens."""

    pure = True

    def __init__(self, holding: bool = True) -> None:
        self._holding = holding

    def on_statement(self, statement: Statement) -> Refusal | None:
        if statement.event.decision == "review":
            error = pgerrors.approval_required(statement.event.reasons)
            return Refusal(error, "review", hold=self._holding)
        return None


class PassThroughMask:
    """Results leave unchanged until the masking engine takes this place."""

    active = False


class Record:
    """Fails closed when the audit store is unavailable and records every finished event."""

    pure = False  # the store's availability changes; the chain asks it every time

    def __init__(self, recorder: AuditRecorder) -> None:
        self._recorder = recorder

    @property
    def available(self) -> bool:
        return self._recorder.available

    def on_statement(self, statement: Statement) -> Refusal | None:
        if not self._recorder.available:
            return Refusal(pgerrors.audit_unavailable(), "refused")
        return None


class HookChain:
    """The ordered members; :meth:`admit` runs the statement hooks until one refuses.

    When every hook but :class:`Record` is :attr:`~StatementHook.pure`, a statement that
    came through with ``allow`` and no alert is remembered in its session by the
    classifier's memo key (its exact text, or its shape up to integer constants), and
    :meth:`admit_known` lets later statements of that key through with the same class and
    reasons without running the hooks again — after asking :class:`Record` whether the
    audit store is up, as every statement does."""

    def __init__(self, hooks: Sequence[StatementHook], mask: ResultMask, record: Record) -> None:
        self.hooks = (*hooks, record)
        self.mask = mask
        self.record = record
        self._memo = all(hook.pure for hook in hooks)

    def admit(self, statement: Statement) -> Refusal | None:
        for hook in self.hooks:
            refusal = hook.on_statement(statement)
            if refusal is not None:
                if refusal.hold:
                    statement.event.decision = "review"
                    return refusal
                statement.event.outcome = "refused"
                if refusal.decision != "refused" or statement.event.decision == "allow":
                    statement.event.decision = refusal.decision
                return refusal
        event, key = statement.event, statement.memo_key
        if (
            key is not None
            and self._memo
            and not statement.relex
            and event.decision == "allow"
            and event.statement_class not in _GUARDRAIL_CLASSES
        ):
            admitted = statement.context.admitted
            if len(admitted) >= _MEMO_SIZE:
                admitted.clear()
            admitted[key] = (event.statement_class, event.reasons)
        return None

    def admit_execute(
        self, context: SessionContext, sql: str, event: StatementEvent
    ) -> Refusal | None:
        """:meth:`admit` for an Execute of a statement judged at its Parse (``event`` carries
        that judgement). With pure hooks an allowed one only asks the audit gate."""
        if self._memo and event.decision == "allow" and self.record.available:
            return None
        return self.admit(Statement(context, sql, "execute", event))

    def admit_known(self, context: SessionContext, event: StatementEvent) -> bool:
        """True when ``event``'s statement was let through as one this session had already
        admitted (its class and reasons are set); False when it must go through
        :meth:`admit`."""
        admitted = context.admitted
        if not admitted:
            return False
        known = admitted.get(event.sql)
        if known is None:
            key = numbers_key(event.sql)
            if key is None:
                return False
            known = admitted.get(key)
            if known is None:
                return False
        if not self.record.available:
            return False
        event.statement_class, event.reasons = known
        return True


def remember_prepared(
    prepared: dict[str, StatementClass], name: str, statement_class: StatementClass
) -> None:
    """Note that ``name`` prepares a statement of ``statement_class``. Noted when it is
    judged, before the target answers (and before a DEALLOCATE earlier in the same pipeline
    is known to have run): preparing a name that exists fails there and the old statement
    stays, so a name never gets a milder class than one it was prepared with in the
    session. Fail closed: a name prepared again after a DEALLOCATE keeps the stricter."""
    known = prepared.get(name)
    if known is None or RANK[statement_class] > RANK[known]:
        prepared[name] = statement_class


_MEMO_SIZE = 512


def default_chain(
    recorder: AuditRecorder,
    classifiers: ResourceClassifiers,
    *,
    max_statement_size: int = 1 << 20,
    holding: bool = True,
    alert: Callable[[Alert], None] | None = None,
    masked_columns: SensitiveColumns | None = None,
    masking: Callable[[Resource], MaskingPolicy | None] | None = None,
) -> HookChain:
    transforms_hook = (
        [HoldTransforms(masked_columns, masking)]
        if masked_columns is not None and masking is not None
        else []
    )
    return HookChain(
        [
            SizeLimit(max_statement_size),
            Classify(classifiers),
            PinLexing(),
            PinSessionLimits(),
            Decide(alert),
            WatchRelexing(classifiers),
            *transforms_hook,
            Hold(holding),
        ],
        PassThroughMask(),
        Record(recorder),
    )
